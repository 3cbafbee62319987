"""GEMM engine: the padded golden product, qnnfab generate --gemm.

The engine itself is checked cycle-exactly in co-simulation by the ``gemm``
regression (tests/test_regressions.py runs its cases)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from qnnfab import overlay_map as om
from qnnfab.golden.fixedpoint import FixedFormat
from qnnfab.golden.gemm import gemm_padded
from qnnfab.golden.lfsr import lfsr_words
from qnnfab.golden.systolic import systolic_matmul


@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (5, 7, 3), (8, 4, 8)])
def test_padded_product_rounds_to_nearest_as_first_principles(M, K, N):
    rng = np.random.default_rng(M * 100 + N)
    f = FixedFormat(2, 6)
    out = FixedFormat(3, 4)
    a = rng.integers(f.min_code, f.max_code + 1, (M, K))
    b = rng.integers(f.min_code, f.max_code + 1, (K, N))
    got = gemm_padded(a, b, f, f, out, 4, 4, "nearest", 20, 1)
    d = 12 - 4
    want = np.clip((a @ b + (1 << (d - 1))) >> d, out.min_code, out.max_code)
    assert np.array_equal(got, want)


def test_gemm_formats_identity_words():
    fm = om.GemmFormats(rows=14, cols=3, a_fmt=[2, 14], b_fmt=[4, 4], c_fmt=[3, 5], k_max=512, panels=6,
                        seed=0x1234, bus_bytes=8)
    ident = fm.identity()
    assert ident["ARRAY"] == 14 | 3 << 8 | 8 << 16 and ident["PANELS"] == 6
    assert ident["FORMATS"] == 0x04040E02 and ident["OUT_FORMAT"] == 0x12340503
    assert (fm.a_word_beats, fm.b_word_beats, fm.c_word_beats) == (4, 1, 1)
    assert om.GemmFormats.from_dict(json.loads(json.dumps(fm.to_dict()))) == fm


@pytest.mark.parametrize("tr,tc,q", [(1, 1, 1), (1, 3, 4), (4, 2, 4), (5, 3, 2), (7, 1, 3), (3, 4, 1)])
def test_tile_order_visits_every_tile_once_in_blocks_of_q_row_tiles(tr, tc, q):
    order = om.gemm_tile_order(tr, tc, q)
    assert sorted(order) == [(i, j) for i in range(tr) for j in range(tc)]
    n = 0
    for first in range(0, tr, q):                  # block by block: B panel j meets the block's A panels
        rows = list(range(first, min(first + q, tr)))
        for j in range(tc):
            assert order[n:n + len(rows)] == [(i, j) for i in rows]
            n += len(rows)


def _stochastic_case(M, K, N, seed):
    rng = np.random.default_rng(seed)
    f, out = FixedFormat(2, 6), FixedFormat(3, 4)
    a = rng.integers(f.min_code, f.max_code + 1, (M, K))
    b = rng.integers(f.min_code, f.max_code + 1, (K, N))
    return a, b, f, out


def test_padded_product_with_blocks_of_one_row_tile_is_the_arrays_own_tile_order():
    a, b, f, out = _stochastic_case(9, 5, 7, 3)       # 3 x 2 tiles of 4 x 4, padded
    ap = np.zeros((12, 5), np.int64)
    ap[:9] = a
    bp = np.zeros((5, 8), np.int64)
    bp[:, :7] = b
    want = systolic_matmul(ap, bp, f, f, out, 4, 4, "stochastic", lfsr_width=20, lfsr_seed=5).values[:9, :7]
    assert np.array_equal(gemm_padded(a, b, f, f, out, 4, 4, "stochastic", 20, 5, block_tiles=1), want)


def test_padded_product_of_one_block_rounds_tile_i_j_with_word_j_times_row_tiles_plus_i():
    a, b, f, out = _stochastic_case(9, 5, 7, 4)       # tr = 3, tc = 2; one block: column tiles outer
    got = gemm_padded(a, b, f, f, out, 4, 4, "stochastic", 20, 5, block_tiles=3)
    words = lfsr_words(3 * 2 * 4, 12 - 4, 20, 5, 4)
    acc = a @ b
    for m in range(9):
        for n in range(7):
            w = ((n // 4) * 3 + m // 4) * 4 + m % 4
            want = min(max((int(acc[m, n]) + int(words[w, n % 4])) >> 8, out.min_code), out.max_code)
            assert got[m, n] == want, (m, n)
    assert not np.array_equal(got, gemm_padded(a, b, f, f, out, 4, 4, "stochastic", 20, 5, block_tiles=1))


def test_block_tiles_choice_lies_in_range_and_takes_all_row_tiles_when_they_fit_one_block():
    fm = om.GemmFormats(rows=14, cols=14, a_fmt=[2, 14], b_fmt=[2, 14], c_fmt=[2, 14], k_max=1024, panels=8,
                        seed=1, bus_bytes=8)
    for tr, tc in ((1, 1), (8, 3), (19, 19), (74, 74), (200, 2)):
        q = om.gemm_block_tiles(fm, tr, tc)
        assert 1 <= q <= 8
        if tr <= 8:
            assert q == 8


def test_default_panels_from_the_bram_budget():
    from qnnfab.boards.emit.gemm import default_panels
    # 14 x 14, 16-bit words on 64 bits: B word = 4 bus words -> p = 8, inside 90% of the 140 BRAM36
    assert default_panels(14, 14) == 8
    assert default_panels(4, 4) == 2                  # one bus word per B word
    assert default_panels(16, 16) < 8                 # 8 blocks of 256-bit words no longer fit


def _qnnfab(*args):
    return subprocess.run([sys.executable, "-m", "qnnfab", *args], capture_output=True, text=True)


def test_generate_gemm_writes_the_overlay_folder(tmp_path):
    r = _qnnfab("generate", "--gemm", "2x3", "--out", str(tmp_path / "g"))
    assert r.returncode == 0, r.stderr
    d = tmp_path / "g" / "overlay"
    names = {p.name for p in d.iterdir()}
    assert {"gemm_2x3_overlay.v", "gemm_2x3_overlay_bd.v", "block_design.tcl", "build.sh", "driver.py",
            "qnnfab_overlay_map.py", "qnnfab_packing.py", "qnnfab_weights_image.py", "gemm.json", "README.md"} <= names
    fm = om.GemmFormats.from_dict(json.loads((d / "gemm.json").read_text()))
    assert (fm.rows, fm.cols) == (2, 3)
    assert "module gemm_2x3_overlay" in (d / "gemm_2x3_overlay.v").read_text()


@pytest.mark.parametrize("args,words", [
    (["--gemm", "4y4"], ["--gemm", "ROWSxCOLS"]),
    (["--gemm", "0x4"], ["--gemm", "1..255"]),
    (["--gemm", "100x100"], ["--gemm", "BRAM36"]),
    (["--gemm", "4x4", "--config", "x.toml"], ["--gemm", "--config"]),
    ([], ["--config", "required"]),
])
def test_generate_gemm_bad_input_exits_2_before_writing(tmp_path, args, words):
    out = tmp_path / "g"
    r = _qnnfab("generate", *args, "--out", str(out))
    assert r.returncode == 2
    assert all(w in r.stderr for w in words), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()

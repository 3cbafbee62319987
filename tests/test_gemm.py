"""GEMM engine: driver word packing, the padded golden product, qnnfab generate --gemm.

The engine itself is checked cycle-exactly in co-simulation by the ``gemm``
regression (tests/test_regressions.py runs its cases)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from qnnfab import overlay_map as om
from qnnfab.boards.driver import pack_words, unpack_words
from qnnfab.golden.fixedpoint import FixedFormat
from qnnfab.golden.gemm import gemm_padded


def test_pack_words_puts_element_zero_at_the_lsbs_and_pads_to_whole_bus_words():
    raw = pack_words(np.array([[1, -1, 5]]), 4, 2, 4)
    assert raw.shape == (1, 8)
    assert raw[0].tolist() == [0xF1, 0x05, 0, 0, 0, 0, 0, 0]
    assert unpack_words(raw, 3, 4).tolist() == [[1, -1, 5]]


def test_pack_unpack_round_trip_of_every_code():
    x = np.arange(-2048, 2048).reshape(-1, 16)
    assert np.array_equal(unpack_words(pack_words(x, 12, 3, 8), 16, 12), x)


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
    fm = om.GemmFormats(rows=14, cols=3, a_fmt=[2, 14], b_fmt=[4, 4], c_fmt=[3, 5], k_max=512, seed=0x1234,
                        bus_bytes=8)
    ident = fm.identity()
    assert ident["ARRAY"] == 14 | 3 << 8 | 8 << 16
    assert ident["FORMATS"] == 0x04040E02 and ident["OUT_FORMAT"] == 0x12340503
    assert (fm.a_word_beats, fm.b_word_beats, fm.c_word_beats) == (4, 1, 1)
    assert om.GemmFormats.from_dict(json.loads(json.dumps(fm.to_dict()))) == fm


def _qnnfab(*args):
    return subprocess.run([sys.executable, "-m", "qnnfab", *args], capture_output=True, text=True)


def test_generate_gemm_writes_the_overlay_folder(tmp_path):
    r = _qnnfab("generate", "--gemm", "2x3", "--out", str(tmp_path / "g"))
    assert r.returncode == 0, r.stderr
    d = tmp_path / "g" / "overlay"
    names = {p.name for p in d.iterdir()}
    assert {"gemm_2x3_overlay.v", "gemm_2x3_overlay_bd.v", "block_design.tcl", "build.sh", "driver.py",
            "qnnfab_overlay_map.py", "gemm.json", "README.md"} <= names
    fm = om.GemmFormats.from_dict(json.loads((d / "gemm.json").read_text()))
    assert (fm.rows, fm.cols) == (2, 3)
    assert "module gemm_2x3_overlay" in (d / "gemm_2x3_overlay.v").read_text()


@pytest.mark.parametrize("args,words", [
    (["--gemm", "4y4"], ["--gemm", "ROWSxCOLS"]),
    (["--gemm", "0x4"], ["--gemm", "1..255"]),
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

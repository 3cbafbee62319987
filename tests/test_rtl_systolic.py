"""Systolic MACC array in Amaranth's simulator: values, arrival cycles and errors."""

import random

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden.fixedpoint import shift_round
from qnnfab.golden.lfsr import lfsr_words
from qnnfab.golden.systolic_timing import input_cycles, output_cycles
from qnnfab.packing import unpack_fields
from qnnfab.rtl.systolic import SystolicArray
from qnnfab.sim.amaranth_stream import StreamSink, StreamSource, run_streams


def golden_tiles(dut, tiles):
    """Expected output words (list of C-lists) of ``tiles`` = [(A (R,K), B (K,C)), ...]."""
    C = dut.cols
    acc = np.concatenate([a.astype(np.int64) @ b.astype(np.int64) for a, b in tiles])  # (T*R, C)
    rb = np.zeros(acc.shape, np.int64)  # D = 0: no random bits
    if dut.mode == "stochastic" and dut.drop_bits:
        rb = lfsr_words(len(acc), dut.drop_bits, dut.lfsr_width, dut.seed, lanes=C,
                        steps_per_cycle=dut.steps_per_cycle).astype(np.int64)
    return shift_round(acc, dut.drop_bits, dut.mode, rb, dut.c_width).tolist()


def random_tiles(rng, dut, ks, extreme=0.2):
    out = []
    for k in ks:
        lo_a, hi_a = -(1 << (dut.a_width - 1)), (1 << (dut.a_width - 1)) - 1
        lo_b, hi_b = -(1 << (dut.b_width - 1)), (1 << (dut.b_width - 1)) - 1
        a = rng.integers(lo_a, hi_a + 1, (dut.rows, k))
        b = rng.integers(lo_b, hi_b + 1, (k, dut.cols))
        a[rng.random(a.shape) < extreme] = lo_a
        b[rng.random(b.shape) < extreme] = rng.choice([lo_b, hi_b])
        out.append((a, b))
    return out


def simulate(dut, tiles, valid_prob=1.0, ready_prob=1.0, seed=0):
    """Stream the tiles through the array; return (output rows as C-lists, out cycles, input transfer cycles)."""
    rng = random.Random(seed)
    a_words, b_words = [], []
    for a, b in tiles:
        k = a.shape[1]
        for s in range(k):
            a_words.append({"data": [int(x) for x in a[:, s]], "last": int(s == k - 1)})
            b_words.append([int(x) for x in b[s]])
    n_out = len(tiles) * dut.rows
    src_a = StreamSource(dut.a, a_words, valid_prob=valid_prob, rng=rng, name="a")
    src_b = StreamSource(dut.b, b_words, valid_prob=valid_prob, rng=rng, name="b")
    snk = StreamSink(dut.o, ready_prob=ready_prob, rng=rng, name="o")
    run_streams(dut, [src_a, src_b], [snk], [n_out], extra_cycles=2 * (dut.rows + dut.cols) + 8,
                max_cycles=50 * (len(a_words) + n_out) + 200)
    assert src_a.sent_cycles == src_b.sent_cycles, "a and b must transfer together"
    assert len(snk.words) == n_out, f"{len(snk.words) - n_out} output word(s) after the last tile's rows"
    words = [unpack_fields(w, [dut.c_width] * dut.cols, signed=True) for w in snk.words]
    return words, snk.cycles, src_a.sent_cycles


CASES = [
    # rows, cols, a_fmt, b_fmt, c_fmt, mode, ks
    (2, 3, (2, 6), (1, 7), (3, 5), "stochastic", [6, 4, 9]),
    (3, 2, (1, 3), (2, 2), (2, 1), "nearest", [5, 3, 7, 4]),
    (1, 1, (4, 0), (4, 0), (3, 0), "truncate", [1, 3, 2]),
    (3, 3, (1, 5), (1, 5), (1, 4), "stochastic", [4, 9, 1, 5]),
]


@pytest.mark.parametrize("rows,cols,a_fmt,b_fmt,c_fmt,mode,ks", CASES)
def test_values_and_cycles_match_golden_unstalled(rows, cols, a_fmt, b_fmt, c_fmt, mode, ks):
    dut = SystolicArray(rows, cols, a_fmt, b_fmt, c_fmt, k_max=16, mode=mode, seed=0x5A)
    tiles = random_tiles(np.random.default_rng(rows * 7 + cols), dut, ks)
    words, ocyc, acyc = simulate(dut, tiles)
    assert words == golden_tiles(dut, tiles)
    exp_in = np.concatenate(input_cycles(ks, cols))
    assert acyc == exp_in.tolist()
    lasts = [c[-1] for c in input_cycles(ks, cols)]
    try:
        exp_out = output_cycles(lasts, rows, cols)
    except ConfigError:
        return  # the array stalls for short tiles: values-only
    assert ocyc == exp_out.ravel().tolist()


@pytest.mark.parametrize("rows,cols,a_fmt,b_fmt,c_fmt,mode,ks", CASES)
def test_values_match_golden_under_backpressure(rows, cols, a_fmt, b_fmt, c_fmt, mode, ks):
    dut = SystolicArray(rows, cols, a_fmt, b_fmt, c_fmt, k_max=16, mode=mode, seed=3)
    tiles = random_tiles(np.random.default_rng(rows * 5 + cols), dut, ks)
    words, _, _ = simulate(dut, tiles, valid_prob=0.6, ready_prob=0.3, seed=11)
    assert words == golden_tiles(dut, tiles)


@pytest.mark.parametrize("mode", ["nearest", "truncate", "stochastic"])
def test_every_product_of_two_codes_rounds_like_golden(mode):
    # K = 1 tiles over all (a, b) code pairs: every residue of the D = 4 dropped bits, exact ties included
    dut = SystolicArray(1, 1, (1, 3), (1, 3), (2, 2), k_max=1, mode=mode, seed=0x33)
    codes = range(-8, 8)
    tiles = [(np.array([[a]]), np.array([[b]])) for a in codes for b in codes]
    words, _, _ = simulate(dut, tiles, valid_prob=0.8, ready_prob=0.7, seed=5)
    assert words == golden_tiles(dut, tiles)
    if mode == "nearest":   # first principles: a tie (a*b = 16 m + 8) goes up, to m + 1
        ties = [(a * b, w[0]) for (a, b), w in zip([(a, b) for a in codes for b in codes], words) if a * b % 16 == 8]
        assert ties and all(q == (p - 8) // 16 + 1 for p, q in ties), ties


@pytest.mark.parametrize("k_max", [1, 16])
def test_accumulator_is_exact_at_k_max(k_max):
    # K = k_max steps of min x min, min x max, max x min and max x max; the output format is the
    # accumulator's own (D = 0), so every sum must come out exactly, the largest 2^6 * k_max included
    dut = SystolicArray(2, 2, (1, 3), (1, 3), (8 + (k_max - 1).bit_length() - 6, 6), k_max=k_max, mode="truncate")
    assert dut.drop_bits == 0 and dut.c_width == dut.acc_width
    a = np.array([[-8] * k_max, [7] * k_max])
    b = np.array([[-8, 7]] * k_max)
    words, _, _ = simulate(dut, [(a, b)] * 2, valid_prob=0.9, ready_prob=0.8, seed=k_max)
    assert words == [[64 * k_max, -56 * k_max], [-56 * k_max, 49 * k_max]] * 2


def test_bad_configurations_raise():
    with pytest.raises(ConfigError, match="c_fmt"):
        SystolicArray(2, 2, (1, 7), (1, 7), (30, 20))
    with pytest.raises(ConfigError, match="D = -1"):
        SystolicArray(2, 2, (1, 3), (1, 3), (1, 7))
    with pytest.raises(ConfigError, match="lfsr_width"):
        SystolicArray(2, 2, (1, 7), (1, 7), (1, 3), lfsr_width=11)
    with pytest.raises(ConfigError, match="k_max"):
        SystolicArray(2, 2, (1, 23), (1, 23), (1, 15), k_max=8)
    with pytest.raises(ConfigError, match="mode"):
        SystolicArray(2, 2, (1, 7), (1, 7), (1, 7), mode="round")
    with pytest.raises(ConfigError, match="rows"):
        SystolicArray(0, 2, (1, 7), (1, 7), (1, 7))

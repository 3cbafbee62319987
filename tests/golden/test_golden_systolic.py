"""Systolic array model: values against a cycle-by-cycle loop simulation, output order, stochastic lanes."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qnnfab.errors import ConfigError
from qnnfab.golden import LFSR, FixedFormat, lane_seeds, shift_round, systolic_matmul

SET = settings(max_examples=40, deadline=None)


def simulate_wavefront(a, b, rows, cols, k):
    """Cycle-by-cycle simulation of one R x C output-stationary tile with registered, skewed operands."""
    acc = np.zeros((rows, cols), np.int64)
    a_reg = np.zeros((rows, cols), np.int64)
    b_reg = np.zeros((rows, cols), np.int64)
    done = np.full((rows, cols), -1)
    steps = np.zeros((rows, cols), int)
    for cyc in range(k + rows + cols):
        # operands arriving this cycle: from the left/top neighbour's register, or the skewed edge feed
        a_in = np.zeros((rows, cols), np.int64)
        b_in = np.zeros((rows, cols), np.int64)
        a_in[:, 1:] = a_reg[:, :-1]
        b_in[1:, :] = b_reg[:-1, :]
        for i in range(rows):
            s = cyc - i
            a_in[i, 0] = a[i, s] if 0 <= s < k else 0
        for j in range(cols):
            s = cyc - j
            b_in[0, j] = b[s, j] if 0 <= s < k else 0
        for i in range(rows):
            for j in range(cols):
                s = cyc - i - j
                if 0 <= s < k:
                    acc[i, j] += a_in[i, j] * b_in[i, j]
                    steps[i, j] += 1
                    if steps[i, j] == k:
                        done[i, j] = cyc
        a_reg, b_reg = a_in, b_in
    return acc, done


@SET
@given(r=st.integers(1, 4), c=st.integers(1, 4), k=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_single_tile_values_match_wavefront_simulation(r, c, k, seed):
    rng = np.random.default_rng(seed)
    fa, fb, fo = FixedFormat(2, 6), FixedFormat(3, 5), FixedFormat(4, 6)
    a = rng.integers(fa.min_code, fa.max_code + 1, (r, k))
    b = rng.integers(fb.min_code, fb.max_code + 1, (k, c))
    res = systolic_matmul(a, b, fa, fb, fo, r, c, "nearest")
    acc, done = simulate_wavefront(a, b, r, c, k)
    assert np.array_equal(res.acc, acc)
    assert np.array_equal(res.acc, a @ b)
    # the skew of systolic_timing's contract: PE(i, j) does its last step K-1 + i + j cycles after step 0 enters
    assert np.array_equal(done, (k - 1) + np.arange(r)[:, None] + np.arange(c)[None, :])
    assert res.drop_bits == 5
    assert np.array_equal(res.values, shift_round(acc, 5, "nearest", None, fo.width))
    assert np.array_equal(res.emit_index, np.broadcast_to(np.arange(r)[:, None], (r, c)))


@SET
@given(m=st.integers(1, 9), n=st.integers(1, 9), k=st.integers(1, 5), r=st.integers(1, 4), c=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1))
def test_tiled_product_and_stochastic_lanes(m, n, k, r, c, seed):
    rng = np.random.default_rng(seed)
    f = FixedFormat(2, 6)
    fo = FixedFormat(3, 5)
    a = rng.integers(f.min_code, f.max_code + 1, (m, k))
    b = rng.integers(f.min_code, f.max_code + 1, (k, n))
    res = systolic_matmul(a, b, f, f, fo, r, c, "stochastic", lfsr_width=16, lfsr_seed=0x1D)
    d = 7
    assert np.array_equal(res.acc, a @ b)
    assert np.array_equal(res.values, shift_round(res.acc, d, "stochastic", res.random, fo.width))
    # output words in stream order (row tiles outer, column tiles inner, rows in order; padded rows
    # emit nothing); word k is rounded with the k-th word of every column lane's LFSR
    seeds = lane_seeds(16, 0x1D, c)
    tr, tc = -(-m // r), -(-n // c)
    stream = [(ti * r + i, tj) for ti in range(tr) for tj in range(tc) for i in range(r) if ti * r + i < m]
    for lane in range(min(c, n)):
        words = LFSR(16, seeds[lane]).words(len(stream), d)
        for k, (row, tj) in enumerate(stream):
            col = tj * c + lane
            if col < n:
                assert res.emit_index[row, col] == k
                assert res.random[row, col] == words[k]
    assert res.tiles == tr * tc


def test_rounding_modes_and_saturation():
    f = FixedFormat(4, 4)
    a = np.full((2, 8), f.max_code)
    b = np.full((8, 2), f.max_code)
    res = systolic_matmul(a, b, f, f, FixedFormat(4, 4), 2, 2, "truncate")
    assert np.all(res.values == FixedFormat(4, 4).max_code)
    res = systolic_matmul(-a, b, f, f, FixedFormat(8, 4), 2, 2, "nearest")
    assert np.array_equal(res.values, shift_round(res.acc, 4, "nearest", None, 12))


def test_errors():
    f = FixedFormat(2, 6)
    with pytest.raises(ConfigError, match="out_fmt"):
        systolic_matmul(np.zeros((2, 2)), np.zeros((2, 2)), f, f, FixedFormat(2, 13), 2, 2)
    with pytest.raises(ConfigError, match="acc_width"):
        systolic_matmul(np.zeros((2, 2)), np.zeros((2, 2)), f, f, f, 2, 2, acc_width=10)
    with pytest.raises(ConfigError, match="a/b"):
        systolic_matmul(np.zeros((2, 3)), np.zeros((2, 2)), f, f, f, 2, 2)

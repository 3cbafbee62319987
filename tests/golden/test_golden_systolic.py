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


@pytest.mark.parametrize("rows,cols,m1,m2,n,k", [(2, 3, 4, 3, 7, 5), (4, 4, 8, 8, 4, 2), (3, 2, 3, 1, 5, 9)])
def test_lfsr_start_continues_the_lanes_of_the_previous_product(rows, cols, m1, m2, n, k):
    # two products issued one after the other (the first a whole number of row tiles) emit the same
    # word stream as one product of the stacked A: the second continues the lanes after the first's words
    rng = np.random.default_rng(rows * 100 + m1)
    f, fo = FixedFormat(2, 6), FixedFormat(2, 4)
    a = rng.integers(f.min_code, f.max_code + 1, (m1 + m2, k))
    b = rng.integers(f.min_code, f.max_code + 1, (k, n))
    args = (f, f, fo, rows, cols)
    kw = dict(rounding="stochastic", lfsr_width=16, lfsr_seed=0x2B)
    whole = systolic_matmul(a, b, *args, **kw)
    first = systolic_matmul(a[:m1], b, *args, **kw)
    second = systolic_matmul(a[m1:], b, *args, lfsr_start=first.words, **kw)
    assert first.words == m1 * -(-n // cols)
    assert np.array_equal(np.vstack([first.values, second.values]), whole.values)
    assert np.array_equal(np.vstack([first.random, second.random]), whole.random)
    assert not np.array_equal(second.random, systolic_matmul(a[m1:], b, *args, **kw).random)


def test_lfsr_start_uses_each_columns_lane_word_by_word():
    # element by element from first principles: result (m, n) = (acc + r) >> D, r = the D LSBs of lane
    # (n mod C)'s LFSR after (start + word index) * D steps, word index = rows of earlier tiles
    rows, cols, start = 2, 2, 1234
    f, fo = FixedFormat(1, 7), FixedFormat(1, 3)
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (3, 4))
    b = rng.integers(-128, 128, (4, 3))
    res = systolic_matmul(a, b, f, f, fo, rows, cols, rounding="stochastic", lfsr_width=20, lfsr_seed=9,
                          lfsr_start=start)
    d = 11
    seeds = lane_seeds(20, 9, cols)
    # words: row tile 0 (rows 0-1): col tile 0 -> words 0,1; col tile 1 -> 2,3; row tile 1 (row 2): 4, 5
    word = {(0, 0): 0, (1, 0): 1, (0, 1): 2, (1, 1): 3, (2, 0): 4, (2, 1): 5}
    for m in range(3):
        for n in range(3):
            lf = LFSR(20, seeds[n % cols])
            lf.jump((start + word[(m, n // cols)]) * d)
            r = lf.state & ((1 << d) - 1)
            acc = int(a[m] @ b[:, n])
            assert res.values[m, n] == max(-8, min(7, (acc + r) >> d)), (m, n)

"""Fixed point formats and the hardware rounding stage."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qnnfab.errors import ConfigError
from qnnfab.golden import (LFSR, FixedFormat, lfsr_words, quantize, round_nearest, saturate, stochastic_round,
                           to_float, truncate)

SET = settings(max_examples=80, deadline=None)


def slow_round(acc, d, add, width):
    v = (acc + add) // (2**d)  # Python floor division on ints == arithmetic shift
    if width is not None:
        v = max(-(2 ** (width - 1)), min(2 ** (width - 1) - 1, v))
    return v


@SET
@given(d=st.integers(0, 20), width=st.sampled_from([None, 1, 4, 8, 16, 32]), seed=st.integers(0, 2**32 - 1),
       n=st.integers(1, 40))
def test_rounding_modes_match_integer_definition(d, width, seed, n):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(2**40), 2**40, n)
    r = rng.integers(0, 2**d, n)
    half = 2 ** (d - 1) if d else 0
    assert truncate(acc, d, width).tolist() == [slow_round(int(a), d, 0, width) for a in acc]
    assert round_nearest(acc, d, width).tolist() == [slow_round(int(a), d, half, width) for a in acc]
    assert stochastic_round(acc, d, r, width).tolist() == [slow_round(int(a), d, int(x), width) for a, x in zip(acc, r)]


def test_round_nearest_ties_go_up_and_negative_values_floor():
    assert round_nearest([2, 6, -2, -6, -5], 2).tolist() == [1, 2, 0, -1, -1]
    assert truncate([-1, -4, -5], 2).tolist() == [-1, -1, -2]


def test_stochastic_rounding_is_unbiased_with_lfsr_bits():
    d = 6
    acc = np.full(60000, 7 * 64 + 21)  # 7 + 21/64
    r = LFSR(24, 0xBEEF).words(60000, d)
    out = stochastic_round(acc, d, r)
    assert set(out.tolist()) == {7, 8}
    assert abs(out.mean() - (7 + 21 / 64)) < 0.01


def test_stochastic_random_bits_checked():
    with pytest.raises(ConfigError, match="random_bits"):
        stochastic_round([1, 2], 2, [0, 4])
    with pytest.raises(ConfigError, match="random_bits"):
        stochastic_round([1, 2], 2, None)
    with pytest.raises(ConfigError, match="broadcast"):
        stochastic_round([1, 2], 2, [0, 1, 2])


def test_fixed_format_ranges():
    f = FixedFormat(1, 7)
    assert (f.width, f.min_code, f.max_code, f.min_value, f.max_value) == (8, -128, 127, -1.0, 127 / 128)
    assert f.product(FixedFormat(2, 3)) == FixedFormat(3, 10)
    with pytest.raises(ConfigError, match="FixedFormat"):
        FixedFormat(0, 0)
    with pytest.raises(ConfigError):
        FixedFormat(4, -1)


@SET
@given(i=st.integers(1, 8), f=st.integers(0, 12), seed=st.integers(0, 2**32 - 1))
def test_quantize_round_trip_and_saturation(i, f, seed):
    fmt = FixedFormat(i, f)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0**i, 2.0**i, 50)
    q = quantize(x, fmt, "nearest")
    assert q.min() >= fmt.min_code and q.max() <= fmt.max_code
    inside = (x >= fmt.min_value) & (x <= fmt.max_value)
    assert np.all(np.abs(to_float(q[inside], fmt) - x[inside]) <= fmt.eps / 2)
    assert np.array_equal(quantize(to_float(q, fmt), fmt), q)
    qt = quantize(x, fmt, "truncate")
    assert np.all(to_float(qt[inside], fmt) <= x[inside])
    # stochastic with integer random bits is the integer stochastic_round of x floored to F + D bits
    d = 5
    r = rng.integers(0, 32, 50)
    qs = quantize(x, fmt, "stochastic", random_bits=r, random_width=d)
    y = np.floor(x * 2.0 ** (f + d)).astype(np.int64)
    assert np.array_equal(qs, stochastic_round(y, d, r, fmt.width))
    qr = quantize(x, fmt, "stochastic", rng=rng)
    assert np.all((qr == q) | (np.abs(qr - q) == 1))


def test_saturate():
    assert saturate([-300, -128, 127, 300], 8).tolist() == [-128, -128, 127, 127]
    assert saturate([-3, 20], 4, signed=False).tolist() == [0, 15]


def test_lane_words_feed_rounding():
    words = lfsr_words(8, 3, 12, base_seed=5, lanes=2)
    out = stochastic_round(np.full((8, 2), 13), 3, words, 8)
    assert out.shape == (8, 2) and set(np.unique(out).tolist()) <= {1, 2}

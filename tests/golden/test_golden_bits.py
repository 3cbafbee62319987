"""Bit packing and XNOR-popcount products against slow loop implementations."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qnnfab.errors import ConfigError
from qnnfab.golden import (bipolar_to_bits, bits_to_bipolar, dot_to_popcount, pack_bits, popcount_to_dot,
                           unpack_bits, xnor_popcount, xnor_popcount_matmul, xnor_popcount_matvec)

SET = settings(max_examples=60, deadline=None)
lengths = st.sampled_from([1, 2, 7, 63, 64, 65, 100, 127, 128, 129, 200]) | st.integers(1, 300)


def slow_popcount(w, x):
    """P[m] = #{i : w[m, i] == x[i]} by plain loops."""
    out = np.zeros(len(w), np.int64)
    for m in range(len(w)):
        for i in range(len(x)):
            out[m] += int(w[m][i] == x[i])
    return out


@SET
@given(n=lengths, seed=st.integers(0, 2**32 - 1))
def test_pack_unpack_roundtrip_and_bit_positions(n, seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, (3, n), dtype=np.uint8)
    words = pack_bits(bits)
    assert words.dtype == np.uint64 and words.shape == (3, (n + 63) // 64)
    for r in range(3):
        for i in range(n):  # element i is bit i % 64 of word i // 64
            assert (int(words[r, i // 64]) >> (i % 64)) & 1 == bits[r, i]
        assert int(words[r, -1]) >> (n % 64 or 64) == 0  # padding bits are zero
    assert np.array_equal(unpack_bits(words, n), bits)


def test_bipolar_bits_convention():
    assert np.array_equal(bipolar_to_bits([-1, 1, 1, -1]), [0, 1, 1, 0])
    assert np.array_equal(bits_to_bipolar([0, 1]), [-1, 1])
    with pytest.raises(ConfigError):
        bipolar_to_bits([0, 1])
    with pytest.raises(ConfigError):
        bits_to_bipolar([2])


@SET
@given(m=st.integers(1, 9), n=lengths, b=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_xnor_popcount_matvec_matches_loops(m, n, b, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (m, n), dtype=np.uint8)
    x = rng.integers(0, 2, (b, n), dtype=np.uint8)
    ref = np.stack([slow_popcount(w, x[j]) for j in range(b)])
    assert np.array_equal(xnor_popcount_matvec(w, x[0]), ref[0])
    assert np.array_equal(xnor_popcount_matvec(w, x), ref)
    assert np.array_equal(xnor_popcount_matmul(w, x), ref)
    assert np.array_equal(xnor_popcount_matmul(pack_bits(w), pack_bits(x), n=n, chunk=2), ref)
    assert np.array_equal(xnor_popcount(w[None], x[:, None]), ref)
    # dot product = 2P - N equals the +-1 dot product
    dot = (2 * x.astype(int) - 1) @ (2 * w.astype(int) - 1).T
    assert np.array_equal(popcount_to_dot(ref, n), dot)
    assert np.array_equal(dot_to_popcount(dot, n), ref)


@SET
@given(n=lengths, seed=st.integers(0, 2**32 - 1))
def test_padding_garbage_never_counts(n, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (4, n), dtype=np.uint8)
    x = rng.integers(0, 2, (2, n), dtype=np.uint8)
    wp, xp = pack_bits(w), pack_bits(x)
    if n % 64:
        junk = np.uint64(~((1 << (n % 64)) - 1) & 0xFFFFFFFFFFFFFFFF)
        wp[:, -1] |= junk & rng.integers(0, 2**63, dtype=np.uint64)
        xp[:, -1] |= junk
    ref = np.stack([slow_popcount(w, x[j]) for j in range(2)])
    assert np.array_equal(xnor_popcount_matmul(wp, xp, n=n), ref)
    assert np.array_equal(xnor_popcount_matvec(wp, xp[0], n=n), ref[0])
    assert np.array_equal(xnor_popcount(wp[None], xp[:, None], n=n), ref)


def test_bad_shapes_raise_config_error():
    with pytest.raises(ConfigError, match="xnor_popcount_matvec"):
        xnor_popcount_matvec(np.zeros((3, 5)), np.zeros(6))
    with pytest.raises(ConfigError, match="words"):
        xnor_popcount_matmul(np.zeros((3, 1), np.uint64), np.zeros((2, 2), np.uint64), n=64)
    with pytest.raises(ConfigError):
        xnor_popcount_matvec(np.zeros((3, 2), np.int64), np.zeros((2, 2), np.uint64), n=70)
    with pytest.raises(ConfigError):
        pack_bits(np.array([0, 2]))
    with pytest.raises(ConfigError):
        unpack_bits(np.zeros(1, np.uint64), 65)

"""Multi-threshold activations and BN + sign folding."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qnnfab.errors import ConfigError
from qnnfab.golden import (bn_sign, bn_to_thresholds, fold_flips_into_weights, multithreshold,
                           xnor_popcount_matmul)

SET = settings(max_examples=60, deadline=None)


def slow_multithreshold(acc, t):
    out = np.zeros(acc.shape, np.int64)
    for idx in np.ndindex(acc.shape):
        row = t[idx[-1]] if t.shape[0] > 1 else t[0]
        out[idx] = sum(1 for v in row if acc[idx] >= v)
    return out


@SET
@given(c=st.integers(1, 6), n=st.sampled_from([0, 1, 2, 3, 15, 16, 17, 40]), shared=st.booleans(),
       lead=st.sampled_from([(), (1,), (3,), (2, 3)]), seed=st.integers(0, 2**32 - 1))
def test_multithreshold_matches_loops(c, n, shared, lead, seed):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(-20, 20, (1 if shared else c, n)), axis=1)
    acc = rng.integers(-25, 25, lead + (c,))
    assert np.array_equal(multithreshold(acc, t), slow_multithreshold(acc, t))
    assert np.array_equal(multithreshold(acc, t, out_scale=2, out_bias=-1), 2 * slow_multithreshold(acc, t) - 1)


def test_multithreshold_ties_count_as_reached():
    assert multithreshold(np.array([[5, 4]]), np.array([[5], [5]])).tolist() == [[1, 0]]
    assert multithreshold(np.array([3]), np.array([[1, 3, 3, 7]])).tolist() == [3]


def test_multithreshold_rejects_bad_thresholds():
    with pytest.raises(ConfigError, match="sorted"):
        multithreshold(np.zeros((2, 2)), np.array([[1, 0], [0, 1]]))
    with pytest.raises(ConfigError, match="channels"):
        multithreshold(np.zeros((2, 3)), np.zeros((2, 1)))
    with pytest.raises(ConfigError, match="2-D"):
        multithreshold(np.zeros((2, 3)), np.zeros(3))


def random_bn(rng, c, std, gamma_zero=True):
    gamma = rng.normal(0, 1, c)
    if gamma_zero:
        gamma[rng.random(c) < 0.15] = 0.0
    beta = rng.normal(0, 1, c)
    mu = rng.normal(0, std, c)
    sigma = rng.uniform(0.1, 2, c) * std
    return gamma, beta, mu, sigma


@SET
@given(c=st.integers(1, 20), n=st.integers(1, 150), b=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_folded_binary_layer_matches_float_bn_sign_exactly(c, n, b, seed):
    """Folded integer network (popcount and dot domains, with and without FINN flips) == float network."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (c, n), dtype=np.uint8)
    x = rng.integers(0, 2, (b, n), dtype=np.uint8)
    gamma, beta, mu, sigma = random_bn(rng, c, np.sqrt(n))
    # float network: +-1 weights and activations, float BN, sign
    dot_f = (2.0 * x - 1) @ (2.0 * w - 1).T
    ref = bn_sign(dot_f, gamma, beta, mu, sigma)
    p = xnor_popcount_matmul(w, x)
    dot = 2 * p - n
    fd = bn_to_thresholds(gamma, beta, mu, sigma, domain="dot", n=n)
    fp = bn_to_thresholds(gamma, beta, mu, sigma, domain="popcount", n=n)
    assert np.array_equal(fd.apply(dot), ref)
    assert np.array_equal(fp.apply(p), ref)
    assert np.array_equal(fp.flip, gamma < 0)
    assert np.array_equal(fp.const, np.where(gamma == 0, np.where(beta >= 0, 1, -1), 0))
    # thresholds clamp into [0, n + 1] so they fit the derived width
    assert fp.thresholds.min() >= -1 and fp.thresholds.max() <= n + 1
    # FINN: negate flipped rows, then only acc >= T is needed
    w2, t2 = fold_flips_into_weights(w, fp, "bipolar")
    assert np.array_equal(multithreshold(xnor_popcount_matmul(w2, x), t2), ref)
    w3, t3 = fold_flips_into_weights(w, fd, "bipolar")
    assert np.array_equal(multithreshold(2 * xnor_popcount_matmul(w3, x) - n, t3), ref)


@SET
@given(c=st.integers(1, 10), seed=st.integers(0, 2**32 - 1))
def test_folded_thresholds_on_scaled_integer_accumulator(c, seed):
    """Fixed-point input (scale 2^-7): integer thresholds agree with the float BN on every reachable acc."""
    rng = np.random.default_rng(seed)
    gamma, beta, mu, sigma = random_bn(rng, c, 1.0)
    acc = np.arange(-3000, 3001)[:, None]
    ref = bn_sign(acc * 2.0**-7, gamma, beta, mu, sigma)
    f = bn_to_thresholds(gamma, beta, mu, sigma, scale=2.0**-7)
    assert np.array_equal(f.apply(acc), ref)
    wi = rng.integers(-7, 8, (c, 4))
    w2, t2 = fold_flips_into_weights(wi, f, "int", 4)
    assert np.array_equal(w2, np.where(f.flip[:, None], -wi, wi))
    assert np.array_equal(multithreshold(np.where(f.flip, -acc, acc), t2), ref)


def test_threshold_is_ceiling_for_positive_gamma():
    f = bn_to_thresholds(1.0, 0.0, 2.5, 1.0)  # T = 2.5 -> acc >= 3
    assert f.thresholds.tolist() == [3] and not f.flip[0]
    f = bn_to_thresholds(-1.0, 0.0, 2.5, 1.0)  # acc <= 2.5 -> acc <= 2
    assert f.thresholds.tolist() == [2] and f.flip[0]
    f = bn_to_thresholds(1.0, 0.0, 3.0, 1.0)  # tie at T: y = 0 -> +1
    assert f.apply(np.array([[3]])).tolist() == [[1]] and f.apply(np.array([[2]])).tolist() == [[0]]
    f = bn_to_thresholds(1.0, 0.5, 2.0, 1.0, domain="popcount", n=10)  # dot >= 1.5 -> dot >= 2 -> P >= 6
    assert f.thresholds.tolist() == [6]
    f = bn_to_thresholds([0.0, 0.0], [0.5, -0.5], 0.0, 1.0, domain="popcount", n=10)
    assert f.thresholds.tolist() == [0, 11] and f.const.tolist() == [1, -1]
    assert f.as_multithreshold().shape == (2, 1)


def test_bn_to_thresholds_errors():
    with pytest.raises(ConfigError, match="sigma"):
        bn_to_thresholds(1.0, 0.0, 0.0, 0.0)
    with pytest.raises(ConfigError, match="n"):
        bn_to_thresholds(1.0, 0.0, 0.0, 1.0, domain="popcount")
    with pytest.raises(ConfigError, match="beta"):
        bn_to_thresholds(np.ones(3), np.ones(2), 0.0, 1.0)
    with pytest.raises(ConfigError, match="flip"):
        bn_to_thresholds(-1.0, 0.0, 0.0, 1.0).as_multithreshold()

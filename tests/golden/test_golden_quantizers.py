"""Binary/ternary/SYQ quantizers and the integer affine matrix product."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qnnfab.errors import ConfigError
from qnnfab.golden import (affine_dequantize, affine_matmul, affine_quantize, binary_quantize, choose_affine_params,
                           quantize_multiplier, rounding_divide_by_pot, rounding_doubling_high_mul, sign_quantize,
                           syq_quantize, ternary_quantize, xnor_net_quantize)

SET = settings(max_examples=50, deadline=None)


def test_sign_and_ternary_thresholds():
    w = np.array([[-0.7, -0.2, 0.0, 0.3, 0.9]])
    assert sign_quantize(w).tolist() == [[-1, -1, 1, 1, 1]]
    assert sign_quantize(w, 0.5).tolist() == [[-1, 0, 0, 0, 1]]
    q, a = ternary_quantize(w, 0.5)
    assert q.tolist() == [[-1, 0, 0, 0, 1]] and np.allclose(a, [[0.8]])
    bits, alpha = binary_quantize(w)
    assert bits.tolist() == [[0, 0, 1, 1, 1]] and np.allclose(alpha, [[np.abs(w).mean()]])
    q, a = xnor_net_quantize(w)
    assert np.allclose(a, np.abs(w).mean(axis=1, keepdims=True))


@SET
@given(rows=st.integers(1, 5), groups=st.sampled_from([1, 3, 9]), eta=st.sampled_from([0.0, 0.3]),
       seed=st.integers(0, 2**32 - 1))
def test_syq_alpha_is_least_squares_per_group(rows, groups, eta, seed):
    w = np.random.default_rng(seed).normal(0, 1, (rows, 18))
    for gran in ("layer", "row", "pixel"):
        q, alpha = syq_quantize(w, eta, gran, groups)
        full = np.repeat(alpha, 18 // groups, axis=1) if gran == "pixel" else np.broadcast_to(alpha, w.shape)
        # least squares: no other scale per group gives a smaller error
        err = ((w - full * q) ** 2).sum()
        for f in (0.9, 1.1):
            assert err <= ((w - f * full * q) ** 2).sum() + 1e-12
        assert set(np.unique(q).tolist()) <= ({-1, 1} if eta == 0 else {-1, 0, 1})


def test_syq_errors():
    with pytest.raises(ConfigError, match="groups"):
        syq_quantize(np.zeros((2, 10)), 0.0, "pixel", 3)
    with pytest.raises(ConfigError, match="granularity"):
        syq_quantize(np.zeros((2, 10)), 0.0, "channel")
    with pytest.raises(ConfigError, match="eta"):
        ternary_quantize(np.zeros((2, 2)), 0.0)


def test_gemmlowp_primitives():
    assert rounding_doubling_high_mul(np.array([2**30]), 2**30).tolist() == [2**29]
    assert rounding_doubling_high_mul(np.array([-(2**31)]), -(2**31)).tolist() == [2**31 - 1]
    assert rounding_divide_by_pot(np.array([5, 6, -5, -6, 7]), 2).tolist() == [1, 2, -1, -2, 2]
    for m in (0.3, 0.0001234, 0.75, 0.5):
        m0, sh = quantize_multiplier(m)
        assert 2**30 <= m0 < 2**31 and abs(m0 * 2.0**-31 * 2.0**-sh - m) < m * 2**-29


@SET
@given(m=st.integers(1, 6), k=st.integers(1, 50), n=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_affine_matmul_matches_float_within_one_step(m, k, n, seed):
    rng = np.random.default_rng(seed)
    r1 = rng.normal(0.5, 1, (m, k))
    r2 = rng.normal(-0.2, 0.5, (k, n))
    p1 = choose_affine_params(r1.min(), r1.max())
    p2 = choose_affine_params(r2.min(), r2.max())
    q1, q2 = affine_quantize(r1, p1), affine_quantize(r2, p2)
    real = affine_dequantize(q1, p1) @ affine_dequantize(q2, p2)
    p3 = choose_affine_params(real.min() - 1, real.max() + 1)
    q3, acc = affine_matmul(q1, p1, q2, p2, p3)
    assert np.array_equal(acc, (q1 - p1.zero_point) @ (q2 - p2.zero_point))
    assert np.all(np.abs(q3 - affine_quantize(real, p3)) <= 1)

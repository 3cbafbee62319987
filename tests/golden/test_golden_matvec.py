"""Quantized matrix-vector products against plain Python loops."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qnnfab.errors import ConfigError
from qnnfab.golden import binary_weight_matvec, exact_matmul, int_matvec, quantized_matvec, ternary_matvec
from qnnfab.kinds import DataKind

SET = settings(max_examples=60, deadline=None)
KIND = st.sampled_from([("bipolar", None), ("ternary", None), ("uint", 1), ("uint", 4), ("uint", 8),
                        ("int", 2), ("int", 8), ("int", 16), ("uint", 30)])


def value(v, kind):
    return 2 * int(v) - 1 if kind == "bipolar" else int(v)


def slow_matvec(w, x, wk, xk):
    return [sum(value(w[m][i], wk) * value(x[i], xk) for i in range(len(x))) for m in range(len(w))]


@SET
@given(m=st.integers(1, 6), n=st.integers(1, 140), wk=KIND, xk=KIND, seed=st.integers(0, 2**32 - 1))
def test_quantized_matvec_matches_loops(m, n, wk, xk, seed):
    rng = np.random.default_rng(seed)
    wlo, whi = DataKind.of(*wk).stored_range
    xlo, xhi = DataKind.of(*xk).stored_range
    w = rng.integers(wlo, whi + 1, (m, n))
    x = rng.integers(xlo, xhi + 1, (3, n))
    # push extremes in, they set the accumulator bound
    w[0, 0], x[0, 0] = wlo, xlo
    bound = n * max(abs(wlo), abs(whi), 1) * max(abs(xlo), abs(xhi), 1)
    if bound >= 2**63:
        with pytest.raises(ConfigError, match="64-bit"):
            quantized_matvec(w, x, wk[0], xk[0], wk[1], xk[1])
        return
    got = quantized_matvec(w, x, wk[0], xk[0], wk[1], xk[1])
    assert got.dtype == np.int64
    for j in range(3):
        assert got[j].tolist() == slow_matvec(w, x[j], wk[0], xk[0])
    assert quantized_matvec(w, x[1], wk[0], xk[0], wk[1], xk[1]).tolist() == slow_matvec(w, x[1], wk[0], xk[0])


def test_named_wrappers():
    rng = np.random.default_rng(0)
    wb = rng.integers(0, 2, (5, 27))
    x = rng.integers(-128, 128, 27)
    assert binary_weight_matvec(wb, x, "int", 8).tolist() == slow_matvec(wb, x, "bipolar", "int")
    wt = rng.integers(-1, 2, (5, 27))
    xu = rng.integers(0, 16, 27)
    assert ternary_matvec(wt, xu, "uint", 4).tolist() == slow_matvec(wt, xu, "ternary", "uint")
    wi = rng.integers(-8, 8, (5, 27))
    assert int_matvec(wi, xu, 4, 4).tolist() == slow_matvec(wi, xu, "int", "uint")


def test_exact_matmul_large_values_use_int64_path():
    w = np.array([[2**40 + 1, -(2**40)]])
    x = np.array([[2**20 + 3, 2**20 + 1]])
    assert exact_matmul(x, w).tolist() == [[(2**40 + 1) * (2**20 + 3) - (2**40) * (2**20 + 1)]]
    w = np.array([[2**26 + 1]])
    x = np.array([[3]])
    assert exact_matmul(x, w).tolist() == [[3 * (2**26 + 1)]]  # beyond float32, exact via float64


def test_out_of_range_and_bad_shapes():
    with pytest.raises(ConfigError, match="quantized_matvec"):
        quantized_matvec([[2, 0]], [1, 1], "bipolar", "bipolar")
    with pytest.raises(ConfigError, match="x"):
        quantized_matvec([[1, 0]], [1, 1, 1], "bipolar", "bipolar")
    with pytest.raises(ConfigError, match="bits"):
        quantized_matvec([[1, 0]], [1, 1], "bipolar", "uint")
    with pytest.raises(ConfigError):
        quantized_matvec([[1, 0]], [16, 1], "bipolar", "uint", None, 4)
    with pytest.raises(ConfigError):
        quantized_matvec([1, 0], [1, 1], "bipolar", "bipolar")

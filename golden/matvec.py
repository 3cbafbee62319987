"""Quantized matrix-vector products, exact in integers.

Operands are integer arrays of a data kind (:class:`qnnfab.kinds.DataKind`:
"bipolar" bits read as -1/+1, "ternary", k-bit "uint" and "int").

Layouts: weights ``w`` are (M, N), row m = output channel m (for a
convolution, the (ky, kx, c) im2col column order, see conv.py); activations
``x`` are (N,) or (..., N). Results are int64 (..., M): the integer dot
products ``sum_i value(w[m, i]) * value(x[i])``.

The hardware kinds: bipolar x bipolar (XNOR-popcount, see bits.py; the
hardware accumulator there is the popcount P, dot = 2P - N), bipolar or
ternary weights x uint/int activations (add/subtract; CNV's first layer takes
int8 pixels), int weights x uint activations. The golden model accepts any
combination.
"""

import numpy as np

from qnnfab.kinds import DataKind

from ._util import ConfigError, as_int_array

__all__ = ["to_values", "exact_matmul", "quantized_matvec", "binary_weight_matvec", "ternary_matvec", "int_matvec"]


def to_values(a, kind, bits=None, where="to_values", field="x", check=True):
    """Stored integers of ``kind`` (``bits`` wide) -> int64 arithmetic values (bipolar bits map to -1/+1)."""
    a = as_int_array(a, where, field)
    dk = DataKind.of(kind, bits, where)
    if check:
        dk.check_stored(a, where, field, f"{kind}{'' if bits is None else bits} data")
    return dk.values(a)


def exact_matmul(x, w, max_abs_x=None, max_abs_w=None):
    """Exact integer product ``x @ w.T``: x (..., N), w (M, N) -> int64 (..., M).

    Uses float32 BLAS when every partial sum is an integer below 2^24 in
    magnitude (N * max|x| * max|w| < 2^24), float64 BLAS below 2^53, and int64
    arithmetic otherwise, so the result is always exact. ``max_abs_*`` may be
    given to skip scanning the arrays.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ConfigError("exact_matmul", "x/w", f"need x (..., N) and w (M, N), got {x.shape} and {w.shape}",
                          "transpose or reshape so the reduced axis is last in both")
    n = w.shape[1]
    if max_abs_x is None:
        max_abs_x = int(np.abs(x).max()) if x.size else 0
    if max_abs_w is None:
        max_abs_w = int(np.abs(w).max()) if w.size else 0
    bound = int(n) * int(max_abs_x) * int(max_abs_w)
    if bound < 2**24:
        dt = np.float32
    elif bound < 2**53:
        dt = np.float64
    elif bound < 2**63:
        return np.matmul(x.astype(np.int64), w.astype(np.int64).T)
    else:
        raise ConfigError("exact_matmul", "x/w", f"sums can reach {bound} (N={n}, max|x|={max_abs_x}, "
                          f"max|w|={max_abs_w}), more than a 64-bit accumulator holds",
                          "use narrower weights/activations or split N")
    r = np.matmul(x.astype(dt), w.astype(dt).T)
    return r.astype(np.int64)


def quantized_matvec(w, x, w_kind, x_kind, w_bits=None, x_bits=None):
    """Integer matrix-vector product of quantized operands.

    ``w``: (M, N) stored weights of kind ``w_kind`` (width ``w_bits`` for
    "int"/"uint"); ``x``: (N,) or (..., N) stored activations of kind
    ``x_kind`` (width ``x_bits``). Values are range-checked. Returns int64
    (..., M) dot products of the *values* (bipolar bits read as -1/+1).
    """
    where = "quantized_matvec"
    w = np.asarray(w)
    x = np.asarray(x)
    if w.ndim != 2:
        raise ConfigError(where, "w", f"must be 2-D (M, N), got shape {w.shape}", "reshape to (out_channels, N)")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ConfigError(where, "x", f"last axis must be N = {w.shape[1]} (w is {w.shape}), got shape {x.shape}",
                          "pass x with layout (..., N)")
    wv = to_values(w, w_kind, w_bits, where, "w")
    xv = to_values(x, x_kind, x_bits, where, "x")
    return exact_matmul(xv, wv, DataKind.of(x_kind, x_bits).max_abs, DataKind.of(w_kind, w_bits).max_abs)


def binary_weight_matvec(w_bits, x, x_kind="uint", x_width=8):
    """Bipolar weights (bits, (M, N)) x integer activations (..., N) -> int64 (..., M).

    Each term adds x[i] when w bit is 1 and subtracts it when 0 (CNV layer 1:
    x_kind="int", x_width=8).
    """
    return quantized_matvec(w_bits, x, "bipolar", x_kind, None, x_width)


def ternary_matvec(w, x, x_kind="uint", x_width=8):
    """Ternary weights {-1,0,+1} (M, N) x integer activations (..., N) -> int64 (..., M)."""
    return quantized_matvec(w, x, "ternary", x_kind, None, x_width)


def int_matvec(w, x, w_width, x_width, x_kind="uint"):
    """Signed ``w_width``-bit weights (M, N) x ``x_kind`` ``x_width``-bit activations -> int64 (..., M)."""
    return quantized_matvec(w, x, "int", x_kind, w_width, x_width)

"""Quantized matrix-vector products, exact in integers.

Data kinds (a kind + a bit width k describe how an integer array is read):

===========  ==========================  =================================
kind         stored as                   value
===========  ==========================  =================================
"bipolar"    bits {0, 1}                 0 -> -1, 1 -> +1 (k = 1)
"ternary"    integers {-1, 0, +1}        itself (k = 2)
"uint"       integers [0, 2^k - 1]       itself
"int"        integers [-2^(k-1), 2^(k-1)-1]  itself (two's complement)
===========  ==========================  =================================

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

from ._util import ConfigError, as_int_array, check_range

__all__ = ["KINDS", "kind_range", "to_values", "exact_matmul", "quantized_matvec",
           "binary_weight_matvec", "ternary_matvec", "int_matvec"]

KINDS = ("bipolar", "ternary", "uint", "int")


def kind_range(kind, bits=None, where="kind_range"):
    """(lo, hi) of the *stored* integers of a data kind ("bipolar" stores bits)."""
    if kind == "bipolar":
        return 0, 1
    if kind == "ternary":
        return -1, 1
    if kind in ("uint", "int"):
        if bits is None or int(bits) < 1 or int(bits) > 62:
            raise ConfigError(where, "bits", f"kind {kind!r} needs a bit width 1..62, got {bits!r}",
                              "pass bits=k for k-bit data")
        k = int(bits)
        return (0, 2**k - 1) if kind == "uint" else (-(2 ** (k - 1)), 2 ** (k - 1) - 1)
    raise ConfigError(where, "kind", f"unknown data kind {kind!r}", f"use one of {KINDS}")


def value_range(kind, bits=None, where="value_range"):
    """(lo, hi) of the arithmetic *values* of a data kind."""
    if kind == "bipolar":
        return -1, 1
    return kind_range(kind, bits, where)


def to_values(a, kind, bits=None, where="to_values", field="x", check=True):
    """Stored integers -> int64 arithmetic values (bipolar bits map to -1/+1)."""
    a = as_int_array(a, where, field)
    lo, hi = kind_range(kind, bits, where)
    if check:
        check_range(a, lo, hi, where, field, f"{kind}{'' if bits is None else bits} data")
    a = a.astype(np.int64, copy=False)
    if kind == "bipolar":
        return 2 * a - 1
    return a


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
    wl, wh = value_range(w_kind, w_bits)
    xl, xh = value_range(x_kind, x_bits)
    return exact_matmul(xv, wv, max(abs(xl), abs(xh)), max(abs(wl), abs(wh)))


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

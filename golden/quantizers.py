"""Weight quantizers (binary, ternary, SYQ, XNOR-Net scaling) and integer affine quantization.

Binary / ternary (SYQ, Faraone et al. 2018): ``Q = sign(W) * M`` with
``M = |W| >= eta`` and sign(0) = +1; eta = 0 gives binary {-1, +1} (every
|W| >= 0), eta > 0 ternary {-1, 0, +1}. The real weights are approximated by
``alpha * Q`` with one alpha per layer, per row (output channel) or per
group of columns ("pixel" groups of a conv row: the KH*KW*IFM columns split
into ``groups`` equal parts). alpha is the least-squares scale
``sum |W| M / sum M`` over the group (XNOR-Net: alpha = mean |W| per filter,
the binary case). Layout: W is (rows, cols) float, rows = output channels.

Affine (Jacob et al. 2018): ``r = S (q - Z)`` with q unsigned ``bits``-bit,
Z an integer in range. The integer matrix product of two affine tensors into
a third::

    acc = K Z1 Z2 - Z1 sum_k q2[k, n] - Z2 sum_k q1[m, k] + sum_k q1[m, k] q2[k, n]   (int32)
    q3  = Z3 + M * acc,   M = S1 S2 / S3 = M0 * 2^-31 * 2^-shift,  M0 in [2^30, 2^31)

the multiplication by M done as gemmlowp does it: SaturatingRoundingDoublingHighMul
by M0, then RoundingDivideByPOT(shift), then + Z3 and saturation to the
output range.
"""

from dataclasses import dataclass

import numpy as np

from ._util import ConfigError

__all__ = ["sign_quantize", "syq_quantize", "binary_quantize", "ternary_quantize", "xnor_net_quantize",
           "AffineParams", "choose_affine_params", "affine_quantize", "affine_dequantize", "quantize_multiplier",
           "rounding_doubling_high_mul", "rounding_divide_by_pot", "affine_matmul"]


def _w2d(w, where):
    w = np.asarray(w, np.float64)
    if w.ndim != 2:
        raise ConfigError(where, "w", f"must be 2-D (rows, cols), got shape {w.shape}",
                          "reshape conv weights with conv_weights_to_matrix")
    return w


def sign_quantize(w, eta=0.0):
    """Q = sign(W) * (|W| >= eta) as int8 (any shape); sign(0) = +1."""
    w = np.asarray(w, np.float64)
    if eta < 0:
        raise ConfigError("sign_quantize", "eta", f"must be >= 0, got {eta}")
    q = np.where(w >= 0, 1, -1).astype(np.int8)
    return np.where(np.abs(w) >= eta, q, 0).astype(np.int8)


def syq_quantize(w, eta=0.0, granularity="layer", groups=1):
    """SYQ: returns (Q int8 (rows, cols), alpha float64 broadcastable to Q).

    ``granularity``: "layer" (alpha shape (1, 1)), "row" ((rows, 1)) or
    "pixel" ((rows, groups), each applying to cols/groups consecutive columns;
    expand with ``np.repeat(alpha, cols // groups, axis=1)``).
    Groups with no nonzero Q get alpha = 0.
    """
    where = "syq_quantize"
    w = _w2d(w, where)
    q = sign_quantize(w, eta)
    m = (q != 0).astype(np.float64)
    aw = np.abs(w) * m
    if granularity == "layer":
        num, den = aw.sum(keepdims=True), m.sum(keepdims=True)
    elif granularity == "row":
        num, den = aw.sum(axis=1, keepdims=True), m.sum(axis=1, keepdims=True)
    elif granularity == "pixel":
        g = int(groups)
        if g < 1 or w.shape[1] % g:
            raise ConfigError(where, "groups", f"{g} groups do not divide the {w.shape[1]} columns",
                              "use a divisor of KH*KW*IFM (e.g. KH*KW)")
        r = w.shape[0]
        num = aw.reshape(r, g, -1).sum(axis=2)
        den = m.reshape(r, g, -1).sum(axis=2)
    else:
        raise ConfigError(where, "granularity", f"must be 'layer', 'row' or 'pixel', got {granularity!r}")
    alpha = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return q, alpha


def binary_quantize(w, granularity="row"):
    """Binary weights: (bits uint8 (1 = +1), alpha) with alpha = mean |W| per row or per layer."""
    q, alpha = syq_quantize(w, 0.0, granularity)
    return ((q + 1) // 2).astype(np.uint8), alpha


def ternary_quantize(w, eta, granularity="row"):
    """Ternary weights {-1, 0, +1} (int8) with the least-squares alpha of the nonzero entries."""
    if eta <= 0:
        raise ConfigError("ternary_quantize", "eta", f"must be > 0 for ternary weights, got {eta}",
                          "e.g. eta = 0.7 * mean |W| (TWN)")
    return syq_quantize(w, eta, granularity)


def xnor_net_quantize(w):
    """XNOR-Net: W ~ alpha * sign(W), alpha = mean |W| per filter (row). Returns (+-1 int8, alpha (rows, 1))."""
    w = _w2d(w, "xnor_net_quantize")
    return sign_quantize(w), np.abs(w).mean(axis=1, keepdims=True)


# ---------------------------------------------------------------------- affine (Jacob et al.)

@dataclass(frozen=True)
class AffineParams:
    """r = scale * (q - zero_point), q in [0, 2^bits - 1]."""

    scale: float
    zero_point: int
    bits: int = 8

    @property
    def qmin(self):
        return 0

    @property
    def qmax(self):
        return (1 << self.bits) - 1


def choose_affine_params(rmin, rmax, bits=8):
    """Scale and integer zero point so [rmin, rmax] (extended to include 0) maps onto [0, 2^bits - 1]."""
    rmin, rmax = min(float(rmin), 0.0), max(float(rmax), 0.0)
    qmax = (1 << int(bits)) - 1
    if rmax == rmin:
        return AffineParams(1.0, 0, int(bits))
    scale = (rmax - rmin) / qmax
    z = int(np.clip(np.round(-rmin / scale), 0, qmax))
    return AffineParams(scale, z, int(bits))


def affine_quantize(r, p):
    """q = clip(round(r / S) + Z, 0, 2^bits - 1) as int64 (round half to even, as np.round)."""
    q = np.round(np.asarray(r, np.float64) / p.scale) + p.zero_point
    return np.clip(q, p.qmin, p.qmax).astype(np.int64)


def affine_dequantize(q, p):
    """r = S (q - Z) as float64."""
    return p.scale * (np.asarray(q, np.float64) - p.zero_point)


def quantize_multiplier(m):
    """Real multiplier 0 < M < 1 -> (M0, shift): M ~ M0 * 2^-31 * 2^-shift, M0 in [2^30, 2^31)."""
    m = float(m)
    if not 0 < m < 1:
        raise ConfigError("quantize_multiplier", "M", f"must be in (0, 1), got {m}",
                          "choose S3 >= S1*S2 (M = S1*S2/S3)")
    shift = 0
    while m < 0.5:
        m *= 2
        shift += 1
    m0 = int(round(m * 2**31))
    if m0 == 2**31:  # m rounded up to 1.0
        if shift == 0:
            return 2**31 - 1, 0
        m0, shift = 2**30, shift - 1
    return m0, shift


def rounding_doubling_high_mul(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (int64 arrays): round(a*b / 2^31)."""
    a = np.asarray(a, np.int64)
    ab = a * np.int64(b)
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C integer division truncates toward zero
    res = np.where(s >= 0, s >> 31, -((-s) >> 31))
    sat = (a == -(2**31)) & (np.int64(b) == -(2**31))
    return np.where(sat, 2**31 - 1, res).astype(np.int64)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero."""
    x = np.asarray(x, np.int64)
    e = int(exponent)
    if e == 0:
        return x
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def affine_matmul(q1, p1, q2, p2, p3):
    """Integer-only product of affine tensors (Jacob et al. eq. 7-9).

    ``q1``: (M, K) uint codes of ``p1``; ``q2``: (K, N) codes of ``p2``;
    ``p3``: output params. Returns (q3 int64 (M, N), acc int64 (M, N) the
    int32 accumulator). The result approximates
    ``affine_quantize(affine_dequantize(q1) @ affine_dequantize(q2), p3)``
    within one step of q3.
    """
    where = "affine_matmul"
    q1 = np.asarray(q1, np.int64)
    q2 = np.asarray(q2, np.int64)
    if q1.ndim != 2 or q2.ndim != 2 or q1.shape[1] != q2.shape[0]:
        raise ConfigError(where, "q1/q2", f"need (M, K) and (K, N), got {q1.shape} and {q2.shape}")
    for q, p, nm in ((q1, p1, "q1"), (q2, p2, "q2")):
        if q.size and (q.min() < p.qmin or q.max() > p.qmax):
            raise ConfigError(where, nm, f"codes outside [{p.qmin}, {p.qmax}]", "quantize with affine_quantize")
    k = q1.shape[1]
    z1, z2 = p1.zero_point, p2.zero_point
    acc = (k * z1 * z2 - z1 * q2.sum(axis=0)[None, :] - z2 * q1.sum(axis=1)[:, None]
           + np.matmul(q1.astype(np.float64), q2.astype(np.float64)).astype(np.int64))
    if np.abs(acc).max(initial=0) >= 2**31:
        raise ConfigError(where, "K", f"int32 accumulator overflows for K = {k}", "split the reduction")
    m0, shift = quantize_multiplier(p1.scale * p2.scale / p3.scale)
    y = rounding_divide_by_pot(rounding_doubling_high_mul(acc, m0), shift)
    q3 = np.clip(y + p3.zero_point, p3.qmin, p3.qmax)
    return q3.astype(np.int64), acc

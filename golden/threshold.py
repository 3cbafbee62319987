"""Multi-threshold activations and batch-norm + sign folding.

Activation semantics (QONNX MultiThreshold, FINN): the output of a
thresholding stage is the number of thresholds the accumulator is >= to;
thresholds are sorted ascending per channel. A binary (bipolar) activation is
the single-threshold case: output bit 1 (+1) iff acc >= T.

Batch-norm + sign: ``y = gamma * (x - mu) / sigma + beta`` (``sigma`` is the
standard deviation, i.e. sqrt(running_var + eps)), output +1 iff y >= 0
(BinaryNet: sign(0) = +1). ``x = scale * d`` is the real value of the layer's
integer dot product ``d``. See :func:`bn_to_thresholds`.
"""

from dataclasses import dataclass

import numpy as np

from ._util import ConfigError, as_int_array

__all__ = ["multithreshold", "bn_sign", "bn_to_thresholds", "FoldedBN", "fold_flips_into_weights",
           "check_thresholds"]

_I64 = np.iinfo(np.int64)


def check_thresholds(thresholds, channels=None, where="multithreshold"):
    """Validate a (C, N) or (1, N) threshold array sorted ascending per row; return it."""
    t = np.asarray(thresholds)
    if t.ndim == 1:
        raise ConfigError(where, "thresholds", f"must be 2-D (C, N), got shape {t.shape}",
                          "use thresholds[:, None] for one threshold per channel")
    if t.ndim != 2:
        raise ConfigError(where, "thresholds", f"must be 2-D (C, N), got shape {t.shape}", "reshape to (C, N)")
    if not (np.issubdtype(t.dtype, np.integer) or np.issubdtype(t.dtype, np.floating)):
        raise ConfigError(where, "thresholds", f"must be numeric, got dtype {t.dtype}")
    if channels is not None and t.shape[0] not in (1, channels):
        raise ConfigError(where, "thresholds", f"has {t.shape[0]} rows but the accumulator has {channels} channels",
                          "pass one row per channel (or one row shared by all)")
    if t.shape[1] > 1 and np.any(np.diff(t, axis=1) < 0):
        bad = int(np.nonzero(np.any(np.diff(t, axis=1) < 0, axis=1))[0][0])
        raise ConfigError(where, "thresholds", f"row {bad} is not sorted ascending", "np.sort(thresholds, axis=1)")
    return t


def multithreshold(acc, thresholds, out_scale=1, out_bias=0, check=True):
    """QONNX MultiThreshold: ``out_scale * count(acc >= T_i) + out_bias``.

    ``acc``: (..., C) integers (floats allowed), channel last.
    ``thresholds``: (C, N) or (1, N) (shared), sorted ascending per row.
    Returns int64 (..., C) counts in [0, N] (scaled and biased when
    ``out_scale``/``out_bias`` are given; a bipolar output in value form uses
    scale 2, bias -1). ``check=False`` skips validation (inner loops).
    """
    a = np.asarray(acc)
    if a.ndim < 1:
        raise ConfigError("multithreshold", "acc", "needs a channel axis: layout (..., C)", "use acc[..., None]")
    if check:
        t = check_thresholds(thresholds, a.shape[-1])
    else:
        t = np.asarray(thresholds)
    n = t.shape[1]
    if n <= 16:
        out = np.zeros(a.shape, np.int64)
        for i in range(n):
            out += a >= t[:, i]
    else:  # many thresholds: binary search per channel
        out = np.empty(a.shape, np.int64)
        if t.shape[0] == 1:
            out[...] = np.searchsorted(t[0], a, side="right")
        else:
            for c in range(a.shape[-1]):
                out[..., c] = np.searchsorted(t[c], a[..., c], side="right")
    if out_scale != 1:
        out = out * out_scale
    if out_bias != 0:
        out = out + out_bias
    return out


def _bn_params(gamma, beta, mu, sigma, where):
    ps = [np.atleast_1d(np.asarray(p, np.float64)) for p in (gamma, beta, mu, sigma)]
    c = max(p.shape[0] for p in ps)
    out = []
    for name, p in zip(("gamma", "beta", "mu", "sigma"), ps):
        if p.ndim != 1 or p.shape[0] not in (1, c):
            raise ConfigError(where, name, f"must be a scalar or shape (C,) = ({c},), got {p.shape}",
                              "pass one value per output channel")
        if not np.all(np.isfinite(p)):
            raise ConfigError(where, name, "contains NaN or infinity", "pass finite BN parameters")
        out.append(np.broadcast_to(p, (c,)).copy())
    if np.any(out[3] <= 0):
        raise ConfigError(where, "sigma", "must be > 0 (the standard deviation sqrt(var + eps))",
                          "pass sqrt(running_var + eps)")
    return out


def _bn_eval(d, gamma, beta, mu, sigma, scale):
    """The float BN expression, evaluated exactly as bn_sign does (float64)."""
    x = np.asarray(d, np.float64) * scale
    return gamma * (x - mu) / sigma + beta


def bn_sign(x, gamma, beta, mu, sigma):
    """Float reference of BN + sign: bits (..., C) uint8, 1 iff gamma*(x-mu)/sigma + beta >= 0.

    ``x``: (..., C) real BN inputs; parameters scalars or (C,).
    """
    g, b, m, s = _bn_params(gamma, beta, mu, sigma, "bn_sign")
    return (_bn_eval(x, g, b, m, s, 1.0) >= 0).astype(np.uint8)


@dataclass
class FoldedBN:
    """Integer form of BN + sign, per output channel c.

    ``thresholds``: (C,) int64. Output bit (1 = +1):
    ``acc >= thresholds[c]`` when ``flip[c]`` is False,
    ``acc <= thresholds[c]`` when ``flip[c]`` is True (gamma < 0).
    ``const``: (C,) int8, +1 / -1 for channels with gamma == 0 (constant
    sign(beta); their threshold already encodes it with flip False), 0 otherwise.
    ``domain``: "dot" (acc = integer dot product) or "popcount" (acc = XNOR
    popcount P, dot = 2P - n). ``acc_range``: (lo, hi) of the accumulator if
    known, used to clamp thresholds (always-true -> lo, always-false -> hi + 1).
    """

    thresholds: np.ndarray
    flip: np.ndarray
    const: np.ndarray
    domain: str
    n: int | None
    acc_range: tuple | None

    def apply(self, acc):
        """acc (..., C) -> uint8 bits (..., C)."""
        a = np.asarray(acc)
        ge = a >= self.thresholds
        le = a <= self.thresholds
        return np.where(self.flip, le, ge).astype(np.uint8)

    def as_multithreshold(self):
        """(C, 1) int64 thresholds for :func:`multithreshold`; only if no channel is flipped."""
        if np.any(self.flip):
            raise ConfigError("FoldedBN.as_multithreshold", "flip",
                              f"{int(self.flip.sum())} channels have gamma < 0 (acc <= T)",
                              "negate those weight rows with fold_flips_into_weights")
        return self.thresholds[:, None].copy()


def bn_to_thresholds(gamma, beta, mu, sigma, domain="dot", n=None, scale=1.0, acc_range=None):
    """Fold batch-norm + sign into one integer threshold per channel.

    Parameters: ``gamma, beta, mu, sigma`` float scalars or (C,) arrays
    (``sigma`` = sqrt(var + eps) > 0). The BN input is ``x = scale * d`` where
    ``d`` is the integer dot product of the layer (``scale`` > 0: e.g. 2^-F
    when activations are fixed point with F fraction bits; a scalar or one
    per channel, (C,), e.g. XNOR-Net's alpha = mean |W| of each row).
    ``domain``: "dot" -> thresholds on d; "popcount" -> thresholds on the
    XNOR popcount P of a bipolar x bipolar layer with ``n`` terms (d = 2P - n).
    ``acc_range``: optional (lo, hi) of the accumulator (defaults to (0, n)
    for popcount, (-n, n) for dot when n is given).

    Real threshold T = mu - sigma*beta/gamma. gamma > 0: +1 iff d >= T; the
    integer threshold is the smallest integer d whose float BN output is >= 0
    (i.e. ceil(T), corrected so it agrees with :func:`bn_sign` evaluated in
    float64 for every integer d). gamma < 0: +1 iff d <= T (flip). gamma == 0:
    constant sign(beta) (beta >= 0 -> +1). Returns a :class:`FoldedBN`.
    """
    where = "bn_to_thresholds"
    g, b, m, s = _bn_params(gamma, beta, mu, sigma, where)
    scale = np.asarray(scale, np.float64)
    if scale.ndim > 1 or (scale.ndim == 1 and scale.shape[0] != g.shape[0]) or not (
            np.all(scale > 0) and np.all(np.isfinite(scale))):
        raise ConfigError(where, "scale", f"must be a finite number > 0 or ({g.shape[0]},) of them, got {scale}",
                          "pass 2**-F for F fraction bits, or one positive scale per channel")
    if domain not in ("dot", "popcount"):
        raise ConfigError(where, "domain", f"must be 'dot' or 'popcount', got {domain!r}")
    if domain == "popcount" and (n is None or int(n) < 0):
        raise ConfigError(where, "n", "the popcount domain needs n = number of terms of the dot product",
                          "pass n=N (the input length of the layer)")
    if acc_range is None and n is not None:
        acc_range = (0, int(n)) if domain == "popcount" else (-int(n), int(n))
    C = g.shape[0]
    pos, neg, zero = g > 0, g < 0, g == 0
    lim = float(2**52)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_real = np.where(zero, 0.0, (m - s * b / np.where(zero, 1.0, g)) / scale)
    t_real = np.clip(t_real, -lim, lim)
    # gamma > 0: smallest d with bn(d) >= 0; gamma < 0: largest d with bn(d) >= 0
    t = np.where(neg, np.floor(t_real), np.ceil(t_real))
    for _ in range(64):
        y_t = _bn_eval(t, g, b, m, s, scale) >= 0
        y_prev = _bn_eval(t - 1, g, b, m, s, scale) >= 0
        y_next = _bn_eval(t + 1, g, b, m, s, scale) >= 0
        free = np.abs(t) < lim
        dec = free & ((pos & y_prev) | (neg & ~y_t))   # ge could be lower / le too high
        inc = free & ((pos & ~y_t) | (neg & y_next))   # ge too low / le could be higher
        if not (dec.any() or inc.any()):
            break
        t = t - dec + inc
    t = t.astype(np.int64)
    const = np.zeros(C, np.int8)
    const[zero] = np.where(b[zero] >= 0, 1, -1)
    if domain == "popcount":
        nn = int(n)
        # ge: 2P - n >= t  <=>  P >= ceil((t + n) / 2);  le: P <= floor((t + n) / 2)
        t = np.where(neg, np.floor_divide(t + nn, 2), -np.floor_divide(-(t + nn), 2))
    lo_s, hi_s = (_I64.min, _I64.max) if acc_range is None else (int(acc_range[0]), int(acc_range[1]) + 1)
    if acc_range is not None:
        lo, hi = int(acc_range[0]), int(acc_range[1])
        t = np.where(neg, np.clip(t, lo - 1, hi), np.clip(t, lo, hi + 1))
    t = np.where(const == 1, lo_s, np.where(const == -1, hi_s, t)).astype(np.int64)
    return FoldedBN(thresholds=t, flip=neg.copy(), const=const, domain=domain,
                    n=None if n is None else int(n), acc_range=None if acc_range is None else tuple(acc_range))


def fold_flips_into_weights(weights, folded, w_kind="bipolar", w_width=None):
    """FINN's trick: negate the weight rows of flipped channels so the hardware only needs acc >= T.

    ``weights``: (C, N) stored weights ("bipolar" bits are inverted, "ternary"
    and "int" values negated; an "int" row holding -2^(w_width-1) cannot be
    negated and raises). ``folded``: a :class:`FoldedBN` for the same C.
    Returns ``(new_weights, thresholds)`` with thresholds (C, 1) int64 such that
    ``multithreshold(acc_new, thresholds)`` equals ``folded.apply(acc_old)``:
    dot domain: acc <= T  <=>  -acc >= -T; popcount domain (P' = n - P):
    P <= T  <=>  P' >= n - T.
    """
    where = "fold_flips_into_weights"
    w = as_int_array(weights, where, "weights")
    if w.ndim != 2 or w.shape[0] != folded.thresholds.shape[0]:
        raise ConfigError(where, "weights", f"must be (C, N) with C = {folded.thresholds.shape[0]}, got {w.shape}",
                          "pass the weight matrix of the layer the BN follows")
    f = folded.flip
    neww = w.copy()
    if w_kind == "bipolar":
        neww[f] = 1 - w[f]
    elif w_kind in ("ternary", "int"):
        if w_kind == "int":
            if w_width is None:
                raise ConfigError(where, "w_width", "int weights need their bit width", "pass w_width=k")
            if np.any(w[f] == -(2 ** (int(w_width) - 1))):
                raise ConfigError(where, "weights", f"a flipped row holds -2^{int(w_width) - 1}, whose negation "
                                  f"does not fit in {w_width} bits", "widen the weights by one bit")
        neww[f] = -w[f]
    else:
        raise ConfigError(where, "w_kind", f"must be 'bipolar', 'ternary' or 'int', got {w_kind!r}")
    if folded.domain == "popcount" and w_kind != "bipolar":
        raise ConfigError(where, "w_kind", "the popcount domain only exists for bipolar weights",
                          "fold in the 'dot' domain")
    t = folded.thresholds.copy()
    if folded.domain == "dot":
        newt = np.where(f, -t, t)
    else:
        newt = np.where(f, folded.n - t, t)
    return neww, newt.astype(np.int64)[:, None]

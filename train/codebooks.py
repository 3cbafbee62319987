"""Weight codebooks and activation levels of the scaled quantization schemes (XNOR-Net, DoReFa, HWGQ, SYQ, TTQ).

Every function returns the *integer* code the hardware stores (float64
arrays holding integers) and, where the scheme has one, the real scale that
multiplies it; :mod:`qnnfab.train.trainer` trains through them and
:mod:`qnnfab.train.export` folds the scales into the thresholds. NumPy only.

- :func:`row_mean_abs`: XNOR-Net's alpha = mean |W| of each output channel
  (the least-squares scale of sign(W), Rastegari et al. 2016; also the
  initial value of SYQ's learned per-channel scales).
- :func:`dorefa_code`: DoReFa-Net's k-bit weights (Zhou et al. 2016)
  ``2 quantize_k(tanh(W) / (2 max|tanh W|) + 1/2) - 1`` as the odd integers
  ``2i - m`` (i = 0..m, m = 2^k - 1; the real weight is code / m).
- :func:`ttq_code`: TTQ's trained ternary weights (Zhu et al. 2016):
  ``+Wp`` where W > t max|W|, ``-Wn`` where W < -t max|W|, else 0, with the
  ratio Wp : Wn rounded to the integers qp : qn of a ``bits``-bit signed
  weight (qnnfab's hardware multiplies integers: an exact integer export
  needs the two scales in an integer ratio; their common positive factor
  is absorbed by the batch norm and the argmax).
- :func:`hwgq_step`: HWGQ's uniform activation step (Cai et al. 2017), the
  step Delta of the levels 0, Delta, ..., m Delta minimising the mean
  squared error of a unit Gaussian's positive half (x <= 0 -> 0 exactly).
- :func:`level_offsets`: the rounding points of an unsigned level
  activation, shared by training, inference and export.
"""

import functools
import math

import numpy as np

__all__ = ["TTQ_THRESHOLD", "row_mean_abs", "dorefa_code", "ttq_code", "hwgq_step", "level_offsets", "round_half_up"]

TTQ_THRESHOLD = 0.05      # TTQ: weights with |W| <= 0.05 max|W| of the layer are 0 (Zhu et al. 2016)


def round_half_up(x):
    """floor(x + 1/2): the rounding of every level quantizer here (as the inference thresholds j - 1/2)."""
    return np.floor(np.asarray(x, np.float64) + 0.5)


def row_mean_abs(w):
    """(rows,) mean |W| of each row (output channel) of (rows, cols) ``w``: XNOR-Net's alpha."""
    return np.abs(np.asarray(w, np.float64)).mean(axis=1)


def dorefa_code(w, bits):
    """DoReFa k-bit weights of ``w`` as (codes, d codes/m / dw): codes ``2i - m`` (odd, in [-m, m]),
    i = round_half_up(m * (tanh(w) / (2 max|tanh w|) + 1/2)); the derivative treats max|tanh w| as
    a constant and passes the rounding straight through. ``bits`` = 1 gives sign(w) (0 -> +1)."""
    m = (1 << int(bits)) - 1
    t = np.tanh(np.asarray(w, np.float64))
    top = float(np.max(np.abs(t))) if t.size else 0.0
    top = top if top > 0 else 1.0
    i = round_half_up((t / (2.0 * top) + 0.5) * m)
    return 2.0 * i - m, (1.0 - t * t) / top


def ttq_code(w, scales, bits, t=TTQ_THRESHOLD):
    """TTQ weights of ``w`` with the learned scales ``(Wp, Wn)``: (codes in [-M, M], pos mask, neg mask).

    M = 2^(bits-1) - 1; codes qp where w > delta, -qn where w < -delta, else
    0, with delta = t max|w| and (qp, qn) = round_half_up(M (Wp, Wn) / max(|Wp|, |Wn|)).
    """
    w = np.asarray(w, np.float64)
    delta = t * float(np.max(np.abs(w))) if w.size else 0.0
    pos, neg = w > delta, w < -delta
    wp, wn = float(scales[0]), float(scales[1])
    top = max(abs(wp), abs(wn))
    big = (1 << (int(bits) - 1)) - 1
    qp, qn = (float(round_half_up(big * wp / top)), float(round_half_up(big * wn / top))) if top > 0 else (0.0, 0.0)
    return np.where(pos, qp, 0.0) - np.where(neg, qn, 0.0), pos, neg


def _half_gaussian_mse(step, m, x, pdf, dx):
    q = step * np.minimum(round_half_up(x / step), m)
    return float(np.sum((q - x) ** 2 * pdf) * dx)


@functools.lru_cache(maxsize=None)
def hwgq_step(bits):
    """HWGQ's uniform step for ``bits``-bit activations (m = 2^bits - 1 nonzero levels): the Delta minimising
    E[(Q(x) - x)^2 ; x > 0] for x ~ N(0, 1), Q(x) = Delta min(m, round_half_up(x / Delta)) (numerical
    integration on [0, 10], golden-section search on [0.01, 4])."""
    m = (1 << int(bits)) - 1
    x = np.linspace(0.0, 10.0, 200001)
    dx = x[1] - x[0]
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    lo, hi = 0.01, 4.0
    g = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if _half_gaussian_mse(a, m, x, pdf, dx) <= _half_gaussian_mse(b, m, x, pdf, dx):
            hi = b
        else:
            lo = a
    return round(0.5 * (lo + hi), 6)


def level_offsets(m, step=None):
    """The m rounding points of an unsigned level activation: level = #{j : y >= offset_j}.

    ``step`` None: (j - 1/2) / m (levels j/m in [0, 1], DoReFa / PACT);
    else (j - 1/2) * step (HWGQ levels j * step); j = 1..m.
    """
    if step is None:
        return [(j - 0.5) / m for j in range(1, m + 1)]
    return [(j - 0.5) * step for j in range(1, m + 1)]

"""Low-precision training on the systolic array's arithmetic (Gupta et al., ICML 2015).

A float-architecture MLP (Dense -> ReLU ..., Dense -> softmax cross-entropy,
biases, plain mini-batch SGD, Glorot-uniform initialisation; no BN and no
binarization) trained either in float32 (the baseline) or in fixed point
``<WL, FL>`` (``FixedFormat(WL - FL, FL)``), where:

- every matrix product of training -- forward ``z = h W^T``, backward
  ``dh = dz W`` and weight gradient ``dW = dz^T h`` -- is computed by the
  golden model of the R x C systolic array (:func:`qnnfab.golden.systolic_matmul`):
  operands are ``<WL, FL>`` codes, products are accumulated exactly in the
  wide accumulator, and the output stage drops ``D = FL`` bits with the chosen
  rounding (stochastic: the array's own per-column LFSR lanes) and saturates
  to ``<WL, FL>``. The array is one machine that runs on: its lanes continue
  from one product to the next (:class:`ArrayModel` counts the output words
  since reset and passes them as ``lfsr_start``);
- weights and biases are stored as ``<WL, FL>`` codes; an update
  ``w - lr * g`` is computed exactly with ``lr`` in ``LR_FRAC`` fraction bits
  and rounded back to ``<WL, FL>`` with the chosen rounding (stochastic: a
  NumPy generator seeded from ``seed``; the update is not an array product),
  then saturated;
- the elementwise steps are exact on codes (bias add and saturation, ReLU and
  its mask; a layer output saturated at a bound passes no gradient that
  would push it further out); the softmax of ``LOGIT_SCALE`` x scores and its
  gradient ``LOGIT_SCALE (p - onehot) / B`` are computed in float64 and
  quantized to ``<WL, FL>`` with the chosen rounding (the host-side loss
  layer; the scale lets confident scores stay inside <16,14>'s [-2, 2));
  inputs are pixels / (2^pixel_bits - 1),
  quantized with round-to-nearest.

Round-to-nearest makes every update smaller than half an ulp (2^-(FL+1))
vanish, so training stalls at short FL; stochastic rounding keeps them in
expectation and tracks float32 (the seed's figure; bench:
bench/bench_fixed_point_training.py).

Determinism: the same ``seed`` (initialisation, shuffling, update rounding)
and array (LFSR seed) give the same codes bit for bit.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.golden.fixedpoint import FixedFormat, quantize, saturate, shift_round, to_float
from qnnfab.golden.systolic import systolic_matmul

__all__ = ["ROUNDINGS", "LR_FRAC", "ArraySpec", "ArrayModel", "FixedTrainResult", "parse_fixed_point",
           "train_fixed_point", "round_update"]

ROUNDINGS = ("stochastic", "nearest")
LR_FRAC = 20          # fraction bits of the learning rate in the exact update product
LOGIT_SCALE = 4.0     # softmax of 4 x scores: confident outputs stay inside <16,14>'s range [-2, 2)
DEFAULT_LR = 0.1      # SGD learning rate (the digits MLP trains in ~20 epochs in float32 with it)


@dataclass(frozen=True)
class ArraySpec:
    """The systolic array the products run on: R x C, LFSR width and base seed of its rounding lanes.

    Default: the 8 x 8 array of the bench figures (bench/bench_systolic.py),
    a 24-bit LFSR (> D for every FL <= 23), lanes advancing D steps per output
    word (the RTL default).
    """

    rows: int = 8
    cols: int = 8
    lfsr_width: int = 24
    lfsr_seed: int = 0x1D2C


class ArrayModel:
    """One systolic array computing ``<WL, FL>`` products with ``rounding``, its LFSR lanes running on.

    ``matmul(a, b)``: (M, K) and (K, N) codes -> (M, N) codes of ``fmt``
    (exact wide accumulation, D = FL bits dropped with the rounding, saturated).
    ``words``: output words emitted since reset (the next product's
    ``lfsr_start``). ``record``: if a list, every product is appended as a
    dict (a, b, lfsr_start, values) -- operands for a check on the hardware.
    """

    def __init__(self, fmt, rounding, spec=ArraySpec(), record=None):
        self.fmt, self.rounding, self.spec, self.record = fmt, rounding, spec, record
        self.words = 0

    def matmul(self, a, b):
        s = self.spec
        res = systolic_matmul(a, b, self.fmt, self.fmt, self.fmt, s.rows, s.cols, rounding=self.rounding,
                              lfsr_width=s.lfsr_width, lfsr_seed=s.lfsr_seed, lfsr_start=self.words)
        if self.record is not None:
            self.record.append(dict(a=np.array(a), b=np.array(b), lfsr_start=self.words, values=res.values))
        self.words += res.words
        return res.values


def parse_fixed_point(text, where="train", field_name="fixed_point"):
    """"WL,FL" (or a (WL, FL) pair) -> FixedFormat(WL - FL, FL); ConfigError names what is wrong.

    Needs 2 <= WL <= 24 (operands of one DSP48E1-sized multiplier side, and
    WL + WL + log2 K within the 48-bit accumulator for the digits MLP) and
    1 <= FL <= WL - 2 (at least a sign and one integer bit: ReLU outputs and
    weights around 1 must be representable).
    """
    fix = "e.g. 16,14 (WL 16 bits, FL 14 fraction bits)"
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
            raise ConfigError(where, field_name, f"{text!r} is not WL,FL", fix)
        wl, fl = int(parts[0]), int(parts[1])
    else:
        try:
            wl, fl = (int(v) for v in text)
        except (TypeError, ValueError):
            raise ConfigError(where, field_name, f"{text!r} is not a (WL, FL) pair", fix) from None
    if not 2 <= wl <= 24:
        raise ConfigError(where, field_name, f"WL must be 2..24, got {wl}", fix)
    if not 1 <= fl <= wl - 2:
        raise ConfigError(where, field_name, f"FL must be 1..WL-2 = {wl - 2} (sign and one integer bit), got {fl}",
                          fix)
    return FixedFormat(wl - fl, fl)


def round_update(w, g, lr, fmt, rounding, rng):
    """``w - lr * g`` on codes of ``fmt``, rounded to ``fmt`` with ``rounding`` and saturated.

    ``lr`` is taken as ``lr_code = round(lr * 2^LR_FRAC)``; the exact value
    ``w * 2^LR_FRAC - lr_code * g`` drops LR_FRAC bits (stochastic: uniform
    LR_FRAC-bit words from ``rng``).
    """
    lr_code = int(round(lr * (1 << LR_FRAC)))
    acc = (np.asarray(w, np.int64) << LR_FRAC) - lr_code * np.asarray(g, np.int64)
    rnd = rng.integers(0, 1 << LR_FRAC, acc.shape) if rounding == "stochastic" else None
    return shift_round(acc, LR_FRAC, rounding, rnd, fmt.width)


@dataclass
class FixedTrainResult:
    """A trained fixed-point (or float32) MLP: weights/biases as codes of ``fmt`` (float32 when fmt is None)."""

    fmt: object
    rounding: str
    sizes: tuple
    weights: list
    biases: list
    pixel_bits: int
    history: dict = field(default_factory=dict)
    test_acc: float = float("nan")
    train_acc: float = float("nan")
    seconds: float = 0.0
    array_words: int = 0

    @property
    def label(self):
        return "float32" if self.fmt is None else f"<{self.fmt.width},{self.fmt.F}> {self.rounding}"


def _forward(net, x, arr, fmt):
    """Forward pass. Returns (scores as float64, cache of (input, z) per layer)."""
    cache = []
    h = x
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        if fmt is None:
            z = h @ w.T + b
        else:
            z = saturate(arr.matmul(h, w.T) + b, fmt.width)
        cache.append((h, z))
        h = np.maximum(z, 0) if i < len(net.weights) - 1 else z
    return (h.astype(np.float64) if fmt is None else to_float(h, fmt)), cache


def _inputs(x, pixel_bits, fmt):
    v = np.asarray(x, np.float64) / ((1 << pixel_bits) - 1)
    return v.astype(np.float32) if fmt is None else quantize(v, fmt, "nearest")


def _step(net, x, y, lr, arr, fmt, rounding, rng):
    B = len(y)
    out, cache = _forward(net, x, arr, fmt)
    out = out * LOGIT_SCALE
    sh = out - out.max(1, keepdims=True)
    p = np.exp(sh)
    p /= p.sum(1, keepdims=True)
    loss = float(-np.mean(np.log(p[np.arange(B), y] + 1e-300)))
    onehot = np.zeros_like(p)
    onehot[np.arange(B), y] = 1.0
    dout = LOGIT_SCALE * (p - onehot) / B
    if fmt is None:
        dz = dout.astype(np.float32)
    elif rounding == "stochastic":
        dz = quantize(dout, fmt, "stochastic", rng=rng)
    else:
        dz = quantize(dout, fmt, "nearest")
    for i in range(len(net.weights) - 1, -1, -1):
        h, z = cache[i]
        w = net.weights[i]
        if fmt is not None:
            dz = _stop_at_saturation(dz, z, fmt)
        if fmt is None:
            gw, gb = dz.T @ h, dz.sum(0)
            dh = dz @ w if i else None
            net.weights[i] = w - np.float32(lr) * gw
            net.biases[i] = net.biases[i] - np.float32(lr) * gb
        else:
            gw = arr.matmul(dz.T, h)
            gb = saturate(dz.sum(0), fmt.width)
            dh = arr.matmul(dz, w) if i else None
            net.weights[i] = round_update(w, gw, lr, fmt, rounding, rng)
            net.biases[i] = round_update(net.biases[i], gb, lr, fmt, rounding, rng)
        if i:
            dz = dh * (cache[i - 1][1] > 0)
    return loss


def _stop_at_saturation(dz, z, fmt):
    """Zero the gradient of a saturated output that asks to go further out (the saturation's derivative)."""
    return np.where(((z >= fmt.max_code) & (dz < 0)) | ((z <= fmt.min_code) & (dz > 0)), 0, dz)


def _error(net, x, y, arr, fmt):
    out, _ = _forward(net, x, arr, fmt)
    return float(np.mean(np.argmax(out, 1) != y))


def train_fixed_point(dataset, hidden=(64,), epochs=20, batch=32, lr=DEFAULT_LR, seed=0, fixed_point=(16, 14),
                      rounding="stochastic", array=ArraySpec(), progress=None, record=None):
    """Train the float-architecture MLP in ``fixed_point`` (WL, FL) arithmetic, or in float32 if None.

    ``dataset``: a :class:`qnnfab.train.datasets.Dataset`; ``hidden``: Dense
    sizes (ints); ``rounding``: "stochastic" | "nearest" (products, gradient
    quantization and updates); ``array``: the :class:`ArraySpec` of the
    products; ``progress(epoch, loss, train_err, test_err)`` after every
    epoch; ``record``: a list that receives every array product
    (:class:`ArrayModel`). Returns a :class:`FixedTrainResult` whose
    ``history`` has per-epoch "loss", "train_err", "test_err" and "changed"
    (fraction of weights whose value changed during the epoch).
    """
    where = "train(fixed_point)"
    fmt = None if fixed_point is None else (fixed_point if isinstance(fixed_point, FixedFormat)
                                             else parse_fixed_point(fixed_point, where))
    if rounding not in ROUNDINGS:
        raise ConfigError(where, "rounding", f"unknown rounding {rounding!r}", f"use one of {', '.join(ROUNDINGS)}")
    if isinstance(hidden, (int, np.integer)):
        hidden = (hidden,)
    hidden = tuple(hidden)
    if not hidden or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
        raise ConfigError(where, "hidden", f"needs one or more fully connected sizes >= 1, got {hidden!r}",
                          "e.g. hidden=(64,) (convolutions are not trained in fixed point)")
    if int(epochs) < 1 or int(batch) < 1:
        raise ConfigError(where, "epochs/batch", f"must be >= 1, got {epochs}, {batch}")
    if not (math.isfinite(lr) and lr > 0) or (fmt is not None and round(lr * (1 << LR_FRAC)) < 1):
        raise ConfigError(where, "lr", f"must be > 2^-{LR_FRAC}, got {lr!r}", "e.g. lr=0.1")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    sizes = (dataset.features,) + hidden + (dataset.classes,)
    weights, biases = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        lim = math.sqrt(6.0 / (n_in + n_out))
        w = rng.uniform(-lim, lim, (n_out, n_in))
        weights.append(w.astype(np.float32) if fmt is None else quantize(w, fmt, "nearest"))
        biases.append(np.zeros(n_out, np.float32 if fmt is None else np.int64))
    net = FixedTrainResult(fmt, rounding if fmt is not None else "float", sizes, weights, biases, dataset.pixel_bits)
    arr = None if fmt is None else ArrayModel(fmt, rounding, array, record)
    xtr, ytr = _inputs(dataset.x_train, dataset.pixel_bits, fmt), np.asarray(dataset.y_train)
    xte, yte = _inputs(dataset.x_test, dataset.pixel_bits, fmt), np.asarray(dataset.y_test)
    hist = {"epoch": [], "loss": [], "train_err": [], "test_err": [], "changed": []}
    n = len(ytr)
    for ep in range(int(epochs)):
        perm = rng.permutation(n)
        before = [w.copy() for w in net.weights]
        losses = [_step(net, xtr[idx], ytr[idx], lr, arr, fmt, rounding, rng)
                  for idx in (perm[s:s + batch] for s in range(0, n, batch))]
        tr_err, te_err = _error(net, xtr, ytr, arr, fmt), _error(net, xte, yte, arr, fmt)
        changed = sum(int(np.count_nonzero(w != w0)) for w, w0 in zip(net.weights, before))
        for k, v in (("epoch", ep + 1), ("loss", float(np.mean(losses))), ("train_err", tr_err),
                     ("test_err", te_err), ("changed", changed / sum(w.size for w in before))):
            hist[k].append(v)
        if progress is not None:
            progress(ep + 1, hist["loss"][-1], tr_err, te_err)
    net.history = hist
    net.train_acc, net.test_acc = 1 - hist["train_err"][-1], 1 - hist["test_err"][-1]
    net.seconds = time.perf_counter() - t0
    net.array_words = 0 if arr is None else arr.words
    return net

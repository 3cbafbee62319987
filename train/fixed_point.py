"""Low-precision training on the systolic array's arithmetic (Gupta et al., ICML 2015).

A float-architecture network -- the digits MLP (Dense -> ReLU ..., Dense) or
the small conv net of :mod:`qnnfab.train.trainer` ([Conv kxk -> ReLU] and
[MaxPool k] first, then Dense -> ReLU ..., Dense), softmax cross-entropy,
biases, plain mini-batch SGD, Glorot-uniform initialisation; no BN and no
binarization -- trained either in float32 (the baseline) or in fixed point
``<WL, FL>`` (``FixedFormat(WL - FL, FL)``), where:

- every matrix product of training is computed by the golden model of the
  R x C systolic array (:func:`qnnfab.golden.systolic_matmul`) through one
  definition, :meth:`ArrayModel.matmul`: operands are ``<WL, FL>`` codes,
  products are accumulated exactly in the wide accumulator, and the output
  stage drops ``D = FL`` bits with the chosen rounding (stochastic: the
  array's own per-column LFSR lanes) and saturates to ``<WL, FL>``. The
  array is one machine that runs on: its lanes continue from one product to
  the next (:class:`ArrayModel` counts the output words since reset and
  passes them as ``lfsr_start``). The products of a layer:

  ============  =====================================  ==========================================
  layer         product                                (M, K) x (K, N)
  ============  =====================================  ==========================================
  Dense fwd     ``z = h W^T``                          (B, in) x (in, out)
  Dense wgrad   ``dW = dz^T h``                        (out, B) x (B, in)
  Dense bwd     ``dh = dz W``                          (B, out) x (out, in)
  Conv fwd      ``z = im2col(x) W^T``                  (B*OH*OW, k*k*C) x (k*k*C, O)
  Conv wgrad    ``dW = dz^T im2col(x)``                (O, B*OH*OW) x (B*OH*OW, k*k*C)
  Conv bwd      ``dx = im2col(pad(dz, k-1)) W_flip``   (B*H*W, k*k*O) x (k*k*O, C)
  ============  =====================================  ==========================================

  (:func:`conv_forward`, :func:`conv_weight_grad`, :func:`conv_input_grad`;
  ``W`` (O, k*k*C) in im2col (ky, kx, c) order, stride 1, no padding; the
  input gradient is the full convolution of ``dz`` with the kernels rotated
  by 180 degrees, one product per gradient value and so one rounding, as an
  accelerator computes it);
- weights and biases are stored as ``<WL, FL>`` codes; an update
  ``w - lr * g`` is computed exactly with ``lr`` in ``LR_FRAC`` fraction bits
  and rounded back to ``<WL, FL>`` with the chosen rounding (stochastic: a
  NumPy generator seeded from ``seed``; the update is not an array product),
  then saturated;
- the elementwise steps are exact on codes (bias add and saturation, ReLU and
  its mask, max pool and its routing of the gradient to the first maximal
  element, bias gradients as exact sums over batch and positions, saturated;
  a layer output saturated at a bound passes no gradient that would push it
  further out); the softmax of ``LOGIT_SCALE`` x scores and its gradient
  ``LOGIT_SCALE (p - onehot) / B`` are computed in float64 and quantized to
  ``<WL, FL>`` with the chosen rounding (the host-side loss layer; the scale
  lets confident scores stay inside <16,14>'s [-2, 2)); inputs are
  pixels / (2^pixel_bits - 1), quantized with round-to-nearest.

The float32 baseline runs the same code with float32 products (``h @ W``).

Round-to-nearest makes every update smaller than half an ulp (2^-(FL+1))
vanish, so training stalls at short FL; stochastic rounding keeps them in
expectation and tracks float32 (the seed's figure; bench:
bench/bench_fixed_point_training.py).

Determinism: the same ``seed`` and array (LFSR seed) give the same codes bit
for bit. The initialisation and the shuffling come from one generator, the
host's stochastic roundings (loss gradient, updates) from another, so float32,
nearest and stochastic runs of one seed start from the same weights and see
the same batches: their curves differ by the arithmetic alone.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.golden.fixedpoint import FixedFormat, quantize, saturate, shift_round, to_float
from qnnfab.golden.conv import im2col
from qnnfab.golden.systolic import systolic_matmul
from qnnfab.train.trainer import _geometry, _pool_backward, _pool_forward, parse_hidden

__all__ = ["ROUNDINGS", "LR_FRAC", "ArraySpec", "ArrayModel", "FixedTrainResult", "parse_fixed_point",
           "fixed_point_geometry", "train_fixed_point", "round_update", "conv_forward", "conv_weight_grad",
           "conv_input_grad"]

ROUNDINGS = ("stochastic", "nearest")
LR_FRAC = 20          # fraction bits of the learning rate in the exact update product
LOGIT_SCALE = 4.0     # softmax of 4 x scores: confident outputs stay inside <16,14>'s range [-2, 2)
DEFAULT_LR = 0.1      # SGD learning rate (the digits MLP trains in ~20 epochs in float32 with it)


@dataclass(frozen=True)
class ArraySpec:
    """The systolic array the products run on: R x C, LFSR width and base seed of its rounding lanes.

    Default: the 8 x 8 array of the bench figures (bench/bench_systolic.py),
    a 24-bit LFSR (> D for every FL <= 23), lanes advancing D steps per output
    word (the RTL default). ``start_word``: output words the array emitted
    since reset before this run (a run that follows another on the same
    array without a reset: its lanes continue from there).
    """

    rows: int = 8
    cols: int = 8
    lfsr_width: int = 24
    lfsr_seed: int = 0x1D2C
    start_word: int = 0


class ArrayModel:
    """One systolic array computing ``<WL, FL>`` products with ``rounding``, its LFSR lanes running on.

    ``matmul(a, b)``: (M, K) and (K, N) codes -> (M, N) codes of ``fmt``
    (exact wide accumulation, D = FL bits dropped with the rounding, saturated).
    ``words``: output words emitted since reset (the next product's
    ``lfsr_start``; ``spec.start_word`` at first). ``record``: if a list, every product is appended as a
    dict (a, b, lfsr_start, values) -- operands for a check on the hardware.
    """

    def __init__(self, fmt, rounding, spec=ArraySpec(), record=None):
        self.fmt, self.rounding, self.spec, self.record = fmt, rounding, spec, record
        self.words = int(spec.start_word)

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


# ---------------------------------------------------------------------- the products of a convolution

def conv_forward(x, w, kernel, matmul):
    """Convolution as one product: (B, H, W, C) maps, (O, k*k*C) weights -> ((B, OH, OW, O), windows).

    ``z = im2col(x) @ w.T`` (stride 1, no padding; window order (ky, kx, c)),
    computed by ``matmul`` ((M, K) x (K, N) -> (M, N)). The windows
    (B, OH, OW, k*k*C) are returned for :func:`conv_weight_grad`.
    """
    cols = im2col(x, kernel)
    B, oh, ow, kk = cols.shape
    return matmul(cols.reshape(-1, kk), w.T).reshape(B, oh, ow, w.shape[0]), cols


def conv_weight_grad(dz, cols, matmul):
    """Weight gradient of a convolution as one product: ``dz^T @ windows`` -> (O, k*k*C).

    ``dz``: (B, OH, OW, O) output gradient; ``cols``: the forward windows
    (B, OH, OW, k*k*C); the inner dimension is every (image, position).
    """
    return matmul(dz.reshape(-1, dz.shape[-1]).T, cols.reshape(-1, cols.shape[-1]))


def conv_input_grad(dz, w, kernel, in_shape, matmul):
    """Input gradient of a convolution as one product: (B, OH, OW, O) -> (B, H, W, C).

    ``dx[b, y, x, c] = sum_{ky, kx, o} dz[b, y - ky, x - kx, o] w[o, (ky, kx, c)]``
    (``dz`` zero outside its map): the windows of ``dz`` zero-padded by k - 1
    on every side, times the kernels rotated by 180 degrees,
    ``w_flip[(ky, kx, o), c] = w[o, (k-1-ky, k-1-kx, c)]``.
    """
    k = int(kernel)
    B, _, _, n_out = dz.shape
    h, wd, c = in_shape
    dzp = np.pad(dz, ((0, 0), (k - 1, k - 1), (k - 1, k - 1), (0, 0)))
    w_flip = w.reshape(n_out, k, k, c)[:, ::-1, ::-1, :].transpose(1, 2, 0, 3).reshape(k * k * n_out, c)
    return matmul(im2col(dzp, k).reshape(-1, k * k * n_out), w_flip).reshape(B, h, wd, c)


# ---------------------------------------------------------------------- the network

@dataclass
class FixedTrainResult:
    """A trained fixed-point (or float32) network: weights/biases as codes of ``fmt`` (float32 when fmt is None).

    ``layers``: the geometry of every layer, (kind, units or pool size,
    kernel, in_shape, out_shape) with kind "conv" | "pool" | "fc" (the last
    one the output layer; :func:`qnnfab.train.trainer._geometry`);
    ``weights``/``biases``: one entry per conv/fc layer, in order (conv
    weights (O, k*k*C) in im2col order); ``sizes``: (input features,
    flattened output size of every layer) -- (F, H1, ..., classes) for an MLP.
    """

    fmt: object
    rounding: str
    sizes: tuple
    weights: list
    biases: list
    pixel_bits: int
    layers: list = field(default_factory=list)
    history: dict = field(default_factory=dict)
    test_acc: float = float("nan")
    train_acc: float = float("nan")
    seconds: float = 0.0
    array_words: int = 0          # output words of this run's products

    @property
    def label(self):
        return "float32" if self.fmt is None else f"<{self.fmt.width},{self.fmt.F}> {self.rounding}"

    @property
    def arch(self):
        """The architecture as qnnfab train --hidden spells it, then the classes: "c8,p2,32,10"."""
        return ",".join(f"c{n}k{k}" if kind == "conv" else f"p{n}" if kind == "pool" else str(n)
                        for kind, n, k, _, _ in self.layers)


class _Arithmetic:
    """The arithmetic of one run: fixed point on the array (``arr``, ``fmt``) or float32 (both None)."""

    def __init__(self, arr, fmt, rounding, rng):
        self.arr, self.fmt, self.rounding, self.rng = arr, fmt, rounding, rng

    def matmul(self, a, b):
        return a @ b if self.fmt is None else self.arr.matmul(a, b)

    def add_bias(self, z, b):
        return z + b if self.fmt is None else saturate(z + b, self.fmt.width)

    def bias_grad(self, dz):
        g = dz.reshape(-1, dz.shape[-1]).sum(0)
        return g if self.fmt is None else saturate(g, self.fmt.width)

    def update(self, w, g, lr):
        if self.fmt is None:
            return w - np.float32(lr) * g
        return round_update(w, g, lr, self.fmt, self.rounding, self.rng)

    def loss_grad(self, dout):
        if self.fmt is None:
            return dout.astype(np.float32)
        if self.rounding == "stochastic":
            return quantize(dout, self.fmt, "stochastic", rng=self.rng)
        return quantize(dout, self.fmt, "nearest")

    def stop_at_saturation(self, dz, z):
        return dz if self.fmt is None else _stop_at_saturation(dz, z, self.fmt)

    def scores(self, z):
        return z.astype(np.float64) if self.fmt is None else to_float(z, self.fmt)


def _forward(net, x, ar):
    """Forward pass. Returns (scores as float64, cache per layer: (layer input or windows, z) or pool indices)."""
    cache = []
    a = x
    p = 0
    last = len(net.layers) - 1
    for i, (kind, _, k, _, _) in enumerate(net.layers):
        if kind == "pool":
            a, idx = _pool_forward(a, k)
            cache.append(idx)
            continue
        w, b = net.weights[p], net.biases[p]
        p += 1
        if kind == "conv":
            z, a_in = conv_forward(a, w, k, ar.matmul)
        else:
            a_in = a.reshape(len(a), -1)
            z = ar.matmul(a_in, w.T)
        z = ar.add_bias(z, b)
        cache.append((a_in, z))
        a = np.maximum(z, 0) if i < last else z
    return ar.scores(a), cache


def _inputs(x, pixel_bits, fmt, in_shape):
    v = np.asarray(x, np.float64) / ((1 << pixel_bits) - 1)
    v = v.reshape((len(v),) + tuple(in_shape))
    return v.astype(np.float32) if fmt is None else quantize(v, fmt, "nearest")


def _step(net, x, y, lr, ar):
    B = len(y)
    out, cache = _forward(net, x, ar)
    out = out * LOGIT_SCALE
    sh = out - out.max(1, keepdims=True)
    prob = np.exp(sh)
    prob /= prob.sum(1, keepdims=True)
    loss = float(-np.mean(np.log(prob[np.arange(B), y] + 1e-300)))
    onehot = np.zeros_like(prob)
    onehot[np.arange(B), y] = 1.0
    g = ar.loss_grad(LOGIT_SCALE * (prob - onehot) / B)   # gradient of the current layer's output
    p = len(net.weights)
    for i in range(len(net.layers) - 1, -1, -1):
        kind, _, k, in_shape, out_shape = net.layers[i]
        g = g.reshape((B,) + tuple(out_shape))
        if kind == "pool":
            g = _pool_backward(g, cache[i], in_shape, k)
            continue
        p -= 1
        a_in, z = cache[i]
        dz = g if i == len(net.layers) - 1 else g * (z > 0)
        dz = ar.stop_at_saturation(dz, z)
        w = net.weights[p]
        if kind == "conv":
            gw = conv_weight_grad(dz, a_in, ar.matmul)
            g = conv_input_grad(dz, w, k, in_shape, ar.matmul) if i else None
        else:
            gw = ar.matmul(dz.T, a_in)
            g = ar.matmul(dz, w) if i else None
        gb = ar.bias_grad(dz)
        net.weights[p] = ar.update(w, gw, lr)
        net.biases[p] = ar.update(net.biases[p], gb, lr)
    return loss


def _stop_at_saturation(dz, z, fmt):
    """Zero the gradient of a saturated output that asks to go further out (the saturation's derivative)."""
    return np.where(((z >= fmt.max_code) & (dz < 0)) | ((z <= fmt.min_code) & (dz > 0)), 0, dz)


def _error(net, x, y, ar):
    out, _ = _forward(net, x, ar)
    return float(np.mean(np.argmax(out, 1) != y))


def fixed_point_geometry(dataset, hidden, fmt=None, batch=32, where="train(fixed_point)"):
    """Check an architecture for fixed-point training; returns its layers (see :class:`FixedTrainResult`).

    ``hidden``: ints and "c<n>" / "c<n>k<k>" / "p<k>" entries or one
    comma-separated string (:func:`qnnfab.train.trainer.parse_hidden`);
    convolutions need an image dataset. With ``fmt``, the largest inner
    dimension K of a product (a convolution's weight gradient: batch rows x
    output positions) must keep every sum of ``<WL, FL>`` products within
    the golden model's 62-bit accumulator.
    """
    entries = parse_hidden(hidden) if not isinstance(hidden, (int, np.integer)) else parse_hidden([hidden])
    if not entries:
        raise ConfigError(where, "hidden", f"needs one or more layers, got {hidden!r}", "e.g. hidden=(64,)")
    geo = _geometry(entries, dataset.input_shape, dataset.features, dataset.classes, where)
    if fmt is not None:
        rows = min(int(batch), max(1, len(dataset.y_train)))   # a batch holds at most the training set
        ks = [rows]
        for kind, n, k, in_shape, out_shape in geo:
            if kind == "conv":
                ks += [k * k * in_shape[2], k * k * n, rows * out_shape[0] * out_shape[1]]
            elif kind == "fc":
                ks += [math.prod(in_shape), n]
        k_max = max(ks)
        top = max(abs(fmt.min_code), fmt.max_code) ** 2
        if k_max * top > (1 << 61) - 1:
            raise ConfigError(where, "batch", f"products with K = {k_max} of <{fmt.width},{fmt.F}> codes can "
                              "overflow the 62-bit accumulator", "use a smaller batch or a shorter WL")
    return geo


def _init_weights(geo, rng, fmt):
    weights, biases = [], []
    for kind, n, k, in_shape, _ in geo:
        if kind == "pool":
            continue
        n_in = k * k * in_shape[2] if kind == "conv" else math.prod(in_shape)
        fan_out = n * k * k if kind == "conv" else n
        lim = math.sqrt(6.0 / (n_in + fan_out))
        w = rng.uniform(-lim, lim, (n, n_in))
        weights.append(w.astype(np.float32) if fmt is None else quantize(w, fmt, "nearest"))
        biases.append(np.zeros(n, np.float32 if fmt is None else np.int64))
    return weights, biases


def train_fixed_point(dataset, hidden=(64,), epochs=20, batch=32, lr=DEFAULT_LR, seed=0, fixed_point=(16, 14),
                      rounding="stochastic", array=ArraySpec(), progress=None, record=None):
    """Train the float-architecture network in ``fixed_point`` (WL, FL) arithmetic, or in float32 if None.

    ``dataset``: a :class:`qnnfab.train.datasets.Dataset`; ``hidden``: Dense
    sizes (ints), and for an image dataset convolutions and pools before
    them ("c<n>", "c<n>k<k>", "p<k>"; e.g. ("c8", "p2", 32));
    ``rounding``: "stochastic" | "nearest" (products, gradient
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
    if int(epochs) < 1 or int(batch) < 1:
        raise ConfigError(where, "epochs/batch", f"must be >= 1, got {epochs}, {batch}")
    if not (math.isfinite(lr) and lr > 0) or (fmt is not None and round(lr * (1 << LR_FRAC)) < 1):
        raise ConfigError(where, "lr", f"must be > 2^-{LR_FRAC}, got {lr!r}", "e.g. lr=0.1")
    geo = fixed_point_geometry(dataset, hidden, fmt, batch, where)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    sizes = (dataset.features,) + tuple(math.prod(g[4]) for g in geo)
    weights, biases = _init_weights(geo, rng, fmt)
    net = FixedTrainResult(fmt, rounding if fmt is not None else "float", sizes, weights, biases, dataset.pixel_bits,
                           layers=geo)
    arr = None if fmt is None else ArrayModel(fmt, rounding, array, record)
    ar = _Arithmetic(arr, fmt, rounding, np.random.default_rng([seed, 1]))   # the host's rounding draws
    in_shape = geo[0][3]
    xtr, ytr = _inputs(dataset.x_train, dataset.pixel_bits, fmt, in_shape), np.asarray(dataset.y_train)
    xte, yte = _inputs(dataset.x_test, dataset.pixel_bits, fmt, in_shape), np.asarray(dataset.y_test)
    hist = {"epoch": [], "loss": [], "train_err": [], "test_err": [], "changed": []}
    n = len(ytr)
    for ep in range(int(epochs)):
        perm = rng.permutation(n)
        before = [w.copy() for w in net.weights]
        losses = [_step(net, xtr[idx], ytr[idx], lr, ar) for idx in (perm[s:s + batch] for s in range(0, n, batch))]
        tr_err, te_err = _error(net, xtr, ytr, ar), _error(net, xte, yte, ar)
        changed = sum(int(np.count_nonzero(w != w0)) for w, w0 in zip(net.weights, before))
        for k, v in (("epoch", ep + 1), ("loss", float(np.mean(losses))), ("train_err", tr_err),
                     ("test_err", te_err), ("changed", changed / sum(w.size for w in before))):
            hist[k].append(v)
        if progress is not None:
            progress(ep + 1, hist["loss"][-1], tr_err, te_err)
    net.history = hist
    net.train_acc, net.test_acc = 1 - hist["train_err"][-1], 1 - hist["test_err"][-1]
    net.seconds = time.perf_counter() - t0
    net.array_words = 0 if arr is None else arr.words - arr.spec.start_word
    return net

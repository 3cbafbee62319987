"""Quantization-aware training of small binarized MLPs and convolutional BNNs in NumPy, and export to a qnnfab network config.

Architecture (``hidden`` entries, then a fully connected output layer)::

    x (B, F) or (B, H, W, C) uint pixels of pixel_bits bits (NHWC)
    -> [Conv kxk (stride 1, no padding) -> BatchNorm -> act] and [MaxPool k]   "c<n>", "c<n>k<k>", "p<k>"
    -> [Dense(W) -> BatchNorm -> act] ...                                     an int n
    -> Dense(W_out) -> alpha * z           (scores; argmax = label)

Convolutions and pools come first and need an image dataset
(``Dataset.input_shape == (H, W, C)``); feature maps are NHWC and are
flattened in (h, w, c) order before the first Dense layer, exactly as
:class:`qnnfab.golden.FC` flattens them. A convolution is ``im2col(a) @ W.T``
with ``W`` (out, k*k*C) in (ky, kx, c) column order
(:func:`qnnfab.golden.conv.im2col`); a max pool (k x k, stride k, floor)
follows the activation and pools the activation values (bipolar: max of +-1
= OR of the bits; k-bit: max of the levels), exactly what the hardware pools.
A pool may not come first (nothing to pool but pixels).

Binarized schemes (weights are +-1 in every Dense/Conv, ``sign(0) = +1``;
the "ternary" scheme has weights in {-1, 0, +1} and the same layer
structure, with ``d`` always the signed integer dot product):

- the first layer multiplies the integer pixels by bipolar weights (as
  CNV's first layer: add/subtract); its BN input is ``z = s * d`` with ``d``
  the integer dot product and ``s = 1 / (2^pixel_bits - 1)``;
- hidden layers read the previous activations: bipolar (``act_bits=1``:
  ``d = 2P - n``, P the XNOR popcount, ``z = d``) or unsigned k-bit levels
  (``act_bits=k >= 2``: ``d`` the integer dot product of the levels
  0..m = 2^k - 1 with the +-1 weights, ``z = d * (1 / m)``, the same way the
  first layer reads its pixels);
- the last layer has no BN: the scores are ``alpha * d`` with one learnable
  positive scalar ``alpha`` (training only: it changes no argmax), so the
  hardware's raw accumulator (popcount P = (d + n) / 2 for bipolar inputs,
  the dot product d itself for k-bit inputs) has the same argmax (first
  index on ties) as the trained network.

Weight schemes (``scheme``):

``"ste"``          deterministic binarization (BinaryNet): forward sign(W),
                   gradient passed straight through to the real-valued W,
                   which is clipped to [-1, 1] after every step.
``"stochastic"``   training forward uses +1 with probability
                   hard_sigmoid(W) = clip((W + 1) / 2, 0, 1), else -1; same
                   gradient and clipping; evaluation/export use sign(W).
``"progressive"``  Lammie et al. (ISCAS 2020): one parameter set P per layer,
                   weights theta(P) = clip(v * P, -1, 1), v rising
                   logarithmically (geometrically per step) from ``v_start``
                   = 1 to ``v_end`` = 1000 over training
                   (:func:`progressive_v`); gradient dtheta/dP = v where
                   |v P| < 1; evaluation/export use sign(theta) = sign(P).
                   With ``progressive_acts=True`` the hidden activations are
                   clip(v * y, -1, 1) during training too (default: sign +
                   STE); only defined for ``act_bits=1`` (ConfigError else).
``"ternary"``      ternary weight networks (TWN, Li & Liu 2016; SYQ with one
                   scale per layer): per layer ``delta = 0.7 * mean(|W|)``
                   of the latent weights, forward ``sign(W)`` where
                   ``|W| > delta`` else 0 (:func:`ternarize`); STE gradient
                   where |W| <= 1, W clipped to [-1, 1]; evaluation/export
                   use the same ternarization of the final W. TWN's scale
                   alpha (> 0, one per layer) is left out: it multiplies the
                   BN input z of a hidden layer, which BN normalizes away
                   (batch statistics in training, statistics recomputed on
                   the integer network by ``recalibrate``), and the scores of
                   the last layer, whose learnable ``alpha`` absorbs it; the
                   trained inference network uses exactly the exported
                   integer weights. Exported as weight_kind "ternary" (stored
                   values -1/0/+1) with every layer's thresholds in the
                   dot-product domain (also layers reading bipolar
                   activations: ``d = sum w x``, x = +-1, acc_range +-n;
                   no XNOR popcount), and the last layer outputs ``d``.
``"xnor"``         XNOR-Net (Rastegari et al. 2016): weights alpha_c sign(W)
                   with alpha_c = mean |W| of output channel c (hidden
                   layers), XNOR-Net's gradient dW (1/n + alpha_c 1{|W| <= 1});
                   +-1 activations with their scale (mean |BN output| of the
                   layer, running in training, recalibrated with the BN).
``"dorefa"``       DoReFa-Net (Zhou et al. 2016): ``weight_bits``-bit weights
                   through tanh normalisation (:func:`qnnfab.train.codebooks.dorefa_code`),
                   exported as the odd integers 2i - m (int of weight_bits + 1
                   bits; 1 bit: bipolar); activations as ``act_bits`` says
                   (k-bit levels in [0, 1] for k >= 2). Latent W not clipped.
``"hwgq"``         HWGQ (Cai et al. 2017): XNOR-Net's scaled binary weights and
                   ``act_bits``-bit activations on the uniform levels j Delta
                   fitted to a half Gaussian (:func:`qnnfab.train.codebooks.hwgq_step`;
                   also for act_bits = 1: levels {0, Delta}, "uint1"); BN starts
                   at gamma 1, beta 0; backward: clipped ReLU.
``"syq"``          SYQ (Faraone et al. 2018): binary (``weight_bits`` 1) or
                   ternary (2, :func:`ternarize`) codebook times a learned scale
                   per output channel (initial mean |W|, Adam); a scale may go
                   negative or to 0 (the export negates the row / makes it constant).
``"ttq"``          TTQ (Zhu et al. 2016): +Wp / 0 / -Wn with the threshold
                   0.05 max|W| and two learned scales per layer; the inference
                   weights are the ``weight_bits``-bit integers qp / 0 / -qn of
                   the ratio Wp : Wn (:func:`qnnfab.train.codebooks.ttq_code`).
``"float"``        baseline of the same size: float weights, BN, ``act``
                   ("relu" or "hardtanh") activations, biased last layer,
                   float pixels x * s; ignores ``act_bits``.

Scales of the scaled schemes: a per-channel scale of a hidden layer
multiplies its BN input, ``z = d * row_scale`` (:meth:`TrainResult.row_scale`:
the layer scale, times the previous layer's XNOR-Net activation scale, times
the channel's weight scale), folded exactly into that channel's thresholds;
the last layer has no per-channel scale (it would change the argmax of the raw
accumulators the hardware outputs): its codes are the codebook's. A positive
per-layer factor (DoReFa's 1/m, TTQ's common factor) is left out like TWN's
alpha. With BN after every hidden layer a positive per-channel scale is
normalized away in training (its gradient is ~0, up to BN's eps), yet Adam's
normalized steps still move the learned SYQ scales by about ``lr`` a step: on
the digits (64-64 MLP, 10 epochs) they move by up to 4.4 times their start and
some cross 0, flipping their channel, which the export folds as a negated row.

Activations of binarized layers (BN output ``y``):

- ``act_bits=1``: forward sign(y) (y >= 0 -> +1), backward the gradient
  where |y| <= 1 (hard tanh STE).
- ``act_bits=k >= 2`` (PACT/DoReFa style, m = 2^k - 1): training forward
  ``floor(clip(y, 0, 1) * m + 0.5) / m`` (round half up, the same rounding
  as inference), backward the gradient where 0 <= y <= 1. Inference level
  = number of j in 1..m with
  ``gamma * (z - mu) / sigma + (beta - (j - 0.5) / m) >= 0``, evaluated
  exactly so in float64: m BN + sign stages with biases beta - c_j. Their
  BNs start at gamma = beta = 0.5 (outputs centred in the STE window) and
  the default learning rate is 0.03 (0.1 for act_bits = 1).

Performance: NumPy only; convolutions are one 2-D BLAS product over
im2col windows (backward: col2im, a loop over (ky, kx) only). On small
matrices a multi-threaded BLAS is much slower on a busy machine: set
``OPENBLAS_NUM_THREADS=1`` (bench/bench_train.py does).

Loss: softmax cross-entropy (``loss="ce"``) or squared hinge (``"hinge"``);
Adam with an exponential learning-rate decay from ``lr`` to ``lr * lr_decay``;
BN uses batch statistics in training (per channel over batch and positions for
convolutions). After every epoch the BN statistics of the deterministic
binarized network are recomputed over the training set (``recalibrate``,
default on) and that network is evaluated; the final model is that network.

Inference semantics (:func:`predict`, :func:`scores`): float64, BN as
``gamma * (s * d - mu) / sigma + beta_j >= 0`` with ``sigma = sqrt(var + eps)``
(``beta_j = beta`` for bipolar, ``beta - (j - 0.5) / m`` for k-bit), exactly
the expression :func:`qnnfab.golden.bn_to_thresholds` folds, so the exported
integer network (:func:`qnnfab.train.export.export`) reproduces every prediction bit for bit.

Export to integer weights, thresholds and a network config: :mod:`qnnfab.train.export`.
"""

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.golden.conv import im2col

from .codebooks import dorefa_code, hwgq_step, level_offsets, round_half_up, row_mean_abs, ttq_code

__all__ = ["SCHEMES", "TrainResult", "train", "predict", "scores", "accuracy", "progressive_v", "hard_sigmoid",
           "binarize", "ternarize", "TWN_DELTA", "ste_sign", "kbit_act", "parse_hidden", "arch_string", "col2im"]

SCHEMES = ("ste", "stochastic", "progressive", "float", "ternary", "xnor", "dorefa", "hwgq", "syq", "ttq")
WEIGHT_BITS = {"dorefa": (2, 1, 8), "syq": (1, 1, 2), "ttq": (4, 2, 8)}   # scheme: (default, min, max) weight_bits
SCALED_SCHEMES = ("xnor", "dorefa", "hwgq", "syq", "ttq")
TWN_DELTA = 0.7              # ternary threshold delta = TWN_DELTA * mean(|W|) per layer (Li & Liu 2016)
LOSSES = ("ce", "hinge")
CONV_FOLD = (8, 8)
KBIT_BN_INIT = (0.5, 0.5)    # k-bit activations: BN output starts centred in the STE window [0, 1]          # default (simd, pe) targets of convolutions


# ---------------------------------------------------------------------- elementary pieces

def progressive_v(step, total, v_start=1.0, v_end=1000.0):
    """Progressive-binarization slope at ``step`` of ``total``: log-linear from v_start (step 0) to v_end (last)."""
    if total <= 1:
        return float(v_end)
    t = min(max(step / (total - 1), 0.0), 1.0)
    return float(v_start * (v_end / v_start) ** t)


def hard_sigmoid(w):
    """clip((w + 1) / 2, 0, 1): probability of +1 in stochastic binarization."""
    return np.clip((np.asarray(w, np.float64) + 1.0) * 0.5, 0.0, 1.0)


def ternarize(w, factor=TWN_DELTA):
    """TWN ternarization of one layer's latent weights: float64 in {-1, 0, +1}, same shape.

    ``delta = factor * mean(|w|)`` over the whole layer; ``sign(w)`` where
    ``|w| > delta`` (strictly, as in TWN; :func:`qnnfab.golden.quantizers.sign_quantize`
    keeps ``|w| >= eta``), else 0. The per-layer scale alpha of TWN / SYQ
    (:func:`qnnfab.golden.quantizers.ternary_quantize` with granularity
    "layer") is not applied: BN and the output scale absorb it.
    """
    w = np.asarray(w, np.float64)
    delta = float(factor) * float(np.mean(np.abs(w))) if w.size else 0.0
    return np.where(np.abs(w) > delta, np.where(w >= 0, 1.0, -1.0), 0.0)


def binarize(w, scheme="ste", rng=None, v=1.0):
    """Training-time weights of ``scheme`` from the real-valued parameters ``w``.

    "ste": sign(w) (0 -> +1); "stochastic": +1 with probability hard_sigmoid(w)
    (needs ``rng``); "progressive": clip(v * w, -1, 1); "ternary":
    :func:`ternarize`; "float": w itself.
    """
    if scheme == "ste":
        return np.where(w >= 0, 1.0, -1.0)
    if scheme == "ternary":
        return ternarize(w)
    if scheme == "stochastic":
        return np.where(rng.random(w.shape) < hard_sigmoid(w), 1.0, -1.0)
    if scheme == "progressive":
        return np.clip(v * w, -1.0, 1.0)
    if scheme == "float":
        return w
    raise ConfigError("binarize", "scheme", f"unknown scheme {scheme!r}", f"use one of {SCHEMES}")


def ste_sign(y):
    """(forward, backward mask) of the sign activation with the hard-tanh STE: (sign(y), |y| <= 1)."""
    return np.where(y >= 0, 1.0, -1.0), (np.abs(y) <= 1.0).astype(np.float64)


def kbit_act(y, bits):
    """(forward, backward mask) of the unsigned ``bits``-bit training activation (m = 2^bits - 1).

    Forward ``floor(clip(y, 0, 1) * m + 0.5) / m`` (levels / m, round half up
    as the inference thresholds ``y >= (j - 0.5) / m`` do); mask ``0 <= y <= 1``.
    """
    m = (1 << int(bits)) - 1
    return np.floor(np.clip(y, 0.0, 1.0) * m + 0.5) / m, ((y >= 0.0) & (y <= 1.0)).astype(np.float64)


def _act(y, kind, v, bits=1):
    """Activation forward value and derivative factor (elementwise)."""
    if kind == "sign":
        return ste_sign(y)
    if kind == "kbit":
        return kbit_act(y, bits)
    if kind == "relu":
        return np.maximum(y, 0.0), (y > 0).astype(np.float64)
    if kind == "hardtanh":
        return np.clip(y, -1.0, 1.0), (np.abs(y) <= 1.0).astype(np.float64)
    if kind == "progressive":
        return np.clip(v * y, -1.0, 1.0), v * (np.abs(v * y) < 1.0)
    raise ConfigError("train", "act", f"unknown activation {kind!r}", "use 'relu' or 'hardtanh'")


def _wgrad_factor(w, scheme, v):
    """d(training weight)/d(parameter): STE 1 inside [-1, 1]; progressive v where |v w| < 1; float 1."""
    if scheme in ("ste", "stochastic", "ternary"):
        return (np.abs(w) <= 1.0).astype(np.float64)
    if scheme == "progressive":
        return v * (np.abs(v * w) < 1.0)
    return 1.0


def col2im(cols, in_shape, kernel):
    """Adjoint of ``im2col(x, kernel)`` (stride 1, no padding): (B, OH, OW, k*k*C) -> (B, H, W, C) sums.

    Column index (ky*k + kx)*C + c as in :func:`qnnfab.golden.conv.im2col`; loops over (ky, kx) only.
    """
    B, oh, ow, _ = cols.shape
    h, w, c = in_shape
    k = int(kernel)
    d = cols.reshape(B, oh, ow, k, k, c)
    out = np.zeros((B, h, w, c), cols.dtype)
    for ky in range(k):
        for kx in range(k):
            out[:, ky:ky + oh, kx:kx + ow, :] += d[:, :, :, ky, kx, :]
    return out


def _pool_windows(a, k):
    """(B, H, W, C) -> (B, OH, OW, C, k*k) windows of a k x k, stride-k, floor max pool."""
    B, h, w, c = a.shape
    oh, ow = h // k, w // k
    v = a[:, :oh * k, :ow * k].reshape(B, oh, k, ow, k, c).transpose(0, 1, 3, 5, 2, 4)
    return v.reshape(B, oh, ow, c, k * k)


def _pool_forward(a, k):
    """Max pool forward; returns (output, argmax index per window) (first maximal element)."""
    v = _pool_windows(a, k)
    idx = v.argmax(-1)
    return np.take_along_axis(v, idx[..., None], -1)[..., 0], idx


def _pool_backward(dout, idx, in_shape, k):
    """Route the gradient of every window to its (first) maximal element."""
    B, oh, ow, c = dout.shape
    g = np.zeros((B, oh, ow, c, k * k), dout.dtype)
    np.put_along_axis(g, idx[..., None], dout[..., None], -1)
    g = g.reshape(B, oh, ow, c, k, k).transpose(0, 1, 4, 2, 5, 3).reshape(B, oh * k, ow * k, c)
    h, w, _ = in_shape
    if (oh * k, ow * k) == (h, w):
        return g
    dx = np.zeros((B, h, w, c), dout.dtype)
    dx[:, :oh * k, :ow * k] = g
    return dx


# ---------------------------------------------------------------------- architecture

_ENTRY = re.compile(r"(?:(\d+)|c(\d+)(?:k(\d+))?|p(\d+))")


def parse_hidden(hidden):
    """``hidden`` -> list of (entry text, spec): spec ("fc", n), ("conv", n, k) or ("pool", k).

    ``hidden``: a sequence of ints / strings, or one comma-separated string
    ("c16,c32,p2,128"). Entries: n (Dense of n units), "c<n>" (3x3 conv, n
    channels), "c<n>k<k>" (kxk conv), "p<k>" (k x k max pool, stride k).
    """
    if isinstance(hidden, str):
        hidden = [h.strip() for h in hidden.split(",")]
    elif isinstance(hidden, (int, np.integer)):
        hidden = [hidden]
    out = []
    for i, h in enumerate(hidden):
        text = str(h).strip().lower() if not isinstance(h, (int, np.integer)) else str(int(h))
        m = _ENTRY.fullmatch(text)
        if isinstance(h, (float, bool)) or m is None:
            raise ConfigError("train", "hidden", f"entry {i} {h!r} is not a layer",
                              "use n (fully connected), 'c<n>' / 'c<n>k<k>' (convolution) or 'p<k>' (max pool)")
        n = int(m.group(1) or m.group(2) or m.group(4))
        if n < 1 or (m.group(3) is not None and int(m.group(3)) < 1):
            raise ConfigError("train", "hidden", f"entry {i} {h!r} has a zero size", "sizes and kernels are >= 1")
        if m.group(1):
            out.append((text, ("fc", n)))
        elif m.group(2):
            out.append((text, ("conv", n, int(m.group(3) or 3))))
        else:
            out.append((text, ("pool", n)))
    return out


def _geometry(entries, input_shape, features, classes, where):
    """Layer geometry: list of (kind, n_or_k, kernel, in_shape, out_shape) including the output Dense."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or math.prod(shape) != features or not entries or entries[0][1][0] == "fc":
        shape = (features,)                     # an MLP reads the NHWC-flattened pixels
    geo = []
    fc_seen = False
    for i, (text, spec) in enumerate(entries):
        kind = spec[0]
        if kind in ("conv", "pool"):
            if fc_seen:
                raise ConfigError(where, "hidden", f"entry {i} {text!r} comes after a fully connected layer",
                                  "put convolutions and pools before the fully connected layers")
            if len(shape) != 3:
                raise ConfigError(where, "hidden", f"entry {i} {text!r} needs an image dataset "
                                  f"(input_shape (H, W, C)), the input is {shape}",
                                  "use fully connected layers only, or a dataset with image input_shape")
            h, w, c = shape
            if kind == "conv":
                n, k = spec[1], spec[2]
                if k > h or k > w:
                    raise ConfigError(where, "hidden", f"entry {i} {text!r}: {k}x{k} kernel is larger than the "
                                      f"{h}x{w} feature map", "use a smaller kernel or fewer layers before it")
                out = (h - k + 1, w - k + 1, n)
            else:
                k = spec[1]
                if not geo:
                    raise ConfigError(where, "hidden", f"entry {i} {text!r}: a pool cannot come first",
                                      "put a convolution before the pool")
                if h // k < 1 or w // k < 1:
                    raise ConfigError(where, "hidden", f"entry {i} {text!r}: a {k}x{k} pool makes the {h}x{w} "
                                      "feature map empty", "use a smaller pool or drop it")
                out = (h // k, w // k, c)
            geo.append((kind, spec[1], k, shape, out))
        else:
            fc_seen = True
            out = (spec[1],)
            geo.append(("fc", spec[1], 0, shape, out))
        shape = out
    geo.append(("fc", int(classes), 0, shape, (int(classes),)))
    return geo


# ---------------------------------------------------------------------- model

@dataclass
class Layer:
    """One layer. ``kind`` "fc": ``w`` (out, in); "conv": ``w`` (out, k*k*C) in (ky, kx, c) column order;
    "pool": no parameters. BN (None for the last layer and pools)."""
    w: np.ndarray | None
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    mean: np.ndarray | None = None
    var: np.ndarray | None = None
    bias: np.ndarray | None = None      # float scheme, last layer only
    alpha: np.ndarray | None = None     # learned scales: SYQ (out,) per channel, TTQ (Wp, Wn)
    act_scale: float = 1.0              # XNOR-Net: the scale of this layer's +-1 activations (mean |BN output|)
    kind: str = "fc"
    kernel: int = 0
    in_shape: tuple = ()
    out_shape: tuple = ()


@dataclass
class TrainResult:
    """A trained network and its training record.

    ``layers``: list of :class:`Layer` (the final, recalibrated model);
    ``sizes``: (input features, flattened output size of every layer ...,
    classes) (for an MLP: (F, H1, ..., classes)); ``act_bits``: hidden
    activation bits (1 = bipolar); ``input_shape``: (H, W, C) for conv nets,
    else (F,); ``log_alpha``: last-layer score scale (binarized schemes);
    ``history``: per epoch lists "epoch", "loss", "train_acc", "test_acc",
    "lr", "v" (accuracies of the deterministic binarized network, or of the
    float network, in [0, 1]); ``train_acc``/``test_acc``: final values;
    ``seconds``: training wall time; ``params``: the hyperparameters.
    """
    scheme: str
    sizes: tuple
    pixel_bits: int
    layers: list
    log_alpha: float
    act: str
    eps: float
    dataset: str = ""
    history: dict = field(default_factory=dict)
    train_acc: float = float("nan")
    test_acc: float = float("nan")
    seconds: float = 0.0
    params: dict = field(default_factory=dict)
    act_bits: int = 1
    input_shape: tuple = ()
    weight_bits: int = 1

    def __post_init__(self):
        if not self.input_shape:
            self.input_shape = tuple(self.layers[0].in_shape) or (int(self.sizes[0]),)

    @property
    def input_scale(self):
        return 1.0 / ((1 << self.pixel_bits) - 1)

    @property
    def binarized(self):
        return self.scheme != "float"

    @property
    def weight_kind(self):
        """Exported weight kind: "ternary" (ternary, SYQ with weight_bits 2), "int" (DoReFa with
        weight_bits >= 2, TTQ; width :attr:`weight_width`), else "bipolar"."""
        if self.scheme == "ternary" or (self.scheme == "syq" and self.weight_bits == 2):
            return "ternary"
        if self.scheme == "ttq" or (self.scheme == "dorefa" and self.weight_bits > 1):
            return "int"
        return "bipolar"

    @property
    def weight_width(self):
        """Stored bits of an "int" weight: DoReFa k + 1 (odd codes -m..m), TTQ weight_bits; else None."""
        if self.weight_kind != "int":
            return None
        return self.weight_bits + 1 if self.scheme == "dorefa" else self.weight_bits

    @property
    def kbit(self):
        """Hidden activations are unsigned levels (binarized schemes with act_bits >= 2; HWGQ always)."""
        return self.binarized and (self.act_bits > 1 or self.scheme == "hwgq")

    @property
    def act_step(self):
        """The real step between activation levels: HWGQ's Delta (:func:`hwgq_step`), else 1/m."""
        return hwgq_step(self.act_bits) if self.scheme == "hwgq" else 1.0 / self.levels

    @property
    def act_offsets(self):
        """The m rounding points of the level activations (:func:`level_offsets`)."""
        return level_offsets(self.levels, hwgq_step(self.act_bits) if self.scheme == "hwgq" else None)

    @property
    def levels(self):
        """m = 2^act_bits - 1."""
        return (1 << self.act_bits) - 1

    @property
    def arch(self):
        """The architecture as a string, e.g. "8x8x1 c16 c32 p2 128 10 (act_bits 2)"."""
        return arch_string(self)

    def layer_scale(self, i):
        """BN input scale of binarized layer ``i``: 1/(2^pixel_bits - 1) (first), 1/m (k-bit input), Delta (HWGQ
        levels), 1 (bipolar)."""
        if i == 0:
            return self.input_scale
        if self.scheme == "hwgq":
            return self.act_step
        return 1.0 / self.levels if self.kbit else 1.0

    def weight_code(self, i):
        """Inference weights of compute layer ``i``: (integer codes (out, in) float64, per-channel scale (out,)
        or None). The real weights are ``scale[:, None] * codes`` (times a positive per-layer factor that BN
        and the argmax absorb: DoReFa's 1/m, TTQ's max(Wp, Wn) / M, TWN's alpha). The last layer never has a
        per-channel scale (it would change the argmax of the accumulators the hardware outputs)."""
        L, sch = self.layers[i], self.scheme
        last = L.gamma is None
        if sch == "ternary" or (sch == "syq" and self.weight_bits == 2):
            codes = ternarize(L.w)
        elif sch == "dorefa":
            codes = dorefa_code(L.w, self.weight_bits)[0]
        elif sch == "ttq":
            codes = ttq_code(L.w, L.alpha, self.weight_bits)[0]
        elif sch == "float":
            return L.w, None
        else:
            codes = np.where(L.w >= 0, 1.0, -1.0)
        if last or sch not in ("xnor", "hwgq", "syq"):
            return codes, None
        return codes, (L.alpha.astype(np.float64) if sch == "syq" else row_mean_abs(L.w))

    def row_scale(self, i, wscale=None):
        """The BN input of compute layer ``i`` is ``d * row_scale(i)`` (d the integer dot product): the
        :meth:`layer_scale`, times the previous layer's XNOR-Net activation scale, times the per-channel
        weight scale ``wscale`` (from :meth:`weight_code`); a float when it is one number, else (out,).
        One definition for inference and export: the products are formed in this order, once."""
        sc = self.layer_scale(i)
        prev = next((P.act_scale for P in reversed(self.layers[:i]) if P.kind != "pool"), 1.0)
        if prev == 1.0 and wscale is None:
            return sc
        r = np.full(self.layers[i].w.shape[0], sc)
        if prev != 1.0:
            r = r * prev
        if wscale is not None:
            r = r * wscale
        return r


def arch_string(result):
    """``"<input> <entries> <classes>"``, e.g. ``"8x8x1 c16 c32 p2 128 10"`` (+ act_bits when > 1)."""
    parts = ["x".join(map(str, result.input_shape))]
    for L in result.layers:
        if L.kind == "conv":
            parts.append(f"c{L.w.shape[0]}" + ("" if L.kernel == 3 else f"k{L.kernel}"))
        elif L.kind == "pool":
            parts.append(f"p{L.kernel}")
        else:
            parts.append(str(L.w.shape[0]))
    s = " ".join(parts)
    return s + (f" (act_bits {result.act_bits})" if result.kbit else "")


def _init(sizes, scheme, rng, geo=None, bn_init=(1.0, 0.0)):
    """Initial layers: an MLP of ``sizes`` or the layers of geometry ``geo`` (see :func:`_geometry`).

    ``bn_init``: initial (gamma, beta) of the hidden BNs.
    """
    if geo is None:
        geo = [("fc", n_out, 0, (n_in,), (n_out,)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    layers = []
    for i, (kind, n, k, in_shape, out_shape) in enumerate(geo):
        last = i == len(geo) - 1
        if kind == "pool":
            layers.append(Layer(None, kind="pool", kernel=k, in_shape=in_shape, out_shape=out_shape))
            continue
        n_in = k * k * in_shape[2] if kind == "conv" else math.prod(in_shape)
        if scheme == "float":
            lim = math.sqrt(6.0 / (n_in + n))
        else:
            lim = 1.0 if scheme == "progressive" else 0.5
        L = Layer(rng.uniform(-lim, lim, (n, n_in)), kind=kind, kernel=k, in_shape=in_shape, out_shape=out_shape)
        if not last:
            L.gamma, L.beta = np.full(n, float(bn_init[0])), np.full(n, float(bn_init[1]))
            L.mean, L.var = np.zeros(n), np.ones(n)
            if scheme == "syq":
                L.alpha = row_mean_abs(L.w)
        elif scheme == "float":
            L.bias = np.zeros(n)
        if scheme == "ttq":
            L.alpha = np.ones(2)
        layers.append(L)
    return layers


def _as_input(model, x):
    """Pixels (B, F) or (B, H, W, C) -> float64 in the first layer's layout ((B, F) or NHWC)."""
    a = np.asarray(x, np.float64)
    a = a.reshape(a.shape[0], -1)
    if model.layers[0].kind == "conv":
        a = a.reshape((a.shape[0],) + tuple(model.layers[0].in_shape))
    return a


def _dot(a, L, w):
    """Dense: (B, ...) -> (B, out); conv: (B, H, W, C) -> (B, OH, OW, out)."""
    if L.kind == "conv":
        return _mm(im2col(a, L.kernel), w.T)
    return a.reshape(a.shape[0], -1) @ w.T


def _mm(a, b):
    """(..., K) @ (K, N) as one 2-D BLAS product (N-D matmul would loop over small stacked matrices)."""
    return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[1],))


def _bn_axes(z):
    """BN reduction axes: batch (Dense) or batch and positions (conv)."""
    return 0 if z.ndim == 2 else tuple(range(z.ndim - 1))


def _forward_eval(model, x, recalibrate=False):
    """Inference forward in float64; returns the scores (B, classes).

    ``recalibrate``: set every BN's mean/var to the population statistics of
    its input over ``x`` as the pass reaches it (layer i's input depends only
    on the layers before it, already recalibrated), then use them: one pass
    recalibrates the whole network and gives its scores.
    Binarized: dot products d are exact integers; z = d * row_scale(i) (XNOR-Net: the activation
    scales are recalibrated in the same pass, before the next layer reads them).
    """
    s = model.input_scale
    a = _as_input(model, x)
    if model.scheme == "float":
        a = a * s
    for i, L in enumerate(model.layers):
        if L.kind == "pool":
            a = _pool_windows(a, L.kernel).max(-1)
            continue
        w, wscale = model.weight_code(i)
        d = _dot(a, L, w)
        if L.gamma is None:
            if model.scheme == "float":
                return d + L.bias
            return d                            # integer dot products: the hardware's argmax
        sc = model.row_scale(i, wscale) if model.binarized else 1.0
        z = d * sc if not (np.isscalar(sc) and sc == 1.0) else d
        if recalibrate:
            ax = _bn_axes(z)
            L.mean, L.var = z.mean(ax), z.var(ax)
        mean, var = L.mean, L.var
        if model.scheme == "float":
            a = _act(L.gamma * (z - mean) / np.sqrt(var + model.eps) + L.beta, model.act, 1.0)[0]
        elif not model.kbit:
            y = L.gamma * (z - mean) / np.sqrt(var + model.eps) + L.beta
            a = np.where(y >= 0, 1.0, -1.0)
            if recalibrate and model.scheme == "xnor":
                L.act_scale = float(np.mean(np.abs(y)))
        else:
            y0 = L.gamma * (z - mean) / np.sqrt(var + model.eps)
            a = np.zeros(y0.shape)
            for c in model.act_offsets:
                a += y0 + (L.beta - c) >= 0
    raise AssertionError("unreachable")


def scores(result, x):
    """Raw output of the trained inference network: (B, classes) float64.

    ``x``: (B, F) pixels or images (B, H, W, C) (NHWC). Binarized schemes: the
    integer dot products d of the last layer (the exported network outputs the
    popcount (d + n) / 2 for bipolar hidden activations, d itself for k-bit
    ones and for ternary weights: same argmax).
    """
    x = np.asarray(x)
    F = math.prod(result.input_shape)
    if x.ndim < 2 or math.prod(x.shape[1:]) != F or (x.ndim > 2 and tuple(x.shape[1:]) != result.input_shape):
        raise ConfigError("predict", "x", f"expected (B, {F}) pixels or (B,) + {result.input_shape} images, "
                          f"got {x.shape}", "flatten the images (Dataset does)")
    return _forward_eval(result, x)


def predict(result, x):
    """Predicted labels (B,) int64 of the trained network (deterministic sign weights; ternary: :func:`ternarize`)."""
    return np.argmax(scores(result, x), axis=1)


def accuracy(result, x, y):
    """Fraction of ``x`` classified as ``y``."""
    return float(np.mean(predict(result, x) == np.asarray(y)))


# ---------------------------------------------------------------------- training step

def hwgq_act(y, bits):
    """(forward, backward mask) of HWGQ's ``bits``-bit activation: Delta * min(m, round_half_up(max(y, 0) /
    Delta)) (levels j Delta, the inference thresholds (j - 1/2) Delta), mask 0 <= y <= m Delta (clipped ReLU)."""
    m, step = (1 << int(bits)) - 1, hwgq_step(bits)
    lv = np.minimum(round_half_up(np.maximum(y, 0.0) / step), m)
    return lv * step, ((y >= 0.0) & (y <= m * step)).astype(np.float64)


def _scaled_weights(model, L):
    """Training weights of a scaled scheme's layer and the map d loss / d weights -> parameter gradients.

    XNOR-Net / HWGQ: alpha sign(W), alpha = mean |W| per row (hidden layers), gradient
    dW (1/n + alpha 1{|W| <= 1}) (XNOR-Net's); SYQ: alpha Q with Q = sign(W) or :func:`ternarize`
    and the learned alpha (d alpha = sum dWq Q over the row; dW = alpha dWq 1{|W| <= 1}); the last
    layers of the three: Q with the STE. DoReFa: codes / m (:func:`dorefa_code`, straight through
    the rounding). TTQ: Wp where W > delta, -Wn where W < -delta, else 0 (the real scales; the
    inference uses their integer ratio, :func:`ttq_code`), dWp = sum of dWq where W > delta,
    dWn = -sum where W < -delta, dW = dWq scaled by Wp / 1 / Wn in the three regions.
    """
    sch, w = model.scheme, L.w
    last = L.gamma is None
    inside = (np.abs(w) <= 1.0).astype(np.float64)
    if sch == "dorefa":
        codes, dcodes = dorefa_code(w, model.weight_bits)
        m = (1 << model.weight_bits) - 1
        return codes / m, lambda g: {"w": g * dcodes}
    if sch == "ttq":
        _, pos, neg = ttq_code(w, L.alpha, model.weight_bits)
        wp, wn = L.alpha
        wq = wp * pos - wn * neg
        fac = np.where(pos, wp, np.where(neg, wn, 1.0))
        return wq, lambda g: {"w": g * fac, "alpha": np.array([np.sum(g * pos), -np.sum(g * neg)])}
    q = ternarize(w) if (sch == "syq" and model.weight_bits == 2) else np.where(w >= 0, 1.0, -1.0)
    if last:
        return q, lambda g: {"w": g * inside}
    if sch == "syq":
        al = L.alpha
        return al[:, None] * q, lambda g: {"w": g * al[:, None] * inside, "alpha": np.sum(g * q, axis=1)}
    al = row_mean_abs(w)[:, None]
    return al * q, lambda g: {"w": g * (1.0 / w.shape[1] + al * inside)}


def _train_step(model, x, y, rng, v, loss_kind, prog_acts, momentum=0.1):
    """Forward + backward on one batch. Returns (loss, grads, log_alpha grad); grads: a dict per layer."""
    scheme, s, eps = model.scheme, model.input_scale, model.eps
    B = x.shape[0]
    a = _as_input(model, x) * s
    if scheme == "float":
        kind = model.act
    elif scheme == "hwgq":
        kind = "hwgq"
    elif model.kbit:
        kind = "kbit"
    else:
        kind = "progressive" if (scheme == "progressive" and prog_acts) else "sign"
    cache = []
    wgrads = []
    for i, L in enumerate(model.layers):
        if L.kind == "pool":
            a, idx = _pool_forward(a, L.kernel)
            cache.append(idx)
            wgrads.append(None)
            continue
        if scheme in SCALED_SCHEMES:
            wq, wgrad = _scaled_weights(model, L)
        else:
            wq = binarize(L.w, scheme, rng, v)
            wgrad = None
        wgrads.append(wgrad)
        a_in = im2col(a, L.kernel) if L.kind == "conv" else a.reshape(B, -1)
        z = _mm(a_in, wq.T) if L.kind == "conv" else a_in @ wq.T
        if L.gamma is None:
            cache.append((a_in, wq, None))
            break
        ax = _bn_axes(z)
        cnt = z.size // z.shape[-1]
        mu, var = z.mean(ax), z.var(ax)
        L.mean = (1 - momentum) * L.mean + momentum * mu
        L.var = (1 - momentum) * L.var + momentum * var * cnt / max(cnt - 1, 1)
        std = np.sqrt(var + eps)
        xhat = (z - mu) / std
        yv = L.gamma * xhat + L.beta
        if kind == "hwgq":
            a_next, mask = hwgq_act(yv, model.act_bits)
        else:
            a_next, mask = _act(yv, kind, v, model.act_bits)
        if scheme == "xnor" and not model.kbit:   # +-1 activations times their scale mean |y| (constant per batch)
            scale = float(np.mean(np.abs(yv)))
            L.act_scale = (1 - momentum) * L.act_scale + momentum * scale
            a_next, mask = a_next * scale, mask * scale
        cache.append((a_in, wq, (xhat, std, mask)))
        a = a_next
    z_out = z
    if scheme == "float":
        out = z_out + model.layers[-1].bias
        alpha = 1.0
    else:
        alpha = math.exp(model.log_alpha)
        out = alpha * z_out
    onehot = np.zeros_like(out)
    onehot[np.arange(B), y] = 1.0
    if loss_kind == "ce":
        sh = out - out.max(1, keepdims=True)
        p = np.exp(sh)
        p /= p.sum(1, keepdims=True)
        loss = float(-np.mean(np.log(p[np.arange(B), y] + 1e-300)))
        dout = (p - onehot) / B
    else:
        t = 2 * onehot - 1
        mm = np.maximum(0.0, 1.0 - t * out)
        loss = float(np.mean(np.sum(mm * mm, 1)))
        dout = -2.0 * t * mm / B
    grads = [dict() for _ in model.layers]
    if scheme == "float":
        grads[-1]["bias"] = dout.sum(0)
        dz = dout
        log_alpha_grad = 0.0
    else:
        log_alpha_grad = float(np.sum(dout * z_out) * alpha)
        dz = dout * alpha
    # dz: gradient w.r.t. the current layer's output (pre-BN z for compute layers, pooled values for pools)
    for i in range(len(model.layers) - 1, -1, -1):
        L = model.layers[i]
        if L.kind == "pool":
            dz = _pool_backward(dz.reshape((B,) + tuple(L.out_shape)), cache[i], L.in_shape, L.kernel)
            continue
        a_in, wq, bn = cache[i]
        if bn is not None:
            xhat, std, mask = bn
            dyv = dz.reshape(xhat.shape) * mask
            ax = _bn_axes(xhat)
            cnt = xhat.size // xhat.shape[-1]
            grads[i]["gamma"] = np.sum(dyv * xhat, ax)
            grads[i]["beta"] = np.sum(dyv, ax)
            dxhat = dyv * L.gamma
            dz = (cnt * dxhat - dxhat.sum(ax) - xhat * np.sum(dxhat * xhat, ax)) / (cnt * std)
        if L.kind == "conv":
            k_in = a_in.shape[-1]
            dwq = dz.reshape(-1, dz.shape[-1]).T @ a_in.reshape(-1, k_in)
            grads[i].update(wgrads[i](dwq) if wgrads[i] else {"w": dwq * _wgrad_factor(L.w, scheme, v)})
            if i:
                dz = col2im(_mm(dz, wq), L.in_shape, L.kernel)
        else:
            dwq = dz.T @ a_in
            grads[i].update(wgrads[i](dwq) if wgrads[i] else {"w": dwq * _wgrad_factor(L.w, scheme, v)})
            if i:
                dz = dz @ wq
    return loss, grads, log_alpha_grad


class _Adam:
    def __init__(self, b1=0.9, b2=0.999, eps=1e-8):
        self.b1, self.b2, self.eps, self.t, self.m, self.v = b1, b2, eps, 0, {}, {}

    def step(self, params, grads, lr):
        """params/grads: dicts key -> (obj, attr) / array; updates obj.attr in place."""
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for k, g in grads.items():
            obj, attr = params[k]
            m = self.m.get(k, 0.0) * self.b1 + (1 - self.b1) * g
            v = self.v.get(k, 0.0) * self.b2 + (1 - self.b2) * g * g
            self.m[k], self.v[k] = m, v
            setattr(obj, attr, getattr(obj, attr) - lr * (m / c1) / (np.sqrt(v / c2) + self.eps))


class _Box:
    def __init__(self, value):
        self.value = value


# ---------------------------------------------------------------------- public training entry point

def _check_weight_bits(scheme, weight_bits, where):
    """The weight bits of ``scheme`` (:data:`WEIGHT_BITS`; 1 for the schemes without a choice)."""
    if scheme not in WEIGHT_BITS:
        if weight_bits not in (None, 1):
            raise ConfigError(where, "weight_bits", f"scheme {scheme!r} has fixed weights, got {weight_bits!r}",
                              f"weight_bits applies to {', '.join(WEIGHT_BITS)}")
        return 1
    default, lo, hi = WEIGHT_BITS[scheme]
    if weight_bits is None:
        return default
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, (int, np.integer)) or not lo <= weight_bits <= hi:
        raise ConfigError(where, "weight_bits", f"must be an integer {lo}..{hi} for {scheme}, got {weight_bits!r}",
                          {"syq": "1 = binary, 2 = ternary codebook", "dorefa": "k-bit weights, e.g. 2",
                           "ttq": "bits of the integer weights holding Wp : Wn, e.g. 4"}[scheme])
    return int(weight_bits)


def train(dataset, scheme="ste", hidden=(256, 256), epochs=30, batch=32, lr=None, lr_decay=0.1, seed=0,
          loss="ce", act="relu", v_start=1.0, v_end=1000.0, progressive_acts=False, recalibrate=True,
          eps=1e-4, progress=None, act_bits=1, weight_bits=None):
    """Train one network on a :class:`qnnfab.train.datasets.Dataset`; returns a :class:`TrainResult`.

    ``scheme``: one of :data:`SCHEMES` ("ste", "stochastic", "progressive", "ternary", "xnor",
    "dorefa", "hwgq", "syq", "ttq", "float"); ``weight_bits``: the weight bits of "dorefa"
    (1..8, default 2), "syq" (1 binary, 2 ternary; default 1) and "ttq" (2..8, the integer
    weights of Wp : Wn; default 4), :data:`WEIGHT_BITS`; None or 1 for the others. ``hidden``:
    hidden layers, ints (Dense sizes) and strings "c<n>" / "c<n>k<k>"
    (convolution, n channels, 3x3 or kxk, stride 1, no padding) and "p<k>"
    (k x k max pool), or one comma-separated string ("c16,c32,p2,128");
    see :func:`parse_hidden`. ``act_bits``: hidden activation bits of the
    binarized schemes (1: sign / bipolar; k >= 2: unsigned k-bit levels; the
    float baseline ignores it). ``lr``: Adam learning rate (default 0.1 for
    the binarized schemes, whose latent weights live in [-1, 1]; 0.03 with
    k-bit activations, whose BNs start at gamma = beta = 0.5 so that the BN
    outputs start inside the STE window [0, 1]; 0.003 for float), decayed
    exponentially to ``lr * lr_decay`` at the last epoch.
    ``batch``: mini-batch size (the last partial batch of an epoch is dropped
    if smaller than 2). ``progress(epoch, loss, train_acc, test_acc)`` is
    called after every epoch (1-based epoch, mean training loss, accuracies
    in [0, 1]).
    """
    where = f"train(scheme={scheme!r})"
    if scheme not in SCHEMES:
        raise ConfigError(where, "scheme", f"unknown scheme {scheme!r}", f"use one of {SCHEMES}")
    if loss not in LOSSES:
        raise ConfigError(where, "loss", f"unknown loss {loss!r}", f"use one of {LOSSES}")
    if act not in ("relu", "hardtanh"):
        raise ConfigError(where, "act", f"unknown float activation {act!r}", "use 'relu' or 'hardtanh'")
    if isinstance(act_bits, bool) or not isinstance(act_bits, (int, np.integer)) or not 1 <= int(act_bits) <= 8:
        raise ConfigError(where, "act_bits", f"must be an integer 1..8, got {act_bits!r}",
                          "1 = bipolar (sign), k >= 2 = unsigned k-bit activations")
    act_bits = int(act_bits)
    weight_bits = _check_weight_bits(scheme, weight_bits, where)
    if not recalibrate and scheme in ("dorefa", "ttq"):   # BN statistics of training are on the real weights
        raise ConfigError(where, "recalibrate", f"must be True for scheme {scheme!r}: its BN statistics from "
                          "training are at the real weights' scale, the network is evaluated on integer codes",
                          "leave recalibrate=True")
    if progressive_acts and act_bits > 1 and scheme == "progressive":
        raise ConfigError(where, "progressive_acts", f"is only defined for act_bits = 1 (got {act_bits})",
                          "use progressive_acts=False with k-bit activations")
    entries = parse_hidden(hidden)
    if not entries:
        raise ConfigError(where, "hidden", f"needs one or more layers, got {hidden!r}",
                          "e.g. hidden=(256, 256) or 'c16,c32,p2,128'")
    for name, val in (("epochs", epochs), ("batch", batch)):
        if int(val) < 1:
            raise ConfigError(where, name, f"must be >= 1, got {val}")
    if int(batch) < 2:
        raise ConfigError(where, "batch", "batch norm needs batches of 2 or more", "use batch >= 2")
    if not 0 < v_start <= v_end:
        raise ConfigError(where, "v_start", f"need 0 < v_start <= v_end, got {v_start}, {v_end}", "e.g. 1 and 1000")
    geo = _geometry(entries, dataset.input_shape, dataset.features, dataset.classes, where)
    if lr is None:
        lr = 0.003 if scheme == "float" else (0.1 if act_bits == 1 else 0.03)
    if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(where, "lr", f"must be a finite number > 0, got {lr!r}", "e.g. lr=0.01")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    xtr, ytr = dataset.x_train.astype(np.float64), dataset.y_train
    xte, yte = dataset.x_test.astype(np.float64), dataset.y_test
    sizes = (dataset.features,) + tuple(math.prod(g[4]) for g in geo)
    kbit_init = scheme not in ("float", "hwgq") and act_bits > 1     # HWGQ's levels fit the unit Gaussian: gamma 1, beta 0
    layers = _init(sizes, scheme, rng, geo, bn_init=KBIT_BN_INIT if kbit_init else (1.0, 0.0))
    model = TrainResult(scheme, sizes, dataset.pixel_bits, layers,
                        log_alpha=-0.5 * math.log(sizes[-2]), act=act, eps=float(eps), dataset=dataset.name,
                        act_bits=act_bits if scheme != "float" else 1, input_shape=tuple(geo[0][3]),
                        weight_bits=weight_bits)
    if layers[0].kind == "conv":
        xtr, xte = xtr.reshape((-1,) + model.input_shape), xte.reshape((-1,) + model.input_shape)
    model.params = dict(hidden=tuple(t for t, _ in entries), epochs=int(epochs), batch=int(batch), lr=float(lr),
                        lr_decay=float(lr_decay), seed=seed, loss=loss, act=act, v_start=v_start, v_end=v_end,
                        progressive_acts=progressive_acts, recalibrate=recalibrate, eps=eps, act_bits=act_bits,
                        weight_bits=weight_bits)
    params = {}
    for i, L in enumerate(model.layers):
        if L.w is None:
            continue
        params[(i, "w")] = (L, "w")
        if L.gamma is not None:
            params[(i, "gamma")] = (L, "gamma")
            params[(i, "beta")] = (L, "beta")
        if L.bias is not None:
            params[(i, "bias")] = (L, "bias")
        if L.alpha is not None:
            params[(i, "alpha")] = (L, "alpha")
    alpha_box = _Box(np.array(model.log_alpha))
    params["log_alpha"] = (alpha_box, "value")
    opt = _Adam()
    n = len(ytr)
    steps_per_epoch = max(1, n // batch if n % batch < 2 else n // batch + 1)
    total = int(epochs) * steps_per_epoch
    hist = {k: [] for k in ("epoch", "loss", "train_acc", "test_acc", "lr", "v")}
    step = 0
    for ep in range(int(epochs)):
        lr_ep = lr * (lr_decay ** (ep / max(1, int(epochs) - 1)))
        perm = rng.permutation(n)
        losses = []
        v = 1.0
        for b in range(steps_per_epoch):
            idx = perm[b * batch:(b + 1) * batch]
            if len(idx) < 2:
                continue
            v = progressive_v(step, total, v_start, v_end) if scheme == "progressive" else 1.0
            model.log_alpha = float(alpha_box.value)
            l, grads, ga = _train_step(model, xtr[idx], ytr[idx], rng, v, loss, progressive_acts)
            flat = {(i, k): g for i, gd in enumerate(grads) for k, g in gd.items()}
            if scheme != "float":
                flat["log_alpha"] = np.array(ga)
            opt.step(params, flat, lr_ep)
            if scheme not in ("float", "dorefa"):   # BinaryNet clipping; progressive P kept in [-1, 1] too
                for L in model.layers:
                    if L.w is not None:
                        np.clip(L.w, -1.0, 1.0, out=L.w)
            losses.append(l)
            step += 1
        model.log_alpha = float(alpha_box.value)
        # one pass over the training set recalibrates the BN statistics and scores it
        tr_acc = float(np.mean(np.argmax(_forward_eval(model, xtr, recalibrate), 1) == ytr))
        te_acc = float(np.mean(np.argmax(_forward_eval(model, xte), 1) == yte)) if len(yte) else float("nan")
        mloss = float(np.mean(losses)) if losses else float("nan")
        for k, val in (("epoch", ep + 1), ("loss", mloss), ("train_acc", tr_acc), ("test_acc", te_acc),
                       ("lr", lr_ep), ("v", v)):
            hist[k].append(val)
        if progress is not None:
            progress(ep + 1, mloss, tr_acc, te_acc)
    model.history = hist
    model.train_acc, model.test_acc = hist["train_acc"][-1], hist["test_acc"][-1]
    model.seconds = time.perf_counter() - t0
    return model

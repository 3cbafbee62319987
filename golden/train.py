"""Quantization-aware training of small binarized MLPs in NumPy, and export to a qnnfab network config.

Network (``sizes = (F, H1, ..., Hk, classes)``)::

    x (B, F) uint pixels of pixel_bits bits
    -> [Dense(W_1) -> BatchNorm -> sign] -> ... -> [Dense(W_k) -> BatchNorm -> sign]
    -> Dense(W_out) -> alpha * z           (scores; argmax = label)

Binarized schemes (weights are +-1 in every Dense, ``sign(0) = +1``):

- the first layer multiplies the integer pixels by bipolar weights (as
  CNV's first layer: add/subtract); its BN input is ``z = s * d`` with ``d``
  the integer dot product and ``s = 1 / (2^pixel_bits - 1)``;
- hidden layers are bipolar x bipolar (``d = 2P - n``, P the XNOR popcount);
- the last layer has no BN: the scores are ``alpha * d`` with one learnable
  positive scalar ``alpha`` (training only: it changes no argmax), so the
  hardware's raw accumulator (popcount P = (d + n) / 2) has the same argmax
  (first index on ties) as the trained network.

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
                   clip(v * y, -1, 1) during training too (default: sign + STE).
``"float"``        baseline of the same size: float weights, BN, ``act``
                   ("relu" or "hardtanh") activations, biased last layer,
                   float pixels x * s.

Activations of binarized layers: forward sign(y) (y >= 0 -> +1), backward
the gradient where |y| <= 1 (hard tanh STE). Loss: softmax cross-entropy
(``loss="ce"``) or squared hinge (``"hinge"``); Adam with an exponential
learning-rate decay from ``lr`` to ``lr * lr_decay``; BN uses batch statistics
in training. After every epoch the BN statistics of the deterministic
binarized network are recomputed over the training set (``recalibrate``,
default on) and that network is evaluated; the final model is that network.

Inference semantics (:func:`predict`, :func:`scores`): float64, BN as
``gamma * (s * d - mu) / sigma + beta >= 0`` with ``sigma = sqrt(var + eps)``,
exactly the expression :func:`qnnfab.golden.bn_to_thresholds` folds, so the
exported integer network (:func:`export`) reproduces every prediction.

Export: ``<name>.npz`` with ``fc<i>/weights`` (bits, 1 = +1) and
``fc<i>/thresholds`` ((MH, 1) int64; first layer in the dot-product domain,
hidden layers in the popcount domain; rows with gamma < 0 have their weight
bits inverted by :func:`qnnfab.golden.fold_flips_into_weights`), plus
``<name>.toml`` in the :mod:`qnnfab.netconfig` format (input_kind "uint",
input_bits = pixel_bits, last layer act "acc").
"""

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._util import ConfigError
from .threshold import bn_to_thresholds, fold_flips_into_weights

__all__ = ["SCHEMES", "TrainResult", "train", "predict", "scores", "accuracy", "export", "integer_layers",
           "progressive_v", "hard_sigmoid", "binarize", "default_folding", "bn_fold_layer", "ste_sign"]

SCHEMES = ("ste", "stochastic", "progressive", "float")
LOSSES = ("ce", "hinge")


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


def binarize(w, scheme="ste", rng=None, v=1.0):
    """Training-time weights of ``scheme`` from the real-valued parameters ``w``.

    "ste": sign(w) (0 -> +1); "stochastic": +1 with probability hard_sigmoid(w)
    (needs ``rng``); "progressive": clip(v * w, -1, 1); "float": w itself.
    """
    if scheme == "ste":
        return np.where(w >= 0, 1.0, -1.0)
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


def _act(y, kind, v):
    """Activation forward value and derivative factor (elementwise)."""
    if kind == "sign":
        return ste_sign(y)
    if kind == "relu":
        return np.maximum(y, 0.0), (y > 0).astype(np.float64)
    if kind == "hardtanh":
        return np.clip(y, -1.0, 1.0), (np.abs(y) <= 1.0).astype(np.float64)
    if kind == "progressive":
        return np.clip(v * y, -1.0, 1.0), v * (np.abs(v * y) < 1.0)
    raise ConfigError("train", "act", f"unknown activation {kind!r}", "use 'relu' or 'hardtanh'")


def _wgrad_factor(w, scheme, v):
    """d(training weight)/d(parameter): STE 1 inside [-1, 1]; progressive v where |v w| < 1; float 1."""
    if scheme in ("ste", "stochastic"):
        return (np.abs(w) <= 1.0).astype(np.float64)
    if scheme == "progressive":
        return v * (np.abs(v * w) < 1.0)
    return 1.0


# ---------------------------------------------------------------------- model

@dataclass
class Layer:
    """One Dense layer: ``w`` (out, in) real-valued parameters; BN (None for the last layer)."""
    w: np.ndarray
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    mean: np.ndarray | None = None
    var: np.ndarray | None = None
    bias: np.ndarray | None = None      # float scheme, last layer only


@dataclass
class TrainResult:
    """A trained network and its training record.

    ``layers``: list of :class:`Layer` (the final, recalibrated model);
    ``log_alpha``: last-layer score scale (binarized schemes);
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

    @property
    def input_scale(self):
        return 1.0 / ((1 << self.pixel_bits) - 1)

    @property
    def binarized(self):
        return self.scheme != "float"


def _init(sizes, scheme, rng):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        if scheme == "float":
            lim = math.sqrt(6.0 / (n_in + n_out))
        else:
            lim = 1.0 if scheme == "progressive" else 0.5
        L = Layer(rng.uniform(-lim, lim, (n_out, n_in)))
        if not last:
            L.gamma, L.beta = np.ones(n_out), np.zeros(n_out)
            L.mean, L.var = np.zeros(n_out), np.ones(n_out)
        elif scheme == "float":
            L.bias = np.zeros(n_out)
        layers.append(L)
    return layers


def _eval_weights(layers, scheme):
    """The inference weights: +-1 (binarized schemes) or the float weights."""
    if scheme == "float":
        return [L.w for L in layers]
    return [np.where(L.w >= 0, 1.0, -1.0) for L in layers]


def _forward_eval(model, x, stats=None, collect=False):
    """Inference forward in float64. ``stats``: optional per-layer (mean, var) overriding the stored ones.

    Returns (scores (B, classes), list of BN-input batches if ``collect``).
    Binarized: dot products d are exact integers; z = s * d (first layer) or d.
    """
    s = model.input_scale
    ws = _eval_weights(model.layers, model.scheme)
    a = np.asarray(x, np.float64)
    if model.scheme == "float":
        a = a * s
    zs = []
    for i, (L, w) in enumerate(zip(model.layers, ws)):
        d = a @ w.T
        if L.gamma is None:
            if model.scheme == "float":
                return d + L.bias, zs
            return d, zs                        # integer dot products: the hardware's argmax
        z = d * s if (i == 0 and model.scheme != "float") else d
        if collect:
            zs.append(z)
        mean, var = (L.mean, L.var) if stats is None else stats[i]
        y = L.gamma * (z - mean) / np.sqrt(var + model.eps) + L.beta
        if model.scheme == "float":
            a = _act(y, model.act, 1.0)[0]
        else:
            a = np.where(y >= 0, 1.0, -1.0)
    raise AssertionError("unreachable")


def _population_stats(model, x):
    """BN mean/var of every hidden layer of the inference network over ``x``, computed layer by layer."""
    stats = [(L.mean, L.var) for L in model.layers]
    for i, L in enumerate(model.layers[:-1]):
        _, zs = _forward_eval(model, x, stats, collect=True)
        z = zs[i]
        stats[i] = (z.mean(0), z.var(0))
    return stats


def scores(result, x):
    """Raw output of the trained inference network: (B, classes) float64.

    Binarized schemes: the integer dot products d of the last layer (the
    exported network outputs the popcount (d + n) / 2: same argmax).
    """
    x = np.asarray(x)
    if x.ndim > 2 and math.prod(x.shape[1:]) == result.sizes[0]:
        x = x.reshape(x.shape[0], -1)           # images (B, H, W, C): NHWC-flattened as the FC layer does
    if x.ndim != 2 or x.shape[1] != result.sizes[0]:
        raise ConfigError("predict", "x", f"expected (B, {result.sizes[0]}) pixels, got {x.shape}",
                          "flatten the images (Dataset does)")
    return _forward_eval(result, x)[0]


def predict(result, x):
    """Predicted labels (B,) int64 of the trained network (binarized: deterministic sign weights)."""
    return np.argmax(scores(result, x), axis=1)


def accuracy(result, x, y):
    """Fraction of ``x`` classified as ``y``."""
    return float(np.mean(predict(result, x) == np.asarray(y)))


# ---------------------------------------------------------------------- training step

def _train_step(model, x, y, rng, v, loss_kind, prog_acts, momentum=0.1):
    """Forward + backward on one batch. Returns (loss, grads) with grads a list of dicts per layer (+ "log_alpha")."""
    scheme, s, eps = model.scheme, model.input_scale, model.eps
    B = x.shape[0]
    a = x * s
    cache = []
    for i, L in enumerate(model.layers):
        wq = binarize(L.w, scheme, rng, v)
        z = a @ wq.T
        if L.gamma is None:
            cache.append((a, wq, None))
            break
        mu, var = z.mean(0), z.var(0)
        L.mean = (1 - momentum) * L.mean + momentum * mu
        L.var = (1 - momentum) * L.var + momentum * var * B / max(B - 1, 1)
        std = np.sqrt(var + eps)
        xhat = (z - mu) / std
        yv = L.gamma * xhat + L.beta
        if scheme == "float":
            kind = model.act
        else:
            kind = "progressive" if (scheme == "progressive" and prog_acts) else "sign"
        a_next, mask = _act(yv, kind, v)
        cache.append((a, wq, (xhat, std, mask)))
        a = a_next
    z_out = a @ wq.T
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
        m = np.maximum(0.0, 1.0 - t * out)
        loss = float(np.mean(np.sum(m * m, 1)))
        dout = -2.0 * t * m / B
    grads = [dict() for _ in model.layers]
    if scheme == "float":
        grads[-1]["bias"] = dout.sum(0)
        dz = dout
        log_alpha_grad = 0.0
    else:
        log_alpha_grad = float(np.sum(dout * z_out) * alpha)
        dz = dout * alpha
    for i in range(len(model.layers) - 1, -1, -1):
        L = model.layers[i]
        a_in, wq, bn = cache[i]
        if bn is not None:
            xhat, std, mask = bn
            dyv = dz * mask
            grads[i]["gamma"] = np.sum(dyv * xhat, 0)
            grads[i]["beta"] = np.sum(dyv, 0)
            dxhat = dyv * L.gamma
            dz = (B * dxhat - dxhat.sum(0) - xhat * np.sum(dxhat * xhat, 0)) / (B * std)
        grads[i]["w"] = (dz.T @ a_in) * _wgrad_factor(L.w, scheme, v)
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

def train(dataset, scheme="ste", hidden=(256, 256), epochs=30, batch=32, lr=None, lr_decay=0.1, seed=0,
          loss="ce", act="relu", v_start=1.0, v_end=1000.0, progressive_acts=False, recalibrate=True,
          eps=1e-4, progress=None):
    """Train one network on a :class:`qnnfab.golden.datasets.Dataset`; returns a :class:`TrainResult`.

    ``scheme``: "ste" | "stochastic" | "progressive" | "float". ``hidden``:
    hidden layer sizes. ``lr``: Adam learning rate (default 0.1 for the
    binarized schemes, whose latent weights live in [-1, 1]; 0.003 for float), decayed
    exponentially to ``lr * lr_decay`` at the last epoch. ``batch``: mini-batch
    size (the last partial batch of an epoch is dropped if smaller than 2).
    ``progress(epoch, loss, train_acc, test_acc)`` is called after every epoch
    (1-based epoch, mean training loss, accuracies in [0, 1]).
    """
    where = f"train(scheme={scheme!r})"
    if scheme not in SCHEMES:
        raise ConfigError(where, "scheme", f"unknown scheme {scheme!r}", f"use one of {SCHEMES}")
    if loss not in LOSSES:
        raise ConfigError(where, "loss", f"unknown loss {loss!r}", f"use one of {LOSSES}")
    if act not in ("relu", "hardtanh"):
        raise ConfigError(where, "act", f"unknown float activation {act!r}", "use 'relu' or 'hardtanh'")
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ConfigError(where, "hidden", f"needs one or more positive layer sizes, got {hidden}",
                          "e.g. hidden=(256, 256)")
    for name, val in (("epochs", epochs), ("batch", batch)):
        if int(val) < 1:
            raise ConfigError(where, name, f"must be >= 1, got {val}")
    if int(batch) < 2:
        raise ConfigError(where, "batch", "batch norm needs batches of 2 or more", "use batch >= 2")
    if not 0 < v_start <= v_end:
        raise ConfigError(where, "v_start", f"need 0 < v_start <= v_end, got {v_start}, {v_end}", "e.g. 1 and 1000")
    if lr is None:
        lr = 0.003 if scheme == "float" else 0.1
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    xtr, ytr = dataset.x_train.astype(np.float64), dataset.y_train
    xte, yte = dataset.x_test.astype(np.float64), dataset.y_test
    sizes = (dataset.features,) + hidden + (int(dataset.classes),)
    model = TrainResult(scheme, sizes, dataset.pixel_bits, _init(sizes, scheme, rng),
                        log_alpha=-0.5 * math.log(hidden[-1]), act=act, eps=float(eps), dataset=dataset.name)
    model.params = dict(hidden=hidden, epochs=int(epochs), batch=int(batch), lr=float(lr), lr_decay=float(lr_decay),
                        seed=seed, loss=loss, act=act, v_start=v_start, v_end=v_end,
                        progressive_acts=progressive_acts, recalibrate=recalibrate, eps=eps)
    params = {}
    for i, L in enumerate(model.layers):
        params[(i, "w")] = (L, "w")
        if L.gamma is not None:
            params[(i, "gamma")] = (L, "gamma")
            params[(i, "beta")] = (L, "beta")
        if L.bias is not None:
            params[(i, "bias")] = (L, "bias")
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
            if scheme != "float":        # BinaryNet clipping; progressive P kept in [-1, 1] too
                for L in model.layers:
                    np.clip(L.w, -1.0, 1.0, out=L.w)
            losses.append(l)
            step += 1
        model.log_alpha = float(alpha_box.value)
        if recalibrate:
            stats = _population_stats(model, xtr)
            for L, (m, var) in zip(model.layers, stats):
                if L.gamma is not None:
                    L.mean, L.var = m, var
        tr_acc = float(np.mean(np.argmax(_forward_eval(model, xtr)[0], 1) == ytr))
        te_acc = float(np.mean(np.argmax(_forward_eval(model, xte)[0], 1) == yte)) if len(yte) else float("nan")
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


# ---------------------------------------------------------------------- export

def bn_fold_layer(wbits, gamma, beta, mean, var, eps, in_kind, in_bits=None, scale=1.0):
    """Fold one binarized layer's BN + sign into (weight bits, (MH, 1) int64 thresholds) for acc >= T.

    ``wbits`` (MH, MW) weight bits (1 = +1). ``in_kind`` "uint": the
    accumulator is the integer dot product d of ``in_bits``-bit pixels and
    the BN input is ``scale * d``; "bipolar": the accumulator is the XNOR
    popcount P (d = 2P - MW). Rows with gamma < 0 get inverted weight bits.
    """
    mh, mw = wbits.shape
    sigma = np.sqrt(np.asarray(var, np.float64) + eps)
    if in_kind == "uint":
        hi = mw * ((1 << int(in_bits)) - 1)
        folded = bn_to_thresholds(gamma, beta, mean, sigma, domain="dot", scale=scale, acc_range=(-hi, hi))
    elif in_kind == "bipolar":
        folded = bn_to_thresholds(gamma, beta, mean, sigma, domain="popcount", n=mw)
    else:
        raise ConfigError("bn_fold_layer", "in_kind", f"must be 'uint' or 'bipolar', got {in_kind!r}")
    w, t = fold_flips_into_weights(wbits, folded, "bipolar")
    return w.astype(np.int64), np.asarray(t, np.int64).reshape(mh, 1)


def integer_layers(result):
    """The exported integer network: list of (weight bits (MH, MW) int64, thresholds (MH, 1) int64 or None)."""
    if not result.binarized:
        raise ConfigError("export", "scheme", "the float baseline has no integer form",
                          "export a binarized scheme (ste, stochastic, progressive)")
    out = []
    for i, L in enumerate(result.layers):
        wbits = (L.w >= 0).astype(np.int64)
        if L.gamma is None:
            out.append((wbits, None))
        elif i == 0:
            out.append(bn_fold_layer(wbits, L.gamma, L.beta, L.mean, L.var, result.eps, "uint", result.pixel_bits,
                                     result.input_scale))
        else:
            out.append(bn_fold_layer(wbits, L.gamma, L.beta, L.mean, L.var, result.eps, "bipolar"))
    return out


def _largest_divisor(n, target):
    return max(d for d in range(1, min(n, target) + 1) if n % d == 0)


def default_folding(sizes, first=(8, 16), hidden=(32, 16), last=(32, 10)):
    """(simd, pe) per layer: the largest divisors of the sizes not above the targets (simd, pe)."""
    fold = []
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        tgt = first if i == 0 else (last if i == n_layers - 1 else hidden)
        fold.append((_largest_divisor(sizes[i], tgt[0]), _largest_divisor(sizes[i + 1], tgt[1])))
    return fold


def export(result, out_dir, name=None, folding=None):
    """Write ``<name>.npz`` and ``<name>.toml`` (qnnfab.netconfig format) into ``out_dir``.

    ``folding``: optional list of (simd, pe) per layer (default
    :func:`default_folding`). Returns (toml_path, npz_path).
    """
    name = name or f"{result.dataset or 'net'}-{result.scheme}"
    if not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError("export", "name", f"{name!r} is not a plain file name", "use letters, digits, - _ .")
    layers = integer_layers(result)
    folding = folding or default_folding(result.sizes)
    if len(folding) != len(layers):
        raise ConfigError("export", "folding", f"has {len(folding)} entries for {len(layers)} layers",
                          "give one (simd, pe) per layer")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    npz_path, toml_path = out / f"{name}.npz", out / f"{name}.toml"
    arrays = {}
    lines = ["# exported by qnnfab.golden.train.export", f"# scheme = {result.scheme}, sizes = {list(result.sizes)}, "
             f"test accuracy = {result.test_acc:.4f}", "", "[network]", f'name = "{name}"',
             f"input_shape = [{result.sizes[0]}]", 'input_kind = "uint"', f"input_bits = {result.pixel_bits}",
             f'weights = "{npz_path.name}"']
    for i, ((w, t), (simd, pe)) in enumerate(zip(layers, folding)):
        lname = f"fc{i}"
        arrays[f"{lname}/weights"] = w
        if t is not None:
            arrays[f"{lname}/thresholds"] = t
        lines += ["", "[[layer]]", f'name = "{lname}"', 'type = "fc"', f"out = {w.shape[0]}",
                  f'act = "{"acc" if t is None else "bipolar"}"', 'weight_kind = "bipolar"', f"pe = {pe}",
                  f"simd = {simd}"]
    np.savez_compressed(npz_path, **arrays)
    toml_path.write_text("\n".join(lines) + "\n")
    return toml_path, npz_path

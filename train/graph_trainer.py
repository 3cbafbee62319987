"""Quantization-aware training of residual graphs (ResNet-style networks) in NumPy.

A graph is a list of :class:`Node` in file order; a node reads the nodes named in
its ``inputs`` (``"input"``: the image; default: the node before it), so one node
may be read by two (a fork). Kinds:

``conv``   k x k convolution, ``stride``, symmetric zero ``pad`` (the padding is
           the stored level 0, the value 0), im2col order (ky, kx, c) as
           :func:`qnnfab.golden.conv.im2col`; then BN and the activation.
``add``    the sum of two equally shaped maps (the join of a residual block);
           then BN and the activation (the requantization after the add).
``global_avgpool``  the mean over H x W of every channel; then BN and the activation.
``fc``     the last node only: the scores ``alpha * d`` (``d`` the integer dot
           product; ``alpha`` a learned positive scalar of training only, as in
           :mod:`qnnfab.train.trainer`).

Quantizers are the chain trainer's (:mod:`qnnfab.train.trainer`): weights ``"ste"``
(BinaryNet: sign(W), 0 -> +1, STE inside [-1, 1], W clipped to [-1, 1]) or
``"ternary"`` (TWN: :func:`~qnnfab.train.trainer.ternarize`, 2-bit weights
-1/0/+1); every activation is ``act_bits``-bit unsigned levels (``act_bits`` 1:
levels 0/1, "uint1"): :func:`~qnnfab.train.trainer.kbit_act` forward
``floor(clip(y, 0, 1) m + 1/2) / m``, gradient where 0 <= y <= 1, m = 2^act_bits - 1.
Levels, not bipolar +-1, because the hardware adds the stored integers of two
branches (an add of bipolar maps is refused by the config).

Inference (:func:`scores`, float64, exact integers): every node but the last
computes an integer ``d`` from the stored levels (the pixels for the input) --
a conv's dot product, an add's sum ``l_a + l_b``, a global pool's sum over H x W
-- and its BN input is ``z = d * bn_scale`` with :meth:`GraphModel.bn_scale`:
``1 / (2^pixel_bits - 1)`` for a conv reading the pixels, ``1 / m`` for a conv or
an add reading levels, ``1 / (m H W)`` for a global pool (its mean). The level
is the number of j in 1..m with ``gamma (z - mu) / sigma + (beta - (j - 1/2) / m) >= 0``,
``sigma = sqrt(var + eps)``: the expression :func:`qnnfab.golden.threshold.bn_to_thresholds`
folds, so the exported thresholds on ``d`` (:mod:`qnnfab.train.graph_export`)
reproduce every level bit for bit. The BN of an add or a global pool has no
weights whose sign could absorb a negative gamma, so training keeps those
gammas >= 0 (projected after every step).

BN statistics: batch statistics in training; after every epoch they are
recomputed on the integer network over (up to ``recalibrate_samples`` of) the
training images, in one pass (a node's input depends only on nodes before it).
Training runs in ``dtype`` (float32 by default: twice the BLAS speed; the gradient
tests use float64); inference and recalibration always run in float64.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.golden.conv import conv_output_size, im2col
from qnnfab.netconfig import NETWORK_INPUT

from .codebooks import level_offsets
from .trainer import KBIT_BN_INIT, _Adam, _Box, _wgrad_factor, binarize, kbit_act, ternarize

__all__ = ["Node", "GraphModel", "NODE_KINDS", "GRAPH_SCHEMES", "resnet", "resnet8", "build", "train", "scores",
           "predict", "accuracy", "col2im_strided"]

NODE_KINDS = ("conv", "add", "global_avgpool", "fc")
GRAPH_SCHEMES = ("ste", "ternary")


@dataclass
class Node:
    """One node of a residual graph (see the module docstring); parameters and shapes are set by :func:`build`."""
    name: str
    kind: str
    inputs: tuple = ()
    out: int = 0                 # conv / fc: output channels
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    in_shape: tuple = ()         # of the (first) input
    out_shape: tuple = ()
    w: np.ndarray | None = None  # conv (out, k*k*C) in (ky, kx, c) order; fc (out, in)
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    mean: np.ndarray | None = None
    var: np.ndarray | None = None


def resnet(widths=(16, 32, 64), classes=10, stem=None):
    """The nodes of a ResNet in MLPerf Tiny's shape: a 3x3 stem of ``stem`` (default ``widths[0]``)
    channels, one residual stage per width (two 3x3 convs, "same" padding; the first stage keeps the
    stem's map and adds it unchanged when its width equals the stem's, a later stage halves the map
    with a stride-2 first conv and a 1x1 stride-2 shortcut conv), a global average pool and an fc of
    ``classes`` outputs."""
    stem = widths[0] if stem is None else stem
    nodes = [Node("conv0", "conv", (NETWORK_INPUT,), stem, 3, 1, 1)]
    prev, prev_width = "conv0", stem
    for s, width in enumerate(widths, 1):
        stride = 1 if s == 1 else 2
        nodes.append(Node(f"s{s}a", "conv", (prev,), width, 3, stride, 1))
        nodes.append(Node(f"s{s}b", "conv", (f"s{s}a",), width, 3, 1, 1))
        skip = prev
        if stride != 1 or width != prev_width:
            nodes.append(Node(f"s{s}sc", "conv", (prev,), width, 1, stride, 0))
            skip = f"s{s}sc"
        nodes.append(Node(f"s{s}add", "add", (f"s{s}b", skip)))
        prev, prev_width = f"s{s}add", width
    nodes.append(Node("gap", "global_avgpool", (prev,)))
    nodes.append(Node("fc", "fc", ("gap",), classes))
    return nodes


def resnet8(classes=10):
    """MLPerf Tiny's image-classification ResNet-8: stem 16, stages 16 / 32 / 64, global average pool, fc."""
    return resnet((16, 32, 64), classes)


@dataclass
class GraphModel:
    """A trained (or initialised) residual graph and its training record.

    ``nodes``: :class:`Node` list (the last is the fc); ``input_shape`` (H, W, C); ``pixel_bits``
    of the uint input; ``scheme`` of the weights; ``act_bits`` of every activation; ``log_alpha``
    the score scale of training; ``history`` per epoch "epoch", "loss", "train_acc" (on the
    recalibration images), "monitor_acc" (on the monitored test images), "seconds".
    """
    nodes: list
    input_shape: tuple
    pixel_bits: int
    scheme: str = "ste"
    act_bits: int = 1
    eps: float = 1e-4
    log_alpha: float = 0.0
    dataset: str = ""
    history: dict = field(default_factory=dict)
    test_acc: float = float("nan")
    seconds: float = 0.0
    params: dict = field(default_factory=dict)

    @property
    def levels(self):
        """m = 2^act_bits - 1."""
        return (1 << self.act_bits) - 1

    @property
    def offsets(self):
        return level_offsets(self.levels)

    @property
    def weight_kind(self):
        return "ternary" if self.scheme == "ternary" else "bipolar"

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def bn_scale(self, node):
        """The BN input of ``node`` is ``d * bn_scale(node)`` (``d`` its integer: dot product, sum of two
        levels, or sum over H x W); one float, used by inference and export alike."""
        if node.kind == "global_avgpool":
            h, w, _ = node.in_shape
            return 1.0 / (self.levels * h * w)
        if node.inputs[0] == NETWORK_INPUT:
            return 1.0 / ((1 << self.pixel_bits) - 1)
        return 1.0 / self.levels

    def weight_codes(self, node):
        """The inference weights of a conv/fc node: float64 -1/+1 (ste) or -1/0/+1 (ternary)."""
        return ternarize(node.w) if self.scheme == "ternary" else np.where(node.w >= 0, 1.0, -1.0)


def build(nodes, input_shape, classes, where="graph"):
    """Check the graph ``nodes`` against an (H, W, C) input and set every node's ``inputs`` (default: the
    previous node), ``in_shape`` and ``out_shape``; returns the nodes (the same objects)."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3:
        raise ConfigError(where, "input_shape", f"a residual graph reads images (H, W, C), got {shape}",
                          "use an image data set")
    if not nodes:
        raise ConfigError(where, "nodes", "the graph is empty", "give at least an fc node")
    shapes, names = {NETWORK_INPUT: shape}, set()
    for i, n in enumerate(nodes):
        at = f"{where} node {i} '{n.name}'"
        if n.kind not in NODE_KINDS:
            raise ConfigError(at, "kind", f"unknown kind {n.kind!r}", f"use one of {NODE_KINDS}")
        if n.name in names or n.name == NETWORK_INPUT:
            raise ConfigError(at, "name", "is used twice (or is the input's name)", "give every node its own name")
        n.inputs = tuple(n.inputs) or ((nodes[i - 1].name,) if i else (NETWORK_INPUT,))
        missing = [s for s in n.inputs if s not in shapes]
        if missing:
            raise ConfigError(at, "inputs", f"reads {missing[0]!r}, not a node above it",
                              f"name one of {list(shapes)}")
        want = 2 if n.kind == "add" else 1
        if len(n.inputs) != want:
            raise ConfigError(at, "inputs", f"an {n.kind} node reads {want} input(s), got {len(n.inputs)}",
                              "name the nodes it reads")
        ins = [shapes[s] for s in n.inputs]
        if (n.kind == "fc") != (i == len(nodes) - 1):
            raise ConfigError(at, "kind", "the last node, and only it, is the fc of the scores",
                              "end the graph with one fc node")
        if n.kind != "fc" and len(ins[0]) != 3:
            raise ConfigError(at, "inputs", f"needs an image map, got shape {ins[0]}", "read a conv or add node")
        if n.kind == "conv":
            h, w, _ = ins[0]
            oh, ow = conv_output_size((h, w), n.kernel, n.stride, n.pad, at)
            out = (oh, ow, int(n.out))
        elif n.kind == "add":
            if ins[0] != ins[1]:
                raise ConfigError(at, "inputs", f"adds maps of shapes {ins[0]} and {ins[1]}",
                                  "give the shortcut a 1x1 convolution with the branch's stride and width")
            out = ins[0]
        elif n.kind == "global_avgpool":
            out = (1, 1, ins[0][2])
        else:
            out = (int(classes),)
            n.out = int(classes)
        if n.kind in ("conv", "fc") and int(n.out) < 1:
            raise ConfigError(at, "out", f"must be >= 1, got {n.out}", "give the number of output channels")
        n.in_shape, n.out_shape = ins[0], out
        shapes[n.name] = out
        names.add(n.name)
    read = {s for n in nodes for s in n.inputs}
    unread = [n.name for n in nodes[:-1] if n.name not in read]
    if unread:
        raise ConfigError(where, "nodes", f"no node reads {unread[0]!r}", "read it in a later node or remove it")
    return nodes


def _init(model, rng, bn_init):
    for n in model.nodes:
        if n.kind in ("conv", "fc"):
            fan_in = n.kernel * n.kernel * n.in_shape[2] if n.kind == "conv" else math.prod(n.in_shape)
            n.w = rng.uniform(-0.5, 0.5, (n.out, fan_in))
        if n.kind != "fc":
            c = n.out_shape[-1]
            n.gamma, n.beta = np.full(c, float(bn_init[0])), np.full(c, float(bn_init[1]))
            n.mean, n.var = np.zeros(c), np.ones(c)


def col2im_strided(cols, in_shape, kernel, stride=1, pad=0):
    """Adjoint of ``im2col(x, kernel, stride, pad)``: (B, OH, OW, k*k*C) -> (B, H, W, C) sums (the
    padding's share dropped); column index (ky*k + kx)*C + c as :func:`qnnfab.golden.conv.im2col`."""
    B, oh, ow, _ = cols.shape
    h, w, c = in_shape
    k, s, p = int(kernel), int(stride), int(pad)
    d = cols.reshape(B, oh, ow, k, k, c)
    out = np.zeros((B, h + 2 * p, w + 2 * p, c), cols.dtype)
    for ky in range(k):
        for kx in range(k):
            out[:, ky:ky + (oh - 1) * s + 1:s, kx:kx + (ow - 1) * s + 1:s, :] += d[:, :, :, ky, kx, :]
    return out[:, p:p + h, p:p + w, :]


def _mm(a, b):
    return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[1],))


def _train_weights(model, n, dtype):
    return binarize(n.w, model.scheme).astype(dtype)


def _train_step(model, x, y, dtype=np.float32):
    """Forward and backward of one batch; returns (loss, grads {(node name, param): array}, d loss / d log_alpha)."""
    B = x.shape[0]
    s_in = 1.0 / ((1 << model.pixel_bits) - 1)
    vals = {NETWORK_INPUT: (np.asarray(x, dtype) * dtype(s_in)).reshape((B,) + tuple(model.input_shape))}
    cache = {}
    for n in model.nodes:
        src = [vals[s] for s in n.inputs]
        if n.kind == "conv":
            cols = im2col(src[0], n.kernel, n.stride, n.pad, 0)
            wq = _train_weights(model, n, dtype)
            z = _mm(cols, wq.T)
            cache[n.name] = [cols, wq]
        elif n.kind == "fc":
            a_in = src[0].reshape(B, -1)
            wq = _train_weights(model, n, dtype)
            z = a_in @ wq.T
            cache[n.name] = [a_in, wq]
            break
        elif n.kind == "add":
            z = src[0] + src[1]
            cache[n.name] = []
        else:
            z = src[0].mean(axis=(1, 2), keepdims=True)
            cache[n.name] = []
        ax = tuple(range(z.ndim - 1))
        mu, var = z.mean(ax), z.var(ax)
        std = np.sqrt(var + dtype(model.eps))
        xhat = (z - mu) / std
        yv = n.gamma.astype(dtype) * xhat + n.beta.astype(dtype)
        a, mask = kbit_act(yv, model.act_bits)
        cache[n.name].append((xhat, std, mask.astype(dtype)))
        vals[n.name] = a.astype(dtype)
    alpha = math.exp(model.log_alpha)
    out = alpha * z
    sh = out - out.max(1, keepdims=True)
    p = np.exp(sh)
    p /= p.sum(1, keepdims=True)
    loss = float(-np.mean(np.log(p[np.arange(B), y] + 1e-30)))
    dout = p
    dout[np.arange(B), y] -= 1.0
    dout /= B
    log_alpha_grad = float(np.sum(dout * z) * alpha)
    grads = {}
    dvals = {model.nodes[-1].name: dout * dtype(alpha)}

    def give(name, g):
        if name != NETWORK_INPUT:
            dvals[name] = dvals[name] + g if name in dvals else g

    for n in reversed(model.nodes):
        dz = dvals.pop(n.name)
        if n.kind != "fc":
            xhat, std, mask = cache[n.name][-1]
            dyv = dz * mask
            ax = tuple(range(xhat.ndim - 1))
            cnt = xhat.size // xhat.shape[-1]
            grads[(n.name, "gamma")] = np.sum(dyv * xhat, ax).astype(np.float64)
            grads[(n.name, "beta")] = np.sum(dyv, ax).astype(np.float64)
            dxhat = dyv * n.gamma.astype(dz.dtype)
            dz = (cnt * dxhat - dxhat.sum(ax) - xhat * np.sum(dxhat * xhat, ax)) / (cnt * std)
        if n.kind == "conv":
            cols, wq = cache[n.name][:2]
            dwq = dz.reshape(-1, dz.shape[-1]).T @ cols.reshape(-1, cols.shape[-1])
            grads[(n.name, "w")] = dwq.astype(np.float64) * _wgrad_factor(n.w, model.scheme, 1.0)
            if n.inputs[0] != NETWORK_INPUT:
                give(n.inputs[0], col2im_strided(_mm(dz, wq), n.in_shape, n.kernel, n.stride, n.pad))
        elif n.kind == "fc":
            a_in, wq = cache[n.name][:2]
            grads[(n.name, "w")] = (dz.T @ a_in).astype(np.float64) * _wgrad_factor(n.w, model.scheme, 1.0)
            give(n.inputs[0], (dz @ wq).reshape((B,) + tuple(n.in_shape)))
        elif n.kind == "add":
            give(n.inputs[0], dz)
            give(n.inputs[1], dz)
        else:
            h, w, _ = n.in_shape
            give(n.inputs[0], np.broadcast_to(dz / dtype(h * w), (B, h, w, dz.shape[-1])))
    return loss, grads, log_alpha_grad


def _node_integer(model, n, src):
    """The integer ``d`` (float64) of non-fc node ``n`` from its inputs' stored values ``src``: a conv's
    dot product, an add's sum, a global pool's sum over H x W (kept (B, 1, 1, C))."""
    if n.kind == "conv":
        return _mm(im2col(np.asarray(src[0], np.float64), n.kernel, n.stride, n.pad, 0), model.weight_codes(n).T)
    if n.kind == "add":
        return np.asarray(src[0], np.float64) + src[1]
    return np.asarray(src[0], np.float64).sum(axis=(1, 2), keepdims=True)


def _levels(model, n, z):
    """Levels (float64 integers) of node ``n`` from its BN input ``z``: #{j : BN(z) + (beta - c_j) >= 0}."""
    y0 = n.gamma * (z - n.mean) / np.sqrt(n.var + model.eps)
    a = np.zeros(y0.shape)
    for c in model.offsets:
        a += y0 + (n.beta - c) >= 0
    return a


def _forward_eval(model, x):
    """Inference in float64 on the integer network: the fc's integer dot products (B, classes)."""
    B = x.shape[0]
    vals = {NETWORK_INPUT: np.asarray(x, np.float64).reshape((B,) + tuple(model.input_shape))}
    for n in model.nodes:
        src = [vals[s] for s in n.inputs]
        if n.kind == "fc":
            return src[0].reshape(B, -1) @ model.weight_codes(n).T
        vals[n.name] = _levels(model, n, _node_integer(model, n, src) * model.bn_scale(n))
    raise AssertionError("unreachable: build() ends every graph in an fc node")


def _recalibrate(model, x, chunk=200):
    """Set every BN's statistics to the population mean and variance of its input ``z`` over the images
    ``x`` on the integer network, node by node (a node's input depends only on nodes above it, already
    recalibrated); the images are processed in chunks, every node's levels kept as uint8."""
    x = np.asarray(x).reshape((-1,) + tuple(model.input_shape))
    N = len(x)
    last_read = {s: i for i, n in enumerate(model.nodes) for s in n.inputs}
    store = {NETWORK_INPUT: x}
    for i, n in enumerate(model.nodes[:-1]):
        sc = model.bn_scale(n)
        ds = [_node_integer(model, n, [store[s][c:c + chunk] for s in n.inputs]).astype(np.int32)
              for c in range(0, N, chunk)]
        ax = tuple(range(ds[0].ndim - 1))
        cnt = N * math.prod(ds[0].shape[1:-1])
        mean = sum((d * sc).sum(ax) for d in ds) / cnt
        n.mean, n.var = mean, sum((((d * sc) - mean) ** 2).sum(ax) for d in ds) / cnt
        store[n.name] = np.concatenate([_levels(model, n, d * sc).astype(np.uint8) for d in ds])
        for s in n.inputs:
            if last_read[s] == i and s != NETWORK_INPUT:
                del store[s]


def _check_x(model, x):
    x = np.asarray(x)
    F = math.prod(model.input_shape)
    if x.ndim < 2 or math.prod(x.shape[1:]) != F or (x.ndim > 2 and tuple(x.shape[1:]) != model.input_shape):
        raise ConfigError("graph predict", "x", f"expected (B, {F}) pixels or (B,) + {model.input_shape} images, "
                          f"got {x.shape}", "pass the data set's images")
    return x


def scores(model, x, chunk=200):
    """The integer network's fc dot products (B, classes) float64 (exact integers), in chunks of images."""
    x = _check_x(model, x)
    parts = [_forward_eval(model, x[i:i + chunk]) for i in range(0, len(x), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, model.nodes[-1].out))


def predict(model, x, chunk=200):
    """Labels (B,) of the integer network (argmax, first index on ties)."""
    return np.argmax(scores(model, x, chunk), axis=1)


def accuracy(model, x, y, chunk=200):
    return float(np.mean(predict(model, x, chunk) == np.asarray(y)))


def train(dataset, nodes, scheme="ste", act_bits=1, epochs=10, batch=64, lr=0.03, lr_decay=0.1, seed=0,
          eps=1e-4, recalibrate_samples=2000, monitor=1000, dtype=np.float32, augment=False, progress=None):
    """Train the residual graph ``nodes`` (:class:`Node` list, e.g. :func:`resnet8`) on an image
    :class:`~qnnfab.train.datasets.Dataset`; returns a :class:`GraphModel`.

    ``scheme`` "ste" (1-bit weights) or "ternary" (2-bit); ``act_bits`` of every activation (1..8);
    Adam at ``lr`` decayed exponentially to ``lr * lr_decay``; ``recalibrate_samples``: training
    images the BN statistics are recomputed on after every epoch (the first ones of a fixed
    permutation); ``monitor``: test images (a seeded random choice) scored after every epoch (the final model is then scored
    on the whole test set: ``test_acc``); ``augment``: random horizontal flips of the training
    images; ``progress(epoch, loss, train_acc, monitor_acc)`` after every epoch.
    """
    where = f"graph train(scheme={scheme!r})"
    if scheme not in GRAPH_SCHEMES:
        raise ConfigError(where, "scheme", f"residual graphs train the schemes {GRAPH_SCHEMES}, not {scheme!r}",
                          "use 'ste' (1-bit weights) or 'ternary' (2-bit)")
    if isinstance(act_bits, bool) or not isinstance(act_bits, (int, np.integer)) or not 1 <= act_bits <= 8:
        raise ConfigError(where, "act_bits", f"must be an integer 1..8, got {act_bits!r}",
                          "the activations are unsigned act_bits-bit levels")
    for name, val, lo in (("epochs", epochs, 1), ("batch", batch, 2), ("recalibrate_samples", recalibrate_samples, 2)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise ConfigError(where, name, f"must be an integer >= {lo}, got {val!r}", f"e.g. {name} = {max(lo, 8)}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(where, "lr", f"must be a finite number > 0, got {lr!r}", "e.g. lr = 0.03")
    shape = tuple(dataset.input_shape)
    nodes = build(nodes, shape, dataset.classes, where)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    model = GraphModel(nodes, shape, dataset.pixel_bits, scheme, int(act_bits), float(eps), dataset=dataset.name,
                       log_alpha=-0.5 * math.log(math.prod(nodes[-1].in_shape)))
    _init(model, rng, KBIT_BN_INIT)
    model.params = dict(scheme=scheme, act_bits=int(act_bits), epochs=int(epochs), batch=int(batch), lr=float(lr),
                        lr_decay=float(lr_decay), seed=seed, recalibrate_samples=int(recalibrate_samples),
                        monitor=int(monitor), augment=bool(augment), train_images=len(dataset.y_train))
    xtr = dataset.x_train.reshape((-1,) + shape)
    ytr = dataset.y_train
    xte = dataset.x_test.reshape((-1,) + shape)
    watch = np.random.default_rng(seed + 1).permutation(len(dataset.y_test))[:monitor]   # test images seen per epoch
    order = rng.permutation(len(ytr))[:recalibrate_samples]
    recal, recal_y = xtr[order], ytr[order]
    params = {}
    for n in model.nodes:
        if n.w is not None:
            params[(n.name, "w")] = (n, "w")
        if n.gamma is not None:
            params[(n.name, "gamma")] = (n, "gamma")
            params[(n.name, "beta")] = (n, "beta")

    alpha_box = _Box(np.array(model.log_alpha))
    params["log_alpha"] = (alpha_box, "value")
    opt = _Adam()
    sum_nodes = [n for n in model.nodes if n.kind in ("add", "global_avgpool")]
    hist = {k: [] for k in ("epoch", "loss", "train_acc", "monitor_acc", "seconds")}
    n_train = len(ytr)
    for ep in range(int(epochs)):
        lr_ep = lr * (lr_decay ** (ep / max(1, int(epochs) - 1)))
        perm = rng.permutation(n_train)
        losses = []
        for b in range(0, n_train, batch):
            idx = perm[b:b + batch]
            if len(idx) < 2:
                continue
            xb = xtr[idx]
            if augment:
                flip = rng.random(len(idx)) < 0.5
                xb = np.where(flip[:, None, None, None], xb[:, :, ::-1, :], xb)
            model.log_alpha = float(alpha_box.value)
            loss, grads, ga = _train_step(model, xb, ytr[idx], dtype)
            grads["log_alpha"] = np.array(ga)
            opt.step(params, grads, lr_ep)
            for n in model.nodes:
                if n.w is not None:
                    np.clip(n.w, -1.0, 1.0, out=n.w)
            for n in sum_nodes:           # no weights to absorb a negative gamma: keep it >= 0
                np.maximum(n.gamma, 0.0, out=n.gamma)
            losses.append(loss)
        model.log_alpha = float(alpha_box.value)
        _recalibrate(model, recal)
        tr_acc = accuracy(model, recal, recal_y)
        mon_acc = accuracy(model, xte[watch], dataset.y_test[watch]) if monitor else float("nan")
        for k, v in (("epoch", ep + 1), ("loss", float(np.mean(losses)) if losses else float("nan")),
                     ("train_acc", tr_acc), ("monitor_acc", mon_acc), ("seconds", time.perf_counter() - t0)):
            hist[k].append(v)
        if progress is not None:
            progress(ep + 1, hist["loss"][-1], tr_acc, mon_acc)
    model.history = hist
    model.test_acc = accuracy(model, xte, dataset.y_test)
    model.seconds = time.perf_counter() - t0
    return model

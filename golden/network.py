"""Bit-exact forward pass of a quantized streaming network, and the named topologies.

A network is a list of layers applied in order to a batch of frames:

``FC(weights, w_kind="bipolar", w_bits=None, name="")``
    weights (MH, MW) stored values (bipolar: bits, 1 = +1). A spatial input
    (H, W, C) is flattened in NHWC order (h, w, c) first, so MW = H*W*C.
``Conv(weights, kernel=3, stride=1, pad=0, pad_value=0, w_kind="bipolar", w_bits=None, name="")``
    weights (OFM, KH*KW*IFM) in im2col column order (ky, kx, c) (see
    conv.conv_weights_to_matrix); ``pad_value`` is the *stored* value used for
    zero padding (bipolar: 0 = -1, 1 = +1).
``MaxPool(kernel=2, stride=None, name="")``
    max over windows, no padding (bipolar bits: OR).
``Threshold(thresholds, out_kind="bipolar", name="")``
    thresholds (C, N) or (1, N), sorted ascending per row; output = number of
    thresholds the accumulator is >= to (QONNX MultiThreshold). ``out_kind``
    "bipolar" needs N = 1 and outputs bits; "uint" outputs the count as an
    unsigned ceil(log2(N+1))-bit value.

Data kinds between layers: "bipolar" (bits), "uint"/"int" k-bit (see
matvec.py), and "acc" (the integer accumulator of an FC/Conv layer).
Accumulator of an FC/Conv layer: the XNOR popcount P in [0, N] when both
weights and inputs are bipolar (as the hardware's MVTU; dot = 2P - N),
otherwise the integer dot product of the values. Thresholds are in that
domain. An FC/Conv must not read an "acc" directly (put a Threshold between).

Input: ``x`` of shape (B,) + input_shape holding stored values of
``input_kind`` (LFC: bits (B, 784); CNV: int8 codes (B, 32, 32, 3) of
ap_fixed<8,1> pixels). Output: the last layer's output for every frame;
"acc" and "uint" as int64, "bipolar" as uint8 bits.

``Network.forward(x, method="fast")`` uses, for bipolar x bipolar layers,
exact float32 BLAS with two outputs per multiply-add (bits.PairedSgemm) for
fully connected layers of up to 2047 inputs, packed uint64 XNOR-popcount
otherwise (activations packed per pixel in channel words), and exact float
BLAS for the other layers; ``method="packed"`` is the same but never uses
PairedSgemm; ``method="reference"`` is a slow loop implementation used to
check them. All are bit-exact and agree.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from qnnfab.kinds import ACTIVATION_KINDS, KINDS, DataKind, accumulator_range
from qnnfab.packing import pad_frames

from ._util import ConfigError, as_int_array, as_pair
from .bits import PairedSgemm, _packed_matmul, pack_bits, unpack_bits
from .conv import conv_output_size, conv_weights_to_matrix, im2col, maxpool, pool_output_size
from .fixedpoint import FixedFormat, quantize
from .matvec import exact_matmul
from .threshold import bn_to_thresholds, check_thresholds, fold_flips_into_weights, multithreshold

__all__ = ["FC", "Conv", "MaxPool", "Threshold", "Network", "TOPOLOGIES", "make_network", "make_lfc", "make_cnv",
           "binarize_input", "cnv_input_codes", "float_forward"]


@dataclass
class FC:
    """Fully connected layer: weights (MH, MW) stored values of ``w_kind`` (bipolar: bits); NHWC-flattened input."""

    weights: np.ndarray
    w_kind: str = "bipolar"
    w_bits: int | None = None
    name: str = ""


@dataclass
class Conv:
    """Convolution: weights (OFM, KH*KW*IFM) in (ky, kx, c) column order; ``pad_value`` is a stored value."""

    weights: np.ndarray
    kernel: int | tuple = 3
    stride: int | tuple = 1
    pad: int | tuple = 0
    pad_value: int = 0
    w_kind: str = "bipolar"
    w_bits: int | None = None
    name: str = ""


@dataclass
class MaxPool:
    """Max pool without padding (stride defaults to kernel); bipolar bits pool with OR."""

    kernel: int | tuple = 2
    stride: int | tuple | None = None
    name: str = ""


@dataclass
class Threshold:
    """MultiThreshold: thresholds (C, N) or (1, N) sorted ascending; out_kind "bipolar" (N = 1) or "uint"."""

    thresholds: np.ndarray
    out_kind: str = "bipolar"
    name: str = ""


@dataclass
class _Info:
    """Static facts about one layer, derived by Network.__post_init__."""

    in_shape: tuple
    out_shape: tuple
    in_kind: str
    in_bits: int | None
    out_kind: str
    out_bits: int | None
    acc_range: tuple | None = None  # (lo, hi) of the accumulator / output values
    n: int | None = None  # reduction length of FC/Conv
    binary: bool = False  # bipolar x bipolar (popcount accumulator)
    wv: np.ndarray | None = None  # weight values (int64), cached
    wpacked: np.ndarray | None = None  # packed weights for binary layers, cached
    blas: object = None  # PairedSgemm for binary FC layers (False: not exact, use packed words), cached


def _where(i, layer):
    nm = f" '{layer.name}'" if getattr(layer, "name", "") else ""
    return f"layer {i} ({type(layer).__name__}{nm})"


@dataclass
class Network:
    """A list of layers plus the input description (see module docstring)."""

    layers: list
    input_shape: tuple
    input_kind: str = "bipolar"
    input_bits: int | None = None
    name: str = "network"
    infos: list = field(default_factory=list, repr=False)
    input_pad: int = 0              # zero elements after each (1-D) input frame, before the first layer
    classes: int | None = None      # outputs reported: the first ``classes`` of the last layer's (None: all)

    def __post_init__(self):
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if len(self.input_shape) not in (1, 3):
            raise ConfigError(self.name, "input_shape", f"must be (N,) or (H, W, C), got {self.input_shape}")
        if self.input_kind not in ACTIVATION_KINDS:
            raise ConfigError(self.name, "input_kind", f"must be one of {ACTIVATION_KINDS}, got {self.input_kind!r}")
        DataKind.of(self.input_kind, self.input_bits, f"{self.name} input")
        self.infos = []
        shape, kind, bits = self.input_shape, self.input_kind, self.input_bits
        if self.input_pad:
            if len(shape) != 1:
                raise ConfigError(self.name, "input_pad", f"pads a 1-D input, got input shape {shape}",
                                  "use input_pad = 0 for image inputs")
            shape = (shape[0] + int(self.input_pad),)
        acc_range = None
        for i, layer in enumerate(self.layers):
            info = self._infer(i, layer, shape, kind, bits, acc_range)
            self.infos.append(info)
            shape, kind, bits, acc_range = info.out_shape, info.out_kind, info.out_bits, info.acc_range

    # ------------------------------------------------------------------ shape / kind inference
    def _infer(self, i, layer, shape, kind, bits, acc_range):
        where = _where(i, layer)
        if isinstance(layer, (FC, Conv)):
            if kind == "acc":
                raise ConfigError(where, "input", "reads a raw accumulator", "insert a Threshold layer before it")
            if layer.w_kind not in KINDS:
                raise ConfigError(where, "w_kind", f"unknown weight kind {layer.w_kind!r}", f"use one of {KINDS}")
            w = as_int_array(layer.weights, where, "weights")
            if w.ndim != 2:
                raise ConfigError(where, "weights", f"must be 2-D (out, in), got shape {w.shape}",
                                  "use conv_weights_to_matrix for 4-D conv weights")
            wk = DataKind.of(layer.w_kind, layer.w_bits, where)
            wk.check_stored(w, where, "weights", f"{layer.w_kind} weights")
            if isinstance(layer, FC):
                n = math.prod(shape)
                if w.shape[1] != n:
                    raise ConfigError(where, "weights", f"has {w.shape[1]} columns but the input has {n} values "
                                      f"(shape {shape})", f"use a ({w.shape[0]}, {n}) weight matrix")
                out_shape = (w.shape[0],)
            else:
                if len(shape) != 3:
                    raise ConfigError(where, "input", f"needs an (H, W, C) input, got {shape}",
                                      "put convolutions before the fully connected layers")
                kh, kw = as_pair(layer.kernel, where, "kernel")
                n = kh * kw * shape[2]
                if w.shape[1] != n:
                    raise ConfigError(where, "weights", f"has {w.shape[1]} columns, expected KH*KW*IFM = "
                                      f"{kh}*{kw}*{shape[2]} = {n}", "reshape with conv_weights_to_matrix")
                plo, phi = DataKind.of(kind, bits, where).stored_range
                if not plo <= int(layer.pad_value) <= phi:
                    raise ConfigError(where, "pad_value", f"{layer.pad_value} is not a valid {kind} value",
                                      "bipolar data pads with bit 0 (-1) or 1 (+1)")
                oh, ow = conv_output_size(shape[:2], layer.kernel, layer.stride, layer.pad, where)
                out_shape = (oh, ow, w.shape[0])
            binary = layer.w_kind == "bipolar" and kind == "bipolar"
            rng_ = accumulator_range(n, wk, DataKind.of(kind, bits, where))
            return _Info(shape, out_shape, kind, bits, "acc", None, rng_, n, binary)
        if isinstance(layer, MaxPool):
            if len(shape) != 3:
                raise ConfigError(where, "input", f"needs an (H, W, C) input, got {shape}")
            oh, ow = pool_output_size(shape[:2], layer.kernel, layer.stride, where)
            return _Info(shape, (oh, ow, shape[2]), kind, bits, kind, bits, acc_range)
        if isinstance(layer, Threshold):
            c = shape[-1]
            t = check_thresholds(layer.thresholds, c, where)
            if not np.issubdtype(t.dtype, np.integer):
                t = as_int_array(t, where, "thresholds")
            layer.thresholds = t.astype(np.int64)
            nt = t.shape[1]
            if layer.out_kind == "bipolar":
                if nt != 1:
                    raise ConfigError(where, "thresholds", f"a bipolar output needs exactly 1 threshold, got {nt}",
                                      "use out_kind='uint' for multi-bit outputs")
                return _Info(shape, shape, kind, bits, "bipolar", None, (0, 1))
            if layer.out_kind != "uint":
                raise ConfigError(where, "out_kind", f"must be 'bipolar' or 'uint', got {layer.out_kind!r}")
            ob = max(1, int(nt).bit_length())
            return _Info(shape, shape, kind, bits, "uint", ob, (0, nt))
        raise ConfigError(where, "type", f"unknown layer type {type(layer).__name__}",
                          "use FC, Conv, MaxPool or Threshold")

    @property
    def output_shape(self):
        if self.classes:
            return (self.classes,)
        return self.infos[-1].out_shape if self.infos else self.input_shape

    @property
    def output_kind(self):
        return self.infos[-1].out_kind if self.infos else self.input_kind

    def summary(self):
        """One line per layer: type, shapes, kinds, accumulator range."""
        lines = []
        for i, (layer, inf) in enumerate(zip(self.layers, self.infos)):
            lines.append(f"{i:2d} {type(layer).__name__:9s} {str(inf.in_shape):15s} -> {str(inf.out_shape):15s} "
                         f"{inf.in_kind}->{inf.out_kind} range={inf.acc_range}")
        return "\n".join(lines)

    def _check_input(self, x):
        x = as_int_array(x, self.name, "x")
        if x.shape[1:] != self.input_shape:
            raise ConfigError(self.name, "x", f"expected shape (B,) + {self.input_shape}, got {x.shape}",
                              "add a leading batch axis (x[None] for one frame)")
        DataKind.of(self.input_kind, self.input_bits, self.name).check_stored(x, self.name, "x",
                                                                              f"{self.input_kind} input")
        return pad_frames(x, self.input_pad) if self.input_pad else x

    def _reported(self, out):
        """The last layer's output reduced to the reported outputs (the first ``classes``)."""
        return out[:, :self.classes] if self.classes else out

    # ------------------------------------------------------------------ forward passes
    def forward(self, x, method="fast", return_all=False, chunk=None, threads=1):
        """Run a batch. ``x``: (B,) + input_shape stored values. Returns (B,) + output_shape.

        ``method``: "fast" (float32-paired / packed XNOR-popcount, exact
        BLAS), "packed" (packed XNOR-popcount for every binary layer) or
        "reference" (slow loops); all give identical results.
        ``return_all``: also return the list of every layer's output (the
        same array types as the final output). ``chunk``: frames
        per pass in fast mode (default: sized to keep intermediates ~64 MB).
        ``threads`` > 1 runs chunks concurrently (NumPy releases the GIL in
        its loops; results are identical).
        """
        out = self._forward_padded(self._check_input(x), method, return_all, chunk, threads)
        if return_all:
            return self._reported(out[0]), out[1]
        return self._reported(out)

    def _forward_padded(self, x, method, return_all, chunk, threads):
        """:meth:`forward` of checked, padded frames, all of the last layer's outputs."""
        if method == "reference":
            return self._forward_reference(x, return_all)
        if method not in ("fast", "packed"):
            raise ConfigError(self.name, "method", f"must be 'fast', 'packed' or 'reference', got {method!r}")
        use_blas = method == "fast"
        B = x.shape[0]
        if chunk is None:
            per_frame = max([math.prod(self.input_shape)] + [math.prod(inf.out_shape) * (1 if inf.out_kind != "acc"
                            else 2) for inf in self.infos] +
                            [math.prod(inf.out_shape[:-1]) * inf.n // 8 for inf in self.infos if inf.n])
            chunk = max(1, min(B, (8 << 20) // max(1, per_frame)))
            if threads > 1:
                chunk = max(1, min(chunk, -(-B // int(threads))))
        starts = range(0, B, chunk)
        if threads > 1 and len(starts) > 1:
            from concurrent.futures import ThreadPoolExecutor

            for i, layer in enumerate(self.layers):  # fill the weight caches before going parallel
                if isinstance(layer, (FC, Conv)):
                    self._packed_weights(i) if self.infos[i].binary else self._weights(i)
                    if use_blas:
                        self._blas(i)
            with ThreadPoolExecutor(int(threads)) as ex:
                parts = list(ex.map(lambda s: self._forward_fast(x[s:s + chunk], return_all, use_blas), starts))
        else:
            parts = [self._forward_fast(x[s:s + chunk], return_all, use_blas) for s in starts]
        if len(parts) == 1:
            return parts[0]
        if return_all:
            out = np.concatenate([p[0] for p in parts])
            alls = [np.concatenate([p[1][j] for p in parts]) for j in range(len(self.layers))]
            return out, alls
        return np.concatenate(parts)

    def _weights(self, i):
        inf, layer = self.infos[i], self.layers[i]
        if inf.wv is None:
            w = as_int_array(layer.weights, "", "").astype(np.int64)
            inf.wv = 2 * w - 1 if layer.w_kind == "bipolar" else w
        return inf.wv

    def _packed_weights(self, i):
        inf, layer = self.infos[i], self.layers[i]
        if inf.wpacked is None:
            w = np.asarray(layer.weights).astype(np.uint8)
            if isinstance(layer, Conv):
                kh, kw = as_pair(layer.kernel, "", "")
                c = inf.in_shape[2]
                inf.wpacked = pack_bits(w.reshape(w.shape[0], kh * kw, c), check=False).reshape(w.shape[0], -1)
            else:
                inf.wpacked = pack_bits(w, check=False)
        return inf.wpacked

    def _blas(self, i):
        """PairedSgemm of binary FC layer i, or None (not a binary FC, or N too large to be exact)."""
        inf, layer = self.infos[i], self.layers[i]
        if inf.blas is None:
            ok = isinstance(layer, FC) and inf.binary and inf.out_shape[0] >= 1 and PairedSgemm.exact(inf.n)
            inf.blas = PairedSgemm(np.asarray(layer.weights)) if ok else False
        return inf.blas or None

    def _forward_fast(self, x, return_all, use_blas=True):
        """Fast pass. Activation state ``form``: "packed" (channel words on the last axis), "bits" (unpacked
        0/1 of any numeric dtype, full shape) or "val" (int64 values / accumulators)."""
        B = x.shape[0]
        a, form = x, ("bits" if self.input_kind == "bipolar" else "val")
        alls = []
        skip = False
        nl = len(self.layers)
        for i, (layer, inf) in enumerate(zip(self.layers, self.infos)):
            if skip:  # Threshold fused into the previous FC
                skip = False
                continue
            if isinstance(layer, (FC, Conv)):
                pg = self._blas(i) if use_blas else None
                if pg is not None:
                    rows = (unpack_bits(a, inf.in_shape[-1]) if form == "packed" else a).reshape(B, -1)
                    nxt = self.layers[i + 1] if i + 1 < nl else None
                    if (not return_all and isinstance(nxt, Threshold) and self.infos[i + 1].out_kind == "bipolar"):
                        a, form, skip = pg.threshold_bits(rows, nxt.thresholds[:, 0]), "bits", True
                        continue
                    a, form = pg.popcount(rows), "val"
                elif inf.binary:
                    wp = self._packed_weights(i)
                    if isinstance(layer, FC):
                        if form == "packed":
                            c = inf.in_shape[-1]
                            if len(inf.in_shape) == 3 and c % 64:
                                a = pack_bits(unpack_bits(a, c).reshape(B, -1), check=False)
                            rows = a.reshape(B, -1)
                        else:
                            rows = pack_bits(a.reshape(B, -1), check=False)
                        a = _packed_matmul(wp, rows, inf.n, mask_last=True)
                    else:
                        if form != "packed":
                            a = pack_bits(a, check=False)
                        if as_pair(layer.pad, "", "", 0) != (0, 0):
                            c = inf.in_shape[2]
                            padword = pack_bits(np.full(c, int(layer.pad_value), np.uint8), check=False)
                            a = _pad_words(a, layer.pad, padword)
                        cols = im2col(a, layer.kernel, layer.stride, 0)
                        oh, ow = cols.shape[1:3]
                        acc = _packed_matmul(wp, cols.reshape(-1, cols.shape[-1]), inf.n, mask_last=False)
                        a = acc.reshape(B, oh, ow, -1)
                    form = "val"
                else:
                    a = _values(a, form, inf.in_shape[-1])
                    xv = 2 * a - 1 if inf.in_kind == "bipolar" else a
                    wv = self._weights(i)
                    mx = DataKind.of(inf.in_kind, inf.in_bits).max_abs
                    mw = DataKind.of(layer.w_kind, layer.w_bits).max_abs
                    if isinstance(layer, FC):
                        acc = exact_matmul(xv.reshape(B, -1), wv, mx, mw)
                    else:
                        pv = int(layer.pad_value)
                        pv = 2 * pv - 1 if inf.in_kind == "bipolar" else pv
                        dt = np.float32 if inf.n * mx * mw < 2**24 else np.int64
                        cols = im2col(xv.astype(dt), layer.kernel, layer.stride, layer.pad, pv)
                        oh, ow = cols.shape[1:3]
                        acc = exact_matmul(cols.reshape(-1, cols.shape[-1]), wv, mx, mw).reshape(B, oh, ow, -1)
                    a, form = acc, "val"
            elif isinstance(layer, MaxPool):
                if form == "bits" and inf.in_kind == "bipolar":
                    a, form = pack_bits(a, check=False), "packed"
                a = maxpool(a, layer.kernel, layer.stride, "packed" if form == "packed" else "int")
            elif isinstance(layer, Threshold):
                a = _values(a, form, inf.in_shape[-1])
                t = layer.thresholds
                if inf.out_kind == "bipolar":
                    a, form = a >= t[:, 0], "bits"
                else:
                    a, form = multithreshold(a, t, check=False), "val"
            if return_all:
                alls.append(_values(a, form, inf.out_shape[-1], np.uint8))
        out = _values(a, form, self.output_shape[-1], np.uint8)
        return (out, alls) if return_all else out

    def _forward_reference(self, x, return_all):
        """Slow, obviously-correct loops; values in int64."""
        kind = self.input_kind
        a = x.astype(np.int64)
        alls = []
        B = x.shape[0]
        for i, (layer, inf) in enumerate(zip(self.layers, self.infos)):
            if isinstance(layer, (FC, Conv)):
                wv = self._weights(i)
                xv = 2 * a - 1 if inf.in_kind == "bipolar" else a
                if isinstance(layer, FC):
                    flat = xv.reshape(B, -1)
                    dot = np.zeros((B, wv.shape[0]), np.int64)
                    for m in range(wv.shape[0]):
                        dot[:, m] = (flat * wv[m]).sum(axis=1)
                else:
                    H, W, C = inf.in_shape
                    kh, kw = as_pair(layer.kernel, "", "")
                    sh, sw = as_pair(layer.stride, "", "")
                    ph, pw = as_pair(layer.pad, "", "", 0)
                    pv = int(layer.pad_value)
                    pv = 2 * pv - 1 if inf.in_kind == "bipolar" else pv
                    oh, ow = inf.out_shape[:2]
                    dot = np.zeros((B, oh, ow, wv.shape[0]), np.int64)
                    for oy in range(oh):
                        for ox in range(ow):
                            vec = []
                            for ky in range(kh):
                                for kx in range(kw):
                                    yy, xx = oy * sh + ky - ph, ox * sw + kx - pw
                                    if 0 <= yy < H and 0 <= xx < W:
                                        vec.append(xv[:, yy, xx, :])
                                    else:
                                        vec.append(np.full((B, C), pv, np.int64))
                            v = np.concatenate(vec, axis=1)  # (B, kh*kw*C) in (ky, kx, c) order
                            dot[:, oy, ox, :] = v @ wv.T
                a = (dot + inf.n) // 2 if inf.binary else dot
            elif isinstance(layer, MaxPool):
                H, W, C = inf.in_shape
                kh, kw = as_pair(layer.kernel, "", "")
                sh, sw = as_pair(layer.kernel if layer.stride is None else layer.stride, "", "")
                oh, ow = inf.out_shape[:2]
                out = np.zeros((B, oh, ow, C), np.int64)
                for oy in range(oh):
                    for ox in range(ow):
                        out[:, oy, ox] = a[:, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw].max(axis=(1, 2))
                a = out
            elif isinstance(layer, Threshold):
                t = layer.thresholds
                a = (a[..., None] >= t).sum(axis=-1).astype(np.int64)
            kind = inf.out_kind
            if return_all:
                alls.append(a.astype(np.uint8) if kind == "bipolar" else a)
        out = a.astype(np.uint8) if kind == "bipolar" else a
        return (out, alls) if return_all else out


def _values(a, form, c, bits_dtype=np.int64):
    """Activation state -> plain values: packed/unpacked bits as ``bits_dtype`` 0/1 (c channels), values as is."""
    if form == "packed":
        return unpack_bits(a, c).astype(bits_dtype, copy=False)
    if form == "bits":
        return a.astype(bits_dtype, copy=False)
    return a


def _pad_words(a, pad, padword):
    """Spatially pad (B, H, W, Wc) channel words with ``padword`` (Wc,)."""
    ph, pw = as_pair(pad, "", "", 0)
    B, H, W, Wc = a.shape
    out = np.empty((B, H + 2 * ph, W + 2 * pw, Wc), a.dtype)
    out[...] = padword
    out[:, ph:ph + H, pw:pw + W] = a
    return out


# ---------------------------------------------------------------------- inputs

def binarize_input(pixels, threshold=0.5):
    """LFC input: pixels (any shape, floats in [0, 1]) -> uint8 bits (pixel >= threshold -> 1 = +1)."""
    return (np.asarray(pixels) >= threshold).astype(np.uint8)


CNV_INPUT_FORMAT = FixedFormat(1, 7)


def cnv_input_codes(images):
    """CNV input: uint8 images (B, 32, 32, 3) -> int8-range codes of ap_fixed<8,1> x*2/255 - 1.

    Rounded to nearest, saturated (255 -> 127 = 0.9921875). Returns int64.
    """
    x = np.asarray(images, np.float64) * 2.0 / 255.0 - 1.0
    return quantize(x, CNV_INPUT_FORMAT, "nearest")


# ---------------------------------------------------------------------- named topologies

TOPOLOGIES = {
    # name: builder keyword arguments
    "LFC": dict(kind="lfc", in_features=784, hidden=(1024, 1024, 1024), classes=10),
    "LFC-small": dict(kind="lfc", in_features=100, hidden=(64, 72, 64), classes=10),
    "CNV": dict(kind="cnv", in_size=32, in_channels=3, conv=(64, 64, 128, 128, 256, 256), fc=(512, 512),
                classes=10),
    "CNV-small": dict(kind="cnv", in_size=32, in_channels=3, conv=(8, 16, 16, 24, 32, 70), fc=(40, 24), classes=10),
}


def _rand_bits(rng, shape):
    return rng.integers(0, 2, size=shape, dtype=np.uint8)


def _bn_thresholds(rng, weights, n, domain, scale=1.0, spread=1.0):
    """Random BN params folded into >= thresholds (flipped rows negate their weights)."""
    c = weights.shape[0]
    std = math.sqrt(n) * spread
    gamma = rng.uniform(0.5, 1.5, c) * rng.choice([-1.0, 1.0], c, p=[0.2, 0.8])
    beta = rng.normal(0, 0.3, c)
    mu = rng.normal(0, 0.3 * std, c) * scale
    sigma = rng.uniform(0.5, 1.5, c) * std * scale
    folded = bn_to_thresholds(gamma, beta, mu, sigma, domain=domain, n=n if domain == "popcount" else None,
                              scale=scale)
    w, t = fold_flips_into_weights(weights, folded, "bipolar")
    return w, t


def make_lfc(seed=0, in_features=784, hidden=(1024, 1024, 1024), classes=10, name="LFC"):
    """LFC-style MLP: binarized input, bipolar weights, BN+sign thresholds, raw popcount output."""
    rng = np.random.default_rng(seed)
    layers, n = [], int(in_features)
    for j, h in enumerate(hidden):
        w, t = _bn_thresholds(rng, _rand_bits(rng, (h, n)), n, "popcount")
        layers += [FC(w, name=f"fc{j}"), Threshold(t, name=f"th{j}")]
        n = h
    layers.append(FC(_rand_bits(rng, (classes, n)), name="fc_out"))
    return Network(layers, (int(in_features),), "bipolar", None, name)


def make_cnv(seed=0, in_size=32, in_channels=3, conv=(64, 64, 128, 128, 256, 256), fc=(512, 512), classes=10,
             name="CNV"):
    """BNN-PYNQ CNV: 3x3 convs without padding, max pool 2 after the 2nd and 4th, then FCs.

    Layer 1 takes int8 codes of ap_fixed<8,1> pixels with bipolar weights
    (dot-domain thresholds, BN scale 2^-7); later layers are bipolar x bipolar
    (popcount-domain thresholds). The last FC outputs raw popcounts.
    """
    rng = np.random.default_rng(seed)
    layers = []
    c, s = int(in_channels), int(in_size)
    for j, oc in enumerate(conv):
        n = 9 * c
        wbits = _rand_bits(rng, (oc, n))
        if j == 0:
            w, t = _bn_thresholds(rng, wbits, n, "dot", scale=2.0**-7, spread=0.5 * 128)
        else:
            w, t = _bn_thresholds(rng, wbits, n, "popcount")
        layers += [Conv(w, 3, name=f"conv{j}"), Threshold(t, name=f"th_conv{j}")]
        c, s = oc, s - 2
        if j in (1, 3):
            layers.append(MaxPool(2, name=f"pool{j // 2}"))
            s //= 2
    n = s * s * c
    for j, h in enumerate(fc):
        w, t = _bn_thresholds(rng, _rand_bits(rng, (h, n)), n, "popcount")
        layers += [FC(w, name=f"fc{j}"), Threshold(t, name=f"th_fc{j}")]
        n = h
    layers.append(FC(_rand_bits(rng, (classes, n)), name="fc_out"))
    return Network(layers, (int(in_size), int(in_size), int(in_channels)), "int", 8, name)


def make_network(name, seed=0):
    """Build a named topology ("LFC", "LFC-small", "CNV", "CNV-small") with random weights/thresholds."""
    if name not in TOPOLOGIES:
        raise ConfigError("make_network", "name", f"unknown topology {name!r}", f"use one of {sorted(TOPOLOGIES)}")
    kw = dict(TOPOLOGIES[name])
    kind = kw.pop("kind")
    return (make_lfc if kind == "lfc" else make_cnv)(seed=seed, name=name, **kw)


def float_forward(net, x):
    """Straightforward float32 NumPy implementation of the same network (baseline for benchmarks).

    Weights as float32 +-1 / values, im2col by the same helper, float matmuls,
    thresholds compared in float. Not bit-exact by contract (float32 sums are
    exact only below 2^24), but it is for the named topologies.
    """
    a = np.asarray(x, np.float32)
    kind = net.input_kind
    if kind == "bipolar":
        a = 2 * a - 1
    B = a.shape[0]
    for i, (layer, inf) in enumerate(zip(net.layers, net.infos)):
        if isinstance(layer, (FC, Conv)):
            w = net._weights(i).astype(np.float32)
            if isinstance(layer, FC):
                y = a.reshape(B, -1) @ w.T
            else:
                pv = float(layer.pad_value)
                cols = im2col(a, layer.kernel, layer.stride, layer.pad, 2 * pv - 1 if inf.in_kind == "bipolar" else pv)
                y = (cols.reshape(-1, cols.shape[-1]) @ w.T).reshape(cols.shape[:3] + (-1,))
            a = (y + inf.n) * 0.5 if inf.binary else y
        elif isinstance(layer, MaxPool):
            a = maxpool(a, layer.kernel, layer.stride, "int")
        else:
            t = layer.thresholds.astype(np.float32)
            a = (a[..., None] >= t).sum(-1).astype(np.float32)
            if inf.out_kind == "bipolar":
                a = 2 * a - 1
    return a


def network_of(cfg):
    """The network of a :class:`qnnfab.netconfig.NetConfig` as a :class:`Network` (the bit-exact reference)."""
    if getattr(cfg, "is_graph", False):
        raise ConfigError(f"network '{cfg.name}'", "layer", "is a graph, not a chain of layers",
                          "run it with qnnfab.golden.graph_network.graph_forward")
    layers = []
    for L in cfg.layers:
        if L.type == "maxpool":
            layers.append(MaxPool(L.kernel, L.stride, name=L.name))
            continue
        wk = L.weight_kind
        if L.type == "fc":
            layers.append(FC(L.weights, w_kind=wk, w_bits=L.weight_bits, name=L.name))
        else:
            layers.append(Conv(conv_weights_to_matrix(L.weights), L.kernel, L.stride, L.pad,
                               L.pad_value, w_kind=wk, w_bits=L.weight_bits, name=L.name))
        if L.act != "acc":
            layers.append(Threshold(L.thresholds, "bipolar" if L.act == "bipolar" else "uint",
                                    name=f"{L.name}_act"))
    return Network(layers, cfg.input_shape, cfg.input_kind, cfg.input_bits, cfg.name,
                   input_pad=getattr(cfg, "input_pad", 0), classes=getattr(cfg.layers[-1], "classes", None))

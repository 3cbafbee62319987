"""BNN-PYNQ's pretrained networks (LFC fully connected, CNV convolutional) into qnnfab configs.

BNN-PYNQ (github Xilinx/BNN-PYNQ, BSD-3) keeps a network's hardware parameters
in ``bnn/params/<dataset>/<network>/`` and its shape and folding in
``bnn/src/network/<network>/hw/config.h``, both written by its
``finnthesizer.py``. The formats, as that script writes them:

* ``config.h``: per layer ``L<n>_SIMD``, ``L<n>_PE``, ``L<n>_WMEM``
  (= MW*MH / (SIMD*PE) words per PE), ``L<n>_TMEM`` (= MH / PE rows per PE),
  ``L<n>_MW``/``L<n>_MH`` (padded matrix width and height) and the precisions
  ``L<n>_WPI``/``L<n>_API`` (integer bits of weights and activations) and
  ``L<n>_WPF``/``L<n>_APF`` (fraction bits).
* ``<n>-<pe>-weights.bin``: WMEM little-endian uint64 words of PE ``pe``;
  word ``nf * SF + sf`` (SF = MW / SIMD) holds matrix row ``nf * PE + pe``,
  its bit ``j`` is column ``sf * SIMD + j``; bit 1 = +1. Padding rows and
  columns are 1 bits (the input is padded with 0 bits, so a padding column
  adds nothing to the XNOR popcount).
* ``<n>-<pe>-thres.bin``: TMEM * NT little-endian int64 (NT = 2^(API-1)
  thresholds per row), entries ``nf * NT + i`` the thresholds of row
  ``nf * PE + pe``, clipped to 16-bit signed; padding rows hold 32767. The
  hardware counts the thresholds T with ``acc > T`` (strict).

The accumulator a threshold compares against (finnthesizer's
``makeFCBNComplex``): the XNOR popcount P when the layer's input, weights and
output are all 1-bit (W1A1); otherwise the signed dot product with weights
read as -1/+1 and inputs as -1/+1 (1-bit input, padding columns included) or
as the previous layer's values ``count - 1`` (its ``ThresholdsActivation``
starts at -1 when it has more than one threshold, so 2-bit activations are
-1, 0, +1).

qnnfab compares ``acc >= T`` on its own accumulator (the popcount P for
bipolar inputs, the dot product sum(w * c) with the count c for uint inputs),
so each threshold is rewritten exactly on integers:

* W1A1, popcount: ``P > T``  <=>  ``P >= T + 1``;
* 1-bit input, dot ``d = 2P - MW``: ``d > T``  <=>  ``P >= floor((T + MW) / 2) + 1``;
* count input, dot ``d = sum(w * (c - 1)) = acc - rowsum(w)``:
  ``d > T``  <=>  ``acc >= T + rowsum(w) + 1``.

A layer with NT > 1 thresholds becomes ``act = "uint<API>"`` with the
qnnfab-only top thresholds set to the accumulator maximum plus 1 (never
reached), so the count, and the next layer's arithmetic, are BNN-PYNQ's.
The last layer of an LFC network is thresholded too, padded to 64 rows: the
host reads the label as the highest set output bit (0 when none), which the
config states as ``label = "highest_set_bit"`` with ``classes`` on the last
layer.

CNV W1A1 (a config.h whose layers define ``L<n>_K``, ``IFM_CH``, ``IFM_DIM``,
``OFM_CH``, ``OFM_DIM``): a conv layer's matrix is MW = K*K*IFM_CH wide with
columns (ky, kx, c), qnnfab's im2col order, stored in qnnfab's config as OIHW
weights; a 2x2 max pool sits where a conv layer's IFM_DIM is half its
predecessor's OFM_DIM (BNN-PYNQ's top.cpp places them so); the last layer
(API 16, no thres.bin files) outputs its popcounts (``act = "acc"``, ``label =
"argmax"`` over ``classes``). The first layer reads ``ap_fixed<8,1>`` pixels,
taken by qnnfab as int8 codes (value * 128, ``input_kind = "int"``,
``input_bits = 8``); its thresholds follow :func:`fixed_input_thresholds`.

CNV W1A2 and W2A2: 2-bit weights (WPI = 2: 2-bit two's complement fields,
``ap_int<2>``) become ``weight_kind = "int"``, ``weight_bits = 2``; 2-bit
activations (``ThresholdsActivation`` from -1: values a = -1, 0, +1) become
qnnfab's ``uint2`` counts c = a + 1 (its third threshold never reached), the
next layer's thresholds moved by the row's weight sum (``d = sum(w * a) =
sum(w * c) - sum(w)``), max pools unchanged (max commutes with + 1). The last
layer's class scores are BNN-PYNQ's ``d`` itself: the layer before it gets PE
extra rows (the first always 1, the others 0) and the last layer as many extra
columns holding ``-sum(w)`` of each row (then 0), with int weights of the bits
those sums need. One extra fold of that layer (W1A2: 32,832 cycles instead of
32,768 at BNN-PYNQ's folding; W2A2's bottleneck is a conv layer).

LFC layers with 1-bit weights and integer activations (WPI = 1, WPF = APF =
0) are read (LFC W1A1, W1A2), CNV layers with 1- or 2-bit integer weights and
activations (CNV W1A1, W1A2, W2A2); anything else is refused with a
ConfigError.

:func:`input_codes` gives BNN-PYNQ's host preprocessing of a network as
:class:`~qnnfab.interop.qonnx_import.InputCodes` on raw 8-bit pixels.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.kinds import range_bits
from qnnfab.interop.qonnx_import import InputCodes

#: fields of one layer in config.h, in the order finnthesizer writes them
_FC_FIELDS = ("SIMD", "PE", "WMEM", "TMEM", "MW", "MH", "WPI", "API", "WPF", "APF")
#: fields of a convolutional layer; its matrix is MW = K*K*IFM_CH wide (columns (ky, kx, c)), MH = OFM_CH high
_CONV_FIELDS = ("K", "IFM_CH", "IFM_DIM", "OFM_CH", "OFM_DIM", "SIMD", "PE", "WMEM", "TMEM", "WPI", "API", "WPF", "APF")
#: API of a last layer without thresholds (finn-hlslib PassThroughActivation<ap_uint<16>>): raw accumulators
PASS_THROUGH_API = 16
#: CNV's first layer: ap_fixed<8,1> inputs (7 fraction bits) into an ap_fixed<24,16> accumulator (8 fraction
#: bits) whose thresholds are stored as integers scaled by 2^8
FIXED_INPUT_BITS, FIXED_INPUT_FRAC, FIXED_ACC_FRAC = 8, 7, 8
#: BNN-PYNQ's MNIST hosts feed bit 1 for a pixel (0..255) of at least 128
MNIST_INPUT_CODES = InputCodes("bipolar", None, scale=1.0, zero_point=-128.0, layout="NC")
#: BNN-PYNQ's CIFAR-10 hosts (tiny_cnn parse_cifar10 to [-1, 1], then quantiseAndPack's
#: ap_fixed<8,1,AP_RND,AP_SAT>): pixel p -> x = 2p/255 - 1 -> code = x * 128 rounded to nearest, saturated
#: to [-128, 127]; channels interleaved (HWC). AP_RND breaks ties towards +inf, HALF_UP away from zero:
#: no pixel meets a tie (256p/255 - 128 is a whole number or at least 1/510 away from a half).
CIFAR_INPUT_CODES = InputCodes(f"int{FIXED_INPUT_BITS}", FIXED_INPUT_BITS, scale=2.0 ** -FIXED_INPUT_FRAC,
                               rounding="HALF_UP", layout="NHWC", raw_scale=2 / 255, raw_offset=-1.0)


@dataclass(frozen=True)
class FcLayer:
    """One fully connected layer of a BNN-PYNQ config.h: padded matrix (mh, mw), folding, precisions."""
    index: int
    simd: int
    pe: int
    wmem: int
    tmem: int
    mw: int
    mh: int
    wpi: int
    api: int
    wpf: int
    apf: int
    kernel: int = 0     # convolutional layers: K (0 for a fully connected layer)
    ifm_ch: int = 0
    ifm_dim: int = 0
    ofm_dim: int = 0

    @property
    def is_conv(self):
        return self.kernel > 0

    @property
    def thresholded(self):
        """False for a last layer that outputs its accumulators (API 16, no thres.bin files)."""
        return self.api != PASS_THROUGH_API

    @property
    def synapse_folds(self):
        """SF = MW / SIMD: words per matrix row."""
        return self.mw // self.simd

    @property
    def neuron_folds(self):
        """NF = MH / PE: rows per PE."""
        return self.mh // self.pe

    @property
    def thresholds_per_row(self):
        """NT = 2^(API - 1): thresholds per row in the .bin files."""
        return 1 << (self.api - 1)


def parse_config_h(text, source="config.h"):
    """The fully connected layers ``[FcLayer]`` of a finnthesizer ``config.h`` text, in order.

    Every ``L<n>_SIMD ... L<n>_APF`` define of a layer must be present, WMEM and
    TMEM must match MW, MH, SIMD and PE, and the layers must be numbered 0, 1, ..."""
    defines = {}
    for name, value in re.findall(r"^\s*#define\s+(L\d+_\w+)\s+(-?\d+)\s*$", text, re.M):
        defines[name] = int(value)
    indices = sorted({int(m.group(1)) for m in map(re.compile(r"L(\d+)_").match, defines)})
    if not indices:
        raise ConfigError(source, "layers", "no L<n>_SIMD/L<n>_PE defines found",
                          "pass BNN-PYNQ's bnn/src/network/<network>/hw/config.h")
    if indices != list(range(len(indices))):
        raise ConfigError(source, "layers", f"layer numbers {indices} are not 0, 1, 2, ...",
                          "pass an unedited finnthesizer config.h")
    layers = []
    for i in indices:
        fields = _CONV_FIELDS if f"L{i}_K" in defines else _FC_FIELDS
        missing = [f for f in fields if f"L{i}_{f}" not in defines]
        if missing:
            raise ConfigError(source, f"L{i}", f"lacks the defines {[f'L{i}_{f}' for f in missing]}",
                              "pass an unedited finnthesizer config.h")
        d = {f: defines[f"L{i}_{f}"] for f in fields}
        if fields is _CONV_FIELDS:
            if d["K"] < 1 or d["OFM_DIM"] != d["IFM_DIM"] - d["K"] + 1:
                raise ConfigError(source, f"L{i}", f"OFM_DIM {d['OFM_DIM']} is not IFM_DIM {d['IFM_DIM']} - K "
                                  f"{d['K']} + 1 (a 3x3 convolution without padding)",
                                  "pass an unedited finnthesizer config.h")
            d.update(MW=d["K"] * d["K"] * d["IFM_CH"], MH=d["OFM_CH"])
        layer = FcLayer(i, *(d[f] for f in _FC_FIELDS), kernel=d.get("K", 0), ifm_ch=d.get("IFM_CH", 0),
                        ifm_dim=d.get("IFM_DIM", 0), ofm_dim=d.get("OFM_DIM", 0))
        if layer.simd < 1 or layer.pe < 1 or layer.mw % layer.simd or layer.mh % layer.pe:
            raise ConfigError(source, f"L{i}", f"MW {layer.mw} / SIMD {layer.simd} or MH {layer.mh} / PE "
                              f"{layer.pe} is not whole", "pass an unedited finnthesizer config.h")
        if (layer.wmem, layer.tmem) != (layer.neuron_folds * layer.synapse_folds, layer.neuron_folds):
            raise ConfigError(source, f"L{i}", f"WMEM {layer.wmem} / TMEM {layer.tmem} do not match "
                              f"MW {layer.mw}, MH {layer.mh}, SIMD {layer.simd}, PE {layer.pe}",
                              "WMEM = MW*MH/(SIMD*PE), TMEM = MH/PE")
        last_pass = layer.api == PASS_THROUGH_API and i == indices[-1]
        if "L0_K" in defines:
            if layer.wpi not in (1, 2) or (layer.wpf, layer.apf) != (0, 0) or not (layer.api in (1, 2) or last_pass):
                raise ConfigError(source, f"L{i}", f"has {layer.wpi}.{layer.wpf}-bit weights and {layer.api}."
                                  f"{layer.apf}-bit activations; CNV layers with 1- or 2-bit integer weights and "
                                  "activations are read", "import cnvW1A1, cnvW1A2 or cnvW2A2")
        elif (layer.wpi, layer.wpf, layer.apf) != (1, 0, 0) or not (1 <= layer.api <= 8 or last_pass):
            raise ConfigError(source, f"L{i}", f"has {layer.wpi}.{layer.wpf}-bit weights and "
                              f"{layer.api}.{layer.apf}-bit activations; only 1-bit weights with integer "
                              "activations are read", "import a W1A1 or W1A2 network (lfcW1A1, lfcW1A2)")
        if layer.simd * layer.wpi > 64:
            raise ConfigError(source, f"L{i}_SIMD", f"is {layer.simd} {layer.wpi}-bit weights, above the 64 bits "
                              "of a weight word",
                              "pass an unedited finnthesizer config.h")
        if i and layers[-1].is_conv and not layer.is_conv and layers[-1].ofm_dim ** 2 * layers[-1].mh != layer.mw:
            raise ConfigError(source, f"L{i}_MW", f"is {layer.mw} but layer {i - 1} outputs "
                              f"{layers[-1].ofm_dim}x{layers[-1].ofm_dim}x{layers[-1].mh}",
                              "pass an unedited finnthesizer config.h")
        if i and layer.is_conv and layer.ifm_ch != layers[-1].mh:
            raise ConfigError(source, f"L{i}_IFM_CH", f"is {layer.ifm_ch} but layer {i - 1} has "
                              f"{layers[-1].mh} output channels", "pass an unedited finnthesizer config.h")
        if i and layer.is_conv and layers[-1].ofm_dim not in (layer.ifm_dim, 2 * layer.ifm_dim):
            raise ConfigError(source, f"L{i}_IFM_DIM", f"is {layer.ifm_dim} but layer {i - 1} outputs "
                              f"{layers[-1].ofm_dim} (neither equal nor a 2x2 max pool of it)",
                              "pass an unedited finnthesizer config.h")
        if i and not layers[-1].is_conv and layer.mw != layers[-1].mh:
            raise ConfigError(source, f"L{i}_MW", f"is {layer.mw} but layer {i - 1} has MH {layers[-1].mh}",
                              "pass an unedited finnthesizer config.h")
        layers.append(layer)
    return layers


def _read_words(path, dtype, count):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "file", "does not exist",
                          "pass BNN-PYNQ's bnn/params/<dataset>/<network> folder matching the config.h")
    data = np.fromfile(path, dtype=np.dtype(dtype).newbyteorder("<"))
    if data.size != count or path.stat().st_size != count * 8:
        raise ConfigError(str(path), "size", f"has {path.stat().st_size} bytes, expected {count * 8} "
                          f"({count} 64-bit words)", "pass the params folder that matches the config.h")
    return data


def read_layer(params_dir, layer):
    """Weights and thresholds of BNN-PYNQ layer ``layer`` (an :class:`FcLayer`) from ``params_dir``.

    Returns ``(bits, thresholds)``: ``bits`` uint8 (MH, MW), 1 = +1, padding
    included (WPI = 2: int8 values -2..1, the WPI-bit two's complement field
    ``j`` of a word, bits ``2j, 2j+1``, being column ``sf * SIMD + j``; padding
    0); ``thresholds`` int64 (MH, NT), BNN-PYNQ's strict thresholds (counted
    where acc > T) in its accumulator domain, as stored."""
    sf, nf = layer.synapse_folds, layer.neuron_folds
    nt = layer.thresholds_per_row if layer.thresholded else 0
    wbits = layer.wpi
    bits = np.empty((layer.mh, layer.mw), dtype=np.uint8 if wbits == 1 else np.int8)
    thresholds = np.empty((layer.mh, nt), dtype=np.int64)
    shifts = np.arange(layer.simd, dtype=np.uint64) * np.uint64(wbits)
    for pe in range(layer.pe):
        stem = Path(params_dir) / f"{layer.index}-{pe}"
        words = _read_words(f"{stem}-weights.bin", np.uint64, layer.wmem).reshape(nf, sf)
        # field j of word (nf, sf) is column sf*SIMD + j of row nf*PE + pe
        rows = ((words[:, :, None] >> shifts) & np.uint64((1 << wbits) - 1)).astype(np.int64)
        if wbits > 1:
            rows = np.where(rows >= 1 << (wbits - 1), rows - (1 << wbits), rows)
        bits[pe::layer.pe] = rows.reshape(nf, layer.mw)
        if nt:
            thresholds[pe::layer.pe] = _read_words(f"{stem}-thres.bin", np.int64, layer.tmem * nt).reshape(nf, nt)
    return bits, (thresholds if nt else None)


def _input_bits(config_h, first):
    """Unpadded input width: ``inBits = a * b`` in the top.cpp beside config.h, else the first MW."""
    top = Path(config_h).with_name("top.cpp")
    if top.is_file():
        m = re.search(r"inBits\s*=\s*([\d\s*]+);", top.read_text())
        if m:
            return int(np.prod([int(f) for f in m.group(1).split("*")]))
    return first.mw


def _classes(params_dir, last):
    """Number of classes: the lines of classes.txt in the params folder, else the last MH."""
    path = Path(params_dir) / "classes.txt"
    if path.is_file():
        return len([line for line in path.read_text().splitlines() if line.strip()])
    return last.mh


def qnnfab_thresholds(layer, bits, strict, in_bits):
    """qnnfab's ``acc >= T`` thresholds (MH, 2^API - 1) of BNN-PYNQ layer ``layer``.

    ``bits`` (MH, MW) and ``strict`` (MH, NT) as :func:`read_layer` returns them;
    ``in_bits``: 1 for a bipolar input (the network input or a 1-bit
    activation), else the API of the previous layer (inputs are its counts)."""
    strict = np.sort(strict, axis=1)
    if in_bits == 1 and layer.api == 1:
        t = strict + 1
        top = layer.mw + 1
    elif in_bits == 1:
        t = (strict + layer.mw) // 2 + 1
        top = layer.mw + 1
    else:
        rowsum = 2 * bits.astype(np.int64).sum(axis=1, keepdims=True) - layer.mw
        t = strict + rowsum + 1
        top = layer.mw * ((1 << in_bits) - 1) + 1
    if layer.api == 1:
        return t
    never = np.full((layer.mh, (1 << layer.api) - 1 - t.shape[1]), top, dtype=np.int64)
    return np.concatenate([t, np.maximum(never, t.max(axis=1, keepdims=True))], axis=1)


def fixed_input_thresholds(strict, input_frac=FIXED_INPUT_FRAC, threshold_frac=FIXED_ACC_FRAC):
    """qnnfab's ``acc >= T'`` thresholds of a layer reading fixed-point inputs (CNV's first layer).

    BNN-PYNQ computes ``a = sum(w * x)`` on inputs ``x = code * 2^-input_frac``
    (``ap_fixed<8,1>``: input_frac = 7) with w = -1/+1, exactly in its
    ``ap_fixed<24,16>`` accumulator, and counts the stored integer thresholds
    ``T`` (scaled by ``2^threshold_frac``) with ``a > T * 2^-threshold_frac``.
    qnnfab's accumulator is ``S = sum(w * code) = a * 2^input_frac``, so with
    ``k = threshold_frac - input_frac >= 0``:
    ``S * 2^k > T``  <=>  ``S > T / 2^k``  <=>  ``S >= floor(T / 2^k) + 1``
    (S is an integer; an odd T at k = 1 lies half way between two values of S)."""
    shift = threshold_frac - input_frac
    if shift < 0:
        raise ValueError("thresholds must have at least as many fraction bits as the inputs")
    return (np.asarray(strict, dtype=np.int64) >> shift) + 1


def _signed_weights(layer, bits):
    """BNN-PYNQ's weight values of ``bits`` as :func:`read_layer` returns them: -1/+1 for 1-bit weights."""
    w = bits.astype(np.int64)
    return 2 * w - 1 if layer.wpi == 1 else w


def _count_thresholds(layer, w, strict, in_api):
    """qnnfab's ``acc >= T`` thresholds (MH, 2^API - 1) of a CNV layer after the first one, on signed
    weight values ``w`` (MH, MW). 1-bit inputs with 1-bit weights: qnnfab's popcount P, BNN-PYNQ's too
    (``P >= T + 1``); 2-bit inputs (BNN-PYNQ's values a = c - 1 of qnnfab's counts c): BNN-PYNQ's
    ``d = sum(w * a) = sum(w * c) - sum(w)``, so ``d > T  <=>  acc >= T + sum(w) + 1``."""
    strict = np.sort(strict, axis=1)
    if in_api == 1:
        if layer.wpi != 1:
            raise ConfigError(f"L{layer.index}", "WPI", "2-bit weights on 1-bit activations are not read",
                              "import cnvW1A1, cnvW1A2 or cnvW2A2")
        return qnnfab_thresholds(layer, (w > 0).astype(np.uint8), strict, 1)
    t = strict + w.sum(axis=1, keepdims=True) + 1
    top = 2 * np.abs(w).sum(axis=1, keepdims=True) + 1        # above any sum(w * c), c in 0..2
    return _with_never(layer, t, top)


def _with_never(layer, t, top):
    """``t`` (MH, NT) completed to qnnfab's 2^API - 1 thresholds with ``top`` (never reached)."""
    n = (1 << layer.api) - 1
    if t.shape[1] == n:
        return t
    never = np.broadcast_to(np.maximum(top, t.max(axis=1, keepdims=True)), (t.shape[0], n - t.shape[1]))
    return np.concatenate([t, never], axis=1)


def _weights_entry(layer, bits):
    """qnnfab's stored weights of a layer (bits for 1-bit weights, int2 values for 2-bit) and the config
    lines of their kind; conv layers as OIHW (BNN-PYNQ's columns are (ky, kx, c))."""
    stored = bits if layer.wpi == 1 else bits.astype(np.int64)
    if layer.is_conv:
        k = layer.kernel
        stored = np.ascontiguousarray(stored.reshape(layer.mh, k, k, layer.ifm_ch).transpose(0, 3, 1, 2))
    kind = [] if layer.wpi == 1 else ['weight_kind = "int"', f"weight_bits = {layer.wpi}"]
    return stored, kind


def _read_conv_network(params_dir, config_h, layers, *, name, weights_file, classes):
    """read_network for a CNV topology: conv layers (first one on 8-bit fixed-point pixels), 2x2 max pools
    where a layer's input is half its predecessor's output, fc layers, the last one raw accumulators.

    With 2-bit activations before the last layer (W1A2, W2A2), BNN-PYNQ's class scores are
    ``sum(w * a)`` over a = c - 1 (qnnfab's counts c), ``sum(w * c) - sum(w)``: the layer before gets
    PE extra rows, the first always counting 1 (its thresholds below any accumulator), the others 0,
    and the last layer extra columns holding ``-sum(w)`` of each row (then 0): its accumulators are
    BNN-PYNQ's scores exactly, its weights int with the bits those sums need."""
    first = layers[0]
    entries = []            # per layer: its name, FcLayer, weight values, arrays, kind lines, act, out
    pools = conv_n = fc_n = 0
    for prev, layer in zip([None] + layers[:-1], layers):
        if prev is not None and prev.is_conv and layer.is_conv and layer.ifm_dim != prev.ofm_dim:
            entries.append(dict(lines=[f'name = "pool{pools}"', 'type = "maxpool"', "kernel = 2"], arrays={}))
            pools += 1
        bits, strict = read_layer(params_dir, layer)
        w = _signed_weights(layer, bits)
        if layer.is_conv:
            lname, conv_n = f"conv{conv_n}", conv_n + 1
        else:
            lname, fc_n = f"fc{fc_n}", fc_n + 1
        stored, kind = _weights_entry(layer, bits)
        arrays = {f"{lname}/weights": stored}
        if prev is None and layer.thresholded:
            t = fixed_input_thresholds(np.sort(strict, axis=1))
            top = (1 << (FIXED_INPUT_BITS - 1)) * np.abs(w).sum(axis=1, keepdims=True) + 1   # above any |S|
            arrays[f"{lname}/thresholds"] = _with_never(layer, t, top)
        elif layer.thresholded:
            arrays[f"{lname}/thresholds"] = _count_thresholds(layer, w, strict, prev.api)
        act = "acc" if not layer.thresholded else "bipolar" if layer.api == 1 else f"uint{layer.api}"
        entries.append(dict(name=lname, layer=layer, w=w, arrays=arrays, kind=kind, act=act, out=layer.mh))
    last, before = entries[-1], entries[-2]
    notes = []
    if before["layer"].api > 1:
        _fold_score_offset(before, last)
        notes = [f"# {before['name']}: {before['out'] - before['layer'].mh} rows more than BNN-PYNQ's (the first always "
                 f"1), {last['name']}: as many columns, holding -sum(w) of each row: its accumulators are",
                 "# BNN-PYNQ's class scores sum(w * a) over its activations a = -1, 0, +1 (qnnfab's uint2 codes - 1)."]
    lines = [
        f"# BNN-PYNQ {name}, imported by qnnfab.interop.bnn_pynq from its finnthesizer parameters.",
        "# Inputs: BNN-PYNQ's ap_fixed<8,1> pixels as int8 codes (value * 128), NHWC.",
        "# Thresholds: BNN-PYNQ's strict ones rewritten for qnnfab's acc >= T (see the module).",
        *notes,
        "[network]",
        f'name = "{name}"',
        f"input_shape = [{first.ifm_dim}, {first.ifm_dim}, {first.ifm_ch}]",
        'input_kind = "int"',
        f"input_bits = {FIXED_INPUT_BITS}",
        f'weights = "{weights_file}"',
        'label = "argmax"',
    ]
    arrays = {}
    for e in entries:
        lines += ["", "[[layer]]"]
        arrays.update(e["arrays"])
        if "layer" not in e:
            lines += e["lines"]
            continue
        layer = e["layer"]
        lines += [f'name = "{e["name"]}"', f'type = "{"conv" if layer.is_conv else "fc"}"', f"out = {e['out']}"]
        if layer.is_conv:
            lines.append(f"kernel = {layer.kernel}")
        lines += [f'act = "{e["act"]}"'] + e["kind"] + [f"simd = {layer.simd}", f"pe = {layer.pe}"]
    lines.append(f"classes = {classes}")
    return "\n".join(lines) + "\n", arrays


def _fold_score_offset(before, last):
    """Make the last layer's accumulators BNN-PYNQ's scores sum(w * (c - 1)) (see _read_conv_network)."""
    b, l = before["layer"], last["layer"]
    if b.is_conv or l.is_conv:
        raise ConfigError(f"L{l.index}", "layers", "the score offset needs two fc layers at the end",
                          "import BNN-PYNQ's cnvW1A2 or cnvW2A2 as shipped")
    extra = b.pe
    if (l.mw + extra) % l.simd:
        raise ConfigError(f"L{l.index}", "SIMD", f"{l.simd} does not divide MW {l.mw} + {extra} offset columns",
                          "import BNN-PYNQ's cnvW1A2 or cnvW2A2 as shipped (last layer SIMD 1)")
    name, t = before["name"], before["arrays"][f"{before['name']}/thresholds"]
    top = int(np.abs(t).max()) + 1
    wb = before["arrays"][f"{name}/weights"]
    fill = np.ones if b.wpi == 1 else np.zeros                   # bits of +1 weights, or 0 values
    before["arrays"][f"{name}/weights"] = np.concatenate([wb, fill((extra, wb.shape[1]), dtype=wb.dtype)])
    rows = np.full((extra, t.shape[1]), top, dtype=np.int64)
    rows[0, 0] = -top                                             # always reached: count 1
    before["arrays"][f"{name}/thresholds"] = np.concatenate([t, rows])
    before["out"] = b.mh + extra
    w = last["w"]
    offset = np.zeros((w.shape[0], extra), dtype=np.int64)
    offset[:, 0] = -w.sum(axis=1)
    values = np.concatenate([w, offset], axis=1)
    bits, _ = range_bits(min(int(values.min()), -1), int(values.max()))      # signed: int weights
    last["arrays"][f"{last['name']}/weights"] = values
    last["kind"] = ['weight_kind = "int"', f"weight_bits = {bits}"]


def input_codes(config_h):
    """The :class:`InputCodes` of BNN-PYNQ's host for the network of ``config_h``: raw 8-bit pixels to the
    codes its first layer reads (CNV: :data:`CIFAR_INPUT_CODES`, LFC: :data:`MNIST_INPUT_CODES`)."""
    layers = parse_config_h(Path(config_h).read_text(), str(config_h))
    return CIFAR_INPUT_CODES if layers[0].is_conv else MNIST_INPUT_CODES


def read_network(params_dir, config_h, *, name="lfc-w1a1", weights_file=None, inputs=None, classes=None):
    """A qnnfab config of the BNN-PYNQ W1A1 or W1A2 fully connected network in ``params_dir`` / ``config_h``.

    Returns ``(toml_text, arrays)``: the TOML names ``weights_file`` (default
    ``<name>.npz``), in which the caller saves ``arrays`` (``np.savez``):
    ``fc<n>/weights`` uint8 (MH, MW) bits, 1 = +1, the hardware's padded
    matrices; ``fc<n>/thresholds`` int64 (MH, 2^API - 1), qnnfab's ``acc >= T``
    thresholds (:func:`qnnfab_thresholds`).

    ``inputs``: unpadded input bits (default: ``inBits`` of the top.cpp next to
    ``config_h``, else the first layer's MW); the config pads them with
    ``input_pad = MW - inputs`` zero bits. ``classes``: default the lines of
    ``classes.txt`` in ``params_dir``. The label is BNN-PYNQ's read-out, the
    highest set bit of the last layer's output (0 when none)."""
    config_h = Path(config_h)
    if not config_h.is_file():
        raise ConfigError(str(config_h), "file", "does not exist",
                          "pass BNN-PYNQ's bnn/src/network/<network>/hw/config.h")
    layers = parse_config_h(config_h.read_text(), str(config_h))
    if layers[0].is_conv:
        classes = _classes(params_dir, layers[-1]) if classes is None else int(classes)
        if not 0 < classes <= layers[-1].mh or layers[-1].is_conv:
            raise ConfigError(str(params_dir), "classes", f"{classes} classes do not fit the last layer",
                              "pass the number of classes the network was trained on")
        return _read_conv_network(params_dir, config_h, layers, name=name,
                                  weights_file=weights_file or f"{name}.npz", classes=classes)
    if not layers[-1].thresholded:
        raise ConfigError(str(config_h), f"L{layers[-1].index}_API", f"is {PASS_THROUGH_API} (raw accumulators) "
                          "in a fully connected network; only CNV networks end that way",
                          "import an LFC network with a thresholded last layer (lfcW1A1, lfcW1A2)")
    inputs = _input_bits(config_h, layers[0]) if inputs is None else int(inputs)
    classes = _classes(params_dir, layers[-1]) if classes is None else int(classes)
    if not 0 < inputs <= layers[0].mw:
        raise ConfigError(str(config_h), "inputs", f"{inputs} input bits do not fit L0_MW = {layers[0].mw}",
                          "pass the unpadded input width (784 for MNIST)")
    if not 0 < classes <= layers[-1].mh:
        raise ConfigError(str(params_dir), "classes", f"{classes} classes do not fit the last MH = "
                          f"{layers[-1].mh}", "pass the number of classes the network was trained on")
    weights_file = weights_file or f"{name}.npz"
    arrays = {}
    lines = [
        f"# BNN-PYNQ {name}, imported by qnnfab.interop.bnn_pynq from its finnthesizer parameters.",
        "# Thresholds: BNN-PYNQ's strict ones rewritten for qnnfab's acc >= T (see the module).",
        "[network]",
        f'name = "{name}"',
        f"input_shape = [{inputs}]",
        f"input_pad = {layers[0].mw - inputs}",
        'input_kind = "bipolar"',
        f'weights = "{weights_file}"',
        'label = "highest_set_bit"',
    ]
    in_bits = 1
    for layer in layers:
        bits, strict = read_layer(params_dir, layer)
        lname = f"fc{layer.index}"
        arrays[f"{lname}/weights"] = bits
        arrays[f"{lname}/thresholds"] = qnnfab_thresholds(layer, bits, strict, in_bits)
        act = "bipolar" if layer.api == 1 else f"uint{layer.api}"
        lines += ["", "[[layer]]", f'name = "{lname}"', 'type = "fc"', f"out = {layer.mh}",
                  f'act = "{act}"', f"simd = {layer.simd}", f"pe = {layer.pe}"]
        in_bits = layer.api
    lines.append(f"classes = {classes}")
    return "\n".join(lines) + "\n", arrays

"""Network configs: one TOML file (topology + folding) and one ``.npz`` (weights).

A config describes a network once; :mod:`qnnfab.golden` runs it bit-exactly
and :class:`qnnfab.rtl.dataflow.Dataflow` turns it into hardware.

TOML format::

    [network]
    name = "lfc-small"
    input_shape = [64]            # (N,) for FC inputs, [H, W, C] for images
    input_kind = "bipolar"        # "bipolar" | "uint" | "int"
    input_bits = 8                # for "uint" / "int"
    weights = "lfc_small.npz"     # relative to the TOML file, or "random"
    seed = 1                      # for weights = "random"
    pipeline = 0                  # default of the layers' pipeline (below): N or "max"
    weights_mode = "const"        # "const": weights are constants of the hardware;
                                  # "runtime": RAMs loaded with a weights image
                                  # (`qnnfab pack-weights`, qnnfab/weights_image.py)

    [[layer]]
    name = "fc0"
    type = "fc"                   # "fc" | "conv" | "maxpool"
    out = 64                      # rows MH (fc) / output channels (conv)
    act = "bipolar"               # "bipolar" (1 threshold), "uint2" (3 thresholds), "acc" (raw)
    weight_kind = "bipolar"       # "bipolar" | "ternary" | "int" (with weight_bits)
    pe = 16                       # divides out
    simd = 32                     # divides the input length (fc) / input channels (conv);
                                  # conv: or m * channels, m dividing kernel^2 (m kernel
                                  # positions per word, up to the whole window)
    # conv only: kernel = 3, stride = 1, pad = 0, pad_value = 0
    # maxpool: kernel = 2, stride = 2 (simd = channels per word, default: previous PE)
    # optional: fifo_depth = N (words of the FIFO in front of this layer)
    # optional: pipeline = N (fc/conv: registers inside the popcount / adder
    #   tree, clamped to its depth; each adds a cycle of latency, not of
    #   throughput, and shortens the longest path: see `qnnfab report`)
    #   or pipeline = "max": the whole tree depth plus a register on the
    #   weight-memory and input-buffer read data (for 200 MHz)
    # optional: weight_memory = "auto" | "block" | "distributed" (fc/conv:
    #   where the weight memories go: synthesis' choice, block RAM, or LUTs
    #   (a LUT ROM, or LUT-RAM with weights_mode = "runtime"))

The ``.npz`` holds ``<layer>/weights`` (fc: (MH, MW) stored values, bipolar
as bits 1 = +1; conv: (OFM, IFM, K, K), OIHW) and ``<layer>/thresholds``
((MH, N) integers sorted ascending per row, in the accumulator domain: the
XNOR popcount for bipolar x bipolar layers, the integer dot product
otherwise). Every problem raises :class:`~qnnfab.errors.ConfigError` naming
the layer and the field, before any hardware is built.
"""

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np

from qnnfab import folding
from qnnfab.errors import ConfigError, check_int
from qnnfab.folding import divisors
from qnnfab.kinds import ACTIVATION_KINDS, WEIGHT_KINDS, DataKind

MEMORY_STYLES = ("auto", "block", "distributed")  # where weight memories go (rtl/loadable_memory.py)

__all__ = ["LayerSpec", "NetConfig", "load", "loads", "dumps", "save_weights", "check_name",
           "safe_name", "LIMITS"]

LAYER_TYPES = ("fc", "conv", "maxpool")
WEIGHTS_MODES = ("const", "runtime")
PIPELINE_MAX = "max"   # pipeline = "max": every register the MVTU offers (see qnnfab.rtl.mvtu.MVTU)


# Names become Verilog module names, cache file names and output file names:
# only these characters, checked before any of them is built.
NAME_RULES = {
    "layer": (re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}"),
              "a letter, then up to 63 letters, digits or _ (e.g. fc0, conv_1)"),
    "network": (re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}"),
                "a letter, then up to 63 letters, digits, _ or - (e.g. lfc-small)"),
}
# suffixes of the stages Dataflow adds in front of a layer (<layer>_fifo, <layer>_dwc)
RESERVED_SUFFIXES = ("_fifo", "_dwc")


def check_name(where, field, name, kind="layer"):
    """Raise :class:`ConfigError` unless ``name`` follows the rule of ``kind``
    ("layer" or "network", see ``NAME_RULES``); return it."""
    pattern, rule = NAME_RULES[kind]
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise ConfigError(where, field, f"{name!r} is not a valid {kind} name",
                          f"use {rule}")
    if kind == "layer" and name.endswith(RESERVED_SUFFIXES):
        raise ConfigError(where, field, f"{name!r} ends in one of {RESERVED_SUFFIXES}, reserved for the "
                          "stages in front of a layer", "choose another name")
    return name


def safe_name(text, default="net"):
    """``text`` made into a valid network name (other characters become ``-``)."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-_")[:64]
    if not s or not s[0].isalpha():
        s = (default + "-" + s)[:64].rstrip("-_")
    return s


# Sizes a config may ask for, checked before any array is allocated: far above
# what fits on the supported devices (xc7z020: 4.9 Mbit of BRAM), low enough
# that loading (random weights included) stays quick.
LIMITS = {
    "weight_bits_per_layer": 1 << 24,     # 16 Mbit of weights in one layer
    "map_elements": 1 << 22,              # elements of any feature map (input or output)
    "thresholds_per_layer": 1 << 20,      # out * (2^act_bits - 1)
    "fifo_depth": 1 << 16,
    "data_bits": 16,                      # input_bits, weight_bits (and act uint<n>)
    "kernel": 7,                          # the sliding window's largest kernel
}


def _check_size(where, field, value, limit, what, fix):
    if value > limit:
        raise ConfigError(where, field, f"{what} is {value:,}, above the limit of {limit:,}", fix)


@dataclass
class LayerSpec:
    """One hardware layer (fc/conv followed by its activation, or a max pool)."""
    name: str
    type: str
    out: int = 0
    act: str = "bipolar"            # "bipolar" | "uint<n>" | "acc"
    weight_kind: str = "bipolar"
    weight_bits: int | None = None
    pe: int = 1
    simd: int = 1
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    pad_value: int = 0
    fifo_depth: int | None = None
    pipeline: int | str = 0          # tree registers, or "max" (PIPELINE_MAX)
    weight_memory: str = "auto"     # "auto" | "block" | "distributed" (rtl/loadable_memory.py)
    weights: np.ndarray | None = field(default=None, repr=False)      # fc (MH, MW); conv OIHW
    thresholds: np.ndarray | None = field(default=None, repr=False)   # (MH, N) or None
    # derived by NetConfig: shapes and kinds around the layer
    in_shape: tuple = ()
    out_shape: tuple = ()
    in_kind: str = ""
    in_bits: int = 1
    out_kind: str = ""              # "bipolar" | "uint" | "acc"
    out_bits: int = 1               # element width on the stream
    out_signed: bool = False

    @property
    def act_bits(self):
        """Output bits of the activation (0 for raw accumulators)."""
        if self.act == "bipolar":
            return 1
        if self.act == "acc":
            return 0
        return int(self.act[4:])

    @property
    def in_simd(self):
        """Elements per word of the layer's input stream (:func:`qnnfab.folding.in_simd`)."""
        return folding.in_simd(self)

    @property
    def n_thresholds(self):
        if self.act == "acc":
            return 0
        return (1 << self.act_bits) - 1


@dataclass
class NetConfig:
    name: str
    input_shape: tuple
    input_kind: str
    input_bits: int | None
    layers: list
    source: str = ""
    weights_ref: str = "random"     # the [network] weights entry, as an absolute path or "random"
    seed: int = 0
    weights_mode: str = "const"     # "const" | "runtime" (WEIGHTS_MODES)

    # ---- golden model -------------------------------------------------
    def golden(self):
        """The same network as a :class:`qnnfab.golden.Network` (bit-exact reference)."""
        from qnnfab.golden import network as gn
        from qnnfab.golden.conv import conv_weights_to_matrix
        layers = []
        for L in self.layers:
            if L.type == "maxpool":
                layers.append(gn.MaxPool(L.kernel, L.stride, name=L.name))
                continue
            wk = L.weight_kind
            if L.type == "fc":
                layers.append(gn.FC(L.weights, w_kind=wk, w_bits=L.weight_bits, name=L.name))
            else:
                layers.append(gn.Conv(conv_weights_to_matrix(L.weights), L.kernel, L.stride, L.pad,
                                      L.pad_value, w_kind=wk, w_bits=L.weight_bits, name=L.name))
            if L.act != "acc":
                layers.append(gn.Threshold(L.thresholds, "bipolar" if L.act == "bipolar" else "uint",
                                           name=f"{L.name}_act"))
        return gn.Network(layers, self.input_shape, self.input_kind, self.input_bits, self.name)

    # ---- performance model --------------------------------------------
    def layer_cycles(self, L):
        """Cycles per frame of layer ``L`` (:func:`qnnfab.folding.layer_cycles`)."""
        return folding.layer_cycles(L)

    def throughput(self, f_clk=100e6):
        """Rows ``(layer, cycles/frame)`` plus the bottleneck and frames/s at ``f_clk``."""
        rows = [(L.name, self.layer_cycles(L)) for L in self.layers]
        worst = max(rows, key=lambda r: r[1])
        return rows, worst, f_clk / worst[1]

    def random_inputs(self, n, seed=0):
        """``n`` random frames of stored input values, shape (n,) + input_shape
        (bits for bipolar, k-bit codes for uint/int), int64."""
        lo, hi = DataKind.of(self.input_kind, self.input_bits).stored_range
        return np.random.default_rng(seed).integers(lo, hi + 1, size=(n,) + self.input_shape)

    def topology_hash(self):
        """32-bit identity of the hardware this config builds, weights excluded.

        Covers the input format and every layer's type, shape, kinds and
        folding (what fixes the generated ports, memories and datapaths), not
        the network's name, its weight values or thresholds. Two configs with
        the same hash run on the same bitstream when weights are loaded at run
        time; the overlay's identity register and the weights image's header
        carry it.
        """
        import hashlib
        import json
        desc = [list(self.input_shape), self.input_kind, self.input_bits]
        for L in self.layers:
            desc.append([L.type, L.out, L.act, L.weight_kind, L.weight_bits, L.pe, L.simd, L.kernel,
                         L.stride, L.pad, L.pad_value, L.fifo_depth, L.pipeline, list(L.in_shape)]
                        + ([L.weight_memory] if L.weight_memory != "auto" else []))
        text = json.dumps(desc, separators=(",", ":"))
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")

    def input_words(self):
        """Input words per frame (the first layer's ``in_simd`` elements per word)."""
        return math.prod(self.input_shape) // self.layers[0].in_simd


# ---------------------------------------------------------------------------
# loading and validation

def _req(table, key, where, kind=None):
    if key not in table:
        raise ConfigError(where, key, "is missing", f"add `{key} = ...` to the config")
    v = table[key]
    if kind is not None and not isinstance(v, kind):
        raise ConfigError(where, key, f"must be a {kind.__name__}, got {v!r}",
                          f"write `{key} = [...]`" if kind is list else f"give `{key}` a {kind.__name__}")
    return v


def _int(table, key, where, default=None, minimum=0):
    v = table.get(key, default)
    if v is None:
        raise ConfigError(where, key, "is missing", f"add `{key} = ...`")
    return check_int(where, key, v, minimum, f"set `{key} = <integer >= {minimum}>`")


def _pipeline(table, where, default):
    """A ``pipeline`` entry: an integer >= 0 (adder-tree registers) or "max"."""
    v = table.get("pipeline", default)
    if v == PIPELINE_MAX:
        return v
    if isinstance(v, str):
        raise ConfigError(where, "pipeline", f"unknown value {v!r}",
                          f'use pipeline = N (registers in the adder tree, N >= 0) or "{PIPELINE_MAX}"')
    return check_int(where, "pipeline", v, 0,
                     f'use pipeline = N (registers in the adder tree, N >= 0) or "{PIPELINE_MAX}"')


def _random_weights(spec, in_len, in_kind, in_bits, rng):
    """Random weights and thresholds that keep the activations balanced."""
    n = in_len
    wk, xk = DataKind.of(spec.weight_kind, spec.weight_bits), DataKind.of(in_kind, in_bits)
    lo, hi = wk.stored_range
    w = rng.integers(lo, hi + 1, size=(spec.out, n))
    if spec.act == "acc":
        t = None
    else:
        # accumulator statistics of random inputs, estimated by sampling
        lo, hi = xk.stored_range
        x = rng.integers(lo, hi + 1, size=(64, n))
        if in_kind == "bipolar" and spec.weight_kind == "bipolar":
            acc = (x[:, None, :] == w[None, :, :]).sum(-1)           # popcount domain
        else:
            acc = xk.values(x) @ wk.values(w).T
        mean, std = acc.mean(0), acc.std(0) + 1.0
        k = spec.n_thresholds
        z = np.array([NormalDist().inv_cdf(j / (k + 1)) for j in range(1, k + 1)])  # normal quantiles
        t = np.ceil(mean[:, None] + std[:, None] * (z[None, :] + rng.normal(0, 0.2, (spec.out, 1))))
        t = np.sort(t.astype(np.int64), axis=1)
    if spec.type == "conv":
        c = spec.in_shape[2]
        w = w.reshape(spec.out, spec.kernel, spec.kernel, c).transpose(0, 3, 1, 2)  # (ky,kx,c) -> OIHW
    return w.astype(np.int64), t


def loads(text, base_dir=".", source="<string>"):
    """Parse and validate a config from TOML text (weights relative to ``base_dir``)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "toml", f"is not valid TOML: {e}",
                          "correct the file at that line and column (format: qnnfab/netconfig.py)") from None
    net = doc.get("network")
    if not isinstance(net, dict):
        raise ConfigError(source, "[network]", "table is missing", "start the file with a [network] table")
    name = net.get("name", safe_name(Path(source).stem))
    where = f"network {name!r}" if not isinstance(name, str) else f"network '{name}'"
    check_name(where, "name", name, "network")
    net_known = {"name", "input_shape", "input_kind", "input_bits", "weights", "seed", "pipeline", "weights_mode"}
    extra = set(net) - net_known
    if extra:
        raise ConfigError(where, sorted(extra)[0], "is not a known [network] field",
                          f"known fields: {sorted(net_known)}")
    net_pipeline = _pipeline(net, where, default=0)
    weights_mode = net.get("weights_mode", "const")
    if weights_mode not in WEIGHTS_MODES:
        raise ConfigError(where, "weights_mode", f"unknown mode {weights_mode!r}",
                          'use weights_mode = "const" (weights in the hardware) or "runtime" (loaded at run time)')
    shape = _req(net, "input_shape", where, list)
    if len(shape) not in (1, 3) or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ConfigError(where, "input_shape", f"must be [N] or [H, W, C] of positive integers, got {shape}",
                          "e.g. input_shape = [784] or [32, 32, 3]")
    in_kind = net.get("input_kind", "bipolar")
    if in_kind not in ACTIVATION_KINDS:
        raise ConfigError(where, "input_kind", f"unknown kind {in_kind!r}", f"use one of {ACTIVATION_KINDS}")
    _check_size(where, "input_shape", math.prod(shape), LIMITS["map_elements"], "the number of input elements",
                "use a smaller input")
    in_bits = None
    if in_kind != "bipolar":
        in_bits = _int(net, "input_bits", where, minimum=2 if in_kind == "int" else 1)
        _check_size(where, "input_bits", in_bits, LIMITS["data_bits"], "the input width",
                    f"use input_bits <= {LIMITS['data_bits']}")
    layers_t = doc.get("layer")
    if not isinstance(layers_t, list) or not layers_t:
        raise ConfigError(where, "[[layer]]", "no layers", "add [[layer]] tables")

    weights_src = net.get("weights", "random")
    if not isinstance(weights_src, str) or not weights_src:
        raise ConfigError(where, "weights", f"must be a file name or \"random\", got {weights_src!r}",
                          "write weights = \"net.npz\" (relative to the config) or weights = \"random\"")
    seed = _int(net, "seed", where, default=0)
    store = None
    rng = None
    if weights_src == "random":
        rng = np.random.default_rng(seed)
    else:
        store = _load_weights_file(Path(base_dir) / weights_src, where)

    bad = next((k for k, t in enumerate(layers_t) if not isinstance(t, dict)), None)
    if bad is not None:
        raise ConfigError(where, "[[layer]]", f"entry {bad} is {layers_t[bad]!r}, not a table",
                          "write each layer as a [[layer]] table")
    specs, seen = [], set()
    cur_shape, cur_kind, cur_bits = tuple(shape), in_kind, (in_bits or 1)
    prev_pe = None
    for idx, t in enumerate(layers_t):
        lname = t.get("name", f"layer{idx}")
        lw = f"layer {idx} {lname!r}"
        check_name(lw, "name", lname, "layer")
        if lname in seen:
            raise ConfigError(lw, "name", "is used twice", "give every layer a unique name")
        seen.add(lname)
        ltype = t.get("type")
        if ltype not in LAYER_TYPES:
            raise ConfigError(lw, "type", f"unknown layer type {ltype!r}", f"use one of {LAYER_TYPES}")
        known = {"name", "type", "out", "act", "weight_kind", "weight_bits", "pe", "simd", "kernel",
                 "stride", "pad", "pad_value", "fifo_depth", "pipeline", "weight_memory"}
        extra = set(t) - known
        if extra:
            raise ConfigError(lw, sorted(extra)[0], "is not a known field", f"known fields: {sorted(known)}")
        if cur_kind == "acc":
            raise ConfigError(lw, "input", "the previous layer outputs raw accumulators (act = \"acc\")",
                              "only the last layer may use act = \"acc\"")
        s = LayerSpec(lname, ltype)
        s.in_shape, s.in_kind, s.in_bits = cur_shape, cur_kind, cur_bits
        s.fifo_depth = t.get("fifo_depth")
        if s.fifo_depth is not None:
            _int(t, "fifo_depth", lw, minimum=2)
            _check_size(lw, "fifo_depth", s.fifo_depth, LIMITS["fifo_depth"], "the FIFO depth",
                        "use a smaller fifo_depth (or leave it out for the default)")
        s.pipeline = _pipeline(t, lw, default=net_pipeline)
        if ltype == "maxpool" and "pipeline" in t:
            raise ConfigError(lw, "pipeline", "a max pool has no adder tree to pipeline",
                              "set pipeline on fc/conv layers only")
        s.weight_memory = t.get("weight_memory", "auto")
        if ltype == "maxpool" and "weight_memory" in t:
            raise ConfigError(lw, "weight_memory", "a max pool has no weights",
                              "set weight_memory on fc/conv layers only")
        if not isinstance(s.weight_memory, str) or s.weight_memory not in MEMORY_STYLES:
            raise ConfigError(lw, "weight_memory", f"unknown memory style {s.weight_memory!r}",
                              f"use one of {MEMORY_STYLES}")
        if ltype == "maxpool":
            if len(cur_shape) != 3:
                raise ConfigError(lw, "type", f"max pooling needs an image input, got shape {cur_shape}",
                                  "put max pools between convolutions")
            if cur_kind == "int":
                raise ConfigError(lw, "type", "max pooling of signed (int) inputs is not supported in hardware",
                                  "pool after the first convolution, or use input_kind = \"uint\"")
            s.kernel = _kernel(t, lw, 2)
            s.stride = _int(t, "stride", lw, default=s.kernel, minimum=1)
            h, w, c = cur_shape
            s.simd = _int(t, "simd", lw, default=prev_pe or c, minimum=1)
            if c % s.simd:
                raise ConfigError(lw, "simd", f"{s.simd} does not divide the {c} channels",
                                  f"choose simd among {divisors(c)}")
            if h < s.kernel or w < s.kernel:
                raise ConfigError(lw, "kernel", f"{s.kernel} is larger than the {h}x{w} input",
                                  "use a smaller pool or remove it")
            oh, ow = (h - s.kernel) // s.stride + 1, (w - s.kernel) // s.stride + 1
            s.out_shape = (oh, ow, c)
            s.out_kind, s.out_bits = cur_kind, cur_bits
            s.pe = s.simd
            specs.append(s)
            cur_shape = s.out_shape
            prev_pe = s.pe
            continue
        s.out = _int(t, "out", lw, minimum=1)
        s.act = t.get("act", "bipolar")
        if not isinstance(s.act, str) or not (s.act in ("bipolar", "acc")
                                               or re.fullmatch(r"uint([1-9]|1[0-6])", s.act)):
            raise ConfigError(lw, "act", f"unknown activation {s.act!r}",
                              "use \"bipolar\", \"uint<n>\" (e.g. \"uint2\") or \"acc\" (raw, last layer)")
        s.weight_kind = t.get("weight_kind", "bipolar")
        if not isinstance(s.weight_kind, str) or s.weight_kind not in WEIGHT_KINDS:
            raise ConfigError(lw, "weight_kind", f"unknown kind {s.weight_kind!r}", f"use one of {WEIGHT_KINDS}")
        if s.weight_kind == "int":
            s.weight_bits = _int(t, "weight_bits", lw, minimum=2)
            _check_size(lw, "weight_bits", s.weight_bits, LIMITS["data_bits"], "the weight width",
                        f"use weight_bits <= {LIMITS['data_bits']}")
        elif "weight_bits" in t:
            raise ConfigError(lw, "weight_bits", f"applies to weight_kind = \"int\" only, not {s.weight_kind!r}",
                              "remove weight_bits or set weight_kind = \"int\"")
        s.pe = _int(t, "pe", lw, default=1, minimum=1)
        s.simd = _int(t, "simd", lw, default=1, minimum=1)
        if s.out % s.pe:
            raise ConfigError(lw, "pe", f"{s.pe} does not divide out = {s.out}",
                              f"choose pe among {divisors(s.out)}")
        if ltype == "fc":
            mw = math.prod(cur_shape)
            if len(cur_shape) == 3 and cur_shape[2] % s.simd:
                raise ConfigError(lw, "simd", f"{s.simd} does not divide the {cur_shape[2]} channels of "
                                  f"the flattened {cur_shape} input", f"choose simd among {divisors(cur_shape[2])}")
            if mw % s.simd:
                raise ConfigError(lw, "simd", f"{s.simd} does not divide the input length {mw}",
                                  f"choose simd among {divisors(mw)}")
            s.out_shape = (s.out,)
            in_len = mw
        else:
            if len(cur_shape) != 3:
                raise ConfigError(lw, "type", f"convolution needs an image input, got shape {cur_shape}",
                                  "put convolutions before the fully connected layers")
            s.kernel = _kernel(t, lw, 3)
            s.stride = _int(t, "stride", lw, default=1, minimum=1)
            s.pad = _int(t, "pad", lw, default=0, minimum=0)
            if s.pad >= s.kernel:
                raise ConfigError(lw, "pad", f"pad = {s.pad} >= kernel = {s.kernel} gives windows made only of "
                                  "padding", f"use pad <= {s.kernel - 1}")
            s.pad_value = _pad_value(t, lw, cur_kind, cur_bits)
            h, w, c = cur_shape
            folding.check_conv_simd(lw, s.simd, c, s.kernel)
            if h + 2 * s.pad < s.kernel or w + 2 * s.pad < s.kernel:
                raise ConfigError(lw, "kernel", f"{s.kernel}x{s.kernel} kernel is larger than the padded "
                                  f"{h}x{w} input (pad {s.pad})", "add padding or use a smaller kernel")
            oh = (h + 2 * s.pad - s.kernel) // s.stride + 1
            ow = (w + 2 * s.pad - s.kernel) // s.stride + 1
            s.out_shape = (oh, ow, s.out)
            in_len = s.kernel * s.kernel * c
        _check_size(lw, "out", math.prod(s.out_shape), LIMITS["map_elements"], "the number of output elements",
                    "use a smaller out")
        wbits = DataKind.of(s.weight_kind, s.weight_bits, lw).width
        _check_size(lw, "out", s.out * in_len * wbits, LIMITS["weight_bits_per_layer"],
                    f"the weight memory in bits ({s.out} x {in_len} weights of {wbits} bits)",
                    "use a smaller out or input")
        _check_size(lw, "act", s.out * s.n_thresholds, LIMITS["thresholds_per_layer"],
                    f"the number of thresholds ({s.out} x {s.n_thresholds})", "use fewer activation bits or a smaller out")
        # weights
        if store is None:
            s.weights, s.thresholds = _random_weights(s, in_len, cur_kind, cur_bits, rng)
        else:
            key = f"{lname}/weights"
            if key not in store:
                raise ConfigError(lw, "weights", f"{key!r} is not in the weights file",
                                  f"the file has: {sorted(store)[:8]}")
            s.weights = np.asarray(store[key])
            expect = (s.out, in_len) if ltype == "fc" else (s.out, cur_shape[2], s.kernel, s.kernel)
            if s.weights.shape != expect:
                raise ConfigError(lw, "weights", f"has shape {s.weights.shape}, expected {expect}",
                                  "fc weights are (out, in); conv weights are OIHW (out, in_ch, k, k)")
            tkey = f"{lname}/thresholds"
            if s.act == "acc":
                s.thresholds = None
            else:
                if tkey not in store:
                    raise ConfigError(lw, "thresholds", f"{tkey!r} is not in the weights file",
                                      "store (out, 2^n - 1) thresholds, or set act = \"acc\"")
                s.thresholds = np.asarray(store[tkey])
                if not np.issubdtype(s.thresholds.dtype, np.integer):
                    raise ConfigError(lw, "thresholds", f"must be integers, got dtype {s.thresholds.dtype}",
                                      "store integer thresholds in the accumulator domain")
                if s.thresholds.size and s.thresholds.max() > np.iinfo(np.int64).max:
                    raise ConfigError(lw, "thresholds", f"value {s.thresholds.max()} does not fit 64-bit signed "
                                      "integers", "store int64 thresholds in the accumulator domain")
                if s.thresholds.shape != (s.out, s.n_thresholds):
                    raise ConfigError(lw, "thresholds", f"has shape {s.thresholds.shape}, expected "
                                      f"{(s.out, s.n_thresholds)} for act = {s.act!r}",
                                      "one row of 2^n - 1 thresholds per output channel")
                if np.any(np.diff(s.thresholds, axis=1) < 0):
                    bad = int(np.nonzero(np.any(np.diff(s.thresholds, axis=1) < 0, axis=1))[0][0])
                    raise ConfigError(lw, "thresholds", f"row {bad} is not sorted ascending",
                                      "sort each row (np.sort(t, axis=1))")
        _check_weight_values(s, lw)
        if s.act == "acc":
            s.out_kind, s.out_signed = "acc", not (cur_kind == "bipolar" and s.weight_kind == "bipolar")
        elif s.act == "bipolar":
            s.out_kind, s.out_bits = "bipolar", 1
        else:
            s.out_kind, s.out_bits = "uint", s.act_bits
        specs.append(s)
        cur_shape, cur_kind, cur_bits = s.out_shape, s.out_kind, s.out_bits
        prev_pe = s.pe
    ref = "random" if store is None else str((Path(base_dir) / weights_src).resolve())
    cfg = NetConfig(name, tuple(shape), in_kind, in_bits, specs, source, ref, seed, weights_mode)
    # the golden model re-validates kinds and ranges; report its errors as config errors
    cfg.golden()
    return cfg


def _kernel(table, where, default):
    k = _int(table, "kernel", where, default=default, minimum=1)
    _check_size(where, "kernel", k, LIMITS["kernel"], "the kernel size", f"use kernel <= {LIMITS['kernel']}")
    return k


def _pad_value(table, where, kind, bits):
    """The conv padding as a stored input value: 0/1 for bipolar (-1/+1), [0, 2^bits) for uint; for int
    inputs the hardware pads with a non-negative code, so [0, 2^(bits-1))."""
    v = table.get("pad_value", 0)
    lo, hi = 0, DataKind.of(kind, bits, where).stored_range[1]
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        what = {"bipolar": "bipolar inputs (0 = -1, 1 = +1)", "uint": f"{bits}-bit uint inputs",
                "int": f"{bits}-bit int inputs (negative padding is not supported in hardware)"}[kind]
        raise ConfigError(where, "pad_value", f"must be an integer in [{lo}, {hi}] for {what}, got {v!r}",
                          f"set pad_value = <integer in [{lo}, {hi}]> (default 0)")
    return v


def _load_weights_file(path, where):
    """The arrays of a weights ``.npz`` (no pickled objects), or a ConfigError saying what is wrong."""
    from qnnfab.npzfile import read_npz
    return read_npz(path, where, "weights", "export weights with `qnnfab train` or netconfig.save_weights(), "
                    "or set weights = \"random\"")


def _check_weight_values(s, lw):
    w = s.weights
    if not np.issubdtype(w.dtype, np.integer):
        raise ConfigError(lw, "weights", f"must be integers, got dtype {w.dtype}", "quantize them first")
    kind = DataKind.of(s.weight_kind, s.weight_bits, lw)
    what = ("bipolar weights, stored as bits (1 = +1)" if s.weight_kind == "bipolar"
            else f"{kind.name} weights")
    kind.check_stored(w, lw, "weights", what)


def load(path):
    """Load and validate a config file (TOML); weights relative to its folder."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(str(path), "config", "file does not exist", "pass the path of a .toml config")
    if not p.is_file():
        raise ConfigError(str(path), "config", "is not a file", "pass the path of a .toml config")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        reason = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else e.strerror
        raise ConfigError(str(path), "config", f"cannot be read as TOML ({reason})",
                          "pass the path of a .toml config") from None
    return loads(text, p.parent, str(p))


def dumps(cfg, weights_ref=None):
    """The config as TOML text (the same topology and folding; ``weights_ref``
    overrides the weights entry, e.g. a path relative to the new file)."""
    ref = weights_ref if weights_ref is not None else cfg.weights_ref
    out = ["[network]", f'name = "{cfg.name}"', f"input_shape = {list(cfg.input_shape)}",
           f'input_kind = "{cfg.input_kind}"']
    if cfg.input_bits:
        out.append(f"input_bits = {cfg.input_bits}")
    out.append(f'weights = "{ref}"')
    if ref == "random":
        out.append(f"seed = {cfg.seed}")
    if cfg.weights_mode != "const":
        out.append(f'weights_mode = "{cfg.weights_mode}"')
    for L in cfg.layers:
        out += ["", "[[layer]]", f'name = "{L.name}"', f'type = "{L.type}"']
        if L.type == "maxpool":
            out += [f"kernel = {L.kernel}", f"stride = {L.stride}", f"simd = {L.simd}"]
        else:
            out += [f"out = {L.out}", f'act = "{L.act}"', f'weight_kind = "{L.weight_kind}"']
            if L.weight_bits:
                out.append(f"weight_bits = {L.weight_bits}")
            if L.type == "conv":
                out += [f"kernel = {L.kernel}", f"stride = {L.stride}", f"pad = {L.pad}",
                        f"pad_value = {L.pad_value}"]
            out += [f"pe = {L.pe}", f"simd = {L.simd}"]
            if L.pipeline == PIPELINE_MAX:
                out.append(f'pipeline = "{PIPELINE_MAX}"')
            elif L.pipeline:
                out.append(f"pipeline = {L.pipeline}")
            if L.weight_memory != "auto":
                out.append(f'weight_memory = "{L.weight_memory}"')
        if L.fifo_depth:
            out.append(f"fifo_depth = {L.fifo_depth}")
    return "\n".join(out) + "\n"


def save_weights(path, cfg):
    """Write the weights and thresholds of ``cfg`` to an ``.npz`` in the loader's layout."""
    arrays = {}
    for L in cfg.layers:
        if L.weights is not None:
            arrays[f"{L.name}/weights"] = L.weights
        if L.thresholds is not None:
            arrays[f"{L.name}/thresholds"] = L.thresholds
    np.savez_compressed(path, **arrays)

"""Network configs: one TOML file (topology + folding) and one ``.npz`` (weights).

A config describes a network once; :func:`qnnfab.golden.network.network_of` runs it bit-exactly
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
    label = "argmax"              # the label of a frame (hardware label port, board, verify):
                                  # "argmax": the largest output, lowest index on ties;
                                  # "highest_set_bit": last layer with one-bit outputs only:
                                  # the highest index whose output is 1, 0 when none is
    input_pad = 0                 # [N] inputs: N zero elements after each frame, so the
                                  # first layer reads N + input_pad inputs (simd | that)

    [[layer]]
    name = "fc0"
    type = "fc"                   # "fc" | "conv" | "maxpool"
    out = 64                      # rows MH (fc) / output channels (conv)
    act = "bipolar"               # "bipolar" (1 threshold), "uint2" (3 thresholds), "acc" (raw)
    weight_kind = "bipolar"       # "bipolar" | "ternary" | "int" (with weight_bits)
    # weight_kind = "int" only: weight_bits = N (2..16)
    pe = 16                       # divides out
    simd = 32                     # divides the input length (fc) / input channels (conv);
                                  # conv: or m * channels, m dividing kernel^2 (m kernel
                                  # positions per word, up to the whole window)
    # conv only: kernel = 3, stride = 1, pad = 0, pad_value = 0
    # maxpool: kernel = 2, stride = 2 (simd = channels per word, default: previous PE)
    # last fc layer only: classes = K (the outputs are its first K rows, the rest
    #   padding, so pe may divide out; default out)
    # optional: fifo_depth = N (words of the FIFO in front of this layer)
    # optional: input = "name" or ["a", "b"]: the layer(s) it reads ("input": the
    #   network's input; default the previous layer), so a network may be a graph
    # graph layers (golden model, QONNX export, hardware):
    #   type = "add": input = ["a", "b"], two maps of one shape and kind (uint or
    #     int), act = "uint<n>" | "bipolar" thresholds on the sum of the stored
    #     integers, simd = channels per word (default the first input's pe)
    #   type = "global_avgpool": act thresholds on each channel's sum over the
    #     H x W pixels (a threshold t on the average is ceil(t * H * W) on the
    #     sum); output shape [1, 1, C]; simd as "add"
    #   type = "concat": input = ["a", "b"], two maps of one height, width and
    #     kind: the channels of a, then those of b (no act, no pe: refused); simd divides both
    # optional: pipeline = N (fc/conv: registers inside the popcount / adder
    #   tree, clamped to its depth; each adds a cycle of latency, not of
    #   throughput, and shortens the longest path: see `qnnfab report`)
    #   or pipeline = "max": the whole tree depth plus a register on the
    #   weight-memory and input-buffer read data (for 200 MHz)
    # optional: weight_memory = "auto" | "block" | "distributed" (fc/conv:
    #   where the weight memories go: synthesis' choice, block RAM, or LUTs
    #   (a LUT ROM, or LUT-RAM with weights_mode = "runtime"))
    # optional: accumulator = "mux" | "reset" (fc/conv; default the network's,
    #   itself default "mux"). "mux": a row's first word clears the accumulator through a multiplexer;
    #   "reset": the flip-flops' synchronous reset zeroes it after a row's last
    #   word, so the accumulator bits above the dot product need no LUT)
    # optional: popcount = "adder-tree" | "compressor" (fc/conv with bipolar
    #   weights and inputs; default the network's, itself default "adder-tree";
    #   other layers keep their datapath). "compressor": the XNOR popcount as
    #   Xilinx LUT6_2 + CARRY4 cells (rtl/compressor_popcount.py), same result
    #   and latency, fewer LUTs in the datapath; with weights in logic ROMs
    #   (read without a register) a whole MVTU may take more (README)

Each field is declared once, on :class:`NetConfig` or :class:`LayerSpec`
(:func:`config_field`: its reader and check, the layer types it belongs to,
whether the topology hash covers it, when :func:`dumps` writes it, a doc
line); the reading, the writing and :meth:`NetConfig.topology_hash` follow
from the declarations.

The ``.npz`` holds ``<layer>/weights`` (fc: (MH, MW) stored values, bipolar
as bits 1 = +1; conv: (OFM, IFM, K, K), OIHW) and ``<layer>/thresholds``
((MH, N) integers sorted ascending per row, in the accumulator domain: the
XNOR popcount for bipolar x bipolar layers, the integer dot product
otherwise). Every problem raises :class:`~qnnfab.errors.ConfigError` naming
the layer and the field, before any hardware is built.
"""

import dataclasses
import functools
import hashlib
import json
import math
import re
import tomllib
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np

from qnnfab import folding
from qnnfab.errors import ConfigError, check_int
from qnnfab.folding import divisors
from qnnfab.kinds import ACTIVATION_KINDS, WEIGHT_KINDS, DataKind
from qnnfab.packing import LABEL_RULES, pad_frames

MEMORY_STYLES = ("auto", "block", "distributed")  # where weight memories go (rtl/loadable_memory.py)
# how an MVTU's accumulators start a row (qnnfab.rtl.mvtu.MVTU): "mux" clears through a multiplexer at a row's
# first word, "reset" zeroes the register after a row's last word (the flip-flops' synchronous reset)
ACCUMULATOR_STYLES = ("mux", "reset")
# how an MVTU counts the agreeing lanes of a bipolar x bipolar dot product: "adder-tree" (full adders and
# carry-chain adders in generic logic, qnnfab.rtl.dot_product.xnor_popcount) or "compressor" (explicit
# LUT6_2 / CARRY4 cells, qnnfab.rtl.compressor_popcount)
POPCOUNT_STYLES = ("adder-tree", "compressor")

__all__ = ["LayerSpec", "NetConfig", "GRAPH_TYPES", "SUM_TYPES", "NETWORK_INPUT", "sum_range", "load", "loads", "dumps",
           "save_weights", "check_name", "check_label_rule", "safe_name", "LIMITS", "config_field", "config_fields",
           "toml_fields", "toml_value"]

LAYER_TYPES = ("fc", "conv", "maxpool", "add", "global_avgpool", "concat")
GRAPH_TYPES = ("add", "global_avgpool", "concat")
SUM_TYPES = ("add", "global_avgpool")                # graph layers that threshold integer sums
NETWORK_INPUT = "input"                   # the name an `input` entry gives the network's input
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
# suffixes of the stages the plan adds around a layer (<layer>_fifo, <layer>_dwc; a graph's
# <layer>_fork after a layer read twice and <layer>_fifo<p>, <layer>_dwc<p> on input p of an add)
RESERVED_SUFFIXES = ("_fifo", "_dwc", "_fork")
_RESERVED = re.compile(r".*_(fifo|dwc)\d+|.*_fork")


def check_name(where, field, name, kind="layer"):
    """Raise :class:`ConfigError` unless ``name`` follows the rule of ``kind``
    ("layer" or "network", see ``NAME_RULES``); return it."""
    pattern, rule = NAME_RULES[kind]
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise ConfigError(where, field, f"{name!r} is not a valid {kind} name",
                          f"use {rule}")
    if kind == "layer" and (name.endswith(RESERVED_SUFFIXES) or _RESERVED.fullmatch(name)):
        raise ConfigError(where, field, f"{name!r} ends in one of {RESERVED_SUFFIXES} (or _fifo/_dwc and a number), "
                          "reserved for the stages the plan adds around a layer", "choose another name")
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


# ---------------------------------------------------------------------------
# the schema: every config field declared once, on LayerSpec and NetConfig
#
# A TOML field is a dataclass field whose metadata holds a ConfigField (made by
# config_field()): its reader (parse and check), the layer types it belongs to,
# whether the topology hash covers it and when dumps() writes it. The known keys
# of loads(), the reading itself, dumps() and topology_hash() are derived from
# these declarations; adding a field is one declaration.

HASHED = "hashed"                                  # in the topology hash, always
# in the topology hash only when it is not its default, after the HASHED fields:
# a field added later is declared so, which keeps the hash of configs without it
HASHED_UNLESS_DEFAULT = "hashed unless default"

ALWAYS = "always"                                  # dumps() writes the field
UNLESS_DEFAULT = "unless default"                  # ... unless it is its default (or None, 0)
NEVER = "never"                                    # ... never (or: a predicate of the object)

# dumps() writes a layer's fields group by group, in declaration order within a group
DUMP_GROUPS = ("identity", "compute", "window", "folding", "stream")


@dataclass(frozen=True)
class ConfigField:
    """How one dataclass field of :class:`LayerSpec` / :class:`NetConfig` is configured.

    ``read(ctx)`` returns the field's value from ``ctx.table`` (a
    :class:`Reading`) or raises :class:`ConfigError`; None for a value derived
    by the loader (no TOML key). ``key`` is the TOML key, ``types`` the layer
    types it is read and written for (on other types it keeps its default;
    given there, ``misplaced = (problem, fix)`` makes it an error). With
    ``inherit`` its default is the [network] field of the same key.
    ``hashed``: None, HASHED or HASHED_UNLESS_DEFAULT. ``dump``: ALWAYS,
    UNLESS_DEFAULT, NEVER or a predicate of the object. ``group``: one of
    DUMP_GROUPS. ``doc``: one line for the reader of a config.
    """
    doc: str
    read: object = None
    key: str = ""
    types: tuple = ()
    misplaced: tuple | None = None
    inherit: bool = False
    hashed: str | None = None
    dump: object = ALWAYS
    group: str = "identity"


def config_field(doc, read=None, *, default=MISSING, key="", types=(), misplaced=None, inherit=False, hashed=None,
                 dump=ALWAYS, group="identity"):
    """A dataclass field with its :class:`ConfigField` (``read=None``: derived by the loader, not in the TOML;
    ``types=()``: every layer type)."""
    if group not in DUMP_GROUPS:
        raise ValueError(f"group {group!r} is not one of {DUMP_GROUPS}")
    spec = ConfigField(doc, read, key, tuple(types), misplaced, inherit, hashed,
                       dump if read is not None else NEVER, group)
    return field(default=default, metadata={"config": spec})


@dataclass(frozen=True)
class DeclaredField:
    """A declared field of a config class: attribute ``name``, TOML ``key``, ``default`` (None if
    required) and its :class:`ConfigField`."""
    name: str
    key: str
    default: object
    spec: ConfigField


@functools.cache
def config_fields(cls):
    """The declared fields of ``cls`` (:class:`LayerSpec` or :class:`NetConfig`), in declaration order."""
    return tuple(DeclaredField(f.name, f.metadata["config"].key or f.name,
                               None if f.default is MISSING else f.default, f.metadata["config"])
                 for f in dataclasses.fields(cls) if "config" in f.metadata)


def toml_fields(cls):
    """The declared fields of ``cls`` that a TOML table may hold."""
    return tuple(f for f in config_fields(cls) if f.spec.read is not None)


def _belongs(f, layer_type):
    return layer_type is None or not f.spec.types or layer_type in f.spec.types


def _hash_record(obj):
    """The values of ``obj`` the topology hash covers: HASHED fields in declaration order,
    then the HASHED_UNLESS_DEFAULT fields that differ from their default."""
    fields = config_fields(type(obj))
    record = [getattr(obj, f.name) for f in fields if f.spec.hashed == HASHED]
    record += [getattr(obj, f.name) for f in fields
               if f.spec.hashed == HASHED_UNLESS_DEFAULT and getattr(obj, f.name) != f.default]
    return record


def _is_written(f, obj, value):
    rule = f.spec.dump
    if callable(rule):
        return rule(obj)
    if rule == UNLESS_DEFAULT:
        return not (value is None or value == f.default or value == 0)
    return rule == ALWAYS


# ---------------------------------------------------------------------------
# readers: one per kind of field; each returns the value or raises ConfigError

@dataclass
class Reading:
    """What a field's reader sees: the TOML ``table``, ``where`` it is (for
    errors), the ``key`` being read and its ``default``, the ``values`` read
    so far (by attribute name), and for a layer its input (``in_shape``,
    ``in_kind``, ``in_bits``), the previous layer's PE, its ``index``, the
    layer names ``seen`` before it and the ``network`` values."""
    table: dict
    where: str
    key: str = ""
    default: object = None
    values: dict = field(default_factory=dict)
    source: str = ""
    network: dict = field(default_factory=dict)
    in_shape: tuple = ()
    in_kind: str = ""
    in_bits: int = 1
    prev_pe: int | None = None
    index: int = 0
    seen: set = field(default_factory=set)
    inputs: tuple = ()


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


def _integer(minimum, required=False):
    """Reader of an integer >= ``minimum``: required, or the field's default when absent."""
    return lambda ctx: _int(ctx.table, ctx.key, ctx.where, default=None if required else ctx.default,
                            minimum=minimum)


def _choice(choices, problem, fix, default=None, strings_only=True):
    """Reader of one of ``choices`` (``default``: when absent, if not the field's); ``problem`` names a
    wrong value (formatted with ``v``)."""
    def read(ctx):
        v = ctx.table.get(ctx.key, ctx.default if default is None else default)
        if (strings_only and not isinstance(v, str)) or v not in choices:
            raise ConfigError(ctx.where, ctx.key, problem.format(v=v), fix)
        return v
    return read


def _read_network_name(ctx):
    return check_name(ctx.where, "name", ctx.table.get("name", safe_name(Path(ctx.source).stem)), "network")


def _read_input_shape(ctx):
    shape = _req(ctx.table, "input_shape", ctx.where, list)
    if len(shape) not in (1, 3) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ConfigError(ctx.where, "input_shape", f"must be [N] or [H, W, C] of positive integers, got {shape}",
                          "e.g. input_shape = [784] or [32, 32, 3]")
    _check_size(ctx.where, "input_shape", math.prod(shape), LIMITS["map_elements"], "the number of input elements",
                "use a smaller input")
    return tuple(shape)


def _read_input_bits(ctx):
    kind = ctx.values["input_kind"]
    if kind == "bipolar":
        if "input_bits" in ctx.table:
            raise ConfigError(ctx.where, "input_bits", f"is given ({ctx.table['input_bits']!r}) but bipolar inputs "
                              "are one bit each (0 = -1, 1 = +1)",
                              'remove input_bits, or set input_kind = "uint" or "int" for k-bit inputs')
        return None
    bits = _int(ctx.table, "input_bits", ctx.where, minimum=2 if kind == "int" else 1)
    _check_size(ctx.where, "input_bits", bits, LIMITS["data_bits"], "the input width",
                f"use input_bits <= {LIMITS['data_bits']}")
    return bits


def _read_input_pad(ctx):
    pad = _int(ctx.table, "input_pad", ctx.where, default=0, minimum=0)
    shape = ctx.values["input_shape"]
    if pad and len(shape) != 1:
        raise ConfigError(ctx.where, "input_pad", f"pads a 1-D input, but input_shape is {list(shape)}",
                          "remove input_pad (it applies to fc inputs, input_shape = [N])")
    _check_size(ctx.where, "input_pad", math.prod(shape) + pad, LIMITS["map_elements"],
                "the number of padded input elements", "use a smaller input_pad")
    return pad


def _read_weights_ref(ctx):
    v = ctx.table.get("weights", "random")
    if not isinstance(v, str) or not v:
        raise ConfigError(ctx.where, "weights", f"must be a file name or \"random\", got {v!r}",
                          "write weights = \"net.npz\" (relative to the config) or weights = \"random\"")
    return v


def _read_pipeline(ctx):
    return _pipeline(ctx.table, ctx.where, ctx.default)


def _read_layer_name(ctx):
    name = check_name(ctx.where, "name", ctx.table.get("name", f"layer{ctx.index}"), "layer")
    if name in ctx.seen:
        raise ConfigError(ctx.where, "name", "is used twice", "give every layer a unique name")
    ctx.seen.add(name)
    return name


def _read_inputs(ctx):
    """The layer's ``input`` entry as written (resolved and checked by :func:`_layer_sources`)."""
    return ctx.inputs


def _read_layer_type(ctx):
    """The layer type, and whether the layer's input can feed a layer of it."""
    t = ctx.table.get("type")
    if t not in LAYER_TYPES:
        raise ConfigError(ctx.where, "type", f"unknown layer type {t!r}", f"use one of {LAYER_TYPES}")
    if ctx.in_kind == "acc":
        raise ConfigError(ctx.where, "input", "the previous layer outputs raw accumulators (act = \"acc\")",
                          "only the last layer may use act = \"acc\"")
    if t == "maxpool":
        if len(ctx.in_shape) != 3:
            raise ConfigError(ctx.where, "type", f"max pooling needs an image input, got shape {ctx.in_shape}",
                              "put max pools between convolutions")
        if ctx.in_kind == "int":
            raise ConfigError(ctx.where, "type", "max pooling of signed (int) inputs is not supported in hardware",
                              "pool after the first convolution, or use input_kind = \"uint\"")
    if t in SUM_TYPES and ctx.in_kind == "bipolar":
        raise ConfigError(ctx.where, "type", f"{t} of bipolar maps is not supported (it adds stored bits)",
                          'give the layers it reads act = "uint<n>"')
    if t == "global_avgpool" and len(ctx.in_shape) != 3:
        raise ConfigError(ctx.where, "type", f"global average pooling needs an image input, got shape "
                          f"{ctx.in_shape}", "read a convolution's or pool's output")
    if t == "conv" and len(ctx.in_shape) != 3:
        raise ConfigError(ctx.where, "type", f"convolution needs an image input, got shape {ctx.in_shape}",
                          "put convolutions before the fully connected layers")
    return t


def _read_act(ctx):
    v = ctx.table.get("act", "bipolar")
    if not isinstance(v, str) or not (v in ("bipolar", "acc") or re.fullmatch(r"uint([1-9]|1[0-6])", v)):
        raise ConfigError(ctx.where, "act", f"unknown activation {v!r}",
                          "use \"bipolar\", \"uint<n>\" (e.g. \"uint2\") or \"acc\" (raw, last layer)")
    return v


def _read_weight_bits(ctx):
    kind = ctx.values["weight_kind"]
    if kind == "int":
        bits = _int(ctx.table, "weight_bits", ctx.where, minimum=2)
        _check_size(ctx.where, "weight_bits", bits, LIMITS["data_bits"], "the weight width",
                    f"use weight_bits <= {LIMITS['data_bits']}")
        return bits
    if "weight_bits" in ctx.table:
        raise ConfigError(ctx.where, "weight_bits", f"applies to weight_kind = \"int\" only, not {kind!r}",
                          "remove weight_bits or set weight_kind = \"int\"")
    return None


def _read_simd(ctx):
    pool = ctx.values["type"] in ("maxpool",) + GRAPH_TYPES
    default = (ctx.prev_pe or ctx.in_shape[-1]) if pool else 1
    return _int(ctx.table, "simd", ctx.where, default=default, minimum=1)


def _read_kernel(ctx):
    return _kernel(ctx.table, ctx.where, 2 if ctx.values["type"] == "maxpool" else 3)


def _read_stride(ctx):
    default = ctx.values["kernel"] if ctx.values["type"] == "maxpool" else 1
    return _int(ctx.table, "stride", ctx.where, default=default, minimum=1)


def _read_pad(ctx):
    pad, kernel = _int(ctx.table, "pad", ctx.where, default=0, minimum=0), ctx.values["kernel"]
    if pad >= kernel:
        raise ConfigError(ctx.where, "pad", f"pad = {pad} >= kernel = {kernel} gives windows made only of "
                          "padding", f"use pad <= {kernel - 1}")
    return pad


def _read_pad_value(ctx):
    return _pad_value(ctx.table, ctx.where, ctx.in_kind, ctx.in_bits)


def _read_classes(ctx):
    """The outputs the network reports (None: all ``out``); the rows after them are padding."""
    if "classes" not in ctx.table:
        return None
    out = ctx.values["out"]
    classes = _int(ctx.table, "classes", ctx.where, minimum=1)
    if classes > out:
        raise ConfigError(ctx.where, "classes", f"{classes} is above out = {out}",
                          f"use classes <= {out} (the first classes rows are the outputs, the rest padding)")
    return None if classes == out else classes


def _read_fifo_depth(ctx):
    depth = ctx.table.get("fifo_depth")
    if depth is not None:
        _int(ctx.table, "fifo_depth", ctx.where, minimum=2)
        _check_size(ctx.where, "fifo_depth", depth, LIMITS["fifo_depth"], "the FIFO depth",
                    "use a smaller fifo_depth (or leave it out for the default)")
    return depth


def check_label_rule(where, rule, last):
    """Raise :class:`ConfigError` unless label ``rule`` applies to the outputs of ``last`` (the last
    :class:`LayerSpec`): "highest_set_bit" reads one bit per output, so the last layer must output
    one-bit elements (act = "bipolar" or "uint1", or a max pool of them)."""
    if rule != "highest_set_bit" or last is None:
        return
    if last.out_bits != 1 or last.out_kind not in ("bipolar", "uint"):
        out = f'act = "{last.act}"' if last.type in COMPUTE else f"{last.out_kind} {last.out_bits}-bit outputs"
        raise ConfigError(where, "label", f'"highest_set_bit" needs one bit per output, but the last layer '
                          f"'{last.name}' has {out}",
                          'give the last layer act = "bipolar", or use label = "argmax"')


COMPUTE = ("fc", "conv")         # layers with weights and an adder tree
WINDOWED = ("conv", "maxpool")   # layers that slide a window


@dataclass
class LayerSpec:
    """One layer: fc/conv followed by its activation, a max pool, or (graphs) an add or global
    average pool followed by thresholds."""
    name: str = config_field("unique layer name (default layer<index>)", _read_layer_name)
    type: str = config_field(f"one of {LAYER_TYPES}", _read_layer_type, hashed=HASHED)
    inputs: tuple = config_field(
        f'the layers it reads: a name or a list of names ("{NETWORK_INPUT}": the network\'s input); '
        "default: the previous layer", _read_inputs, default=(), key="input", hashed=HASHED_UNLESS_DEFAULT,
        dump=UNLESS_DEFAULT)
    out: int = config_field("rows MH (fc) / output channels (conv)", _integer(1, required=True), default=0,
                            types=COMPUTE, hashed=HASHED, group="compute")
    act: str = config_field('"bipolar" (1 threshold), "uint<n>" (2^n - 1 thresholds), "acc" (raw accumulators)',
                            _read_act, default="bipolar", types=COMPUTE + SUM_TYPES, hashed=HASHED,
                            group="compute")
    weight_kind: str = config_field(
        f"one of {WEIGHT_KINDS}", _choice(WEIGHT_KINDS, "unknown kind {v!r}", f"use one of {WEIGHT_KINDS}"),
        default="bipolar", types=COMPUTE, hashed=HASHED, group="compute")
    weight_bits: int | None = config_field('width of weight_kind = "int"', _read_weight_bits, default=None,
                                           types=COMPUTE, hashed=HASHED, dump=UNLESS_DEFAULT, group="compute")
    pe: int = config_field("processing elements, divides out (a max pool: its simd)", _integer(1), default=1,
                           types=COMPUTE, hashed=HASHED, group="folding")
    simd: int = config_field("input elements per cycle: divides the input length (fc) / channels (conv, or m "
                             "channels for m kernel positions); max pool: channels per word (default the "
                             "previous PE)", _read_simd, default=1, hashed=HASHED, group="folding")
    kernel: int = config_field("window size (conv default 3, max pool 2)", _read_kernel, default=1,
                               types=WINDOWED, hashed=HASHED, group="window")
    stride: int = config_field("window step (conv default 1, max pool: its kernel)", _read_stride, default=1,
                               types=WINDOWED, hashed=HASHED, group="window")
    pad: int = config_field("zero rows and columns around a conv input, < kernel", _read_pad, default=0,
                            types=("conv",), hashed=HASHED, group="window")
    pad_value: int = config_field("stored input value of the padding", _read_pad_value, default=0,
                                  types=("conv",), hashed=HASHED, group="window")
    fifo_depth: int | None = config_field("words of the FIFO in front of the layer (default: computed)",
                                          _read_fifo_depth, default=None, hashed=HASHED, dump=UNLESS_DEFAULT,
                                          group="stream")
    pipeline: int | str = config_field(
        f'registers in the adder tree, or "{PIPELINE_MAX}" (every register the MVTU offers); default: the '
        "network's", _read_pipeline, default=0, types=COMPUTE, inherit=True, hashed=HASHED, dump=UNLESS_DEFAULT,
        group="folding", misplaced=("a max pool has no adder tree to pipeline", "set pipeline on fc/conv layers only"))
    weight_memory: str = config_field(
        f"where the weight memories go, one of {MEMORY_STYLES} (rtl/loadable_memory.py)",
        _choice(MEMORY_STYLES, "unknown memory style {v!r}", f"use one of {MEMORY_STYLES}"), default="auto",
        types=COMPUTE, hashed=HASHED_UNLESS_DEFAULT, dump=UNLESS_DEFAULT, group="folding",
        misplaced=("a max pool has no weights", "set weight_memory on fc/conv layers only"))
    accumulator: str = config_field(
        f"how the accumulators start a row, one of {ACCUMULATOR_STYLES} (rtl/mvtu.py); default: the network's",
        _choice(ACCUMULATOR_STYLES, "unknown accumulator style {v!r}", f"use one of {ACCUMULATOR_STYLES}"),
        default="mux", types=COMPUTE, inherit=True, hashed=HASHED_UNLESS_DEFAULT, dump=UNLESS_DEFAULT,
        group="folding", misplaced=("a max pool has no accumulator", "set accumulator on fc/conv layers only"))
    popcount: str = config_field(
        f"how a bipolar x bipolar layer counts agreeing lanes, one of {POPCOUNT_STYLES} "
        "(rtl/compressor_popcount.py; other layers keep their datapath); default: the network's",
        _choice(POPCOUNT_STYLES, "unknown popcount style {v!r}", f"use one of {POPCOUNT_STYLES}"),
        default="adder-tree", types=COMPUTE, inherit=True, hashed=HASHED_UNLESS_DEFAULT, dump=UNLESS_DEFAULT,
        group="folding", misplaced=("a max pool has no popcount", "set popcount on fc/conv layers only"))
    classes: int | None = config_field(
        "last fc layer only: the network's outputs are its first classes rows, the rest padding (so pe may "
        "divide out); default: out", _read_classes, default=None, types=("fc",), hashed=HASHED_UNLESS_DEFAULT,
        dump=UNLESS_DEFAULT, group="compute",
        misplaced=("only the last layer, an fc layer, may have padding rows", "remove classes"))
    weights: np.ndarray | None = field(default=None, repr=False)      # fc (MH, MW); conv OIHW
    thresholds: np.ndarray | None = field(default=None, repr=False)   # (MH, N) or None
    # derived by the loader: shapes and kinds around the layer
    in_shape: tuple = config_field("shape of the layer's input", default=(), hashed=HASHED)
    out_shape: tuple = ()
    in_kind: str = ""
    in_bits: int = 1
    out_kind: str = ""              # "bipolar" | "uint" | "acc"
    out_bits: int = 1               # element width on the stream
    out_signed: bool = False
    in_shapes: tuple = ()           # an add's or concat's: the shapes of both inputs

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
    """A network: its [network] fields, its layers (:class:`LayerSpec`) and the file it came from."""
    name: str = config_field("network name (default: from the file name)", _read_network_name)
    input_shape: tuple = config_field("[N] for fc inputs, [H, W, C] for images", _read_input_shape, hashed=HASHED)
    input_kind: str = config_field(
        f"one of {ACTIVATION_KINDS}",
        _choice(ACTIVATION_KINDS, "unknown kind {v!r}", f"use one of {ACTIVATION_KINDS}", default="bipolar",
                strings_only=False), hashed=HASHED)
    input_bits: int | None = config_field('width of "uint" / "int" inputs', _read_input_bits, hashed=HASHED,
                                          dump=UNLESS_DEFAULT)
    layers: list
    source: str = ""
    weights_ref: str = config_field('weights .npz relative to the config, or "random" (loaded: an absolute path)',
                                    _read_weights_ref, default="random", key="weights")
    seed: int = config_field('seed of weights = "random"', _integer(0), default=0,
                             dump=lambda cfg: cfg.weights_ref == "random")
    weights_mode: str = config_field(
        'weights as constants of the hardware ("const") or RAMs loaded with a weights image ("runtime")',
        _choice(WEIGHTS_MODES, "unknown mode {v!r}",
                'use weights_mode = "const" (weights in the hardware) or "runtime" (loaded at run time)',
                strings_only=False), default="const", dump=UNLESS_DEFAULT)
    pipeline: int | str = config_field("default of the layers' pipeline (each layer writes its own)",
                                       _read_pipeline, default=0, dump=NEVER)
    accumulator: str = config_field(
        "default of the layers' accumulator (each layer writes its own)",
        _choice(ACCUMULATOR_STYLES, "unknown accumulator style {v!r}", f"use one of {ACCUMULATOR_STYLES}"),
        default="mux", dump=NEVER)
    popcount: str = config_field(
        "default of the layers' popcount (each layer writes its own)",
        _choice(POPCOUNT_STYLES, "unknown popcount style {v!r}", f"use one of {POPCOUNT_STYLES}"),
        default="adder-tree", dump=NEVER)
    input_pad: int = config_field(
        "padding elements (stored value 0) after the input_shape elements of every frame: the first layer "
        "reads prod(input_shape) + input_pad inputs (1-D inputs only)", _read_input_pad, default=0,
        hashed=HASHED_UNLESS_DEFAULT, dump=UNLESS_DEFAULT)

    label: str = config_field(
        f"how a frame's label follows from the last layer's outputs, one of {LABEL_RULES} "
        "(qnnfab.packing.frame_labels); highest_set_bit needs one-bit outputs",
        _choice(LABEL_RULES, "unknown label rule {v!r}",
                f'use label = "argmax" (largest output, lowest index on ties) or "highest_set_bit" '
                "(one-bit outputs: highest index whose output is 1, 0 when none)"),
        default="argmax", hashed=HASHED_UNLESS_DEFAULT, dump=UNLESS_DEFAULT)

    def __post_init__(self):
        check_label_rule(f"network '{self.name}'", self.label, self.layers[-1] if self.layers else None)

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

        Covers the fields declared ``hashed`` (:func:`config_field`): the input
        format and every layer's type, shape, kinds and folding (what fixes
        the generated ports, memories and datapaths), not the network's name,
        its weight values or thresholds. Two configs with the same hash run on
        the same bitstream when weights are loaded at run time; the overlay's
        identity register and the weights image's header carry it. The value
        is the first 4 bytes (little-endian) of the SHA-256 of the compact
        JSON list: the network's hashed values, then one list per layer.
        """
        desc = _hash_record(self) + [_hash_record(L) for L in self.layers]
        text = json.dumps(desc, separators=(",", ":"))
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")

    def input_words(self):
        """Input words per frame, padding included (the first layer's ``in_simd`` elements per word)."""
        return math.prod(self.layers[0].in_shape) // self.layers[0].in_simd

    @property
    def classes(self):
        """Outputs the network reports per frame: the first ``classes`` of the last layer's outputs."""
        last = self.layers[-1]
        return last.classes or math.prod(last.out_shape)

    def pad_frames(self, frames):
        """Frames (B,) + input_shape -> (B, input elements + input_pad) with the padding (stored 0)."""
        return pad_frames(frames, self.input_pad)

    @property
    def is_graph(self):
        """Whether some layer reads other than the previous layer, or is an add or global pool
        (:data:`GRAPH_TYPES`): golden model (:func:`qnnfab.golden.graph_network.graph_forward`) and
        QONNX export, no hardware yet."""
        return any(L.inputs or L.type in GRAPH_TYPES for L in self.layers)



# ---------------------------------------------------------------------------
# loading: parse the TOML, read the fields, infer the shapes, fill in the
# weights (from the .npz or drawn) and check their values

def _parse_toml(text, source):
    """The TOML document of ``text`` as a dict, or a ConfigError naming the line and column."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "toml", f"is not valid TOML: {e}",
                          "correct the file at that line and column (format: qnnfab/netconfig.py)") from None


def _read_fields(cls, ctx, table_name):
    """Check that ``ctx.table`` holds only TOML fields of ``cls``, then read them in declaration order into
    ``ctx.values`` (returned).

    A layer field that does not belong to the layer's type (read before it
    decides) keeps its default, or the network's value if it inherits one;
    given there, it is an error if the field declares it ``misplaced``.
    """
    fields = toml_fields(cls)
    known = {f.key for f in fields}
    extra = set(ctx.table) - known
    if extra:
        raise ConfigError(ctx.where, sorted(extra)[0], f"is not a known {table_name}field",
                          f"known fields: {sorted(known)}")
    for f in fields:
        ctx.key = f.key
        ctx.default = ctx.network.get(f.name, f.default) if f.spec.inherit else f.default
        if not _belongs(f, ctx.values.get("type")):
            if f.spec.misplaced and f.key in ctx.table:
                raise ConfigError(ctx.where, f.key, *f.spec.misplaced)
            ctx.values[f.name] = ctx.default
            continue
        ctx.values[f.name] = f.spec.read(ctx)
    return ctx.values


def _read_network(doc, source):
    """The [network] table's fields, checked: ``(values by attribute name, where)``.

    ``weights_ref`` is the entry as written (a path relative to the config, or "random").
    """
    net = doc.get("network")
    if not isinstance(net, dict):
        raise ConfigError(source, "[network]", "table is missing", "start the file with a [network] table")
    name = net.get("name", safe_name(Path(source).stem))
    where = f"network {name!r}" if not isinstance(name, str) else f"network '{name}'"
    return _read_fields(NetConfig, Reading(net, where, source=source), "[network] "), where


def _layer_tables(doc, where):
    """The [[layer]] tables of the document (at least one, each a table)."""
    tables = doc.get("layer")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(where, "[[layer]]", "no layers", "add [[layer]] tables")
    bad = next((k for k, t in enumerate(tables) if not isinstance(t, dict)), None)
    if bad is not None:
        raise ConfigError(where, "[[layer]]", f"entry {bad} is {tables[bad]!r}, not a table",
                          "write each layer as a [[layer]] table")
    return tables


def layer_where(index, name):
    """How messages and memory groups name layer ``index`` called ``name``: "layer 2 'fc1'"."""
    return f"layer {index} {name!r}"


def _layer_sources(table, where, specs):
    """``(input entry as a tuple, the layers it names)`` of a [[layer]] table: its ``input`` (a layer
    name, or a list of one or two; :data:`NETWORK_INPUT` names the network's input, None in the
    list), each an earlier layer, so a config is a graph in topological order; without an entry,
    or naming just the previous layer, ``()`` and the previous layer (None for the first)."""
    entry = table.get("input")
    if entry is None:
        return (), [specs[-1] if specs else None]
    names = [entry] if isinstance(entry, str) else entry
    if not isinstance(names, list) or not 1 <= len(names) <= 2 or not all(isinstance(n, str) for n in names):
        raise ConfigError(where, "input", f"must be a layer name or a list of one or two, got {entry!r}",
                          f'write input = "conv1", or input = ["conv2", "pool1"] ("{NETWORK_INPUT}": the '
                          "network's input)")
    earlier = {L.name: L for L in specs}
    for n in names:
        if n != NETWORK_INPUT and n not in earlier:
            raise ConfigError(where, "input", f"{n!r} is not an earlier layer",
                              f"name one of {[NETWORK_INPUT] + list(earlier)} (a layer reads only layers above it)")
    if names == [specs[-1].name if specs else NETWORK_INPUT]:
        return (), [specs[-1] if specs else None]          # the default, written out: still a chain
    return tuple(names), [None if n == NETWORK_INPUT else earlier[n] for n in names]


def _source_format(source, network):
    """``(shape, kind, bits, pe)`` of what ``source`` outputs (None: the network's input)."""
    if source is None:
        shape = network["input_shape"]
        if network["input_pad"]:
            shape = (math.prod(shape) + network["input_pad"],)
        return shape, network["input_kind"], network["input_bits"] or 1, None
    return source.out_shape, source.out_kind, source.out_bits, source.pe


def _read_layer(table, index, network, specs, seen):
    """The fields of layer ``index``, checked against its input (the layers it reads, by default the
    previous layer or the network's input): a :class:`LayerSpec` with ``in_shape``, ``in_kind``
    and ``in_bits`` set. An "add" reads two of one shape and kind; every other type one."""
    where = layer_where(index, table.get("name", f"layer{index}"))
    entry, sources = _layer_sources(table, where, specs)
    formats = [_source_format(src, network) for src in sources]
    in_shape, in_kind, in_bits, prev_pe = formats[0]
    ctx = Reading(table, where, network=network, in_shape=in_shape, in_kind=in_kind, in_bits=in_bits,
                  prev_pe=prev_pe, index=index, seen=seen, inputs=entry)
    values = _read_fields(LayerSpec, ctx, "")
    t = values["type"]
    wanted = 2 if t in ("add", "concat") else 1
    if len(sources) != wanted:
        raise ConfigError(where, "input", f"a {t} layer reads {wanted} layer(s), got {len(sources)}",
                          'write input = ["a", "b"] for an add or concat, one name otherwise')
    if wanted == 2:
        (sa, ka, ba, _), (sb, kb, bb, _) = formats
        same = (sa, ka, ba) == (sb, kb, bb) if t == "add" else (
            (ka, ba) == (kb, bb) and len(sa) == len(sb) == 3 and sa[:2] == sb[:2])
        if not same:
            what = "shapes and kinds" if t == "add" else "heights, widths and kinds (of images)"
            raise ConfigError(where, "input", f"{t}s {entry[0]!r} ({ka} {ba}-bit, shape {list(sa)}) and {entry[1]!r} "
                              f"({kb} {bb}-bit, shape {list(sb)}): the {what} must be equal",
                              "give both branches the same output size and act (a 1x1 convolution on the shortcut)")
    if t == "concat":
        for key, what, fix in (("act", "a concat passes its inputs' values unchanged (no thresholds)",
                                "remove act (set it on the layers the concat reads)"),
                               ("pe", "a concat has no PE (its pe is its simd)", "remove pe (set simd)")):
            if key in table:
                raise ConfigError(where, key, what, fix)
    return LayerSpec(**values, in_shape=in_shape, in_kind=in_kind, in_bits=in_bits,
                     in_shapes=tuple(f[0] for f in formats) if wanted == 2 else ())


def _weight_columns(s):
    """Columns of a compute layer's weight matrix: the input length (fc) or kernel^2 * channels (conv)."""
    return math.prod(s.in_shape) if s.type == "fc" else s.kernel * s.kernel * s.in_shape[2]


def _infer_shapes(s, where):
    """Check that the folding of layer ``s`` fits its input, and set its output shape and kinds
    (``out_shape``, ``out_kind``, ``out_bits``, ``out_signed``; a max pool's ``pe`` is its ``simd``),
    within the size limits (:data:`LIMITS`)."""
    h, w, c = s.in_shape if len(s.in_shape) == 3 else (None, None, None)
    if s.type == "concat":
        parts = [shape[2] for shape in s.in_shapes]
        if any(c % s.simd for c in parts):
            raise ConfigError(where, "simd", f"{s.simd} does not divide the {parts[0]} and {parts[1]} channels "
                              "of both inputs", f"choose simd among {folding.concat_simd_choices(s.in_shapes)}")
        s.out_shape = (h, w, sum(parts))
        s.out_kind, s.out_bits = s.in_kind, s.in_bits
        s.pe = s.simd
        return
    if s.type in SUM_TYPES:
        channels = s.in_shape[-1]
        if channels % s.simd:
            raise ConfigError(where, "simd", f"{s.simd} does not divide the {channels} channels",
                              f"choose simd among {divisors(channels)}")
        if s.act == "acc":
            raise ConfigError(where, "act", f"an {s.type} layer requantizes its sums with thresholds",
                              'use act = "uint<n>" or "bipolar"')
        s.out_shape = (1, 1, channels) if s.type == "global_avgpool" else s.in_shape
        _check_size(where, "act", channels * s.n_thresholds, LIMITS["thresholds_per_layer"],
                    f"the number of thresholds ({channels} x {s.n_thresholds})", "use fewer activation bits")
        s.out_kind, s.out_bits = ("bipolar", 1) if s.act == "bipolar" else ("uint", s.act_bits)
        s.pe = s.simd
        return
    if s.type == "maxpool":
        if c % s.simd:
            raise ConfigError(where, "simd", f"{s.simd} does not divide the {c} channels",
                              f"choose simd among {divisors(c)}")
        if h < s.kernel or w < s.kernel:
            raise ConfigError(where, "kernel", f"{s.kernel} is larger than the {h}x{w} input",
                              "use a smaller pool or remove it")
        s.out_shape = ((h - s.kernel) // s.stride + 1, (w - s.kernel) // s.stride + 1, c)
        s.out_kind, s.out_bits = s.in_kind, s.in_bits
        s.pe = s.simd
        return
    if s.out % s.pe:
        raise ConfigError(where, "pe", f"{s.pe} does not divide out = {s.out}", f"choose pe among {divisors(s.out)}")
    if s.type == "fc":
        mw = math.prod(s.in_shape)
        if c is not None and c % s.simd:
            raise ConfigError(where, "simd", f"{s.simd} does not divide the {c} channels of "
                              f"the flattened {s.in_shape} input", f"choose simd among {divisors(c)}")
        if mw % s.simd:
            raise ConfigError(where, "simd", f"{s.simd} does not divide the input length {mw}",
                              f"choose simd among {divisors(mw)}")
        s.out_shape = (s.out,)
    else:
        folding.check_conv_simd(where, s.simd, c, s.kernel)
        if h + 2 * s.pad < s.kernel or w + 2 * s.pad < s.kernel:
            raise ConfigError(where, "kernel", f"{s.kernel}x{s.kernel} kernel is larger than the padded "
                              f"{h}x{w} input (pad {s.pad})", "add padding or use a smaller kernel")
        s.out_shape = ((h + 2 * s.pad - s.kernel) // s.stride + 1, (w + 2 * s.pad - s.kernel) // s.stride + 1,
                       s.out)
    in_len = _weight_columns(s)
    _check_size(where, "out", math.prod(s.out_shape), LIMITS["map_elements"], "the number of output elements",
                "use a smaller out")
    wbits = DataKind.of(s.weight_kind, s.weight_bits, where).width
    _check_size(where, "out", s.out * in_len * wbits, LIMITS["weight_bits_per_layer"],
                f"the weight memory in bits ({s.out} x {in_len} weights of {wbits} bits)",
                "use a smaller out or input")
    _check_size(where, "act", s.out * s.n_thresholds, LIMITS["thresholds_per_layer"],
                f"the number of thresholds ({s.out} x {s.n_thresholds})", "use fewer activation bits or a smaller out")
    if s.act == "acc":
        s.out_kind, s.out_signed = "acc", not (s.in_kind == "bipolar" and s.weight_kind == "bipolar")
    elif s.act == "bipolar":
        s.out_kind, s.out_bits = "bipolar", 1
    else:
        s.out_kind, s.out_bits = "uint", s.act_bits


def _read_layers(tables, network):
    """The layers of the [[layer]] ``tables``, each read against the previous one's output and its
    shapes inferred (:func:`_read_layer`, :func:`_infer_shapes`); weights not yet set."""
    specs, seen = [], set()
    for index, table in enumerate(tables):
        s = _read_layer(table, index, network, specs, seen)
        _infer_shapes(s, layer_where(index, s.name))
        if specs and specs[-1].classes:
            raise ConfigError(layer_where(index - 1, specs[-1].name), "classes", "is given on a layer that is not "
                              "the last; padding rows apply to the network's outputs",
                              "remove classes, or give it on the last layer")
        specs.append(s)
    _check_every_output_read(specs)
    return specs


def _check_every_output_read(specs):
    """Refuse a layer whose output no later layer reads (a branch that ends nowhere); the last layer
    is the network's output."""
    read = {name for s in specs for name in s.inputs}
    read |= {specs[i - 1].name for i in range(1, len(specs)) if not specs[i].inputs}
    for index, s in enumerate(specs[:-1]):
        if s.name not in read:
            raise ConfigError(layer_where(index, s.name), "input", "no layer reads this layer's output",
                              f"name {s.name!r} in a later layer's input, or remove the layer")


def _load_weights_file(path, where):
    """The arrays of a weights ``.npz`` (no pickled objects), or a ConfigError saying what is wrong."""
    from qnnfab.npzfile import read_npz
    return read_npz(path, where, "weights", "export weights with `qnnfab train` or netconfig.save_weights(), "
                    "or set weights = \"random\"")


def _stored_weights(s, store, where):
    """Weights and thresholds of compute layer ``s`` from the ``.npz`` arrays ``store``, their
    keys, shapes, dtypes and threshold order checked."""
    key = f"{s.name}/weights"
    if key not in store:
        raise ConfigError(where, "weights", f"{key!r} is not in the weights file",
                          f"the file has: {sorted(store)[:8]}")
    weights = np.asarray(store[key])
    expect = (s.out, _weight_columns(s)) if s.type == "fc" else (s.out, s.in_shape[2], s.kernel, s.kernel)
    if weights.shape != expect:
        raise ConfigError(where, "weights", f"has shape {weights.shape}, expected {expect}",
                          "fc weights are (out, in); conv weights are OIHW (out, in_ch, k, k)")
    if s.act == "acc":
        return weights, None
    return weights, _stored_thresholds(s, store, where)


def _stored_thresholds(s, store, where):
    """The (rows, 2^n - 1) thresholds of layer ``s`` from the ``.npz`` arrays ``store``, checked (rows:
    ``out`` of an fc/conv layer, the channels of an add or global pool)."""
    rows = s.in_shape[-1] if s.type in SUM_TYPES else s.out
    tkey = f"{s.name}/thresholds"
    if tkey not in store:
        raise ConfigError(where, "thresholds", f"{tkey!r} is not in the weights file",
                          "store (out, 2^n - 1) thresholds, or set act = \"acc\"")
    t = np.asarray(store[tkey])
    if not np.issubdtype(t.dtype, np.integer):
        raise ConfigError(where, "thresholds", f"must be integers, got dtype {t.dtype}",
                          "store integer thresholds in the accumulator domain")
    if t.size and t.max() > np.iinfo(np.int64).max:
        raise ConfigError(where, "thresholds", f"value {t.max()} does not fit 64-bit signed "
                          "integers", "store int64 thresholds in the accumulator domain")
    if t.shape != (rows, s.n_thresholds):
        raise ConfigError(where, "thresholds", f"has shape {t.shape}, expected "
                          f"{(rows, s.n_thresholds)} for act = {s.act!r}",
                          "one row of 2^n - 1 thresholds per output channel")
    if np.any(np.diff(t, axis=1) < 0):
        bad = int(np.nonzero(np.any(np.diff(t, axis=1) < 0, axis=1))[0][0])
        raise ConfigError(where, "thresholds", f"row {bad} is not sorted ascending",
                          "sort each row (np.sort(t, axis=1))")
    return t


def sum_range(s):
    """``(lo, hi)`` of the integers an add or global-pool layer ``s`` thresholds: the sum of two stored
    inputs, or of a channel's H * W stored inputs."""
    lo, hi = DataKind.of(s.in_kind, s.in_bits).stored_range
    terms = 2 if s.type == "add" else s.in_shape[0] * s.in_shape[1]
    return terms * lo, terms * hi


def _random_sum_thresholds(s, rng):
    """Sorted random thresholds of a graph layer, spread evenly over its sum's range with jitter."""
    lo, hi = sum_range(s)
    k, rows = s.n_thresholds, s.in_shape[-1]
    base = lo + (hi - lo) * np.arange(1, k + 1) / (k + 1)
    jitter = rng.normal(0, max(1.0, (hi - lo) / (8 * (k + 1))), (rows, 1))
    return np.sort(np.ceil(base[None, :] + jitter).astype(np.int64), axis=1)


def _random_weights(spec, rng):
    """Random weights and thresholds of compute layer ``spec`` that keep the activations balanced."""
    n = _weight_columns(spec)
    wk, xk = DataKind.of(spec.weight_kind, spec.weight_bits), DataKind.of(spec.in_kind, spec.in_bits)
    lo, hi = wk.stored_range
    w = rng.integers(lo, hi + 1, size=(spec.out, n))
    if spec.act == "acc":
        t = None
    else:
        # accumulator statistics of random inputs, estimated by sampling
        lo, hi = xk.stored_range
        x = rng.integers(lo, hi + 1, size=(64, n))
        if spec.in_kind == "bipolar" and spec.weight_kind == "bipolar":
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


def _check_weight_values(s, lw):
    w = s.weights
    if not np.issubdtype(w.dtype, np.integer):
        raise ConfigError(lw, "weights", f"must be integers, got dtype {w.dtype}", "quantize them first")
    kind = DataKind.of(s.weight_kind, s.weight_bits, lw)
    what = ("bipolar weights, stored as bits (1 = +1)" if s.weight_kind == "bipolar"
            else f"{kind.name} weights")
    kind.check_stored(w, lw, "weights", what)


def _fill_weights(specs, store, seed):
    """Set the weights and thresholds of every compute layer, in order: from the ``.npz`` arrays
    ``store``, or (``store`` None) drawn by :func:`_random_weights` from one generator seeded
    with ``seed``; then check the weight values against the layer's weight kind."""
    rng = np.random.default_rng(seed) if store is None else None
    for index, s in enumerate(specs):
        if s.type in ("maxpool", "concat"):
            continue
        where = layer_where(index, s.name)
        if s.type in SUM_TYPES:
            s.thresholds = _random_sum_thresholds(s, rng) if store is None else _stored_thresholds(s, store, where)
            continue
        s.weights, s.thresholds = (_random_weights(s, rng) if store is None
                                   else _stored_weights(s, store, where))
        _check_weight_values(s, where)


def _check_no_stray_arrays(specs, store, where, ref):
    """Refuse arrays of the weights file that no layer reads (a renamed layer, a misspelt key: its
    weights would otherwise be silently replaced by nothing)."""
    read = {f"{s.name}/weights" for s in specs if s.type in COMPUTE}
    read |= {f"{s.name}/thresholds" for s in specs if s.type in COMPUTE + SUM_TYPES and s.act != "acc"}
    stray = sorted(set(store) - read)
    if stray:
        raise ConfigError(where, "weights", f"{ref} holds arrays no layer reads: {stray[:8]}"
                          + (f" and {len(stray) - 8} more" if len(stray) > 8 else ""),
                          "name them <layer>/weights and <layer>/thresholds after the config's layers, or "
                          "remove them from the file")


def loads(text, base_dir=".", source="<string>"):
    """Parse and validate a config from TOML text (weights relative to ``base_dir``).

    Steps: parse the TOML, read the [network] fields, read the weights file
    (unless weights = "random"), read each layer and infer its shapes, fill in
    the weights (from the file or drawn) and check their values
    (:func:`qnnfab.golden.network.network_of` runs the result).
    """
    doc = _parse_toml(text, source)
    network, where = _read_network(doc, source)
    tables = _layer_tables(doc, where)
    ref = network["weights_ref"]
    store = None if ref == "random" else _load_weights_file(Path(base_dir) / ref, where)
    specs = _read_layers(tables, network)
    _fill_weights(specs, store, network["seed"])
    if store is not None:
        _check_no_stray_arrays(specs, store, where, ref)
        network["weights_ref"] = str((Path(base_dir) / ref).resolve())
    return NetConfig(**network, layers=specs, source=source)


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


# ---------------------------------------------------------------------------
# writing

_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_value(v):
    """``v`` (a string, integer or list of them) as a TOML value: strings are basic strings with
    ``"``, ``\\`` and control characters escaped."""
    if isinstance(v, str):
        return '"' + "".join(_TOML_ESCAPES.get(ch) or (f"\\u{ord(ch):04X}" if ord(ch) < 0x20 or ord(ch) == 0x7F
                                                       else ch) for ch in v) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _table_lines(obj, layer_type=None):
    """``key = value`` lines of the fields of ``obj`` that dumps() writes, group by group."""
    fields = [f for f in toml_fields(type(obj)) if _belongs(f, layer_type)]
    fields.sort(key=lambda f: DUMP_GROUPS.index(f.spec.group))     # stable: declaration order in a group
    return [f"{f.key} = {toml_value(getattr(obj, f.name))}" for f in fields
            if _is_written(f, obj, getattr(obj, f.name))]


def dumps(cfg, weights_ref=None):
    """The config as TOML text (the same topology and folding; ``weights_ref``
    overrides the weights entry, e.g. a path relative to the new file)."""
    if weights_ref is not None:
        cfg = dataclasses.replace(cfg, weights_ref=weights_ref)
    out = ["[network]"] + _table_lines(cfg)
    for L in cfg.layers:
        out += ["", "[[layer]]"] + _table_lines(L, L.type)
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

"""The plan of a network: every fact about its hardware, computed from the config.

No Amaranth here. :func:`plan_of` answers what the generated hardware is
without building it: the stages in stream order (layers, the width
converters and FIFOs between them), each link's word format (element width
and sign, elements per word, words per frame), cycles per frame, FIFO
depths, the memory groups of every fc/conv layer and the weights image's
layout, the accelerator's AXI-Stream word formats and the identity hash.
The RTL elaborates from it (:class:`qnnfab.rtl.dataflow.Dataflow` checks every
stage's ports against it); the weights packer, emitters, report, cost model
and benches read it.

Stage names and kinds (as in the generated Verilog's submodules):

========  ===================  ===============================================
kind      name                 what
========  ===================  ===============================================
"fc"      the layer's name     :class:`~qnnfab.rtl.mvtu.MVTU`
"conv"    the layer's name     :class:`~qnnfab.rtl.conv.ConvLayer`
"maxpool" the layer's name     :class:`~qnnfab.rtl.maxpool.MaxPool`
"width"   ``<layer>_dwc``      :class:`~qnnfab.rtl.width_converter.WidthConverter`
                               in front of a layer whose input word differs
                               from the previous layer's output word
"fifo"    ``<layer>_fifo``     :class:`~qnnfab.rtl.stream_fifo.StreamFIFO` in
                               front of every layer but the first
========  ===================  ===============================================
"""

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnnfab import folding
from qnnfab import overlay_map as om
from qnnfab.cache import atomic_paths
from qnnfab.errors import ConfigError
from qnnfab.kinds import DataKind, accumulator_range, range_bits
from qnnfab.netconfig import layer_where
from qnnfab.packing import pack_words, pad_frames, unpack_fields, unpack_words
from qnnfab.weight_layout import threshold_stage_tables, weight_words
from qnnfab.weights_image import MemoryGroup, WORD_BITS, group_rows, header_words

__all__ = ["Elements", "Link", "Stage", "LayerMemories", "WordFormat", "Plan", "plan_of", "fifo_depth_for",
           "threshold_memory", "layer_memories", "pack_image", "save_image", "weights_identity", "WEIGHTS_MODES"]

WEIGHTS_MODES = ("const", "runtime")


@dataclass(frozen=True)
class Elements:
    """One stream element: ``bits`` wide, two's complement when ``signed``."""
    bits: int
    signed: bool = False


@dataclass(frozen=True)
class Link:
    """The words of one stream: ``elems`` elements per word (element 0 at the
    LSBs), ``words`` words per frame."""
    elem: Elements
    elems: int
    words: int

    @property
    def width(self):
        """Bits of one word."""
        return self.elem.bits * self.elems


@dataclass(frozen=True)
class LayerMemories:
    """The memories of one fc/conv layer's MVTU.

    ``groups``: its :class:`~qnnfab.weights_image.MemoryGroup` s (weights,
    then threshold stages 0 .. n-1); ``threshold``: ``(bits, signed)`` of a
    stored threshold, ``None`` for a layer without thresholds;
    ``acc_range``: ``(lo, hi)`` of the accumulator.
    """
    groups: tuple
    threshold: tuple | None
    acc_range: tuple


@dataclass(frozen=True)
class Stage:
    """One hardware stage in stream order (see the module docstring)."""
    kind: str
    name: str
    i: Link
    o: Link
    cycles: int                 # cycles per frame (0 for width converters and FIFOs)
    layer: object = None        # the LayerSpec of a layer stage, else of the layer it feeds
    fifo_depth: int = 0         # words, for "fifo" stages
    memories: LayerMemories = None   # fc/conv stages
    where: str = ""             # a layer stage's name in messages (:func:`qnnfab.netconfig.layer_where`)


def _bytes(bits):
    return -(-bits // 8)


@dataclass(frozen=True)
class WordFormat:
    """The AXI-Stream word formats of a network's accelerator.

    Input (``s_axis_tdata``, ``in_bytes`` bytes): ``in_elems`` elements of
    ``in_bits`` bits packed from the least significant bit up (element 0 at
    bits ``[0, in_bits)``), in NHWC raster order, ``in_words`` words per
    frame; the bits above ``in_elems * in_bits`` are padding (ignored; send
    0). Element encoding: bipolar bit 1 = +1, 0 = -1; uint: unsigned; int:
    two's complement.

    Output (``m_axis_tdata``, ``out_bytes`` bytes): ``out_elems`` scores per
    word, each in its own ``score_bytes``-byte field (score 0 in the lowest
    bytes), sign-extended when ``out_signed`` (else zero-extended), so a
    field reads as a little-endian ``int``/``uint`` of ``score_bytes``
    bytes; ``out_words`` words per frame, ``tlast`` on the last.
    Score k of a frame is field ``k % out_elems`` of word ``k // out_elems``.

    ``in_pad``: padding elements (stored 0) at the end of every input frame
    (``[network] input_pad``), sent by :meth:`pack_frames`; ``classes``: the
    scores a frame reports, the first of the ``out_elems * out_words`` (None:
    all; the rest are padding rows of the last layer).
    """

    in_elems: int
    in_bits: int
    in_signed: bool
    in_words: int
    out_elems: int
    out_bits: int
    out_signed: bool
    out_words: int
    in_pad: int = 0
    classes: int | None = None

    @property
    def in_bytes(self):
        return _bytes(self.in_elems * self.in_bits)

    @property
    def score_bytes(self):
        return _bytes(self.out_bits)

    @property
    def out_bytes(self):
        return self.out_elems * self.score_bytes

    def pack_frames(self, frames):
        """Frames (B, ...) of stored element values (NHWC), without the input padding -> list of input
        words (ints)."""
        flat = np.asarray(frames).reshape(len(frames), -1)
        if flat.shape[1] + self.in_pad != self.in_elems * self.in_words:
            raise ValueError(f"frames of {flat.shape[1]} elements, the network takes "
                             f"{self.in_elems * self.in_words - self.in_pad}")
        flat = pad_frames(flat, self.in_pad)
        return pack_words(flat.reshape(-1, self.in_elems), self.in_bits)

    def unpack_scores(self, words):
        """Output words (ints) -> the reported scores, shape (frames, classes)."""
        scores = unpack_words(words, self.out_elems, 8 * self.score_bytes, self.out_signed)
        return scores.reshape(-1, self.out_elems * self.out_words)[:, :self.classes]


def fifo_depth_for(words_per_frame, producer_cycles, consumer_cycles):
    """Default FIFO depth in front of a stage.

    A producer that is faster than its consumer delivers a frame in bursts;
    the FIFO absorbs a fraction of a frame proportional to the rate mismatch so
    the producer can run ahead, bounded to keep it in LUT-RAM:
    ``clamp(words * (1 - producer/consumer), 2, 64)``. Override per layer with
    ``fifo_depth`` in the config.
    """
    if consumer_cycles <= 0:
        return 2
    slack = words_per_frame * max(0.0, 1.0 - producer_cycles / consumer_cycles)
    return int(min(64, max(2, math.ceil(slack))))


def threshold_memory(thresholds, acc_lo, acc_hi, runtime):
    """``(bits, signed)`` of a stored threshold of a layer whose accumulator
    spans ``[acc_lo, acc_hi]``.

    Constant thresholds are clamped into ``[acc_lo, acc_hi + 1]`` and stored
    as narrow as their values allow (the pad entry of a stage, ``acc_hi +
    1``, counts unless the table is full, ``2^n - 1`` thresholds); runtime
    thresholds hold any value of ``[min(acc_lo, 0), acc_hi + 1]``.
    """
    if runtime:
        return range_bits(min(acc_lo, 0), acc_hi + 1)
    t = np.asarray(thresholds)
    n = int(t.shape[1]).bit_length()
    c = np.clip(t, acc_lo, acc_hi + 1)
    vmax = int(c.max()) if t.shape[1] == (1 << n) - 1 else max(int(c.max()), acc_hi + 1)
    return range_bits(min(int(c.min()), 0), vmax)


def layer_memories(name, *, mh, mw, pe, simd, weight_kind, act_kind, thresholds, runtime):
    """The :class:`LayerMemories` of an MVTU of ``mh`` x ``mw`` weights of
    :class:`~qnnfab.kinds.DataKind` ``weight_kind`` over ``act_kind``
    activations at ``pe`` x ``simd``, named ``name`` in its groups."""
    lo, hi = accumulator_range(mw, weight_kind, act_kind)
    nf, sf = mh // pe, mw // simd
    groups = [MemoryGroup(name, "weights", pe, simd * weight_kind.width, nf * sf)]
    tmem = None
    if thresholds is not None:
        tmem = threshold_memory(thresholds, lo, hi, runtime)
        for s in range(int(np.asarray(thresholds).shape[1]).bit_length()):
            groups.append(MemoryGroup(name, f"thresholds{s}", pe, tmem[0], nf << s, tmem[1]))
    return LayerMemories(tuple(groups), tmem, (lo, hi))


def _elements(kind, bits):
    return Elements(1 if kind == "bipolar" else bits, kind == "int")


def _mvtu_name(where, L):
    """The name of a layer's MVTU (a conv layer's is inside it: :class:`qnnfab.rtl.conv.ConvLayer`)."""
    return where if L.type == "fc" else f"{where} (mvtu)"


def _layer_stage(index, L, runtime):
    where = layer_where(index, L.name)
    in_elem = _elements(L.in_kind, L.in_bits)
    i = Link(in_elem, L.in_simd, math.prod(L.in_shape) // L.in_simd)
    cycles = folding.layer_cycles(L)
    if L.type == "maxpool":
        return Stage("maxpool", L.name, i, Link(in_elem, L.simd, math.prod(L.out_shape) // L.simd), cycles, L,
                     where=where)
    if L.type == "fc":
        mh, mw = L.weights.shape
    else:
        mh, mw = L.weights.shape[0], math.prod(L.weights.shape[1:])
    wkind = DataKind.of(L.weight_kind, L.weight_bits)
    akind = DataKind.of(L.in_kind, None if L.in_kind == "bipolar" else L.in_bits)
    mem = layer_memories(_mvtu_name(where, L), mh=mh, mw=mw, pe=L.pe, simd=L.simd, weight_kind=wkind,
                         act_kind=akind, thresholds=L.thresholds, runtime=runtime)
    if L.thresholds is None:
        out_elem = Elements(*range_bits(*mem.acc_range))
    else:
        out_elem = Elements(int(np.asarray(L.thresholds).shape[1]).bit_length())
    o = Link(out_elem, L.pe, math.prod(L.out_shape) // L.pe)
    return Stage(L.type, L.name, i, o, cycles, L, memories=mem, where=where)


@dataclass(frozen=True)
class Plan:
    """Every fact about a network's hardware (see the module docstring).

    ``stages``: :class:`Stage` s in stream order; ``model``: ``(layer name,
    cycles per frame)`` of every layer; ``groups``: the memory groups of the
    weights image in image order (runtime weights; index = the loader's
    enable bit), empty for constant weights; ``topology_hash``: the
    config's :meth:`~qnnfab.netconfig.NetConfig.topology_hash` (the weights
    image's header carries it); :attr:`identity_hash`: what the overlay shell
    and its driver identify the design by.
    """
    cfg: object
    weights_mode: str
    stages: tuple
    model: tuple
    groups: tuple
    topology_hash: int

    @property
    def runtime(self):
        return self.weights_mode == "runtime"

    @property
    def identity_hash(self):
        """32-bit identity of the bitstream: for runtime weights the topology hash (the weights come
        with the image); for constant weights :func:`weights_identity` of the topology hash and
        every layer's weights and thresholds, so two trainings of one topology differ."""
        return self.topology_hash if self.runtime else weights_identity(self.topology_hash, self.cfg.layers)

    @property
    def label_rule(self):
        """How a frame's label follows from its outputs (the config's ``label``, one of
        :data:`qnnfab.packing.LABEL_RULES`, computed by :func:`qnnfab.packing.frame_labels`): the
        hardware's label port, the board's label word."""
        return self.cfg.label

    @property
    def layers(self):
        """The fc/conv/maxpool stages, in order."""
        return tuple(s for s in self.stages if s.kind in ("fc", "conv", "maxpool"))

    @property
    def input(self):
        """The first stage's input :class:`Link`."""
        return self.stages[0].i

    @property
    def output(self):
        """The last stage's output :class:`Link`."""
        return self.stages[-1].o

    @property
    def slowest(self):
        """``(layer name, cycles per frame)`` of the slowest layer (the first of equals)."""
        return max(self.model, key=lambda r: r[1])

    @property
    def word_format(self):
        """The accelerator's AXI-Stream :class:`WordFormat`."""
        i, o = self.input, self.output
        return WordFormat(i.elems, i.elem.bits, i.elem.signed, i.words, o.elems, o.elem.bits, o.elem.signed,
                          o.words, self.cfg.input_pad, self.cfg.layers[-1].classes)

    def overlay_formats(self, data_width):
        """The overlay's DDR buffer formats (:class:`qnnfab.overlay_map.Formats`) at AXI ``data_width``."""
        cfg, o = self.cfg, self.output
        return om.Formats(
            name=cfg.name, input_shape=list(cfg.input_shape), input_kind=cfg.input_kind,
            input_bits=self.input.elem.bits, in_simd=self.input.elems, out_elems=o.elems, out_bits=o.elem.bits,
            out_signed=o.elem.signed, out_words=o.words, topology_hash=self.topology_hash,
            identity_hash=self.identity_hash, bus_bytes=data_width // 8, runtime_weights=self.runtime,
            label_rule=self.label_rule, input_pad=self.cfg.input_pad, classes=self.cfg.layers[-1].classes)

    @property
    def image_body_words(self):
        """Body words of the weights image (runtime weights)."""
        return sum(g.words for g in self.groups)

    def memory_contents(self, stage):
        """Logical words of every memory group of fc/conv ``stage``: per group,
        PE lists of ``depth`` integers (weights, then threshold stages)."""
        L, mem = stage.layer, stage.memories
        w = np.asarray(L.weights, dtype=np.int64)
        matrix = w if L.type == "fc" else _conv_matrix(w)
        out = [weight_words(matrix, L.pe, L.simd, DataKind.of(L.weight_kind, L.weight_bits).width)]
        if L.thresholds is not None:
            lo, hi = mem.acc_range
            t = np.asarray(L.thresholds, dtype=np.int64)
            n = int(t.shape[1]).bit_length()
            tables = threshold_stage_tables(np.clip(t, lo, hi + 1), L.pe, n, hi + 1)
            out += [[tables[p][s] for p in range(L.pe)] for s in range(n)]
        return out

    def image_words(self):
        """The weights image of the config's weights and thresholds: header + body, 64-bit words."""
        body = []
        for stage in self.stages:
            if stage.memories is None:
                continue
            for group, contents in zip(stage.memories.groups, self.memory_contents(stage)):
                for row in group_rows(group, contents):
                    body += reversed(unpack_fields(row, [WORD_BITS] * group.row_words))
        return header_words(self.topology_hash, len(body)) + body


def weights_identity(topology_hash, layers):
    """First 4 bytes (little-endian) of the SHA-256 of: ``topology_hash`` as 4 little-endian bytes,
    then per layer in order its weights, then its thresholds (when it has them), each as int64
    little-endian in C order. The topology fixes every array's shape, so the bytes are unambiguous."""
    h = hashlib.sha256((topology_hash & 0xFFFF_FFFF).to_bytes(4, "little"))
    for L in layers:
        for a in (L.weights, L.thresholds):
            if a is not None:
                h.update(np.ascontiguousarray(np.asarray(a), dtype="<i8").tobytes())
    return int.from_bytes(h.digest()[:4], "little")


def _conv_matrix(w):
    """OIHW conv weights -> the (O, KH*KW*I) im2col matrix, columns in (ky, kx, c) order."""
    return np.transpose(w, (0, 2, 3, 1)).reshape(w.shape[0], -1)


def plan_of(cfg, weights_mode=None):
    """The :class:`Plan` of NetConfig ``cfg`` with ``weights_mode`` ("const" or
    "runtime"; default the config's)."""
    mode = weights_mode or getattr(cfg, "weights_mode", "const")
    if mode not in WEIGHTS_MODES:
        raise ConfigError(f"network '{cfg.name}'", "weights_mode", f"unknown mode {mode!r}",
                          'use "const" or "runtime"')
    if cfg.is_graph:
        raise ConfigError(f"network '{cfg.name}'", "layer", "is a graph (add, global_avgpool, concat or input = ...): it "
                          "has a golden model and a QONNX export but no hardware yet",
                          "build hardware from a chain of fc/conv/maxpool layers")
    runtime = mode == "runtime"
    stages = []
    prev = None
    for index, L in enumerate(cfg.layers):
        layer = _layer_stage(index, L, runtime)
        if prev is not None:
            where = layer.where
            if prev.o.elem != layer.i.elem:
                raise ConfigError(where, "input", f"the previous layer outputs {_shape_text(prev.o.elem)} "
                                  f"elements but this layer reads {_shape_text(layer.i.elem)} ones",
                                  "match act and input kinds")
            link = layer.i
            if prev.o.elems != layer.i.elems:
                stages.append(Stage("width", f"{L.name}_dwc", prev.o, link, 0, L))
            depth = L.fifo_depth or fifo_depth_for(link.words, prev.cycles, layer.cycles)
            stages.append(Stage("fifo", f"{L.name}_fifo", link, link, 0, L, fifo_depth=depth))
        stages.append(layer)
        prev = layer
    groups = tuple(g for s in stages if s.memories is not None for g in s.memories.groups) if runtime else ()
    model = tuple((L.name, folding.layer_cycles(L)) for L in cfg.layers)
    return Plan(cfg, mode, tuple(stages), model, groups, cfg.topology_hash())


def _shape_text(elem):
    """As Amaranth prints the element's shape (the message predates the plan)."""
    return f"{'signed' if elem.signed else 'unsigned'}({elem.bits})"


def pack_image(cfg):
    """The weights image of ``cfg`` (its weights and thresholds, runtime layout) as bytes."""
    return b"".join(w.to_bytes(8, "little") for w in plan_of(cfg, "runtime").image_words())


def save_image(cfg, path):
    """Write :func:`pack_image` to ``path`` atomically; return the number of bytes."""
    data = pack_image(cfg)
    with atomic_paths(path) as (tmp,):
        tmp.write_bytes(data)
    return len(data)

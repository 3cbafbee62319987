"""The plan of a network: every fact about its hardware, computed from the config.

No Amaranth here. :func:`plan_of` answers what the generated hardware is
without building it: the stages in stream order (layers, the width
converters and FIFOs between them), each link's word format (element width
and sign, elements per word, words per frame), cycles per frame, FIFO
depths, the memory groups of every fc/conv layer (and of a graph's add and
global_avgpool thresholds) and the weights image's layout, the accelerator's
AXI-Stream word formats and the identity hash.
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

A graph config (:attr:`~qnnfab.netconfig.NetConfig.is_graph`) adds:

================  ====================  =======================================
kind              name                  what
================  ====================  =======================================
"add"             the layer's name      :class:`~qnnfab.rtl.elementwise_add.ResidualAdd`
"concat"          the layer's name      :class:`~qnnfab.rtl.channel_concat.ChannelConcat`
                                        (each pixel's channels of input a, then
                                        of input b; its input links: ``ins``)
"global_avgpool"  the layer's name      :class:`~qnnfab.rtl.global_pool.GlobalAveragePool`
"fork"            ``<layer>_fork``      :class:`~qnnfab.rtl.stream_fork.StreamFork`
                                        after a layer (or ``input_fork`` after
                                        the network's input) that several read
================  ====================  =======================================

and every stage of a graph names what it reads (:attr:`Stage.reads`); a two-input
layer's width converters and FIFOs are ``<layer>_dwc<p>`` and ``<layer>_fifo<p>``
for its input p (0: ``a``, 1: ``b``). A FIFO in front of a join (an add or a concat) gets
at least the depth below which the join may deadlock, from the geometry of the
two paths from their fork (:func:`qnnfab.fifo_sizing.join_deadlock_depth`,
:attr:`Stage.min_depth`); the FIFO on the path the other waits for (the shortcut)
gets the depth at which it never stalls the fork while the other path could take
a word (:func:`join_throughput_depths`, from the capacities of the other path's
stages: the block then runs as with an unbounded FIFO), unless the add's
``fifo_depth`` is set; a characterised depth (``skip_depths``) replaces either.
"""

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnnfab import fifo_sizing, folding
from qnnfab import overlay_map as om
from qnnfab.cache import atomic_paths
from qnnfab.errors import ConfigError
from qnnfab.kinds import DataKind, accumulator_range, range_bits
from qnnfab.netconfig import NETWORK_INPUT, layer_where, sum_range
from qnnfab.packing import pack_words, pad_frames, unpack_fields, unpack_words
from qnnfab.weight_layout import threshold_stage_tables, weight_words
from qnnfab.weights_image import MemoryGroup, WORD_BITS, group_rows, header_words

__all__ = ["Elements", "Link", "Stage", "JOINS", "LayerMemories", "WordFormat", "Plan", "plan_of", "fifo_depth_for",
           "join_throughput_depths", "stage_capacity", "threshold_memory", "layer_memories", "threshold_memories",
           "sum_threshold_memories", "pack_image", "save_image",
           "weights_identity", "WEIGHTS_MODES"]

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
    """The memories of one fc/conv layer's MVTU, or of an add's or global pool's threshold unit.

    ``groups``: its :class:`~qnnfab.weights_image.MemoryGroup` s (weights,
    then threshold stages 0 .. n-1; threshold stages only for an add or a
    global pool); ``threshold``: ``(bits, signed)`` of a stored threshold,
    ``None`` for a layer without thresholds; ``acc_range``: ``(lo, hi)`` of
    the accumulator (of the thresholded sum's shape for an add or a pool).
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
    reads: tuple = ()           # graphs: per input port, (stage name, output port) it reads ("" = network input)
    fanout: int = 0             # "fork" stages: outputs
    min_depth: int = 0          # "fifo" stages in front of a join: the least depth that cannot deadlock
    ins: tuple = ()             # "concat" stages: the Link of each input port (``i`` is input 0's)

    def input_link(self, port):
        """The :class:`Link` of input ``port`` (a concat's inputs differ in words; every other stage: ``i``)."""
        return self.ins[port] if self.ins else self.i

    def pixel_words(self, port):
        """Words a pixel of input ``port`` of a layer stage whose layer outputs an image (a concat's
        inputs: each its own)."""
        h, w, _ = self.layer.out_shape
        return self.input_link(port).words // (h * w)


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
    weights = MemoryGroup(name, "weights", pe, simd * weight_kind.width, (mh // pe) * (mw // simd))
    if thresholds is None:
        return LayerMemories((weights,), None, (lo, hi))
    mem = threshold_memories(name, thresholds, pe=pe, lo=lo, hi=hi, runtime=runtime)
    return dataclasses.replace(mem, groups=(weights,) + mem.groups)


def threshold_memories(name, thresholds, *, pe, lo, hi, runtime):
    """The :class:`LayerMemories` of a threshold unit alone (thresholds on inputs in ``[lo, hi]``, C / ``pe``
    folds of ``pe`` channels): its threshold stage groups 0 .. n-1, named ``name``."""
    t = np.asarray(thresholds)
    tmem = threshold_memory(t, lo, hi, runtime)
    folds = t.shape[0] // pe
    groups = tuple(MemoryGroup(name, f"thresholds{s}", pe, tmem[0], folds << s, tmem[1])
                   for s in range(int(t.shape[1]).bit_length()))
    return LayerMemories(groups, tmem, (lo, hi))


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
        """The stages of the config's layers (fc/conv/maxpool; a graph's add/global_avgpool), in order."""
        return tuple(s for s in self.stages if s.kind in GRAPH_HARDWARE)

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

    def join_paths(self, join):
        """Graphs: ``(fork stage, [path to input a], [path to input b])`` of join stage ``join``, each path
        the stages from the fork's consumer to the join's FIFO on that input, included."""
        by_name = {s.name: s for s in self.stages}
        fork, a, b = _join_paths(by_name, [r[0] for r in by_name[join].reads], by_name[join].where)
        return by_name[fork], a, b

    @property
    def image_body_words(self):
        """Body words of the weights image (runtime weights)."""
        return sum(g.words for g in self.groups)

    def memory_contents(self, stage):
        """Logical words of every memory group of ``stage`` (fc/conv; a graph's add/global_avgpool): per
        group, PE lists of ``depth`` integers (weights, then threshold stages)."""
        L, mem = stage.layer, stage.memories
        out = []
        if stage.kind in ("fc", "conv"):
            w = np.asarray(L.weights, dtype=np.int64)
            matrix = w if L.type == "fc" else _conv_matrix(w)
            out.append(weight_words(matrix, L.pe, L.simd, DataKind.of(L.weight_kind, L.weight_bits).width))
        if L.thresholds is not None:
            lo, hi = mem.acc_range
            pe = mem.groups[-1].pe
            t = np.asarray(L.thresholds, dtype=np.int64)
            n = int(t.shape[1]).bit_length()
            tables = threshold_stage_tables(np.clip(t, lo, hi + 1), pe, n, hi + 1)
            out += [[tables[p][s] for p in range(pe)] for s in range(n)]
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


def plan_of(cfg, weights_mode=None, skip_depths=None):
    """The :class:`Plan` of NetConfig ``cfg`` with ``weights_mode`` ("const" or
    "runtime"; default the config's). ``skip_depths``: graphs only, ``{fifo stage name: depth}``
    replacing the computed depth of FIFOs in front of joins (characterised depths, tests)."""
    mode = weights_mode or getattr(cfg, "weights_mode", "const")
    if mode not in WEIGHTS_MODES:
        raise ConfigError(f"network '{cfg.name}'", "weights_mode", f"unknown mode {mode!r}",
                          'use "const" or "runtime"')
    runtime = mode == "runtime"
    if cfg.is_graph:
        stages = _graph_stages(cfg, skip_depths or {}, runtime)
        model = tuple((L.name, folding.layer_cycles(L)) for L in cfg.layers)
        return Plan(cfg, mode, tuple(stages), model, _image_groups(stages, runtime), cfg.topology_hash())
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
    model = tuple((L.name, folding.layer_cycles(L)) for L in cfg.layers)
    return Plan(cfg, mode, tuple(stages), model, _image_groups(stages, runtime), cfg.topology_hash())


def _image_groups(stages, runtime):
    """The weights image's memory groups: every stage's, in stage order (runtime weights; else none)."""
    return tuple(g for s in stages if s.memories is not None for g in s.memories.groups) if runtime else ()


GRAPH_HARDWARE = ("fc", "conv", "maxpool", "add", "global_avgpool", "concat")
JOINS = ("add", "concat")       # stages of two inputs, a FIFO in front of each, depths from both paths


def _graph_layer_stage(index, L, runtime=False):
    """The stage of graph layer ``L`` (fc/conv/maxpool as in a chain; add, global_avgpool with the
    memories of their thresholds, on the sum: :func:`sum_threshold_memories`; concat with the link of
    each input)."""
    if L.type in ("fc", "conv", "maxpool"):
        return _layer_stage(index, L, runtime)
    where = layer_where(index, L.name)
    in_elem = _elements(L.in_kind, L.in_bits)
    if L.type == "concat":
        ins = tuple(Link(in_elem, L.simd, math.prod(shape) // L.simd) for shape in L.in_shapes)
        o = Link(in_elem, L.simd, math.prod(L.out_shape) // L.simd)
        return Stage("concat", L.name, ins[0], o, folding.layer_cycles(L), L, where=where, ins=ins)
    i = Link(in_elem, L.simd, math.prod(L.in_shape) // L.simd)
    o = Link(_elements(L.out_kind, L.out_bits), L.simd, math.prod(L.out_shape) // L.simd)
    mem = sum_threshold_memories(where, L, runtime)
    return Stage(L.type, L.name, i, o, folding.layer_cycles(L), L, memories=mem, where=where)


def sum_threshold_memories(name, L, runtime):
    """The :class:`LayerMemories` (named ``name``) of the threshold unit of add or global_avgpool layer ``L``:
    ``L.simd`` lanes thresholding the sum (:func:`qnnfab.netconfig.sum_range`) in the narrowest integer shape
    holding it (:func:`qnnfab.kinds.range_bits`), over every value of that shape."""
    bits, is_signed = range_bits(*sum_range(L))
    lo, hi = DataKind.of("int" if is_signed else "uint", bits).stored_range
    return threshold_memories(name, L.thresholds, pe=L.simd, lo=lo, hi=hi, runtime=runtime)


def _stage_need(s):
    """One frame's need of stage ``s`` (:mod:`qnnfab.fifo_sizing`): per output word, its input words."""
    if s.kind in ("fifo", "add"):
        return fifo_sizing.pointwise_need(s.o.words)
    if s.kind == "width":
        return fifo_sizing.regroup_need(s.i.elems, s.o.elems, s.o.words)
    if s.kind in ("fc", "global_avgpool"):
        return fifo_sizing.vector_need(s.i.words, s.o.words)
    L = s.layer
    h, w, _ = L.in_shape
    oh, ow, _ = L.out_shape
    if s.i.words % (h * w) or s.o.words % (oh * ow):
        raise ConfigError(s.where, "simd", "takes words of several pixels: the skip FIFO depth is not computed for "
                          "it", "choose simd dividing the input channels")
    pad = L.pad if L.type == "conv" else 0
    return fifo_sizing.conv_need(h, w, s.i.words // (h * w), L.kernel, L.stride, pad, s.o.words // (oh * ow))


def stage_capacity(s):
    """``(capacity, input words per frame)`` of stage ``s`` over one frame (:mod:`qnnfab.fifo_sizing`): per
    output word k, the most input words it can have taken while k waits; None when not modelled."""
    if s.kind == "fifo":
        return fifo_sizing.fifo_capacity(s.o.words, s.fifo_depth), s.i.words
    if s.kind in ("add", "fork"):
        return fifo_sizing.fifo_capacity(s.o.words, 1), s.i.words          # one register
    if s.kind == "width":
        return fifo_sizing.regroup_capacity(s.i.elems, s.o.elems, s.o.words), s.i.words
    if s.kind != "conv":
        return None
    L = s.layer
    h, w, _ = L.in_shape
    oh, ow, _ = L.out_shape
    if s.i.words % (h * w) or s.o.words % (oh * ow):
        return None
    # the MVTU's latency bounds its output words in flight (3 + read register + adder-tree registers, at most
    # its SIMD's bit length, + one stage per output bit); windows after them, one per word held: the MVTU's
    # input double buffer's other half, the ConvLayer's FIFO between window and MVTU (depth 2 and its output
    # register; none for wide words) and the window's read and output registers
    latency = 4 + min(L.simd.bit_length() if L.pipeline == "max" else L.pipeline, L.simd.bit_length()) + s.o.elem.bits
    windows = 1 + (0 if L.simd > L.in_shape[2] else 3) + 2
    rows = folding.window_buffer_rows(h, w, L.kernel, L.stride, L.pad)
    cap = fifo_sizing.conv_capacity(h, w, s.i.words // (h * w), L.kernel, L.stride, L.pad, s.o.words // (oh * ow),
                                    rows, latency, windows)
    return cap, s.i.words


def join_throughput_depths(plan):
    """``{fifo stage name: depth}``: the never-binding depth of every join's short-path FIFO
    (:func:`_join_throughput_depth`), the figure :func:`plan_of` gives it unless told otherwise."""
    by_name = {s.name: s for s in plan.stages}
    found = {}
    for join in (s for s in plan.stages if s.kind in JOINS):
        keep = _join_throughput_depth(by_name, join, [r[0] for r in join.reads])
        if keep:
            found[keep[0]] = keep[1]
    return found


def _join_throughput_depth(by_name, join, fifos):
    """``(fifo name, depth)``: the never-binding depth (:func:`qnnfab.fifo_sizing.join_throughput_depth`)
    of the FIFO, of the two ``fifos`` in front of join stage ``join``, whose path the other one waits for
    (the larger least depth; input 1 when equal), from the capacities of the other path's stages (its own
    FIFO at its depth in ``by_name``); None when a stage's capacity is not modelled."""
    fork, *paths = _join_paths(by_name, fifos, join.where)
    short = 0 if by_name[fifos[0]].min_depth > by_name[fifos[1]].min_depth else 1
    caps = [stage_capacity(s) for s in paths[1 - short]]
    if any(c is None for c in caps):
        return None
    need = fifo_sizing.chain_need(*[_stage_need(s) for s in paths[short]])
    taken = _join_taken(join, 1 - short)
    if taken is not None:
        taken = fifo_sizing.pending_taken(taken, join.input_link(short).words)
    return fifos[short], fifo_sizing.join_throughput_depth(fifo_sizing.chain_capacity(caps), need,
                                                           by_name[fork].o.words, taken)


def _join_taken(join, port):
    """Per word k of input ``port`` of join stage ``join``, the other input's words it has taken when it
    waits for k: None for an add (k: it takes word k of both at once), a concat's
    :func:`qnnfab.fifo_sizing.concat_taken`."""
    if join.kind != "concat":
        return None
    h, w, _ = join.layer.out_shape
    return fifo_sizing.concat_taken(join.pixel_words(0), join.pixel_words(1), h * w, port)


def _path_to_fork(by_name, name, port):
    """``(fork stage name, its output port, [stages from the fork's consumer to the join])`` of the
    path ending in stage ``name``: the stages read one by one back to the fork."""
    path = []
    while True:
        s = by_name[name]
        if s.kind == "fork":
            return name, port, path[::-1]
        if len(s.reads) != 1 or not s.reads[0][0]:
            return None, None, path[::-1]
        path.append(s)
        name, port = s.reads[0]


def _join_paths(by_name, fifos, where):
    """``(fork stage name, [stages of the path to input 0], [... to input 1])`` of the join whose
    input FIFOs are ``fifos``: each path from the fork's consumer to the join's FIFO, included."""
    paths = [_path_to_fork(by_name, f, 0) for f in fifos]
    if paths[0][0] is None or paths[0][0] != paths[1][0]:
        raise ConfigError(where, "input", "the two inputs do not branch from one layer through single-input "
                          "layers: this graph is not built in hardware yet",
                          "join two branches that leave the same layer (a residual, inception or dense block)")
    return paths[0][0], paths[0][2], paths[1][2]


def _join_depths(by_name, join, fifos):
    """The least depth that cannot deadlock of the FIFOs ``fifos`` (names, input 0 and 1) in front of
    join stage ``join``, from the geometry of both paths back to their common fork (and, for a concat,
    the order it takes their words in)."""
    fork, *paths = _join_paths(by_name, fifos, join.where)
    needs = [fifo_sizing.chain_need(*[_stage_need(s) for s in path]) for path in paths]
    fork_words = by_name[fork].o.words
    return (fifo_sizing.join_deadlock_depth(needs[1], needs[0], fork_words, _join_taken(join, 1)),
            fifo_sizing.join_deadlock_depth(needs[0], needs[1], fork_words, _join_taken(join, 0)))


def _graph_stages(cfg, skip_depths, runtime=False):
    """The stages of graph config ``cfg`` in a topological order, each naming what it reads."""
    sources = []
    for index, L in enumerate(cfg.layers):
        sources.append(L.inputs or ((cfg.layers[index - 1].name,) if index else (NETWORK_INPUT,)))
    readers = {}
    for index, names in enumerate(sources):
        for port, n in enumerate(names):
            readers.setdefault(n, []).append((index, port))
    stages, by_name, ends = [], {}, {}

    def add(stage):
        stages.append(stage)
        by_name[stage.name] = stage

    def produce(name, link, layer):
        """Record the output ``(stage, port)`` each reader ``(layer index, input port)`` of ``name`` gets,
        behind a fork if several read it (one layer reading it twice too)."""
        who = readers.get(name, [])
        if len(who) > 1:
            fork = Stage("fork", f"{name}_fork", link, link, 0, layer, reads=((ends[name][0], 0),),
                         fanout=len(who))
            add(fork)
            for fork_port, reader in enumerate(who):
                ends[(name, *reader)] = (fork.name, fork_port)
        elif who:
            ends[(name, *who[0])] = ends[name]

    first = cfg.layers[0]
    ends[NETWORK_INPUT] = ("", 0)
    produce(NETWORK_INPUT, _graph_layer_stage(0, first).i, first)
    for index, L in enumerate(cfg.layers):
        layer = _graph_layer_stage(index, L, runtime)
        reads, fifos = [], []
        for port, name in enumerate(sources[index]):
            end = ends[(name, index, port)]
            suffix = str(port) if len(sources[index]) > 1 else ""
            link = layer.input_link(port)
            prev_o = by_name[end[0]].o if end[0] else link
            if prev_o.elem != link.elem:
                raise ConfigError(layer.where, "input", f"{name!r} outputs {_shape_text(prev_o.elem)} elements but "
                                  f"this layer reads {_shape_text(layer.i.elem)} ones", "match act and input kinds")
            if end == ("", 0):          # the network's input straight into its first layer
                reads.append(end)
                continue
            if prev_o.elems != link.elems:
                add(Stage("width", f"{L.name}_dwc{suffix}", prev_o, link, 0, L, reads=(end,)))
                end = (f"{L.name}_dwc{suffix}", 0)
            depth = L.fifo_depth or fifo_depth_for(link.words, _producer_cycles(by_name, end[0]), layer.cycles)
            add(Stage("fifo", f"{L.name}_fifo{suffix}", link, link, 0, L, fifo_depth=depth, reads=(end,)))
            fifos.append(f"{L.name}_fifo{suffix}")
            reads.append((f"{L.name}_fifo{suffix}", 0))
        if L.type in JOINS:
            for fifo, least in zip(fifos, _join_depths(by_name, layer, fifos)):
                f = by_name[fifo]
                depth = skip_depths.get(fifo, max(least, f.fifo_depth))
                stages[stages.index(f)] = by_name[fifo] = dataclasses.replace(f, fifo_depth=depth, min_depth=least)
            keep = _join_throughput_depth(by_name, layer, fifos)
            if keep and keep[0] not in skip_depths and L.fifo_depth is None:
                f = by_name[keep[0]]
                stages[stages.index(f)] = by_name[f.name] = dataclasses.replace(f, fifo_depth=max(f.min_depth, keep[1]))
        add(dataclasses.replace(layer, reads=tuple(reads)))
        ends[L.name] = (L.name, 0)
        produce(L.name, layer.o, L)
    unknown = set(skip_depths) - {s.name for s in stages if s.min_depth}
    if unknown:
        raise ConfigError(f"network '{cfg.name}'", "skip_depths", f"names {sorted(unknown)}, not FIFOs in front of "
                          "an add or concat", f"name some of {[s.name for s in stages if s.min_depth]}")
    return stages


def _producer_cycles(by_name, name):
    """Cycles per frame of the layer behind stage ``name`` (through width converters and forks; 0 for
    the network's input)."""
    while name and by_name[name].kind in ("width", "fork", "fifo"):
        name = by_name[name].reads[0][0]
    return by_name[name].cycles if name else 0


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

"""Whole-network streaming accelerator built from a :class:`qnnfab.netconfig.NetConfig`.

FINN-style heterogeneous dataflow: one hardware stage per layer (fc ->
:class:`~qnnfab.rtl.mvtu.MVTU`, conv -> :class:`~qnnfab.rtl.conv.ConvLayer`,
maxpool -> :class:`~qnnfab.rtl.maxpool.MaxPool`), chained with stream FIFOs,
and a :class:`~qnnfab.rtl.width_converter.WidthConverter` wherever one
layer's output word (PE elements) differs from the next layer's input word
(SIMD elements).

Every link carries ``lanes(element shape, n)`` words (:mod:`qnnfab.rtl.lanes`).
The AXI-Stream top that is exported to users wraps this component:
:class:`qnnfab.rtl.axis_accelerator.AxiStreamAccelerator`.
"""

from amaranth.hdl import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.plan import plan_of
from qnnfab.weights_image import ERROR_BITS

from .channel_concat import ChannelConcat
from .conv import ConvLayer
from .elementwise_add import ResidualAdd
from .global_pool import GlobalAveragePool
from .highest_set_bit import HighestSetBit
from .lanes import if_output, lanes
from .maxpool import MaxPool
from .mvtu import MVTU
from .stream_fifo import StreamFIFO
from .stream_fork import StreamFork
from .weight_loader import WeightLoader, wload_signature
from .width_converter import WidthConverter

__all__ = ["Dataflow", "ArgMax", "StageChain", "stage_component", "stage_components", "chain_layers", "layer_chain"]


def _shape(elem):
    """The Amaranth shape of a plan's :class:`~qnnfab.plan.Elements`."""
    return signed(elem.bits) if elem.signed else unsigned(elem.bits)


def _check_link(layout, link, stage, port):
    """The component's port must carry the plan's words (a plan and RTL that disagree is a bug here)."""
    if layout.length != link.elems or Shape.cast(layout.elem_shape) != _shape(link.elem):
        raise AssertionError(f"{stage}: {port} words of {layout.length} x {layout.elem_shape}, the plan says "
                             f"{link.elems} x {_shape(link.elem)}")


def stage_components(plan, pipeline=None):
    """``[(kind, name, component)]`` of every stage of ``plan`` (a :class:`qnnfab.plan.Plan`) in
    stream order, each component checked against the plan's word formats. ``pipeline``
    overrides every fc/conv layer's ``pipeline``."""
    return [(s.kind, s.name, stage_component(plan, s, pipeline)) for s in plan.stages]


def stage_component(plan, s, pipeline=None):
    """The component of plan stage ``s``, checked against the plan's word formats."""
    comp = _stage_component(plan, s, pipeline)
    if s.memories is not None and plan.runtime and list(s.memories.groups) != comp.memory_groups:
        raise AssertionError(f"{s.name}: memory groups {comp.memory_groups}, the plan says {list(s.memories.groups)}")
    for k, port in enumerate(input_ports(comp)):
        _check_link(port.payload.shape(), s.input_link(k), s.name, "input")
    for port in output_ports(comp):
        _check_link(port.payload.shape(), s.o, s.name, "output")
    return comp


def input_ports(comp):
    """The input streams of a stage's component: ``a`` and ``b`` of a join (add, concat), else ``i``."""
    return [comp.a, comp.b] if isinstance(comp, (ResidualAdd, ChannelConcat)) else [comp.i]


def output_ports(comp):
    """The output streams of a stage's component: each output of a fork, else ``o``."""
    return [comp.o[k] for k in range(comp.n)] if isinstance(comp, StreamFork) else [comp.o]


def _stage_component(plan, s, pipeline):
    """The component of plan stage ``s``."""
    if s.kind == "width":
        return WidthConverter(s.i.elems, s.o.elems, _shape(s.i.elem), name=f"{s.layer.name} width converter")
    if s.kind == "fifo":
        return StreamFIFO(lanes(_shape(s.i.elem), s.i.elems), s.fifo_depth)
    if s.kind == "fork":
        return StreamFork(lanes(_shape(s.i.elem), s.i.elems), s.fanout)
    L = s.layer
    if s.kind == "add":
        return ResidualAdd(_shape(s.i.elem), _shape(s.i.elem), L.thresholds, pe=s.i.elems, runtime=plan.runtime,
                           name=s.where)
    if s.kind == "concat":
        return ChannelConcat(s.pixel_words(0), s.pixel_words(1), _shape(s.i.elem), s.i.elems)
    if s.kind == "global_avgpool":
        h, w, c = L.in_shape
        return GlobalAveragePool(h * w, c, s.i.elems, _shape(s.i.elem), L.thresholds, runtime=plan.runtime,
                                 name=s.where)
    where = s.where
    act_kind = L.in_kind
    act_bits = None if act_kind == "bipolar" else L.in_bits
    pipe = L.pipeline if pipeline is None else pipeline
    if L.type == "fc":
        return MVTU(L.weights, L.thresholds, pe=L.pe, simd=L.simd, weight_kind=L.weight_kind,
                    weight_bits=L.weight_bits, act_kind=act_kind, act_bits=act_bits, vectors=1,
                    pipeline=pipe, runtime=plan.runtime, weight_memory=L.weight_memory,
                    accumulator=L.accumulator, popcount=L.popcount, name=where)
    if L.type == "conv":
        h, w, _ = L.in_shape
        return ConvLayer(h, w, L.weights, L.thresholds, stride=L.stride, pad=L.pad,
                         pad_value=L.pad_value, simd=L.simd, pe=L.pe, weight_kind=L.weight_kind,
                         weight_bits=L.weight_bits, act_kind=act_kind, act_bits=act_bits,
                         pipeline=pipe, runtime=plan.runtime, weight_memory=L.weight_memory,
                         accumulator=L.accumulator, popcount=L.popcount, name=where)
    h, w, c = L.in_shape
    return MaxPool(h, w, c, L.simd, L.kernel, L.stride,
                   kind="bipolar" if act_kind == "bipolar" else "uint", bits=L.in_bits)


def _chain(m, comps):
    """Connect each component's output stream ``o`` to the next one's input ``i`` in ``m``."""
    for a, b in zip(comps, comps[1:]):
        wiring.connect(m, a.o, b.i)


class StageChain(wiring.Component):
    """Consecutive stages of a plan as one component: ``parts``, ``[(name, component)]`` in
    stream order, each a submodule ``name``, chained output to input as :class:`Dataflow`
    chains them. Ports: ``i`` (the first part's input stream), ``o`` (the last part's output
    stream). Adds no logic, register or cycle."""

    def __init__(self, parts):
        self.parts = list(parts)
        super().__init__({"i": In(stream.Signature(self.parts[0][1].i.payload.shape())),
                          "o": Out(stream.Signature(self.parts[-1][1].o.payload.shape()))})

    def elaborate(self, platform):
        m = Module()
        for name, comp in self.parts:
            m.submodules[name] = comp
        _chain(m, [comp for _, comp in self.parts])
        wiring.connect(m, wiring.flipped(self.i), self.parts[0][1].i)
        wiring.connect(m, self.parts[-1][1].o, wiring.flipped(self.o))
        return m


def chain_layers(plan):
    """The names of ``plan``'s layers in stream order: each names one chain of stages (the
    layer with the width converter and FIFO in front of it, :func:`layer_chain`)."""
    return list(dict.fromkeys(s.layer.name for s in plan.stages))


def layer_chain(plan, layer, pipeline=None):
    """The :class:`StageChain` of layer ``layer``'s stages of ``plan`` (the layer with the width
    converter and FIFO in front of it), each made as :func:`stage_components` makes it
    (``pipeline`` overrides the layer's ``pipeline``)."""
    return StageChain([(s.name, stage_component(plan, s, pipeline)) for s in plan.stages if s.layer.name == layer])


class ArgMax(wiring.Component):
    """Observes the score stream and produces the arg-max label of every frame.

    ``valid``/``ready``/``payload`` are inputs that mirror the score stream's
    signals (a tap, no backpressure of its own). ``payload`` is
    ``lanes(shape, pe)`` (elements of ``width`` bits, ``signed(width)`` when
    ``is_signed``); ``words`` words make one frame of ``pe * words`` scores,
    score ``k * pe + p`` = ``payload[p]`` of word k. Ties go to the lowest
    index (as ``numpy.argmax``). ``label`` holds the result from the cycle
    after the frame's last word transfers, ``label_valid`` pulses for one
    cycle then. ``count`` (default all ``pe * words``): only scores at index
    < ``count`` compete; the rest are padding.
    """

    def __init__(self, pe, width, is_signed, words, count=None):
        self.pe, self.width, self.is_signed, self.words = pe, width, is_signed, words
        self.count = pe * words if count is None else count
        if not 1 <= self.count <= pe * words:
            raise ValueError(f"count {count} is not in [1, {pe * words}]")
        self.shape = signed(width) if is_signed else unsigned(width)
        n = pe * words
        super().__init__({
            "valid": In(1), "ready": In(1), "payload": In(lanes(self.shape, pe)),
            "label": Out(range(max(2, n))), "label_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pe, shape = self.pe, self.shape
        n = pe * self.words
        word = Signal(range(max(2, self.words)))
        best = Signal(shape)
        best_idx = Signal(range(max(2, n)))
        # best element of this word (first on ties)
        cand_v = []
        for p in range(pe):
            v = Signal(shape, name=f"elem{p}")
            m.d.comb += v.eq(self.payload[p])
            cand_v.append(v)
        wv, wi = cand_v[0], Signal(range(max(2, pe)), name="wi0")
        m.d.comb += wi.eq(0)
        for p in range(1, pe):
            nv = Signal(shape, name=f"wv{p}")
            ni = Signal(range(max(2, pe)), name=f"wi{p}")
            wins = self._if_score(word, p, cand_v[p] > wv)
            m.d.comb += [nv.eq(Mux(wins, cand_v[p], wv)),
                         ni.eq(Mux(wins, p, wi))]
            wv, wi = nv, ni
        idx = Signal(range(max(2, n)))
        m.d.comb += idx.eq(word * pe + wi)
        take = Signal()
        m.d.comb += take.eq(self.valid & self.ready)
        first = word == 0
        better = first | self._if_score(word, 0, wv > best)
        new_best = Mux(better, wv, best)
        new_idx = Mux(better, idx, best_idx)
        m.d.sync += self.label_valid.eq(0)
        with m.If(take):
            m.d.sync += [best.eq(new_best), best_idx.eq(new_idx)]
            with m.If(word == self.words - 1):
                m.d.sync += [word.eq(0), self.label.eq(new_idx), self.label_valid.eq(1)]
            with m.Else():
                m.d.sync += word.eq(word + 1)
        return m

    def _if_score(self, word, p, cond):
        """``cond``, and lane ``p`` of word ``word`` holds a score, not padding (:func:`if_output`)."""
        return if_output(cond, word, p, pe=self.pe, words=self.words, count=self.count)


class Dataflow(wiring.Component):
    """The streaming accelerator of a network config.

    Ports
    -----
    i : stream of ``lanes(in_shape, SIMD)`` (:mod:`qnnfab.rtl.lanes`): input
        pixels or features, the first layer's SIMD elements per word,
        ``payload[j]`` = element j (element 0 at the LSBs when flattened),
        NHWC raster order; ``in_words`` (``cfg.input_words()``) words per
        frame, frames back to back. ``in_shape``: ``unsigned(1)`` bipolar
        (bit 1 = +1), ``unsigned(k)`` uint, ``signed(k)`` int inputs.
    o : stream of ``StructLayout({"data": lanes(out_shape, PE), "last": 1})``:
        the last layer's outputs, PE elements per word (``data[p]`` of word k
        = output k*PE + p), ``out_words`` words per frame, ``last`` on the
        last word of every frame. Scores (a last layer without thresholds)
        are raw accumulators: unsigned popcounts for bipolar x bipolar,
        else signed (``out_signed``); ``out_bits`` bits each.
    label, label_valid : the label of each frame under the config's label
        rule (``cfg.label``, :func:`qnnfab.packing.frame_labels`): "argmax"
        (:class:`ArgMax`, the lowest index on ties) or "highest_set_bit"
        (:class:`~qnnfab.rtl.highest_set_bit.HighestSetBit`, one-bit outputs);
        valid for one cycle after the frame's last output word transfers.

    wload, wload_done, wload_error : only with ``weights_mode = "runtime"``:
        the weights image stream (64-bit words, ``last`` on the final one),
        a one-cycle pulse when a load ended and its
        :class:`~qnnfab.weights_image.WloadError` code (see
        :class:`~qnnfab.rtl.weight_loader.WeightLoader`). A load is taken only
        while no frame is in flight (from a frame's first input word to its
        last output word); input words wait while a load runs. Until the
        first correct load the outputs are undefined.

    ``pipeline``: registers inside every fc/conv layer's popcount / adder
    tree (default: each layer's ``pipeline`` from the config).
    ``weights_mode``: "const" (weights are constants of the hardware) or
    "runtime" (RAMs loaded through ``wload``); default: the config's.
    ``skip_depths``: graphs, ``{fifo stage: depth}`` replacing the plan's depths of
    FIFOs in front of joins (:func:`qnnfab.plan.plan_of`).

    A graph config (:attr:`~qnnfab.netconfig.NetConfig.is_graph`) wires every stage to
    the outputs it reads (:attr:`qnnfab.plan.Stage.reads`): forks, joins (adds,
    channel concatenations) with a FIFO on each input, global average pooling.

    ``stages_outside=True`` (chains with const weights only): the stages are not
    instantiated; the ports ``stages_i`` (out: the stream into the first
    stage) and ``stages_o`` (in: the stream out of the last stage) take the
    chain's place, so that each stage can be simulated as a model of its own
    (:func:`qnnfab.sim.build.build_staged`); the rest is the same logic.

    ``self.stages`` lists ``(kind, name, component)`` in stream order (none with
    ``stages_outside``: :func:`layer_chain` makes a layer's stages from the plan);
    ``self.model`` the per-layer cycles per frame.
    """

    def __init__(self, cfg, *, pipeline=None, weights_mode=None, skip_depths=None, stages_outside=False):
        self.cfg = cfg
        self.plan = plan = plan_of(cfg, weights_mode, skip_depths)
        self.stages_outside = stages_outside
        self.weights_mode = plan.weights_mode
        if stages_outside:     # the stages are made where they are simulated (layer_chain)
            self.stages = []
            first, last = plan.stages[0], plan.stages[-1]
            self.in_layout = lanes(_shape(first.i.elem), first.i.elems)
            self.out_layout = lanes(_shape(last.o.elem), last.o.elems)
        else:
            self.stages = stage_components(plan, pipeline)
            self.in_layout = self.stages[0][2].i.payload.shape()
            self.out_layout = self.stages[-1][2].o.payload.shape()
        self.out_shape, self.out_elems = self.out_layout.elem_shape, self.out_layout.length
        self.out_bits = self.out_shape.width
        self.out_signed = self.out_shape.signed
        self.out_words = plan.output.words
        self.in_words = plan.input.words
        self.in_width = self.in_layout.size
        self.out_width = self.out_layout.size
        self.model = list(plan.model)
        ports = {
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(data.StructLayout({"data": self.out_layout, "last": unsigned(1)}))),
            "label": Out(range(max(2, self.out_words * self.out_elems))), "label_valid": Out(1),
        }
        if stages_outside:
            if plan.runtime:
                raise ValueError("stages_outside needs const weights (the weight loader feeds the stages)")
            if plan.stages[0].reads:
                raise ValueError("stages_outside takes a chain (a graph's stages are wired by what they read)")
            ports.update({"stages_i": Out(stream.Signature(self.in_layout)),
                          "stages_o": In(stream.Signature(self.out_layout))})
        self.loader = None
        if plan.runtime:
            self.loader = WeightLoader(list(plan.groups), plan.topology_hash)
            ports.update({"wload": In(wload_signature()), "wload_done": Out(1), "wload_error": Out(ERROR_BITS)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        comps = []
        if self.stages_outside:
            first_i, last_o = self.stages_i, self.stages_o
        else:
            for kind, name, comp in self.stages:
                m.submodules[name] = comp
                comps.append(comp)
            if self.plan.stages[0].reads:       # a graph: every stage names the outputs it reads
                by_name = {name: comp for _, name, comp in self.stages}
                for s, comp in zip(self.plan.stages[1:], comps[1:]):
                    for (source, port), i in zip(s.reads, input_ports(comp)):
                        wiring.connect(m, output_ports(by_name[source])[port], i)
            else:
                _chain(m, comps)
            first_i, last_o = comps[0].i, comps[-1].o
        hold = self._weight_loading(m, comps) if self.loader is not None else 0
        m.d.comb += [
            first_i.payload.eq(self.i.payload),
            first_i.valid.eq(self.i.valid & ~hold) if self.loader is not None
            else first_i.valid.eq(self.i.valid),
            self.i.ready.eq(first_i.ready & ~hold) if self.loader is not None
            else self.i.ready.eq(first_i.ready),
            self.o.payload.data.eq(last_o.payload),
            self.o.valid.eq(last_o.valid),
            last_o.ready.eq(self.o.ready),
        ]
        # last: count output words of a frame
        count = Signal(range(max(2, self.out_words)))
        m.d.comb += self.o.payload.last.eq(count == self.out_words - 1)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += count.eq(Mux(self.o.payload.last, 0, count + 1))
        if self.plan.label_rule == "highest_set_bit":
            m.submodules.highest_set_bit = am = HighestSetBit(self.out_elems, self.out_words, self.cfg.classes)
        else:
            m.submodules.argmax = am = ArgMax(self.out_elems, self.out_bits, self.out_signed, self.out_words,
                                              self.cfg.classes)
        m.d.comb += [
            am.valid.eq(self.o.valid), am.ready.eq(self.o.ready),
            am.payload.eq(self.o.payload.data),
            self.label.eq(am.label), self.label_valid.eq(am.label_valid),
        ]
        return m

    def _weight_loading(self, m, comps):
        """Add the weight loader and the frames-in-flight count; return the input hold signal."""
        m.submodules.weight_loader = ld = self.loader
        wiring.connect(m, wiring.flipped(self.wload), ld.wload)
        m.d.comb += [self.wload_done.eq(ld.done), self.wload_error.eq(ld.error)]
        offset = 0
        for comp in comps:
            if hasattr(comp, "load"):
                n = len(comp.load.en)
                m.d.comb += [comp.load.addr.eq(ld.load.addr), comp.load.data.eq(ld.load.data),
                             comp.load.en.eq(ld.load.en[offset:offset + n])]
                offset += n
        assert offset == len(ld.groups)
        # frames in flight: from the first input word of a frame to the last output word
        in_word = Signal(range(max(2, self.in_words)))
        in_flight = Signal(16)
        start = Signal()
        end = Signal()
        m.d.comb += [
            start.eq(self.i.valid & self.i.ready & (in_word == 0)),
            end.eq(self.o.valid & self.o.ready & self.o.payload.last),
            ld.busy.eq(in_flight != 0),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += in_word.eq(Mux(in_word == self.in_words - 1, 0, in_word + 1))
        with m.If(start & ~end):
            m.d.sync += in_flight.eq(in_flight + 1)
        with m.Elif(end & ~start):
            m.d.sync += in_flight.eq(in_flight - 1)
        return ld.active

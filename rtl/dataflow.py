"""Whole-network streaming accelerator built from a :class:`qnnfab.netconfig.NetConfig`.

FINN-style heterogeneous dataflow: one hardware stage per layer (fc ->
:class:`~qnnfab.rtl.mvtu.MVTU`, conv -> :class:`~qnnfab.rtl.conv.ConvLayer`,
maxpool -> :class:`~qnnfab.rtl.maxpool.MaxPool`), chained with stream FIFOs,
and a :class:`~qnnfab.rtl.width_converter.WidthConverter` wherever one
layer's output word (PE elements) differs from the next layer's input word
(SIMD elements).
"""

import math

from amaranth.hdl import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError

from .conv import ConvLayer
from .maxpool import MaxPool
from .mvtu import MVTU
from .stream_fifo import StreamFIFO
from .weight_loader import WeightLoader, wload_signature
from .weights_image import ERROR_BITS, image_groups
from .width_converter import WidthConverter

__all__ = ["Dataflow", "ArgMax", "fifo_depth_for"]


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


class ArgMax(wiring.Component):
    """Observes the score stream and produces the arg-max label of every frame.

    ``valid``/``ready``/``payload`` are inputs that mirror the score stream's
    signals (a tap, no backpressure of its own). Elements are ``pe`` values of
    ``width`` bits (``is_signed``); ``words`` words make one frame of
    ``pe * words`` scores. Ties go to the lowest index (as ``numpy.argmax``).
    ``label`` holds the result from the cycle after the frame's last word
    transfers, ``label_valid`` pulses for one cycle then.
    """

    def __init__(self, pe, width, is_signed, words):
        self.pe, self.width, self.is_signed, self.words = pe, width, is_signed, words
        n = pe * words
        super().__init__({
            "valid": In(1), "ready": In(1), "payload": In(pe * width),
            "label": Out(range(max(2, n))), "label_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pe, w = self.pe, self.width
        shape = signed(w) if self.is_signed else unsigned(w)
        n = pe * self.words
        word = Signal(range(max(2, self.words)))
        best = Signal(shape)
        best_idx = Signal(range(max(2, n)))
        # best element of this word (first on ties)
        cand_v, cand_i = [], []
        for p in range(pe):
            v = Signal(shape, name=f"elem{p}")
            m.d.comb += v.eq(self.payload[p * w:(p + 1) * w])
            cand_v.append(v)
            cand_i.append(p)
        wv, wi = cand_v[0], Signal(range(max(2, pe)), name="wi0")
        m.d.comb += wi.eq(0)
        for p in range(1, pe):
            nv = Signal(shape, name=f"wv{p}")
            ni = Signal(range(max(2, pe)), name=f"wi{p}")
            m.d.comb += [nv.eq(Mux(cand_v[p] > wv, cand_v[p], wv)),
                         ni.eq(Mux(cand_v[p] > wv, p, wi))]
            wv, wi = nv, ni
        idx = Signal(range(max(2, n)))
        m.d.comb += idx.eq(word * pe + wi)
        take = Signal()
        m.d.comb += take.eq(self.valid & self.ready)
        first = word == 0
        better = first | (wv > best)
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


class Dataflow(wiring.Component):
    """The streaming accelerator of a network config.

    Ports (AXI-Stream style names)
    -------------------------------
    s_axis_tdata/tvalid/tready/tlast : input pixels or features, the first
        layer's SIMD elements per word (element 0 at the LSBs), NHWC raster
        order; ``input_words`` words per frame. ``tlast`` is accepted but not
        needed: frame boundaries follow from the word count.
    m_axis_tdata/tvalid/tready/tlast : the last layer's outputs, PE elements
        per word (scores: raw accumulators, signed unless bipolar x bipolar);
        ``tlast`` marks the last word of each frame.
    label, label_valid : arg-max of the last layer's outputs per frame
        (lowest index on ties), valid for one cycle after the frame's last
        output word transfers.

    wload, wload_done, wload_error : only with ``weights_mode = "runtime"``:
        the weights image stream (64-bit words, ``last`` on the final one),
        a one-cycle pulse when a load ended and its
        :class:`~qnnfab.rtl.weights_image.WloadError` code (see
        :class:`~qnnfab.rtl.weight_loader.WeightLoader`). A load is taken only
        while no frame is in flight (from a frame's first input word to its
        last output word); input words wait while a load runs. Until the
        first correct load the outputs are undefined.

    ``pipeline``: registers inside every fc/conv layer's popcount / adder
    tree (default: each layer's ``pipeline`` from the config).
    ``weights_mode``: "const" (weights are constants of the hardware) or
    "runtime" (RAMs loaded through ``wload``); default: the config's.

    ``self.stages`` lists ``(kind, name, component)`` in stream order;
    ``self.model`` the per-layer cycles per frame.
    """

    def __init__(self, cfg, *, pipeline=None, weights_mode=None):
        self.cfg = cfg
        self.weights_mode = weights_mode or getattr(cfg, "weights_mode", "const")
        if self.weights_mode not in ("const", "runtime"):
            raise ConfigError(f"network '{cfg.name}'", "weights_mode", f"unknown mode {self.weights_mode!r}",
                              'use "const" or "runtime"')
        runtime = self.weights_mode == "runtime"
        self.stages = []
        prev = None  # (elems per word, bits per element) of the previous output
        prev_cycles = 0
        for idx, L in enumerate(cfg.layers):
            where = f"layer {idx} '{L.name}'"
            in_bits = L.in_bits
            cycles = cfg.layer_cycles(L)
            if prev is not None:
                pe_prev, bits_prev = prev
                if bits_prev != in_bits:
                    raise ConfigError(where, "input", f"the previous layer outputs {bits_prev}-bit elements "
                                      f"but this layer reads {in_bits}-bit ones", "match act and input kinds")
                words = math.prod(L.in_shape) // L.simd
                if pe_prev != L.simd:
                    conv = WidthConverter(pe_prev, L.simd, in_bits, name=f"{L.name} width converter")
                    self.stages.append(("width", f"{L.name}_dwc", conv))
                depth = L.fifo_depth or fifo_depth_for(words, prev_cycles, cycles)
                self.stages.append(("fifo", f"{L.name}_fifo", StreamFIFO(L.simd * in_bits, depth)))
            act_kind = L.in_kind
            act_bits = None if act_kind == "bipolar" else L.in_bits
            pipe = L.pipeline if pipeline is None else pipeline
            if L.type == "fc":
                comp = MVTU(L.weights, L.thresholds, pe=L.pe, simd=L.simd, weight_kind=L.weight_kind,
                            weight_bits=L.weight_bits, act_kind=act_kind, act_bits=act_bits, vectors=1,
                            pipeline=pipe, runtime=runtime, name=where)
                out_bits = comp.out_width // L.pe
            elif L.type == "conv":
                h, w, _ = L.in_shape
                comp = ConvLayer(h, w, L.weights, L.thresholds, stride=L.stride, pad=L.pad,
                                 pad_value=L.pad_value, simd=L.simd, pe=L.pe, weight_kind=L.weight_kind,
                                 weight_bits=L.weight_bits, act_kind=act_kind, act_bits=act_bits,
                                 pipeline=pipe, runtime=runtime, name=where)
                out_bits = comp.mvtu.out_width // L.pe
            else:
                h, w, c = L.in_shape
                comp = MaxPool(h, w, c, L.simd, L.kernel, L.stride,
                               kind="bipolar" if act_kind == "bipolar" else "uint", bits=L.in_bits)
                out_bits = L.in_bits
            self.stages.append((L.type, L.name, comp))
            prev = (L.pe, out_bits)
            prev_cycles = cycles
        last = cfg.layers[-1]
        self.out_elems, self.out_bits = prev
        self.out_words = math.prod(last.out_shape) // self.out_elems
        self.in_words = cfg.input_words()
        first = self.stages[0][2]
        self.in_width = Value.cast(first.i.payload).shape().width
        self.out_width = self.out_elems * self.out_bits
        self.out_signed = bool(last.out_kind == "acc" and last.out_signed)
        self.model = [(L.name, cfg.layer_cycles(L)) for L in cfg.layers]
        ports = {
            "s_axis_tdata": In(self.in_width), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(self.out_width), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
            "label": Out(range(max(2, self.out_words * self.out_elems))), "label_valid": Out(1),
        }
        self.loader = None
        if runtime:
            self.loader = WeightLoader(image_groups(self), cfg.topology_hash())
            ports.update({"wload": In(wload_signature()), "wload_done": Out(1), "wload_error": Out(ERROR_BITS)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        comps = []
        for kind, name, comp in self.stages:
            m.submodules[name] = comp
            comps.append(comp)
        for a, b in zip(comps, comps[1:]):
            wiring.connect(m, a.o, b.i)
        first, last = comps[0], comps[-1]
        hold = self._weight_loading(m, comps) if self.loader is not None else 0
        m.d.comb += [
            first.i.payload.eq(self.s_axis_tdata),
            first.i.valid.eq(self.s_axis_tvalid & ~hold) if self.loader is not None
            else first.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(first.i.ready & ~hold) if self.loader is not None
            else self.s_axis_tready.eq(first.i.ready),
            self.m_axis_tdata.eq(last.o.payload),
            self.m_axis_tvalid.eq(last.o.valid),
            last.o.ready.eq(self.m_axis_tready),
        ]
        # tlast: count output words of a frame
        count = Signal(range(max(2, self.out_words)))
        m.d.comb += self.m_axis_tlast.eq(count == self.out_words - 1)
        with m.If(self.m_axis_tvalid & self.m_axis_tready):
            m.d.sync += count.eq(Mux(self.m_axis_tlast, 0, count + 1))
        m.submodules.argmax = am = ArgMax(self.out_elems, self.out_bits, self.out_signed, self.out_words)
        m.d.comb += [
            am.valid.eq(self.m_axis_tvalid), am.ready.eq(self.m_axis_tready),
            am.payload.eq(self.m_axis_tdata),
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
            start.eq(self.s_axis_tvalid & self.s_axis_tready & (in_word == 0)),
            end.eq(self.m_axis_tvalid & self.m_axis_tready & self.m_axis_tlast),
            ld.busy.eq(in_flight != 0),
        ]
        with m.If(self.s_axis_tvalid & self.s_axis_tready):
            m.d.sync += in_word.eq(Mux(in_word == self.in_words - 1, 0, in_word + 1))
        with m.If(start & ~end):
            m.d.sync += in_flight.eq(in_flight + 1)
        with m.Elif(end & ~start):
            m.d.sync += in_flight.eq(in_flight - 1)
        return ld.active

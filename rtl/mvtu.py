"""Matrix-vector-threshold unit (MVTU): a folded matrix-vector product followed by thresholding.

The role of FINN's MVAU/MVTU: ``y = W @ x`` for a stream of input vectors,
computing one PE x SIMD tile of the weight matrix per cycle, then either the
multi-threshold activation of every row or the raw accumulator.
"""

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError, check_int
from qnnfab.folding import check_divisor
from qnnfab.kinds import ACTIVATION_KINDS, WEIGHT_KINDS, DataKind
from qnnfab.netconfig import ACCUMULATOR_STYLES, MEMORY_STYLES, PIPELINE_MAX, POPCOUNT_STYLES
from qnnfab.plan import layer_memories
from qnnfab.weight_layout import threshold_stage_tables, weight_words

from .dot_product import range_shape, tree_depth
from .dot_product_unit import SHARED_SUFFIX, DotProductUnit
from .loadable_memory import bus_size, load_bus, weight_memory
from .lanes import lanes
from .threshold import check_thresholds, prepare_thresholds, threshold_search, wrap_increment

__all__ = ["MVTU"]


class MVTU(wiring.Component):
    """Folded matrix-vector(-threshold) unit.

    Parameters
    ----------
    weights : ndarray (MH, MW) of integers
        Stored weights, row r = output channel r: "bipolar" bits (1 = +1),
        "ternary" values in {-1, 0, 1}, "int" signed ``weight_bits``-bit values.
    thresholds : ndarray (MH, N) of integers sorted ascending per row, or None
        Output = #{i : acc >= T[r, i]} (n = bit_length(N) bits; N = 1 is a
        binary activation, N = 2^n - 1 an unsigned n-bit one). None outputs
        the raw accumulator. Thresholds are in the accumulator's domain (below).
    pe, simd : int
        Rows and columns per cycle; PE divides MH, SIMD divides MW.
    weight_kind : "bipolar" | "ternary" | "int";  weight_bits : int (for "int")
    act_kind : "bipolar" | "uint" | "int";  act_bits : int (for "uint"/"int")
    vectors : int
        Vectors per frame (e.g. a convolution's output pixels); only used for
        :attr:`cycles_per_frame`: the hardware processes vectors back to back.
    pipeline : int or "max"
        An int: pipeline registers inside each PE's adder tree, clamped to
        its depth :func:`qnnfab.rtl.dot_product.tree_depth` (``self.pipeline``).
        ``"max"``: every register the datapath offers, for the highest clock:
        the tree's full depth, plus a register on the read data of the weight
        memories and the input buffer (``self.read_register``; a block RAM's
        clock-to-output, 2.45 ns on 7-series, then has a cycle of its own).
    runtime : bool
        False: the weights and thresholds are constants of the hardware.
        True: they live in RAMs without initial contents, filled through the
        ``load`` port (:attr:`memory_groups`, :meth:`memory_contents`; image
        layout: :mod:`qnnfab.weights_image`); the hardware then depends
        only on the shapes and kinds, not on the values (the threshold width
        covers the whole accumulator range).
    weight_memory : "auto" | "block" | "distributed"
        Where the PE weight memories go (:mod:`qnnfab.rtl.loadable_memory`):
        synthesis' choice, block RAM, or LUTs (a LUT ROM; LUT-RAM when ``runtime``).
    accumulator : "mux" | "reset"
        How a row's accumulation starts. "mux": the accumulator adds the dot
        product to zero instead of itself on a row's first word (a multiplexer,
        one LUT per accumulator bit). "reset": the accumulator register is
        zeroed (the flip-flops' synchronous reset) as it takes a row's last
        sum, so the adder's bits above the dot product's width need no LUT.
        Same ports, contents and timing.
    popcount : "adder-tree" | "compressor"
        Bipolar x bipolar only (other kinds ignore it): each PE's XNOR popcount
        in generic logic or as LUT6_2/CARRY4 cells
        (:class:`~qnnfab.rtl.dot_product_unit.DotProductUnit`). Same ports,
        contents and timing.
    primitives : bool
        With the compressor: cell instances (True: synthesis, Verilator, Icarus)
        or their Amaranth model (False: Amaranth's simulator).

    Accumulator domain: bipolar x bipolar accumulates the XNOR popcount
    P in [0, MW] (unsigned, as FINN; the dot product is 2P - MW); every other
    combination accumulates the signed integer dot product of the values, of
    width ``acc_width`` derived from MW and the operand ranges.

    Ports
    -----
    i : stream of ``DataKind(act_kind, act_bits).layout(simd)``
        (:mod:`qnnfab.kinds`): SIMD input elements, ``unsigned(1)`` bipolar,
        ``unsigned(k)`` uint, ``signed(k)`` int; ``payload[j]`` of word sf of
        a vector is x[sf*SIMD + j]; MW/SIMD words per vector.
    o : stream of ``lanes(out_shape, pe)``: PE output elements,
        ``payload[p]`` of word nf = row nf*PE + p; MH/PE words per vector,
        rows in order. ``out_shape`` = ``unsigned(n)`` (thresholds) or
        ``acc_shape`` (raw accumulator: unsigned popcount for bipolar x
        bipolar, else signed).
    load : (runtime only) the load bus of :mod:`qnnfab.rtl.loadable_memory`,
        one enable per entry of :attr:`memory_groups`. Write only while no
        vector is being computed.

    Timing
    ------
    The input vector is written into one half of a double buffer while the
    other half is being computed; the computation of a vector's first row
    fold follows its words as they arrive. Unstalled, one PE x SIMD step per
    cycle, so a frame takes ``vectors * (MH/PE) * (MW/SIMD) + latency`` cycles
    from the first input transfer to the last output transfer (inclusive),
    with ``latency = 3 + read_register + pipeline + n`` (n = 0 for raw
    output): input write (1), weight/buffer read (1), the read register (1
    with ``pipeline="max"``, else 0), adder-tree registers, accumulator and
    output register (1), one stage per output bit of the threshold search.
    Every register of the datapath advances together (one enable), so a
    stalled output holds every stage in place.
    A stalled output (``o.valid & ~o.ready``) freezes the computation; input
    words are still accepted while a buffer half is free.
    """

    def __init__(self, weights, thresholds=None, *, pe, simd, weight_kind="bipolar", weight_bits=None,
                 act_kind="bipolar", act_bits=None, vectors=1, pipeline=0, runtime=False, weight_memory="auto", accumulator="mux",
                 popcount="adder-tree", primitives=True, name="mvtu"):
        where = name
        if accumulator not in ACCUMULATOR_STYLES:
            raise ConfigError(where, "accumulator", f"unknown accumulator style {accumulator!r}",
                              f"use one of {ACCUMULATOR_STYLES}")
        if popcount not in POPCOUNT_STYLES:
            raise ConfigError(where, "popcount", f"unknown popcount style {popcount!r}",
                              f"use one of {POPCOUNT_STYLES}")
        if weight_memory not in MEMORY_STYLES:
            raise ConfigError(where, "weight_memory", f"unknown memory style {weight_memory!r}",
                              f"use one of {MEMORY_STYLES}")
        if weight_kind not in WEIGHT_KINDS:
            raise ConfigError(where, "weight_kind", f"unknown weight kind {weight_kind!r}",
                              f"use one of {WEIGHT_KINDS}")
        if act_kind not in ACTIVATION_KINDS:
            raise ConfigError(where, "act_kind", f"unknown activation kind {act_kind!r}",
                              f"use one of {ACTIVATION_KINDS}")
        if weight_kind == "int":
            check_int(where, "weight_bits", weight_bits, 2, "pass weight_bits=k (use weight_kind='bipolar' for 1-bit)")
        if act_kind in ("uint", "int"):
            check_int(where, "act_bits", act_bits, 2 if act_kind == "int" else 1, "pass act_bits=k")
        w = np.asarray(weights)
        if w.ndim != 2 or 0 in w.shape:
            raise ConfigError(where, "weights", f"must be a non-empty 2-D (MH, MW) array, got shape {w.shape}",
                              "pass the weight matrix with one row per output channel")
        if not np.issubdtype(w.dtype, np.integer):
            if w.dtype == np.bool_ or (np.issubdtype(w.dtype, np.floating) and np.all(w == np.round(w))):
                w = w.astype(np.int64)
            else:
                raise ConfigError(where, "weights", f"must hold integers, got dtype {w.dtype}",
                                  "quantize the weights first")
        w = w.astype(np.int64)
        mh, mw = w.shape
        wkind, akind = DataKind.of(weight_kind, weight_bits, where), DataKind.of(act_kind, act_bits, where)
        lo_s, hi_s = wkind.stored_range
        if w.min() < lo_s or w.max() > hi_s:
            raise ConfigError(where, "weights", f"values must lie in [{lo_s}, {hi_s}] for {weight_kind} weights"
                              f"{'' if weight_kind != 'int' else f' of {weight_bits} bits'}, found "
                              f"[{w.min()}, {w.max()}]",
                              "bipolar weights are stored as bits (1 = +1)" if weight_kind == "bipolar"
                              else "re-quantize the weights or widen weight_bits")
        check_divisor(where, "pe", pe, mh, "MH")
        check_divisor(where, "simd", simd, mw, "MW")
        check_int(where, "vectors", vectors, 1, "pass the number of vectors per frame (output pixels)")
        if pipeline != PIPELINE_MAX:
            check_int(where, "pipeline", pipeline, 0,
                      f'use 0 for no tree registers, N for N, "{PIPELINE_MAX}" for all')

        self.mh, self.mw, self.pe, self.simd = mh, mw, pe, simd
        self.nf, self.sf = mh // pe, mw // simd
        self.weight_kind, self.act_kind = weight_kind, act_kind
        self.weight_dkind, self.act_dkind = wkind, akind
        self.weight_bits, self.act_bits = wkind.width, akind.width
        self.vectors = vectors
        self.binary = weight_kind == "bipolar" and act_kind == "bipolar"
        t = None if thresholds is None else check_thresholds(where, thresholds, mh, pe)
        memories = layer_memories(name, mh=mh, mw=mw, pe=pe, simd=simd, weight_kind=wkind, act_kind=akind,
                                  thresholds=t, runtime=runtime)
        self.acc_range = memories.acc_range
        self.acc_shape = range_shape(*self.acc_range)
        self.acc_width = self.acc_shape.width
        self.acc_signed = self.acc_shape.signed
        depth = tree_depth(simd, self.binary)
        self.read_register = pipeline == PIPELINE_MAX
        self.pipeline = depth if self.read_register else min(pipeline, depth)

        if thresholds is None:
            self.out_bits = 0
            self.threshold_count = 0
            self.out_elem_width = self.acc_width
            self._tables = None
        else:
            clamped, n, pad = prepare_thresholds(t, *self.acc_range)
            self.out_bits = n
            self.threshold_count = t.shape[1]
            self.out_elem_width = n
            bits, is_signed = memories.threshold
            self.threshold_shape = signed(bits) if is_signed else unsigned(bits)
            self._tables = threshold_stage_tables(clamped, pe, n, pad)
        self._weight_words = weight_words(w, pe, simd, self.weight_bits)
        self.runtime = bool(runtime)
        self.weight_memory = weight_memory
        self.accumulator = accumulator
        self.popcount, self.primitives = popcount, primitives
        self.memory_groups = list(memories.groups)

        self.in_shape = akind.shape()
        self.out_shape = self.acc_shape if self._tables is None else unsigned(self.out_bits)
        self.in_width = simd * self.act_bits
        self.out_width = pe * self.out_elem_width
        self.latency = 3 + int(self.read_register) + self.pipeline + self.out_bits
        self.cycles_per_vector = self.nf * self.sf
        self.cycles_per_frame = vectors * self.cycles_per_vector + self.latency
        ports = {
            "i": In(stream.Signature(akind.layout(simd))),
            "o": Out(stream.Signature(lanes(self.out_shape, pe))),
        }
        if self.runtime:
            ports["load"] = In(load_bus(*bus_size(self.memory_groups), len(self.memory_groups)))
        super().__init__(ports)

    def memory_contents(self):
        """Logical words of every memory group: per group, PE lists of ``depth`` integers."""
        out = [self._weight_words]
        for s in range(self.out_bits):
            out.append([self._tables[p][s] for p in range(self.pe)])
        return out

    def elaborate(self, platform):
        m = Module()
        SF, NF, PE = self.sf, self.nf, self.pe
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        # ---- input double buffer: bank b holds words b*SF .. b*SF + SF-1
        m.submodules.ibuf = ibuf = Memory(shape=unsigned(self.in_width), depth=2 * SF, init=[])
        wr = ibuf.write_port()
        rd = ibuf.read_port(domain="sync")
        full = [Signal(name="full0"), Signal(name="full1")]
        wbank = Signal()
        windex = Signal(range(SF))
        wfull = Signal()
        m.d.comb += [
            wfull.eq(Mux(wbank, full[1], full[0])),
            self.i.ready.eq(~wfull),
            wr.addr.eq(Mux(wbank, SF + windex, windex)),
            wr.data.eq(self.i.payload),
            wr.en.eq(self.i.valid & ~wfull),
        ]
        wlast = Signal()
        m.d.comb += wlast.eq(self.i.valid & ~wfull & (windex == SF - 1))
        with m.If(self.i.valid & ~wfull):
            m.d.sync += windex.eq(wrap_increment(windex, SF))
            with m.If(windex == SF - 1):
                m.d.sync += wbank.eq(~wbank)

        # ---- reader: nf outer, sf inner; fold 0 may follow the writer word by word
        rbank = Signal()
        sf = Signal(range(SF))
        nf = Signal(range(NF))
        widx = Signal(range(NF * SF))
        rfull = Signal()
        avail = Signal()
        go = Signal()
        rlast = Signal()
        m.d.comb += [
            rfull.eq(Mux(rbank, full[1], full[0])),
            avail.eq(rfull | ((wbank == rbank) & (windex > sf))),
            go.eq(avail & advance),
            rlast.eq(go & (widx == NF * SF - 1)),
            rd.addr.eq(Mux(rbank, SF + sf, sf)),
            rd.en.eq(advance),
        ]
        with m.If(go):
            m.d.sync += [sf.eq(wrap_increment(sf, SF)), widx.eq(wrap_increment(widx, NF * SF))]
            with m.If(sf == SF - 1):
                m.d.sync += nf.eq(wrap_increment(nf, NF))
            with m.If(rlast):
                m.d.sync += rbank.eq(~rbank)
        for b in range(2):
            set_b = wlast & (wbank == b)
            clr_b = rlast & (rbank == b)
            with m.If(set_b):
                m.d.sync += full[b].eq(1)
            with m.Elif(clr_b):
                m.d.sync += full[b].eq(0)

        # ---- stage 1: memory data; control travels alongside
        v1, first1, last1 = Signal(), Signal(), Signal()
        nf1 = Signal(range(NF))
        with m.If(advance):
            m.d.sync += [v1.eq(go), first1.eq(sf == 0), last1.eq(sf == SF - 1), nf1.eq(nf)]

        def read_register(value, name):
            reg = Signal.like(value, name=name)
            with m.If(advance):
                m.d.sync += reg.eq(value)
            return reg

        xdata = read_register(rd.data, "xdata_q") if self.read_register else rd.data
        dots = []
        load = self.load if self.runtime else None
        for p in range(PE):
            wdata = weight_memory(m, f"wmem{p}", shape=unsigned(self.simd * self.weight_bits), depth=NF * SF,
                                  addr=widx, enable=advance, init=None if load is not None else self._weight_words[p],
                                  load=load, group=self.memory_groups[0], index=0, lane=p, port_name="wrd",
                                  style=self.weight_memory, read_register=self.read_register,
                                  register_name=f"wdata{p}_q")
            unit = DotProductUnit(simd=self.simd, w_kind=self.weight_dkind, x_kind=self.act_dkind,
                                  stages=self.pipeline, popcount=self.popcount, primitives=self.primitives)
            assert unit.latency == self.pipeline   # the valid/first/last pipeline below is sized by it
            m.submodules[f"pe{p}{SHARED_SUFFIX}"] = unit
            m.d.comb += [unit.w.eq(wdata), unit.x.eq(xdata), unit.enable.eq(advance)]
            dots.append(unit.dot)
        valid, first, last, fold = v1, first1, last1, nf1
        for s in range(int(self.read_register) + self.pipeline):
            nv, nfi, nla, nfo = Signal(name=f"v_p{s}"), Signal(name=f"first_p{s}"), Signal(name=f"last_p{s}"), \
                Signal(range(NF), name=f"nf_p{s}")
            with m.If(advance):
                m.d.sync += [nv.eq(valid), nfi.eq(first), nla.eq(last), nfo.eq(fold)]
            valid, first, last, fold = nv, nfi, nla, nfo

        # ---- accumulate
        acc_next = []
        for p in range(PE):
            acc = Signal(self.acc_shape, name=f"acc{p}")
            nxt = Signal(self.acc_shape, name=f"acc_next{p}")
            if self.accumulator == "mux":
                m.d.comb += nxt.eq(Mux(first, 0, acc) + dots[p])
                with m.If(advance & valid):
                    m.d.sync += acc.eq(nxt)
            else:   # zero after a row's last word (and after reset): the next row starts from 0
                m.d.comb += nxt.eq(acc + dots[p])
                # the zeroing as its own condition, not a Mux under the enable: a reset that
                # overrides the enable is the FDRE's own (one shared signal, no LUT per bit)
                with m.If(advance & valid & last):
                    m.d.sync += acc.eq(0)
                with m.Elif(advance & valid):
                    m.d.sync += acc.eq(nxt)
            acc_next.append(nxt)
        done = Signal()
        m.d.comb += done.eq(valid & last)

        # ---- output: raw accumulator or threshold search
        if self._tables is None:
            outs, ovalid = acc_next, done
        else:
            outs, ovalid = threshold_search(m, acc_next, fold, done, advance, self._tables,
                                            self.threshold_shape, NF, load=load,
                                            groups=self.memory_groups[1:], first_index=1)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(ovalid)
            with m.If(ovalid):
                # one concatenation, not per-element assignments: the same logic, but Yosys/ABC
                # maps the latter to more LUTs (lfc_w1a1 fc_out: 1126 instead of 1100)
                m.d.sync += Value.cast(self.o.payload).eq(Cat(*[o.as_unsigned() for o in outs]))
        return m

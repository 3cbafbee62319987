"""Multi-threshold unit: PE-parallel activation = number of sorted thresholds T with acc >= T.

Semantics (QONNX MultiThreshold, FINN compiler): for channel c with sorted
thresholds T[c, 0] <= ... <= T[c, N-1] the output is ``#{i : acc >= T[c, i]}``
in [0, N], an unsigned n-bit value with n = bit_length(N) (N = 1: a binary
activation, bit 1 = +1; N = 2^n - 1: an unsigned n-bit activation). Ties count
(``>=``), unlike BNN-PYNQ's old strict ``>``.

Implementation: a binary search, one pipeline stage per output bit (MSB
first), each stage with one comparator per PE and its own on-chip memory of
the thresholds it can need (layout: :func:`qnnfab.weight_layout.threshold_stage_tables`).
Rows with fewer than 2^n - 1 thresholds are padded with a value no
accumulator reaches. Thresholds are first clamped into [lo, hi + 1] of the
accumulator range (which changes no output), so the threshold width is derived
from the accumulator range, not from the given values.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError, check_int
from qnnfab.folding import check_divisor
from qnnfab.kinds import DataKind
from qnnfab.plan import threshold_memories

from .loadable_memory import bus_size, load_bus, weight_memory
from .lanes import lanes
from qnnfab.weight_layout import threshold_stage_tables

__all__ = ["Threshold", "check_thresholds", "prepare_thresholds", "threshold_search", "wrap_increment",
           "threshold_load_port", "connect_threshold_load"]


def check_thresholds(where, thresholds, rows, pe):
    """Validate a (rows, N) integer threshold matrix sorted ascending per row; return int64."""
    t = np.asarray(thresholds)
    if t.ndim != 2 or t.shape[0] != rows or t.shape[1] < 1:
        raise ConfigError(where, "thresholds", f"must have shape ({rows}, N) with N >= 1, got {t.shape}",
                          "pass one sorted row of thresholds per output channel (thresholds[:, None] for one each)")
    if not np.issubdtype(t.dtype, np.integer):
        if np.issubdtype(t.dtype, np.floating) and np.all(np.isfinite(t)) and np.all(t == np.round(t)):
            t = t.astype(np.int64)
        else:
            raise ConfigError(where, "thresholds", f"must be integers (the accumulator is an integer), got {t.dtype}",
                              "round real thresholds up with np.ceil for acc >= T")
    t = t.astype(np.int64)
    if t.shape[1] > 1 and np.any(np.diff(t, axis=1) < 0):
        bad = int(np.nonzero(np.any(np.diff(t, axis=1) < 0, axis=1))[0][0])
        raise ConfigError(where, "thresholds", f"row {bad} is not sorted ascending", "np.sort(thresholds, axis=1)")
    return t


def prepare_thresholds(t, lo, hi):
    """Clamp thresholds to [lo, hi + 1]; return (clamped, n bits, pad value).
    Their memory width is :func:`qnnfab.plan.threshold_memory`'s."""
    return np.clip(t, lo, hi + 1), int(t.shape[1]).bit_length(), hi + 1


def threshold_search(m, accs, fold, valid, enable, tables, t_shape, folds, name="th", *, load=None, groups=None,
                     first_index=0):
    """Binary-search thresholding of ``accs`` (one per PE) in ``len(tables[0])`` pipeline stages.

    ``fold`` selects the threshold rows (0 .. folds-1), ``valid`` travels with
    the data; every register and memory read port advances when ``enable``.
    Returns ``(counts, valid_out)``: comb n-bit counts (one per PE) and valid,
    ``n`` register stages after the inputs. With a ``load`` bus the stage
    memories are RAMs (``groups[s]``, enable bit ``first_index + s``) and
    ``tables`` only gives their count: see :mod:`qnnfab.rtl.loadable_memory`.
    """
    pe, n = len(accs), len(tables[0])
    cur_acc, cur_prefix, cur_fold, cur_valid = list(accs), [None] * pe, fold, valid
    for s in range(n):
        r_fold = Signal(fold.shape(), name=f"{name}_fold{s}")
        r_valid = Signal(name=f"{name}_valid{s}")
        r_acc = [Signal(a.shape(), name=f"{name}_acc{s}_{p}") for p, a in enumerate(accs)]
        r_prefix = [Signal(s, name=f"{name}_q{s}_{p}") for p in range(pe)]
        with m.If(enable):
            m.d.sync += [r_fold.eq(cur_fold), r_valid.eq(cur_valid)]
            m.d.sync += [r.eq(a) for r, a in zip(r_acc, cur_acc)]
            if s:
                m.d.sync += [r.eq(q) for r, q in zip(r_prefix, cur_prefix)]
        nxt = []
        for p in range(pe):
            addr = Cat(cur_prefix[p], cur_fold) if s else cur_fold
            tdata = weight_memory(m, f"{name}_mem{s}_{p}", shape=t_shape, depth=folds << s, addr=addr,
                                  enable=enable, init=None if load is not None else tables[p][s], load=load,
                                  group=groups[s] if load is not None else None, index=first_index + s, lane=p)
            bit = Signal(name=f"{name}_ge{s}_{p}")
            m.d.comb += bit.eq(r_acc[p] >= tdata)
            nxt.append(Cat(bit, r_prefix[p]) if s else bit)
        cur_acc, cur_prefix, cur_fold, cur_valid = r_acc, nxt, r_fold, r_valid
    return cur_prefix, cur_valid


class Threshold(wiring.Component):
    """Streaming PE-parallel multi-threshold unit.

    Parameters
    ----------
    thresholds : ndarray (C, N) of integers, sorted ascending per row
        Row c holds the thresholds of channel c; N >= 1.
    pe : int
        Channels processed per word; must divide C.
    in_width : int
        Accumulator width in bits.
    in_signed : bool
        Accumulators are two's complement (True) or unsigned (False).
    runtime : bool
        The stage memories are RAMs written through the ``load`` port
        (:attr:`memory_groups`, :func:`qnnfab.plan.threshold_memories`; the
        image's contents: :meth:`qnnfab.plan.Plan.memory_contents`);
        ``thresholds`` then gives only their shape.

    Ports
    -----
    i : stream of ``lanes(signed(in_width) or unsigned(in_width), pe)``
        (:mod:`qnnfab.rtl.lanes`): PE accumulators; ``payload[p]`` of word j
        of a pixel is channel (j % (C/PE)) * PE + p: words cycle through the
        C/PE channel folds.
    o : stream of ``lanes(unsigned(n), pe)``: PE counts in [0, N],
        n = bit_length(N); same channel order.
    load : (runtime only) the load bus of :mod:`qnnfab.rtl.loadable_memory`,
        one enable per stage memory group. Write only while no word is in flight.

    Timing
    ------
    Latency ``n + 1`` cycles from an input transfer to ``o.valid``; one word
    per cycle. ``i.ready = ~o.valid | o.ready``.
    """

    def __init__(self, thresholds, *, pe, in_width, in_signed=True, runtime=False, name="threshold"):
        where = name
        check_int(where, "in_width", in_width, 1, "pass the accumulator width in bits")
        t = np.asarray(thresholds)
        if t.ndim != 2:
            raise ConfigError(where, "thresholds", f"must be 2-D (C, N), got shape {t.shape}",
                              "use thresholds[:, None] for one threshold per channel")
        c = t.shape[0]
        check_divisor(where, "pe", pe, c, "C")
        t = check_thresholds(where, t, c, pe)
        lo, hi = DataKind.of("int" if in_signed else "uint", in_width, where).stored_range
        clamped, n, pad = prepare_thresholds(t, lo, hi)
        memories = threshold_memories(name, t, pe=pe, lo=lo, hi=hi, runtime=runtime)
        bits, is_signed = memories.threshold
        t_shape = signed(bits) if is_signed else unsigned(bits)
        self.runtime = bool(runtime)
        self.memory_groups = list(memories.groups)
        self.channels, self.pe, self.folds = c, pe, c // pe
        self.in_width, self.in_signed = in_width, in_signed
        self.out_bits = n
        self.count = t.shape[1]
        self.threshold_shape = t_shape
        self.latency = n + 1
        self._tables = threshold_stage_tables(clamped, pe, n, pad)
        ports = {
            "i": In(stream.Signature(lanes(signed(in_width) if in_signed else unsigned(in_width), pe))),
            "o": Out(stream.Signature(lanes(unsigned(n), pe))),
        }
        if self.runtime:
            ports["load"] = In(load_bus(*bus_size(self.memory_groups), len(self.memory_groups)))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]
        fold = Signal(range(self.folds))
        with m.If(self.i.valid & advance):
            m.d.sync += fold.eq(wrap_increment(fold, self.folds))
        accs = [self.i.payload[p] for p in range(self.pe)]
        counts, valid = threshold_search(m, accs, fold, self.i.valid, advance, self._tables,
                                         self.threshold_shape, self.folds, load=self.load if self.runtime else None,
                                         groups=self.memory_groups)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(valid)
            m.d.sync += [self.o.payload[p].eq(c) for p, c in enumerate(counts)]
        return m


def threshold_load_port(threshold):
    """The ``load`` port member of a component wrapping ``threshold`` (a
    :class:`~qnnfab.rtl.threshold.Threshold`): its own when runtime, else none."""
    return {"load": threshold.signature.members["load"]} if threshold.runtime else {}


def connect_threshold_load(m, outer, threshold):
    """Connect ``outer``'s ``load`` port to ``threshold``'s (runtime only)."""
    if threshold.runtime:
        wiring.connect(m, wiring.flipped(outer.load), threshold.load)


def wrap_increment(counter, modulus):
    """``counter + 1`` wrapping to 0 after ``modulus - 1``."""
    if modulus == 1:
        return Const(0, 0)
    return Mux(counter == modulus - 1, 0, counter + 1)

"""Resources of the MVTU and the threshold unit (Yosys synth_xilinx -family xc7).

Prints:
* the XNOR-popcount/accumulate datapath alone (weights as an input port, no
  memories) at PE=SIMD=32: LUTs per binary PE x SIMD lane (target <= 1.5),
  with the accumulator cleared by a multiplexer (``accumulator = "mux"``,
  the default) and zeroed by the flip-flops' reset (``"reset"``), and what
  the popcount alone takes of it; then the same with the compressor-tree
  popcount (``popcount = "compressor"``: LUT6_2/CARRY4 cells,
  :mod:`qnnfab.rtl.compressor_popcount`) beside today's tree;
* full MVTUs (weights in on-chip memory) for a sweep of sizes: LUT, FF,
  BRAM36, LUTRAM, DSP (bipolar x bipolar must use 0 DSP), both accumulator
  styles, each with the MVTU's ``popcount`` option at "adder-tree" (default)
  and "compressor";
* the threshold unit at N=4-bit output (15 thresholds), 16-bit input, C=64,
  PE=4 (thresholds in on-chip memory).

``python bench/bench_mvtu.py [--quick]``: --quick skips the 1024 x 1024 MVTU.
Results are cached by Verilog hash in $QNNFAB_CACHE/yosys.
"""

import sys
import time

import numpy as np
from amaranth.hdl import Module, Signal, Mux, Cat
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qnnfab.boards.estimate.yosys import synth_xc7
from qnnfab.kinds import DataKind
from qnnfab.rtl.compressor_popcount import compressor_popcount
from qnnfab.rtl.dot_product import dot_product, range_shape
from qnnfab.rtl.mvtu import MVTU
from qnnfab.rtl.threshold import Threshold


BIPOLAR = DataKind("bipolar")


class Datapath(wiring.Component):
    """PE x SIMD bipolar datapath of the MVTU without weight storage: registered
    weight/input words in, XNOR-popcount trees, accumulators (as the MVTU's
    ``accumulator`` style: cleared by a multiplexer on a row's first word, or
    zeroed after its last) and their registered sums out; ``accumulator=None``:
    the popcounts alone, registered. ``popcount``: "tree" (today's, :func:`dot_product`) or
    "compressor" (:func:`compressor_popcount`)."""

    def __init__(self, pe, simd, mw, pipeline, accumulator="mux", popcount="tree"):
        self.pe, self.simd, self.mw, self.pipeline, self.accumulator = pe, simd, mw, pipeline, accumulator
        self.popcount = popcount
        self.acc_shape = range_shape(0, mw)
        super().__init__({"w": In(pe * simd), "x": In(simd), "first": In(1), "valid": In(1),
                          "acc": Out(pe * self.acc_shape.width)})

    def elaborate(self, platform):
        m = Module()
        w, x, first, valid = Signal(self.pe * self.simd), Signal(self.simd), Signal(), Signal()
        # a row of one word per cycle: first and last the same flag (only the structure is measured)
        m.d.sync += [w.eq(self.w), x.eq(self.x), first.eq(self.first), valid.eq(self.valid)]
        en = Signal()
        m.d.comb += en.eq(1)
        accs = []
        for p in range(self.pe):
            wp = w[p * self.simd:(p + 1) * self.simd]
            if self.popcount == "compressor":
                v, lo, hi, lat = compressor_popcount(m, wp, x, self.simd, self.pipeline, en, name=f"pe{p}")
            else:
                v, lo, hi, lat = dot_product(m, wp, x, simd=self.simd, w_kind=BIPOLAR, x_kind=BIPOLAR,
                                             stages=self.pipeline, enable=en, name=f"pe{p}")
            f, vv = first, valid
            for s in range(lat):
                f2, v2 = Signal(), Signal()
                m.d.sync += [f2.eq(f), v2.eq(vv)]
                f, vv = f2, v2
            acc = Signal(self.acc_shape, name=f"acc{p}")
            nxt = Signal(self.acc_shape, name=f"acc_next{p}")
            out = Signal(self.acc_shape, name=f"out{p}")
            if self.accumulator is None:
                m.d.comb += nxt.eq(v)
            elif self.accumulator == "mux":
                m.d.comb += nxt.eq(Mux(f, 0, acc) + v)
                with m.If(vv):
                    m.d.sync += acc.eq(nxt)
            else:
                m.d.comb += nxt.eq(acc + v)
                with m.If(vv & f):
                    m.d.sync += acc.eq(0)
                with m.Elif(vv):
                    m.d.sync += acc.eq(nxt)
            m.d.sync += out.eq(nxt)
            accs.append(out)
        m.d.comb += self.acc.eq(Cat(*accs))
        return m


def _mvtu(mh, mw, pe, simd, thr, pipeline=1, seed=0, accumulator="mux", popcount="adder-tree"):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (mh, mw))
    t = None
    if thr:
        t = np.sort(rng.integers(0, mw + 1, (mh, thr)), axis=1)
    return MVTU(w, t, pe=pe, simd=simd, weight_kind="bipolar", act_kind="bipolar", pipeline=pipeline,
                accumulator=accumulator, popcount=popcount)


def _timed(label, comp, top):
    t0 = time.monotonic()
    r = synth_xc7(comp, top=top)
    return r, time.monotonic() - t0


def main(argv):
    quick = "--quick" in argv
    print("== XNOR-popcount + accumulate datapath, weights as a port (no memories)")
    print("   (acc: the accumulator style; \"none\": the popcounts alone. logic ns: Yosys sta, cells only)")
    print(f"{'PE':>4} {'SIMD':>4} {'MW':>5} {'pipe':>4} {'acc':>5} {'LUT':>6} {'LUT/lane':>8} {'FF':>6} {'CARRY4':>6} "
          f"{'DSP':>4} {'logic ns':>8}")
    for pe, simd, mw, pipe in [(1, 32, 1024, 1), (32, 32, 1024, 1), (32, 32, 1024, 2), (32, 32, 64, 2)]:
        for acc in ("mux", "reset", None):
            r, dt = _timed("dp", Datapath(pe, simd, mw, pipe, acc), "mvtu_datapath")
            print(f"{pe:>4} {simd:>4} {mw:>5} {pipe:>4} {acc or 'none':>5} {r.lut:>6} {r.lut / (pe * simd):>8.2f} "
                  f"{r.ff:>6} {r.carry4:>6} {r.dsp:>4} {r.logic_ns:>8.2f}   ({dt:.1f} s)", flush=True)

    print("== the same datapath, today's popcount tree beside the compressor tree (LUT6_2 + CARRY4)")
    print(f"{'PE':>4} {'SIMD':>4} {'MW':>5} {'pipe':>4} {'acc':>5} {'popcount':>10} {'LUT':>6} {'LUT/lane':>8} "
          f"{'FF':>6} {'CARRY4':>6} {'logic ns':>8}")
    for pe, simd, mw, pipe in [(32, 32, 1024, 1), (32, 32, 1024, 2)]:
        for acc in ("mux", "reset", None):
            for popcount in ("tree", "compressor"):
                r, dt = _timed("dp", Datapath(pe, simd, mw, pipe, acc, popcount), "mvtu_datapath")
                print(f"{pe:>4} {simd:>4} {mw:>5} {pipe:>4} {acc or 'none':>5} {popcount:>10} {r.lut:>6} "
                      f"{r.lut / (pe * simd):>8.2f} {r.ff:>6} {r.carry4:>6} {r.logic_ns:>8.2f}   ({dt:.1f} s)",
                      flush=True)

    print("== full MVTU, bipolar x bipolar, weights in on-chip memory, pipeline 1; the MVTU's popcount option")
    print("   (adder-tree: today's default; compressor: popcount = \"compressor\", LUT6_2/CARRY4 cells)")
    print(f"{'MH':>5} {'MW':>5} {'PE':>3} {'SIMD':>4} {'thr':>3} {'acc':>5} {'popcount':>10} {'LUT':>6} {'LUT/lane':>8} "
          f"{'FF':>6} {'BRAM36':>6} {'LUTRAM':>6} {'DSP':>4} {'logic ns':>8}")
    cfgs = [(64, 64, 8, 8, 1), (256, 256, 16, 16, 1), (256, 256, 32, 32, 1)]
    if not quick:
        cfgs.append((1024, 1024, 32, 32, 1))
    for mh, mw, pe, simd, thr in cfgs:
        for acc in ("mux", "reset"):
            for popcount in ("adder-tree", "compressor"):
                r, dt = _timed("mvtu", _mvtu(mh, mw, pe, simd, thr, accumulator=acc, popcount=popcount), "mvtu")
                print(f"{mh:>5} {mw:>5} {pe:>3} {simd:>4} {thr:>3} {acc:>5} {popcount:>10} {r.lut:>6} "
                      f"{r.lut / (pe * simd):>8.2f} {r.ff:>6} {r.bram36:>6} {r.lutram:>6} {r.dsp:>4} "
                      f"{r.logic_ns:>8.2f}   ({dt:.1f} s)", flush=True)

    print("== threshold unit: N=15 thresholds (4-bit out), 16-bit signed input, C=64, PE=4")
    rng = np.random.default_rng(1)
    t = np.sort(rng.integers(-30000, 30000, (64, 15)), axis=1)
    th = Threshold(t, pe=4, in_width=16)
    r, dt = _timed("th", th, "threshold")
    print(f"LUT {r.lut}  FF {r.ff}  LUTRAM {r.lutram}  BRAM36 {r.bram36}  DSP {r.dsp}  CARRY4 {r.carry4}"
          f"  latency {th.latency}   ({dt:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

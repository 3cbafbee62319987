"""Resources of the XNOR-popcount unit: Yosys synth_xilinx -family xc7 LUT/FF counts.

Prints one row per (SIMD, pipeline) with LUTs, LUTs per binary lane, FFs and
CARRY4s. Then where the LUTs go, measured on the same Yosys:

* first-level counters over n lanes (``sum`` of n one-bit terms, Yosys' own
  adder mapping), once with plain bits, once with constant weights (the XNOR
  an inversion) and once with runtime weights (each lane is two LUT inputs:
  a LUT6 sees at most three lanes);
* the unit's popcount with constant weights beside runtime weights.

Last, the compressor-tree unit (:class:`qnnfab.rtl.compressor_popcount.CompressorPopcount`,
LUT6_2/CARRY4 cells; Yosys counts a LUT6_2 as one LUT) beside today's unit for the
same SIMD and pipeline: LUT, LUT per lane, FF, CARRY4 and the logic-delay bound
(Yosys ``sta``, cell delays only; the LUT6_2's assumed delays are in
:data:`qnnfab.boards.estimate.yosys.STA_LUT6_2`).

``--compressor``: only that comparison. Results are cached by Verilog hash in
$QNNFAB_CACHE/yosys.
"""

import sys
import time

import numpy as np
from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qnnfab.boards.estimate.yosys import synth_xc7
from qnnfab.rtl.compressor_popcount import CompressorPopcount
from qnnfab.rtl.dot_product import xnor_popcount
from qnnfab.rtl.xnor_popcount import XnorPopcount, popcount_width

CONFIGS = [(1, 0), (7, 1), (32, 2), (64, 0), (64, 2), (256, 3)]
# (SIMD, pipeline) of the compressor-tree comparison
COMPRESSOR_CONFIGS = [(32, 0), (32, 1), (32, 2), (64, 2), (256, 0), (256, 3)]


class Counter(wiring.Component):
    """Registered count of ``n`` one-bit terms: ``x`` (plain), ``~x`` on odd lanes
    (constant weights) or ``~(w ^ x)`` (runtime weights); ``chain``: the
    unit's LUT6/carry-chain popcount instead of Yosys' ``sum``."""

    def __init__(self, n, terms, chain=False, pipeline=0):
        self.n, self.terms, self.chain, self.pipeline = n, terms, chain, pipeline
        super().__init__({"w": In(n), "x": In(n), "o": Out(popcount_width(n))})

    def elaborate(self, platform):
        m = Module()
        w, x = Signal(self.n), Signal(self.n)
        m.d.sync += [w.eq(self.w), x.eq(self.x)]
        if self.terms == "const":
            bits = np.random.default_rng(0).integers(0, 2, self.n)
            w = Const(int("".join(str(b) for b in bits[::-1]), 2), self.n)
        if self.chain:
            en = Signal()
            m.d.comb += en.eq(1)
            value, *_ = xnor_popcount(m, w, x, self.n, self.pipeline, en, name="pc")
        elif self.terms == "plain":
            value = sum((x[k] for k in range(1, self.n)), x[0] + 0)
        else:
            value = sum((~(w[k] ^ x[k]) for k in range(1, self.n)), ~(w[0] ^ x[0]) + 0)
        o = Signal(popcount_width(self.n))
        m.d.sync += o.eq(value)
        m.d.comb += self.o.eq(o)
        return m


def main():
    if "--compressor" in sys.argv[1:]:
        compare_compressor()
        return 0
    print(f"{'SIMD':>5} {'pipe':>4} {'LUT':>6} {'LUT/lane':>9} {'FF':>5} {'CARRY4':>6} {'DSP':>4}")
    for simd, pipe in CONFIGS:
        t0 = time.monotonic()
        r = synth_xc7(XnorPopcount(simd, pipe), top="xnor_popcount")
        print(f"{simd:>5} {pipe:>4} {r.lut:>6} {r.lut / simd:>9.2f} {r.ff:>5} {r.carry4:>6} "
              f"{r.dsp:>4}   ({time.monotonic() - t0:.1f} s)", flush=True)
    print("== first-level counters (Yosys' sum of n terms): LUT")
    print(f"{'lanes':>5} {'plain':>6} {'const w':>8} {'runtime w':>10}")
    for n in (3, 5, 6):
        luts = [synth_xc7(Counter(n, t), top="counter", timing=False).lut for t in ("plain", "const", "xnor")]
        print(f"{n:>5} {luts[0]:>6} {luts[1]:>8} {luts[2]:>10}", flush=True)
    print("== the unit's popcount, constant weights (XNOR = inversion) beside runtime weights: LUT (LUT/lane)")
    for simd, pipe in ((32, 2), (256, 3)):
        const = synth_xc7(Counter(simd, "const", True, pipe), top="counter", timing=False).lut
        runtime = synth_xc7(Counter(simd, "xnor", True, pipe), top="counter", timing=False).lut
        print(f"SIMD {simd:>3} pipe {pipe}: constant {const} ({const / simd:.2f}), runtime {runtime} "
              f"({runtime / simd:.2f})", flush=True)
    compare_compressor()
    return 0


def compare_compressor():
    print("== compressor-tree unit (LUT6_2 + CARRY4 cells) beside today's unit, same SIMD and pipeline")
    print(f"{'SIMD':>5} {'pipe':>4} {'unit':>10} {'LUT':>5} {'LUT/lane':>9} {'FF':>5} {'CARRY4':>6} {'logic ps':>8}")
    for simd, pipe in COMPRESSOR_CONFIGS:
        for label, dut in (("today", XnorPopcount(simd, pipe)), ("compressor", CompressorPopcount(simd, pipe))):
            r = synth_xc7(dut, top="xnor_popcount")
            print(f"{simd:>5} {pipe:>4} {label:>10} {r.lut:>5} {r.lut / simd:>9.2f} {r.ff:>5} {r.carry4:>6} "
                  f"{r.logic_ps if r.logic_ps is not None else '-':>8}", flush=True)
    print("compressor with lane chains of 6 LUTs (default 4): fewer weight-1 bits, a longer first level")
    for simd, pipe in ((256, 0), (256, 3)):
        r = synth_xc7(CompressorPopcount(simd, pipe, lane_chain=6), top="xnor_popcount")
        print(f"{simd:>5} {pipe:>4} {'chain 6':>10} {r.lut:>5} {r.lut / simd:>9.2f} {r.ff:>5} {r.carry4:>6} "
              f"{r.logic_ps if r.logic_ps is not None else '-':>8}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Systolic MACC array figures: Yosys xc7 resources (LUT/FF/DSP) and cycles.

Run: ``.venv/bin/python bench/bench_systolic.py [--sizes 4,8,12] [--no-synth]``

Resources: ``synth_xilinx -family xc7`` (qnnfab.boards.estimate.yosys.synth_xc7) of an
R x R array with WL = 16 for A, B and C (formats (1, 15)), k_max = 1024
(36-bit accumulators), stochastic rounding. Cycles come from the stated timing
contract (qnnfab.golden.systolic_timing), which the cocotb regression
``qnnfab sim systolic`` checks cycle by cycle against the RTL.
"""

import argparse
import sys
import time

from qnnfab.boards.estimate.yosys import synth_xc7
from qnnfab.golden.systolic_timing import tile_cycles, utilisation
from qnnfab.rtl.systolic import SystolicArray

XC7Z020_DSP = 220


def yosys_safe_verilog(component, top="top"):
    """Verilog of ``component``; ``synth_xc7`` renames the array-element wires
    that crash ``synth_xilinx`` (YosysHQ/yosys#4349) itself."""
    from amaranth.back import verilog
    return verilog.convert(component, name=top, emit_src=False)  # synth_xc7 renames them


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4,8,12")
    ap.add_argument("--no-synth", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print("systolic array, WL=16 (A, B, C formats (1, 15)), k_max=1024, stochastic rounding")
    print(f"{'R x C':>7} {'acc':>4} {'LUT':>7} {'FF':>7} {'DSP':>4} {'CARRY4':>6} {'synth s':>7} "
          f"{'tile K=64':>9} {'util K=8max':>11} {'util K=64':>9}")
    for n in sizes:
        dut = SystolicArray(n, n, (1, 15), (1, 15), (1, 15), k_max=1024, mode="stochastic")
        k8 = 8 * n
        u8 = utilisation([k8] * 16, n, n)
        u64 = utilisation([max(64, n + 1)] * 16, n, n)
        tc = tile_cycles(64, n, n)
        if args.no_synth:
            res, dt = None, 0.0
        else:
            t0 = time.monotonic()
            res = synth_xc7(yosys_safe_verilog(dut), top="top")
            dt = time.monotonic() - t0
        cells = (f"{res.lut:>7} {res.ff:>7} {res.dsp:>4} {res.carry4:>6}" if res else f"{'-':>7} {'-':>7} {'-':>4} {'-':>6}")
        print(f"{n:>3} x {n:<3} {dut.acc_width:>4} {cells} {dt:>7.1f} {tc:>9} {u8:>11.3f} {u64:>9.3f}", flush=True)
        if res and res.dsp != n * n:
            print(f"   note: {res.dsp} DSP48E1 for {n * n} PEs", flush=True)
    print(f"xc7z020 has {XC7Z020_DSP} DSP48E1: a 12 x 12 array needs 144 at one per PE.")
    print("cycles: one isolated tile = K + R + C - 2 + 4 (input register, capture, rounding register, "
          "first-row offset); util = sum K / cycles for 16 tiles back to back")
    return 0


if __name__ == "__main__":
    sys.exit(main())

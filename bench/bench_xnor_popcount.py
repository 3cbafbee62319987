"""Resources of the XNOR-popcount unit: Yosys synth_xilinx -family xc7 LUT/FF counts.

Prints one row per (SIMD, pipeline) with LUTs, LUTs per binary lane, FFs and
CARRY4s. Results are cached by Verilog hash in $QNNFAB_CACHE/yosys.
"""

import sys
import time

from qnnfab.boards.estimate.yosys import synth_xc7
from qnnfab.rtl.xnor_popcount import XnorPopcount

CONFIGS = [(1, 0), (7, 1), (32, 2), (64, 0), (64, 2), (256, 3)]


def main():
    print(f"{'SIMD':>5} {'pipe':>4} {'LUT':>6} {'LUT/lane':>9} {'FF':>5} {'CARRY4':>6} {'DSP':>4}")
    for simd, pipe in CONFIGS:
        t0 = time.monotonic()
        r = synth_xc7(XnorPopcount(simd, pipe), top="xnor_popcount")
        print(f"{simd:>5} {pipe:>4} {r.lut:>6} {r.lut / simd:>9.2f} {r.ff:>5} {r.carry4:>6} "
              f"{r.dsp:>4}   ({time.monotonic() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

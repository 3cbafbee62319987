"""``qnnfab boards``: the supported boards and their device capacities."""

import argparse

from qnnfab.boards.targets import BOARDS


def run(args):
    print(f"{'board':<10} {'part':<18} {'LUT':>7} {'FF':>8} {'BRAM36':>7} {'DSP':>4}  clock")
    for name, plat in BOARDS.items():
        d = plat.capacity
        clk = plat().default_clk_frequency / 1e6
        print(f"{name:<10} {d.part:<18} {d.lut:>7,} {d.ff:>8,} {d.bram36:>7} {d.dsp:>4}  {clk:g} MHz")
    return 0


def add_parser(sub):
    b = sub.add_parser("boards", help="list the supported boards",
                       description="List the supported boards with their device capacities.",
                       epilog="example:\n  qnnfab boards", formatter_class=argparse.RawDescriptionHelpFormatter)
    b.set_defaults(func=run)

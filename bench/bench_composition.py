"""A design's resources composed from its stages (``qnnfab report``) against one Yosys run of the whole.

``qnnfab report`` and the measured folding search (``qnnfab fold --measured``)
sum per-stage Yosys results; this bench synthesizes the config's whole
flattened dataflow once (``synth_xc7`` of :class:`~qnnfab.rtl.dataflow.Dataflow`,
without the timing pass, cached by its Verilog like every Yosys run) and prints
both with the composition's error: the issue asks for LUT (incl. LUT-RAM)
within 5% and BRAM36 exact. The whole design also has the arg-max label unit,
which no stage has.

    nice .venv/bin/python bench/bench_composition.py configs/lfc_w1a1_fast_measured.toml configs/cnv_w1a1_fast.toml

A big design's whole Yosys run is long the first time (lfc_w1a1_fast_measured 26 min,
cnv_w1a1_fast 22 min at low priority under load); after that, the Amaranth elaboration
of the stages and the whole design (minutes) is what remains.
"""

import argparse
import sys
import time

from qnnfab import netconfig
from qnnfab.boards.estimate.report import network_report
from qnnfab.boards.estimate.yosys import synth_xc7
from qnnfab.rtl.dataflow import Dataflow


def pct(a, b):
    return "n/a" if b == 0 else f"{100 * (a / b - 1):+.2f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="+", help="network configs (TOML)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs of the stages")
    args = ap.parse_args()
    for path in args.configs:
        cfg = netconfig.load(path)
        t0 = time.monotonic()
        t = network_report(cfg, jobs=args.jobs, progress=None).total
        t1 = time.monotonic()
        w = synth_xc7(Dataflow(cfg), top="dataflow", timing=False)
        t2 = time.monotonic()
        print(f"{path}: composed from the stages ({t1 - t0:,.0f} s) vs the whole flattened dataflow "
              f"({t2 - t1:,.0f} s; Yosys results are cached by their Verilog, the Verilog is elaborated each time)")
        print(f"  LUT incl. LUT-RAM {t.lut + t.lutram:,} vs {w.lut + w.lutram:,} ({pct(t.lut + t.lutram, w.lut + w.lutram)}; "
              f"goal within 5%), BRAM36 {t.bram36:g} vs {w.bram36:g} ({'exact' if t.bram36 == w.bram36 else 'DIFFERS'}), "
              f"FF {t.ff:,} vs {w.ff:,} ({pct(t.ff, w.ff)}), DSP {t.dsp} vs {w.dsp}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

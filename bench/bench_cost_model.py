"""Cost model (qnnfab.boards.estimate.cost) against Yosys synth_xilinx -family xc7, per layer and in total.

For each config: the model's LUT (logic + LUT-RAM, as the device counts them)
and BRAM36 beside the Yosys figures of ``qnnfab report`` (the same cached
runs: ``$QNNFAB_CACHE/yosys``; a layer's figure includes the FIFO and width
converter in front of it), with the error in percent (model / Yosys - 1).
The target is |error| <= 15% on every LUT and BRAM figure.

    python bench/bench_cost_model.py     # small configs, lfc_w1a1, cnv_w1a1, cnv_w1a1_fast, lfc_w1a1_fast
    python bench/bench_cost_model.py configs/lfc_small.toml

The full-size configs take long the first time (Yosys per layer; about an
hour for lfc_w1a1_fast on a busy 2-core machine), then seconds from the cache.
"""

import sys
from pathlib import Path

from qnnfab import netconfig
from qnnfab.boards.estimate.cost import estimate_layers
from qnnfab.boards.estimate.report import network_report

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ["lfc_small", "cnv_small", "lfc_w1a1", "cnv_w1a1", "cnv_w1a1_fast", "lfc_w1a1_fast"]
TOLERANCE = 0.15


def err(model, measured):
    if measured == 0:
        return "" if model == 0 else "  (Yosys 0)"
    e = model / measured - 1
    return f"{100 * e:+6.1f}%{' !' if abs(e) > TOLERANCE else '  '}"


def compare(path, jobs=1):
    cfg = netconfig.load(path)
    rep = network_report(cfg, jobs=jobs, progress=None, timing=True)
    model = dict(estimate_layers(cfg))
    print(f"\n{cfg.name} ({path.name})")
    print(f"{'layer':<8} {'PE':>4} {'SIMD':>5} | {'LUT Yosys':>10} {'model':>8} {'err':>8} | "
          f"{'BRAM36 Yosys':>12} {'model':>6} {'err':>8}")
    worst = 0.0
    tot_y = tot_m = bram_y = bram_m = 0
    for L in rep.layers:
        y, m = L.resources, model[L.name]
        ly, lm = y.lut + y.lutram, m.lut + m.lutram
        tot_y, tot_m, bram_y, bram_m = tot_y + ly, tot_m + lm, bram_y + y.bram36, bram_m + m.bram36
        for a, b in ((lm, ly), (m.bram36, y.bram36)):
            if b:
                worst = max(worst, abs(a / b - 1))
        print(f"{L.name:<8} {L.pe:>4} {L.simd:>5} | {ly:>10,} {lm:>8,} {err(lm, ly):>8} | "
              f"{y.bram36:>12g} {m.bram36:>6g} {err(m.bram36, y.bram36):>8}")
    print(f"{'total':<8} {'':>4} {'':>5} | {tot_y:>10,} {tot_m:>8,} {err(tot_m, tot_y):>8} | "
          f"{bram_y:>12g} {bram_m:>6g} {err(bram_m, bram_y):>8}")
    return worst


def main(argv):
    paths = [Path(a) for a in argv] or [ROOT / "configs" / f"{n}.toml" for n in DEFAULT]
    print("cost model vs Yosys synth_xilinx -family xc7 (LUT = logic + LUT-RAM; '!' beyond "
          f"{100 * TOLERANCE:.0f}%; layers include their input FIFO / width converter)")
    worst = max(compare(p) for p in paths)
    print(f"\nlargest per-layer error (layers with a nonzero Yosys figure): {100 * worst:.1f}%")


if __name__ == "__main__":
    main(sys.argv[1:])

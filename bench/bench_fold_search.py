"""The measured folding search (``qnnfab fold --measured``): result, composition error, wall time.

For each network: the cost-model search (``qnnfab fold``) and the measured one
on the same budget, beside the hand-picked folding when there is one; the
measured composition (per-stage Yosys results, as ``qnnfab report`` sums them)
against a ``qnnfab report`` of the chosen config (LUT error, BRAM36 exact) and,
with ``--whole``, against one Yosys run of the whole flattened dataflow (the
cross-stage optimisation a per-stage composition cannot see); the search's wall
time with a cold cache on a local cluster of 1 and of 2 workers (each in its own
fresh cache, in one run: the speed-up) and warm (the same search again, in the
second one's cache).

    python bench/bench_fold_search.py                                  # lfc_small, 2% of the xc7z020's LUTs
    python bench/bench_fold_search.py --config configs/cnv_small.toml --lut 5 --whole
    python bench/bench_fold_search.py --config configs/cnv_w1a1.toml --hand configs/cnv_w1a1_fast.toml \\
        --lut 90 --no-cold           # the issue's figure (hours of Yosys the first time; uses $QNNFAB_CACHE)
    python bench/bench_fold_search.py --config configs/cnv_w1a1.toml --lut 90 --path-only   # what a cold search needs
    python bench/bench_fold_search.py --config configs/lfc_w1a1.toml --lut 90 --no-cold --target-cycles 256

Cold runs use temporary caches (removed after); ``--no-cold`` runs only the
warm search in ``$QNNFAB_CACHE`` (a first run there is cold too).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

from qnnfab import netconfig
from qnnfab.boards.estimate.fold import auto_fold
from qnnfab.boards.estimate.measured import Budget, apply, measured_fold, model_stop, proposals
from qnnfab.boards.estimate.report import network_report, stage_owners
from qnnfab.boards.estimate.stage_cache import stage_description
from qnnfab.boards.estimate.synth_pool import SynthesisPool
from qnnfab.boards.estimate.yosys import synth_xc7
from qnnfab.boards.targets import get_board
from qnnfab.plan import plan_of
from qnnfab.rtl.dataflow import Dataflow

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def cache_at(path):
    old = os.environ.get("QNNFAB_CACHE")
    os.environ["QNNFAB_CACHE"] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ["QNNFAB_CACHE"]
        else:
            os.environ["QNNFAB_CACHE"] = old


def search(config, device, budget, workers):
    """``(wall s, MeasuredFold, pool counts)`` of one measured --fastest search."""
    cfg = netconfig.load(config)
    t0 = time.monotonic()
    with SynthesisPool(workers=workers, progress=None) as pool:
        res = measured_fold(cfg, device, pool, budget=budget, progress=None)
        counts = (pool.synthesized, pool.cached)
    return time.monotonic() - t0, res, counts


def pct(a, b):
    return "n/a" if b == 0 else f"{100 * (a / b - 1):+.2f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "lfc_small.toml"))
    ap.add_argument("--hand", help="a hand-picked folding of the same network to compare with")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--lut", type=float, default=2.0, help="LUT budget in percent (default 2)")
    ap.add_argument("--no-cold", action="store_true", help="only the warm search in $QNNFAB_CACHE")
    ap.add_argument("--whole", action="store_true", help="also synthesize the chosen design whole (small nets only)")
    ap.add_argument("--target-cycles", type=int, help="say whether the chosen design reaches this many cycles/frame")
    ap.add_argument("--path-only", action="store_true",
                    help="only count the foldings on the path and the distinct stages a cold search synthesizes")
    args = ap.parse_args()
    device = get_board(args.board).capacity
    budget = Budget(lut=args.lut / 100)
    name = Path(args.config).stem
    print(f"{name} on {device.part}, --fastest, budget {budget.describe(device)}; {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")

    cfg = netconfig.load(args.config)
    model = auto_fold(cfg, device, lut_budget=budget.lut, bram_budget=budget.bram36)
    e = model.estimate
    print(f"  cost model search (qnnfab fold): {model.bottleneck[1]:,} cycles/frame, estimated "
          f"{e.lut + e.lutram:,} LUT, {e.bram36:g} BRAM36")
    if args.hand:
        hand = netconfig.load(args.hand)
        print(f"  hand-picked {Path(args.hand).name}: {max(hand.layer_cycles(L) for L in hand.layers):,} "
              "cycles/frame (model)")

    if args.path_only:
        points, end = proposals(cfg, device, budget)
        stages = set()
        for p in points:
            apply(cfg, p.settings)
            plan = plan_of(cfg)
            stages.update(stage_description(plan, stage) for stage, _ in stage_owners(plan))
        start = model_stop(points, budget, device)
        near = set()
        for p in points[start:start + 2]:
            apply(cfg, p.settings)
            plan = plan_of(cfg)
            near.update(stage_description(plan, stage) for stage, _ in stage_owners(plan))
        print(f"  path of the measured search: {len(points)} foldings ({points[0].cycles:,} to {points[-1].cycles:,} "
              f"cycles/frame; {end}), {len(stages)} distinct stages on the whole path; the walk starts at point "
              f"{start + 1} (the cost model's stop, {points[start].cycles:,} cycles/frame): {len(near)} distinct "
              "stages there and one step on (before the bottleneck's memory-style variants)")
        return 0

    keep = None
    if not args.no_cold:
        for workers in (1, 2):
            tmp = Path(tempfile.mkdtemp(prefix="qnnfab-bench-fold-"))
            with cache_at(tmp):
                wall, res, (synth, cached) = search(args.config, device, budget, workers)
            print(f"  cold cache, local cluster of {workers} worker{'s' * (workers > 1)}: {wall:,.1f} s "
                  f"({synth} syntheses, {cached} cached, {res.measured} foldings measured, "
                  f"{res.elaborated} stages elaborated)", flush=True)
            if workers == 1:
                cold1 = wall
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                print(f"  speed-up 2 workers against 1: {cold1 / wall:.2f}x")
                keep = tmp
    try:
        with cache_at(keep) if keep else nullcontext():
            run_warm(args, device, budget)
    finally:
        if keep:
            shutil.rmtree(keep, ignore_errors=True)
    return 0


def run_warm(args, device, budget):
    """The search again (warm after the cold runs; in $QNNFAB_CACHE with --no-cold), the chosen
    folding and its composition against report (and the whole design)."""
    if args.no_cold:
        wall, _, (synth, cached) = search(args.config, device, budget, 2)
        print(f"  search in $QNNFAB_CACHE: {wall:,.1f} s ({synth} syntheses, {cached} cached)", flush=True)
    wall2, res2, (synth2, cached2) = search(args.config, device, budget, 2)
    print(f"  warm cache: {wall2:,.1f} s ({synth2} syntheses, {cached2} cached, {res2.elaborated} stages "
          "elaborated: the others' Verilog and result known by their description)", flush=True)
    t = res2.report.total
    print(f"  measured search: {res2.report.bottleneck_cycles:,} cycles/frame, measured {t.lut + t.lutram:,} LUT, "
          f"{t.bram36:g} BRAM36, {t.dsp} DSP, {t.ff:,} FF; walk started at point {res2.start + 1} of the path, "
          f"{res2.walked_back} point(s) walked back, {res2.measured} measured; stopped: {res2.reason}")
    if args.target_cycles:
        ok = res2.report.bottleneck_cycles <= args.target_cycles
        print(f"  target {args.target_cycles:,} cycles/frame measured to fit: {'yes' if ok else 'NO'}")
    for layer, why in res2.notes.items():
        print(f"    {layer}: {why}")

    rep = network_report(res2.cfg, progress=None)
    r = rep.total
    print(f"  composition vs qnnfab report of the chosen config: LUT {t.lut + t.lutram:,} vs {r.lut + r.lutram:,} "
          f"({pct(t.lut + t.lutram, r.lut + r.lutram)}), BRAM36 {t.bram36:g} vs {r.bram36:g} "
          f"({'exact' if t.bram36 == r.bram36 else 'DIFFERS'}), FF {t.ff:,} vs {r.ff:,}")
    if args.whole:
        t0 = time.monotonic()
        w = synth_xc7(Dataflow(res2.cfg), top="dataflow")
        print(f"  composition vs the whole flattened dataflow in one Yosys run ({time.monotonic() - t0:,.0f} s): "
              f"LUT {t.lut + t.lutram:,} vs {w.lut + w.lutram:,} ({pct(t.lut + t.lutram, w.lut + w.lutram)}), "
              f"BRAM36 {t.bram36:g} vs {w.bram36:g}, FF {t.ff:,} vs {w.ff:,} ({pct(t.ff, w.ff)}); the whole "
              "design also has the label unit (arg-max), which no stage has")


if __name__ == "__main__":
    sys.exit(main())

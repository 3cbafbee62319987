"""Skip FIFO depths of residual networks: the plan's computed depths against the smallest found by simulation.

Usage::

    .venv/bin/python bench/bench_skip_depths.py [--config FILE ...] [--frames N] [--probes N]

For each config (default ``configs/resnet_tiny.toml`` as written and ``configs/resnet8_w2a2.toml``
folded like ``bench/bench_resnet8.py``: the fastest design the cost model fits on the xc7z020),
on the compiled Verilator engine (one model of the whole graph, random frames):

1. the plan's computed never-binding depths (:func:`qnnfab.plan.join_throughput_depths`): every
   output word and label against the golden model, steady-state cycles/frame against the bottleneck
   model, and the most words each skip FIFO held (the testbench counts the words into and out of
   each FIFO every cycle). A FIFO of depth ``d`` holds ``d + 1`` words and refuses a word only when
   its memory holds ``d``, so at any depth above the most it held ``m`` (``d >= m + 1``) it never
   refuses one in that run: the run is the same cycle for cycle, and ``m + 1`` is an upper bound of
   the smallest depth (found without another build);
2. for each skip FIFO, the others at their computed depths, a bisection between a depth that
   fails and that bound: each probe is one build (cached) and one run of ``--frames`` frames, and a
   depth passes when the run finishes (no deadlock: the engine's progress watch stops a run in
   which no stage input moved for two bottleneck frames and names the stages holding words
   nobody takes), every word equals golden, and the steady state equals the bottleneck model. The
   first probe is the plan's least depth that cannot deadlock (geometry); ``--probes`` bounds the
   probes of one FIFO (a ResNet-8 build takes minutes), and a search it stops reports the bracket
   ``(failing, passing]``.

Prints per skip FIFO: computed, smallest (or its bracket), how much larger the computed one is
(words and ratio), and what the probes found.
"""

import argparse
import time
from pathlib import Path

from qnnfab import netconfig
from qnnfab.boards.estimate.fold import auto_fold
from qnnfab.boards.targets import get_board
from qnnfab.plan import join_throughput_depths, plan_of
from qnnfab.sim.compiled import CompiledDeadlock, NetworkBench, check_network, steady_cycles_per_frame

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = (str(ROOT / "configs" / "resnet_tiny.toml"), "fold:" + str(ROOT / "configs" / "resnet8_w2a2.toml"))


def load(spec):
    """A config path, or ``fold:<path>``: folded to the fastest design that fits the xc7z020."""
    fold = spec.startswith("fold:")
    cfg = netconfig.load(spec[5:] if fold else spec)
    if fold:
        auto_fold(cfg, get_board("pynq-z2").capacity)
    return cfg, ("folded for the xc7z020" if fold else "as written")


class Probe:
    """Runs of ``cfg`` on the compiled engine at given skip depths (the plan's for the others)."""

    def __init__(self, cfg, frames, seed=2):
        self.cfg, self.frames = cfg, cfg.random_inputs(frames, seed)
        _, (self.bottleneck, self.model), _ = cfg.throughput()
        self.seconds = 0.0
        self.builds = 0

    def run(self, depths):
        """``(verdict, cycles/frame, run)``: verdict "keeps" (steady state = model), "slower" or
        "deadlock" (the engine's one-line message)."""
        t0 = time.monotonic()
        bench = NetworkBench(self.cfg, skip_depths=depths)
        if not bench.build.cached:
            self.builds += 1
        try:   # a generous bound: a too shallow FIFO may cost several times the model (a deadlock stops sooner)
            run = bench.run(self.frames, max_cycles=20_000 + 20 * len(self.frames) * self.model)
        except CompiledDeadlock as e:
            self.seconds += time.monotonic() - t0
            return "deadlock", float("nan"), str(e)
        check_network(bench, self.frames, run)
        self.seconds += time.monotonic() - t0
        per = steady_cycles_per_frame(run, bench.format.out_words)
        return ("keeps" if per == self.model else "slower"), per, run


def smallest(probe, name, first, failing, passing, budget):
    """Bisection for the least depth of skip FIFO ``name`` that keeps the model: ``passing`` is known
    to keep it, ``failing`` (or 1, below StreamFIFO's least depth 2) not; probes the depths ``first``
    first (those between the two), then halves. Returns ``(failing, passing, [(depth, verdict,
    cycles/frame, message)])``."""
    seen, first = [], list(first)
    while passing - failing > 1 and len(seen) < budget:
        d = first.pop(0) if first else (failing + passing) // 2
        if not failing < d < passing:
            continue
        verdict, per, run = probe.run({name: d})
        seen.append((d, verdict, per, run if verdict == "deadlock" else ""))
        print(f"    {name} at {d:,}: {verdict}" + (f", {per:,.1f} cycles/frame" if verdict != "deadlock" else ""),
              flush=True)
        if verdict == "keeps":
            passing = d
        else:
            failing = d
    return failing, passing, seen


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", action="append", help="a graph config, or fold:<config> (default: resnet_tiny, "
                                                      "and ResNet-8 folded)")
    ap.add_argument("--frames", type=int, default=8, help="frames of each run (default 8)")
    ap.add_argument("--probes", type=int, default=12, help="most probes (builds) per skip FIFO (default 12)")
    args = ap.parse_args()
    if args.frames < 4:
        ap.error("--frames must be at least 4 (the steady state skips the first frames)")
    for spec in args.config or DEFAULT_CONFIGS:
        cfg, how = load(spec)
        plan = plan_of(cfg)
        computed = join_throughput_depths(plan)
        by_name = {s.name: s for s in plan.stages}
        probe = Probe(cfg, args.frames)
        verdict, per, run = probe.run({})
        head = f"{cfg.name} ({how}): bottleneck {probe.bottleneck} {probe.model:,} cycles/frame; computed skip depths"
        if verdict == "deadlock":
            print(f"{head} {computed}: deadlock ({run})")
        else:
            print(f"{head} {computed}: {verdict}, {per:,.1f} cycles/frame over {args.frames} frames identical to "
                  f"golden ({run.cycles_per_second:,.0f} cycles/s)")
        if verdict != "keeps":
            print("  the computed depths do not keep the bottleneck's rate: no search")
            continue
        searches = []
        for name, depth in computed.items():
            held = run.fifo_occupancy[name]
            print(f"  {name}: computed {depth:,} words, held at most {held:,} in that run, so {max(2, held + 1):,} "
                  f"keeps it (the same run)", flush=True)
            # an identity shortcut deadlocks below the plan's least depth (exact); a computing one may
            # not (the bound is an upper one there): its first probe is StreamFIFO's least depth, 2
            join = next(s for s in plan.stages if (name, 0) in s.reads)
            _, *paths = plan.join_paths(join.name)
            identity = any(len(p) == 1 and p[0].name == name for p in paths)
            first = [by_name[name].min_depth] if identity else [2, by_name[name].min_depth]
            searches.append((identity, name, depth, held, first))
        rows = []
        for _, name, depth, held, first in sorted(searches):    # the shortest searches (from 2) first
            failing, passing, seen = smallest(probe, name, first, 1, min(depth, max(2, held + 1)), args.probes)
            rows.append((name, depth, held, failing, passing, seen))
        print(f"  {'skip FIFO':<10} {'computed':>8} {'most held':>9} {'smallest':>12} {'computed - smallest':>20} "
              f"{'ratio':>8}  probes (depth: result)")
        for name, depth, held, failing, passing, seen in sorted(rows):
            exact = passing - failing <= 1
            found = f"{passing:,}" if exact else f"({failing:,}, {passing:,}]"
            at_least = "" if exact else ">="   # a bracket: the smallest is at most its passing end
            probes = ", ".join(f"{d}: {v if v != 'slower' else f'{p:,.1f}'}" for d, v, p, _ in seen)
            print(f"  {name:<10} {depth:>8,} {held:>9,} {found:>12} {at_least + f'{depth - passing:+,}':>20} "
                  f"{at_least + f'{depth / passing:.2f}x':>8}  "
                  f"{probes or '-'}")
            for d, v, _, message in seen:
                if v == "deadlock":
                    print(f"    depth {d}: {message}")
                    break
        print(f"  {probe.builds} builds, {probe.seconds / 60:.1f} min (builds and runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

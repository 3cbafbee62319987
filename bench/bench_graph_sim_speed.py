"""Compiled-engine speed on a residual network against chain networks of about its size, in one run.

Usage::

    .venv/bin/python bench/bench_graph_sim_speed.py [--frames N] [--graph FILE] [--chain FILE ...]

Runs random frames back to back (at least ``--frames``, and ``--cycles`` cycles at the bottleneck) of the residual network (default
``configs/resnet_tiny.toml``: 8x8x3, 30 plan stages, forks, adds, global pooling; one Verilator
model, its stage inputs watched) and of each chain (default ``configs/lfc_small.toml`` and
``configs/cnv_small.toml``, whose estimated LUT bracket resnet_tiny's) on the compiled engine, each
chain both as the engine runs chains by default (one model per layer) and as one model, like a
graph. Every word is checked against golden; the build is cached. Prints the cost model's LUT of
each (its size), simulated cycles per second of wall time and per CPU second of the simulation
process (the figure the shared machine's load disturbs least), the graph's rate as a fraction of
each chain's (the issue asks for a residual network within 2x of a chain of its size), and the
size of a one-model build's generated evaluation C++ (Verilator's ``V*root__N.cpp``, what runs
every cycle; the rate goes about inversely with it).
"""

import argparse
import resource
import time
from pathlib import Path

from qnnfab import netconfig
from qnnfab.boards.estimate.cost import estimate
from qnnfab.plan import plan_of
from qnnfab.sim.compiled import NetworkBench, check_network

ROOT = Path(__file__).resolve().parents[1]


def measure(cfg, frames, per_stage):
    """``(cycles, wall s, CPU s of the simulation)`` of one run of ``frames`` (build excluded)."""
    bench = NetworkBench(cfg, per_stage=per_stage)
    bench.build
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    run = bench.run(frames)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    check_network(bench, frames, run)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # what Verilator evaluates every cycle: its generated C++ of the model but the construction
    # ("Slow") and symbol-table files, every class (root and shared modules) (one model only)
    code = None if bench.per_stage else sum(f.stat().st_size for f in bench.build.executable.parent.glob("V*.cpp")
                                            if "Slow" not in f.name and "__Syms" not in f.name)
    return run.cycles, wall, cpu, bench.per_stage, code


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=20, help="least frames of each run (default 20)")
    ap.add_argument("--cycles", type=int, default=300_000,
                    help="least cycles of each run at the bottleneck's rate (default 300,000): more frames if needed")
    ap.add_argument("--graph", default=str(ROOT / "configs" / "resnet_tiny.toml"))
    ap.add_argument("--chain", action="append", help="chain configs (default lfc_small, cnv_small)")
    args = ap.parse_args()
    chains = args.chain or [str(ROOT / "configs" / "lfc_small.toml"), str(ROOT / "configs" / "cnv_small.toml")]
    rows = []
    for path, modes in [(args.graph, (False,))] + [(c, (True, False)) for c in chains]:
        cfg = netconfig.load(path)
        est = estimate(cfg)
        _, (_, model), _ = cfg.throughput()
        frames = cfg.random_inputs(max(args.frames, -(-args.cycles // model)), 1)
        for per_stage in modes:
            cycles, wall, cpu, staged, code = measure(cfg, frames, per_stage)
            rows.append((cfg.name, "graph" if cfg.is_graph else "chain", est.lut + est.lutram,
                         len(plan_of(cfg).stages), "one model per layer" if staged else "one model",
                         "-" if code is None else f"{code / 1000:,.0f}", cycles, cycles / wall, cycles / cpu))
    graph_rate = rows[0][-1]
    print(f"{'network':<13} {'kind':<5} {'LUT (est.)':>10} {'stages':>6}  {'engine':<19} {'eval C++ kB':>11} "
          f"{'cycles':>9} {'cycles/s wall':>13} {'cycles/CPU s':>12} {'graph / this':>12}")
    for name, kind, lut, stages, engine, code, cycles, per_wall, per_cpu in rows:
        print(f"{name:<13} {kind:<5} {lut:>10,} {stages:>6}  {engine:<19} {code:>11} {cycles:>9,} {per_wall:>13,.0f} "
              f"{per_cpu:>12,.0f} {graph_rate / per_cpu:>11.2f}x")
    print("(every word identical to golden; the issue's goal: the residual network within 2x of a chain of its "
          "size, a ratio >= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""ResNet-8 (MLPerf Tiny's image-classification topology) folded for the xc7z020, on the compiled engine.

Usage::

    .venv/bin/python bench/bench_resnet8.py [--frames N] [--config FILE]

Loads ``configs/resnet8_w2a2.toml`` (random weights from the config's seed), folds it to the
fastest design the cost model fits on the PYNQ-Z2's xc7z020 (``qnnfab fold --fastest``), builds
its accelerator on the compiled Verilator engine with the plan's skip FIFO depths (the never-binding
depth computed from the capacities of each block's long path, :func:`qnnfab.plan.join_throughput_depths`:
a characterisation run of a 32x32 block on Amaranth's simulator would take hours), or with
``--skip least`` the least that cannot deadlock (geometry), or with ``--skip frame`` a whole frame
of each add's words, and runs random 32x32x3 8-bit frames:

* every output word and label against the golden model (:func:`qnnfab.golden.graph_network.graph_forward`);
* latency: first input word (cycle 0) to the first frame's label, one frame alone;
* steady-state cycles per frame over the frames back to back, against the bottleneck model;
* frames/s and latency at 100 MHz beside MLPerf Tiny's Pynq-Z2 figures (hls4ml and FINN,
  arXiv:2206.11791: image-classification latencies down to 20 us across the submissions on
  the Pynq-Z2 and Arty; accuracy target 85%; /work/shared/REFERENCES.md).

Resources: the cost model's estimate is printed; `qnnfab report --config <folded config>` measures
LUT/BRAM36/DSP with Yosys (minutes; not run here).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from qnnfab import netconfig
from qnnfab.boards.estimate.cost import estimate
from qnnfab.cache import atomic_write_text
from qnnfab.boards.estimate.fold import auto_fold
from qnnfab.boards.targets import get_board
from qnnfab.plan import join_throughput_depths, plan_of
from qnnfab.sim.compiled import NetworkBench, check_network, steady_cycles_per_frame

ROOT = Path(__file__).resolve().parents[1]
F_CLK = 100e6
REFERENCE = "MLPerf Tiny image classification on the Pynq-Z2 (hls4ml/FINN, arXiv:2206.11791): latency down to 20 us"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "resnet8_w2a2.toml"))
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--folded", default=None, help="where to write the folded config (a new file; default: not written)")
    ap.add_argument("--skip", choices=("plan", "least", "frame"), default="plan",
                    help="skip FIFO depths: the plan's (never-binding, computed), the least that cannot deadlock, or "
                         "a whole frame of the add's words")
    args = ap.parse_args()
    if args.folded and Path(args.folded).exists():
        print(f"error: {args.folded} exists: pass a new file to --folded (a file is never overwritten)", file=sys.stderr)
        raise SystemExit(2)
    cfg = netconfig.load(args.config)
    device = get_board("pynq-z2").capacity
    auto_fold(cfg, device)
    if args.folded:
        atomic_write_text(Path(args.folded), netconfig.dumps(cfg))
    est = estimate(cfg)
    plan = plan_of(cfg)
    name, model = plan.slowest
    print(f"{cfg.name}: folded (cost model, fastest that fits {device.part}): bottleneck {name} {model:,} "
          f"cycles/frame; estimated {est.lut + est.lutram:,} LUT, {est.bram36:g} BRAM36, {est.dsp} DSP "
          f"(folded config: {args.folded or 'not written; --folded FILE writes it'})")
    computed, by_name = join_throughput_depths(plan), {s.name: s for s in plan.stages}
    depths = {"plan": {}, "least": {n: by_name[n].min_depth for n in computed},
              "frame": {n: by_name[n].i.words for n in computed}}[args.skip]
    for name, depth in computed.items():
        s = by_name[name]
        print(f"  skip FIFO {name}: {depths.get(name, s.fifo_depth)} words of {s.i.width} bits "
              f"(computed never-binding: {depth}; least that cannot deadlock: {s.min_depth}; a frame: {s.i.words})")
    t0 = time.monotonic()
    bench = NetworkBench(cfg, skip_depths=depths)
    bench.build
    print(f"compiled engine build: {time.monotonic() - t0:.0f} s")
    frames = cfg.random_inputs(args.frames, 1)
    one = bench.run(frames[:1])
    check_network(bench, frames[:1], one)
    latency = int(one.label_cycles[0])
    # frames back to back; the run's bound from the measured latency (the model's may be far below it)
    run = bench.run(frames, max_cycles=2 * len(frames) * latency + 20_000)
    check_network(bench, frames, run)
    per = steady_cycles_per_frame(run, bench.format.out_words)
    print(f"{args.frames} frames identical to golden (every score and label); simulated {run.cycles:,} cycles "
          f"at {run.cycles_per_second:,.0f} cycles/s")
    print(f"steady state {per:,.1f} cycles/frame vs bottleneck model {model:,} ({100 * (per / model - 1):+.1f}%)")
    print(f"at 100 MHz: {F_CLK / per:,.0f} frames/s, latency {latency:,} cycles = {latency / F_CLK * 1e6:,.1f} us "
          f"(first input word to label)")
    print(f"reference: {REFERENCE}")
    return 0 if np.isfinite(per) else 1


if __name__ == "__main__":
    raise SystemExit(main())

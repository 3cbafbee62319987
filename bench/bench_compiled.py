"""Whole networks on both simulation engines: simulated cycles/s and build times, side by side.

For every config it builds the accelerator for the compiled engine
(``qnnfab.sim.compiled``, a Verilator C++ testbench) and for the cocotb
engine (``qnnfab.sim.registry`` "network", cocotb on Verilator), runs frames
through both (every output word compared with the golden model in both) and
prints build seconds (from the cache entry when the build was cached) and
simulated cycles per second, unstalled, with their ratio. ``--test-sets``
adds whole data sets: the digits demo networks (the MLP and the conv net with
2-bit activations, trained here with the STE scheme) over all their test
images, and cnv_w1a1 with random weights over 1,000 frames, with wall times.

Usage::

    .venv/bin/python bench/bench_compiled.py                                  # lfc_small, cnv_small
    .venv/bin/python bench/bench_compiled.py --configs lfc_w1a1 cnv_w1a1 --cocotb-frames 2
    .venv/bin/python bench/bench_compiled.py --configs --test-sets            # data sets only

Figures are printed, never asserted. The issue's goal: compiled >= 25x cocotb
on every network and >= 100,000 cycles/s on cnv_w1a1.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from common import ROOT, find_config  # bench/ is the script's folder


def resolve(name):
    return find_config(name, "bench_compiled")


def _recorded_seconds(path):
    try:
        return float(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def compiled_figures(cfg, frames):
    from qnnfab.sim.compiled import NetworkBench, check_network
    bench = NetworkBench(cfg, log=lambda m: print("  " + m, flush=True))
    build = bench.build
    seconds = build.seconds if not build.cached else _recorded_seconds(build.directory / "build.ok")
    x = cfg.random_inputs(frames, 1)
    run = bench.run(x)
    check_network(bench, x, run)
    return seconds, run.cycles, run.cycles_per_second


def cocotb_figures(path, cfg, frames):
    from qnnfab.rtl.dataflow import Dataflow
    from qnnfab.sim.build import build, to_verilog
    from qnnfab.sim.registry import run_case
    bld = build(to_verilog(Dataflow(cfg), "network"), "network", log=lambda m: print("  " + m, flush=True))
    seconds = bld.seconds if not bld.cached else _recorded_seconds(bld.directory / "build.ok")
    res = run_case("network", {"config": str(path), "frames": frames}, seed=1)
    return seconds, res.metrics["sim_cycles_per_s"]


def engines(paths, compiled_frames, cocotb_frames):
    from qnnfab import netconfig
    rows = []
    for path in paths:
        cfg = netconfig.load(path)
        _, (_, model), _ = cfg.throughput()
        n_c = compiled_frames or max(20, min(2000, 3_000_000 // model))
        n_k = cocotb_frames or max(4, min(100, 60_000 // model))
        print(f"{cfg.name}: compiled engine, {n_c} frames ...", flush=True)
        cb, cycles, c_rate = compiled_figures(cfg, n_c)
        print(f"{cfg.name}: cocotb engine, {n_k} frames ...", flush=True)
        kb, k_rate = cocotb_figures(path, cfg, n_k)
        rows.append((cfg.name, cb, kb, c_rate, k_rate, n_c, cycles))
    print()
    print(f"{'network':<12} {'build compiled':>15} {'build cocotb':>13} {'compiled cyc/s':>15} "
          f"{'cocotb cyc/s':>13} {'ratio':>7}  frames (cycles) on the compiled engine")
    for name, cb, kb, cr, kr, n, cyc in rows:
        print(f"{name:<12} {cb:>13.0f} s {kb:>11.0f} s {cr:>15,.0f} {kr:>13,.0f} {cr / kr:>6.0f}x  {n} ({cyc:,})")


def digits_networks(out_dir):
    """Train the two digits demo networks (STE) and export them; yield (label, config path, dataset)."""
    from qnnfab.training import run_training
    from qnnfab.train.datasets import load_digits
    from qnnfab.train.trainer import parse_hidden
    ds = load_digits()
    for hidden, act_bits in (("256,256", 1), ("c64,p2,256", 2)):
        h = tuple(t for t, _ in parse_hidden(hidden))
        res = run_training(ds, ["ste"], hidden=h, act_bits=act_bits, epochs=30, seed=0,
                           out_dir=Path(out_dir) / f"{hidden.replace(',', '_')}-a{act_bits}",
                           stream=open(os.devnull, "w"))
        yield f"digits {hidden} act {act_bits}", res[0].toml_path, ds


def whole_sets(out_dir):
    from qnnfab import netconfig
    from qnnfab.sim.compiled import verify_network
    print(f"{'data set':<36} {'frames':>7} {'identical':>10} {'accuracy':>9} {'cycles/frame':>13} "
          f"{'cycles/s':>10} {'wall':>7}")
    for label, cfg_path, ds in digits_networks(out_dir):
        cfg = netconfig.load(cfg_path)
        x = ds.x_test.reshape((-1,) + cfg.input_shape)
        t0 = time.monotonic()
        v = verify_network(cfg, x)
        wall = time.monotonic() - t0
        print(f"{label:<36} {v.frames:>7} {v.frames_identical:>10} {100 * v.accuracy(ds.y_test):>8.2f}% "
              f"{v.cycles_per_frame:>13,.1f} {v.cycles_per_second:>10,.0f} {wall:>6.0f} s", flush=True)
    cfg = netconfig.load(ROOT / "configs" / "cnv_w1a1.toml")
    x = cfg.random_inputs(1000, 2)
    t0 = time.monotonic()
    v = verify_network(cfg, x, log=lambda m: print("  " + m, flush=True))
    wall = time.monotonic() - t0
    print(f"{'cnv_w1a1, random weights':<36} {v.frames:>7} {v.frames_identical:>10} {'-':>9} "
          f"{v.cycles_per_frame:>13,.1f} {v.cycles_per_second:>10,.0f} {wall:>6.0f} s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="*", default=["lfc_small", "cnv_small"])
    ap.add_argument("--compiled-frames", type=int, default=None)
    ap.add_argument("--cocotb-frames", type=int, default=None)
    ap.add_argument("--test-sets", action="store_true", help="also the whole data sets (long)")
    ap.add_argument("--out", default="out/bench_compiled", help="folder for the trained digits networks")
    args = ap.parse_args(argv)
    if args.configs:
        engines([resolve(c) for c in args.configs], args.compiled_frames, args.cocotb_frames)
    if args.test_sets:
        print()
        whole_sets(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

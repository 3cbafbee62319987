"""Runtime weights against constant weights: resources, Verilator build time, weight-load time.

For each network (default lfc_w1a1 and cnv_w1a1, BNN-PYNQ's foldings):

* LUT / FF / BRAM36 of the whole dataflow (Yosys ``synth_xilinx``, per stage,
  as ``qnnfab report``; runtime adds the weight loader), const vs runtime,
  beside BNN-PYNQ's published figures (which load their weights at run time);
* Verilator build time of the whole accelerator, const vs runtime, in this run
  (fresh build folders; Verilator's design-independent runtime objects are
  reused as in every qnnfab build): wall seconds and the CPU seconds of
  Verilator and the C++ compiler, which do not depend on the machine's load;
* weight-load time: the ``weights_reload`` regression on the runtime build
  (loads network A, runs frames = golden(A), loads B, frames = golden(B),
  loads A again); cycles from the first image word to ``wload_done`` against
  the 64-bit port bound (image bits / 64) and against the weights' own bits / 64.

Run: ``python bench/bench_weights.py [--configs a.toml b.toml] [--skip-build]``.
Long (the const full-size builds take minutes each); prints as it goes.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]

# BNN-PYNQ (REFERENCES.md): LUT, BRAM36 of the W1A1 overlays (weights loaded at run time)
BNN_PYNQ = {"lfc-w1a1": (28_360, 110), "cnv-w1a1": (26_072, 124)}


def resources(cfg, mode):
    from qnnfab.boards.estimate.report import network_report
    cfg.weights_mode = mode
    rep = network_report(cfg, jobs=2, progress=None, timing=False)
    return rep.total


def _child_cpu_seconds():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def build_seconds(cfg, mode):
    """Verilator build of the whole accelerator from scratch: (wall seconds, CPU seconds of
    Verilator and the C++ compiler, Verilog bytes). CPU seconds do not grow with the machine's
    load as wall seconds do, so the const/runtime ratio stays comparable on a shared machine.

    The runtime build goes into the shared cache under the weights_reload
    regression's name (the load-time run then reuses it) unless it is there
    already; every other build goes into a fresh cache folder.
    """
    from qnnfab import cache
    from qnnfab.rtl.dataflow import Dataflow
    from qnnfab.sim import build as sb
    cfg.weights_mode = mode
    top = "weights_reload" if mode == "runtime" else "network"
    text = sb.to_verilog(Dataflow(cfg), top)
    shared = cache.cache_dir()
    if mode == "runtime":
        t0, c0 = time.monotonic(), _child_cpu_seconds()
        b = sb.build(text, top)
        if not b.cached:
            return time.monotonic() - t0, _child_cpu_seconds() - c0, len(text)
    with tempfile.TemporaryDirectory(prefix="qnnfab-buildtime-") as tmp:
        if (shared / "verilator-runtime").is_dir():
            shutil.copytree(shared / "verilator-runtime", Path(tmp) / "verilator-runtime")
        old = os.environ.get("QNNFAB_CACHE")
        os.environ["QNNFAB_CACHE"] = tmp
        try:
            t0, c0 = time.monotonic(), _child_cpu_seconds()
            b = sb.build(text, top)
            wall, cpu = time.monotonic() - t0, _child_cpu_seconds() - c0
        finally:
            if old is None:
                del os.environ["QNNFAB_CACHE"]
            else:
                os.environ["QNNFAB_CACHE"] = old
    assert not b.cached
    return wall, cpu, len(text)


def load_cycles(path):
    from qnnfab.sim import registry
    res = registry.run_case("weights_reload", {"config": str(path), "reload_only": True, "frames": 1})
    return res.metrics


def loader_cycles(cfg):
    """Cycles from the first image word to ``wload_done`` of the network's WeightLoader (Amaranth's
    simulator, the image offered back to back, the loader alone), the error code, the image words."""
    from amaranth.sim import Simulator
    from qnnfab.plan import plan_of
    from qnnfab.rtl.weight_loader import WeightLoader
    plan = plan_of(cfg, "runtime")
    words = plan.image_words()
    dut = WeightLoader(list(plan.groups), plan.topology_hash)
    res = {}

    async def bench(ctx):
        cycle = 0
        for k, w in enumerate(words):
            ctx.set(dut.wload.payload, {"data": w, "last": int(k == len(words) - 1)})
            ctx.set(dut.wload.valid, 1)
            await ctx.tick()
            cycle += 1
        ctx.set(dut.wload.valid, 0)
        while not ctx.get(dut.done):
            await ctx.tick()
            cycle += 1
        res["cycles"], res["error"] = cycle, ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return res["cycles"], res["error"], len(words)


def weight_bits(cfg):
    """Bits of the weights and thresholds themselves (no padding)."""
    from qnnfab.plan import plan_of
    return sum(g.pe * g.width * g.depth for g in plan_of(cfg, "runtime").groups)


def main(argv=None):
    from qnnfab import netconfig
    warnings.filterwarnings("ignore", message=".*created but never used")  # stages built only for their Verilog
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=[str(ROOT / "configs" / "lfc_w1a1.toml"),
                                                     str(ROOT / "configs" / "cnv_w1a1.toml")])
    ap.add_argument("--skip-resources", action="store_true", help="no Yosys resources")
    ap.add_argument("--modes", nargs="+", default=["const", "runtime"], choices=["const", "runtime"],
                    help="weights modes of the resource figures (default both)")
    ap.add_argument("--skip-build", action="store_true", help="no Verilator build times")
    ap.add_argument("--skip-load", action="store_true", help="no load-time simulation of the whole accelerator")
    ap.add_argument("--loader-only", action="store_true",
                    help="only the load time of the weight loader alone (Amaranth's simulator, seconds)")
    args = ap.parse_args(argv)
    for path in args.configs:
        cfg = netconfig.load(path)
        print(f"== {cfg.name} ({path})", flush=True)
        if args.loader_only:
            cycles, err, words = loader_cycles(cfg)
            payload = weight_bits(cfg) / 64
            print(f"  weight loader alone: {cycles:,} cycles to wload_done (error {err}) for an image of "
                  f"{words:,} words ({words * 8:,} bytes): {cycles / words:.3f}x the port bound (image bits / 64), "
                  f"{cycles / payload:.3f}x the weights' own bits / 64 ({payload:,.0f})", flush=True)
            continue
        for mode in () if args.skip_resources else args.modes:
            t0 = time.monotonic()
            r = resources(cfg, mode)
            ref = BNN_PYNQ.get(cfg.name)
            refs = f"   (BNN-PYNQ: {ref[0]:,} LUT, {ref[1]} BRAM36)" if ref and mode == "runtime" else ""
            print(f"  resources {mode:<7}: {r.lut + r.lutram:>8,} LUT ({r.lutram:,} as LUTRAM) {r.ff:>8,} FF "
                  f"{r.bram36:>6g} BRAM36{refs}   [Yosys, {time.monotonic() - t0:.0f} s]", flush=True)
        times = {}
        for mode in ("runtime", "const"):   # the runtime build first: the load-time run reuses it
            if not args.skip_build:
                secs, cpu, size = build_seconds(cfg, mode)
                times[mode] = (secs, cpu)
                print(f"  Verilator build {mode:<7}: {secs:7.1f} s wall, {cpu:7.1f} s CPU  "
                      f"(Verilog {size / 1e6:.1f} MB; load average {os.getloadavg()[0]:.1f})", flush=True)
            if mode == "runtime" and not args.skip_load:
                m = load_cycles(path)
                words = m["image_words"]
                payload = weight_bits(netconfig.load(path)) / 64
                print(f"  weight load: {m['load_cycles']:,} cycles for an image of {words:,} words "
                      f"({words * 8:,} bytes): {m['load_cycles'] / words:.3f}x the port bound (image bits / 64); "
                      f"{m['load_cycles'] / payload:.3f}x the weights' own bits / 64 ({payload:,.0f})", flush=True)
                print("  reload A -> B -> A on one build: every frame equal to its network's golden model",
                      flush=True)
        if len(times) == 2:
            (cw, cc), (rw, rc) = times["const"], times["runtime"]
            print(f"  runtime build: {cc / rc:.2f}x less CPU time than const ({rc:.0f} s vs {cc:.0f} s), "
                  f"{cw / rw:.2f}x wall", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

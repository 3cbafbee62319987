"""Simulation builds of whole networks: cold build, rebuild after one layer's folding change, cycles/s.

For every config, on the compiled engine (:mod:`qnnfab.sim.compiled`), in a
fresh build cache (a temporary ``$QNNFAB_CACHE``, so Verilator's runtime
objects are compiled too):

* cold: seconds from the config to its first simulated frame checked against
  the golden model (Verilog, Verilator, C++ compile, the run);
* rebuild: the same after the last fc/conv layer's PE changes (the runtime
  objects are cached by then; on the per-stage engine only the changed layer's
  Verilog is written again, the others' read from their models' cache entries);
* simulated cycles/s over ``--frames`` frames (checked), per wall second and
  per CPU second of the simulator process (the machine is shared: CPU seconds
  are the steadier figure), and the Verilog's size;
* per-stage: the cold build's stage models' CPU seconds, the longest one's wall
  and CPU seconds (the critical path), the load average, and an estimate of the
  cold build's wall seconds on 2 idle cores from them (:func:`critical_path`;
  the machine is shared, so wall seconds measured here are not that figure).

Each is measured for both builds of the compiled engine (``--engines``): the
design as one Verilator model (``whole``) and one model per stage
(``per-stage``, :class:`qnnfab.sim.compiled.NetworkBench` ``per_stage=True``:
a rebuild after a one-layer change rebuilds that layer's stages only).

``--before REF`` measures the same on git ``REF``'s code in the same run (a
``git archive`` of REF in a temporary folder whose packages come first on
``PYTHONPATH``), printed beside. Both CPU times (user + sys of this process
and its children) are printed too.

Usage::

    nice .venv/bin/python bench/bench_sim_build.py                              # cnv_w1a1
    nice .venv/bin/python bench/bench_sim_build.py --configs cnv_w1a1 --before main
    nice .venv/bin/python bench/bench_sim_build.py --configs cnv_w1a1_fast --engines per-stage --frames 4

Figures are printed, never asserted. The issue's goals: a fast config from a
cold cache to its first frame in at most 5 minutes on 2 cores, a one-layer
rebuild in at most 2, and cycles/s no lower than 90% of before.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from common import archive_revision, find_config  # bench/ is the script's folder

# the figures of the README measured on the code before shared PE modules (not re-run: half an hour each)
README_BEFORE = {"cnv_w1a1_fast": "compiled-engine build 1,742 s (README, loaded machine)",
                 "lfc_w1a1_fast": "compiled-engine build 2,048 s (README, loaded machine)"}


ENGINES = ("whole", "per-stage")


def _cpu():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _children_cpu():
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _refold(cfg):
    """Change the last fc/conv layer's PE to another divisor of its outputs; return its description."""
    L = [L for L in cfg.layers if L.type in ("fc", "conv")][-1]
    divisors = [d for d in range(1, L.out + 1) if L.out % d == 0 and d != L.pe]
    new = min(divisors, key=lambda d: (abs(d - L.pe), d))
    old, L.pe = L.pe, new
    return f"{L.name} pe {old} -> {new}"


def _first_frame(cfg, engine):
    """(seconds, CPU seconds, Verilog bytes) from ``cfg`` to its first checked frame in the current cache."""
    from qnnfab.sim.compiled import NetworkBench, check_network
    t0, c0 = time.monotonic(), _cpu()
    # a --before run on code older than the per-stage engine knows one engine only
    kw = {} if engine is None else {"per_stage": engine == "per-stage"}
    bench = NetworkBench(cfg, log=lambda m: print("  " + m, flush=True), **kw)
    x = cfg.random_inputs(1, 1)
    check_network(bench, x, bench.run(x))
    size = bench.verilog_bytes if hasattr(bench, "verilog_bytes") else len(bench._verilog)
    return time.monotonic() - t0, _cpu() - c0, size, bench


def _models(bench):
    """The stage models built (not reused) for ``bench``: [(name, wall s, CPU s)]; [] for one model or
    code that does not record them."""
    return [(m.toplevel, m.seconds, m.cpu_seconds) for m in getattr(bench.build, "stage_models", ())
            if not m.cached]


def critical_path(cold_cpu, models):
    """(lower, upper) estimate of the cold build's wall seconds on 2 idle cores, from its CPU seconds
    ``cold_cpu`` and its stage models' [(name, wall, CPU)]: the rest of the build (Verilog, shell,
    harness, run) counted as serial; the models, started largest first on 2 workers, take at least
    sum / 2 (both cores busy throughout: each model's make -j2 can use both) and at most
    sum / 2 + longest / 2 (list scheduling, each model on one core only)."""
    total = sum(c for _, _, c in models)
    longest = max((c for _, _, c in models), default=0.0)
    serial = cold_cpu - total
    return serial + total / 2, serial + total / 2 + longest / 2


def measure(path, frames, engine=None):
    """The figures of one config (a dict) on ``engine`` ("whole", "per-stage"; None: the code's
    default), measured in a fresh cache."""
    from qnnfab import netconfig
    from qnnfab.sim.compiled import check_network
    out = {}
    with tempfile.TemporaryDirectory(prefix="qnnfab-bench-sim-build-") as cache:
        os.environ["QNNFAB_CACHE"] = cache
        cfg = netconfig.load(path)
        print(f"{cfg.name}: cold build ({engine or 'default engine'}) ...", flush=True)
        out["cold_s"], out["cold_cpu"], out["verilog_bytes"], bench = _first_frame(cfg, engine)
        out["models"] = _models(bench)
        out["load"] = os.getloadavg()[1]
        x = cfg.random_inputs(frames, 2)
        c0 = _children_cpu()
        run = bench.run(x)
        sim_cpu = _children_cpu() - c0
        check_network(bench, x, run)
        out["cycles"], out["cycles_per_s"] = run.cycles, run.cycles_per_second
        out["cycles_per_cpu_s"] = run.cycles / sim_cpu if sim_cpu > 0 else float("nan")
        cfg2 = netconfig.load(path)
        out["refold"] = _refold(cfg2)
        print(f"{cfg.name}: rebuild after {out['refold']} ...", flush=True)
        out["rebuild_s"], out["rebuild_cpu"], _, _ = _first_frame(cfg2, engine)
    return out


def measure_before(ref, configs, frames):
    with tempfile.TemporaryDirectory(prefix="qnnfab-bench-before-") as tmp:
        pkg = archive_revision(ref, Path(tmp))
        env = dict(os.environ, PYTHONPATH=str(pkg))
        proc = subprocess.run([sys.executable, __file__, "--child", str(pkg), "--frames", str(frames),
                               "--configs", *configs], env=env, stdout=subprocess.PIPE, text=True, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def _critical_row(r):
    if not r.get("models"):
        return None
    name, wall, cpu = max(r["models"], key=lambda m: m[2])
    low, high = critical_path(r["cold_cpu"], r["models"])
    return (f"{'':<28} cold: {len(r['models'])} stage models, {sum(m[2] for m in r['models']):,.0f} s CPU; "
            f"the longest {name}: {wall:,.0f} s wall, {cpu:,.0f} s CPU; load average (5 min) "
            f"{r['load']:.1f}; on 2 idle cores an estimated {low:,.0f}-{high:,.0f} s (not measured)")


def _row(label, r):
    return (f"{label:<28} {r['verilog_bytes'] / 1e6:>7.1f} MB {r['cold_s']:>8.0f} s {r['cold_cpu']:>8.0f} s "
            f"{r['rebuild_s']:>9.0f} s {r['rebuild_cpu']:>8.0f} s {r['cycles_per_s']:>12,.0f} "
            f"{r['cycles_per_cpu_s']:>14,.0f}   ({r['refold']})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["cnv_w1a1"])
    ap.add_argument("--frames", type=int, default=20, help="frames of the cycles/s run")
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES),
                    help="builds of the compiled engine to measure (default both)")
    ap.add_argument("--before", metavar="REF", help="also measure git REF's code (e.g. main) in the same run")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    paths = [find_config(c, "bench_sim_build") for c in args.configs]
    if args.child:
        import qnnfab
        if not Path(qnnfab.__file__).resolve().is_relative_to(Path(args.child).resolve()):
            raise SystemExit(f"bench_sim_build: the before run imported qnnfab from {qnnfab.__file__}")
        sys.stdout, out = sys.stderr, sys.stdout   # progress to stderr, the figures as the last line
        figures = {p.stem: measure(p, args.frames) for p in paths}
        print(json.dumps(figures), file=out)
        return 0
    before = measure_before(args.before, [str(p) for p in paths], args.frames) if args.before else {}
    after = {(p.stem, e): measure(p, args.frames, e) for p in paths for e in args.engines}
    print()
    print(f"{'config / code':<28} {'Verilog':>10} {'cold':>10} {'cold CPU':>10} {'rebuild':>11} "
          f"{'reb. CPU':>10} {'cycles/s':>12} {'cycles/CPU s':>14}")
    for p in paths:
        if p.stem in before:
            print(_row(f"{p.stem} {args.before}", before[p.stem]))
        elif p.stem in README_BEFORE:
            print(f"{p.stem + ' before':<28} {README_BEFORE[p.stem]}")
        if p.stem in before and _critical_row(before[p.stem]):
            print(_critical_row(before[p.stem]))
        for e in args.engines:
            print(_row(f"{p.stem} {e}", after[p.stem, e]))
            if _critical_row(after[p.stem, e]):
                print(_critical_row(after[p.stem, e]))
        base = before.get(p.stem) or after.get((p.stem, "whole"))
        if base is not None and (p.stem, "per-stage") in after:
            a = after[p.stem, "per-stage"]
            print(f"{'':<28} per-stage vs {args.before if p.stem in before else 'whole'}: CPU seconds cold "
                  f"{base['cold_cpu'] / a['cold_cpu']:.2f}x, rebuild {base['rebuild_cpu'] / a['rebuild_cpu']:.2f}x "
                  f"as fast; wall cold {base['cold_s'] / a['cold_s']:.2f}x, rebuild {base['rebuild_s'] / a['rebuild_s']:.2f}x; "
                  f"cycles/CPU s {100 * a['cycles_per_cpu_s'] / base['cycles_per_cpu_s']:.0f}% of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())

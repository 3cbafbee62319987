"""``qnnfab sim``: cocotb regressions on Verilator or Icarus, or a whole network on the compiled engine."""

import argparse
import math
import os
import time
from pathlib import Path

from qnnfab.cache import check_cache_dir
from qnnfab.errors import ConfigError, QnnfabError
from qnnfab.flow import steps
from qnnfab.sim import registry
from qnnfab.sim import toolchain
from qnnfab.sim.toolchain import SIMULATORS

from .common import as_option, check_seed
from .verify import simulate


def check_simulator(args):
    """The simulator ``--simulator`` or ``$SIM`` selects, checked before any build."""
    option = "--simulator" if args.simulator else "SIM"
    sim = (args.simulator or os.environ.get("SIM") or "verilator").strip().lower()
    if sim not in SIMULATORS:
        raise ConfigError("qnnfab sim", option, f"unknown simulator {sim!r}", f"use one of: {', '.join(SIMULATORS)}")
    if sim == "icarus" and not toolchain.icarus_available():
        raise ConfigError("qnnfab sim", option, "icarus: 'iverilog'/'vvp' are not on PATH",
                          "install Icarus Verilog (apt-get install iverilog) or use verilator")
    return sim


def frame_bytes(cfg):
    """Bytes of memory one random frame takes through the compiled run: its int64 input values
    and the golden model's int64 output of every layer."""
    elements = math.prod(cfg.input_shape) + sum(math.prod(L.out_shape) for L in cfg.layers)
    return 8 * elements


def check_frames_fit(where, cfg, frames):
    """Refuse ``--frames`` whose frames need more than half the machine's memory, before any build."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    need, per_frame = frames * frame_bytes(cfg), frame_bytes(cfg)
    if need > memory // 2:
        raise ConfigError(where, "--frames", f"{frames:,} frames of network '{cfg.name}' need {need / 2**30:,.1f} GiB "
                          f"of memory, more than half of this machine's {memory / 2**30:,.1f} GiB",
                          f"use --frames <= {memory // 2 // per_frame:,}")


def run(args):
    where = "qnnfab sim"
    if args.list and (args.config or args.names):
        raise ConfigError(where, "--list", "lists the regressions and runs nothing: it cannot be combined with "
                          + ("--config" if args.config else "regression names"), "run `qnnfab sim --list` on its own")
    if args.frames is not None and not args.config:
        raise ConfigError(where, "--frames", "applies to the whole-network regression only",
                          "add --config FILE, or drop --frames")
    check_seed(where, args.seed, 42)
    if not args.list:
        check_cache_dir(where)
    regs = registry.regressions()
    if args.config:
        if args.names:
            raise ConfigError(where, "--config", "cannot be combined with regression names",
                              "run `qnnfab sim --config FILE` on its own")
        frames = 100 if args.frames is None else args.frames
        if frames < 1:
            raise ConfigError(where, "--frames", f"must be >= 1, got {frames}", "e.g. --frames 100")
        path = Path(args.config).resolve()
        cfg = steps.load(path)  # validate before any build
        check_frames_fit(where, cfg, frames)
        sim = check_simulator(args)
        if args.engine == "compiled" and sim == "verilator":
            seed = args.seed if args.seed is not None else 1
            return simulate(cfg, cfg.random_inputs(frames, seed), None, seed, command=where)
        jobs = [("network", {"config": str(path), "frames": frames})]
        return run_jobs(regs, jobs, ["network"], args.seed, sim)
    if args.list:
        width = max(len(n) for n in regs) if regs else 0
        for name, reg in regs.items():
            print(f"{name:<{width}}  {len(reg.cases):2d} cases  {reg.doc}")
        return 0
    names = args.names or list(regs)
    for n in names:
        with as_option(where, "NAME"):
            registry.get(n)  # validates the name before any build
    sim = check_simulator(args)
    jobs = []
    for n in names:
        for params in regs[n].cases:
            jobs.append((n, params))
    return run_jobs(regs, jobs, names, args.seed, sim)


def _build_started(message):
    """The case line's note that a simulator build starts (its end shows in the case's "built in")."""
    if message.startswith("building "):
        print(f" {message} ...", end="", flush=True)


def run_jobs(regs, jobs, names, seed, simulator):
    """Every ``(regression, parameters)`` case of ``jobs``, a line each: exit 1 when any failed."""
    failed = []
    t_all = time.monotonic()
    print(f"qnnfab sim: {len(jobs)} cases in {len(names)} regression(s), simulator {simulator}", flush=True)
    for k, (n, params) in enumerate(jobs, 1):
        label = f"[{k}/{len(jobs)}] {n} {registry.case_id(params)}"
        print(f"{label} ...", end="", flush=True)
        t0 = time.monotonic()
        try:
            res = registry.run_case(n, params, seed=seed, simulator=simulator, log=_build_started)
        except QnnfabError as e:
            dt = time.monotonic() - t0
            print(f" FAIL ({dt:.1f} s)", flush=True)
            print(str(e), flush=True)
            failed.append(label)
            continue
        dt = time.monotonic() - t0
        build = "cached build" if res.build_cached else f"built in {res.build_seconds:.1f} s"
        extra = ""
        reg = regs[n]
        if reg.summarize is not None and res.metrics:
            extra = "; " + reg.summarize(res)
        print(f" ok ({dt:.1f} s, {build}, seed {res.seed}{extra})", flush=True)
    dt = time.monotonic() - t_all
    if failed:
        print(f"qnnfab sim: {len(failed)} of {len(jobs)} cases FAILED in {dt:.0f} s:")
        for f in failed:
            print(f"  {f}")
        return 1
    print(f"qnnfab sim: all {len(jobs)} cases passed in {dt:.0f} s")
    return 0


def add_parser(sub):
    s = sub.add_parser(
        "sim", help="run cocotb regressions on Verilator (or Icarus) against the golden model",
        description="Run named cocotb regressions (all when none is named). Each case "
                    "builds its design once (cached by Verilog hash) and compares every "
                    "output with qnnfab.golden under random gaps and backpressure. "
                    "Verilator is the fast one; Icarus is four-state and checks that no "
                    "stream handshake or valid payload is ever X after reset.",
        epilog="examples:\n  qnnfab sim --list\n  qnnfab sim xnor_popcount --seed 42\n"
               "  qnnfab sim --config configs/lfc_small.toml --frames 200\n"
               "  qnnfab sim --simulator icarus maxpool conv   (or SIM=icarus; needs iverilog)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("names", nargs="*", metavar="NAME", help="regressions to run (default: all)")
    s.add_argument("--list", action="store_true", help="list the regressions and exit")
    s.add_argument("--config", metavar="FILE", help="run the whole-network regression on this config")
    s.add_argument("--frames", type=int, default=None, help="frames per test with --config (>= 1, default 100)")
    s.add_argument("--engine", choices=("compiled", "cocotb"), default="compiled",
                   help="with --config: 'compiled' (default) runs a Verilator C++ testbench at full speed; "
                        "'cocotb' runs the cycle-by-cycle cocotb network regression (always so on Icarus)")
    s.add_argument("--seed", type=int, default=None,
                   help="random seed in [0, 2^31) (default: fresh per case, printed; or $QNNFAB_SEED)")
    s.add_argument("--simulator", metavar="NAME", default=None,
                   help="verilator (fast) or icarus (four-state X checks); default $SIM, else verilator")
    s.set_defaults(func=run)

"""The ``qnnfab`` command line.

Every sub-command has ``--help`` with an example. Errors that qnnfab raises on
purpose (bad configuration, missing tools, failed regressions) are printed as
one clear line (plus the regression report) and give exit status 1 or 2,
without a Python traceback.
"""

import argparse
import os
import sys
import time

from qnnfab.errors import QnnfabError

EPILOG_MAIN = """examples:
  qnnfab sim --list                 list the cocotb regressions
  qnnfab sim xnor_popcount          run one regression on Verilator
  qnnfab sim                        run them all
  qnnfab demo                       the end-to-end demo
"""


def _cmd_sim(args):
    from qnnfab.sim import registry

    regs = registry.regressions()
    if args.list:
        width = max(len(n) for n in regs) if regs else 0
        for name, reg in regs.items():
            print(f"{name:<{width}}  {len(reg.cases):2d} cases  {reg.doc}")
        return 0
    names = args.names or list(regs)
    for n in names:
        registry.get(n)  # validates the name before any build
    jobs = []
    for n in names:
        for params in regs[n].cases:
            jobs.append((n, params))
    failed = []
    t_all = time.monotonic()
    print(f"qnnfab sim: {len(jobs)} cases in {len(names)} regression(s), "
          f"simulator {os.environ.get('SIM', 'verilator')}", flush=True)
    for k, (n, params) in enumerate(jobs, 1):
        label = f"[{k}/{len(jobs)}] {n} {registry.case_id(params)}"
        print(f"{label} ...", end="", flush=True)
        t0 = time.monotonic()
        try:
            res = registry.run_case(n, params, seed=args.seed)
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


def _cmd_demo(args):
    from qnnfab import demo
    return demo.run(args.out, args.seed)


def build_parser():
    p = argparse.ArgumentParser(
        prog="qnnfab",
        description="Open hardware generator for quantized neural networks.",
        epilog=EPILOG_MAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version",
                   version=f"qnnfab {__import__('qnnfab').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser(
        "sim", help="run cocotb regressions on Verilator against the golden model",
        description="Run named cocotb regressions (all when none is named). Each case "
                    "builds its design once (cached by Verilog hash) and compares every "
                    "output with qnnfab.golden under random gaps and backpressure.",
        epilog="examples:\n  qnnfab sim --list\n  qnnfab sim xnor_popcount --seed 42\n"
               "  SIM=icarus qnnfab sim xnor_popcount   (when iverilog is installed)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("names", nargs="*", metavar="NAME", help="regressions to run (default: all)")
    s.add_argument("--list", action="store_true", help="list the regressions and exit")
    s.add_argument("--seed", type=int, default=None,
                   help="random seed (default: fresh per case, printed; or $QNNFAB_SEED)")
    s.set_defaults(func=_cmd_sim)

    d = sub.add_parser(
        "demo", help="the main job: end-to-end check (Verilog, lint, Verilator vs golden, Yosys)",
        description="Run the end-to-end demo and print what it checked.",
        epilog="example:\n  qnnfab demo --out out/demo",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    d.add_argument("--seed", type=int, default=None, help="random seed for the regressions")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except QnnfabError as e:
        print(f"qnnfab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qnnfab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``qnnfab fold``: PE/SIMD per layer for a frame rate, or the fastest folding that fits."""

import argparse
import os
from pathlib import Path

from qnnfab import netconfig
from qnnfab.boards.targets import get_board
from qnnfab.boards.estimate.fold import auto_fold
from qnnfab.boards.estimate.measured import Budget, measured_fold, stop_notes
from qnnfab.boards.estimate.synth_pool import SynthesisPool
from qnnfab.cache import atomic_write_text, check_cache_dir
from qnnfab.errors import ConfigError
from qnnfab.flow import check_out_file, steps

from .common import as_option, board_args, check_clock_jobs, number

# budgets (percent of the device) of the cost-model search and of the measured one
MODEL_BUDGET = {"lut": 80, "bram": 90, "dsp": 100, "ff": 100}
MEASURED_BUDGET = {"lut": 90, "bram": 100, "dsp": 100, "ff": 100}


def search_budget(args, where, measured=True):
    """The :class:`Budget` of the search options (``--lut/--bram/--dsp/--ff/--margin/--meet-clock``)."""
    defaults = MEASURED_BUDGET if measured else MODEL_BUDGET
    frac = {}
    for name in ("lut", "bram", "dsp", "ff"):
        v = getattr(args, name)
        number(where, f"--{name}", v, above=0, fix=f"a percentage of the device, e.g. --{name} {defaults[name]}")
        if v is not None and v > 100:
            raise ConfigError(where, f"--{name}", f"{v:g}% is more than the device has",
                              f"a percentage up to 100, e.g. --{name} {defaults[name]}")
        frac[name] = (defaults[name] if v is None else v) / 100
    number(where, "--margin", args.margin, minimum=0, fix="a percentage, e.g. --margin 5")
    return Budget(lut=frac["lut"], bram36=frac["bram"], dsp=frac["dsp"], ff=frac["ff"],
                  margin=(args.margin or 0) / 100,
                  logic_ps=round(1e6 / args.clock) if args.meet_clock else None)


def check_pool_args(args, where):
    if args.workers is not None and args.workers < 1:
        raise ConfigError(where, "--workers", f"must be >= 1, got {args.workers}", "e.g. --workers 2")
    if args.scheduler is not None and args.workers is not None:
        raise ConfigError(where, "--workers", "sizes the local cluster; with --scheduler the cluster's own "
                          "workers run the syntheses", "drop --workers, or drop --scheduler")
    if args.scheduler is not None and not args.scheduler.startswith(("tcp://", "tls://", "inproc://", "ws://")):
        raise ConfigError(where, "--scheduler", f"{args.scheduler!r} is not a scheduler address",
                          "e.g. --scheduler tcp://10.0.0.5:8786 (printed by dask scheduler)")
    check_cache_dir(where)


def pool_of(args):
    return SynthesisPool(scheduler=args.scheduler, workers=args.workers)


def prune_of(args):
    """``--prune`` as a fraction (default 15 %)."""
    return (15.0 if args.prune is None else args.prune) / 100


def run(args):
    where = "qnnfab fold"
    if (args.fps is None) == (not args.fastest):
        raise ConfigError(where, "--fps/--fastest", "give exactly one of them",
                          "e.g. --fps 100000 or --fastest")
    check_clock_jobs(args, where)
    number(where, "--fps", args.fps, above=0, fix="e.g. --fps 100000, or --fastest")
    if not args.measured:
        for opt in ("ff", "dsp", "margin", "prune", "scheduler", "workers"):
            if getattr(args, opt) is not None:
                raise ConfigError(where, f"--{opt}", "applies to the measured search only",
                                  "add --measured, or drop it")
        if args.no_rebalance:
            raise ConfigError(where, "--no-rebalance", "applies to the measured search only",
                              "add --measured, or drop it")
        if args.meet_clock:
            raise ConfigError(where, "--meet-clock", "applies to the measured search only (the cost model has "
                              "no logic delays)", "add --measured, or drop it")
    budget = search_budget(args, where, args.measured)
    if args.measured:
        check_pool_args(args, where)
        number(where, "--prune", args.prune, minimum=0, fix="a percentage, e.g. --prune 15")
    check_out_file(where, "--out", args.out, ".toml")
    with as_option(where, "--board"):
        board = get_board(args.board)
    cfg = steps.load(args.config)
    f_clk = args.clock * 1e6
    if args.measured:
        with pool_of(args) as pool:
            res = measured_fold(cfg, board.capacity, pool, budget=budget, target_fps=args.fps, f_clk=f_clk,
                                prune=prune_of(args), fps_name=(where, "--fps"), rebalance=not args.no_rebalance)
        rep = res.report
        bottleneck, worst_cycles = rep.bottleneck, rep.bottleneck_cycles
        t = rep.total
        figures = (f"measured (Yosys, per stage as `qnnfab report`) {t.lut + t.lutram:,} LUT, {t.bram36:g} "
                   f"BRAM36, {t.dsp} DSP, {t.ff:,} FF of {board.capacity.part}; {res.measured} foldings "
                   f"measured, {pool.synthesized} syntheses run, {pool.cached} cached")
        reason, notes = res.reason, res.notes
    else:
        res = auto_fold(cfg, board.capacity, target_fps=args.fps, f_clk=f_clk, lut_budget=budget.lut,
                        bram_budget=budget.bram36, fps_name=(where, "--fps"))
        (bottleneck, worst_cycles), e = res.bottleneck, res.estimate
        figures = f"estimated {e.lut + e.lutram:,} LUT, {e.bram36:g} BRAM36 of {board.capacity.part}"
        reason = res.reason
        notes = stop_notes(cfg, worst_cycles, None, reason, None if args.fps is None else f_clk / args.fps)
    print(f"{'layer':<12} {'type':<8} {'SIMD':>5} {'PE':>4} {'cycles/frame':>13}  weight_memory")
    for L in cfg.layers:
        mark = "  <- bottleneck" if L.name == bottleneck else ""
        style = "" if L.type == "maxpool" else L.weight_memory
        print(f"{L.name:<12} {L.type:<8} {L.simd:>5} {L.pe:>4} {cfg.layer_cycles(L):>13,}  {style:<13}{mark}".rstrip())
    print(f"{f_clk / worst_cycles:,.0f} frames/s at {args.clock:g} MHz ({reason}); {figures}")
    out = Path(args.out)
    ref = cfg.weights_ref
    if ref != "random":
        ref = os.path.relpath(ref, out.resolve().parent)
    how = "measured search" if args.measured else "cost model"
    head = [f"# qnnfab fold ({how}, budget {budget.describe(board.capacity)}): {worst_cycles:,} cycles/frame",
            f"# stopped: {reason}", "# why each layer's folding stopped where it is:"]
    head += [f"#   {name}: {why}" for name, why in notes.items()]
    atomic_write_text(out, "\n".join(head) + "\n" + netconfig.dumps(cfg, ref))
    print(f"folded config: {out}")
    if args.measured:
        print(f"confirm it: qnnfab report --config {out} --board {args.board} --links (its stages are cached)")
    return 0


def search_args(f):
    """The budget and Dask options of the measured search (fold, explore)."""
    f.add_argument("--lut", type=float, metavar="PCT",
                   help="LUT budget (logic and LUT-RAM) in percent of the device (default 90 measured, "
                        "80 with the cost model)")
    f.add_argument("--bram", type=float, metavar="PCT",
                   help="BRAM36 budget in percent (default 100 measured, 90 with the cost model)")
    f.add_argument("--dsp", type=float, metavar="PCT", help="DSP budget in percent (default 100; measured only)")
    f.add_argument("--ff", type=float, metavar="PCT", help="flip-flop budget in percent (default 100; measured only)")
    f.add_argument("--margin", type=float, metavar="PCT",
                   help="raise the measured figures by this percentage before the budget check (default 0)")
    f.add_argument("--meet-clock", action="store_true",
                   help="every layer's Yosys logic-delay bound must be within one --clock period; a layer "
                        "beyond it gets pipeline = \"max\" and is measured again (measured only)")
    f.add_argument("--prune", type=float, metavar="PCT",
                   help="measure the cost model's proposals up to this far beyond the budget (default 15; "
                        "measured only)")
    f.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run the Yosys syntheses on this Dask scheduler's workers (qnnfab installed there; "
                        "default: a local cluster, one worker per core)")
    f.add_argument("--workers", type=int, help="worker processes of the local cluster (default: cores)")


def add_parser(sub):
    f = sub.add_parser(
        "fold", help="choose PE/SIMD per layer for a frame rate, or the fastest that fits",
        description="FINN-style folding search: raise the bottleneck layer's SIMD, then PE, until the "
                    "target is met or the board's budget is reached; writes the folded config, with why each "
                    "layer stopped where it did. By default the budget is checked on the cost model "
                    "(qnnfab.boards.estimate.cost, calibrated on Yosys; 80% LUT, 90% BRAM); with "
                    "--measured the foldings are measured with Yosys, stage by stage as "
                    "`qnnfab report` does (cached; the syntheses run as Dask tasks), from where the cost model's "
                    "search stops: back along its path while the measured design exceeds the budget, then "
                    "forward until the next step does (90% LUT, 100% BRAM, DSP, FF).",
        epilog="examples:\n  qnnfab fold --config configs/cnv_w1a1.toml --fps 3000 --out cnv_3k.toml\n"
               "  qnnfab fold --config configs/lfc_w1a1.toml --fastest --out lfc_fast.toml\n"
               "  qnnfab fold --config configs/cnv_w1a1.toml --fastest --measured --out cnv_fast.toml\n"
               "  qnnfab fold --config configs/cnv_w1a1.toml --fastest --measured "
               "--scheduler tcp://10.0.0.5:8786 --out cnv_fast.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    board_args(f, report=False)
    f.add_argument("--fps", type=float, help="target frames per second (> 0) at --clock")
    f.add_argument("--fastest", action="store_true", help="the fastest folding that fits the board")
    f.add_argument("--measured", action="store_true",
                   help="check every proposed folding on Yosys results (per stage, cached) instead of the "
                        "cost model")
    search_args(f)
    f.add_argument("--no-rebalance", action="store_true",
                   help="measured only: keep the walk's choice (the cost model's path, each step raising "
                        "the bottleneck) without the rebalancing after it, which gives every layer its "
                        "cheapest measured folding within a cycles target and may find a faster (or, for "
                        "--fps, cheaper) design at the price of more syntheses")
    f.add_argument("--out", required=True, metavar="FILE.toml",
                   help="where to write the folded config (a .toml in an existing folder)")
    f.set_defaults(func=run)

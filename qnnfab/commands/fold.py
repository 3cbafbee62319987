"""``qnnfab fold``: PE/SIMD per layer for a frame rate, or the fastest folding that fits."""

import argparse
import os
from pathlib import Path

from qnnfab import netconfig
from qnnfab.boards.targets import get_board
from qnnfab.boards.estimate.fold import auto_fold
from qnnfab.errors import ConfigError
from qnnfab.flow import check_out_file, steps

from .common import as_option, board_args, check_clock_jobs, number


def run(args):
    where = "qnnfab fold"
    if (args.fps is None) == (not args.fastest):
        raise ConfigError(where, "--fps/--fastest", "give exactly one of them",
                          "e.g. --fps 100000 or --fastest")
    check_clock_jobs(args, where)
    number(where, "--fps", args.fps, above=0, fix="e.g. --fps 100000, or --fastest")
    check_out_file(where, "--out", args.out, ".toml")
    with as_option(where, "--board"):
        board = get_board(args.board)
    cfg = steps.load(args.config)
    res = auto_fold(cfg, board.capacity, target_fps=args.fps, f_clk=args.clock * 1e6, fps_name=(where, "--fps"))
    print(f"{'layer':<12} {'type':<8} {'SIMD':>5} {'PE':>4} {'cycles/frame':>13}  weight_memory")
    for L, (_, cyc) in zip(cfg.layers, res.cycles):
        mark = "  <- bottleneck" if L.name == res.bottleneck[0] else ""
        style = "" if L.type == "maxpool" else L.weight_memory
        print(f"{L.name:<12} {L.type:<8} {L.simd:>5} {L.pe:>4} {cyc:>13,}  {style:<13}{mark}".rstrip())
    e = res.estimate
    fps = args.clock * 1e6 / res.bottleneck[1]
    print(f"{fps:,.0f} frames/s at {args.clock:g} MHz ({res.reason}); estimated {e.lut + e.lutram:,} LUT, "
          f"{e.bram36:g} BRAM36 of {board.capacity.part}")
    out = Path(args.out)
    ref = cfg.weights_ref
    if ref != "random":
        ref = os.path.relpath(ref, out.resolve().parent)
    out.write_text(netconfig.dumps(cfg, ref))
    print(f"folded config: {out}")
    return 0


def add_parser(sub):
    f = sub.add_parser(
        "fold", help="choose PE/SIMD per layer for a frame rate, or the fastest that fits",
        description="FINN-style folding search: raise the bottleneck layer's SIMD, then PE, until the "
                    "target is met or the board's budget (80% LUT, 90% BRAM, cost model of "
                    "qnnfab.boards.estimate.cost, calibrated on Yosys: lanes, and weight memories as Yosys maps "
                    "them) is reached; writes the folded config.",
        epilog="examples:\n  qnnfab fold --config configs/cnv_w1a1.toml --fps 3000 --out cnv_3k.toml\n"
               "  qnnfab fold --config configs/lfc_w1a1.toml --fastest --out lfc_fast.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    board_args(f, report=False)
    f.add_argument("--fps", type=float, help="target frames per second (> 0) at --clock")
    f.add_argument("--fastest", action="store_true", help="the fastest folding that fits the board")
    f.add_argument("--out", required=True, metavar="FILE.toml",
                   help="where to write the folded config (a .toml in an existing folder)")
    f.set_defaults(func=run)

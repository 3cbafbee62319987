"""``qnnfab report``: resources and throughput per layer (Yosys), bottleneck, PNG chart."""

import argparse

from qnnfab.cache import check_cache_dir
from qnnfab.boards.targets import get_board
from qnnfab.flow import Run, check_out_file, flows, steps

from .common import as_option, board_args, check_clock_jobs


def run(args):
    where = "qnnfab report"
    check_cache_dir(where)
    check_clock_jobs(args, where)
    if args.png:
        check_out_file(where, "--png", args.png, ".png")
    with as_option(where, "--board"):
        board = get_board(args.board)
    cfg = steps.load(args.config, args.weights_mode)
    flows.run(flows.report, Run(cfg=cfg, board=board, jobs=args.jobs, clock_mhz=args.clock, links_wanted=args.links,
                                allow_overflow=args.allow_overflow,
                                png=args.png))
    return 0


def add_parser(sub):
    r = sub.add_parser(
        "report", help="resources and throughput per layer, bottleneck, PNG chart",
        description="Check the network against the board's part with the cost model (refused when it is "
                    "over, unless --allow-overflow), then synthesize every layer with Yosys synth_xilinx "
                    "(cached, in parallel) and print "
                    "LUT/FF/BRAM/DSP and cycles per frame per layer against the board.",
        epilog="example:\n  qnnfab report --config configs/lfc_small.toml --png lfc.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    board_args(r)
    r.add_argument("--png", metavar="FILE.png",
                   help="write a bar chart of cycles and LUTs per layer (a .png in an existing folder)")
    r.add_argument("--links", action="store_true",
                   help="also time the paths between layers: synthesize every two adjacent layers together "
                        "with the FIFO and width converter between them (about doubles the Yosys time)")
    r.add_argument("--allow-overflow", action="store_true",
                   help="synthesize the network even when the cost model puts it above the board's part: a "
                        "warning instead of the error")
    r.set_defaults(func=run)

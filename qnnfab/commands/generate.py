"""``qnnfab generate``: the accelerator Verilog, the PYNQ overlay (or self-test build plan)
and the resource report of a network for a board, or the GEMM engine's overlay."""

import argparse

from qnnfab.cache import check_cache_dir
from qnnfab.boards.targets import get_board
from qnnfab.boards.emit.gemm import default_panels, gemm_resources, parse_array
from qnnfab.boards.targets.clock import check_clock
from qnnfab.boards.targets.device import describe_overflows
from qnnfab.errors import ConfigError
from qnnfab.flow import OutputFolder, Run, flows, steps

from .common import as_option, board_args, check_clock_jobs, warn


def check_board_clock(args, where, top):
    """The board of ``--board``, checked to make ``--clock`` for ``top``."""
    with as_option(where, "--board"):
        board = get_board(args.board)
    with as_option(where, "--clock"):
        check_clock(top, args.clock, board)
    return board


def run(args):
    where = "qnnfab generate"
    check_cache_dir(where)
    check_clock_jobs(args, where)
    if args.gemm is not None:
        return generate_gemm(args, where)
    if args.config is None:
        raise ConfigError(where, "--config", "is required", "give --config FILE (or --gemm ROWSxCOLS for the "
                          "GEMM engine)")
    board = check_board_clock(args, where, args.top)
    cfg = steps.load(args.config, args.weights_mode)
    # checks before any Verilog is written: the folder, the model, then Yosys
    reads = [args.config] + ([cfg.weights_ref] if cfg.weights_ref != "random" else [])
    out = OutputFolder(where, "--out", args.out, staged=True, force=args.force, reads=reads)
    state = Run(cfg=cfg, board=board, board_name=args.board, clock_mhz=args.clock, jobs=args.jobs,
                data_width=args.data_width, no_report=args.no_report, allow_overflow=args.allow_overflow,
                out=out.path)
    flows.run(flows.generate(args.top), state, out)
    return 0


def generate_gemm(args, where):
    if args.config is not None:
        raise ConfigError(where, "--gemm", "cannot be combined with --config", "give one of them")
    if args.top != "overlay":
        raise ConfigError(where, "--gemm", f"has no --top {args.top}", "leave --top at overlay")
    rows, cols = parse_array(args.gemm)
    board = check_board_clock(args, where, "overlay")
    device = board.capacity
    panels = default_panels(rows, cols, data_width=args.data_width, device=device)  # refuses what BRAM cannot hold
    what = f"GEMM engine {rows}x{cols}"
    over = steps.check_fit(what, gemm_resources(rows, cols, panels), device, allow_overflow=args.allow_overflow,
                           fix=f"use a smaller array (one DSP per PE: {device.dsp} on {device.part}), or "
                               "--allow-overflow to write it anyway")
    if over:
        warn(f"{what} does not fit {device.part}: {describe_overflows(over)}; writing it anyway (--allow-overflow)")
    out = OutputFolder(where, "--out", args.out, staged=True, force=args.force)
    flows.run(flows.generate_gemm, Run(rows=rows, cols=cols, panels=panels, board=board, board_name=args.board,
                                       clock_mhz=args.clock, data_width=args.data_width, out=out.path), out)
    return 0


def add_parser(sub):
    g = sub.add_parser(
        "generate", help="Verilog + PYNQ overlay (Vivado Tcl, driver) + resource report for a board",
        description="Validate the config, synthesize every layer with Yosys (cached) and check the "
                    "design fits the board, then write the accelerator Verilog (AXI-Stream ports), "
                    "the PYNQ overlay folder (AXI shell, Vivado block design Tcl and build.sh, driver, "
                    "README; no Vivado needed to write it) and the report. --clock is FCLK_CLK0 of "
                    "the block design and the frequency the build constrains.",
        epilog="examples:\n  qnnfab generate --board pynq-z2 --config configs/lfc_small.toml --out out/lfc\n"
               "  qnnfab generate --board pynq-z1 --clock 125 --config configs/lfc_small.toml --out out/lfc-z1\n"
               "  qnnfab generate --top selftest --config configs/lfc_small.toml --out out/lfc-selftest\n"
               "  qnnfab generate --config configs/cnv_small.toml --out out/lfc --force   (replace it)\n"
               "--out must be new or empty; --force replaces the files an earlier qnnfab generate wrote there "
               "(listed in its .qnnfab-manifest.json) and keeps every other file.\nFirst run: minutes (Yosys per layer, one progress line each); later runs "
               "reuse the cache.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    board_args(g, config_required=False)
    g.add_argument("--gemm", metavar="ROWSxCOLS",
                   help="instead of a network (no --config): the systolic GEMM engine of ROWS x COLS PEs "
                        "(16-bit <16,14> words, stochastic/nearest rounding) in the AXI shell, its Vivado "
                        "folder and driver (driver.Gemm)")
    g.add_argument("--out", required=True, metavar="DIR",
                   help="output folder: new or empty (an earlier run's files never mix with this one's)")
    g.add_argument("--force", action="store_true",
                   help="replace the files an earlier qnnfab generate wrote into --out (listed with their sha256 in its "
                        ".qnnfab-manifest.json); other files there are kept, a changed listed file or one "
                        "this run reads is refused, and folders without a manifest are never touched")
    g.add_argument("--no-report", action="store_true", help="skip Yosys (model-based fit check only)")
    g.add_argument("--allow-overflow", action="store_true",
                   help="write the design even when it does not fit the board's part (by the model estimate "
                        "or the Yosys report): a warning instead of the error; Vivado will fail to place it")
    g.add_argument("--top", choices=("overlay", "selftest"), default="overlay",
                   help="overlay (default): the accelerator in an AXI shell beside the Zynq PS, Vivado "
                        "block design Tcl + build.sh, driver; selftest: a standalone top (LFSR frames in, "
                        "label on the LEDs) as Amaranth's build plan")
    g.add_argument("--data-width", type=int, choices=(32, 64, 128), default=64, metavar="BITS",
                   help="data width of the overlay's AXI master to DDR: 32, 64 (default, the HP port's) "
                        "or 128")
    g.set_defaults(func=run)

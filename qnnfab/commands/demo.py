"""``qnnfab demo``: the main job of the README, from data to checked hardware.

1. train a binarized MLP (64-256-256-10 by default, first layer on 5-bit
   pixels; ``--hidden``/``--act-bits`` choose another MLP or a small conv net and
   k-bit activations) on the 8x8 digits shipped with qnnfab, with the three
   binarization schemes and a float baseline of the same size (progress per
   epoch), and plot the curves;
2. export the STE network (integer weights + folded thresholds, ``.npz`` and
   ``.toml``), check that the integer network reproduces every prediction;
3. generate its hardware for PYNQ-Z2 with generate's steps: per-layer Yosys
   resources, fit check, accelerator Verilog and the board's self-test build
   plan (``hw/``, written atomically);
4. simulate the whole accelerator on Verilator over every test image with
   the compiled engine (:mod:`qnnfab.sim.compiled`), with random gaps and
   backpressure on part of them and unstalled on all of them, comparing every
   output word with the golden model;
5. print accuracy (float, binarized, hardware), hardware vs golden agreement,
   cycles per frame, frames/s at 100 MHz and the resource table;
6. run the board's Python driver over every test image in co-simulation of
   the PYNQ overlay shell (AXI4-Lite registers, AXI4 DMA, cocotbext-axi as
   the Zynq PS and DDR) and check its labels against the golden model.

The steps are :data:`qnnfab.flow.flows.demo`.
"""

import argparse

from qnnfab.cache import check_cache_dir
from qnnfab.boards.targets import get_board
from qnnfab.flow import OutputFolder, flows
from qnnfab.train.datasets import load_digits
from qnnfab.training import describe_arch

from .common import arch_args, as_option, check_train_args


def run(args):
    where = "qnnfab demo"
    check_cache_dir(where)
    check_train_args(args, where)
    with as_option(where, "--board"):
        board = get_board(args.board)
    with as_option(where, "--hidden"):
        describe_arch(load_digits(), args.hidden, args.act_bits)  # the architecture fits the digits
    out = OutputFolder(where, "--out", args.out)
    state, hw = flows.demo_run(out.path, board, args.board, seed=args.seed, epochs=args.epochs, hidden=args.hidden,
                               act_bits=args.act_bits)
    flows.run(flows.demo, state, hw)
    return 0


def add_parser(sub):
    d = sub.add_parser(
        "demo", help="the main job: train, export, generate, simulate on Verilator, report",
        description="Train a binarized MLP (or conv net, --hidden) on the shipped digits (three schemes + "
                    "float), export the STE network, "
                    "generate its hardware for PYNQ-Z2 (Yosys report, Verilog, build plan), simulate "
                    "the whole accelerator on Verilator over every test image against the golden "
                    "model, and print accuracy, agreement, cycles/frame, frames/s and resources.",
        epilog="examples:\n  qnnfab demo --out out/demo\n"
               "  qnnfab demo --hidden c64,p2,256 --act-bits 2 --out out/demo-conv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    d.add_argument("--seed", type=int, default=None, help="random seed in [0, 2^31) for the regressions")
    d.add_argument("--epochs", type=int, default=30, help="training epochs per scheme (>= 1, default 30)")
    d.add_argument("--board", default="pynq-z2", help="target board (default pynq-z2)")
    arch_args(d)
    d.set_defaults(func=run)

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

# One BLAS thread unless the user chose otherwise: the trainer's and the golden
# model's matrices are small, and on a loaded 2-core machine OpenBLAS's thread
# pool made training 10-20x slower. Must be set before NumPy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from qnnfab.errors import ConfigError, QnnfabError  # noqa: E402

EPILOG_MAIN = """examples:
  qnnfab sim --list                 list the cocotb regressions
  qnnfab sim --config configs/cnv_small.toml --frames 1000   a whole network at Verilator speed
  qnnfab verify --config X.toml --data test.npz              a data set through the hardware
  qnnfab sim xnor_popcount          run one regression on Verilator
  qnnfab sim                        run them all
  qnnfab demo                       the end-to-end demo
  qnnfab boards                     supported boards
  qnnfab generate --board pynq-z2 --config configs/lfc_small.toml --out out/lfc
  qnnfab report --config configs/cnv_small.toml --png cnv.png
  qnnfab fold --config configs/lfc_w1a1.toml --fastest --out lfc_fast.toml
"""


def _cmd_sim(args):
    from qnnfab.sim import registry

    regs = registry.regressions()
    if args.config:
        if args.names:
            raise ConfigError("qnnfab sim", "--config", "cannot be combined with regression names",
                              "run `qnnfab sim --config FILE` on its own")
        from qnnfab import netconfig
        from pathlib import Path
        path = Path(args.config).resolve()
        cfg = netconfig.load(path)  # validate before any build
        if args.frames < 1:
            raise ConfigError("qnnfab sim", "--frames", f"must be at least 1, got {args.frames}",
                              "give the number of frames to simulate, e.g. --frames 100")
        if args.engine == "compiled":
            seed = args.seed if args.seed is not None else 1
            frames = cfg.random_inputs(args.frames, seed)
            return _simulate_compiled(cfg, frames, None, seed)
        jobs = [("network", {"config": str(path), "frames": args.frames})]
        return _run_jobs(regs, jobs, ["network"], args.seed)
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
    return _run_jobs(regs, jobs, names, args.seed)


def _simulate_compiled(cfg, frames, labels, seed):
    """Frames through the compiled engine: the summary lines, exit 1 on any difference from golden."""
    import numpy as np
    from qnnfab.sim.compiled import verify_network
    n = frames.shape[0]
    print(f"qnnfab sim: {n} frames of network '{cfg.name}' on the compiled engine (Verilator), seed {seed}",
          flush=True)
    res = verify_network(cfg, frames, seed=seed, log=lambda m: print("  " + m, flush=True))
    how = "cached build" if res.build.cached else f"built in {res.build.seconds:.0f} s"
    print(f"  {res.stalled_frames} frames under random gaps and backpressure: every word equal to golden, "
          f"stream rules kept ({how})")
    print(f"simulation: {n} frames, {res.cycles} cycles, {res.cycles_per_second:,.0f} cycles/s (compiled)")
    rows, (bottleneck, model), _ = cfg.throughput()
    print(f"steady state: {res.cycles_per_frame:.1f} cycles/frame (model {model}, bottleneck {bottleneck})"
          if n >= 2 else "steady state: needs at least 2 frames")
    print(f"hardware vs golden: {res.frames_identical} of {n} frames identical, "
          f"labels agree on {100 * res.agreement:.2f}%")
    if labels is not None:
        print(f"accuracy: hardware {100 * res.accuracy(labels):.2f}%, golden "
              f"{100 * float(np.mean(res.golden_labels == labels)):.2f}% on {n} labelled frames")
    if not res.identical:
        print(f"qnnfab sim: MISMATCH: {res.first_mismatch}")
        return 1
    return 0


def _cmd_verify(args):
    from qnnfab.sim.datafile import load_frames
    cfg = _load_config(args.config)
    frames, labels = load_frames(args.data, cfg)
    if args.limit is not None:
        frames = frames[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    return _simulate_compiled(cfg, frames, labels, args.seed)


def _run_jobs(regs, jobs, names, seed):
    from qnnfab.sim import registry
    failed = []
    t_all = time.monotonic()
    print(f"qnnfab sim: {len(jobs)} cases in {len(names)} regression(s), "
          f"simulator {os.environ.get('SIM', 'verilator')}", flush=True)
    for k, (n, params) in enumerate(jobs, 1):
        label = f"[{k}/{len(jobs)}] {n} {registry.case_id(params)}"
        print(f"{label} ...", end="", flush=True)
        t0 = time.monotonic()
        try:
            res = registry.run_case(n, params, seed=seed)
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


def _load_config(path):
    from qnnfab import netconfig
    return netconfig.load(path)


def _cmd_boards(args):
    from qnnfab.boards import BOARDS
    print(f"{'board':<10} {'part':<18} {'LUT':>7} {'FF':>8} {'BRAM36':>7} {'DSP':>4}  clock")
    for name, plat in BOARDS.items():
        d = plat.capacity
        clk = plat().default_clk_frequency / 1e6
        print(f"{name:<10} {d.part:<18} {d.lut:>7,} {d.ff:>8,} {d.bram36:>7} {d.dsp:>4}  {clk:g} MHz")
    return 0


def _report(cfg, board, jobs, clock_mhz):
    from qnnfab.boards.report import format_report, network_report
    print(f"synthesizing {len(cfg.layers)} layers with Yosys (cached; {jobs} in parallel) ...", flush=True)
    rep = network_report(cfg, jobs=jobs, f_clk=clock_mhz * 1e6,
                         progress=lambda msg: print(msg, flush=True))
    return rep, format_report(rep, board.capacity)


def _cmd_report(args):
    from qnnfab.boards import get_board
    from qnnfab.boards.report import plot_report
    board = get_board(args.board)
    cfg = _load_config(args.config)
    rep, text = _report(cfg, board, args.jobs, args.clock)
    print(text)
    if args.png:
        plot_report(rep, args.png)
        print(f"bar chart: {args.png}")
    return 0


def _cmd_generate(args):
    from pathlib import Path
    from qnnfab.boards import check_fits, get_board
    from qnnfab.boards.fold import estimate
    from qnnfab.boards.plan import write_accelerator, write_build_plan, write_overlay
    from qnnfab.boards.report import plot_report
    board = get_board(args.board)
    cfg = _load_config(args.config)
    out = Path(args.out)
    # checks before any Verilog is written: the model, then Yosys
    check_fits(f"network '{cfg.name}' (model estimate)", estimate(cfg), board.capacity, margin=1.0)
    text = None
    if not args.no_report:
        rep, text = _report(cfg, board, args.jobs, args.clock)
        check_fits(f"network '{cfg.name}'", rep.total, board.capacity)
    out.mkdir(parents=True, exist_ok=True)
    name, _ = write_accelerator(cfg, out / "accel")
    print(f"accelerator IP (AXI-Stream ports): {out / 'accel'}/ (module {name})")
    if args.top == "overlay":
        bd, files, parts = write_overlay(cfg, board, args.clock, out / "overlay")
        print(f"PYNQ overlay for {args.board} at {args.clock:g} MHz (Vivado: {out / 'overlay'}/build.sh): "
              f"{', '.join(files)}")
        if parts.stand_in:
            print("  the AXI shell and driver are not in this version: overlay/ holds the bare accelerator "
                  "as a stand-in and cannot be built yet (see its README.md)")
    else:
        files = write_build_plan(cfg, board, out / "plan", clock_mhz=args.clock)
        print(f"self-test build plan for {args.board} (Vivado: cd {out / 'plan'} && sh build_top.sh): "
              f"{', '.join(files)}")
    if text is not None:
        (out / "report.txt").write_text(text + "\n")
        plot_report(rep, out / "report.png")
        print(text)
        print(f"report: {out / 'report.txt'}, {out / 'report.png'}")
    return 0


def _cmd_fold(args):
    from pathlib import Path
    from qnnfab import netconfig
    from qnnfab.boards import get_board
    from qnnfab.boards.fold import auto_fold
    board = get_board(args.board)
    cfg = _load_config(args.config)
    if (args.fps is None) == (not args.fastest):
        raise ConfigError("qnnfab fold", "--fps/--fastest", "give exactly one of them",
                          "e.g. --fps 100000 or --fastest")
    res = auto_fold(cfg, board.capacity, target_fps=args.fps, f_clk=args.clock * 1e6)
    print(f"{'layer':<12} {'type':<8} {'SIMD':>5} {'PE':>4} {'cycles/frame':>13}")
    for L, (_, cyc) in zip(cfg.layers, res.cycles):
        mark = "  <- bottleneck" if L.name == res.bottleneck[0] else ""
        print(f"{L.name:<12} {L.type:<8} {L.simd:>5} {L.pe:>4} {cyc:>13,}{mark}")
    e = res.estimate
    fps = args.clock * 1e6 / res.bottleneck[1]
    print(f"{fps:,.0f} frames/s at {args.clock:g} MHz ({res.reason}); estimated {e.lut + e.lutram:,} LUT, "
          f"{e.bram36:g} BRAM36 of {board.capacity.part}")
    out = Path(args.out)
    ref = cfg.weights_ref
    if ref != "random":
        import os
        ref = os.path.relpath(ref, out.resolve().parent)
    out.write_text(netconfig.dumps(cfg, ref))
    print(f"folded config: {out}")
    return 0


def _cmd_demo(args):
    from qnnfab import demo
    return demo.run(args.out, args.seed, epochs=args.epochs, board_name=args.board, hidden=args.hidden,
                    act_bits=args.act_bits)


def _cmd_train(args):
    from pathlib import Path
    from qnnfab.train.datasets import load_digits, load_npz
    from qnnfab.train.trainer import parse_hidden
    from qnnfab.training import describe_arch, format_table, plot_curves, run_training
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    hidden = tuple(t for t, _ in parse_hidden(args.hidden))
    ds = load_digits() if args.data is None else load_npz(args.data, pixel_bits=args.pixel_bits)
    print(f"training on {ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test images, "
          f"{describe_arch(ds, hidden, args.act_bits)}, {args.epochs} epochs")
    results = run_training(ds, schemes, hidden=hidden, epochs=args.epochs, batch=args.batch,
                           seed=args.seed, out_dir=args.out, act_bits=args.act_bits, lr=args.lr)
    print(format_table(results))
    for r in results:
        if r.toml_path:
            print(f"exported {r.scheme}: {r.toml_path}  (qnnfab generate/sim --config accept it)")
    png = plot_curves(results, Path(args.out) / "training_curves.png")
    print(f"training curves: {png}")
    return 0


def arch_args(p):
    """--hidden and --act-bits: the trained network's architecture (train and demo)."""
    p.add_argument("--hidden", default="256,256",
                   help="hidden layers, comma-separated: n = fully connected, c<n> / c<n>k<k> = 3x3 / kxk "
                        "convolution with n channels, p<k> = k x k max pool (default 256,256; "
                        "e.g. c64,p2,256)")
    p.add_argument("--act-bits", type=int, default=1,
                   help="hidden activation bits of the binarized networks: 1 = bipolar (sign), "
                        "k >= 2 = unsigned k-bit (default 1; the float baseline uses relu)")


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
               "  qnnfab sim --config configs/lfc_small.toml --frames 200\n"
               "  SIM=icarus qnnfab sim xnor_popcount   (when iverilog is installed)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("names", nargs="*", metavar="NAME", help="regressions to run (default: all)")
    s.add_argument("--list", action="store_true", help="list the regressions and exit")
    s.add_argument("--config", metavar="FILE", help="run the whole-network regression on this config")
    s.add_argument("--frames", type=int, default=100, help="frames per test with --config (default 100)")
    s.add_argument("--engine", choices=("compiled", "cocotb"), default="compiled",
                   help="with --config: 'compiled' (default) runs a Verilator C++ testbench at full speed; "
                        "'cocotb' runs the cycle-by-cycle cocotb network regression")
    s.add_argument("--seed", type=int, default=None,
                   help="random seed (default: fresh per case, printed; or $QNNFAB_SEED)")
    s.set_defaults(func=_cmd_sim)

    v = sub.add_parser(
        "verify", help="run a whole data set through the hardware (compiled engine) against the golden model",
        description="Stream every frame of a data set through the network's accelerator on the compiled "
                    "Verilator engine (a fifth of them also under random gaps and backpressure), compare "
                    "every output word with the golden model and print accuracy, agreement and cycles/frame. "
                    "Exit 1 when any word differs.",
        epilog="examples:\n  qnnfab verify --config out/train/digits-ste.toml --data out/demo/test_images.npz\n"
               "data: an .npz with x (or x_test): frames of stored input values, shape (B,) + the network's "
               "input_shape (or (B, features)), and optionally y (or y_test): labels",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("--config", required=True, metavar="FILE", help="network config (TOML)")
    v.add_argument("--data", required=True, metavar="FILE.npz", help="frames (x / x_test) and labels (y / y_test)")
    v.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N frames")
    v.add_argument("--seed", type=int, default=1, help="seed of the random gaps and backpressure (default 1)")
    v.set_defaults(func=_cmd_verify)

    b = sub.add_parser("boards", help="list the supported boards",
                       description="List the supported boards with their device capacities.",
                       epilog="example:\n  qnnfab boards", formatter_class=argparse.RawDescriptionHelpFormatter)
    b.set_defaults(func=_cmd_boards)

    def board_args(sp, report=True):
        sp.add_argument("--config", required=True, metavar="FILE", help="network config (TOML)")
        sp.add_argument("--board", default="pynq-z2", help="target board (default pynq-z2; see `qnnfab boards`)")
        sp.add_argument("--clock", type=float, default=100.0, metavar="MHZ",
                        help="clock for the throughput figures (default 100 MHz, as BNN-PYNQ)")
        if report:
            sp.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs (default 2)")

    g = sub.add_parser(
        "generate", help="Verilog + PYNQ overlay (Vivado Tcl, driver) + resource report for a board",
        description="Validate the config, synthesize every layer with Yosys (cached) and check the "
                    "design fits the board, then write the accelerator Verilog (AXI-Stream ports), "
                    "the PYNQ overlay folder (AXI shell, Vivado block design Tcl and build.sh, driver, "
                    "README; no Vivado needed to write it) and the report. --clock is FCLK_CLK0 of "
                    "the block design and the frequency the build constrains.",
        epilog="examples:\n  qnnfab generate --board pynq-z2 --config configs/lfc_small.toml --out out/lfc\n"
               "  qnnfab generate --board pynq-z1 --clock 125 --config configs/lfc_small.toml --out out/lfc-z1\n"
               "  qnnfab generate --top selftest --config configs/lfc_small.toml --out out/lfc-selftest",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    board_args(g)
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument("--no-report", action="store_true", help="skip Yosys (model-based fit check only)")
    g.add_argument("--top", choices=("overlay", "selftest"), default="overlay",
                   help="overlay (default): the accelerator in an AXI shell beside the Zynq PS, Vivado "
                        "block design Tcl + build.sh, driver; selftest: a standalone top (LFSR frames in, "
                        "label on the LEDs) as Amaranth's build plan")
    g.set_defaults(func=_cmd_generate)

    r = sub.add_parser(
        "report", help="resources and throughput per layer, bottleneck, PNG chart",
        description="Synthesize every layer with Yosys synth_xilinx (cached, in parallel) and print "
                    "LUT/FF/BRAM/DSP and cycles per frame per layer against the board.",
        epilog="example:\n  qnnfab report --config configs/lfc_small.toml --png lfc.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    board_args(r)
    r.add_argument("--png", metavar="FILE", help="write a bar chart of cycles and LUTs per layer")
    r.set_defaults(func=_cmd_report)

    f = sub.add_parser(
        "fold", help="choose PE/SIMD per layer for a frame rate, or the fastest that fits",
        description="FINN-style folding search: raise the bottleneck layer's SIMD, then PE, until the "
                    "target is met or the board's budget (80%% LUT, 90%% BRAM, per-lane cost model "
                    "calibrated on Yosys) is reached; writes the folded config.",
        epilog="examples:\n  qnnfab fold --config configs/cnv_w1a1.toml --fps 3000 --out cnv_3k.toml\n"
               "  qnnfab fold --config configs/lfc_w1a1.toml --fastest --out lfc_fast.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    board_args(f, report=False)
    f.add_argument("--fps", type=float, help="target frames per second at --clock")
    f.add_argument("--fastest", action="store_true", help="the fastest folding that fits the board")
    f.add_argument("--out", required=True, metavar="FILE", help="where to write the folded config")
    f.set_defaults(func=_cmd_fold)

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
    d.add_argument("--seed", type=int, default=None, help="random seed for the regressions")
    d.add_argument("--epochs", type=int, default=30, help="training epochs per scheme (default 30)")
    d.add_argument("--board", default="pynq-z2", help="target board (default pynq-z2)")
    arch_args(d)
    d.set_defaults(func=_cmd_demo)

    t = sub.add_parser(
        "train", help="quantization-aware training on the shipped digits, export for hardware",
        description="Train a float baseline and binarized MLPs or conv nets (STE, stochastic, progressive "
                    "binarization) on scikit-learn's 8x8 digits shipped with qnnfab, export every "
                    "binarized network as .npz + .toml, check the integer export reproduces every "
                    "prediction, print the accuracy table and plot the training curves.",
        epilog="example:\n  qnnfab train --epochs 30 --out out/train\n"
               "  qnnfab train --hidden c64,p2,256 --act-bits 2 --out out/train-conv\n"
               "  qnnfab sim --config out/train/digits-ste.toml --frames 100",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--schemes", default="float,ste,stochastic,progressive",
                   help="comma-separated schemes among float, ste, stochastic, progressive, ternary "
                        "(default: the first four)")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch", type=int, default=32)
    arch_args(t)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", metavar="FILE.npz", default=None,
                   help="your own images instead of the shipped digits: x_train, y_train, x_test, y_test "
                        "(or x, y), integer pixels or floats in [0, 1], (B, H, W[, C]) or (B, F)")
    t.add_argument("--pixel-bits", type=int, default=8,
                   help="bits of the --data pixels (default 8; floats are quantized to this)")
    t.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate of the binarized schemes (default 0.1, or 0.03 with --act-bits >= 2; "
                        "progressive conv nets train better at 0.01)")
    t.add_argument("--out", default="out/train", help="export folder (default out/train)")
    t.set_defaults(func=_cmd_train)
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

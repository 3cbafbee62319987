"""The ``qnnfab`` command line.

Every sub-command has ``--help`` with an example. Errors that qnnfab raises on
purpose (bad configuration, missing tools, failed regressions) are printed as
one clear line (plus the regression report) and give exit status 1 or 2,
without a Python traceback.
"""

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

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
  qnnfab sim --simulator icarus     run them all on Icarus (four-state: X checks)
  qnnfab demo                       the end-to-end demo
  qnnfab boards                     supported boards
  qnnfab generate --board pynq-z2 --config configs/lfc_small.toml --out out/lfc
  qnnfab report --config configs/cnv_small.toml --png cnv.png
  qnnfab fold --config configs/lfc_w1a1.toml --fastest --out lfc_fast.toml
  qnnfab pack-weights --config configs/lfc_small.toml --out lfc_small.bin
"""


# ---------------------------------------------------------------------------
# argument checks: every one runs before any long work (and before anything is written)

def _number(where, option, value, *, minimum=None, above=None, integer=False, fix=None):
    """Raise ConfigError unless ``value`` is a finite number (> ``above`` / >= ``minimum``)."""
    if value is None:
        return value
    ok = math.isfinite(value) and (above is None or value > above) and (minimum is None or value >= minimum)
    if not ok:
        rule = f"> {above:g}" if above is not None else f">= {minimum:g}" if minimum is not None else "finite"
        raise ConfigError(where, option, f"must be a {'whole' if integer else 'finite'} number {rule}, "
                          f"got {value!r}", fix or f"pass {option} <number {rule}>")
    return value


def _probe_writable(folder, where, option, shown):
    """Create and delete a file in ``folder`` (os.access says yes to root even on /proc)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ConfigError(where, option, f"cannot write in {shown} ({e.strerror})",
                          "choose a folder you can write to") from None


def check_out_file(where, option, path, suffix):
    """An output file: ``suffix`` extension, an existing writable folder, not a directory itself."""
    p = Path(path)
    if p.suffix.lower() != suffix:
        stem = p.stem if p.stem and not p.stem.startswith(".") else "out"
        raise ConfigError(where, option, f"{path!r} does not end in {suffix}", f"name the file e.g. {stem}{suffix}")
    if p.is_dir():
        raise ConfigError(where, option, f"{path} is a directory", f"name a file in it, e.g. {p / ('out' + suffix)}")
    parent = p.parent
    if not parent.is_dir():
        raise ConfigError(where, option, f"the folder {parent} does not exist", f"create it first (mkdir -p {parent})")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(where, option, f"{path} is not writable", "choose another file")
    _probe_writable(parent, where, option, parent)
    return p


class OutDir:
    """An output folder named by the user, checked (and created) at argument parsing.

    ``empty=True``: it must be missing or empty, unless ``force`` and an earlier
    run of qnnfab marked it (``MARK``): then its whole content is replaced.
    Folders created here are removed again by :meth:`undo` when a later check
    fails, so a failing command leaves nothing behind.
    """
    MARK = ".qnnfab-generated"

    def __init__(self, where, option, path, *, empty=False, force=False):
        if not str(path).strip():
            raise ConfigError(where, option, "is an empty path", "name a folder, e.g. out/net")
        self.path = p = Path(path)
        if p.exists() and not p.is_dir():
            raise ConfigError(where, option, f"{path} exists and is not a folder",
                              "name a new or existing folder")
        anc = p
        while not anc.exists():
            anc = anc.parent
        if not anc.is_dir():
            raise ConfigError(where, option, f"{anc} is not a folder", "name a folder path")
        self.created = []
        self.replace = False
        if p.is_dir() and empty and any(p.iterdir()):
            if not force:
                raise ConfigError(where, option, f"{path} is not empty (an earlier run's files would mix with "
                                  "this one's)", "name a new or empty folder, or add --force to replace a folder "
                                  "that qnnfab generate wrote")
            if not (p / self.MARK).exists():
                raise ConfigError(where, option, f"{path} is not empty and was not written by qnnfab generate "
                                  "(no .qnnfab-generated in it); --force replaces only such folders",
                                  "name a new or empty folder")
            self.replace = True
        missing = []
        q = p
        while not q.exists():
            missing.append(q)
            q = q.parent
        try:
            for d in reversed(missing):
                d.mkdir()
                self.created.append(d)
        except OSError as e:
            self.undo()
            raise ConfigError(where, option, f"cannot create {path} ({e.strerror})",
                              "choose a folder you can write to") from None
        try:
            _probe_writable(p, where, option, p)
        except ConfigError:
            self.undo()
            raise

    def clear(self):
        """Remove the content of a folder an earlier run wrote (``--force``), then mark it ours."""
        import shutil
        if self.replace:
            for f in self.path.iterdir():
                if f.is_dir() and not f.is_symlink():
                    shutil.rmtree(f)
                else:
                    f.unlink()
        (self.path / self.MARK).write_text("written by qnnfab generate; --force replaces this folder's content\n")

    def undo(self):
        for d in reversed(self.created):
            try:
                d.rmdir()
            except OSError:
                pass
        self.created = []


def _check_board(name):
    from qnnfab.boards.targets import get_board
    return get_board(name)


def _simulator(args):
    """The simulator ``--simulator`` or ``$SIM`` selects, checked before any build."""
    from qnnfab.sim.toolchain import SIMULATORS, icarus_available
    option = "--simulator" if args.simulator else "SIM"
    sim = (args.simulator or os.environ.get("SIM") or "verilator").strip().lower()
    if sim not in SIMULATORS:
        raise ConfigError("qnnfab sim", option, f"unknown simulator {sim!r}", f"use one of: {', '.join(SIMULATORS)}")
    if sim == "icarus" and not icarus_available():
        raise ConfigError("qnnfab sim", option, "icarus: 'iverilog'/'vvp' are not on PATH",
                          "install Icarus Verilog (apt-get install iverilog) or use verilator")
    return sim


def _cmd_sim(args):
    from qnnfab.sim import registry

    where = "qnnfab sim"
    if args.list and (args.config or args.names):
        raise ConfigError(where, "--list", "lists the regressions and runs nothing: it cannot be combined with "
                          + ("--config" if args.config else "regression names"), "run `qnnfab sim --list` on its own")
    if args.frames is not None and not args.config:
        raise ConfigError(where, "--frames", "applies to the whole-network regression only",
                          "add --config FILE, or drop --frames")
    if args.seed is not None and not 0 <= args.seed < 2**31:
        raise ConfigError(where, "--seed", f"must be in [0, 2^31), got {args.seed}", "e.g. --seed 42")
    regs = registry.regressions()
    if args.config:
        if args.names:
            raise ConfigError(where, "--config", "cannot be combined with regression names",
                              "run `qnnfab sim --config FILE` on its own")
        from qnnfab import netconfig
        frames = 100 if args.frames is None else args.frames
        if frames < 1:
            raise ConfigError(where, "--frames", f"must be >= 1, got {frames}", "e.g. --frames 100")
        path = Path(args.config).resolve()
        cfg = netconfig.load(path)  # validate before any build
        sim = _simulator(args)
        if args.engine == "compiled" and sim == "verilator":
            seed = args.seed if args.seed is not None else 1
            return _simulate_compiled(cfg, cfg.random_inputs(frames, seed), None, seed)
        jobs = [("network", {"config": str(path), "frames": frames})]
        return _run_jobs(regs, jobs, ["network"], args.seed, sim)
    if args.list:
        width = max(len(n) for n in regs) if regs else 0
        for name, reg in regs.items():
            print(f"{name:<{width}}  {len(reg.cases):2d} cases  {reg.doc}")
        return 0
    names = args.names or list(regs)
    for n in names:
        registry.get(n)  # validates the name before any build
    sim = _simulator(args)
    jobs = []
    for n in names:
        for params in regs[n].cases:
            jobs.append((n, params))
    return _run_jobs(regs, jobs, names, args.seed, sim)


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
    where = "qnnfab verify"
    if args.limit is not None and args.limit < 1:
        raise ConfigError(where, "--limit", f"must be >= 1, got {args.limit}", "e.g. --limit 100, or leave it out")
    if not 0 <= args.seed < 2**31:
        raise ConfigError(where, "--seed", f"must be in [0, 2^31), got {args.seed}", "e.g. --seed 1")
    cfg = _load_config(args.config)
    frames, labels = load_frames(args.data, cfg)
    if args.limit is not None:
        frames = frames[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    return _simulate_compiled(cfg, frames, labels, args.seed)


def _run_jobs(regs, jobs, names, seed, simulator):
    from qnnfab.sim import registry
    failed = []
    t_all = time.monotonic()
    print(f"qnnfab sim: {len(jobs)} cases in {len(names)} regression(s), simulator {simulator}", flush=True)
    for k, (n, params) in enumerate(jobs, 1):
        label = f"[{k}/{len(jobs)}] {n} {registry.case_id(params)}"
        print(f"{label} ...", end="", flush=True)
        t0 = time.monotonic()
        try:
            res = registry.run_case(n, params, seed=seed, simulator=simulator)
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


def _load_config(path, weights_mode=None):
    from qnnfab import netconfig
    cfg = netconfig.load(path)
    if weights_mode is not None:
        cfg.weights_mode = weights_mode
    return cfg


def _cmd_pack_weights(args):
    from qnnfab.plan import save_image
    from qnnfab.weights_image import WORD_BITS, read_header
    out = check_out_file("qnnfab pack-weights", "--out", args.out, ".bin")
    cfg = _load_config(args.config)
    n = save_image(cfg, out)
    _, _, thash, body = read_header(out.read_bytes()[:16])
    print(f"weights image of '{cfg.name}': {out} ({n:,} bytes: 2 header + {body:,} body words of "
          f"{WORD_BITS} bits), topology hash {thash:#010x}; load it into a weights_mode = \"runtime\" "
          f"accelerator of this topology")
    return 0


def _cmd_boards(args):
    from qnnfab.boards.targets import BOARDS
    print(f"{'board':<10} {'part':<18} {'LUT':>7} {'FF':>8} {'BRAM36':>7} {'DSP':>4}  clock")
    for name, plat in BOARDS.items():
        d = plat.capacity
        clk = plat().default_clk_frequency / 1e6
        print(f"{name:<10} {d.part:<18} {d.lut:>7,} {d.ff:>8,} {d.bram36:>7} {d.dsp:>4}  {clk:g} MHz")
    return 0


def _report(cfg, board, jobs, clock_mhz, links=False):
    from qnnfab.boards.estimate.report import format_links, format_report, link_report, network_report
    print(f"synthesizing {len(cfg.layers)} layers with Yosys (cached; {jobs} in parallel; a line per stage as "
          "it finishes) ...", flush=True)
    rep = network_report(cfg, jobs=jobs, f_clk=clock_mhz * 1e6,
                         progress=lambda msg: print(msg, flush=True))
    text = format_report(rep, board.capacity)
    if links and len(cfg.layers) > 1:
        print(f"synthesizing the {len(cfg.layers) - 1} pairs of adjacent layers together (paths between "
              "layers) ...", flush=True)
        text += "\n" + format_links(link_report(cfg, jobs=jobs, progress=lambda msg: print(msg, flush=True)))
    return rep, text


def _check_clock_jobs(args, where):
    _number(where, "--clock", args.clock, above=0, fix="pass the clock in MHz, e.g. --clock 100")
    if getattr(args, "jobs", None) is not None and args.jobs < 1:
        raise ConfigError(where, "--jobs", f"must be >= 1, got {args.jobs}", "e.g. --jobs 2")


def _cmd_report(args):
    from qnnfab.boards.estimate.report import plot_report
    where = "qnnfab report"
    _check_clock_jobs(args, where)
    if args.png:
        check_out_file(where, "--png", args.png, ".png")
    board = _check_board(args.board)
    cfg = _load_config(args.config, args.weights_mode)
    rep, text = _report(cfg, board, args.jobs, args.clock, links=args.links)
    print(text)
    if args.png:
        plot_report(rep, args.png)
        print(f"bar chart: {args.png}")
    return 0


def _cmd_generate(args):
    from qnnfab.boards.emit.accelerator import write_accelerator
    from qnnfab.boards.emit.overlay import write_overlay
    from qnnfab.boards.emit.selftest import write_build_plan
    from qnnfab.boards.estimate.fold import estimate
    from qnnfab.boards.estimate.report import plot_report
    from qnnfab.boards.targets import check_clock, check_fits, describe_overflows, get_board, overflows
    where = "qnnfab generate"
    _check_clock_jobs(args, where)
    if args.gemm is not None:
        return _generate_gemm(args, where)
    if args.config is None:
        raise ConfigError(where, "--config", "is required", "give --config FILE (or --gemm ROWSxCOLS for the "
                          "GEMM engine)")
    board = get_board(args.board)
    check_clock(args.top, args.clock, board)
    cfg = _load_config(args.config, args.weights_mode)
    # checks before any Verilog is written: the folder, the model, then Yosys
    out_dir = OutDir(where, "--out", args.out, empty=True, force=args.force)
    out = out_dir.path
    fix = ("reduce PE/SIMD of the largest layers (qnnfab fold --fastest) or pick a larger board; "
           "--allow-overflow writes it anyway")
    try:
        if args.allow_overflow:
            over = overflows(estimate(cfg), board.capacity)
            if over:
                print(f"warning: network '{cfg.name}' (model estimate) does not fit {board.capacity.part}: "
                      f"{describe_overflows(over)}; writing it anyway (--allow-overflow)", file=sys.stderr)
        else:
            check_fits(f"network '{cfg.name}' (model estimate)", estimate(cfg), board.capacity, fix=fix)
        text = None
        if not args.no_report:
            rep, text = _report(cfg, board, args.jobs, args.clock)
            if not args.allow_overflow:
                check_fits(f"network '{cfg.name}'", rep.total, board.capacity, fix=fix)
    except BaseException:
        out_dir.undo()
        raise
    out_dir.clear()
    name, _ = write_accelerator(cfg, out / "accel")
    print(f"accelerator IP (AXI-Stream ports): {out / 'accel'}/ (module {name})")
    if cfg.weights_mode == "runtime":
        from qnnfab.plan import save_image
        n = save_image(cfg, out / "accel" / "weights.bin")
        print(f"runtime weights: load {out / 'accel' / 'weights.bin'} ({n:,} bytes) through the wload port")
    if args.top == "overlay":
        _, files = write_overlay(cfg, board, args.clock, out / "overlay", data_width=args.data_width)
        print(f"PYNQ overlay for {args.board} at {args.clock:g} MHz, {args.data_width}-bit AXI master "
              f"(Vivado: {out / 'overlay'}/build.sh; then see its README.md): {', '.join(files)}")
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


def _generate_gemm(args, where):
    from qnnfab.boards.emit.gemm import default_panels, parse_array, write_gemm_overlay
    from qnnfab.boards.targets import check_clock, get_board
    if args.config is not None:
        raise ConfigError(where, "--gemm", "cannot be combined with --config", "give one of them")
    if args.top != "overlay":
        raise ConfigError(where, "--gemm", f"has no --top {args.top}", "leave --top at overlay")
    rows, cols = parse_array(args.gemm)
    panels = default_panels(rows, cols, data_width=args.data_width)      # refuses what the BRAM cannot hold
    board = get_board(args.board)
    check_clock("overlay", args.clock, board)
    out_dir = OutDir(where, "--out", args.out, empty=True, force=args.force)
    out_dir.clear()
    _, files = write_gemm_overlay(rows, cols, board, args.clock, out_dir.path / "overlay",
                                  data_width=args.data_width, panels=panels)
    print(f"GEMM engine {rows}x{cols} overlay for {args.board} at {args.clock:g} MHz, {args.data_width}-bit "
          f"AXI master (Vivado: {out_dir.path / 'overlay'}/build.sh): {', '.join(files)}")
    return 0


def _cmd_fold(args):
    from qnnfab import netconfig
    from qnnfab.boards.estimate.fold import auto_fold
    where = "qnnfab fold"
    if (args.fps is None) == (not args.fastest):
        raise ConfigError(where, "--fps/--fastest", "give exactly one of them",
                          "e.g. --fps 100000 or --fastest")
    _check_clock_jobs(args, where)
    _number(where, "--fps", args.fps, above=0, fix="e.g. --fps 100000, or --fastest")
    check_out_file(where, "--out", args.out, ".toml")
    board = _check_board(args.board)
    cfg = _load_config(args.config)
    res = auto_fold(cfg, board.capacity, target_fps=args.fps, f_clk=args.clock * 1e6)
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
        import os
        ref = os.path.relpath(ref, out.resolve().parent)
    out.write_text(netconfig.dumps(cfg, ref))
    print(f"folded config: {out}")
    return 0


def _cmd_import(args):
    from qnnfab import netconfig
    from qnnfab.boards.estimate.fold import auto_fold
    from qnnfab.boards.targets import get_board
    from qnnfab.interop.qonnx_export import require_onnx
    from qnnfab.interop.qonnx_import import import_qonnx, write_imported
    where = "qnnfab import"
    model = Path(args.model)
    if not model.is_file():
        raise ConfigError(where, "MODEL", f"{model} is not a file", "pass a QONNX model (.onnx)")
    name = args.name or netconfig.safe_name(model.stem, "imported")
    netconfig.check_name(where, "--name", name, "network")
    board = get_board(args.board)
    _number(where, "--fps", args.fps, above=0)
    require_onnx()
    out = OutDir(where, "--out", args.out)
    try:
        imp = import_qonnx(model, name=name)
        fold = auto_fold(imp.cfg, board.capacity, target_fps=args.fps, lut_budget=0.5)
    except BaseException:
        out.undo()
        raise
    toml = write_imported(imp, out.path)
    cfg = netconfig.load(toml)
    print(f"imported {model}: {len(cfg.layers)} layers -> {toml} (+ {name}.npz)")
    for L in cfg.layers:
        extra = "" if L.type == "maxpool" else f", {L.weight_kind}{L.weight_bits or ''} weights, act {L.act}"
        print(f"  {L.name:<8} {L.type:<8} {L.in_shape} -> {L.out_shape}{extra}, PE {L.pe} SIMD {L.simd}")
    print(f"folding: {fold.reason}; bottleneck {fold.bottleneck[0]}, {fold.bottleneck[1]:,} cycles/frame")
    codes = imp.input_codes
    how = ("the graph input holds them already" if codes.scale is None else
           f"the model's input quantizer: {codes.rounding.lower()}(x / {codes.scale:g}), clipped")
    print(f"input codes the hardware reads: {codes.kind} ({how}); in Python: "
          f"InputCodes.from_json(open('{out.path / (name + '.input_codes.json')}').read()).to_codes(x) "
          "(from qnnfab.interop.qonnx_import)")
    for note in imp.notes:
        print(f"note: {note}")
    return 0


def _cmd_export(args):
    from qnnfab.interop.qonnx_export import require_onnx, save_qonnx
    where = "qnnfab export"
    path = check_out_file(where, "--out", args.out, ".onnx")
    cfg = _load_config(args.config)
    require_onnx()
    save_qonnx(cfg, path)
    print(f"QONNX model of network '{cfg.name}': {path} (qonnx.core.onnx_exec.execute_onnx runs it; "
          "input: values, NCHW or (N, F), batch 1)")
    return 0


def _cmd_demo(args):
    from qnnfab import demo
    where = "qnnfab demo"
    check_train_args(args, where)
    _check_board(args.board)
    OutDir(where, "--out", args.out)
    return demo.run(args.out, args.seed, epochs=args.epochs, board_name=args.board, hidden=args.hidden,
                    act_bits=args.act_bits)


DEFAULT_SCHEMES = "float,ste,stochastic,progressive"   # qnnfab train without --schemes


def check_train_args(args, where="qnnfab train"):
    """Every training argument, before the first epoch: the schemes, the numbers, the
    architecture (and its size once exported); returns (schemes, hidden)."""
    from qnnfab import netconfig
    from qnnfab.train.trainer import SCHEMES, parse_hidden
    fixed = getattr(args, "fixed_point", None)
    if getattr(args, "rounding", None) is not None and fixed is None:
        raise ConfigError(where, "--rounding", "applies to --fixed-point training only",
                          "add --fixed-point WL,FL (e.g. 16,14), or drop --rounding")
    if fixed is not None:
        from qnnfab.train.fixed_point import parse_fixed_point
        from qnnfab.train.fixed_point import LR_FRAC
        parse_fixed_point(fixed, where, "--fixed-point")
        lr = getattr(args, "lr", None)
        if lr is not None and math.isfinite(lr) and 0 < lr and round(lr * (1 << LR_FRAC)) < 1:
            raise ConfigError(where, "--lr", f"{lr:g} rounds to 0 in the {LR_FRAC}-bit fixed-point learning rate",
                              f"use --lr >= 2^-{LR_FRAC} (e.g. 0.01)")
        if getattr(args, "schemes", None) is not None:
            raise ConfigError(where, "--schemes", "does not apply to --fixed-point training (it trains the "
                              "float architecture in fixed point)", "drop --schemes, or drop --fixed-point")
    if getattr(args, "schemes", "") is None:
        args.schemes = DEFAULT_SCHEMES
    schemes = [s.strip() for s in args.schemes.split(",")] if hasattr(args, "schemes") else []
    if hasattr(args, "schemes"):
        bad = [s for s in schemes if s not in SCHEMES]
        if not args.schemes.strip() or bad:
            raise ConfigError(where, "--schemes", f"unknown scheme {bad[0]!r}" if bad and bad[0] else
                              f"{args.schemes!r} names no scheme", f"comma-separated, among {', '.join(SCHEMES)}")
        dup = sorted({s for s in schemes if schemes.count(s) > 1})
        if dup:
            raise ConfigError(where, "--schemes", f"{dup[0]!r} is named twice", "name each scheme once")
    for opt, v in (("--epochs", args.epochs), ("--batch", getattr(args, "batch", 1))):
        if v < 1:
            raise ConfigError(where, opt, f"must be >= 1, got {v}", f"e.g. {opt} 30" if opt == "--epochs" else
                              f"e.g. {opt} 32")
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed < 2**31:
        raise ConfigError(where, "--seed", f"must be in [0, 2^31), got {seed}", "e.g. --seed 0")
    _number(where, "--lr", getattr(args, "lr", None), above=0, fix="e.g. --lr 0.1")
    top = netconfig.LIMITS["data_bits"]
    if not 1 <= args.act_bits <= top:
        raise ConfigError(where, "--act-bits", f"must be 1..{top} (as act = \"uint<n>\" in a config), "
                          f"got {args.act_bits}", "e.g. --act-bits 2")
    if getattr(args, "pixel_bits", None) is not None:
        if getattr(args, "data", None) is None:
            raise ConfigError(where, "--pixel-bits", "applies to --data only (the shipped digits have 5-bit "
                              "pixels)", "add --data FILE.npz, or drop --pixel-bits")
        if not 1 <= args.pixel_bits <= top:
            raise ConfigError(where, "--pixel-bits", f"must be 1..{top}, got {args.pixel_bits}", "e.g. --pixel-bits 8")
    entries = parse_hidden(args.hidden)
    if fixed is not None:
        return [], tuple(t for t, _ in entries)
    for text, spec in entries:
        if spec[0] != "pool":
            n = spec[1] * ((1 << args.act_bits) - 1)
            if n > netconfig.LIMITS["thresholds_per_layer"]:
                raise ConfigError(where, "--hidden", f"{text} with {args.act_bits}-bit activations needs {n:,} "
                                  f"thresholds, above the limit of {netconfig.LIMITS['thresholds_per_layer']:,}",
                                  "use fewer units or fewer --act-bits")
    return schemes, tuple(t for t, _ in entries)


def warn(text):
    print(f"qnnfab: warning: {text}", file=sys.stderr, flush=True)


def _warn_label_gaps(ds):
    """Labels are class indices: a class without training images (often one stray label)
    still gets an output of its own. Say so, with the counts."""
    counts = ds.label_counts()
    empty = [c for c in range(len(counts)) if counts[c] == 0]
    if not empty:
        return
    shown = ", ".join(f"{c}: {n}" for c, n in enumerate(counts) if n)
    gaps = f"{len(empty)} of them ({', '.join(map(str, empty[:5]))}{', ...' if len(empty) > 5 else ''})"
    warn(f"dataset '{ds.name}': labels 0..{len(counts) - 1} make {len(counts)} classes, {gaps} without a "
         f"training image; images per label: {shown} (renumber the labels 0..N-1 if that is not meant)")


def _cmd_train(args):
    from qnnfab import netconfig
    from qnnfab.train.datasets import load_digits, load_npz
    from qnnfab.training import describe_arch, format_table, plot_curves, run_training
    where = "qnnfab train"
    schemes, hidden = check_train_args(args, where)
    if args.fixed_point is not None:
        return _train_fixed_point(args, hidden, where)
    if args.data is None:
        ds = load_digits()
    else:
        ds = load_npz(args.data, pixel_bits=8 if args.pixel_bits is None else args.pixel_bits)
        ds.name = netconfig.safe_name(ds.name, "data")  # it names the exported networks and files
        _warn_label_gaps(ds)
    describe_arch(ds, hidden, args.act_bits)  # the architecture fits the images
    out = OutDir(where, "--out", args.out)
    print(f"training on {ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test images, "
          f"{describe_arch(ds, hidden, args.act_bits)}, {args.epochs} epochs")
    results = run_training(ds, schemes, hidden=hidden, epochs=args.epochs, batch=args.batch,
                           seed=args.seed, out_dir=args.out, act_bits=args.act_bits, lr=args.lr)
    print(format_table(results))
    for r in results:
        if r.toml_path:
            print(f"exported {r.scheme}: {r.toml_path}  (qnnfab generate/sim --config accept it)")
            if args.qonnx:
                from qnnfab.interop.qonnx_export import save_qonnx
                onnx_path = Path(r.toml_path).with_suffix(".onnx")
                save_qonnx(netconfig.load(r.toml_path), onnx_path)
                print(f"exported {r.scheme} as QONNX: {onnx_path}")
    png = plot_curves(results, out.path / "training_curves.png")
    print(f"training curves: {png}")
    return 0


def _train_fixed_point(args, hidden, where):
    """qnnfab train --fixed-point WL,FL [--rounding R]: the float MLP or conv net trained on the array's arithmetic."""
    from qnnfab import netconfig
    from qnnfab.train.datasets import load_digits, load_npz
    from qnnfab.training import describe_arch
    import numpy as np

    from qnnfab.train.fixed_point import DEFAULT_LR, fixed_point_geometry, parse_fixed_point, train_fixed_point
    fmt = parse_fixed_point(args.fixed_point, where, "--fixed-point")
    rounding = args.rounding or "stochastic"
    if args.data is None:
        ds = load_digits()
    else:
        ds = load_npz(args.data, pixel_bits=8 if args.pixel_bits is None else args.pixel_bits)
        ds.name = netconfig.safe_name(ds.name, "data")
        _warn_label_gaps(ds)
    try:
        fixed_point_geometry(ds, hidden, fmt, args.batch, where)
    except ConfigError as e:
        raise ConfigError(where, f"--{e.field}", e.problem, e.fix) from None
    out = OutDir(where, "--out", args.out)
    lr = DEFAULT_LR if args.lr is None else args.lr
    print(f"training on {ds.name} in fixed point <{fmt.width},{fmt.F}> with {rounding} rounding "
          f"(every product on the golden 8x8 systolic array): {describe_arch(ds, hidden)}, SGD lr {lr:g}, "
          f"{args.epochs} epochs")

    def progress(epoch, loss, train_err, test_err):
        print(f"  epoch {epoch:3d}/{args.epochs}  loss {loss:6.3f}  train error {100 * train_err:6.2f}%  "
              f"test error {100 * test_err:6.2f}%", flush=True)

    r = train_fixed_point(ds, hidden=hidden, epochs=args.epochs, batch=args.batch, lr=lr, seed=args.seed,
                          fixed_point=fmt, rounding=rounding, progress=progress)
    name = f"{ds.name}-fixed{fmt.width}-{fmt.F}-{rounding}".replace("_", "-")
    path = out.path / f"{name}.npz"
    arrays = {f"w{i}": w for i, w in enumerate(r.weights)} | {f"b{i}": b for i, b in enumerate(r.biases)}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, wl=fmt.width, fl=fmt.F, arch=r.arch, test_err=np.array(r.history["test_err"]), **arrays)
    os.replace(tmp, path)
    print(f"test error {100 * (1 - r.test_acc):.2f}% after {args.epochs} epochs ({r.seconds:.0f} s, "
          f"{r.array_words:,} array output words); weight and bias codes: {path}")
    return 0


def arch_args(p):
    """--hidden and --act-bits: the trained network's architecture (train and demo)."""
    p.add_argument("--hidden", default="256,256",
                   help="hidden layers, comma-separated: n = fully connected, c<n> / c<n>k<k> = 3x3 / kxk "
                        "convolution with n channels, p<k> = k x k max pool (default 256,256; "
                        "e.g. c64,p2,256)")
    p.add_argument("--act-bits", type=int, default=1,
                   help="hidden activation bits of the binarized networks, 1..16 as a config's act: 1 = bipolar "
                        "(sign), k >= 2 = unsigned k-bit, act = \"uint<k>\" (default 1; the float baseline uses relu)")


class _Parser(argparse.ArgumentParser):
    """argparse with qnnfab's one-line errors (exit 2), naming the command's --help."""

    def error(self, message):
        self.exit(2, f"qnnfab: error: {self.prog}: {message} (fix: see `{self.prog} --help`)\n")


def build_parser():
    p = _Parser(
        prog="qnnfab",
        description="Open hardware generator for quantized neural networks.",
        epilog=EPILOG_MAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version",
                   version=f"qnnfab {__import__('qnnfab').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

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

    def board_args(sp, report=True, config_required=True):
        sp.add_argument("--config", required=config_required, metavar="FILE", help="network config (TOML)")
        sp.add_argument("--board", default="pynq-z2", help="target board (default pynq-z2; see `qnnfab boards`)")
        sp.add_argument("--clock", type=float, default=100.0, metavar="MHZ",
                        help="clock in MHz (> 0) of the frames/s figures (default 100, as BNN-PYNQ's figures; "
                             "the board's oscillator is 125 MHz, see the README)")
        if report:
            sp.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs (>= 1, default 2)")
            sp.add_argument("--weights-mode", choices=("const", "runtime"), default=None,
                            help="const: weights are constants of the hardware; runtime: RAMs loaded "
                                 "with a weights image through the wload port (default: the config's "
                                 "weights_mode, else const)")

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
               "--out must be new or empty; --force replaces the content of a folder that qnnfab generate "
               "wrote earlier.\nFirst run: minutes (Yosys per layer, one progress line each); later runs "
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
                   help="replace the whole content of an --out folder that an earlier qnnfab generate wrote "
                        "(marked by its .qnnfab-generated file; other non-empty folders are never touched)")
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
    g.set_defaults(func=_cmd_generate)

    r = sub.add_parser(
        "report", help="resources and throughput per layer, bottleneck, PNG chart",
        description="Synthesize every layer with Yosys synth_xilinx (cached, in parallel) and print "
                    "LUT/FF/BRAM/DSP and cycles per frame per layer against the board.",
        epilog="example:\n  qnnfab report --config configs/lfc_small.toml --png lfc.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    board_args(r)
    r.add_argument("--png", metavar="FILE.png",
                   help="write a bar chart of cycles and LUTs per layer (a .png in an existing folder)")
    r.add_argument("--links", action="store_true",
                   help="also time the paths between layers: synthesize every two adjacent layers together "
                        "with the FIFO and width converter between them (about doubles the Yosys time)")
    r.set_defaults(func=_cmd_report)

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
    f.set_defaults(func=_cmd_fold)

    im = sub.add_parser(
        "import", help="a QONNX model (Brevitas export or FINN-streamlined) -> qnnfab config + weights",
        description="Read a QONNX model and write a qnnfab config (TOML), its weights (.npz) and the input "
                    "codes the hardware reads (.input_codes.json). Brevitas-style graphs (Quant/BipolarQuant on "
                    "weights and activations, MatMul/Gemm/Conv, BatchNormalization, Mul/Add scales and biases, "
                    "Relu before unsigned k-bit activations, MaxPool, Pad, Flatten/Reshape/Transpose) and "
                    "streamlined graphs (integer weights + MultiThreshold) fold into integer weights and "
                    "thresholds exactly; anything else is refused naming the node. Needs qnnfab[onnx].",
        epilog="examples:\n  qnnfab import model.onnx --out out/imported\n"
               "  qnnfab import model.onnx --out out/imported --name digits --fps 100000\n"
               "  qnnfab sim --config out/imported/digits.toml --frames 100",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    im.add_argument("model", metavar="MODEL.onnx", help="the QONNX model")
    im.add_argument("--out", required=True, metavar="DIR", help="folder for the config, weights and input codes")
    im.add_argument("--name", default=None, help="network name (default: the model file's name)")
    im.add_argument("--board", default="pynq-z2", help="board whose budget bounds the default folding (default pynq-z2)")
    im.add_argument("--fps", type=float, default=None,
                    help="fold for this frame rate at 100 MHz (default: the fastest within half the board's LUTs)")
    im.set_defaults(func=_cmd_import)

    ex = sub.add_parser(
        "export", help="a qnnfab network as a QONNX model (for FINN, qonnx, netron)",
        description="Write the network as a QONNX model in FINN's streamlined form: MatMul/Conv with integer "
                    "weights (datatype annotations), MultiThreshold activations, MaxPool; execute_onnx runs it "
                    "to the golden model's outputs. Needs qnnfab[onnx].",
        epilog="example:\n  qnnfab export --config configs/cnv_small.toml --out cnv_small.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("--config", required=True, metavar="FILE", help="network config (TOML)")
    ex.add_argument("--out", required=True, metavar="FILE.onnx", help="the QONNX model to write")
    ex.set_defaults(func=_cmd_export)

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
    d.set_defaults(func=_cmd_demo)

    w = sub.add_parser(
        "pack-weights", help="write the weights image of a config (for weights_mode = \"runtime\")",
        description="Pack the config's weights and thresholds into a weights image: two header words "
                    "(magic, layout version, topology hash, length) and every layer's memories "
                    "(layout: qnnfab/weights_image.py), for the wload port of a runtime-weights "
                    "accelerator of the same topology.",
        epilog="example:\n  qnnfab pack-weights --config configs/lfc_small.toml --out lfc_small.bin",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("--config", required=True, metavar="FILE", help="network config (TOML) with its weights")
    w.add_argument("--out", required=True, metavar="FILE", help="where to write the image (.bin)")
    w.set_defaults(func=_cmd_pack_weights)

    t = sub.add_parser(
        "train", help="quantization-aware training on the shipped digits, export for hardware",
        description="Train a float baseline and binarized MLPs or conv nets (STE, stochastic, progressive "
                    "binarization) on scikit-learn's 8x8 digits shipped with qnnfab, export every "
                    "binarized network as .npz + .toml, check the integer export reproduces every "
                    "prediction, print the accuracy table and plot the training curves.",
        epilog="example:\n  qnnfab train --epochs 30 --out out/train\n"
               "  qnnfab train --hidden c64,p2,256 --act-bits 2 --out out/train-conv\n"
               "  qnnfab train --fixed-point 16,8 --rounding stochastic --hidden c8,p2,32 --lr 0.01 --out out/fx\n"
               "  qnnfab sim --config out/train/digits-ste.toml --frames 100",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--schemes", default=None,
                   help="comma-separated schemes among float, ste, stochastic, progressive, ternary "
                        "(default: the first four)")
    t.add_argument("--epochs", type=int, default=30, help="training epochs per scheme (>= 1, default 30)")
    t.add_argument("--batch", type=int, default=32, help="minibatch size (>= 1, default 32)")
    arch_args(t)
    t.add_argument("--seed", type=int, default=0,
                   help="seed in [0, 2^31) of the weight initialisation and the shuffling (default 0)")
    t.add_argument("--data", metavar="FILE.npz", default=None,
                   help="your own images instead of the shipped digits: x_train, y_train, x_test, y_test "
                        "(or x, y, split 75/25), integer pixels or floats in [0, 1], (B, H, W[, C]) or (B, F), "
                        "labels 0..classes-1; see the README")
    t.add_argument("--pixel-bits", type=int, default=None,
                   help="bits (1..16) of the --data pixels (default 8; floats are quantized to this)")
    t.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate of the binarized schemes (default 0.1, or 0.03 with --act-bits >= 2; "
                        "progressive conv nets train better at 0.01); with --fixed-point the SGD rate (default "
                        "0.1; the conv net trains steadily at 0.01)")
    t.add_argument("--out", default="out/train", metavar="DIR",
                   help="export folder, created if missing (default out/train)")
    t.add_argument("--fixed-point", default=None, metavar="WL,FL",
                   help="train the float MLP or conv net (--hidden) in <WL,FL> fixed point instead (Gupta et "
                        "al.): every product of training on the golden systolic array (convolutions as im2col "
                        "products), weights stored as codes; e.g. 16,14 (WL 2..24, FL 1..WL-2)")
    t.add_argument("--rounding", default=None, choices=["stochastic", "nearest"],
                   help="rounding of --fixed-point products and updates (default stochastic)")
    t.add_argument("--qonnx", action="store_true",
                   help="also write every exported network as a QONNX model (.onnx, needs qnnfab[onnx])")
    t.set_defaults(func=_cmd_train)
    return p


# Library arguments and the options that set them: (where, field) -> option; where None
# matches any place (e.g. a network), whose name the message keeps.
_CLI_OPTIONS = {
    ("auto_fold", "target_fps"): "--fps",
    (None, "target_fps"): "--fps",
    ("get_board", "name"): "--board",
    ("check_clock", "clock_mhz"): "--clock",
    ("regression", "name"): "NAME",
    (None, "data"): "--data",
}


def _in_cli_terms(e, command):
    """The library's :class:`ConfigError` ``e`` naming the command-line option instead of the argument."""
    option = _CLI_OPTIONS.get((e.where, e.field))
    if option is not None:
        return ConfigError(f"qnnfab {command}", option, e.problem, e.fix)
    option = _CLI_OPTIONS.get((None, e.field))
    if option is not None:
        return ConfigError(e.where, option, e.problem, e.fix)
    return e


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except QnnfabError as e:
        if isinstance(e, ConfigError):
            e = _in_cli_terms(e, args.command)
        print(f"qnnfab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # components built but never elaborated (an interrupted report) would warn at exit
        import warnings
        try:
            from amaranth.hdl import UnusedElaboratable
            warnings.simplefilter("ignore", UnusedElaboratable)
        except ImportError:
            pass
        print("qnnfab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

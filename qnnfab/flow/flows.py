"""The commands' flows: ``generate``, ``report``, ``verify`` and ``demo`` as lists of
steps (:mod:`qnnfab.flow.steps`) run by :func:`run`, which prints their progress.

A flow's state is one :class:`Run`: the loaded config, the board, the options,
and what earlier steps returned. The steps of a flow that writes an output
folder write into its staging folder (``run.stage``); the folder is renamed into
place when the last step has run (:class:`qnnfab.flow.output.OutputFolder`).
Every message is printed through ``run.say`` (standard output) or ``run.warn``
(standard error).
"""

import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np

from qnnfab.boards.targets.device import describe_overflows
from qnnfab.errors import QnnfabError
from qnnfab.train.datasets import load_digits
from qnnfab.train.trainer import parse_hidden
from qnnfab.training import describe_arch, format_table, plot_curves, run_training

from . import steps
from .output import OutputFolder

__all__ = ["Step", "Run", "run", "generate", "report", "verify", "demo", "say", "warn"]


def say(message):
    print(message, flush=True)


def warn(message):
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Step:
    """One named step of a flow: ``action(run)`` calls a step function with the run's
    config and options, keeps its results on ``run`` and says what it did.
    ``writes``: it writes into the run's staging folder."""
    name: str
    action: Callable
    writes: bool = False


class Run(SimpleNamespace):
    """The state of one run of a flow (keyword fields); ``stage`` is the staging folder."""

    def __init__(self, **fields):
        super().__init__(stage=None, say=say, warn=warn, **fields)


def run(flow, state, output=None):
    """Run the steps of ``flow`` in order on ``state``; the first step that writes opens the
    staging folder of ``output`` (an OutputFolder), renamed into place after the last step.
    Any failure removes what the run created."""
    try:
        with ExitStack() as stack:
            for step in flow:
                if step.writes and state.stage is None:
                    state.stage = stack.enter_context(output.staging())
                step.action(state)
    except BaseException:
        if output is not None:
            output.undo()
        raise
    return state


# --------------------------------------------------------------------------- report

def _synthesize(r):
    stages, what = steps.synthesis_stages(r.cfg)
    r.say(f"synthesizing {what} with Yosys (cached; {r.jobs} in parallel; a line per stage as it finishes) ...")
    r.report = steps.synthesize_report(r.cfg, jobs=r.jobs, clock_mhz=r.clock_mhz, progress=r.say, stages=stages)
    r.links = None
    r.text = steps.report_text(r.report, r.board.capacity)


def _check_fit_before_synthesis(r):
    _check_fit_model(r, "synthesizing")


def _synthesize_links(r):
    if r.links_wanted and len(r.cfg.layers) > 1:
        r.say(f"synthesizing the {len(r.cfg.layers) - 1} pairs of adjacent layers together (paths between "
              "layers) ...")
        r.links = steps.synthesize_links(r.cfg, jobs=r.jobs, progress=r.say)
        r.text = steps.report_text(r.report, r.board.capacity, r.links)


def _print_report(r):
    r.say(r.text)
    bound = r.report.fmax_bound_mhz
    if bound is not None and r.clock_mhz > bound:
        r.warn(f"qnnfab: warning: --clock {r.clock_mhz:g} MHz is above the design's Fmax bound of {bound:,.0f} MHz "
               "(logic delay alone, before routing): its frames/s figures are not reachable")


def _write_chart(r):
    if r.png:
        steps.write_chart(r.report, r.png)
        r.say(f"bar chart: {r.png}")


report = [Step("check fit (model)", _check_fit_before_synthesis), Step("synthesize", _synthesize),
          Step("synthesize links", _synthesize_links),
          Step("print report", _print_report), Step("write chart", _write_chart)]


# --------------------------------------------------------------------------- generate

def _check_fit_model(r, going_on="writing"):
    """The cost model's fit check, before any Yosys run: an error, or with ``r.allow_overflow``
    a warning saying what the command goes on ``going_on`` anyway."""
    what = f"network '{r.cfg.name}' (model estimate)"
    over = steps.check_fit(what, steps.estimate(r.cfg), r.board.capacity, allow_overflow=r.allow_overflow,
                           fix=steps.FIT_FIX)
    if over:
        r.warn(f"qnnfab: warning: {what} does not fit {r.board.capacity.part}: {describe_overflows(over)}; "
               f"{going_on} it anyway (--allow-overflow)")


def _synthesize_and_check_fit(r):
    r.report = r.text = None
    if r.no_report:
        return
    _synthesize(r)
    steps.check_fit(f"network '{r.cfg.name}'", r.report.total, r.board.capacity, allow_overflow=r.allow_overflow,
                    fix=steps.FIT_FIX)


def _write_accelerator(r):
    name, weights = steps.write_accelerator(r.cfg, r.stage / "accel")
    accel = r.out / "accel"
    r.say(f"accelerator IP (AXI-Stream ports): {accel}/ (module {name})")
    if weights is not None:
        r.say(f"runtime weights: load {accel / steps.RUNTIME_WEIGHTS_FILE} ({weights:,} bytes) through the wload port")


def _write_overlay(r):
    files = steps.write_overlay(r.cfg, r.board, r.clock_mhz, r.stage / "overlay", data_width=r.data_width)
    r.say(f"PYNQ overlay for {r.board_name} at {r.clock_mhz:g} MHz, {r.data_width}-bit AXI master "
          f"(Vivado: {r.out / 'overlay'}/build.sh; then see its README.md): {', '.join(files)}")


def _write_selftest(r):
    files = steps.write_selftest(r.cfg, r.board, r.clock_mhz, r.stage / "plan")
    r.say(f"self-test build plan for {r.board_name} (Vivado: cd {r.out / 'plan'} && sh build_top.sh): "
          f"{', '.join(files)}")


def _write_report(r):
    if r.report is not None:
        steps.write_report(r.report, r.text, r.stage)
        r.say(r.text)
        r.say(f"report: {r.out / 'report.txt'}, {r.out / 'report.png'}")


def generate(top):
    """The steps of ``qnnfab generate --top top`` (overlay or selftest)."""
    target = Step("write overlay", _write_overlay, True) if top == "overlay" else \
        Step("write selftest", _write_selftest, True)
    return [Step("check fit (model)", _check_fit_model), Step("synthesize", _synthesize_and_check_fit),
            Step("write accelerator", _write_accelerator, True), target, Step("write report", _write_report, True)]


def _write_gemm(r):
    files = steps.write_gemm(r.rows, r.cols, r.board, r.clock_mhz, r.stage / "overlay", data_width=r.data_width,
                             panels=r.panels)
    r.say(f"GEMM engine {r.rows}x{r.cols} overlay for {r.board_name} at {r.clock_mhz:g} MHz, {r.data_width}-bit "
          f"AXI master (Vivado: {r.out / 'overlay'}/build.sh): {', '.join(files)}")


generate_gemm = [Step("write GEMM overlay", _write_gemm, True)]


# --------------------------------------------------------------------------- verify

def _verify_header(r):
    r.say(f"{r.command}: {r.frames.shape[0]} frames of network '{r.cfg.name}' on the compiled engine (Verilator), "
          f"seed {r.seed}")


def _verify(r):
    r.result = steps.verify(r.cfg, r.frames, seed=r.seed, progress=lambda m: r.say("  " + m))


def _verify_summary(r):
    res, n = r.result, r.frames.shape[0]
    how = "cached build" if res.build.cached else f"built in {res.build.seconds:.0f} s"
    r.say(f"  {res.stalled_frames} frames under random gaps and backpressure: every word equal to golden, "
          f"stream rules kept ({how})")
    r.say(f"simulation: {n} frames, {res.cycles} cycles, {res.cycles_per_second:,.0f} cycles/s (compiled)")
    _, (bottleneck, model), _ = r.cfg.throughput()
    r.say(f"steady state: {res.cycles_per_frame:.1f} cycles/frame (model {model}, bottleneck {bottleneck})"
          if n >= 2 else "steady state: needs at least 2 frames")
    r.say(f"hardware vs golden: {res.frames_identical} of {n} frames identical, "
          f"labels agree on {100 * res.agreement:.2f}%")
    if r.labels is not None:
        r.say(f"accuracy: hardware {100 * res.accuracy(r.labels):.2f}%, golden "
              f"{100 * float(np.mean(res.golden_labels == r.labels)):.2f}% on {n} labelled frames")
    if not res.identical:
        r.say(f"{r.command}: MISMATCH: {res.first_mismatch}")
    r.exit_code = 0 if res.identical else 1


def _verify_write(r):
    if getattr(r, "out", None) is not None:
        steps.write_verify_arrays(r.out, r.result, r.cfg.label, r.labels)
        r.say(f"per-frame scores and labels (hardware and golden): {r.out}")


verify = [Step("header", _verify_header), Step("verify", _verify), Step("summary", _verify_summary),
          Step("write arrays", _verify_write)]


# --------------------------------------------------------------------------- demo

def _demo_data(r):
    r.t_all = time.monotonic()
    r.ds = ds = load_digits()
    r.hidden = tuple(t for t, _ in parse_hidden(r.hidden_text))
    r.say(f"qnnfab demo: {ds.name}, {len(ds.y_train)} training / {len(ds.y_test)} test images, "
          f"{ds.features} pixels of {ds.pixel_bits} bits -> {describe_arch(ds, r.hidden, r.act_bits)}")


def _demo_train(r):
    r.say(f"[1/6] training the float baseline and three binarization schemes ({r.epochs} epochs each)")
    r.results = run_training(r.ds, hidden=r.hidden, act_bits=r.act_bits, epochs=r.epochs, seed=r.train_seed,
                             out_dir=r.outdir / "train")
    r.say(format_table(r.results))
    curves = plot_curves(r.results, r.outdir / "training_curves.png")
    r.say(f"      training curves: {curves}")


def _demo_export(r):
    r.chosen = chosen = next(x for x in r.results if x.scheme == "ste")
    r.cfg_path = chosen.toml_path
    r.say(f"[2/6] exported the STE network: {r.cfg_path} (+ .npz); integer network "
          f"{100 * chosen.integer_acc:.2f}% = trained {100 * chosen.test_acc:.2f}%, "
          f"agreement {100 * chosen.agreement:.2f}%")
    r.cfg = steps.load(r.cfg_path)


def _demo_synthesize(r):
    r.say(f"[3/6] generating the hardware for {r.board_name} ({r.board.capacity.part})")
    r.report = steps.synthesize_report(r.cfg, jobs=r.jobs, clock_mhz=r.clock_mhz,
                                       progress=lambda m: r.say("    " + m))
    steps.check_fit(f"network '{r.cfg.name}'", r.report.total, r.board.capacity)
    r.text = steps.report_text(r.report, r.board.capacity)


def _demo_write_hardware(r):
    module, _ = steps.write_accelerator(r.cfg, r.stage / "accel")
    files = steps.write_selftest(r.cfg, r.board, r.clock_mhz, r.stage / "plan")
    steps.write_report(r.report, r.text, r.stage)
    hw = r.hw.path
    r.say(f"      accelerator {module}: {hw / 'accel'}; build plan: {hw / 'plan'} ({len(files)} files); "
          f"report: {hw / 'report.txt'}")


def _demo_verify(r):
    n = len(r.ds.y_test)
    r.say(f"[4/6] Verilator (compiled engine): the whole accelerator over all {n} test images "
          "vs the golden model")
    r.x_test = r.ds.x_test.reshape((-1,) + r.cfg.input_shape)      # (B, 64) or (B, 8, 8, 1) as the network takes
    r.images = r.outdir / "test_images.npz"
    np.savez(r.images, x=r.x_test, y=r.ds.y_test)
    t0 = time.monotonic()
    r.ver = ver = steps.verify(r.cfg, r.x_test, seed=1 if r.seed is None else r.seed,
                               progress=lambda m: r.say("    " + m))
    how = "cached build" if ver.build.cached else f"built in {ver.build.seconds:.0f} s"
    r.say(f"      {ver.frames_identical} of {ver.frames} images identical to the golden model word by word "
          f"({ver.stalled_frames} also under random gaps and backpressure; {how}, "
          f"{time.monotonic() - t0:.0f} s); data set: {r.images} (qnnfab verify --data)")


def _demo_summary(r):
    ver, chosen = r.ver, r.chosen
    agree = ver.agreement
    r.say("[5/6] summary")
    base = next(x for x in r.results if x.scheme == "float")
    r.say(f"  accuracy     float {100 * base.test_acc:.2f}%   binarized (STE) {100 * chosen.test_acc:.2f}%   "
          f"hardware {100 * ver.accuracy(r.ds.y_test):.2f}%")
    for x in r.results:
        if x.scheme not in ("float", "ste"):
            r.say(f"               {x.scheme} {100 * x.test_acc:.2f}% (exported, not simulated)")
    r.say(f"  hardware vs golden: {100 * agree:.2f}% of {len(ver.labels)} images agree "
          f"(scores compared word by word)")
    _, (bottleneck, model), _ = r.cfg.throughput()
    fps = r.clock_mhz * 1e6 / ver.cycles_per_frame
    r.say(f"  throughput   {ver.cycles_per_frame:.1f} cycles/frame measured in steady state "
          f"(model {model}, bottleneck {bottleneck}) -> {fps:,.0f} frames/s at {r.clock_mhz:g} MHz")
    r.say(r.text)
    r.say(f"  simulation   {ver.cycles:,} cycles at {ver.cycles_per_second:,.0f} cycles/s (compiled Verilator "
          "engine)")
    if not ver.identical or agree != 1.0:
        raise QnnfabError(f"hardware and golden disagree: {ver.first_mismatch or f'{100 * (1 - agree):.2f}% of labels'}")


def _demo_cosimulate(r):
    n = len(r.x_test)
    golden = steps.golden_labels(r.cfg, r.x_test)
    r.say(f"[6/6] co-simulation of the PYNQ overlay: the Python driver (qnnfab.boards.onboard.driver.Accelerator) "
          f"classifies the {n} test images through the AXI shell; PS and DDR are cocotbext-axi models")
    t0 = time.monotonic()
    res = steps.cosimulate_overlay(r.cfg_path, r.images, n, seed=r.seed, progress=lambda m: r.say("    " + m))
    labels = np.array(res.metrics["labels"])
    same = int(np.sum(labels == golden))
    how = "cached build" if res.build_cached else f"built in {res.build_seconds:.0f} s"
    r.say(f"      driver labels equal to the golden model's: {same}/{n} "
          f"(scores too, frame by frame; {res.metrics['cycles']} cycles for the batch = "
          f"{res.metrics['cycles'] / n:.1f} cycles/frame; {how}, {time.monotonic() - t0:.0f} s)")
    if same != n:
        raise QnnfabError(f"the driver's labels differ from the golden model's on {n - same} of {n} images")


def _demo_done(r):
    r.say(f"qnnfab demo: done in {time.monotonic() - r.t_all:.0f} s; outputs in {r.outdir}/")


#: ``qnnfab demo``: train, export, generate (the self-test build plan, as ``generate --top selftest``
#: into ``hw/``), verify on Verilator, summary, co-simulation of the overlay driver
demo = [Step("load data", _demo_data), Step("train", _demo_train), Step("export", _demo_export),
        Step("synthesize", _demo_synthesize), Step("write hardware", _demo_write_hardware, True),
        Step("verify", _demo_verify), Step("summary", _demo_summary), Step("cosimulate overlay", _demo_cosimulate),
        Step("done", _demo_done)]


def demo_run(outdir, board, board_name, *, seed=None, epochs=30, train_seed=0, jobs=2, hidden="256,256",
             act_bits=1, clock_mhz=100.0):
    """The state of one demo run into ``outdir`` (an existing folder) and the staged ``hw/`` folder in it."""
    outdir = Path(outdir)
    hw = OutputFolder("qnnfab demo", "--out", outdir / "hw", staged=True, replace=True)
    return Run(outdir=outdir, hw=hw, board=board, board_name=board_name, seed=seed, epochs=epochs,
               train_seed=train_seed, jobs=jobs, hidden_text=hidden, act_bits=act_bits, clock_mhz=clock_mhz), hw

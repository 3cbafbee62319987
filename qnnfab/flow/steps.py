"""The named steps of the flow, from a config to checked hardware.

Each step is a plain function of a loaded config (or design) and its options
that returns its results; it prints nothing (long steps report through a
``progress(message)`` callback). The lists of steps that make the commands are
in :mod:`qnnfab.flow.flows`.
"""

from pathlib import Path

import numpy as np

from qnnfab import netconfig
from qnnfab.cache import atomic_paths
from qnnfab.boards.targets import check_fits
from qnnfab.boards.targets.device import overflows
from qnnfab.boards.estimate.fold import estimate as model_estimate
from qnnfab.boards.emit.gemm import write_gemm_overlay
from qnnfab.boards.emit.accelerator import write_accelerator as emit_accelerator
from qnnfab.boards.emit.overlay import RUNTIME_WEIGHTS_FILE, write_overlay as emit_overlay
from qnnfab.boards.emit.selftest import write_build_plan
from qnnfab.boards.estimate.report import format_links, format_report, link_report, network_report, plot_report
from qnnfab.boards.estimate.report import synthesis_stages as report_stages
from qnnfab.packing import frame_labels
from qnnfab.plan import save_image
from qnnfab.sim import registry
from qnnfab.sim.compiled import verify_network
from qnnfab.golden.graph_network import graph_forward

__all__ = ["load", "estimate", "check_fit", "synthesis_stages", "synthesize_report", "synthesize_links",
           "write_accelerator",
           "write_overlay", "write_selftest", "write_gemm", "report_text", "write_report", "write_chart", "verify", "golden_labels",
           "write_verify_arrays",
           "cosimulate_overlay",
           "FIT_FIX"]

#: the fix of a design that does not fit its board
FIT_FIX = ("reduce PE/SIMD of the largest layers (qnnfab fold --fastest) or pick a larger board; "
           "--allow-overflow writes it anyway")

def load(path, weights_mode=None):
    """The checked config at ``path``; ``weights_mode`` (const/runtime) overrides the config's."""
    cfg = netconfig.load(path)
    if weights_mode is not None:
        cfg.weights_mode = weights_mode
    return cfg


def estimate(cfg):
    """The cost model's resources of ``cfg`` (no synthesis)."""
    return model_estimate(cfg)


def check_fit(what, resources, device, *, allow_overflow=False, fix=None):
    """The overflows of ``resources`` on ``device`` (empty when it fits); unless
    ``allow_overflow``, an overflow raises ConfigError naming ``what`` and ``fix``."""
    if not allow_overflow:
        check_fits(what, resources, device, fix=fix)
        return []
    return overflows(resources, device)


def synthesis_stages(cfg):
    """The stages synthesize_report runs Yosys on and what they are: ``(stages, text)``, the
    text e.g. "7 stages (4 layers and the 3 FIFOs/width converters between them)"."""
    stages = report_stages(cfg)
    layers = len(cfg.layers)
    others = [name for name, _ in stages if name not in {L.name for L in cfg.layers}]
    parts = [f"{layers} layers"]
    links = [n for n in others if n != "weight_loader"]
    if links:
        parts.append(f"the {len(links)} FIFOs/width converters between them")
    if len(links) < len(others):
        parts.append("the weight loader")
    what = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return stages, f"{len(stages)} stages ({what})"


def synthesize_report(cfg, *, jobs, clock_mhz, progress, stages=None):
    """Every stage (``stages`` of :func:`synthesis_stages`, default all) through Yosys (cached,
    ``jobs`` in parallel): the NetworkReport at ``clock_mhz``."""
    return network_report(cfg, jobs=jobs, f_clk=clock_mhz * 1e6, progress=progress, stages=stages)


def synthesize_links(cfg, *, jobs, progress):
    """Every two adjacent layers synthesized together: the LinkReport of the paths between layers."""
    return link_report(cfg, jobs=jobs, progress=progress)


def write_accelerator(cfg, folder):
    """The accelerator's Verilog and README (and its weights image when weights are loaded at
    run time) into ``folder``; returns ``(module name, bytes of the weights image or None)``."""
    name, _ = emit_accelerator(cfg, folder)
    weights = save_image(cfg, Path(folder) / RUNTIME_WEIGHTS_FILE) if cfg.weights_mode == "runtime" else None
    return name, weights


def write_overlay(cfg, board, clock_mhz, folder, *, data_width):
    """The PYNQ overlay folder (AXI shell, Vivado Tcl, build.sh, driver, README); returns its file names."""
    _, files = emit_overlay(cfg, board, clock_mhz, folder, data_width=data_width)
    return files


def write_selftest(cfg, board, clock_mhz, folder):
    """Amaranth's build plan of the standalone self-test top; returns its file names."""
    return write_build_plan(cfg, board, folder, clock_mhz=clock_mhz)


def write_gemm(rows, cols, board, clock_mhz, folder, *, data_width, panels):
    """The GEMM engine's overlay folder; returns its file names."""
    _, files = write_gemm_overlay(rows, cols, board, clock_mhz, folder, data_width=data_width, panels=panels)
    return files


def write_report(report, text, folder):
    """``report.txt`` (``text``) and the chart ``report.png`` of ``report`` into ``folder``; returns both paths."""
    folder = Path(folder)
    (folder / "report.txt").write_text(text + "\n")
    plot_report(report, folder / "report.png")
    return folder / "report.txt", folder / "report.png"


def write_chart(report, path):
    """The bar chart of cycles and LUTs per layer of ``report`` as a PNG at ``path``."""
    plot_report(report, path)


def report_text(report, device, links=None):
    """The resource table of ``report`` against ``device`` (and the table of ``links``, a LinkReport)."""
    text = format_report(report, device)
    return text if links is None else text + "\n" + format_links(links)


def verify(cfg, frames, *, seed, progress):
    """``frames`` through the accelerator on the compiled Verilator engine, every output word
    compared with the golden model: the :class:`qnnfab.sim.compiled.Verification`."""
    return verify_network(cfg, frames, seed=seed, log=progress)


def write_verify_arrays(path, result, label_rule, y=None):
    """Write the per-frame arrays of a :class:`qnnfab.sim.compiled.Verification` to the ``.npz``
    ``path`` atomically (a temporary file in the same folder, then renamed): ``scores`` and
    ``labels`` (the hardware's), ``golden_scores``, ``golden_labels``, ``label_rule`` (a string),
    and ``y`` (the data's labels) when given."""
    arrays = {"scores": result.scores, "labels": result.labels, "golden_scores": result.golden_scores,
              "golden_labels": result.golden_labels, "label_rule": np.array(label_rule)}
    if y is not None:
        arrays["y"] = np.asarray(y)
    with atomic_paths(path) as (tmp,), open(tmp, "wb") as f:
        np.savez(f, **arrays)


def cosimulate_overlay(cfg_path, inputs_path, frames, *, seed, progress):
    """The board's Python driver classifies ``frames`` images (stored in ``inputs_path``)
    through the overlay shell in co-simulation: the regression's result (labels, cycles)."""
    return registry.run_case("overlay", {"config": str(Path(cfg_path).resolve()), "frames": [frames], "width": 64,
                                         "batch_size": frames, "pause": 0.0,
                                         "inputs": str(Path(inputs_path).resolve())},
                             seed=seed, log=progress)


def golden_labels(cfg, frames):
    """The golden model's labels of ``frames`` under the config's label rule."""
    return frame_labels(graph_forward(cfg, frames), cfg.label)

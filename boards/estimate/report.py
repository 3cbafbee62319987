"""Per-layer resource and throughput report of a network config.

Every stage of the dataflow (MVTU/conv/max-pool, FIFOs and width converters,
the latter two summed per layer) is synthesized on its own with Yosys
``synth_xilinx -family xc7`` (cached by Verilog hash), in parallel, with
progress output. The table sets each layer's LUT/FF/BRAM/DSP against the
device and its cycles per frame against the bottleneck. A runtime-weights
network (``weights_mode = "runtime"``) adds a row for its weight loader.

The same Yosys runs give each stage's logic delay (``sta`` with the cell
delays of Yosys' Xilinx library, :attr:`Resources.logic_ps`); a layer's is the
worst of its stages. ``1e3 / logic_ns`` MHz of the worst layer is an optimistic
Fmax bound (cell delays only: clock-to-out, logic and setup, no routing), not a
timing-closure result.

Paths between layers (:func:`link_report`, ``qnnfab report --links``): every
two adjacent layers are synthesized together with the FIFO and width
converter between them, wired as in the dataflow (:class:`StagePair`). The
pair's longest path bounds every path between the two layers; the stages its
cells and nets belong to tell whether it crosses from one stage into another.
"""

import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from amaranth.hdl import Module
from amaranth.lib import wiring

from qnnfab.boards.targets.device import describe_overflows, overflows
from qnnfab.plan import plan_of
from qnnfab.rtl.dataflow import stage_component, stage_components
from qnnfab.rtl.weight_loader import WeightLoader

from .yosys import SYNTHESIZED, Resources, synth_xc7_how, synth_xc7_path

__all__ = ["LayerReport", "NetworkReport", "network_report", "compose_report", "stage_owners", "synthesis_component", "synthesis_stages", "format_report",
           "fit_verdict", "plot_report", "StagePair", "LinkReport", "link_report", "format_links", "path_stages"]


@dataclass
class LayerReport:
    name: str
    type: str
    pe: int
    simd: int
    cycles: int
    resources: Resources


@dataclass
class NetworkReport:
    name: str
    layers: list
    total: Resources
    bottleneck: str
    bottleneck_cycles: int
    f_clk: float

    @property
    def frames_per_s(self):
        return self.f_clk / self.bottleneck_cycles

    @property
    def worst_logic(self):
        """The layer with the longest logic delay, or None when no layer has timing."""
        timed = [L for L in self.layers if L.resources.logic_ps is not None]
        return max(timed, key=lambda L: L.resources.logic_ps) if timed else None

    @property
    def fmax_bound_mhz(self):
        """``1e3 / logic_ns`` of the worst layer (cell delays only, no routing): an
        optimistic upper bound on the clock, not timing closure; None without timing."""
        w = self.worst_logic
        return None if w is None else 1e6 / w.resources.logic_ps


def _as_completed(run, items, jobs):
    """``run(item)`` for every item on ``jobs`` threads; yields the results as they
    finish. An error or Ctrl-C starts no further run."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run, item) for item in items]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def stage_owners(plan):
    """``[(stage name, layer it is counted in)]`` of every stage :func:`network_report`
    synthesizes, from the plan alone: every layer, the FIFOs, width converters and forks
    between layers (counted in the layer after them) and, for run-time weights, the loader."""
    out, pending = [], []
    for s in plan.stages:
        if s.kind in ("fifo", "width", "fork"):
            pending.append(s.name)
            continue
        out += [(n, s.name) for n in pending] + [(s.name, s.name)]
        pending = []
    if plan.runtime:
        out.append(("weight_loader", "weight_loader"))
    return out


def synthesis_component(plan, stage):
    """The component of stage ``stage`` (a name of :func:`stage_owners`)."""
    if stage == "weight_loader":
        return WeightLoader(list(plan.groups), plan.topology_hash)
    return stage_component(plan, next(s for s in plan.stages if s.name == stage))


def synthesis_stages(cfg):
    """The stages :func:`network_report` synthesizes, one Yosys run each: ``[(stage name,
    (layer it is counted in, component))]`` (:func:`stage_owners`)."""
    plan = plan_of(cfg)
    return [(stage, (layer, synthesis_component(plan, stage))) for stage, layer in stage_owners(plan)]


def network_report(cfg, *, jobs=2, f_clk=100e6, progress=print, timing=True, stages=None):
    """Synthesize every stage of ``cfg``'s dataflow (``stages``, default :func:`synthesis_stages`);
    return a :class:`NetworkReport`.

    ``timing`` runs Yosys ``sta`` in the same runs (``logic_ps`` per layer)."""
    items = synthesis_stages(cfg) if stages is None else stages
    results = {}
    t0 = time.monotonic()

    def run(item):
        stage, (layer, comp) = item
        return (stage, layer, *synth_xc7_how(comp, top=stage.replace("-", "_"), timing=timing))

    # one progress line per stage as it finishes (in completion order: a slow first stage
    # must not hide the others)
    for done, (stage, layer, res, how) in enumerate(_as_completed(run, items, jobs), 1):
        results.setdefault(layer, Resources())
        results[layer] = results[layer] + res
        if progress:
            logic = f", logic {res.logic_ns:.2f} ns" if res.logic_ps is not None else ""
            progress(f"  [{done}/{len(items)}] synthesized {stage}: {res.lut} LUT, {res.ff} FF, "
                     f"{res.bram36:g} BRAM36, {res.dsp} DSP{logic} ({time.monotonic() - t0:.0f} s"
                     f"{'' if how == SYNTHESIZED else ', ' + how})")
    return compose_report(cfg, results, f_clk)


def compose_report(cfg, results, f_clk=100e6):
    """The :class:`NetworkReport` of ``cfg`` from ``{layer: Resources}``, each layer's the sum
    of the stages counted in it (:func:`synthesis_stages`; ``"weight_loader"`` for run-time
    weights); the total is the sum of the layers."""
    layers = []
    total = Resources()
    for L in cfg.layers:
        r = results.get(L.name, Resources())
        total = total + r
        layers.append(LayerReport(L.name, L.type, L.pe, L.simd, cfg.layer_cycles(L), r))
    if "weight_loader" in results:
        r = results["weight_loader"]
        total = total + r
        layers.append(LayerReport("weight_loader", "loader", 0, 0, 0, r))
    worst = max(layers, key=lambda x: x.cycles)
    return NetworkReport(cfg.name, layers, total, worst.name, worst.cycles, f_clk)


def format_report(rep, device=None):
    """The report as a text table (and utilisation lines when ``device`` is given)."""
    lines = [f"network {rep.name}: per-layer resources (Yosys synth_xilinx -family xc7) and cycles/frame",
             f"{'layer':<12} {'type':<8} {'PE':>4} {'SIMD':>5} {'cycles':>9} {'LUT':>8} {'LUTRAM':>7} "
             f"{'FF':>8} {'BRAM36':>7} {'DSP':>4} {'logic ns':>8}"]
    worst = rep.worst_logic
    for L in rep.layers:
        r = L.resources
        marks = []
        if L.cycles == rep.bottleneck_cycles:
            marks.append("bottleneck")
        if worst is not None and r.logic_ps == worst.resources.logic_ps:
            marks.append("longest path")
        mark = "  <- " + ", ".join(marks) if marks else ""
        ns = f"{r.logic_ns:.2f}" if r.logic_ps is not None else "-"
        lines.append(f"{L.name:<12} {L.type:<8} {L.pe:>4} {L.simd:>5} {L.cycles:>9,} {r.lut:>8,} "
                     f"{r.lutram:>7,} {r.ff:>8,} {r.bram36:>7g} {r.dsp:>4} {ns:>8}{mark}")
    t = rep.total
    lines.append(f"{'total':<12} {'':<8} {'':>4} {'':>5} {'':>9} {t.lut:>8,} {t.lutram:>7,} {t.ff:>8,} "
                 f"{t.bram36:>7g} {t.dsp:>4}")
    lines.append(f"bottleneck {rep.bottleneck}: {rep.bottleneck_cycles:,} cycles/frame -> "
                 f"{rep.frames_per_s:,.0f} frames/s at {rep.f_clk / 1e6:g} MHz")
    if worst is not None:
        ns = worst.resources.logic_ns
        lines.append(f"logic delay (Yosys sta, cell delays only): worst {worst.name} {ns:.2f} ns -> "
                     f"Fmax bound {rep.fmax_bound_mhz:,.0f} MHz, "
                     f"{1e6 * rep.fmax_bound_mhz / rep.bottleneck_cycles:,.0f} frames/s at the bound")
        lines.append("  optimistic bound, not timing closure: clock-to-out + logic + setup, no routing "
                     "delay (Vivado's Fmax will be lower)")
        if rep.f_clk > 1e6 * rep.fmax_bound_mhz:
            lines.append(f"  the {rep.f_clk / 1e6:g} MHz clock is above this bound: "
                         f"{worst.name} cannot meet timing as is (pipeline it: pipeline = \"max\" in the config)")
    if device is not None:
        for name, (u, cap, frac) in device.utilisation(t).items():
            over = "  <- over" if frac > 1 else ""
            lines.append(f"  {name:<7} {u:>10,.0f} of {cap:>8,} ({100 * frac:5.1f}%) on {device.part}{over}")
        lines.append(fit_verdict(rep, device))
    return "\n".join(lines)


def fit_verdict(rep, device):
    """One line: the design fits ``device``, or which resources it exceeds and by how much."""
    over = overflows(rep.total, device)
    if not over:
        return f"fits {device.part}"
    return (f"DOES NOT FIT {device.part}: {describe_overflows(over)}; `qnnfab generate` refuses it "
            "(reduce PE/SIMD of the largest layers, e.g. `qnnfab fold --fastest`)")


def plot_report(rep, path):
    """A PNG with two bar charts per layer: cycles/frame and LUTs."""
    import matplotlib   # here: heavy, and only the PNG needs it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [L.name for L in rep.layers]
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(6, 1.2 * len(names) + 4), 3.8))
    colors = ["tab:red" if L.cycles == rep.bottleneck_cycles else "tab:blue" for L in rep.layers]
    a.bar(names, [L.cycles for L in rep.layers], color=colors)
    a.set_title("cycles per frame (red: bottleneck)")
    a.set_ylabel("cycles")
    b.bar(names, [L.resources.lut + L.resources.lutram for L in rep.layers], color="tab:green")
    b.set_title("LUTs (logic + LUT-RAM)")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(f"{rep.name}: {rep.frames_per_s:,.0f} frames/s at {rep.f_clk / 1e6:g} MHz")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


class StagePair(wiring.Component):
    """Adjacent dataflow stages (a layer, the width converter and FIFO after it,
    the next layer) chained as :class:`~qnnfab.rtl.dataflow.Dataflow` chains
    them, between the first stage's input and the last stage's output; each
    stage keeps its name as its submodule name. A stage's weight-load bus (runtime
    weights) becomes port ``load<k>``, k its index in ``stages``."""

    def __init__(self, stages):
        self.stages = list(stages)
        ports = {"i": self.stages[0][2].signature.members["i"], "o": self.stages[-1][2].signature.members["o"]}
        for k, (_, _, comp) in enumerate(self.stages):
            if "load" in comp.signature.members:
                ports[f"load{k}"] = comp.signature.members["load"]
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        comps = []
        for k, (_, name, comp) in enumerate(self.stages):
            m.submodules[name] = comp
            comps.append(comp)
            if "load" in comp.signature.members:
                wiring.connect(m, wiring.flipped(getattr(self, f"load{k}")), comp.load)
        for a, b in zip(comps, comps[1:]):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, wiring.flipped(self.i), comps[0].i)
        wiring.connect(m, comps[-1].o, wiring.flipped(self.o))
        return m


def path_stages(path, names):
    """The stages (of ``names``, in the order first met) that the cells and nets of a
    :func:`~qnnfab.boards.estimate.yosys.sta_path` belong to, from its start to its end.

    A flattened netlist keeps the submodule path in the names it keeps
    (``conv5.mvtu.wmem0.0.13``, ``\\conv5_fifo.fifo.r_level``); the LUTs ABC
    creates have none, so a stage crossed only by such cells is not seen."""
    pat = re.compile(r"(?:^|[\\\s])(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                     + r")\.")
    seen = []
    after_clock_buffer = False
    for line in reversed(path[1:]):     # sta_path lists the endpoint first
        if after_clock_buffer:          # the clock net (named after any stage's clk): not a data hop
            after_clock_buffer = False
            continue
        after_clock_buffer = "(BUFG." in line
        for hit in pat.finditer(line):
            if hit.group(1) not in seen:
                seen.append(hit.group(1))
    return seen


@dataclass
class LinkReport:
    """The pair ``src`` -> ``dst`` synthesized together: its longest path (ps) and the
    stages that path runs through (:func:`path_stages`)."""
    src: str
    dst: str
    logic_ps: int | None
    stages: list

    @property
    def crosses(self):
        return len(self.stages) > 1


def layer_links(stages):
    """``[(src layer, dst layer, [stages from src to dst])]`` of adjacent layers among
    ``stages`` (:func:`~qnnfab.rtl.dataflow.stage_components`)."""
    links, current = [], None
    for stage in stages:
        kind = stage[0]
        if current is not None:
            current.append(stage)
        if kind not in ("fifo", "width"):
            if current is not None:
                links.append((current[0][1], stage[1], current))
            current = [stage]
    return links


def link_report(cfg, *, jobs=2, progress=print):
    """Synthesize every pair of adjacent layers of ``cfg`` with what lies between them
    (:class:`StagePair`, cached like the stages); return a list of :class:`LinkReport`."""
    # components of their own: the stages of the layer report are elaborated elsewhere
    links = layer_links(stage_components(plan_of(cfg)))
    t0 = time.monotonic()

    def run(link):
        src, dst, stages = link
        res, path = synth_xc7_path(StagePair(stages), top=f"link_{src}_{dst}")
        return LinkReport(src, dst, res.logic_ps, path_stages(path, [n for _, n, _ in stages]))

    out = {}
    for rep in _as_completed(run, links, jobs):
        out[rep.src, rep.dst] = rep
        if progress:
            ns = "-" if rep.logic_ps is None else f"{rep.logic_ps / 1000:.2f} ns"
            progress(f"  [{len(out)}/{len(links)}] synthesized {rep.src} -> {rep.dst} together: {ns} "
                     f"({time.monotonic() - t0:.0f} s)")
    return [out[link[:2]] for link in links]


def format_links(links):
    """The link check as text: one line per pair, then the worst path that crosses a stage boundary."""
    lines = ["paths between layers (Yosys sta, each two adjacent layers with their FIFO / width converter):"]
    for L in links:
        ns = "-" if L.logic_ps is None else f"{L.logic_ps / 1000:.2f} ns"
        where = (f"crosses {' -> '.join(L.stages)}" if L.crosses
                 else f"inside {L.stages[0]}" if L.stages else "stages not named on the path")
        lines.append(f"  {L.src + ' -> ' + L.dst:<22} longest path {ns:>8} ({where})")
    timed = [L for L in links if L.logic_ps is not None]
    if timed:
        worst = max(timed, key=lambda L: L.logic_ps)
        crossing = [L for L in timed if L.crosses]
        lines.append(f"  every path between two layers is at most {worst.logic_ps / 1000:.2f} ns "
                     f"(pair {worst.src} -> {worst.dst})")
        lines.append(f"  the longest one seen crossing a boundary: {max(L.logic_ps for L in crossing) / 1000:.2f} ns"
                     if crossing else "  no pair's longest path crosses a boundary")
    return "\n".join(lines)

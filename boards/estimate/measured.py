"""Folding chosen on measured figures: each stage's Yosys result, composed into the network's.

``qnnfab report`` synthesizes every stage of the dataflow on its own
(:func:`~qnnfab.boards.estimate.report.stage_owners`) and sums them per
layer. A stage's Verilog depends only on its own layer's settings (a layer) or
on the two layers it joins (a FIFO or width converter in front of a layer), so
a design's measured figures are the composition of per-stage results, each
synthesized once and cached by its Verilog (the cache ``report`` uses): the
search measures a candidate folding by synthesizing only the stages it has not
seen, and its totals are the ones ``report`` prints for the same config.

The search (:func:`measured_fold`) walks the auto-folder's path
(:func:`proposals`: FINN's rule of raising the bottleneck layer one step,
SIMD first, then PE, then several kernel positions per word; weight memory
styles by :func:`~qnnfab.boards.estimate.fold.assign_memory_styles`), the
cost model proposing each next point and pruning those it puts beyond the
budget by more than ``prune``. It starts where the cost model's own search
stops for the same budget (:func:`model_stop`), not at the fully folded
design (whose one-word-per-row weight ROMs are the slowest stages to
synthesize, and which a large layer's ROM can make unreadable to Yosys): it
goes back along the path while the measured design exceeds the budget, then
forward. Each point is measured (its new stages as Dask tasks,
:class:`~qnnfab.boards.estimate.synth_pool.SynthesisPool`, several points
ahead); the forward walk stops at the first point whose measured figures
exceed the :class:`Budget`, unless the raised layer fits with one of
its other weight memory styles or pipelined (each measured; the fewest LUTs
wins and stays while that layer keeps its SIMD and PE), and keeps the point
before it. With a
logic-delay target (a clock to meet), a layer whose stage is measured slower
gets ``pipeline = "max"`` and is measured again.

Then it rebalances (:class:`Rebalancer`): the path raises only the bottleneck,
along a fixed chain, so it ends with layers faster than they need to be; for a
cycles target T every layer takes its cheapest measured setting with cycles <= T
(any legal SIMD with any legal PE, each memory style and pipeline), and T is
lowered while the rebalanced design measures to fit.

:func:`explore` measures the whole path and keeps its Pareto front (cycles
per frame against LUT and BRAM).
"""

import dataclasses
import math
from dataclasses import dataclass

from qnnfab.errors import ConfigError
from qnnfab.folding import layer_cycles, pe_choices, simd_choices
from qnnfab.netconfig import COMPUTE, PIPELINE_MAX
from qnnfab.plan import plan_of

from .fold import assign_memory_styles, estimate, estimate_layer, folding_steps
from .report import compose_report, stage_owners, synthesis_component
from .stage_cache import known_verilog, remember_verilog, stage_description
from .synth_pool import stage_verilog
from .yosys import Resources, SynthesisFailed

__all__ = ["Budget", "Point", "Composer", "proposals", "measured_fold", "MeasuredFold", "explore", "pareto_front",
           "model_stop", "layer_candidates", "prune_candidates", "layer_table", "apply", "settings_of", "stop_notes",
           "foldings", "Rebalancer", "layer_estimates", "measure_layers"]

_SETTINGS = ("simd", "pe", "weight_memory", "pipeline")


@dataclass(frozen=True)
class Budget:
    """What a design may use, as fractions of the device: LUT (logic and LUT-RAM
    together), BRAM36, DSP, FF; ``margin`` raises the measured figures by that fraction
    before the check (headroom for place and route); ``logic_ps``, when given, bounds
    every stage's logic delay (a clock to meet: ``1e6 / MHz``)."""
    lut: float = 0.9
    bram36: float = 1.0
    dsp: float = 1.0
    ff: float = 1.0
    margin: float = 0.0
    logic_ps: int | None = None

    def limits(self, device):
        """``{resource: (fraction, capacity)}``."""
        return {"LUT": (self.lut, device.lut), "BRAM36": (self.bram36, device.bram36),
                "DSP": (self.dsp, device.dsp), "FF": (self.ff, device.ff)}

    def over(self, res, device):
        """What ``res`` exceeds, one phrase each (empty when it fits)."""
        used = {"LUT": res.lut + res.lutram, "BRAM36": res.bram36, "DSP": res.dsp, "FF": res.ff}
        out = []
        for name, (frac, cap) in self.limits(device).items():
            u = used[name] * (1 + self.margin)
            if u > frac * cap:
                plus = f" (+{100 * self.margin:g}% margin)" if self.margin else ""
                out.append(f"{name} {used[name]:,g}{plus} > {100 * frac:g}% of {cap:,}")
        if self.logic_ps is not None and res.logic_ps is not None and res.logic_ps > self.logic_ps:
            out.append(f"logic delay {res.logic_ps / 1000:.2f} ns > {self.logic_ps / 1000:.2f} ns")
        return out

    def describe(self, device):
        parts = [f"{100 * frac:g}% {name}" for name, (frac, _) in self.limits(device).items()]
        if self.margin:
            parts.append(f"{100 * self.margin:g}% margin")
        if self.logic_ps is not None:
            parts.append(f"logic <= {self.logic_ps / 1000:.2f} ns")
        return ", ".join(parts) + f" of {device.part}"


def settings_of(cfg):
    """``{layer: {simd, pe[, weight_memory, pipeline]}}`` of ``cfg``: what the search changes."""
    return {L.name: {k: getattr(L, k) for k in _SETTINGS if L.type in COMPUTE or k == "simd" or k == "pe"}
            for L in cfg.layers}


def apply(cfg, settings):
    """Set ``cfg``'s layers (in place) to ``settings`` (:func:`settings_of`)."""
    for L in cfg.layers:
        for k, v in settings[L.name].items():
            setattr(L, k, v)


@dataclass
class Point:
    """A folding on the search's path: ``settings`` (:func:`settings_of`), the layer raised
    to reach it (None at the start), its bottleneck and the cost model's figures."""
    settings: dict
    raised: str | None
    bottleneck: str
    cycles: int
    model: Resources


def _pruned(budget, prune):
    """The budget the cost model's estimates are checked against: ``budget`` raised by ``prune``
    (a fraction), without margin or logic-delay target."""
    return dataclasses.replace(budget, lut=budget.lut * (1 + prune), bram36=budget.bram36 * (1 + prune),
                               dsp=budget.dsp * (1 + prune), ff=budget.ff * (1 + prune), margin=0.0, logic_ps=None)


def proposals(cfg, device, budget, *, target_cycles=None, prune=0.15):
    """The auto-folder's path from the fully folded design, each point a :class:`Point`;
    ``(points, end)``. The path ends when the target is met, when the bottleneck is fully
    parallel, or after the first point the cost model puts beyond ``budget`` by more than
    ``prune`` (``end`` says which; that last point is kept: measurement may still fit it).
    ``cfg`` is left at the fully folded start."""
    bram_limit = budget.bram36 * device.bram36
    pos = {}
    for L in cfg.layers:
        pos[L.name] = 0
        L.simd, L.pe = folding_steps(L)[0]
    points, raised = [], None
    model_budget = _pruned(budget, prune)
    while True:
        assign_memory_styles(cfg, bram_limit)
        model = estimate(cfg)
        cycles = [(L, layer_cycles(L)) for L in cfg.layers]
        worst, wc = max(cycles, key=lambda t: t[1])
        points.append(Point(settings_of(cfg), raised, worst.name, wc, model))
        if target_cycles is not None and wc <= target_cycles:
            end = "target reached"
            break
        if model_budget.over(model, device):
            end = (f"the cost model puts the path's last point more than {100 * prune:g}% beyond the budget "
                   f"({', '.join(model_budget.over(model, device))}): no point after it is measured")
            break
        steps = folding_steps(worst)
        if pos[worst.name] + 1 >= len(steps):
            end = f"bottleneck {worst.name} is fully parallel"
            break
        pos[worst.name] += 1
        worst.simd, worst.pe = steps[pos[worst.name]]
        raised = worst.name
    apply(cfg, points[0].settings)
    return points, end


class Composer:
    """A config's measured figures from its stages' (:func:`stage_owners`), each stage
    synthesized once through ``pool`` (a :class:`~qnnfab.boards.estimate.synth_pool.SynthesisPool`).
    A stage is elaborated (its component built, its Verilog written) only when its
    description (:func:`~qnnfab.boards.estimate.stage_cache.stage_description`) has no
    known Verilog whose result the cache holds; ``elaborated`` counts those that were."""

    def __init__(self, pool, f_clk=100e6):
        self.pool = pool
        self.f_clk = f_clk
        self._keys = {}        # stage description: (top, Verilog key) of this search
        self.elaborated = 0

    def _request(self, plan, stage, priority):
        desc = stage_description(plan, stage, self.pool.timing)
        known = self._keys.get(desc) if desc is not None else None
        if known is None:
            known = known_verilog(desc)
        if known is not None:
            req = self.pool.request_known(*known)
            if req is not None:
                self._keys[desc] = known
                return req
        top = stage.replace("-", "_")
        text = stage_verilog(synthesis_component(plan, stage), top)
        self.elaborated += 1
        req = self.pool.request(text, top, priority)
        if desc is not None:
            if known != (top, req.key):
                remember_verilog(desc, top, req.key)
            self._keys[desc] = (top, req.key)
        return req

    def requests(self, cfg, priority=0, only=None):
        """``[(stage, layer it is counted in, pool handle)]`` of every stage of ``cfg`` (or of the
        stages named in ``only``), submitted; a stage is elaborated only when its Verilog and
        result are not known yet."""
        plan = plan_of(cfg)
        return [(stage, layer, self._request(plan, stage, priority)) for stage, layer in stage_owners(plan)
                if only is None or stage in only]

    def report(self, cfg, priority=0):
        """The :class:`~qnnfab.boards.estimate.report.NetworkReport` of ``cfg`` composed from
        its stages' results (waits for their syntheses)."""
        results = {}
        for _, layer, req in self.requests(cfg, priority):
            results[layer] = results.get(layer, Resources()) + self.pool.result(req)
        return compose_report(cfg, results, self.f_clk)


@dataclass
class MeasuredFold:
    """The outcome of :func:`measured_fold`: ``cfg`` set to the chosen folding, its composed
    ``report``, why the search stopped, the per-layer notes (:func:`stop_notes`), the
    points checked (each counted once per visit), the layer whose next step did not fit and the settings tried for
    that step, each with what it exceeds (``[(settings, [phrases])]``), and how many
    stages were elaborated (:class:`Composer`)."""
    cfg: object
    report: object
    reason: str
    notes: dict
    measured: int
    stopper: str | None = None
    rejected: list = dataclasses.field(default_factory=list)
    elaborated: int = 0     # stages elaborated (the others' Verilog and result were known)
    start: int = 0          # the index on the path where the walk started
    walked_back: int = 0    # points walked back from there before one fitted
    balanced: object = None   # the rebalancing's outcome (:class:`Rebalanced`), None without it


def _variants(settings, layer):
    """``settings`` with ``layer``'s other weight memory styles, and at pipeline = "max"."""
    own = settings[layer]
    if "weight_memory" not in own:
        return []
    out = []
    for style in ("auto", "block", "distributed"):
        for pipe in dict.fromkeys((own["pipeline"], PIPELINE_MAX)):
            if (style, pipe) != (own["weight_memory"], own["pipeline"]):
                s = {k: dict(v) for k, v in settings.items()}
                s[layer].update(weight_memory=style, pipeline=pipe)
                out.append(s)
    return out


def _over_timing(rep, budget):
    """Compute layers whose logic delay exceeds the budget's."""
    if budget.logic_ps is None:
        return []
    return [L.name for L in rep.layers if L.type in COMPUTE and L.resources.logic_ps is not None
            and L.resources.logic_ps > budget.logic_ps]


def measured_fold(cfg, device, pool, *, budget=Budget(), target_fps=None, f_clk=100e6, prune=0.15,
                  lookahead=None, progress=print, fps_name=("measured_fold", "target_fps"), start=None,
                  rebalance=True):
    """Choose every layer's folding of ``cfg`` (in place) on measured figures; a :class:`MeasuredFold`.

    ``target_fps=None``: the fastest design whose measured figures fit ``budget``; else a design
    meeting ``target_fps`` that fits: the first point of the path reaching it, replaced by the
    rebalanced design for it when that fits and the path's point does not or uses more LUTs
    (ConfigError if neither fits).
    The walk starts where the cost model's own search stops (:func:`model_stop`), goes
    back along the path while the measured design does not fit, then forward while it
    does (``start``, an index into :func:`proposals`' path, starts it elsewhere;
    the last point with -1); ``lookahead`` points (default twice the pool's workers) are submitted ahead of
    the one being checked, in the direction of the walk. ``rebalance``: after the walk, the
    rebalancing (:func:`_rebalance`) may replace its choice by a faster (or, for a target, cheaper) one."""
    fps_where, fps_field = fps_name
    if target_fps is not None and not (target_fps > 0 and math.isfinite(target_fps)):
        raise ConfigError(fps_where, fps_field, f"must be a positive number, not {target_fps:g}",
                          "e.g. 3000 frames/s, or no target for the fastest design that fits")
    target_cycles = None if target_fps is None else f_clk / target_fps
    points, end = proposals(cfg, device, budget, target_cycles=target_cycles, prune=prune)
    start = model_stop(points, budget, device) if start is None else range(len(points))[start]
    if progress:
        progress(f"{len(points)} foldings proposed by the cost model ({end}); the cost model's own search "
                 f"stops at point {start + 1} ({points[start].cycles:,} cycles/frame): measuring from there")
    comp = Composer(pool, f_clk)
    lookahead = lookahead or 2 * pool.workers
    pipelined = set()      # layers the logic-delay target moved to pipeline = "max"
    pinned = {}            # layer: its measured alternative {simd, pe, weight_memory, pipeline}, kept while
    submitted = set()      # the path leaves its SIMD and PE as they are
    best, best_rep, reason, stopper, rejected = None, None, end, None, []

    def settle(p):
        s = {k: dict(v) for k, v in p.settings.items()}
        for name in pipelined:
            s[name]["pipeline"] = PIPELINE_MAX
        for name, alt in pinned.items():
            if (s[name]["simd"], s[name]["pe"]) == (alt["simd"], alt["pe"]):
                s[name].update(alt)
        return s

    def measure(i):
        """Point ``i`` (settled) measured, the logic-delay target applied: ``(settings, report, over)``."""
        apply(cfg, settle(points[i]))
        try:
            rep = comp.report(cfg, priority=-abs(i - start))
        except SynthesisFailed as e:
            raise SynthesisFailed(e.top, f"{e.reason}; the search stopped at point {i + 1} of the path "
                                  f"({points[i].cycles:,} cycles/frame)", e.log) from None
        slow = [n for n in _over_timing(rep, budget) if n not in pipelined]
        if slow:
            pipelined.update(slow)
            apply(cfg, settle(points[i]))
            rep = comp.report(cfg, priority=-abs(i - start))
        over = budget.over(rep.total, device)
        if progress:
            r = rep.total
            progress(f"point {i + 1}/{len(points)}: {rep.bottleneck_cycles:,} cycles/frame, "
                     f"{r.lut + r.lutram:,} LUT, {r.bram36:g} BRAM36, {r.dsp} DSP, {r.ff:,} FF measured"
                     f"{'  <- over: ' + '; '.join(over) if over else ''}")
        return settle(points[i]), rep, over

    def submit(indices):
        for j in indices:
            if j not in submitted:
                submitted.add(j)
                apply(cfg, settle(points[j]))
                comp.requests(cfg, priority=-abs(j - start))

    # backward from the start while the measured design does not fit
    checked = 0
    first = start
    # ahead of the start: the points after it (a cautious cost model's stop usually fits); once it
    # is over, those are cancelled and the points before it go ahead instead
    submit(range(start, min(len(points), start + lookahead)))
    while True:
        if first < start:
            if first == start - 1:
                pool.cancel_pending()
                submitted.clear()
            submit(range(first, max(first - lookahead, -1), -1))
        settings, rep, over = measure(first)
        checked += 1
        if not over:
            best, best_rep = settings, rep
            break
        if first == 0:
            raise ConfigError(f"network '{cfg.name}'", "resources", "does not fit even fully folded "
                              f"(PE = SIMD = 1): measured {'; '.join(over)}",
                              "use a smaller network, a larger device or a larger budget")
        first -= 1
    if first < start:
        pool.cancel_pending()     # the points before ``first`` submitted ahead are not needed
        submitted.clear()
        if progress:
            progress(f"walked back {start - first} point(s) from the cost model's stop to the first that fits")
    # forward from the first point that fits: raise the bottleneck while the measured design fits
    for i in range(first + 1, len(points)):
        p = points[i]
        submit(range(i, min(len(points), i + lookahead)))
        checked += 1
        settings, rep, over = measure(i)
        if over:
            # the same step with the layer's other memory styles / pipelined, measured: the fewest LUTs that fits
            tried = [(settings, over)]
            fitting = []
            variants = _variants(settings, p.raised)
            for alt in variants:                 # all submitted first: they run in parallel
                apply(cfg, alt)
                comp.requests(cfg, priority=-i)
            for alt in variants:
                apply(cfg, alt)
                try:
                    alt_rep = comp.report(cfg, priority=-i)
                except SynthesisFailed as e:     # a variant Yosys cannot synthesize is skipped, not chosen
                    if progress:
                        a = alt[p.raised]
                        progress(f"  skipped {p.raised} as weight_memory = {a['weight_memory']!r}, pipeline = "
                                 f"{a['pipeline']!r}: {e}")
                    tried.append((alt, [f"not synthesized ({e.reason}; log: {e.log})"]))
                    continue
                alt_over = budget.over(alt_rep.total, device)
                tried.append((alt, alt_over))
                if not alt_over:
                    fitting.append((alt_rep.total.lut + alt_rep.total.lutram, alt, alt_rep))
            if fitting:
                luts, alt, rep = min(fitting, key=lambda f: f[0])
                pinned[p.raised] = dict(alt[p.raised])
                if progress:
                    a = alt[p.raised]
                    progress(f"  {p.raised} fits as weight_memory = {a['weight_memory']!r}, pipeline = "
                             f"{a['pipeline']!r}: {luts:,} LUT")
                best, best_rep = alt, rep
                continue
            stopper, rejected = p.raised, tried
            s = p.settings[p.raised]
            reason = (f"the next step of bottleneck {p.raised} (SIMD {s['simd']}, PE {s['pe']}) measures "
                      f"{'; '.join(over)}" + (", and with each other weight memory style and pipeline too"
                                              if len(tried) > 1 else ""))
            break
        best, best_rep = settings, rep
    pool.cancel_pending()
    balanced = None
    if rebalance:
        balanced = _rebalance(cfg, device, comp, budget, best, best_rep, points, target_cycles, pipelined,
                              progress, prune)
        if balanced.settings is not None:
            best, best_rep = balanced.settings, balanced.report
            pipelined |= balanced.pipelined
            stopper, rejected = None, []
            reason = balanced.reason
        else:
            reason += f"; {balanced.reason}"
    apply(cfg, best)
    if target_cycles is not None and best_rep.bottleneck_cycles > target_cycles:
        wc = best_rep.bottleneck_cycles
        raise ConfigError(f"network '{cfg.name}'", fps_field,
                          f"{target_fps:,.0f} frames/s is out of reach: {reason}; best measured to fit is "
                          f"{f_clk / wc:,.0f} frames/s ({wc:,} cycles/frame)",
                          "lower the target, raise the budget, or fold for the fastest design that fits")
    if balanced is not None and balanced.settings is not None:
        notes = balanced.notes(cfg, best_rep.bottleneck_cycles, target_cycles, pipelined)
    else:
        notes = stop_notes(cfg, best_rep.bottleneck_cycles, stopper, reason, target_cycles, pipelined)
    for name, alt in pinned.items():
        if best[name] == alt and (balanced is None or balanced.settings is None):
            notes[name] += (f"; weight_memory = {alt['weight_memory']!r}, pipeline = {alt['pipeline']!r} "
                            "chosen among the measured alternatives (the cost model's choice did not fit)")
    return MeasuredFold(cfg, best_rep, reason, notes, checked, stopper, rejected, comp.elaborated, start,
                        start - first, balanced)


# what a BRAM36 counts in LUTs while the rebalancing looks for a design whose block RAMs fit
# (0 first: the fewest LUTs; a BRAM36 holds what about 576 LUT ROMs of 64 bits do)
BRAM_PRICES = (0, 64, 256, 1024, 4096)


@dataclass
class Rebalanced:
    """The outcome of the rebalancing (:class:`Rebalancer`) after the walk: ``settings`` and
    ``report`` of the fastest rebalanced design that fits (None when none beat the walk's),
    ``target`` its cycles target, ``reason`` why it stopped there, ``tried`` ``[(target,
    cycles, LUT, over)]`` of each design measured, ``pipelined`` the layers its design has at
    pipeline = "max" for the logic-delay target."""
    settings: dict | None
    report: object
    target: int | None
    reason: str
    tried: list
    pipelined: set = dataclasses.field(default_factory=set)

    def notes(self, cfg, bottleneck_cycles, target_cycles=None, pipelined=()):
        """``{layer: why}`` of the rebalanced design (see :func:`stop_notes`)."""
        notes = {}
        for L in cfg.layers:
            c = layer_cycles(L)
            if target_cycles is not None:
                why = f"{c:,} cycles/frame: its cheapest measured setting meeting the target ({target_cycles:,.0f})"
            elif c == bottleneck_cycles:
                why = f"bottleneck; {self.reason}"
            else:
                why = (f"{c:,} cycles/frame: its cheapest measured setting within the bottleneck's "
                       f"{self.target:,} (rebalanced; more parallelism would not raise frames/s)")
            if L.name in pipelined:
                why += "; pipeline = \"max\" to meet the logic-delay target"
            notes[L.name] = why
        return notes


def _rebalance(cfg, device, comp, budget, best, best_rep, points, target_cycles, pipelined, progress, prune=0.15):
    """After the walk (its choice ``best``, measured ``best_rep``): every layer at its cheapest
    measured setting within a cycles target T (:class:`Rebalancer`); a :class:`Rebalanced`.
    With ``target_cycles``, T is the target (the design with the fewest LUTs meeting it, taken
    when it fits and the walk's misses the target or uses more LUTs). Else T runs over the
    path's cycles below the walk's choice, then every cycles value between the last that fits
    and the first that does not, in decreasing order, while the rebalanced design fits. BRAM36
    over the budget raises their price in LUTs (:data:`BRAM_PRICES`); a logic delay over the
    target pipelines the layer, as the walk does (in the rebalancer's own copy of ``pipelined``,
    kept in the outcome with the design that fits). A T whose cheapest choice by the cost model
    alone is beyond the budget by more than ``prune`` is not synthesized (as the walk's path
    ends there); a setting or design Yosys cannot synthesize is left out or does not fit."""
    rb = Rebalancer(cfg, comp, set(pipelined))
    cur, cur_rep = best, best_rep
    model_budget = _pruned(budget, prune)

    def luts(rep):
        return rep.total.lut + rep.total.lutram

    tried = []

    def attempt(T):
        """The rebalanced design for T: ``(settings, report, over)``; settings None if unreachable
        or put beyond the budget by the cost model (nothing synthesized then); report None if
        Yosys could not synthesize it."""
        models = [rb.model_choice(cur, T, price) for price in BRAM_PRICES]
        if models[0] is None:
            return None, None, ["a layer cannot reach it"]
        # pruned only when no BRAM36 price gives a choice the cost model puts near the budget
        model_over = min((model_budget.over(m, device) for m in models), key=len)
        if model_over:
            why = (f"the cost model puts it more than {100 * prune:g}% beyond the budget whatever a BRAM36 is "
                   f"priced ({'; '.join(model_over)})")
            if progress:
                progress(f"rebalanced for {T:,.0f} cycles/frame: not measured, {why}")
            return None, None, [why]
        for price in BRAM_PRICES:
            s = rb.choose(cur, T, price)
            if s is None:
                return None, None, ["a layer cannot reach it"]
            apply(cfg, s)
            try:
                rep = comp.report(cfg)
            except SynthesisFailed as e:      # as the walk's variants: a design Yosys cannot synthesize does not fit
                if progress:
                    progress(f"rebalanced for {T:,.0f} cycles/frame: not synthesized: {e}")
                return s, None, [f"not synthesized ({e.reason}; log: {e.log})"]
            slow = [n for n in _over_timing(rep, budget) if n not in rb.pipelined]
            if slow:
                rb.pipelined.update(slow)
                return attempt(T)
            over = budget.over(rep.total, device)
            if progress:
                r = rep.total
                progress(f"rebalanced for {T:,.0f} cycles/frame"
                         f"{f' (a BRAM36 priced {price} LUT)' if price else ''}: {rep.bottleneck_cycles:,} "
                         f"cycles/frame, {luts(rep):,} LUT, {r.bram36:g} BRAM36, {r.dsp} DSP, {r.ff:,} FF measured"
                         f"{'  <- over: ' + '; '.join(over) if over else ''}")
            tried.append((T, rep.bottleneck_cycles, luts(rep), over))
            if not over or any(not o.startswith("BRAM36") for o in over):
                return s, rep, over
        return s, rep, over

    if target_cycles is not None:
        s, rep, over = attempt(target_cycles)
        apply(cfg, best)
        if s is not None and not over and (best_rep.bottleneck_cycles > target_cycles or luts(rep) < luts(best_rep)):
            return Rebalanced(s, rep, target_cycles, "every layer at its cheapest measured setting meeting "
                              "the target", tried, set(rb.pipelined))
        why = "; ".join(over) or "not cheaper than the walk's"
        return Rebalanced(None, None, target_cycles, f"rebalanced for the target: {why}", tried)
    fitted, fitted_rep, fitted_T, reason, fitted_pipelined = None, None, None, None, set()
    over_T = None
    for T in sorted({p.cycles for p in points if p.cycles < cur_rep.bottleneck_cycles}, reverse=True):
        if T >= cur_rep.bottleneck_cycles:
            continue
        s, rep, over = attempt(T)
        if s is None or over:
            over_T, reason = T, _over_reason(T, rep, over)
            break
        cur, cur_rep, fitted, fitted_rep, fitted_T = s, rep, s, rep, T
        fitted_pipelined = set(rb.pipelined)
    while True:
        lower = [T for T in rb.targets(cur_rep.bottleneck_cycles) if over_T is None or T > over_T]
        if not lower:
            break
        T = lower[0]
        s, rep, over = attempt(T)
        if s is None or over:
            over_T, reason = T, _over_reason(T, rep, over)
            break
        cur, cur_rep, fitted, fitted_rep, fitted_T = s, rep, s, rep, T
        fitted_pipelined = set(rb.pipelined)
    if reason is None:
        reason = "no layer can go faster"
    apply(cfg, best)
    if fitted is None:
        return Rebalanced(None, None, None, reason, tried)
    return Rebalanced(fitted, fitted_rep, fitted_T, reason, tried, fitted_pipelined)


def _over_reason(T, rep, over):
    """Why the rebalancing for ``T`` stopped: its design measured (``rep``) ``over`` the budget, or
    (``rep`` None) not measured or not synthesized, ``over`` saying why."""
    return (f"rebalanced for {T:,.0f} cycles/frame (every layer at its cheapest measured setting within it), "
            + (f"the design measures {'; '.join(over)}" if rep is not None else "; ".join(over)))


def model_stop(points, budget, device):
    """Where the cost model's own search stops for ``budget`` on the path ``points``
    (:func:`proposals`): the index of the last point before the first the cost model puts
    over the budget (0 when even the first is; the last point when none is)."""
    model_budget = dataclasses.replace(budget, margin=0.0, logic_ps=None)
    for i, p in enumerate(points):
        if model_budget.over(p.model, device):
            return max(0, i - 1)
    return len(points) - 1


def stop_notes(cfg, bottleneck_cycles, stopper, reason, target_cycles=None, pipelined=()):
    """``{layer: why its folding stopped where it is}``, one line each: ``stopper`` is the
    layer whose next step did not fit (``reason``), None when the search ended otherwise."""
    notes = {}
    for L in cfg.layers:
        c = layer_cycles(L)
        steps = folding_steps(L)
        at_top = (L.simd, L.pe) == steps[-1]
        if L.name == stopper:
            why = f"bottleneck; {reason}"
        elif target_cycles is not None and c <= target_cycles:
            why = f"{c:,} cycles/frame meets the target ({target_cycles:,.0f})"
        elif at_top:
            why = "fully parallel"
        elif c < bottleneck_cycles:
            why = (f"not the bottleneck ({c:,} < {bottleneck_cycles:,} cycles/frame): more parallelism "
                   "would not raise frames/s")
        else:
            why = f"a bottleneck ({c:,} cycles/frame); {reason}"
        if L.name in pipelined:
            why += "; pipeline = \"max\" to meet the logic-delay target"
        notes[L.name] = why
    return notes


def pareto_front(rows):
    """The rows (each with ``cycles``, ``lut`` and ``bram36``) no other row beats: at most its
    cycles, LUT and BRAM and better in one. In increasing cycles."""
    front = []
    for a in rows:
        ka = (a["cycles"], a["lut"], a["bram36"])
        if not any(all(x <= y for x, y in zip(kb, ka)) and kb != ka
                   for kb in ((b["cycles"], b["lut"], b["bram36"]) for b in rows)):
            if ka not in [(f["cycles"], f["lut"], f["bram36"]) for f in front]:
                front.append(a)
    return sorted(front, key=lambda r: (r["cycles"], r["lut"]))


def explore(cfg, device, pool, *, budget=Budget(lut=1.0), f_clk=100e6, prune=0.15, progress=print):
    """Measure the auto-folder's whole path within ``budget`` (the cost model pruning beyond
    it); ``(rows, front)``: one row per measured point (``settings``, ``cycles``, ``lut``
    (logic and LUT-RAM), ``bram36``, ``dsp``, ``ff``, ``fits``, ``report``) and their
    :func:`pareto_front` among the points that fit."""
    points, end = proposals(cfg, device, budget, prune=prune)
    if progress:
        progress(f"{len(points)} foldings proposed by the cost model ({end}); measuring all of them")
    comp = Composer(pool, f_clk)
    for i, p in enumerate(points):
        apply(cfg, p.settings)
        comp.requests(cfg, priority=-i)
    rows = []
    for i, p in enumerate(points):
        apply(cfg, p.settings)
        rep = comp.report(cfg, priority=-i)
        r = rep.total
        rows.append({"settings": p.settings, "cycles": rep.bottleneck_cycles, "lut": r.lut + r.lutram,
                     "bram36": r.bram36, "dsp": r.dsp, "ff": r.ff, "logic_ps": r.logic_ps,
                     "fits": not budget.over(r, device), "report": rep})
        if progress:
            progress(f"point {i + 1}/{len(points)}: {rep.bottleneck_cycles:,} cycles/frame, "
                     f"{r.lut + r.lutram:,} LUT, {r.bram36:g} BRAM36 ({pool.status()})")
    apply(cfg, points[0].settings)
    return rows, pareto_front([r for r in rows if r["fits"]])


def layer_candidates(cfg, layer, *, styles=("auto", "block", "distributed"), pipelines=(0, PIPELINE_MAX),
                     folds=None):
    """Every folding of ``layer`` (a name) the search may give it: ``folds`` (``[(simd, pe)]``;
    by default its steps, SIMD, PE, then several kernel positions per word: :func:`folding_steps`),
    each with each weight memory style and pipeline of an fc/conv layer;
    ``[{simd, pe[, weight_memory, pipeline]}]``."""
    L = next(x for x in cfg.layers if x.name == layer)
    out = []
    for simd, pe in (folding_steps(L) if folds is None else folds):
        if L.type not in COMPUTE:
            out.append({"simd": simd, "pe": pe})
            continue
        for st in styles:
            for pp in pipelines:
                out.append({"simd": simd, "pe": pe, "weight_memory": st, "pipeline": pp})
    return out


def layer_estimates(cfg, layer, candidates):
    """``[(setting, cycles, the cost model's Resources of the layer)]`` of each candidate setting
    of ``layer`` (:func:`layer_candidates`); ``cfg`` is left as it was."""
    L = next(x for x in cfg.layers if x.name == layer)
    runtime = cfg.weights_mode == "runtime"
    before = {k: getattr(L, k) for k in _SETTINGS if hasattr(L, k)}
    rows = []
    try:
        for cand in candidates:
            for k, v in cand.items():
                setattr(L, k, v)
            rows.append((cand, layer_cycles(L), estimate_layer(L, runtime)))
    finally:
        for k, v in before.items():
            setattr(L, k, v)
    return rows


def prune_candidates(cfg, layer, candidates, device, budget):
    """The candidates (:func:`layer_candidates`) whose layer the cost model puts within
    ``budget`` of ``device`` on its own (the others cannot be part of a design that fits)."""
    return [cand for cand, _, model in layer_estimates(cfg, layer, candidates) if not budget.over(model, device)]


def measure_layers(comp, cfg, base, todo):
    """Each ``(layer, setting)`` of ``todo`` measured on its own: the layer's own stage synthesized
    through ``comp`` (a :class:`Composer`), the layer at ``setting`` and the other layers as in
    ``base`` (:func:`settings_of`; their stages are not synthesized). All are submitted before
    the first is waited for; ``[(layer, setting, cycles, Resources of the layer's own stage, or
    the SynthesisFailed of a stage Yosys could not synthesize)]`` in ``todo``'s order. ``cfg`` is
    left at ``base``."""
    pending = []
    try:
        for k, (name, setting) in enumerate(todo):
            s = {n: dict(v) for n, v in base.items()}
            s[name].update(setting)
            apply(cfg, s)
            own = [req for _, _, req in comp.requests(cfg, priority=-k, only={name})]
            pending.append((name, setting, layer_cycles(next(L for L in cfg.layers if L.name == name)), own))
        out = []
        for name, setting, cycles, own in pending:
            total = Resources()
            try:
                for req in own:
                    total = total + comp.pool.result(req)
            except SynthesisFailed as e:
                total = e
            out.append((name, setting, cycles, total))
        return out
    finally:
        apply(cfg, base)


def layer_table(cfg, layer, candidates, pool, f_clk=100e6):
    """The measured table of ``layer``: for each candidate setting (:func:`layer_candidates`),
    ``(setting, cycles, Resources of the layer's own stage)``, the others layers as in ``cfg``
    (their stages are not synthesized; :func:`measure_layers`). ``cfg`` is left as it was."""
    rows = []
    for _, cand, cycles, res in measure_layers(Composer(pool, f_clk), cfg, settings_of(cfg),
                                               [(layer, cand) for cand in candidates]):
        if isinstance(res, SynthesisFailed):
            raise res
        rows.append((cand, cycles, res))
    return rows


def foldings(L):
    """Every ``(simd, pe)`` layer ``L`` may take, the auto-folder's path
    (:func:`~qnnfab.boards.estimate.fold.folding_steps`) and off it: for an fc or conv
    layer each legal SIMD (for a convolution also m kernel positions per word) with each
    legal PE; for another layer its steps."""
    if L.type not in COMPUTE:
        return folding_steps(L)
    simds = simd_choices(L.type, L.in_shape, L.kernel) if L.type == "conv" else simd_choices(L.type, L.in_shape)
    return [(s, p) for s in simds for p in pe_choices(L.out)]


def _key(setting):
    return tuple(sorted(setting.items()))


class Rebalancer:
    """Each layer at its cheapest setting within a cycles target, on measured figures.

    The auto-folder's path only ever raises the bottleneck, one step along a fixed chain, so
    at its end some layers run much faster than the bottleneck (a step of their chain
    overshot; a folding off the chain, such as several kernel positions per word at a
    smaller PE, or another weight memory style or pipeline, reaches the target for fewer
    LUTs). :meth:`choose` gives every layer, for a target of ``T`` cycles/frame, the setting
    (:func:`foldings` x weight memory style x pipeline) with the fewest LUTs (logic and LUT-RAM,
    then fewest BRAM36) among those with cycles <= ``T``: by the layer's own stage measured
    where it is, else by the cost model scaled by the ratio measured / model of the layer's
    settings measured so far (of the same folding where measured). The cheapest estimates are
    measured (:meth:`worth_measuring`; their stages synthesized through the :class:`Composer`)
    until those are measured ones, so the cost model only proposes which settings are worth a
    synthesis; before a synthesis the cheapest :data:`PROBED` estimates
    of each layer are looked up in the cache (free when an earlier search or report measured
    them). ``pipelined`` layers keep ``pipeline = "max"``; a setting whose stage Yosys cannot
    synthesize is noted in ``failed`` (``{(layer, setting key): the error}``) and never chosen."""

    PROBED = 8
    SPREAD = 2
    CLOSE = 0.15

    def __init__(self, cfg, comp, pipelined=()):
        self.cfg = cfg
        self.comp = comp
        self.pipelined = pipelined
        self.measured = {}     # (layer, setting key): Resources of the layer's own stage
        self.failed = {}       # (layer, setting key): the SynthesisFailed of its stage
        self._cands = {}       # layer: [(setting, cycles, model Resources)]
        self._probed = set()   # (layer, setting key) looked up in the cache

    def candidates(self, name):
        """``[(setting, cycles, model Resources)]`` of every setting of layer ``name``."""
        if name not in self._cands:
            L = next(x for x in self.cfg.layers if x.name == name)
            self._cands[name] = layer_estimates(self.cfg, name, layer_candidates(self.cfg, name, folds=foldings(L)))
        return self._cands[name]

    def within(self, name, target):
        """The settings of ``name`` with cycles <= ``target``, pipeline = "max" only if it is pipelined."""
        return [(s, c, m) for s, c, m in self.candidates(name) if c <= target
                and (name not in self.pipelined or s.get("pipeline") == PIPELINE_MAX)
                and (name, _key(s)) not in self.failed]

    def _ratio(self, name, folding=None):
        """Measured / model LUTs over ``name``'s settings measured so far (those of ``folding``,
        a ``(simd, pe)``, when given); None before any."""
        pairs = [(self.measured[name, _key(s)], m) for s, _, m in self.candidates(name)
                 if (name, _key(s)) in self.measured and (folding is None or (s["simd"], s["pe"]) == folding)]
        model = sum(m.lut + m.lutram for _, m in pairs)
        return sum(r.lut + r.lutram for r, _ in pairs) / model if model else None

    def cost(self, name, setting, model):
        """``(LUT, BRAM36, 1 if estimated)`` of a setting: measured, else the model scaled by the
        ratio measured / model of the same folding's other settings, else of the layer's."""
        got = self.measured.get((name, _key(setting)))
        if got is not None:
            return (got.lut + got.lutram, got.bram36, 0)
        r = self._ratio(name, (setting["simd"], setting["pe"]))
        r = self._ratio(name) if r is None else r
        r = 1.0 if r is None else r
        return (r * (model.lut + model.lutram), model.bram36, 1)

    def worth_measuring(self, name, target, bram_price=0):
        """The settings of ``name`` to know measured before its cheapest is chosen: the cheapest
        (by :meth:`cost`) of each of the :data:`SPREAD` cheapest foldings whose cost is within
        :data:`CLOSE` of the cheapest's (the cost model can rank close foldings wrongly: the
        measured ratio of one folding says little about another's)."""
        rows = sorted(self.within(name, target), key=lambda r: self._rank(name, r, bram_price))
        out, seen = [], set()
        for row in rows:
            folding = (row[0]["simd"], row[0]["pe"])
            if folding in seen:
                continue
            if out and (len(out) >= self.SPREAD
                        or self._rank(name, row, bram_price)[0] > (1 + self.CLOSE) * self._rank(name, rows[0],
                                                                                            bram_price)[0]):
                break
            seen.add(folding)
            out.append(row[0])
        return out

    def _measure(self, todo, base):
        """Synthesize each ``(layer, setting)`` of ``todo``'s own stage, ``base`` the other layers."""
        for name, setting, _, res in measure_layers(self.comp, self.cfg, base, todo):
            if isinstance(res, SynthesisFailed):     # as the walk's variants: skipped, not chosen
                self.failed[name, _key(setting)] = res
            else:
                self.measured[name, _key(setting)] = res

    def _probe(self, base, target, bram_price):
        """Record the cached results (known by their stage description, nothing elaborated) of the
        :data:`PROBED` cheapest settings not measured yet of every layer; whether any was."""
        found = False
        for L in self.cfg.layers:
            rows = sorted(self.within(L.name, target),
                          key=lambda r: self._rank(L.name, r, bram_price))
            fresh = [r[0] for r in rows if (L.name, _key(r[0])) not in self.measured
                     and (L.name, _key(r[0])) not in self._probed][:self.PROBED]
            for setting in fresh:
                self._probed.add((L.name, _key(setting)))
                s = {n: dict(v) for n, v in base.items()}
                s[L.name] = dict(setting)
                apply(self.cfg, s)
                known = known_verilog(stage_description(plan_of(self.cfg), L.name, self.comp.pool.timing))
                req = None if known is None else self.comp.pool.request_known(*known)
                if req is not None and req.result is not None:
                    self.measured[L.name, _key(setting)] = req.result
                    found = True
        return found

    def _rank(self, name, row, bram_price):
        lut, bram, estimated = self.cost(name, row[0], row[2])
        return (lut + bram_price * bram, bram, estimated, -row[1])

    def cheapest(self, name, target, bram_price=0):
        """``name``'s cheapest setting with cycles <= ``target`` by :meth:`cost`, a BRAM36 counted
        as ``bram_price`` LUTs (None if none reaches ``target``)."""
        rows = self.within(name, target)
        if not rows:
            return None
        return min(rows, key=lambda r: self._rank(name, r, bram_price))[0]

    def model_choice(self, base, target, bram_price=0):
        """The cost model's :class:`Resources` of ``base`` with every layer at its setting with
        cycles <= ``target`` the cost model alone puts at the fewest LUTs (then BRAM36), a BRAM36
        counted as ``bram_price`` LUTs; None if a layer cannot reach ``target``. Nothing is
        synthesized; ``cfg`` is left at ``base``."""
        out = {n: dict(v) for n, v in base.items()}
        for L in self.cfg.layers:
            rows = self.within(L.name, target)
            if not rows:
                return None
            out[L.name].update(min(rows, key=lambda r: (r[2].lut + r[2].lutram + bram_price * r[2].bram36,
                                                         r[2].bram36, -r[1]))[0])
        try:
            apply(self.cfg, out)
            return estimate(self.cfg)
        finally:
            apply(self.cfg, base)

    def choose(self, base, target, bram_price=0):
        """``base`` (:func:`settings_of`) with every layer at its cheapest measured setting with
        cycles <= ``target`` (None if a layer cannot reach it), a BRAM36 counted as ``bram_price``
        LUTs; ``cfg`` is left at ``base``."""
        try:
            while True:
                picks = {L.name: self.cheapest(L.name, target, bram_price) for L in self.cfg.layers}
                if any(p is None for p in picks.values()):
                    return None
                todo = [(n, p) for n in picks for p in self.worth_measuring(n, target, bram_price)
                        if (n, _key(p)) not in self.measured]
                if not todo:
                    out = {n: dict(v) for n, v in base.items()}
                    for n, p in picks.items():
                        out[n].update(p)
                    return out
                if not self._probe(base, target, bram_price):
                    self._measure(todo, base)
        finally:
            apply(self.cfg, base)

    def targets(self, below):
        """Every cycles/frame value below ``below`` some setting of a layer takes and every layer
        can reach, in decreasing order."""
        floor = max(min(c for _, c, _ in self.candidates(L.name)) for L in self.cfg.layers)
        values = {c for L in self.cfg.layers for _, c, _ in self.candidates(L.name)}
        return sorted((c for c in values if floor <= c < below), reverse=True)

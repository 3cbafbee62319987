"""Auto-folding: choose PE/SIMD per layer for a target frame rate or the fastest design that fits.

The method is FINN's: start every layer fully folded (PE = SIMD = 1), then
repeatedly give the bottleneck layer the next larger valid parallelism (SIMD
first, up to its input length or channels, then PE; a convolution at full PE
then takes SIMD beyond its channels, m kernel positions per word, at
whichever PE gives the next larger PE * SIMD) until the target cycles
per frame is met, or, for "fastest", until the next step would not fit the
board. Layers other than the bottleneck are only raised when they become the
bottleneck, so no layer ends much faster than it needs to be: the design is
balanced.

Resources come from :mod:`qnnfab.boards.estimate.cost`, the cost model calibrated on
Yosys ``synth_xilinx`` of today's RTL (``bench/bench_cost_model.py`` prints
it beside Yosys). Its purpose is to rank foldings and to keep the design
inside the device; ``qnnfab report`` then measures the chosen design with Yosys.

At every step the folder also chooses each fc/conv layer's ``weight_memory``
(:func:`assign_memory_styles`): the style of fewest LUTs ("auto" on a tie),
then, while the block RAMs exceed their budget, the layers whose move out of
block RAM costs the fewest LUTs per RAMB36 freed go to LUTs. So a fast folding
whose shallow weight memories would become logic under "auto" gets block RAM
for as many layers as fit and LUT ROMs for the rest.
"""

import math
from dataclasses import dataclass

from qnnfab.errors import ConfigError
from qnnfab.folding import concat_simd_choices, layer_cycles, pe_choices, simd_choices

from .cost import estimate, estimate_layer
from .yosys import Resources

__all__ = ["estimate_layer", "estimate", "auto_fold", "FoldResult", "assign_memory_styles", "folding_steps"]

_STYLE_ORDER = ("auto", "block", "distributed")  # preference on a tie


def assign_memory_styles(cfg, bram_limit):
    """Choose ``weight_memory`` of every fc/conv layer of ``cfg`` (in place): fewest
    LUTs first, then out of block RAM the cheapest layers (LUTs added per RAMB36
    freed) until the estimated block RAMs are at most ``bram_limit``."""
    runtime = getattr(cfg, "weights_mode", "const") == "runtime"
    layers = [L for L in cfg.layers if L.type != "maxpool"]
    options = {}
    for L in layers:
        costs = {}
        for style in _STYLE_ORDER:
            L.weight_memory = style
            r = estimate_layer(L, runtime)
            costs[style] = (r.lut + r.lutram, r.bram36)
        options[L.name] = costs
        L.weight_memory = min(_STYLE_ORDER, key=lambda st: (costs[st][0], _STYLE_ORDER.index(st)))
    bram = estimate(cfg).bram36
    while bram > bram_limit:
        moves = []
        for L in layers:
            lut0, b0 = options[L.name][L.weight_memory]
            for style, (lut1, b1) in options[L.name].items():
                if b1 < b0:
                    moves.append(((lut1 - lut0) / (b0 - b1), L, style, b0 - b1))
        if not moves:
            break
        _, L, style, freed = min(moves, key=lambda m: m[0])
        L.weight_memory = style
        bram -= freed


def folding_steps(L):
    """Valid (simd, pe) settings in increasing parallelism: SIMD first, then PE; then, for a
    convolution, every larger PE * SIMD that SIMD = m * channels reaches (the smaller SIMD
    of equal products: fewer line-buffer copies)."""
    if L.type == "concat":            # simd divides both inputs' channels; its pe is its simd (no PE)
        return [(s, s) for s in concat_simd_choices(L.in_shapes)]
    simds = simd_choices(L.type, L.in_shape)
    if L.type == "maxpool":
        return [(s, s) for s in simds]
    steps = [(s, 1) for s in simds] + [(simds[-1], p) for p in pe_choices(L.out) if p > 1]
    if L.type == "conv":
        top = simds[-1] * L.out
        wide = sorted((s * p, s, p) for s in simd_choices("conv", L.in_shape, L.kernel) if s > simds[-1]
                      for p in pe_choices(L.out) if s * p > top)
        for par, s, p in wide:
            if par > steps[-1][0] * steps[-1][1]:
                steps.append((s, p))
    return steps


@dataclass
class FoldResult:
    cfg: object
    cycles: list          # (layer, cycles) after folding
    bottleneck: tuple
    estimate: Resources
    reason: str


def auto_fold(cfg, device, *, target_fps=None, f_clk=100e6, lut_budget=0.8, bram_budget=0.9,
              fps_name=("auto_fold", "target_fps")):
    """Choose PE/SIMD for every layer of ``cfg`` (modified in place); return a :class:`FoldResult`.

    ``target_fps=None`` means the fastest design within the budgets (fractions
    of the device's LUTs and block RAMs). Errors about ``target_fps`` name it
    ``fps_name``, a ``(where, field)`` pair: a command passes its own name and
    option (errors about the network's reach keep the network as ``where``).
    """
    fps_where, fps_field = fps_name
    if target_fps is not None and not (target_fps > 0 and math.isfinite(target_fps)):
        raise ConfigError(fps_where, fps_field, f"must be a positive number, not {target_fps:g}",
                          "e.g. 3000 frames/s, or no target for the fastest design that fits")
    target_cycles = None if target_fps is None else f_clk / target_fps
    if target_cycles is not None and target_cycles < 1:
        raise ConfigError(fps_where, fps_field, f"{target_fps:g} frames/s needs less than one cycle per "
                          f"frame at {f_clk / 1e6:g} MHz", "lower the target or raise the clock")
    pos = {}
    for L in cfg.layers:
        pos[L.name] = 0
        L.simd, L.pe = folding_steps(L)[0]
    # maxpool SIMD must match the PE feeding it only for efficiency; keep them free

    def fits(res):
        return (res.lut + res.lutram <= lut_budget * device.lut and res.bram36 <= bram_budget * device.bram36
                and res.dsp <= device.dsp)

    def styled_estimate():
        assign_memory_styles(cfg, bram_budget * device.bram36)
        return estimate(cfg)

    if not fits(styled_estimate()):
        raise ConfigError(f"network '{cfg.name}'", "resources", "does not fit even fully folded "
                          f"(PE = SIMD = 1) on {device.part}", "use a smaller network or a larger device")
    reason = "every layer is fully parallel"
    while True:
        cycles = [(L, layer_cycles(L)) for L in cfg.layers]
        worst, wc = max(cycles, key=lambda t: t[1])
        if target_cycles is not None and wc <= target_cycles:
            reason = f"target {target_fps:,.0f} frames/s reached"
            break
        steps = folding_steps(worst)
        if pos[worst.name] + 1 >= len(steps):
            reason = f"bottleneck {worst.name} is fully parallel"
            if target_cycles is not None:
                raise ConfigError(f"network '{cfg.name}'", fps_field,
                                  f"{target_fps:,.0f} frames/s is out of reach: {reason} at "
                                  f"{f_clk / wc:,.0f} frames/s ({wc:,} cycles/frame)",
                                  "lower the target or raise the clock")
            break
        old = (worst.simd, worst.pe)
        pos[worst.name] += 1
        worst.simd, worst.pe = steps[pos[worst.name]]
        if not fits(styled_estimate()):
            worst.simd, worst.pe = old
            pos[worst.name] -= 1
            styled_estimate()
            reason = (f"the next step of bottleneck {worst.name} would exceed the budget "
                      f"({int(lut_budget * 100)}% LUT, {int(bram_budget * 100)}% BRAM of {device.part})")
            if target_cycles is not None:
                raise ConfigError(f"network '{cfg.name}'", fps_field,
                                  f"{target_fps:,.0f} frames/s does not fit {device.part}: {reason}; best "
                                  f"reachable is {f_clk / wc:,.0f} frames/s",
                                  "lower the target, or fold for the fastest design that fits (no target)")
            break
    rows = [(L.name, layer_cycles(L)) for L in cfg.layers]
    bottleneck = max(rows, key=lambda r: r[1])
    return FoldResult(cfg, rows, bottleneck, estimate(cfg), reason)

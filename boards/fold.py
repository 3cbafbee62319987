"""Auto-folding: choose PE/SIMD per layer for a target frame rate or the fastest design that fits.

The method is FINN's: start every layer fully folded (PE = SIMD = 1), then
repeatedly give the bottleneck layer the next larger valid parallelism (SIMD
first, up to its input length or channels, then PE) until the target cycles
per frame is met, or, for "fastest", until the next step would not fit the
board. Layers other than the bottleneck are only raised when they become the
bottleneck, so no layer ends much faster than it needs to be: the design is
balanced.

Resources come from a per-lane cost model calibrated on Yosys
``synth_xilinx`` results of the MVTU (``bench/bench_mvtu.py``, the datapath
with weights as inputs, and the full unit):

* a bipolar x bipolar lane (XNOR + popcount share + accumulator share): 2.3 LUT;
* a lane with k-bit activations or weights: 1.5 LUT per activation bit;
* per PE: accumulator, threshold comparison and control, 12 LUT + 2 per
  threshold bit;
* weights: a PE's memory of NF*SF words of SIMD*wbits bits goes to block RAM
  when it holds 8 kbit or more (RAMB18 halves: 16 kbit up to 8 bits wide,
  18 kbit up to 72 bits wide, parallel halves for wider words), else to
  LUT-RAM (64 bits per LUT);
* per layer: sliding-window line buffers (K rows of W*C*bits) in block RAM.

The model's purpose is to rank foldings and to keep the design inside the
device; ``qnnfab report`` then measures the chosen design with Yosys.
"""

import math
from dataclasses import dataclass

from qnnfab.errors import ConfigError
from qnnfab.folding import layer_cycles, pe_choices, simd_choices
from qnnfab.kinds import DataKind

from .yosys import Resources

__all__ = ["estimate_layer", "estimate", "auto_fold", "FoldResult"]

BINARY_LANE_LUT = 2.3
BIT_LANE_LUT = 1.5
PE_LUT = 12


def estimate_layer(L):
    """Estimated :class:`Resources` of one layer at its current PE/SIMD."""
    if L.type == "maxpool":
        h, w, c = L.in_shape
        bits = L.in_bits  # 1 for bipolar data
        buf = L.kernel * w * c * bits
        return Resources(lut=20 + 2 * L.simd * bits, ff=40 + L.simd * bits,
                         bram36=math.ceil(buf / 36864) if buf >= 8192 else 0,
                         lutram=0 if buf >= 8192 else math.ceil(buf / 64))
    binary = L.in_kind == "bipolar" and L.weight_kind == "bipolar"
    in_len = math.prod(L.in_shape) if L.type == "fc" else L.kernel * L.kernel * L.in_shape[2]
    lanes = L.pe * L.simd
    abits = L.in_bits  # 1 for bipolar data
    wbits = DataKind.of(L.weight_kind, L.weight_bits).width
    lane = BINARY_LANE_LUT if binary else BIT_LANE_LUT * max(abits, wbits)
    tbits = max(1, L.act_bits)
    acc_bits = max(1, (in_len * (1 << max(abits, wbits))).bit_length())
    lut = lanes * lane + L.pe * (PE_LUT + 2 * acc_bits * (1 if L.act == "acc" else tbits))
    ff = L.pe * acc_bits * 2 + L.simd * abits * 2
    depth = (L.out // L.pe) * (in_len // L.simd)
    word = L.simd * wbits
    per_pe = depth * word
    if per_pe >= 8192:
        # RAMB18: 16 kbit at widths up to 8 (16K x 1 .. 2K x 8), 18 kbit up to
        # 72 bits wide (simple dual port); wider words take parallel RAMB18s
        n18 = max(math.ceil(word / 72), math.ceil(per_pe / (16384 if word < 9 else 18432)))
        bram, lutram = L.pe * n18 / 2, 0
    else:
        bram, lutram = 0, L.pe * math.ceil(per_pe / 64)
    if L.type == "conv":
        h, w, c = L.in_shape
        buf = L.kernel * w * c * abits
        bram += math.ceil(buf / 36864) if buf >= 8192 else 0
        lut += 30 + L.simd * abits * 2
    return Resources(lut=int(lut), ff=int(ff), bram36=float(bram), lutram=int(lutram))


def estimate(cfg):
    total = Resources()
    for L in cfg.layers:
        total = total + estimate_layer(L)
    return total


def _steps(L):
    """Valid (simd, pe) settings in increasing parallelism: SIMD first, then PE."""
    simds = simd_choices(L.type, L.in_shape)
    if L.type == "maxpool":
        return [(s, s) for s in simds]
    return [(s, 1) for s in simds] + [(simds[-1], p) for p in pe_choices(L.out) if p > 1]


@dataclass
class FoldResult:
    cfg: object
    cycles: list          # (layer, cycles) after folding
    bottleneck: tuple
    estimate: Resources
    reason: str


def auto_fold(cfg, device, *, target_fps=None, f_clk=100e6, lut_budget=0.8, bram_budget=0.9):
    """Choose PE/SIMD for every layer of ``cfg`` (modified in place); return a :class:`FoldResult`.

    ``target_fps=None`` means the fastest design within the budgets (fractions
    of the device's LUTs and block RAMs). Errors name ``target_fps`` (the
    command line maps it to its option).
    """
    if target_fps is not None and not (target_fps > 0 and math.isfinite(target_fps)):
        raise ConfigError("auto_fold", "target_fps", f"must be a positive number, not {target_fps:g}",
                          "e.g. 3000 frames/s, or no target for the fastest design that fits")
    target_cycles = None if target_fps is None else f_clk / target_fps
    if target_cycles is not None and target_cycles < 1:
        raise ConfigError("auto_fold", "target_fps", f"{target_fps:g} frames/s needs less than one cycle per "
                          f"frame at {f_clk / 1e6:g} MHz", "lower the target or raise the clock")
    pos = {}
    for L in cfg.layers:
        pos[L.name] = 0
        L.simd, L.pe = _steps(L)[0]
    # maxpool SIMD must match the PE feeding it only for efficiency; keep them free

    def fits(res):
        return (res.lut + res.lutram <= lut_budget * device.lut and res.bram36 <= bram_budget * device.bram36
                and res.dsp <= device.dsp)

    if not fits(estimate(cfg)):
        raise ConfigError(f"network '{cfg.name}'", "resources", "does not fit even fully folded "
                          f"(PE = SIMD = 1) on {device.part}", "use a smaller network or a larger device")
    reason = "every layer is fully parallel"
    while True:
        cycles = [(L, layer_cycles(L)) for L in cfg.layers]
        worst, wc = max(cycles, key=lambda t: t[1])
        if target_cycles is not None and wc <= target_cycles:
            reason = f"target {target_fps:,.0f} frames/s reached"
            break
        steps = _steps(worst)
        if pos[worst.name] + 1 >= len(steps):
            reason = f"bottleneck {worst.name} is fully parallel"
            if target_cycles is not None:
                raise ConfigError(f"network '{cfg.name}'", "target_fps",
                                  f"{target_fps:,.0f} frames/s is out of reach: {reason} at "
                                  f"{f_clk / wc:,.0f} frames/s ({wc:,} cycles/frame)",
                                  "lower the target or raise the clock")
            break
        old = (worst.simd, worst.pe)
        pos[worst.name] += 1
        worst.simd, worst.pe = steps[pos[worst.name]]
        if not fits(estimate(cfg)):
            worst.simd, worst.pe = old
            pos[worst.name] -= 1
            reason = (f"the next step of bottleneck {worst.name} would exceed the budget "
                      f"({int(lut_budget * 100)}% LUT, {int(bram_budget * 100)}% BRAM of {device.part})")
            if target_cycles is not None:
                raise ConfigError(f"network '{cfg.name}'", "target_fps",
                                  f"{target_fps:,.0f} frames/s does not fit {device.part}: {reason}; best "
                                  f"reachable is {f_clk / wc:,.0f} frames/s",
                                  "lower the target, or fold for the fastest design that fits (no target)")
            break
    rows = [(L.name, layer_cycles(L)) for L in cfg.layers]
    bottleneck = max(rows, key=lambda r: r[1])
    return FoldResult(cfg, rows, bottleneck, estimate(cfg), reason)

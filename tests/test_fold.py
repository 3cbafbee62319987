"""Auto-folding (qnnfab.boards.estimate.fold): targets, budgets, balance, the cost model."""

import math
from pathlib import Path

import pytest

from qnnfab import netconfig
from qnnfab.boards.targets import XC7Z020
from qnnfab.boards.estimate.cost import bram_read_mux_lut, estimate_layers, rom_mapping
from qnnfab.boards.estimate.fold import auto_fold, estimate, estimate_layer
from qnnfab.errors import ConfigError
from qnnfab.folding import divisors

ROOT = Path(__file__).resolve().parent.parent
F_CLK = 100e6


def _load(name):
    return netconfig.load(ROOT / "configs" / f"{name}.toml")


def _in_len(L):
    return math.prod(L.in_shape) if L.type == "fc" else L.kernel * L.kernel * L.in_shape[2]


def _settings(L):
    """Every valid (simd, pe) of a layer whose SIMD divides its input words' channels, from
    first principles (PE | out, SIMD | input)."""
    if L.type == "maxpool":
        return [(s, s) for s in divisors(L.in_shape[2])]
    if L.type == "fc":
        simds = [s for s in divisors(math.prod(L.in_shape))
                 if len(L.in_shape) == 1 or L.in_shape[2] % s == 0]
    else:
        simds = divisors(L.in_shape[2])
    return [(s, p) for s in simds for p in divisors(L.out)]


def _wide_settings(L):
    """A convolution's settings beyond full PE at SIMD = C, in the folder's order: SIMD = m * C
    (m > 1 dividing K*K) at any PE, every larger product once, the smaller SIMD on ties."""
    if L.type != "conv":
        return []
    c = L.in_shape[2]
    out, top = [], c * L.out
    for s, p in sorted(((m * c, p) for m in divisors(L.kernel ** 2)[1:] for p in divisors(L.out)),
                       key=lambda sp: (sp[0] * sp[1], sp[0])):
        if s * p > max([top] + [a * b for a, b in out]):
            out.append((s, p))
    return out


def _assert_valid_folding(cfg):
    for L in cfg.layers:
        if L.type == "maxpool":
            assert L.in_shape[2] % L.simd == 0, L.name
            continue
        assert L.out % L.pe == 0, (L.name, L.pe, L.out)
        if L.type == "fc":
            assert math.prod(L.in_shape) % L.simd == 0, L.name
            if len(L.in_shape) == 3:
                assert L.in_shape[2] % L.simd == 0, L.name
        else:
            c = L.in_shape[2]
            assert c % L.simd == 0 or (L.simd % c == 0 and L.kernel ** 2 % (L.simd // c) == 0), L.name
    # and the folded config is a valid config
    again = netconfig.loads(netconfig.dumps(cfg))
    assert [(L.simd, L.pe) for L in again.layers] == [(L.simd, L.pe) for L in cfg.layers]
    return again


def _step_down(L):
    """The setting one folding step below the current one (SIMD first, then PE), or None."""
    wide = _wide_settings(L)
    if (L.simd, L.pe) in wide:
        k = wide.index((L.simd, L.pe))
        return wide[k - 1] if k else (L.in_shape[2], L.out)
    simds = sorted({s for s, _ in _settings(L)})
    if L.type == "maxpool":
        below = [s for s in simds if s < L.simd]
        return (below[-1], below[-1]) if below else None
    if L.pe > 1:
        return L.simd, max(p for p in divisors(L.out) if p < L.pe)
    below = [s for s in simds if s < L.simd]
    return (below[-1], 1) if below else None


def _cycles_at(cfg, L, simd, pe):
    old = L.simd, L.pe
    L.simd, L.pe = simd, pe
    try:
        return cfg.layer_cycles(L)
    finally:
        L.simd, L.pe = old


@pytest.mark.parametrize("name,fps", [("cnv_w1a1", 3000), ("cnv_w1a1", 500), ("cnv_w1a1", 15_000),
                                      ("lfc_w1a1", 100_000),
                                      ("cnv_small", 20_000), ("lfc_small", 1_000_000)])
def test_target_is_reached_with_valid_balanced_folding(name, fps):
    cfg = _load(name)
    res = auto_fold(cfg, XC7Z020, target_fps=fps, f_clk=F_CLK)
    target = F_CLK / fps
    assert res.cfg is cfg
    _assert_valid_folding(cfg)
    rows = [(L.name, cfg.layer_cycles(L)) for L in cfg.layers]
    assert res.cycles == rows
    assert res.bottleneck[1] == max(c for _, c in rows)
    # every layer meets the target
    assert all(c <= target for _, c in rows), rows
    assert F_CLK / res.bottleneck[1] >= fps
    # balanced: no layer is faster than it needs to be. The search goes SIMD
    # first, then PE; one step less parallelism for any layer that was raised
    # (the previous PE at the same SIMD, or the previous SIMD at PE = 1) would
    # break the target.
    for L in cfg.layers:
        if L.type != "maxpool" and L.pe > 1 and (L.simd, L.pe) not in _wide_settings(L):
            # PE is raised only once SIMD is at its largest
            assert L.simd == max(s for s, _ in _settings(L)), L.name
        down = _step_down(L)
        if down is not None:
            assert _cycles_at(cfg, L, *down) > target, (L.name, (L.simd, L.pe), down)
    assert estimate(cfg).lut + estimate(cfg).lutram <= 0.8 * XC7Z020.lut


def test_target_is_a_lower_bound_not_overshot():
    # a slower target never needs more lanes than a faster one
    lanes = {}
    for fps in (500, 1000, 3000):
        cfg = _load("cnv_w1a1")
        auto_fold(cfg, XC7Z020, target_fps=fps)
        lanes[fps] = [L.simd * L.pe for L in cfg.layers]
    for a, b in ((500, 1000), (1000, 3000)):
        assert all(x <= y for x, y in zip(lanes[a], lanes[b])), (a, b, lanes)


def test_unreachable_target_raises_naming_target_fps():
    cfg = _load("cnv_w1a1")
    with pytest.raises(ConfigError) as ei:
        auto_fold(cfg, XC7Z020, target_fps=10_000_000)
    assert ei.value.field == "target_fps" and "target_fps" in str(ei.value) and "fix:" in str(ei.value)
    assert "cnv-w1a1" in str(ei.value)


def test_target_beyond_the_budget_raises_naming_target_fps():
    # LFC W1A1 tops out around 256 cycles/frame within 80% of the LUTs
    cfg = _load("lfc_w1a1")
    with pytest.raises(ConfigError) as ei:
        auto_fold(cfg, XC7Z020, target_fps=1_000_000)
    assert ei.value.field == "target_fps" and "fix:" in str(ei.value)
    assert "xc7z020" in str(ei.value)


def test_target_below_one_cycle_raises_naming_target_fps():
    with pytest.raises(ConfigError) as ei:
        auto_fold(_load("lfc_small"), XC7Z020, target_fps=1e9)
    assert (ei.value.where, ei.value.field) == ("auto_fold", "target_fps")


@pytest.mark.parametrize("name", ["cnv_w1a1", "lfc_w1a1", "lfc_small", "cnv_small"])
def test_fastest_fits_the_budget_and_stops_for_a_reason(name):
    cfg = _load(name)
    res = auto_fold(cfg, XC7Z020)
    _assert_valid_folding(cfg)
    e = estimate(cfg)
    assert e == res.estimate
    assert e.lut + e.lutram <= 0.8 * XC7Z020.lut
    assert e.bram36 <= 0.9 * XC7Z020.bram36
    # it stopped because the bottleneck cannot go faster: either it is at its
    # largest setting, or the next larger one would not fit
    worst = max(cfg.layers, key=cfg.layer_cycles)
    assert cfg.layer_cycles(worst) == res.bottleneck[1]
    wide = _wide_settings(worst)
    if "fully parallel" in res.reason:
        largest = max(_settings(worst) + wide, key=lambda sp: sp[0] * sp[1])
        assert (worst.simd, worst.pe) == largest
    else:
        assert "budget" in res.reason
        cur = worst.simd * worst.pe
        bigger = [sp for sp in _settings(worst) if sp[0] * sp[1] > cur
                  and sp[0] >= worst.simd and sp[1] >= worst.pe]
        bigger += [sp for sp in wide if sp[0] * sp[1] > cur]
        assert bigger
        step = min(bigger, key=lambda sp: sp[0] * sp[1])
        old = worst.simd, worst.pe
        worst.simd, worst.pe = step
        e2 = estimate(cfg)
        worst.simd, worst.pe = old
        assert e2.lut + e2.lutram > 0.8 * XC7Z020.lut or e2.bram36 > 0.9 * XC7Z020.bram36


def test_fastest_cnv_takes_several_kernel_positions_per_cycle():
    # one kernel position per cycle stops CNV W1A1 at conv0's 900 output pixels x 9 positions
    # (PE = 64, SIMD = C = 3); beyond it the folder gives convolutions SIMD = m * C
    cfg = _load("cnv_w1a1")
    one_position_floor = 30 * 30 * 9
    res = auto_fold(cfg, XC7Z020)
    assert res.bottleneck[1] < one_position_floor, res.cycles
    conv0 = cfg.layers[0]
    assert conv0.simd > conv0.in_shape[2], (conv0.simd, conv0.pe)
    _assert_valid_folding(cfg)
    # a target between the two needs them too
    cfg = _load("cnv_w1a1")
    auto_fold(cfg, XC7Z020, target_fps=F_CLK / 7000)
    assert cfg.layers[0].simd > 3 and cfg.layer_cycles(cfg.layers[0]) <= 7000


def test_fastest_is_at_least_as_fast_as_any_target_that_succeeds():
    fast = _load("cnv_w1a1")
    res = auto_fold(fast, XC7Z020)
    cfg = _load("cnv_w1a1")
    auto_fold(cfg, XC7Z020, target_fps=3000)
    assert res.bottleneck[1] <= max(cfg.layer_cycles(L) for L in cfg.layers)


def test_too_big_network_raises_resources():
    from qnnfab.boards.targets.device import Device
    small = Device("tiny", lut=500, ff=1000, bram36=1, dsp=0, lutram=100)
    with pytest.raises(ConfigError) as ei:
        auto_fold(_load("lfc_w1a1"), small, target_fps=10)
    assert ei.value.field == "resources" and "fix:" in str(ei.value)


# --------------------------------------------------------------------------- the cost model

def _weight_memory(L):
    mh = L.out
    mw = math.prod(L.in_shape) if L.type == "fc" else L.kernel * L.kernel * L.in_shape[2]
    depth = (mh // L.pe) * (mw // L.simd)
    kind = rom_mapping(depth, L.simd)[0]
    # one block deep (a deeper memory adds an output multiplexer)
    if kind == "bram" and bram_read_mux_lut(depth, L.simd):
        return "bram, several deep"
    return kind


@pytest.mark.parametrize("name", ["lfc_small", "lfc_w1a1", "cnv_small"])
def test_more_lanes_cost_more_luts(name):
    # with the weights in one block RAM deep at both settings, more lanes cost more LUTs
    # (weights in logic may cost less at more lanes: a shallower ROM costs fewer
    # LUTs per bit, as measured)
    cfg = _load(name)
    compared = 0
    for L in cfg.layers:
        if L.type == "maxpool":
            continue
        settings = _settings(L)
        for (s, p) in settings:
            old = L.simd, L.pe
            L.simd, L.pe = s, p
            r0, m0 = estimate_layer(L), _weight_memory(L)
            bigger = [(s2, p2) for s2, p2 in settings if (s2 >= s and p2 >= p) and (s2, p2) != (s, p)]
            for s2, p2 in bigger[:3]:
                L.simd, L.pe = s2, p2
                r1 = estimate_layer(L)
                if m0 == _weight_memory(L) == "bram":
                    assert r1.lut > r0.lut, (L.name, (s, p), (s2, p2), r0, r1)
                    compared += 1
            L.simd, L.pe = old
    assert compared > 0 or name == "lfc_small"


def test_maxpool_lanes_cost_more_luts():
    # more lanes cost more LUTs while the line buffer stays in the same kind of memory
    # (a shallower one may move from block RAM to LUT-RAM and shed its read control)
    from qnnfab.boards.estimate.cost import ram_mapping
    cfg = _load("cnv_w1a1")
    pool = next(L for L in cfg.layers if L.type == "maxpool")
    h, w, c = pool.in_shape
    by_kind = {}
    for s in divisors(c):
        pool.simd = pool.pe = s
        kind = ram_mapping(max(2, pool.kernel * w * c // s), s)[0]
        by_kind.setdefault(kind, []).append(estimate_layer(pool).lut)
    assert sum(len(v) for v in by_kind.values()) > 2
    for luts in by_kind.values():
        assert luts == sorted(luts) and (len(luts) == 1 or luts[0] < luts[-1])


def test_lfc_size_weights_go_to_block_ram():
    cfg = _load("lfc_w1a1")
    for L in cfg.layers[:3]:  # 1024 x 832/1024 binary weights: 832 kbit / 1 Mbit per layer
        r = estimate_layer(L)
        assert r.bram36 > 0, L.name
        # enough block RAM for the bits it stores
        assert r.bram36 * 36 * 1024 >= L.weights.size, (L.name, r)
    total = estimate(cfg)
    rows = estimate_layers(cfg)
    assert [n for n, _ in rows] == [L.name for L in cfg.layers]
    assert total.bram36 == sum(r.bram36 for _, r in rows)
    assert total.lut == sum(r.lut for _, r in rows)


def test_small_weights_go_to_logic():
    # Yosys maps a read-only memory that would fill less than about half a
    # block RAM to logic (memory_libmap: bits/64 against 129 per RAMB18)
    cfg = _load("lfc_small")
    for L in cfg.layers:
        r = estimate_layer(L)
        assert r.bram36 == 0, (L.name, r)
        assert r.lut > L.pe * L.simd * 1.44 + L.weights.size / 64, (L.name, r)


# --------------------------------------------------------------------------- memory styles

def test_memory_styles_take_block_ram_within_its_limit_and_luts_beyond():
    from qnnfab.boards.estimate.fold import assign_memory_styles
    cfg = _load("lfc_w1a1_fast")   # PE = SIMD = 64: 208/256-word weight memories, logic under "auto"
    assign_memory_styles(cfg, bram_limit=1000)
    styles = [L.weight_memory for L in cfg.layers]
    assert styles[:3] == ["block"] * 3                   # fewest LUTs: one RAMB36 per PE
    assert sum(r.bram36 for _, r in estimate_layers(cfg)[:3]) == 192
    assign_memory_styles(cfg, bram_limit=130)
    assert estimate(cfg).bram36 <= 130
    assert [L.weight_memory for L in cfg.layers[:3]].count("block") == 2
    assert "distributed" in [L.weight_memory for L in cfg.layers[:3]]
    assign_memory_styles(cfg, bram_limit=0)
    assert estimate(cfg).bram36 == 0
    assert all(L.weight_memory == "distributed" for L in cfg.layers[:3])
    # deep memories that Yosys puts in block RAM anyway keep "auto"
    cfg = _load("lfc_w1a1")
    assign_memory_styles(cfg, bram_limit=1000)
    assert [L.weight_memory for L in cfg.layers[:3]] == ["auto"] * 3


def test_fastest_lfc_w1a1_uses_memory_styles_to_reach_256_cycles():
    cfg = _load("lfc_w1a1")
    res = auto_fold(cfg, XC7Z020)
    assert res.bottleneck[1] <= 256
    e = estimate(cfg)
    assert e.lut + e.lutram <= 0.8 * XC7Z020.lut and e.bram36 <= 0.9 * XC7Z020.bram36
    assert any(L.weight_memory != "auto" for L in cfg.layers)
    again = _assert_valid_folding(cfg)
    assert [L.weight_memory for L in again.layers] == [L.weight_memory for L in cfg.layers]

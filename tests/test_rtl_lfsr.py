"""Leap-forward LFSR in Amaranth's simulator against qnnfab.golden.lfsr."""

import random

import pytest
from amaranth.sim import Simulator

from qnnfab.errors import ConfigError
from qnnfab.golden.lfsr import LFSR as GoldenLFSR, lane_seeds
from qnnfab.rtl.lfsr import LFSR, jump_state, lfsr_taps, step_masks


@pytest.mark.parametrize("width,seed,steps,lanes", [(3, 5, 1, 1), (8, 0xA5, 3, 2), (16, 1, 7, 4),
                                                     (24, 0x123456, 16, 3), (32, 0xDEADBEEF, 31, 2)])
def test_states_match_golden_with_random_enable(width, seed, steps, lanes):
    dut = LFSR(width, seed, steps, lanes)
    seeds = lane_seeds(width, seed, lanes)
    assert dut.seeds == seeds
    gold = [GoldenLFSR(width, s) for s in seeds]
    rng = random.Random(width)

    async def bench(ctx):
        for _ in range(120):
            for i in range(lanes):
                assert ctx.get(dut.state[i]) == gold[i].state, f"lane {i}"
            en = rng.random() < 0.7
            ctx.set(dut.en, en)
            await ctx.tick()
            if en:
                for g in gold:
                    g.step(steps)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_unrolled_update_is_k_single_steps():
    width, taps = lfsr_taps(12)
    g = GoldenLFSR(12, 0x9C3)
    s0 = g.state
    for k in (1, 2, 5, 12, 40):
        masks = step_masks(width, taps, k)
        got = 0
        for b, msk in enumerate(masks):
            got |= ((s0 & msk).bit_count() & 1) << b
        assert got == GoldenLFSR(12, s0).step(k)
        assert jump_state(s0, width, taps, k) == got


def test_maximal_period_small_width():
    width, taps = lfsr_taps(7)
    s, seen = 1, set()
    for _ in range(127):
        seen.add(s)
        s = jump_state(s, width, taps, 1)
    assert s == 1 and len(seen) == 127


def test_bad_parameters_raise():
    with pytest.raises(ConfigError, match="seed"):
        LFSR(8, 0)
    with pytest.raises(ConfigError, match="seed"):
        LFSR(8, 256)
    with pytest.raises(ConfigError, match="width"):
        LFSR(40)
    with pytest.raises(ConfigError, match="steps_per_cycle"):
        LFSR(8, 1, 0)
    with pytest.raises(ConfigError, match="lanes"):
        LFSR(3, 1, 1, lanes=8)

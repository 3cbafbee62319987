"""Rounding stage in Amaranth's simulator against qnnfab.golden.fixedpoint."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from qnnfab.errors import ConfigError
from qnnfab.golden.fixedpoint import shift_round
from qnnfab.golden.lfsr import lfsr_words
from qnnfab.rtl.stochastic_round import StochasticRound


def run(dut, values, valid_prob, ready_prob, seed):
    rng = random.Random(seed)
    got = []

    async def bench(ctx):
        pos = 0
        offering = False
        for _ in range(40 * len(values) + 20):
            if not offering and pos < len(values) and rng.random() < valid_prob:
                ctx.set(dut.i.payload, values[pos])
                offering = True
            ctx.set(dut.i.valid, offering)
            rdy = rng.random() < ready_prob
            ctx.set(dut.o.ready, rdy)
            if offering and ctx.get(dut.i.ready):
                offering = False
                pos += 1
            if rdy and ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()
            if len(got) == len(values):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("in_fmt,out_fmt,mode,lfsr_width,steps", [
    ((8, 12), (4, 4), "stochastic", None, None),
    ((8, 12), (4, 4), "nearest", None, None),
    ((8, 12), (4, 4), "truncate", None, None),
    ((3, 5), (3, 5), "stochastic", None, None),          # D = 0: pass-through with saturation only
    ((20, 28), (2, 1), "stochastic", 32, 29),            # D = 27, saturates both ways
    ((4, 3), (2, 1), "stochastic", 3, 5),                # narrowest legal LFSR (D + 1 bits)
])
def test_matches_golden_under_backpressure(in_fmt, out_fmt, mode, lfsr_width, steps):
    dut = StochasticRound(in_fmt, out_fmt, mode, lfsr_width=lfsr_width, seed=5, steps_per_cycle=steps)
    w = dut.in_width
    rng = np.random.default_rng(w)
    vals = rng.integers(-(1 << (w - 1)), 1 << (w - 1), 300)
    vals[:4] = [-(1 << (w - 1)), (1 << (w - 1)) - 1, 0, -1]
    got = run(dut, [int(v) for v in vals], 0.7, 0.5, seed=w)
    d = dut.drop_bits
    rb = np.zeros(len(vals), np.int64)  # D = 0: no random bits
    if mode == "stochastic" and d:
        rb = lfsr_words(len(vals), d, dut.lfsr_width, 5, steps_per_cycle=dut.steps_per_cycle)[:, 0].astype(np.int64)
    exp = shift_round(vals, d, mode, rb, dut.out_width)
    assert got == exp.tolist()


def test_bad_formats_and_lfsr_raise():
    with pytest.raises(ConfigError, match="in_fmt"):
        StochasticRound((30, 19), (4, 4))
    with pytest.raises(ConfigError, match="D = -2"):
        StochasticRound((8, 2), (4, 4))
    with pytest.raises(ConfigError, match="lfsr_width"):
        StochasticRound((8, 12), (4, 4), lfsr_width=8)
    with pytest.raises(ConfigError, match="steps_per_cycle"):
        StochasticRound((8, 12), (4, 4), steps_per_cycle=3)
    with pytest.raises(ConfigError, match="mode"):
        StochasticRound((8, 12), (4, 4), mode="floor")
    with pytest.raises(ConfigError, match="seed"):
        StochasticRound((8, 12), (4, 4), seed=0)

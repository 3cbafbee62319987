"""XNOR-popcount unit in Amaranth's own simulator (fast unit tests)."""

import random

import pytest
from amaranth.sim import Simulator

from qnnfab.errors import ConfigError
from qnnfab.rtl.xnor_popcount import XnorPopcount, adder_tree


def _reference(w, x, simd):
    # first principles: count positions where the bipolar values agree
    return sum(1 for k in range(simd) if ((w >> k) & 1) == ((x >> k) & 1))


@pytest.mark.parametrize("simd,pipeline", [(1, 0), (2, 1), (3, 5), (16, 1), (33, 2), (64, 6)])
def test_counts_equal_bits_with_latency(simd, pipeline):
    dut = XnorPopcount(simd, pipeline)
    rng = random.Random(simd * 100 + pipeline)
    pairs = [(rng.getrandbits(simd), rng.getrandbits(simd)) for _ in range(40)]
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for w, x in pairs:
            ctx.set(dut.i.payload, {"w": w, "x": x})
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
        ctx.set(dut.i.valid, 0)
        for _ in range(dut.latency + 1):
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # sampled after each tick, so each result is seen exactly once while valid
    assert got[:len(pairs)] == [_reference(w, x, simd) for w, x in pairs]


@pytest.mark.parametrize("simd,pipeline", [(2, 1), (5, 2), (16, 4), (64, 6), (7, 9), (13, 2), (96, 3)])
def test_latency_is_the_clamped_pipeline_plus_one(simd, pipeline):
    # documented: pipeline registers clamp to the popcount's adder levels
    # ceil(log2(ceil(simd / 3))); the output is registered
    dut = XnorPopcount(simd, pipeline)
    expected = min(pipeline, (-(-simd // 3) - 1).bit_length()) + 1
    assert dut.latency == expected
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, {"w": 0, "x": 0})
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for cycle in range(1, 12):
            if ctx.get(dut.o.valid):
                seen.append((cycle, ctx.get(dut.o.payload)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(expected, simd)]


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ConfigError, match="simd"):
        XnorPopcount(0)
    with pytest.raises(ConfigError, match="pipeline"):
        XnorPopcount(4, -1)


@pytest.mark.parametrize("n,stages", [(1, 0), (5, 0), (5, 2), (12, 9)])
def test_adder_tree_sums_the_bits_after_its_latency(n, stages):
    from amaranth.hdl import Module, Signal
    m = Module()
    bits = Signal(n)
    total, latency = adder_tree(m, [bits[k] for k in range(n)], stages, 1)
    assert latency == min(stages, (n - 1).bit_length()) and len(total) == max(1, n.bit_length())
    m.d.sync += Signal(name="tick").eq(1)   # a clock domain even when the tree has no register
    values = [0, (1 << n) - 1] + [random.Random(n).getrandbits(n) for _ in range(6)]
    got = []

    async def bench(ctx):
        for v in values + [0] * latency:
            ctx.set(bits, v)
            await ctx.delay(1e-9)
            got.append(ctx.get(total))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got[latency:] == [bin(v).count("1") for v in values]

"""XNOR-popcount unit in Amaranth's own simulator (fast unit tests)."""

import random

import pytest
from amaranth.sim import Simulator

from qnnfab.errors import ConfigError
from qnnfab.rtl.xnor_popcount import XnorPopcount, adder_tree
from qnnfab.sim.amaranth_stream import stream_through


def _reference(w, x, simd):
    # first principles: count positions where the bipolar values agree
    return sum(1 for k in range(simd) if ((w >> k) & 1) == ((x >> k) & 1))


@pytest.mark.parametrize("simd,pipeline", [(1, 0), (2, 1), (3, 5), (16, 1), (33, 2), (64, 6)])
def test_counts_equal_bits_under_gaps_and_backpressure(simd, pipeline):
    dut = XnorPopcount(simd, pipeline)
    rng = random.Random(simd * 100 + pipeline)
    full = (1 << simd) - 1
    pairs = [(0, 0), (full, full), (0, full), (full, 0)]      # all agree, all agree, none, none
    pairs += [(rng.getrandbits(simd), rng.getrandbits(simd)) for _ in range(40)]
    words = [{"w": w, "x": x} for w, x in pairs]
    expected = [_reference(w, x, simd) for w, x in pairs]
    assert stream_through(dut, words, len(words), 0.7, 0.6, seed=simd).words == expected
    run = stream_through(dut, words, len(words))             # unstalled: one per cycle
    assert run.words == expected and run.out_cycles == [c + dut.latency for c in run.in_cycles]


@pytest.mark.parametrize("simd,pipeline", [(2, 1), (5, 2), (16, 4), (64, 6), (7, 9), (13, 2), (96, 3)])
def test_latency_is_the_clamped_pipeline_plus_one(simd, pipeline):
    # documented: pipeline registers clamp to the popcount's adder levels
    # ceil(log2(ceil(simd / 3))); the output is registered
    dut = XnorPopcount(simd, pipeline)
    expected = min(pipeline, (-(-simd // 3) - 1).bit_length()) + 1
    assert dut.latency == expected
    run = stream_through(dut, [{"w": 0, "x": 0}], 1, extra_cycles=12)
    assert run.words == [simd] and run.out_cycles[0] - run.in_cycles[0] == expected


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

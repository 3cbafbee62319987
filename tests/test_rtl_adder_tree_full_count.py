"""The popcount adder tree holds its largest count: n set bits, n a power of two
(whose count needs one bit more than n - 1 does)."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from qnnfab.rtl.xnor_popcount import adder_tree


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_all_bits_set_count_n(n):
    m = Module()
    bits = Signal(n)
    total, latency = adder_tree(m, [bits[k] for k in range(n)], 0, 1)
    assert latency == 0
    got = []

    async def bench(ctx):
        for v in ((1 << n) - 1, 0, (1 << n) - 2):
            ctx.set(bits, v)
            await ctx.delay(1e-9)
            got.append(ctx.get(total))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == [n, 0, n - 1]

"""Leap-forward LFSR lanes against golden LFSR states, random enable."""

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from qnnfab.golden.lfsr import LFSR as GoldenLFSR, lane_seeds
from qnnfab.packing import unpack_fields
from qnnfab.rtl.lfsr import LFSR
from qnnfab.sim.stream import bench_params, bench_random, start, write_metrics

NAME = "lfsr"
CASES = [
    {"width": 3, "seed": 1, "steps": 1, "lanes": 1},
    {"width": 16, "seed": 0xACE1, "steps": 8, "lanes": 4},
    {"width": 24, "seed": 0x5A5A5A, "steps": 23, "lanes": 3},
    {"width": 32, "seed": 0xFFFFFFFF, "steps": 31, "lanes": 2},
]


def design(params):
    return LFSR(params["width"], params["seed"], params["steps"], params["lanes"])


def summarize(result):
    m = result.metrics
    return f"{m.get('cycles', 0)} cycles, {m.get('advances', 0)} advances checked per lane"


@cocotb.test()
async def states_match_golden_every_cycle(dut):
    p = bench_params()
    w, lanes = p["width"], p["lanes"]
    rng = bench_random(1)
    gold = [GoldenLFSR(w, s) for s in lane_seeds(w, p["seed"], lanes)]
    dut.en.value = 0
    await start(dut)
    advances = 0
    n = 3000 if w > 3 else 20  # width 3: the whole period (7) several times
    for cycle in range(n):
        await FallingEdge(dut.clk)
        en = rng.random() < 0.8
        dut.en.value = int(en)
        await ReadOnly()
        states = unpack_fields(int(dut.state.value), [w] * len(gold))
        for i, (g, got) in enumerate(zip(gold, states)):
            assert got == g.state, f"cycle {cycle} lane {i}: got {got:#x}, golden {g.state:#x}"
        if en:
            advances += 1
            for g in gold:
                g.step(p["steps"])
    write_metrics(cycles=n, advances=advances)

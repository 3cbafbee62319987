"""XNOR-popcount unit against golden popcount(~(w ^ x)), random data and backpressure."""

import cocotb
import numpy as np

from qnnfab.golden.bits import xnor_popcount

from qnnfab.rtl.xnor_popcount import XnorPopcount
from qnnfab.sim.stream import bench_params, bench_random, pack_fields, run_stream_test, write_metrics

NAME = "xnor_popcount"
CASES = [
    {"simd": 1, "pipeline": 0},
    {"simd": 7, "pipeline": 1},
    {"simd": 32, "pipeline": 2},
    {"simd": 64, "pipeline": 0},
    {"simd": 256, "pipeline": 3},
]


def design(params):
    return XnorPopcount(params["simd"], params["pipeline"])


def summarize(result):
    m = result.metrics
    return (f"{m.get('words', 0)} words, throughput {m.get('words_per_cycle', 0):.3f}/cycle "
            f"unstalled, latency {m.get('latency', '?')}")


async def _run(dut, n, valid_prob, ready_prob, salt):
    p = bench_params()
    simd = p["simd"]
    rng = bench_random(salt)
    w = [rng.getrandbits(simd) for _ in range(n)]
    x = [rng.getrandbits(simd) for _ in range(n)]
    # the edges: all equal, all different
    w[:2] = [(1 << simd) - 1, 0]
    x[:2] = [(1 << simd) - 1, (1 << simd) - 1]
    words = [pack_fields([wi, xi], [simd, simd]) for wi, xi in zip(w, x)]  # payload: w low, x high
    return await run_stream_test(dut, words, _golden(w, x, simd), rng, valid_prob, ready_prob,
                                 max_cycles=20 * n + 100, fmt="d",
                                 describe=lambda k: f"w={w[k]:#x} x={x[k]:#x}")


@cocotb.test()
async def popcount_matches_golden_under_random_backpressure(dut):
    await _run(dut, 400, valid_prob=0.7, ready_prob=0.6, salt=1)


@cocotb.test()
async def one_word_per_cycle_when_unstalled(dut):
    n = 200
    run = await _run(dut, n, 1.0, 1.0, salt=2)
    latency = run.latency
    p = bench_params()
    # documented: pipeline registers are clamped to the popcount's adder levels
    # ceil(log2(ceil(simd / 3))), plus the output register
    expected_latency = min(p["pipeline"], (-(-p["simd"] // 3) - 1).bit_length()) + 1
    assert latency == expected_latency, f"latency {latency}, expected {expected_latency}"
    span = run.output_span
    assert span == n, f"{n} words took {span} cycles at the output"
    write_metrics(words=n, words_per_cycle=n / span, latency=latency, cycles=run.cycles)


def _bits(words, simd):
    """Integer words -> (n, simd) array of bits, bit k of a word at column k."""
    return np.array([[(v >> k) & 1 for k in range(simd)] for v in words], dtype=np.uint8)


def _golden(w, x, simd):
    return [int(v) for v in xnor_popcount(_bits(w, simd), _bits(x, simd))]

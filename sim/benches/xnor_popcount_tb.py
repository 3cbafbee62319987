"""XNOR-popcount unit against golden popcount(~(w ^ x)), random data and backpressure."""

import cocotb
import numpy as np

from qnnfab.golden.bits import xnor_popcount

from qnnfab.rtl.xnor_popcount import XnorPopcount
from qnnfab.packing import pack_fields
from qnnfab.sim.stream import bench_params, bench_random, run_reset_in_flight, run_stream_test, write_metrics

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


def _stimulus(n, simd, rng):
    """(input words, golden counts, describe) of ``n`` random operand pairs."""
    w = [rng.getrandbits(simd) for _ in range(n)]
    x = [rng.getrandbits(simd) for _ in range(n)]
    # the edges: all equal, all different
    w[:2] = [(1 << simd) - 1, 0]
    x[:2] = [(1 << simd) - 1, (1 << simd) - 1]
    words = [pack_fields([wi, xi], [simd, simd]) for wi, xi in zip(w, x)]  # payload: w low, x high
    return words, _golden(w, x, simd), lambda k: f"w={w[k]:#x} x={x[k]:#x}"


async def _run(dut, n, valid_prob, ready_prob, salt):
    rng = bench_random(salt)
    words, expected, describe = _stimulus(n, bench_params()["simd"], rng)
    return await run_stream_test(dut, words, expected, rng, valid_prob, ready_prob,
                                 max_cycles=20 * n + 100, fmt="d", describe=describe)


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


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    simd = bench_params()["simd"]
    rng = bench_random(3)
    old, _, _ = _stimulus(60, simd, rng)
    words, expected, describe = _stimulus(60, simd, rng)
    where = await run_reset_in_flight(dut, old, words, expected, rng, frame_words=1,
                                      frames_before=rng.randint(8, 40), max_cycles=2000, fmt="d",
                                      describe=describe)
    write_metrics(reset_in_flight=where)


def _bits(words, simd):
    """Integer words -> (n, simd) array of bits, bit k of a word at column k."""
    return np.array([[(v >> k) & 1 for k in range(simd)] for v in words], dtype=np.uint8)


def _golden(w, x, simd):
    return [int(v) for v in xnor_popcount(_bits(w, simd), _bits(x, simd))]

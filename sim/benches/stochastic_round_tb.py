"""Rounding stage (stochastic / nearest / truncate) against golden shift_round + lfsr_words."""

import cocotb
import numpy as np

from qnnfab.golden.fixedpoint import shift_round
from qnnfab.golden.lfsr import lfsr_words
from qnnfab.rtl.stochastic_round import StochasticRound
from qnnfab.packing import unpack_fields
from qnnfab.sim.stream import bench_params, bench_random, run_reset_in_flight, run_stream_test, write_metrics

NAME = "stochastic_round"
CASES = [
    {"in_fmt": [8, 12], "out_fmt": [4, 4], "mode": "stochastic", "lfsr_width": 16, "seed": 0xACE1},
    {"in_fmt": [8, 12], "out_fmt": [4, 4], "mode": "nearest", "lfsr_width": None, "seed": 1},
    {"in_fmt": [8, 12], "out_fmt": [4, 4], "mode": "truncate", "lfsr_width": None, "seed": 1},
    {"in_fmt": [20, 28], "out_fmt": [2, 1], "mode": "stochastic", "lfsr_width": 32, "seed": 0x1234567},
    {"in_fmt": [3, 2], "out_fmt": [1, 0], "mode": "stochastic", "lfsr_width": 3, "seed": 5},
]


def design(params):
    return StochasticRound(tuple(params["in_fmt"]), tuple(params["out_fmt"]), params["mode"],
                           lfsr_width=params["lfsr_width"], seed=params["seed"])


def summarize(result):
    m = result.metrics
    return f"{m.get('values', 0)} values, {m.get('words_per_cycle', 0):.3f}/cycle unstalled, latency {m.get('latency')}"


def _values(n, width, rng):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    v = [rng.randint(lo, hi) for _ in range(n)]
    v[:6] = [lo, hi, 0, -1, lo + 1, hi - 1]
    return v


def _golden(vals, p, d, steps):
    out_w = sum(p["out_fmt"])
    if p["mode"] == "stochastic":
        rb = (lfsr_words(len(vals), d, p["lfsr_width"], p["seed"], steps_per_cycle=steps)[:, 0].astype(np.int64)
              if d else np.zeros(len(vals), np.int64))
    else:
        rb = None
    return shift_round(np.array(vals, np.int64), d, p["mode"], rb, out_w).tolist()


def _stimulus(p, n, rng):
    """(input words, golden values, check options) of ``n`` values, the LFSR starting at its seed."""
    dsg = design(p)
    vals = _values(n, dsg.in_width, rng)
    mask = (1 << dsg.in_width) - 1
    exp = _golden(vals, p, dsg.drop_bits, dsg.steps_per_cycle)
    ow = dsg.out_width
    return [v & mask for v in vals], exp, dict(fmt="d", decode=lambda word: unpack_fields(word, [ow], signed=True)[0],
                                               describe=lambda k: f"value {k}, acc={vals[k]}")


async def _run(dut, n, valid_prob, ready_prob, salt):
    rng = bench_random(salt)
    words, exp, options = _stimulus(bench_params(), n, rng)
    return await run_stream_test(dut, words, exp, rng, valid_prob, ready_prob, max_cycles=30 * n + 100, **options)


@cocotb.test()
async def rounding_matches_golden_under_backpressure(dut):
    await _run(dut, 1500, valid_prob=0.7, ready_prob=0.5, salt=1)


@cocotb.test()
async def one_value_per_cycle_latency_one_unstalled(dut):
    n = 500
    run = await _run(dut, n, 1.0, 1.0, salt=2)
    lat = run.latency
    assert lat == 1, f"latency {lat}, documented 1"
    span = run.output_span
    assert span == n, f"{n} values took {span} cycles"
    write_metrics(values=n, words_per_cycle=n / span, latency=lat)


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    """The rounding LFSR restarts from its seed: fresh values round as from power-up."""
    p = bench_params()
    rng = bench_random(3)
    old, _, _ = _stimulus(p, 80, rng)
    words, exp, options = _stimulus(p, 80, rng)
    where = await run_reset_in_flight(dut, old, words, exp, rng, frame_words=1, frames_before=rng.randint(8, 60),
                                      max_cycles=3000, **options)
    write_metrics(reset_in_flight=where)

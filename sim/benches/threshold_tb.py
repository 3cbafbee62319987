"""Threshold unit (PE-parallel multithreshold) against golden multithreshold, ties, gaps and backpressure."""

import cocotb
import numpy as np

from qnnfab.golden.threshold import multithreshold
from qnnfab.rtl.threshold import Threshold
from qnnfab.packing import pack_fields, unpack_fields
from qnnfab.sim.stream import bench_params, bench_random, run_reset_in_flight, run_stream_test, write_metrics

NAME = "threshold"
CASES = [
    {"c": 8, "n": 1, "pe": 2, "width": 6, "signed": True},      # binary activation
    {"c": 64, "n": 15, "pe": 4, "width": 16, "signed": True},   # the FINN comparison point
    {"c": 6, "n": 5, "pe": 3, "width": 5, "signed": False},     # N not 2^n - 1 (padded), unsigned input
    {"c": 4, "n": 3, "pe": 4, "width": 4, "signed": True},      # PE = C
    {"c": 5, "n": 2, "pe": 1, "width": 8, "signed": True},      # PE = 1, odd C
]


def _range(p):
    w = p["width"]
    return (-(1 << (w - 1)), (1 << (w - 1)) - 1) if p["signed"] else (0, (1 << w) - 1)


def thresholds(p):
    """Fixed per case (baked into the Verilog): sorted, with duplicates and values beyond the input range."""
    rng = np.random.default_rng([p["c"], p["n"], p["pe"], p["width"]])
    lo, hi = _range(p)
    t = rng.integers(lo - 3, hi + 4, size=(p["c"], p["n"]))
    if p["n"] > 1:
        t[0, 1] = t[0, 0]          # a repeated threshold
    return np.sort(t, axis=1)


def design(p):
    return Threshold(thresholds(p), pe=p["pe"], in_width=p["width"], in_signed=p["signed"])


def summarize(result):
    m = result.metrics
    return f"{m.get('words', 0)} words, latency {m.get('latency', '?')}, {m.get('words_per_cycle', 0):.3f} words/cycle"


def _stimulus(p, pixels, rng):
    """(input words, golden rows, run_stream_test options) of ``pixels`` random accumulator vectors."""
    nrng = np.random.default_rng(rng.getrandbits(32))
    t = thresholds(p)
    lo, hi = _range(p)
    c, pe = p["c"], p["pe"]
    acc = nrng.integers(lo, hi, endpoint=True, size=(pixels, c))
    # ties: accumulators equal to a threshold (and one below it), plus the range ends
    for k in range(pixels):
        ch = nrng.integers(0, c, size=c // 2 + 1)
        idx = nrng.integers(0, p["n"], size=ch.size)
        acc[k, ch] = np.clip(t[ch, idx] - (k % 2), lo, hi)
    acc[0, 0], acc[-1, -1] = lo, hi
    words = [pack_fields(acc[k, f:f + pe], [p["width"]] * pe) for k in range(pixels) for f in range(0, c, pe)]
    nbits = int(p["n"]).bit_length()
    expected = multithreshold(acc, t).reshape(-1, pe)   # one row of PE counts per output word
    folds = c // pe

    def where(k):
        px, ch = k // folds, (k % folds) * pe
        return (f"pixel {px} channels {ch}..{ch + pe - 1}: acc {acc[px, ch:ch + pe].tolist()}, "
                f"thresholds {t[ch:ch + pe].tolist()}")

    return words, expected, dict(decode=lambda wd: unpack_fields(wd, [nbits] * pe), describe=where)


async def _run(dut, pixels, valid_prob, ready_prob, salt):
    rng = bench_random(salt)
    words, expected, options = _stimulus(bench_params(), pixels, rng)
    return await run_stream_test(dut, words, expected, rng, valid_prob, ready_prob,
                                 max_cycles=int(len(words) / (valid_prob * ready_prob)) * 4 + 100, **options)


@cocotb.test()
async def counts_match_golden_with_ties_under_backpressure(dut):
    await _run(dut, 40, valid_prob=0.7, ready_prob=0.6, salt=1)


@cocotb.test()
async def one_word_per_cycle_with_latency_n_plus_one(dut):
    p = bench_params()
    run = await _run(dut, 30, 1.0, 1.0, salt=2)
    n = len(run.sink.words)
    latency = run.latency
    expected = int(p["n"]).bit_length() + 1
    assert latency == expected, f"latency {latency}, expected {expected}"
    span = run.output_span
    assert span == n, f"{n} words took {span} cycles at the output"
    write_metrics(words=n, latency=latency, words_per_cycle=n / span)


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    p = bench_params()
    rng = bench_random(3)
    old, _, _ = _stimulus(p, 12, rng)
    words, expected, options = _stimulus(p, 12, rng)
    folds = p["c"] // p["pe"]     # one pixel (all channels) is a frame
    where = await run_reset_in_flight(dut, old, words, expected, rng, frame_words=folds,
                                      frames_before=rng.randint(1, 8), max_cycles=40 * len(words) + 200,
                                      **options)
    write_metrics(reset_in_flight=where)

"""Global average pool (the sum of every channel over the image, then thresholds) against golden.

Golden: :func:`qnnfab.golden.graph.global_sum_pool` of the stored activations, then
:func:`multithreshold` (thresholds on the sums). Several images back to back with
random gaps and backpressure, the extremes of the sums included; the unstalled test
checks one input word per cycle; a reset in flight (partial sums of an old image in
the delay line) must leave fresh images pooled as from power-up.
"""

import cocotb
import numpy as np
from amaranth.hdl import signed, unsigned

from qnnfab.golden import multithreshold
from qnnfab.golden.graph import global_sum_pool
from qnnfab.packing import pack_words
from qnnfab.rtl.global_pool import GlobalAveragePool
from qnnfab.sim.stream import (bench_params, bench_random, run_reset_in_flight, run_stream_test, steady_cycles,
                               write_metrics)

NAME = "global_pool"
CASES = [
    # ResNet-8's last map at a small size: 4x4x8 uint2, 2 channels per word, 3 thresholds
    {"h": 4, "w": 4, "c": 8, "simd": 2, "bits": 2, "signed": False, "nt": 3},
    # odd pixel count, signed inputs, one channel per word, one threshold
    {"h": 3, "w": 5, "c": 3, "simd": 1, "bits": 3, "signed": True, "nt": 1},
]


def _shape(p):
    return signed(p["bits"]) if p["signed"] else unsigned(p["bits"])


def _range(p):
    b = p["bits"]
    return (-(1 << (b - 1)), (1 << (b - 1)) - 1) if p["signed"] else (0, (1 << b) - 1)


def _thresholds(p):
    lo, hi = _range(p)
    n = p["h"] * p["w"]
    rng = np.random.default_rng(p["c"] * 7 + p["nt"])
    return np.sort(rng.integers(lo * n, hi * n + 2, size=(p["c"], p["nt"])), axis=1)


def design(p):
    return GlobalAveragePool(p["h"] * p["w"], p["c"], p["simd"], _shape(p), _thresholds(p))


def summarize(result):
    m = result.metrics
    return f"{m.get('cycles_per_image', '?')} cycles/image unstalled (input {m.get('in_words', '?')} words)"


def _stimulus(p, n_img, rng):
    nrng = np.random.default_rng(rng.getrandbits(32))
    lo, hi = _range(p)
    imgs = nrng.integers(lo, hi, endpoint=True, size=(n_img, p["h"], p["w"], p["c"]))
    imgs[0] = hi
    if n_img > 1:
        imgs[1] = lo
    out = multithreshold(global_sum_pool(imgs), _thresholds(p))
    n = int(p["nt"]).bit_length()
    return pack_words(imgs.reshape(-1, p["simd"]), p["bits"]), pack_words(out.reshape(-1, p["simd"]), n)


async def _run(dut, n_img, valid_prob, ready_prob, salt):
    rng = bench_random(salt)
    words, expected = _stimulus(bench_params(), n_img, rng)
    run = await run_stream_test(dut, words, expected, rng, valid_prob, ready_prob,
                                max_cycles=40 * (len(words) + len(expected)) + 200)
    return run, len(expected) // n_img


@cocotb.test()
async def pool_matches_golden_under_random_gaps_and_backpressure(dut):
    await _run(dut, 4, valid_prob=0.6, ready_prob=0.5, salt=1)


@cocotb.test()
async def one_input_word_per_cycle_unstalled(dut):
    p = bench_params()
    n_img = 4
    run, per = await _run(dut, n_img, 1.0, 1.0, salt=2)
    steady, _ = steady_cycles(run.sink, per, n_img)
    in_words = p["h"] * p["w"] * p["c"] // p["simd"]
    assert steady == in_words, f"{steady} cycles/image for {in_words} input words"
    write_metrics(cycles_per_image=steady, in_words=in_words)


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    p = bench_params()
    rng = bench_random(3)
    old, _ = _stimulus(p, 3, rng)
    words, expected = _stimulus(p, 2, rng)
    where = await run_reset_in_flight(dut, old, words, expected, rng, frame_words=len(old) // 3,
                                      frames_before=rng.randint(1, 2),
                                      max_cycles=40 * (len(old) + len(words) + len(expected)) + 400)
    write_metrics(reset_in_flight=where)

"""Max-pool unit against golden maxpool (OR for bipolar, max for unsigned), with gaps and backpressure."""

import cocotb
import numpy as np

from qnnfab.golden import maxpool
from qnnfab.rtl.maxpool import MaxPool
from qnnfab.packing import pack_words
from qnnfab.sim.stream import (bench_params, bench_random, run_reset_in_flight, run_stream_test, steady_cycles,
                               write_metrics)

NAME = "maxpool"
CASES = [
    # CNV-style 2x2/2 bipolar pool, SIMD = C
    {"h": 6, "w": 8, "c": 8, "simd": 8, "k": 2, "s": 2, "kind": "bipolar", "bits": 1},
    # odd sizes (last row/column dropped), SIMD = 1, non-square
    {"h": 5, "w": 7, "c": 3, "simd": 1, "k": 2, "s": 2, "kind": "bipolar", "bits": 1},
    # overlapping 3x3/2 unsigned 3-bit
    {"h": 7, "w": 6, "c": 4, "simd": 2, "k": 3, "s": 2, "kind": "uint", "bits": 3},
    # 2x2 stride 1 unsigned 4-bit, SIMD = C
    {"h": 4, "w": 5, "c": 2, "simd": 2, "k": 2, "s": 1, "kind": "uint", "bits": 4},
    # global pool of a 3x3 map (one output pixel)
    {"h": 3, "w": 3, "c": 6, "simd": 3, "k": 3, "s": 3, "kind": "uint", "bits": 2},
    # 1x1 image, K = 1
    {"h": 1, "w": 1, "c": 4, "simd": 1, "k": 1, "s": 1, "kind": "bipolar", "bits": 1},
]


def design(p):
    return MaxPool(p["h"], p["w"], p["c"], p["simd"], p["k"], p["s"], p["kind"], p["bits"])


def summarize(result):
    m = result.metrics
    return (f"{m.get('cycles_per_image', '?')} cycles/image unstalled "
            f"(input {m.get('in_words', '?')} words, window stream {m.get('window_words', '?')})")


def _stimulus(p, n_img, rng):
    """(input words, golden output words) of ``n_img`` images (the first two edge cases when bipolar)."""
    nrng = np.random.default_rng(rng.getrandbits(32))
    imgs = nrng.integers(0, 1 << p["bits"], size=(n_img, p["h"], p["w"], p["c"]))
    if p["kind"] == "bipolar" and n_img > 1:
        imgs[0] = 0                                  # all -1: the OR must stay 0
        imgs[1] = 0
        imgs[1, nrng.integers(p["h"]), nrng.integers(p["w"])] = 1   # a lone +1 pixel
    golden = maxpool(imgs, p["k"], p["s"], kind="bipolar" if p["kind"] == "bipolar" else "uint")
    return pack_words(imgs.reshape(-1, p["simd"]), p["bits"]), pack_words(golden.reshape(-1, p["simd"]), p["bits"])


async def _run(dut, n_img, valid_prob, ready_prob, salt):
    rng = bench_random(salt)
    words, expected = _stimulus(bench_params(), n_img, rng)
    run = await run_stream_test(dut, words, expected, rng, valid_prob, ready_prob,
                                max_cycles=40 * len(words) + 40 * len(expected) + 200)
    return run, len(expected) // n_img


@cocotb.test()
async def pool_matches_golden_under_random_gaps_and_backpressure(dut):
    await _run(dut, 4, valid_prob=0.6, ready_prob=0.5, salt=1)


@cocotb.test()
async def cycles_per_image_unstalled(dut):
    p = bench_params()
    n_img = 4
    run, per = await _run(dut, n_img, 1.0, 1.0, salt=2)
    mp = design(p)
    steady, _ = steady_cycles(run.sink, per, n_img)
    ideal = mp.cycles_per_image            # max(window stream words, input words)
    bound = ideal + (mp.window.buffer_rows * p["w"] + p["k"]) * mp.cw + mp.out_height * p["s"] * mp.cw
    assert ideal <= steady <= bound, f"{steady} cycles/image, ideal {ideal}, bound {bound}"
    write_metrics(cycles_per_image=steady, in_words=mp.in_words, window_words=mp.window.out_words,
                  out_words=mp.out_words)


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    """Reset in the middle of the second or third image (line buffer and running
    maxima holding old pixels); fresh images pool as from power-up."""
    p = bench_params()
    rng = bench_random(3)
    old, _ = _stimulus(p, 3, rng)
    words, expected = _stimulus(p, 2, rng)
    where = await run_reset_in_flight(dut, old, words, expected, rng, frame_words=len(old) // 3,
                                      frames_before=rng.randint(1, 2),
                                      max_cycles=40 * (len(old) + len(words) + len(expected)) + 400)
    write_metrics(reset_in_flight=where)

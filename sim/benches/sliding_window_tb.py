"""Sliding-window buffer against golden im2col, word by word, with gaps and backpressure.

Expected words come from :func:`qnnfab.golden.im2col` on the element values,
packed SIMD elements per word (element 0 at the LSBs); with SIMD = m * C the
input words are whole pixels. Several images stream
back to back. The unstalled test reports the steady-state cycles per image
(``cycles_per_image``) next to ``max(OH*OW*K*K*CW, H*W*CW)``, the output- or
input-bound ideal (``ideal``).
"""

import cocotb
import numpy as np

from qnnfab.folding import conv_in_simd
from qnnfab.golden import im2col
from qnnfab.rtl.sliding_window import SlidingWindow
from qnnfab.packing import pack_words
from qnnfab.sim.stream import (bench_params, bench_random, run_reset_in_flight, run_stream_test, steady_cycles,
                               write_metrics)

NAME = "sliding_window"
CASES = [
    # non-square, SIMD = C, K=3 same padding
    {"h": 5, "w": 7, "c": 4, "simd": 4, "k": 3, "s": 1, "p": 1, "pv": 0, "bits": 1},
    # K=2 stride 2, SIMD = 1, odd width (last column unused)
    {"h": 6, "w": 5, "c": 3, "simd": 1, "k": 2, "s": 2, "p": 0, "pv": 0, "bits": 1},
    # 1x1 image, 3x3 kernel with padding of +1
    {"h": 1, "w": 1, "c": 3, "simd": 3, "k": 3, "s": 1, "p": 1, "pv": 1, "bits": 1},
    # K=5, 2-bit elements, pad value 3
    {"h": 7, "w": 6, "c": 2, "simd": 2, "k": 5, "s": 1, "p": 1, "pv": 3, "bits": 2},
    # K=1 pass-through, 4-bit elements, SIMD neither 1 nor C
    {"h": 4, "w": 4, "c": 6, "simd": 3, "k": 1, "s": 1, "p": 0, "pv": 0, "bits": 4},
    # K=3 stride 2 with padding, SIMD = 1
    {"h": 9, "w": 8, "c": 2, "simd": 1, "k": 3, "s": 2, "p": 1, "pv": 1, "bits": 1},
    # image smaller than the kernel, padding 2 makes it fit
    {"h": 2, "w": 3, "c": 2, "simd": 2, "k": 5, "s": 1, "p": 2, "pv": 0, "bits": 1},
    # CNV-like: 3x3 no padding, two words per pixel
    {"h": 12, "w": 10, "c": 64, "simd": 32, "k": 3, "s": 1, "p": 0, "pv": 0, "bits": 1},
    # SIMD = K*K*C: the whole window per word, odd sizes, 3-bit elements padded with 5
    {"h": 7, "w": 5, "c": 3, "simd": 27, "k": 3, "s": 1, "p": 1, "pv": 5, "bits": 3},
    # SIMD = 3*C: one kernel row per word, stride 2 with padding of +1
    {"h": 9, "w": 8, "c": 2, "simd": 6, "k": 3, "s": 2, "p": 1, "pv": 1, "bits": 1},
]


def design(p):
    return SlidingWindow(p["h"], p["w"], p["c"], p["simd"], p["k"], p["s"], p["p"], p["pv"], p["bits"])


def summarize(result):
    m = result.metrics
    return (f"{m.get('cycles_per_image', '?')} cycles/image unstalled "
            f"(ideal {m.get('ideal', '?')}), {m.get('out_words', '?')} words/image")


def _stimulus(p, n_img, rng):
    """(input words, golden im2col words) of ``n_img`` images (all-max and all-zero first when 4 or more)."""
    nrng = np.random.default_rng(rng.getrandbits(32))
    imgs = nrng.integers(0, 1 << p["bits"], size=(n_img, p["h"], p["w"], p["c"]))
    if n_img >= 4:                      # the edges: all-max and all-zero images, the rest random
        imgs[0] = (1 << p["bits"]) - 1
        imgs[1] = 0
    cols = im2col(imgs, p["k"], p["s"], p["p"], p["pv"])
    in_simd = conv_in_simd(p["c"], p["simd"])
    return pack_words(imgs.reshape(-1, in_simd), p["bits"]), pack_words(cols.reshape(-1, p["simd"]), p["bits"])


async def _run(dut, n_img, valid_prob, ready_prob, salt):
    rng = bench_random(salt)
    words, expected = _stimulus(bench_params(), n_img, rng)
    per = len(expected) // n_img
    run = await run_stream_test(dut, words, expected, rng, valid_prob, ready_prob,
                                max_cycles=30 * len(expected) + 30 * len(words) * bench_params()["simd"] + 200,
                                describe=lambda k: f"image {k // per}")
    return run, per


@cocotb.test()
async def im2col_stream_matches_golden_under_random_gaps_and_backpressure(dut):
    await _run(dut, 4, valid_prob=0.6, ready_prob=0.5, salt=1)


@cocotb.test()
async def input_starved_output_matches_golden(dut):
    # rare input, eager output: the read side must wait word by word
    await _run(dut, 2, valid_prob=0.15, ready_prob=0.9, salt=2)


@cocotb.test()
async def cycles_per_image_unstalled(dut):
    p = bench_params()
    n_img = 4
    run, per = await _run(dut, n_img, 1.0, 1.0, salt=3)
    sw = design(p)
    ideal = max(sw.out_words, sw.in_words)
    steady, ends = steady_cycles(run.sink, per, n_img)
    # exactly the ideal: no refill stall at image boundaries, no hiccup per output row
    assert steady == ideal, f"{steady} cycles/image, ideal {ideal}"
    write_metrics(cycles_per_image=steady, ideal=ideal, out_words=sw.out_words, in_words=sw.in_words,
                  first_image_cycles=ends[0] + 1, words_per_cycle=len(run.sink.words) / run.output_span,
                  buffer_bits=sw.buffer_bits)


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    """Reset in the middle of the second or third image (line buffer full of old
    rows, window counters mid-image); fresh images give exactly their im2col."""
    p = bench_params()
    rng = bench_random(4)
    old, _ = _stimulus(p, 3, rng)
    words, expected = _stimulus(p, 2, rng)
    per = len(expected) // 2
    where = await run_reset_in_flight(dut, old, words, expected, rng, frame_words=len(old) // 3,
                                      frames_before=rng.randint(1, 2),
                                      max_cycles=40 * (len(old) + len(words) + len(expected)) + 400,
                                      describe=lambda k: f"fresh image {k // per}")
    write_metrics(reset_in_flight=where)

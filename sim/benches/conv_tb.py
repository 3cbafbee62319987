"""Convolution layer (sliding window -> FIFO -> MVTU -> thresholds) against the golden convolution.

Golden: :func:`qnnfab.golden.im2col` of the stored activations, times
``conv_weights_to_matrix(w)`` (XNOR popcount for bipolar x bipolar, signed
dot product for unsigned activations), then :func:`multithreshold`. Several
images back to back with random gaps and backpressure; the unstalled test
reports the steady-state cycles per image against
``max(window words, MVTU cycles)``.
"""

import cocotb
import numpy as np

from qnnfab.golden import binary_weight_matvec, conv_weights_to_matrix, im2col, multithreshold, xnor_popcount_matmul
from qnnfab.rtl.conv import ConvLayer
from qnnfab.packing import pack_words
from qnnfab.sim.stream import (bench_params, bench_random, run_reset_in_flight, run_stream_test, steady_cycles,
                               write_metrics)

NAME = "conv"
CASES = [
    # non-square, K=3 same padding, SIMD = C, two output words per pixel
    {"h": 5, "w": 6, "ifm": 4, "ofm": 4, "k": 3, "s": 1, "p": 1, "pv": 0, "simd": 4, "pe": 2,
     "act": "bipolar", "ab": 1, "nt": 1},
    # K=2 stride 2, SIMD = 1
    {"h": 4, "w": 6, "ifm": 2, "ofm": 3, "k": 2, "s": 2, "p": 0, "pv": 0, "simd": 1, "pe": 3,
     "act": "bipolar", "ab": 1, "nt": 1},
    # 1x1 image, 3x3 kernel, padding of +1
    {"h": 1, "w": 1, "ifm": 3, "ofm": 2, "k": 3, "s": 1, "p": 1, "pv": 1, "simd": 3, "pe": 1,
     "act": "bipolar", "ab": 1, "nt": 1},
    # K=1 (pointwise), 2-bit activations, 3 thresholds
    {"h": 4, "w": 5, "ifm": 2, "ofm": 4, "k": 1, "s": 1, "p": 0, "pv": 0, "simd": 2, "pe": 4,
     "act": "uint", "ab": 2, "nt": 3},
    # K=5 stride 2 with padding, SIMD = 1, 2-bit activations
    {"h": 6, "w": 7, "ifm": 2, "ofm": 2, "k": 5, "s": 2, "p": 1, "pv": 0, "simd": 1, "pe": 1,
     "act": "uint", "ab": 2, "nt": 3},
    # CNV-like 3x3 no padding, SIMD = C = 32, NF = 1: the window generator is the bottleneck
    {"h": 10, "w": 10, "ifm": 32, "ofm": 16, "k": 3, "s": 1, "p": 0, "pv": 0, "simd": 32, "pe": 16,
     "act": "bipolar", "ab": 1, "nt": 1},
    # CNV-like with NF = 4: the MVTU is the bottleneck, the FIFO absorbs the window refill
    {"h": 8, "w": 8, "ifm": 16, "ofm": 16, "k": 3, "s": 1, "p": 0, "pv": 0, "simd": 16, "pe": 4,
     "act": "bipolar", "ab": 1, "nt": 1},
    # SIMD = K*K*IFM (whole window per word, pixels in), 3-bit activations, odd sizes
    {"h": 7, "w": 5, "ifm": 3, "ofm": 4, "k": 3, "s": 1, "p": 0, "pv": 0, "simd": 27, "pe": 2,
     "act": "uint", "ab": 3, "nt": 3},
    # SIMD = 3*IFM (a kernel row per word), stride 2, padding of +1
    {"h": 9, "w": 6, "ifm": 8, "ofm": 8, "k": 3, "s": 2, "p": 1, "pv": 1, "simd": 24, "pe": 4,
     "act": "bipolar", "ab": 1, "nt": 1},
]


def _case(p):
    rng = np.random.default_rng(sum(ord(ch) * (i + 1) for i, ch in enumerate(str(sorted(p.items())))))
    w = rng.integers(0, 2, size=(p["ofm"], p["ifm"], p["k"], p["k"]))
    mw = p["k"] * p["k"] * p["ifm"]
    if p["act"] == "bipolar":
        T = np.sort(rng.integers(mw // 4, 3 * mw // 4 + 1, size=(p["ofm"], p["nt"])), axis=1)
    else:
        hi = mw * ((1 << p["ab"]) - 1)
        T = np.sort(rng.integers(-hi // 2, hi // 2 + 1, size=(p["ofm"], p["nt"])), axis=1)
    return w, T


def design(p):
    w, T = _case(p)
    return ConvLayer(p["h"], p["w"], w, T, stride=p["s"], pad=p["p"], pad_value=p["pv"], simd=p["simd"],
                     pe=p["pe"], act_kind=p["act"], act_bits=None if p["act"] == "bipolar" else p["ab"],
                     fifo_depth=16)


def summarize(result):
    m = result.metrics
    return (f"{m.get('cycles_per_image', '?')} cycles/image unstalled, "
            f"max(window {m.get('window_cycles', '?')}, mvtu {m.get('mvtu_cycles', '?')}) "
            f"-> {m.get('ratio', 0):.4f}")


def _golden(imgs, w, T, p):
    cols = im2col(imgs, p["k"], p["s"], p["p"], p["pv"])
    cols = cols.reshape(-1, cols.shape[-1])
    mat = conv_weights_to_matrix(w)
    if p["act"] == "bipolar":
        acc = xnor_popcount_matmul(mat, cols)
    else:
        acc = binary_weight_matvec(mat, cols, "uint", p["ab"])
    return multithreshold(acc, T)


def _stimulus(p, layer, n_img, rng):
    """(input words, golden output words, describe, cycle limit) of ``n_img`` random images."""
    w, T = _case(p)
    nrng = np.random.default_rng(rng.getrandbits(32))
    imgs = nrng.integers(0, 1 << p["ab"], size=(n_img, p["h"], p["w"], p["ifm"]))
    expected = pack_words(_golden(imgs, w, T, p).reshape(-1, p["pe"]), layer.mvtu.out_elem_width)
    per = len(expected) // n_img
    limit = int(n_img * layer.cycles_per_image * 3) + 20 * imgs.size + 500
    return (pack_words(imgs.reshape(-1, layer.in_simd), p["ab"]), expected,
            lambda k: f"image {k // per}, pixel {(k % per) * p['pe'] // p['ofm']}", limit)


async def _run(dut, n_img, valid_prob, ready_prob, salt):
    p = bench_params()
    layer = design(p)
    rng = bench_random(salt)
    words, expected, describe, limit = _stimulus(p, layer, n_img, rng)
    run = await run_stream_test(dut, words, expected, rng, valid_prob, ready_prob,
                                max_cycles=int(limit / min(valid_prob, ready_prob)), describe=describe)
    return run, len(expected) // n_img, layer


@cocotb.test()
async def conv_matches_golden_under_random_gaps_and_backpressure(dut):
    await _run(dut, 3, valid_prob=0.6, ready_prob=0.5, salt=1)


@cocotb.test()
async def cycles_per_image_unstalled(dut):
    n_img = 4
    run, per, layer = await _run(dut, n_img, 1.0, 1.0, salt=2)
    steady, ends = steady_cycles(run.sink, per, n_img)
    ideal = layer.cycles_per_image
    sw = layer.window
    refill = (sw.buffer_rows * layer.width + layer.kernel) * sw.cw   # one buffer refill per image at most
    assert ideal <= steady <= 1.02 * ideal + refill, f"{steady} cycles/image, ideal {ideal}, refill bound {refill}"
    write_metrics(cycles_per_image=steady, window_cycles=layer.window_cycles, mvtu_cycles=layer.mvtu_cycles,
                  ideal=ideal, ratio=steady / ideal, first_image_cycles=ends[0] + 1,
                  latency_first_word=run.latency)


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    """Reset in the middle of the second or third image (window buffer, FIFO and
    MVTU accumulators holding old data); fresh images convolve as from power-up."""
    p = bench_params()
    layer = design(p)
    rng = bench_random(3)
    old, _, _, old_limit = _stimulus(p, layer, 3, rng)
    words, expected, describe, limit = _stimulus(p, layer, 2, rng)
    where = await run_reset_in_flight(dut, old, words, expected, rng, frame_words=len(old) // 3,
                                      frames_before=rng.randint(1, 2), max_cycles=4 * (old_limit + limit),
                                      describe=describe)
    write_metrics(reset_in_flight=where)

"""Residual block (fork, 3x3 "same" convolution, skip FIFO at the computed depth, add + thresholds) against golden.

Golden: the convolution (:func:`qnnfab.golden.im2col`, binary weights over uint2 maps,
:func:`multithreshold`), :func:`qnnfab.golden.graph.elementwise_add` with the block's input,
then :func:`multithreshold`. The skip FIFO's depth is the least that keeps the cycles per
image as :func:`qnnfab.fifo_sizing.throughput_depth` computes it from characterisation runs
of the convolution alone (Amaranth's simulator: :func:`qnnfab.sim.branch_timing.skip_depths`);
on Verilator the block must then run at the convolution's cycles per image, with random gaps and backpressure correct, and
restart cleanly after a reset in flight (the skip FIFO holding words of an old image).
"""

import functools

import cocotb
import numpy as np

from qnnfab.golden import binary_weight_matvec, conv_weights_to_matrix, im2col, multithreshold
from qnnfab.golden.graph import elementwise_add
from qnnfab.packing import pack_words
from qnnfab.rtl.conv import ConvLayer
from qnnfab.rtl.residual_block import ResidualBlock
from qnnfab.sim.branch_timing import skip_depths
from qnnfab.sim.stream import (bench_params, bench_random, run_reset_in_flight, run_stream_test, steady_cycles,
                               write_metrics)

NAME = "residual_block"
CASES = [
    # the convolution is the bottleneck (9 cycles per pixel)
    {"h": 4, "w": 5, "c": 2, "simd": 2, "seed": 1},
    # whole windows per word: one pixel per cycle, the input is the bottleneck
    {"h": 5, "w": 4, "c": 2, "simd": 18, "seed": 2},
]
CHAR_FRAMES = 3


def _weights(p):
    rng = np.random.default_rng(p["seed"])
    w = rng.integers(0, 2, size=(p["c"], p["c"], 3, 3))
    t = np.sort(rng.integers(-10, 10, size=(p["c"], 3)), axis=1)
    add_t = np.sort(rng.integers(0, 7, size=(p["c"], 3)), axis=1)
    return w, t, add_t


def _conv(p):
    w, t, _ = _weights(p)
    return ConvLayer(p["h"], p["w"], w, t, stride=1, pad=1, simd=p["simd"], pe=p["c"], weight_kind="bipolar",
                     act_kind="uint", act_bits=2)


@functools.cache
def skip_depth(h, w, c, simd, seed):
    """The computed throughput-keeping skip depth of a case (characterisation runs of the convolution)."""
    p = dict(h=h, w=w, c=c, simd=simd, seed=seed)
    imgs = np.random.default_rng(seed).integers(0, 4, size=(CHAR_FRAMES, h, w, c))
    words = pack_words(imgs.reshape(-1, c), 2)
    return skip_depths(lambda: _conv(p), words, CHAR_FRAMES).throughput


def design(p):
    return ResidualBlock(_conv(p), skip_depth(**p), _weights(p)[2])


def summarize(result):
    m = result.metrics
    return (f"{m.get('cycles_per_image', '?')} cycles/image unstalled (convolution {m.get('conv_cycles', '?')}), "
            f"skip FIFO depth {m.get('skip_depth', '?')}")


def _stimulus(p, n_img, rng):
    nrng = np.random.default_rng(rng.getrandbits(32))
    imgs = nrng.integers(0, 4, size=(n_img, p["h"], p["w"], p["c"]))
    imgs[0] = 3                                        # the largest sums
    w, t, add_t = _weights(p)
    cols = im2col(imgs, 3, 1, 1, 0).reshape(-1, 9 * p["c"])
    branch = multithreshold(binary_weight_matvec(conv_weights_to_matrix(w), cols, "uint", 2), t)
    out = multithreshold(elementwise_add(branch, imgs.reshape(-1, p["c"])), add_t)
    return pack_words(imgs.reshape(-1, p["c"]), 2), pack_words(out, 2)


async def _run(dut, n_img, valid_prob, ready_prob, salt):
    rng = bench_random(salt)
    words, expected = _stimulus(bench_params(), n_img, rng)
    run = await run_stream_test(dut, words, expected, rng, valid_prob, ready_prob,
                                max_cycles=200 * len(words) + 400)
    return run, len(expected) // n_img


@cocotb.test()
async def block_matches_golden_under_random_gaps_and_backpressure(dut):
    await _run(dut, 3, valid_prob=0.6, ready_prob=0.5, salt=1)


@cocotb.test()
async def runs_at_the_convolutions_cycles_per_image(dut):
    p = bench_params()
    n_img = 4
    run, per = await _run(dut, n_img, 1.0, 1.0, salt=2)
    steady, _ = steady_cycles(run.sink, per, n_img)
    conv = _conv(p)
    assert steady == conv.cycles_per_image, f"{steady} cycles/image, the convolution's {conv.cycles_per_image}"
    write_metrics(cycles_per_image=steady, conv_cycles=conv.cycles_per_image, skip_depth=skip_depth(**p))


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    p = bench_params()
    rng = bench_random(3)
    old, _ = _stimulus(p, 3, rng)
    words, expected = _stimulus(p, 2, rng)
    where = await run_reset_in_flight(dut, old, words, expected, rng, frame_words=len(old) // 3,
                                      frames_before=rng.randint(1, 2), max_cycles=200 * (len(old) + len(words)) + 800)
    write_metrics(reset_in_flight=where)

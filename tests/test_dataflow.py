"""Whole-network dataflow structure (qnnfab.rtl.dataflow): width converters, FIFOs, FIFO depths, ArgMax."""

import math
import random
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from qnnfab import netconfig
from qnnfab.plan import fifo_depth_for
from qnnfab.rtl.dataflow import ArgMax, Dataflow
from qnnfab.rtl.stream_fifo import StreamFIFO
from qnnfab.rtl.width_converter import WidthConverter
from qnnfab.golden.network import network_of

ROOT = Path(__file__).resolve().parent.parent


def _width(port):
    return Value.cast(port).shape().width


def _check_structure(cfg, top):
    """Stages in stream order: [width converter if PE != next input word] FIFO layer, for every layer but
    the first. A layer's input word is its SIMD elements, or whole pixels (C) for a convolution with
    SIMD = m * C."""

    def in_elems(L):
        return min(L.simd, L.in_shape[2]) if L.type == "conv" else L.simd

    stages = list(top.stages)
    expect = []
    for idx, L in enumerate(cfg.layers):
        if idx > 0:
            prev = cfg.layers[idx - 1]
            if prev.pe != in_elems(L):
                expect.append(("width", f"{L.name}_dwc"))
            expect.append(("fifo", f"{L.name}_fifo"))
        expect.append((L.type, L.name))
    assert [(k, n) for k, n, _ in stages] == expect
    words = {}
    for L in cfg.layers:
        words[L.name] = math.prod(L.in_shape) // in_elems(L)
    prev_cycles = None
    for k, name, comp in stages:
        if k == "width":
            nxt = next(x for x in cfg.layers if name == f"{x.name}_dwc")
            prev = cfg.layers[cfg.layers.index(nxt) - 1]
            assert isinstance(comp, WidthConverter)
            assert (comp.in_elems, comp.out_elems, comp.bits) == (prev.pe, in_elems(nxt), nxt.in_bits)
        elif k == "fifo":
            nxt = next(x for x in cfg.layers if name == f"{x.name}_fifo")
            assert isinstance(comp, StreamFIFO)
            assert comp.width == in_elems(nxt) * nxt.in_bits
            want = nxt.fifo_depth or fifo_depth_for(words[nxt.name], prev_cycles, cfg.layer_cycles(nxt))
            assert comp.depth == want, name
        else:
            prev_cycles = cfg.layer_cycles(next(x for x in cfg.layers if x.name == name))
    # every link carries the same width on both sides
    comps = [c for _, _, c in stages]
    for a, b in zip(comps, comps[1:]):
        assert _width(a.o.payload) == _width(b.i.payload), (a, b)
    # the ports: first layer's SIMD elements in, last layer's PE elements out
    first, last = cfg.layers[0], cfg.layers[-1]
    in_bits = 1 if cfg.input_kind == "bipolar" else cfg.input_bits
    assert top.in_width == in_elems(first) * in_bits
    assert top.out_elems == last.pe
    assert top.in_words == math.prod(cfg.input_shape) // in_elems(first)
    assert top.out_words * last.pe == math.prod(last.out_shape)


def test_cnv_small_width_converters_and_fifos():
    cfg = netconfig.load(ROOT / "configs" / "cnv_small.toml")
    top = Dataflow(cfg)
    _check_structure(cfg, top)
    # the shipped folding needs converters exactly at conv2 -> fc0 (8 -> 32) and fc0 -> fc_out (4 -> 16)
    dwc = [(n, c.in_elems, c.out_elems) for k, n, c in top.stages if k == "width"]
    assert dwc == [("fc0_dwc", 8, 32), ("fc_out_dwc", 4, 16)]
    assert sum(1 for k, _, _ in top.stages if k == "fifo") == len(cfg.layers) - 1
    assert top.stages[0][0] == "conv"


def test_lfc_small_needs_no_width_converter():
    cfg = netconfig.load(ROOT / "configs" / "lfc_small.toml")
    top = Dataflow(cfg)
    _check_structure(cfg, top)
    assert not any(k == "width" for k, _, _ in top.stages)


def test_refolded_cnv_small_and_fifo_depth_override():
    text = (ROOT / "configs" / "cnv_small.toml").read_text()
    # conv1: PE 16 -> 4 (pool0 follows at SIMD 4 by default), fc0 PE 4 -> 16, FIFO depth 9 before conv2
    text = text.replace('name = "conv1"\ntype = "conv"\nout = 16\nkernel = 3\nact = "bipolar"\npe = 16',
                        'name = "conv1"\ntype = "conv"\nout = 16\nkernel = 3\nact = "bipolar"\npe = 4')
    text = text.replace('name = "conv2"\ntype = "conv"', 'name = "conv2"\nfifo_depth = 9\ntype = "conv"')
    text = text.replace('out = 64\nact = "bipolar"\npe = 4', 'out = 64\nact = "bipolar"\npe = 16')
    cfg = netconfig.loads(text)
    assert [L.pe for L in cfg.layers] == [16, 4, 4, 8, 16, 2]
    top = Dataflow(cfg)
    _check_structure(cfg, top)
    dwc = {n: (c.in_elems, c.out_elems) for k, n, c in top.stages if k == "width"}
    assert dwc == {"conv2_dwc": (4, 16), "fc0_dwc": (8, 32)}
    fifo = {n: c for k, n, c in top.stages if k == "fifo"}
    assert fifo["conv2_fifo"].depth == 9


MMV_NET = """[network]
name = "mmv"
input_shape = [7, 6, 3]
input_kind = "int"
input_bits = 4
weights = "random"
seed = 5

[[layer]]
name = "conv0"
type = "conv"
out = 8
kernel = 3
pad = 1
pad_value = 2
act = "uint2"
pe = 4
simd = 27

[[layer]]
name = "conv1"
type = "conv"
out = 6
kernel = 3
stride = 2
act = "bipolar"
pe = 3
simd = 24

[[layer]]
name = "fc_out"
type = "fc"
out = 4
act = "acc"
pe = 2
simd = 6
"""


def test_kernel_positions_per_word_in_a_network_match_golden():
    # conv0 takes the whole padded window per word (pixels of 3 channels in), conv1 one kernel
    # row per word behind a width converter (conv0's PE 4 -> pixels of 8); Amaranth's simulator,
    # random gaps and backpressure, against the golden forward pass
    from qnnfab.sim.amaranth_stream import stream_through
    from qnnfab.packing import pack_words
    cfg = netconfig.loads(MMV_NET)
    assert [L.in_simd for L in cfg.layers] == [3, 8, 6]
    top = Dataflow(cfg)
    _check_structure(cfg, top)
    assert [(n, c.in_elems, c.out_elems) for k, n, c in top.stages if k == "width"] == [("conv1_dwc", 4, 8),
                                                                                        ("fc_out_dwc", 3, 6)]
    x = cfg.random_inputs(3, seed=1)
    want = network_of(cfg).forward(x)
    words = pack_words((x & 0xF).reshape(-1, 3), 4)
    got = stream_through(top, words, top.out_words * 3, 0.7, 0.7, seed=2).words
    bits = top.out_bits
    scores = [(w >> (k * bits)) & ((1 << bits) - 1) for w in got for k in range(top.out_elems)]
    assert scores == want.reshape(-1).tolist()


def test_fifo_depth_for_clamps_to_2_64():
    assert fifo_depth_for(10_000, 1, 100) == 64          # a fast producer and a long frame
    assert fifo_depth_for(10, 100, 100) == 2             # equal rates
    assert fifo_depth_for(10, 500, 100) == 2             # a slower producer
    assert fifo_depth_for(0, 1, 100) == 2
    assert fifo_depth_for(50, 1, 0) == 2                 # no consumer model
    assert fifo_depth_for(40, 50, 100) == 20             # half a frame of 40 words
    assert fifo_depth_for(41, 50, 100) == 21             # rounded up
    rng = random.Random(4)
    for _ in range(200):
        w, p, c = rng.randint(0, 5000), rng.randint(0, 5000), rng.randint(-3, 5000)
        d = fifo_depth_for(w, p, c)
        assert isinstance(d, int) and 2 <= d <= 64
        if c > 0:
            assert d == min(64, max(2, math.ceil(w * max(0.0, 1 - p / c))))


# --------------------------------------------------------------------------- ArgMax

def _run_argmax(pe, width, is_signed, words, frames, rng, valid_prob=0.6, ready_prob=0.6, count=None):
    dut = ArgMax(pe, width, is_signed, words, count)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    mask = (1 << width) - 1
    labels, pulses = [], []
    last_transfer = []

    async def bench(ctx):
        cyc = 0
        for frame in frames:
            for w in range(words):
                elems = frame[w * pe:(w + 1) * pe]
                word = sum((int(e) & mask) << (k * width) for k, e in enumerate(elems))
                while True:
                    valid = rng.random() < valid_prob
                    ready = rng.random() < ready_prob
                    # a word that is offered but not taken must not count; a taken one must
                    ctx.set(Value.cast(dut.payload), word if valid else rng.getrandbits(pe * width))
                    ctx.set(dut.valid, int(valid))
                    ctx.set(dut.ready, int(ready))
                    await ctx.tick()
                    cyc += 1
                    if ctx.get(dut.label_valid):
                        labels.append(ctx.get(dut.label))
                        pulses.append(cyc)
                    if valid and ready:
                        break
            last_transfer.append(cyc)
        ctx.set(dut.valid, 0)
        for _ in range(4):
            await ctx.tick()
            cyc += 1
            if ctx.get(dut.label_valid):
                labels.append(ctx.get(dut.label))
                pulses.append(cyc)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return labels, pulses, last_transfer, (lo, hi)


@pytest.mark.parametrize("pe,width,is_signed,words", [
    (1, 4, False, 5), (2, 3, True, 4), (4, 2, False, 3), (5, 8, True, 2), (3, 5, True, 1), (10, 2, True, 1),
    (1, 1, False, 6), (2, 16, True, 5),
])
def test_argmax_picks_the_first_maximum(pe, width, is_signed, words):
    rng = random.Random(pe * 1000 + width * 10 + words + is_signed)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    n = pe * words
    frames = []
    for f in range(24):
        if f % 6 == 0:
            frame = [rng.choice([lo, hi, 0 if lo <= 0 else lo])] * n        # all tied
        elif f % 6 == 1:
            frame = [lo] * n                                                  # all minimal
            frame[rng.randrange(n)] = hi
        else:
            frame = [rng.randint(lo, hi) for _ in range(n)]
        frames.append(frame)
    labels, pulses, last, _ = _run_argmax(pe, width, is_signed, words, frames, rng)
    assert labels == [int(np.argmax(np.array(fr))) for fr in frames]
    # one pulse per frame, sampled right after the frame's last word transferred
    assert pulses == last


@pytest.mark.parametrize("pe,words,count", [(2, 4, 5), (4, 2, 6), (3, 3, 4), (1, 5, 3), (4, 1, 1)])
def test_argmax_with_a_count_ignores_the_padding_scores(pe, words, count):
    """Padding scores (index >= count), often the largest here, never win: the label is the arg-max of
    the first count scores, whether the padding fills part of a word or whole words."""
    rng = random.Random(pe * 100 + words * 10 + count)
    frames = []
    for f in range(24):
        scores = [rng.randint(0, 7) for _ in range(count)]
        padding = [15 if f % 2 else rng.randint(0, 15) for _ in range(pe * words - count)]
        frames.append(scores + padding)
    labels, pulses, last, _ = _run_argmax(pe, 4, False, words, frames, rng, count=count)
    assert labels == [int(np.argmax(fr[:count])) for fr in frames]
    assert pulses == last


def test_argmax_ignores_words_that_are_not_transferred():
    rng = random.Random(11)
    frames = [[rng.randint(0, 15) for _ in range(6)] for _ in range(30)]
    labels, pulses, last, _ = _run_argmax(2, 4, False, 3, frames, rng, valid_prob=0.4, ready_prob=0.4)
    assert labels == [int(np.argmax(f)) for f in frames]
    assert len(pulses) == len(frames)


@pytest.mark.parametrize("kind,signed", [("bipolar", False), ("ternary", True)])
def test_dataflow_output_signedness_follows_the_last_layer(kind, signed):
    # bipolar x bipolar scores are unsigned popcounts; anything else is a signed dot product
    text = (ROOT / "configs" / "lfc_small.toml").read_text()
    text = text.replace('name = "fc_out"\ntype = "fc"', f'name = "fc_out"\ntype = "fc"\nweight_kind = "{kind}"')
    cfg = netconfig.loads(text)
    top = Dataflow(cfg)
    assert top.out_signed is signed
    assert top.out_width == top.out_elems * top.out_bits
    assert top.out_words * top.out_elems == cfg.layers[-1].out


@pytest.mark.parametrize("pipeline", [0, "max"])
def test_pipelined_dataflow_matches_golden_under_gaps_and_backpressure(pipeline):
    """Pipelining changes the latency only: lfc_small's scores and frame ends under random
    gaps and backpressure (the stall must hold every register stage of every layer)."""
    from qnnfab.sim.amaranth_stream import stream_through
    from qnnfab.packing import pack_words, unpack_fields

    cfg = netconfig.load(ROOT / "configs" / "lfc_small.toml")
    top = Dataflow(cfg, pipeline=pipeline)
    frames = cfg.random_inputs(4, seed=5)
    scores = network_of(cfg).forward(frames).reshape(len(frames), -1)
    first = cfg.layers[0]
    words = pack_words(frames.reshape(-1, first.simd), 1)
    n_out = len(frames) * top.out_words
    run = stream_through(top, words, n_out, 0.7, 0.4, seed=3)
    data_bits = top.out_elems * top.out_bits
    got = np.array([unpack_fields(w & ((1 << data_bits) - 1), [top.out_bits] * top.out_elems, top.out_signed)
                    for w in run.words]).reshape(len(frames), -1)
    np.testing.assert_array_equal(got, scores)
    assert [w >> data_bits for w in run.words] == [int(k % top.out_words == top.out_words - 1)
                                                   for k in range(n_out)]

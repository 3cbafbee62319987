"""Runtime weights: one accelerator build loads networks A, B, A through ``wload``; bad images end in error codes.

Each case builds one ``weights_mode = "runtime"`` accelerator (its Verilog does
not depend on the weights) and, without rebuilding, loads the weights image of
network A (the case's config), runs frames (every output = golden(A), the graph
model :func:`~qnnfab.golden.graph_network.graph_forward`, chains and graphs), loads
network B (the same topology with other random weights and thresholds: every
layer's, a graph's adds and global pools included), runs frames (= golden(B))
and loads A again. The error tests load a truncated image,
wrong headers, an over-long image and an image offered while a frame is in
flight, check the ``wload_error`` code, that the weights are untouched where
the contract says so, and that the next correct load makes the accelerator
usable again.
"""

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly

from qnnfab import netconfig
from qnnfab import weights_image as wi
from qnnfab.packing import unpack_fields
from qnnfab.plan import plan_of
from qnnfab.rtl.dataflow import Dataflow
from qnnfab.sim.stream import (bench_params, bench_random, ProgressWatchdog, run_streams, stall_limit, start,
                               StreamSink, StreamSource, write_metrics)

from qnnfab.sim.configs import config_path
from qnnfab.golden.graph_network import graph_forward

from .network_tb import input_words

NAME = "weights_reload"

# Reduced networks (CI runs every case): binarized MLP, k-bit MLP (int and ternary
# weights, 2-bit activations: signed thresholds, several threshold stages), conv net.
NETS = {
    "lfc_small": None,   # the shipped config, read when a case runs (config_path)
    "kbit": """
[network]
name = "kbit-small"
input_shape = [32]
input_kind = "uint"
input_bits = 2
weights = "random"
seed = 3

[[layer]]
name = "fc0"
type = "fc"
out = 32
act = "uint2"
weight_kind = "int"
weight_bits = 3
pe = 4
simd = 8

[[layer]]
name = "fc1"
type = "fc"
out = 16
act = "uint2"
weight_kind = "ternary"
pe = 2
simd = 4

[[layer]]
name = "fc_out"
type = "fc"
out = 10
act = "acc"
weight_kind = "int"
weight_bits = 2
pe = 5
simd = 8
""",
    "conv": """
[network]
name = "conv-tiny"
input_shape = [8, 8, 3]
input_kind = "int"
input_bits = 4
weights = "random"
seed = 4

[[layer]]
name = "conv0"
type = "conv"
out = 8
kernel = 3
act = "bipolar"
pe = 4
simd = 3

[[layer]]
name = "pool0"
type = "maxpool"
kernel = 2

[[layer]]
name = "fc0"
type = "fc"
out = 16
act = "uint2"
pe = 4
simd = 8

[[layer]]
name = "fc_out"
type = "fc"
out = 10
act = "acc"
pe = 5
simd = 4
""",
    # a residual graph: an identity block, a downsampling block with a 1x1 stride-2 shortcut, global
    # average pooling (the adds' and the pool's thresholds are in the image too)
    "graph": """
[network]
name = "res-small"
input_shape = [4, 4, 2]
input_kind = "uint"
input_bits = 2
weights = "random"
seed = 3

[[layer]]
name = "stem"
type = "conv"
out = 2
act = "uint2"
pad = 1
pe = 2
simd = 2

[[layer]]
name = "c1"
type = "conv"
out = 2
act = "uint2"
pad = 1
pe = 2
simd = 2

[[layer]]
name = "res1"
type = "add"
input = ["c1", "stem"]
act = "uint2"

[[layer]]
name = "c2"
type = "conv"
out = 4
act = "uint2"
stride = 2
pad = 1
pe = 2
simd = 2

[[layer]]
name = "sc2"
type = "conv"
input = "res1"
out = 4
act = "uint2"
kernel = 1
stride = 2
pe = 2
simd = 2

[[layer]]
name = "res2"
type = "add"
input = ["c2", "sc2"]
act = "uint2"
simd = 2

[[layer]]
name = "gap"
type = "global_avgpool"
act = "uint2"
simd = 2

[[layer]]
name = "fc"
type = "fc"
out = 3
act = "acc"
pe = 3
simd = 4
""",
    # channel concatenations: an inception-like mix (a 3x3 and a 1x1 convolution of the stem, of 2 and
    # 4 channels), a stride-2 convolution, a DenseNet-like block (a 3x3 convolution's channels, then
    # those of its input: one branch straight from the fork), global average pooling on words of 3
    # channels (the concat's words of 2 widened). The concats have no weights or thresholds; every
    # other layer's are in the image.
    "concat": """
[network]
name = "concat-small"
input_shape = [4, 4, 2]
input_kind = "uint"
input_bits = 2
weights = "random"
seed = 3

[[layer]]
name = "stem"
type = "conv"
out = 2
act = "uint2"
pad = 1
pe = 2
simd = 2

[[layer]]
name = "i3"
type = "conv"
out = 2
act = "uint2"
pad = 1
pe = 2
simd = 2

[[layer]]
name = "i1"
type = "conv"
input = "stem"
out = 4
act = "uint2"
kernel = 1
pe = 2
simd = 2

[[layer]]
name = "mix"
type = "concat"
input = ["i3", "i1"]
simd = 2

[[layer]]
name = "down"
type = "conv"
out = 4
act = "uint2"
stride = 2
pad = 1
pe = 2
simd = 6

[[layer]]
name = "grow"
type = "conv"
out = 2
act = "uint2"
pad = 1
pe = 2
simd = 4

[[layer]]
name = "dense"
type = "concat"
input = ["grow", "down"]
simd = 2

[[layer]]
name = "gap"
type = "global_avgpool"
act = "uint2"
simd = 3

[[layer]]
name = "fc"
type = "fc"
out = 3
act = "acc"
pe = 3
simd = 6
""",
}

CASES = [{"net": "lfc_small"}, {"net": "kbit"}, {"net": "conv"}, {"net": "graph"}, {"net": "concat"}]
# bench/bench_weights.py passes {"config": <path of a config with random weights>, "reload_only": True,
# "frames": 1}: the A-B-A test alone, on a full-size network, for the load time.


def network(params, which="A"):
    """Network A (the case's config) or B (same topology, other seed) in runtime mode."""
    if "net" in params:
        text = NETS[params["net"]] or config_path(f"{params['net']}.toml").read_text()
    else:
        text = open(params["config"]).read()
    seed = {"A": 101, "B": 202}[which]
    lines = []
    for line in text.splitlines():
        if line.startswith("seed ="):
            line = f"seed = {seed}"
        lines.append(line)
        if line == "[network]":
            lines.append('weights_mode = "runtime"')
    name = params.get("net") or params["config"]
    return netconfig.loads("\n".join(lines) + "\n", ".", f"{name}-{which}")   # random weights


def design(params):
    return Dataflow(network(params, "A"))


def summarize(result):
    m = result.metrics
    return (f"load {m['load_cycles']} cycles for {m['image_words']} image words "
            f"({m['load_cycles'] / m['image_words']:.3f}x the 64-bit port bound); A, B, A and 6 error cases")


def image(cfg):
    return plan_of(cfg, "runtime").image_words()


class Bench:
    def __init__(self, dut, rng):
        self.dut, self.rng = dut, rng
        p = bench_params()
        self.params = p
        self.a, self.b = network(p, "A"), network(p, "B")
        self.top = plan_of(self.a, "runtime")   # its word formats and cycles per layer

    async def load(self, words, *, valid_prob=1.0, last_at=None, frame_words=(), release_frames=None):
        """Stream ``words`` into ``wload`` (``last`` on word ``last_at``, default the final one).

        Returns (error code, cycles from the first word offered to ``wload_done``).
        Checks that ``wload.ready`` is high and that ``wload_done`` pulses once; a
        word offered and not taken for the stall bound fails (:class:`ProgressWatchdog`).
        """
        dut = self.dut
        last_at = len(words) - 1 if last_at is None else last_at
        src = StreamSource(dut, "wload", self.rng, valid_prob)
        src.send([(w & ((1 << 64) - 1)) | ((1 if k == last_at else 0) << 64) for k, w in enumerate(words)])
        watchdog = ProgressWatchdog([src.handshake])
        dones = []
        cycle = 0
        while True:
            await FallingEdge(dut.clk)
            src._drive()
            await ReadOnly()
            watchdog.check(cycle, active=not src.idle)
            if src.offering:
                assert int(dut.wload__ready.value) == 1, f"wload.ready low at cycle {cycle}"
            src._sample(cycle)
            if int(dut.wload_done.value):
                dones.append((cycle, int(dut.wload_error.value)))
            cycle += 1
            if src.idle and (dones or cycle > len(words) * 20 + 50):
                break
        for _ in range(3):  # no second pulse
            await FallingEdge(dut.clk)
            await ReadOnly()
            if int(dut.wload_done.value):
                dones.append((cycle, int(dut.wload_error.value)))
            cycle += 1
        await FallingEdge(dut.clk)
        src.valid.value = 0
        assert len(dones) == 1, f"wload_done pulsed {len(dones)} times ({dones}), expected once"
        return dones[0][1], dones[0][0] + 1

    async def expect_load(self, words, code, **kw):
        err, cycles = await self.load(words, **kw)
        assert err == code, f"wload_error {err} ({wi.WloadError(err).name if err < 6 else '?'}), " \
                            f"expected {code.value} ({code.name})"
        return cycles

    async def frames(self, cfg, n, *, valid_prob=0.7, ready_prob=0.6):
        """Stream ``n`` random frames; every output word must equal golden(cfg)."""
        dut, top = self.dut, self.top
        x = cfg.random_inputs(n, self.rng.getrandbits(32))
        want = graph_forward(cfg, x).reshape(n, -1)
        src = StreamSource(dut, "i", self.rng, valid_prob)
        snk = StreamSink(dut, "o", self.rng, ready_prob)
        src.send(input_words(cfg, x))
        budget = 30 * n * max(c for _, c in top.model) + 5000
        await run_streams(dut, [src], [snk], [n * top.output.words], budget,
                          stall_cycles=stall_limit(sum(c for _, c in top.model)))
        got = np.array([e for w in snk.words for e in unpack_fields(w, [top.output.elem.bits] * top.output.elems,
                                                                       signed=top.output.elem.signed)]).reshape(n, -1)
        for f in range(n):
            if not np.array_equal(got[f], want[f]):
                raise AssertionError(f"network {cfg.source}, frame {f}: hardware {got[f].tolist()}, "
                                     f"golden {want[f].tolist()}")
        return x

    async def drive(self, sources, sinks, until, limit):
        """Clock ``sources``/``sinks`` until ``until()`` holds (checked each cycle), then stop driving."""
        await run_streams(self.dut, sources, sinks, [float("inf")] * len(sinks), limit,
                          until=lambda cycle: until())
        for s in sources:
            assert not s.offering

    def differ(self):
        """A and B must disagree on these frames (else a failed load could pass unseen), and every
        layer's weights and thresholds must differ (a graph's adds and pools have thresholds only)."""
        x = self.a.random_inputs(4, 5)
        ya, yb = graph_forward(self.a, x), graph_forward(self.b, x)
        assert not np.array_equal(ya, yb), "networks A and B give the same outputs: pick other seeds"
        for la, lb in zip(self.a.layers, self.b.layers):
            for what in ("weights", "thresholds"):
                wa, wb = getattr(la, what), getattr(lb, what)
                assert (wa is None) == (wb is None)
                assert wa is None or not np.array_equal(wa, wb), f"{la.name}: A and B have the same {what}"


@cocotb.test()
async def reload_a_b_a_without_rebuilding(dut):
    await start(dut)
    t = Bench(dut, bench_random(1))
    t.differ()
    img_a, img_b = image(t.a), image(t.b)
    assert len(img_a) == len(img_b)
    n = t.params.get("frames", 3)
    cycles = await t.expect_load(img_a, wi.WloadError.OK)
    await t.frames(t.a, n)
    await t.expect_load(img_b, wi.WloadError.OK, valid_prob=0.6)
    await t.frames(t.b, n)
    await t.expect_load(img_a, wi.WloadError.OK)
    await t.frames(t.a, n, valid_prob=1.0, ready_prob=1.0)
    write_metrics(load_cycles=cycles, image_words=len(img_a))


def _reload_only():
    return bool(bench_params().get("reload_only"))


@cocotb.test(skip=_reload_only())
async def truncated_image_is_an_error_and_the_next_load_recovers(dut):
    await start(dut)
    t = Bench(dut, bench_random(2))
    img_a, img_b = image(t.a), image(t.b)
    await t.expect_load(img_a, wi.WloadError.OK)
    # body cut short: B's first half is written, then last
    await t.expect_load(img_b[:len(img_b) // 2], wi.WloadError.TRUNCATED)
    # cut in the header and one word before the end
    await t.expect_load(img_b[:1], wi.WloadError.TRUNCATED)
    await t.expect_load(img_b[:2], wi.WloadError.TRUNCATED)
    await t.expect_load(img_b[:-1], wi.WloadError.TRUNCATED)
    await t.expect_load(img_b, wi.WloadError.OK)
    await t.frames(t.b, 2)


@cocotb.test(skip=_reload_only())
async def wrong_headers_are_refused_and_leave_the_weights_untouched(dut):
    await start(dut)
    t = Bench(dut, bench_random(3))
    img_a, img_b = image(t.a), image(t.b)
    await t.expect_load(img_a, wi.WloadError.OK)
    bad_magic = [img_b[0] ^ 1] + img_b[1:]
    bad_version = [img_b[0] ^ (1 << 33)] + img_b[1:]
    other_net = [img_b[0], img_b[1] ^ (1 << 31)] + img_b[2:]
    bad_length = [img_b[0], img_b[1] + (1 << 32)] + img_b[2:]
    await t.expect_load(bad_magic, wi.WloadError.BAD_HEADER)
    await t.expect_load(bad_version, wi.WloadError.BAD_HEADER, valid_prob=0.5)
    await t.expect_load(other_net, wi.WloadError.WRONG_NETWORK)
    await t.expect_load(bad_length, wi.WloadError.BAD_HEADER)
    await t.frames(t.a, 2)           # B's body never reached the memories
    await t.expect_load(img_b, wi.WloadError.OK)
    await t.frames(t.b, 2)


@cocotb.test(skip=_reload_only())
async def over_long_image_is_an_error_after_a_complete_write(dut):
    await start(dut)
    t = Bench(dut, bench_random(4))
    img_a, img_b = image(t.a), image(t.b)
    await t.expect_load(img_a, wi.WloadError.OK)
    await t.expect_load(img_b + [0xDEAD, 0xBEEF, 7], wi.WloadError.TOO_LONG)
    await t.frames(t.b, 2)           # the body was complete: B is loaded
    # last missing on the final word but present later: same code
    await t.expect_load(img_a + [1], wi.WloadError.TOO_LONG)
    await t.expect_load(img_a, wi.WloadError.OK)
    await t.frames(t.a, 2)


@cocotb.test(skip=_reload_only())
async def load_during_a_frame_is_refused_and_the_frame_completes(dut):
    await start(dut)
    t = Bench(dut, bench_random(5))
    cfg, top = t.a, t.top
    img_a, img_b = image(t.a), image(t.b)
    await t.expect_load(img_a, wi.WloadError.OK)
    x = cfg.random_inputs(1, 9)
    want = graph_forward(cfg, x).reshape(-1)
    words = input_words(cfg, x)
    # first input word of a frame accepted, then an image: refused
    src = StreamSource(dut, "i", t.rng, 1.0)
    snk = StreamSink(dut, "o", t.rng, 0.0)   # hold the output: the frame stays in flight
    slowest = max(c for _, c in top.model)
    src.send(words[:1])
    await t.drive([src], [snk], lambda: src.idle, 20)
    await t.expect_load(img_b, wi.WloadError.BUSY)
    # the rest of the frame; its output is held back by the sink: the frame is still in flight
    src.send(words[1:])
    await t.drive([src], [snk], lambda: src.idle, 20 * len(words) + 100)
    for _ in range(3 * slowest + 50):
        await FallingEdge(dut.clk)
    assert int(dut.o__valid.value) == 1, "the frame's output should be waiting"
    await t.expect_load(img_b, wi.WloadError.BUSY, valid_prob=0.5)
    snk.ready_prob = 1.0
    await run_streams(dut, [src], [snk], [top.output.words], 100 + 30 * slowest)
    got = np.array([e for w in snk.words for e in unpack_fields(w, [top.output.elem.bits] * top.output.elems,
                                                                   signed=top.output.elem.signed)])
    assert np.array_equal(got, want), f"frame during refused loads: {got.tolist()} vs golden(A) {want.tolist()}"
    # idle now: the load is taken
    await t.expect_load(img_b, wi.WloadError.OK)
    await t.frames(t.b, 2)


@cocotb.test(skip=_reload_only())
async def frames_wait_while_a_load_runs(dut):
    """Input offered during a load waits for its end, then computes with the new weights."""
    await start(dut)
    t = Bench(dut, bench_random(6))
    cfg, top = t.b, t.top
    img_a, img_b = image(t.a), image(t.b)
    await t.expect_load(img_a, wi.WloadError.OK)
    x = cfg.random_inputs(2, 3)
    want = graph_forward(cfg, x).reshape(-1)
    wl = StreamSource(dut, "wload", t.rng, 1.0)
    wl.send([w | ((k == len(img_b) - 1) << 64) for k, w in enumerate(img_b)])
    src = StreamSource(dut, "i", t.rng, 1.0)
    snk = StreamSink(dut, "o", t.rng, 1.0)
    src.send(input_words(cfg, x))
    taken_during_load = []

    def watch(cycle):
        if int(dut.i__valid.value) and int(dut.i__ready.value) and not wl.idle:
            taken_during_load.append(cycle)

    await run_streams(dut, [wl, src], [snk], [2 * top.output.words], 30 * (len(img_b) + 4 * max(
        c for _, c in top.model)), monitors=[watch])
    assert not taken_during_load, f"input words taken during the load at cycles {taken_during_load[:5]}"
    got = np.array([e for w in snk.words for e in unpack_fields(w, [top.output.elem.bits] * top.output.elems,
                                                                   signed=top.output.elem.signed)])
    assert np.array_equal(got, want), "frames queued behind a load must use the new weights (golden(B))"

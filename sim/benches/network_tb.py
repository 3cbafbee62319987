"""Whole network (config + weights) frame by frame against the golden forward pass, through the AXI-Stream top."""

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from qnnfab import netconfig
from qnnfab.kinds import DataKind
from qnnfab.plan import plan_of
from qnnfab.rtl.axis_accelerator import AxiStreamAccelerator
from qnnfab.packing import frame_labels, pack_fields, pack_words
from qnnfab.sim.configs import config_path
from qnnfab.sim.stream import (bench_params, bench_random, reset_mid_stream, reset_point,
                               run_streams, stall_limit, StreamSink, StreamSource, write_metrics)
from qnnfab.golden.graph_network import graph_forward

NAME = "network"
CASES = [
    {"config": "lfc_small.toml", "frames": 100},
    {"config": "cnv_small.toml", "frames": 100},
    # every fc/conv with 2 registers in its popcount tree (the config's pipeline, overridden)
    {"config": "lfc_small.toml", "frames": 40, "pipeline": 2},
    # signed scores: 3-bit int weights in the last layer (the arg-max's signed path, sign-extended fields)
    {"config": "lfc_small.toml", "frames": 40, "last_layer": {"weight_kind": "int", "weight_bits": 3}},
    # a graph: two residual blocks (identity and 1x1 stride-2 shortcuts), global average pooling
    {"config": "resnet_tiny.toml", "frames": 24},
    # a graph of channel concatenations (an inception-like mix, a DenseNet-like block), global average pooling
    {"config": "concat_tiny.toml", "frames": 24},
    # every layer's popcount a LUT6_2/CARRY4 compressor tree (the network's popcount), registers in it
    {"config": "lfc_small.toml", "frames": 40, "pipeline": 2, "network": {"popcount": "compressor"}},
]


def load_config(params):
    """The case's network: its config file, with ``params["network"]``'s fields (if any)
    added to its ``[network]`` table and ``params["last_layer"]``'s to the last ``[[layer]]`` table."""
    path = config_path(params["config"])
    extra, network = params.get("last_layer"), params.get("network")
    if not extra and not network:
        return netconfig.load(path)

    def lines(fields):
        return "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in (fields or {}).items())

    text = path.read_text().rstrip("\n") + "\n"
    if network:
        assert text.count("[network]\n") == 1, "one [network] table"
        text = text.replace("[network]\n", "[network]\n" + lines(network))
    return netconfig.loads(text + lines(extra))


def design(params):
    # runtime-weights configs run with constant weights here (loading: the weights_reload regression);
    # a graph's skip FIFOs at the plan's depths, as generate builds them
    cfg = load_config(params)
    return AxiStreamAccelerator(cfg, pipeline=params.get("pipeline"), weights_mode="const")


async def start(dut, reset_cycles=2):
    """Start a 10 ns clock on ``aclk`` and hold ``aresetn`` low for ``reset_cycles``."""
    Clock(dut.aclk, 10, unit="ns").start()
    dut.aresetn.value = 0
    dut.s_axis_tlast.value = 0
    for _ in range(reset_cycles):
        await FallingEdge(dut.aclk)
    dut.aresetn.value = 1


def summarize(result):
    m = result.metrics
    return (f"{m['frames']} frames identical to golden; steady state {m['cycles_per_frame']:.1f} "
            f"cycles/frame vs model {m['model_cycles']} ({m['bottleneck']}), "
            f"{100 * (m['cycles_per_frame'] / m['model_cycles'] - 1):+.2f}%; "
            f"sim {m['sim_frames_per_s']:.1f} frames/s, {m['sim_cycles_per_s']:.0f} cycles/s")


def bench_frames(cfg, params, n, seed):
    """The frames to stream: ``params["inputs"]`` (an .npz with ``x`` of shape
    (B,) + input_shape) when given, else random ones."""
    if params.get("inputs"):
        x = np.load(params["inputs"])["x"]
        if x.shape[1:] != cfg.input_shape:
            raise AssertionError(f"inputs {params['inputs']}: frames of shape {x.shape[1:]}, "
                                 f"the network takes {cfg.input_shape}")
        return x[:n]
    return cfg.random_inputs(n, seed)


def input_words(cfg, frames):
    """Frames -> the Dataflow's input words (its ``i`` port): NHWC order, SIMD elements
    per word, element 0 at the LSBs (also the bytes of ``s_axis_tdata``, before padding)."""
    simd = cfg.layers[0].in_simd
    bits = DataKind.of(cfg.input_kind, cfg.input_bits).width
    return pack_words(frames.reshape(-1, simd), bits)


def frame_lasts(n_frames, words):
    """``tlast`` of a correctly framed stream of ``n_frames`` frames of ``words`` words."""
    return [k % words == words - 1 for k in range(n_frames * words)]


def frame_stall_limit(top):
    """The stall bound of a network bench: a frame's trip through every stage (:func:`stall_limit`)."""
    return stall_limit(sum(c for _, c in top.model))


def check_scores(got, scores, what=""):
    for f in range(len(scores)):
        if not np.array_equal(got[f], scores[f]):
            bad = int(np.nonzero(got[f] != scores[f])[0][0])
            raise AssertionError(f"{what}frame {f}: output {bad} is {got[f][bad]}, golden {scores[f][bad]} "
                                 f"(hardware {got[f].tolist()}, golden {scores[f].tolist()})")


class Watch:
    """Samples label_valid/label, output tlast transfers and the framing error outputs every cycle."""

    def __init__(self, dut):
        self.dut = dut
        self.labels, self.tlast_cycles, self.error_pulses, self.error_level = [], [], [], []
        self.out_valid_after = []

    def __call__(self, cycle):
        d = self.dut
        if int(d.label_valid.value):
            self.labels.append(int(d.label.value))
        if int(d.m_axis_tvalid.value) and int(d.m_axis_tready.value) and int(d.m_axis_tlast.value):
            self.tlast_cycles.append(cycle)
        if int(d.frame_error_pulse.value):
            self.error_pulses.append(cycle)
        self.error_level.append(int(d.frame_error.value))


async def _drain(dut, watch, cycles, start_cycle):
    """Keep the output ready for ``cycles`` more cycles: no word and no label may come."""
    for c in range(cycles):
        await FallingEdge(dut.aclk)
        dut.m_axis_tready.value = 1
        await ReadOnly()
        watch(start_cycle + c)
        if int(dut.m_axis_tvalid.value):
            raise AssertionError(f"an output word after the last frame's (cycle {start_cycle + c})")
    await FallingEdge(dut.aclk)
    dut.m_axis_tready.value = 0


def _ports(dut, rng, valid_prob, ready_prob):
    """The driver of the network's input stream and the sink of its output stream."""
    return (StreamSource(dut, "s_axis", rng, valid_prob, axis=True),
            StreamSink(dut, "m_axis", rng, ready_prob, axis=True))


def _bench(salt):
    """This run's parameters, config, random stream and the design's plan (word
    format and cycles per layer)."""
    p = bench_params()
    cfg = load_config(p)
    return p, cfg, bench_random(salt), plan_of(cfg, "const")


async def _run(dut, frames_n, valid_prob, ready_prob, salt):
    p, cfg, rng, top = _bench(salt)
    frames = bench_frames(cfg, p, frames_n, rng.getrandbits(32))
    frames_n = frames.shape[0]
    scores = graph_forward(cfg, frames).reshape(frames_n, -1)
    labels = frame_labels(scores, cfg.label)
    fmt = top.word_format
    src = StreamSource(dut, "s_axis", rng, valid_prob, axis=True)
    snk = StreamSink(dut, "m_axis", rng, ready_prob, axis=True)
    words = fmt.pack_frames(frames)
    src.send(words, frame_lasts(frames_n, fmt.in_words))
    watch = Watch(dut)
    n_out = frames_n * fmt.out_words
    slowest = max(c for _, c in top.model)
    max_cycles = 20 * frames_n * slowest + 20 * len(words) + 5000
    cycles = await run_streams(dut, [src], [snk], [n_out], max_cycles, clk=dut.aclk, monitors=[watch],
                               stall_cycles=frame_stall_limit(top))
    # no word and no label may follow the last frame's (a frame's worth of cycles and more)
    await _drain(dut, watch, slowest + 64, cycles + 1)
    got = fmt.unpack_scores(snk.words)
    check_scores(got, scores)
    want_last = frame_lasts(frames_n, fmt.out_words)
    if snk.lasts != want_last:
        bad = next(k for k, (a, b) in enumerate(zip(snk.lasts, want_last)) if a != b)
        raise AssertionError(f"m_axis_tlast is {snk.lasts[bad]} on output word {bad}, expected {int(want_last[bad])} "
                             f"({fmt.out_words} words per frame)")
    assert len(watch.tlast_cycles) == frames_n, f"tlast seen {len(watch.tlast_cycles)} times for {frames_n} frames"
    assert watch.labels == labels.tolist(), f"labels {watch.labels[:10]}... vs golden {labels[:10].tolist()}..."
    assert not any(watch.error_level), "frame_error set by correctly framed input"
    return cycles, watch.tlast_cycles, top, watch.labels


@cocotb.test()
async def frames_match_golden_under_random_gaps_and_backpressure(dut):
    await start(dut)
    p = bench_params()
    await _run(dut, max(4, p["frames"] // 5), valid_prob=0.7, ready_prob=0.5, salt=1)


@cocotb.test()
async def badly_framed_inputs_set_the_error_and_the_next_frames_come_out_right(dut):
    """Short frames (tlast early) are completed with zero words, long ones (no tlast on
    the last word) computed from their first words with the rest dropped up to tlast:
    every tlast-ended frame gives one output frame, the later frames stay aligned."""
    await start(dut)
    p, cfg, rng, top = _bench(3)
    fmt = top.word_format
    n = fmt.in_words
    frames = bench_frames(cfg, p, 9, rng.getrandbits(32))
    flat = frames.reshape(len(frames), -1)
    per_word = fmt.in_elems
    # what the accelerator computes for each frame as sent, and how it is sent
    plan = ["ok", "short", "ok", "long", "ok", "short1", "long", "ok", "ok"]
    words, lasts, seen = [], [], []
    for kind, frame in zip(plan, flat):
        fw = fmt.pack_frames(frame[None])
        if kind == "ok":
            sent, eff = fw, frame
        elif kind.startswith("short"):
            if n == 1:
                continue                        # a 1-word frame cannot be short
            k = 1 if kind == "short1" else rng.randrange(1, n)
            sent = fw[:k]                       # k < n words, tlast on the last of them
            eff = frame.copy()
            eff[k * per_word:] = 0              # completed with zero words
        else:
            extra = [rng.getrandbits(8 * fmt.in_bytes) for _ in range(rng.randint(1, 2 * n))]
            sent, eff = fw + extra, frame       # the first n words are the frame
        words += sent
        lasts += [False] * (len(sent) - 1) + [True]
        seen.append((kind, eff))
    eff_frames = np.stack([e for _, e in seen]).reshape((len(seen),) + tuple(cfg.input_shape))
    scores = graph_forward(cfg, eff_frames).reshape(len(seen), -1)
    src = StreamSource(dut, "s_axis", rng, 0.8, axis=True)
    snk = StreamSink(dut, "m_axis", rng, 0.7, axis=True)
    src.send(words, lasts)
    watch = Watch(dut)
    slowest = max(c for _, c in top.model)
    n_out = len(seen) * fmt.out_words
    cycles = await run_streams(dut, [src], [snk], [n_out], 40 * len(seen) * slowest + 20 * len(words) + 5000,
                               clk=dut.aclk, monitors=[watch], stall_cycles=frame_stall_limit(top))
    await _drain(dut, watch, slowest + 64, cycles + 1)
    check_scores(fmt.unpack_scores(snk.words), scores, "badly framed stream: ")
    assert snk.lasts == frame_lasts(len(seen), fmt.out_words)
    bad = sum(1 for k, _ in seen if k != "ok")
    assert len(watch.error_pulses) == bad, f"{len(watch.error_pulses)} frame_error pulses for {bad} bad frames"
    first = watch.error_pulses[0]
    assert not any(watch.error_level[:first]) and all(watch.error_level[first:]), \
        "frame_error must rise with the first error pulse and stay high"
    assert watch.labels == frame_labels(scores, cfg.label).tolist()


@cocotb.test()
async def steady_state_cycles_per_frame_match_the_bottleneck(dut):
    import time
    await start(dut)
    p = bench_params()
    n = p["frames"]
    t0 = time.monotonic()
    cycles, tl, top, labels = await _run(dut, n, 1.0, 1.0, salt=2)
    n = len(tl)
    wall = time.monotonic() - t0
    skip = min(n // 4, 10)  # the pipeline fills during the first frames
    per_frame = (tl[-1] - tl[skip]) / (n - 1 - skip)
    bottleneck, model = max(top.model, key=lambda r: r[1])
    write_metrics(frames=n, cycles_per_frame=per_frame, model_cycles=model, bottleneck=bottleneck,
                  first_frame_latency=tl[0], sim_frames_per_s=n / wall, sim_cycles_per_s=cycles / wall,
                  labels=labels)
    assert abs(per_frame / model - 1) <= 0.02, (
        f"steady state {per_frame:.1f} cycles/frame, bottleneck {bottleneck} model {model}: off by more than 2%")


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    """Reset (aresetn) in the middle of the second or third frame (every layer's buffers
    and FIFOs holding old data, outputs waiting); fresh frames then match the golden
    forward pass word for word, with their labels and tlast, and nothing else."""
    await start(dut)
    p, cfg, rng, top = _bench(3)
    fmt = top.word_format
    old = fmt.pack_frames(cfg.random_inputs(3, rng.getrandbits(32)))
    per = fmt.in_words
    src = StreamSource(dut, "s_axis", rng, 0.7, axis=True)
    snk = StreamSink(dut, "m_axis", rng, 0.5, axis=True)
    src.send(old, frame_lasts(3, per))
    cut = reset_point(rng, per, rng.randint(1, 2))
    where = await reset_mid_stream(dut, [src], [snk], cut, rng, 60 * len(old) + 20000,
                                   clk=dut.aclk, reset=dut.aresetn, active=0, stall_cycles=frame_stall_limit(top))
    await _run(dut, 3, valid_prob=0.7, ready_prob=0.5, salt=4)
    write_metrics(reset_in_flight=where)

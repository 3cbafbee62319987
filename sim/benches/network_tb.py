"""Whole network (config + weights) frame by frame against the golden forward pass."""

from pathlib import Path

import cocotb
import numpy as np

from qnnfab import netconfig
from qnnfab.kinds import DataKind
from qnnfab.rtl.dataflow import Dataflow
from qnnfab.sim.stream import (bench_params, bench_random, pack_fields, reset_mid_stream,
                               reset_point, run_streams, start, StreamSink, StreamSource, unpack_fields,
                               write_metrics)

NAME = "network"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CASES = [
    {"config": "lfc_small.toml", "frames": 100},
    {"config": "cnv_small.toml", "frames": 100},
    # every fc/conv with 2 registers in its popcount tree (the config's pipeline, overridden)
    {"config": "lfc_small.toml", "frames": 40, "pipeline": 2},
]


def config_path(params):
    p = Path(params["config"])
    return p if p.is_absolute() else CONFIGS / p


def design(params):
    # runtime-weights configs run with constant weights here (loading: the weights_reload regression)
    return Dataflow(netconfig.load(config_path(params)), pipeline=params.get("pipeline"), weights_mode="const")


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
    """Frames -> stream words: NHWC order, SIMD elements per word, element 0 at the LSBs."""
    simd = cfg.layers[0].simd
    bits = DataKind.of(cfg.input_kind, cfg.input_bits).width
    flat = frames.reshape(frames.shape[0], -1)
    words = []
    for f in flat:
        for k in range(0, f.size, simd):
            words.append(pack_fields(f[k:k + simd], [bits] * simd))
    return words


def _ports(dut, rng, valid_prob, ready_prob):
    """The driver of the network's input stream and the sink of its output stream."""
    return (StreamSource(dut, "s_axis", rng, valid_prob, axis=True),
            StreamSink(dut, "m_axis", rng, ready_prob, axis=True))


async def _run(dut, frames_n, valid_prob, ready_prob, salt):
    p = bench_params()
    cfg = netconfig.load(config_path(p))
    rng = bench_random(salt)
    frames = bench_frames(cfg, p, frames_n, rng.getrandbits(32))
    frames_n = frames.shape[0]
    golden = cfg.golden()
    scores = golden.forward(frames).reshape(frames_n, -1)
    labels = np.argmax(scores, axis=1)
    top = design(p)  # only for its derived port formats (not elaborated here)
    top._MustUse__silence = True
    src, snk = _ports(dut, rng, valid_prob, ready_prob)
    words = input_words(cfg, frames)
    src.send(words)
    got_labels, tlast_cycles = [], []

    def watch(cycle):
        if int(dut.label_valid.value):
            got_labels.append(int(dut.label.value))
        if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value) and int(dut.m_axis_tlast.value):
            tlast_cycles.append(cycle)

    n_out = frames_n * top.out_words
    max_cycles = 20 * frames_n * max(c for _, c in top.model) + 20 * len(words) + 5000
    cycles = await run_streams(dut, [src], [snk], [n_out], max_cycles, monitors=[watch])
    for extra in range(1, 4):  # no label may follow the last frame's
        await cocotb.triggers.FallingEdge(dut.clk)
        await cocotb.triggers.ReadOnly()
        watch(cycles + extra)
    got = np.array([e for w in snk.words for e in unpack_fields(w, [top.out_bits] * top.out_elems,
                                                                   signed=top.out_signed)])
    got = got.reshape(frames_n, -1)
    for f in range(frames_n):
        if not np.array_equal(got[f], scores[f]):
            bad = int(np.nonzero(got[f] != scores[f])[0][0])
            raise AssertionError(f"frame {f}: output {bad} is {got[f][bad]}, golden {scores[f][bad]} "
                                 f"(hardware {got[f].tolist()}, golden {scores[f].tolist()})")
    assert len(tlast_cycles) == frames_n, f"tlast seen {len(tlast_cycles)} times for {frames_n} frames"
    assert got_labels == labels.tolist(), f"labels {got_labels[:10]}... vs golden {labels[:10].tolist()}..."
    return cycles, tlast_cycles, top, got_labels


@cocotb.test()
async def frames_match_golden_under_random_gaps_and_backpressure(dut):
    await start(dut)
    p = bench_params()
    await _run(dut, max(4, p["frames"] // 5), valid_prob=0.7, ready_prob=0.5, salt=1)


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
    """Reset in the middle of the second or third frame (every layer's buffers and
    FIFOs holding old data, outputs waiting); fresh frames then match the golden
    forward pass word for word, with their labels and tlast, and nothing else."""
    await start(dut)
    p = bench_params()
    cfg = netconfig.load(config_path(p))
    rng = bench_random(3)
    old = input_words(cfg, cfg.random_inputs(3, rng.getrandbits(32)))
    per = len(old) // 3
    src, snk = _ports(dut, rng, 0.7, 0.5)
    src.send(old)
    cut = reset_point(rng, per, rng.randint(1, 2))
    where = await reset_mid_stream(dut, [src], [snk], cut, rng, 60 * len(old) + 20000)
    await _run(dut, 3, valid_prob=0.7, ready_prob=0.5, salt=4)
    write_metrics(reset_in_flight=where)

"""Characterisation runs of a residual block's long branch, and a deadlock watch, on Amaranth's simulator.

:func:`fork_branch_schedule` runs a :class:`~qnnfab.rtl.stream_fork.StreamFork`
and the long branch alone (no skip FIFO, no join: the fork's skip output is
always ready, the branch's output is always taken) and returns the schedule
:func:`qnnfab.fifo_sizing.skip_fifo_depth` reads: the cycle of every fork
input transfer and of every branch output transfer (the join takes a word
as soon as both branches offer it, and the skip word is there first).
:func:`starved_schedule` feeds the branch alone one word at a time and returns
its need and latency. :func:`skip_depths` runs both and computes the three
depths of :mod:`qnnfab.fifo_sizing`.

:func:`deadlock_watch` is a monitor for :func:`~qnnfab.sim.amaranth_stream.run_streams`
over named streams of a design: when no stream has moved a word for
``quiet`` cycles it raises :class:`StreamDeadlock`, naming the streams that
hold a word nobody takes and the ones that have nothing to offer.
:func:`run_residual_block` runs a whole :class:`~qnnfab.rtl.residual_block.ResidualBlock`
under that watch, :func:`run_dataflow` a whole network's
:class:`~qnnfab.rtl.dataflow.Dataflow` (graphs included), watching the input of every stage.
"""

import random
from dataclasses import dataclass

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.fifo_sizing import deadlock_depth, repeat_frames, skip_fifo_depth, throughput_depth
from qnnfab.packing import unpack_words
from qnnfab.plan import plan_of
from qnnfab.rtl.dataflow import StageChain, input_ports, stage_component
from qnnfab.rtl.stream_fork import StreamFork

from .amaranth_stream import StreamSink, StreamSource, run_streams

__all__ = ["ForkedBranch", "fork_branch_schedule", "starved_schedule", "SkipDepths", "skip_depths", "StreamDeadlock",
           "deadlock_watch", "run_residual_block", "dataflow_streams", "run_dataflow",
           "graph_skip_depths", "graph_throughput_depths", "CHARACTERISATION_CYCLES"]


class ForkedBranch(wiring.Component):
    """``i`` -> fork -> ``branch`` -> ``o``, the fork's second output on ``skip``."""

    def __init__(self, branch):
        layout = branch.i.payload.shape()
        self.fork, self.branch = StreamFork(layout, 2), branch
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(branch.o.payload.shape())),
            "skip": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fork, m.submodules.branch = self.fork, self.branch
        wiring.connect(m, wiring.flipped(self.i), self.fork.i)
        wiring.connect(m, self.fork.o[0], self.branch.i)
        wiring.connect(m, self.branch.o, wiring.flipped(self.o))
        wiring.connect(m, self.fork.o[1], wiring.flipped(self.skip))
        return m


def fork_branch_schedule(branch, words, n_out, *, valid_prob=1.0, seed=0):
    """Send ``words`` (raw input words, several frames) through fork + ``branch`` alone; return
    ``(fork_cycles, join_cycles)``: the fork's input transfers and the branch's ``n_out`` output
    transfers. ``valid_prob`` < 1 offers the input with seeded random gaps (an upstream producer)."""
    dut = ForkedBranch(branch)
    rng = random.Random(seed)
    src = StreamSource(dut.i, words, valid_prob=valid_prob, rng=rng, name="i")
    out = StreamSink(dut.o, name="branch")
    skip = StreamSink(dut.skip, name="skip")
    run_streams(dut, [src], [out, skip], [n_out, len(words)], max_cycles=100 * (len(words) + n_out) + 1000,
                timing_only=True)
    return list(src.sent_cycles), list(out.cycles)


class StreamDeadlock(AssertionError):
    """No stream of a design moved for a while; the message names what waits on what."""


def deadlock_watch(streams, quiet=200):
    """A ``run_streams`` monitor over ``streams`` (``{name: stream interface}``): raises
    :class:`StreamDeadlock` when none of them transfers a word for ``quiet`` cycles."""
    last = {"cycle": 0}

    def monitor(ctx, cycle):
        state = {n: (ctx.get(s.valid), ctx.get(s.ready)) for n, s in streams.items()}
        if any(v and r for v, r in state.values()):
            last["cycle"] = cycle
        elif cycle - last["cycle"] >= quiet:
            full = [n for n, (v, r) in state.items() if v and not r]
            empty = [n for n, (v, r) in state.items() if not v]
            raise StreamDeadlock(f"deadlock: no word moved since cycle {last['cycle']}; holding a word nobody "
                                 f"takes: {', '.join(full) or 'none'}; "
                                 f"waiting for a word: {', '.join(empty) or 'none'}")
    return monitor


def run_residual_block(block, words, n_out, *, quiet=200, max_cycles=200_000):
    """Send ``words`` through ``block`` (a :class:`~qnnfab.rtl.residual_block.ResidualBlock`), input
    always offered, output always taken; return ``(output words, fork input cycles, output
    cycles)``, or raise :class:`StreamDeadlock` naming its streams ("fork input", "branch
    input", "skip FIFO input", "branch output", "skip FIFO output", "block output")."""
    src, snk = StreamSource(block.i, words, name="i"), StreamSink(block.o, name="o")
    streams = {"fork input": block.fork.i, "branch input": block.fork.o[0], "skip FIFO input": block.fork.o[1],
               "branch output": block.join.a, "skip FIFO output": block.join.b, "block output": block.o}
    run_streams(block, [src], [snk], [n_out], max_cycles=max_cycles, extra_cycles=5,
                monitors=[deadlock_watch(streams, quiet)])
    if len(snk.words) != n_out:
        raise AssertionError(f"{len(snk.words) - n_out} words after the {n_out} expected")
    return list(snk.words), list(src.sent_cycles), list(snk.cycles)


CHARACTERISATION_CYCLES = 100_000   # the most cycles a characterisation may simulate (Amaranth: about a minute)


def graph_skip_depths(cfg, frames=3, seed=0, *, quiet=64, limit=CHARACTERISATION_CYCLES):
    """``{fifo stage name: SkipDepths}`` of every add of graph config ``cfg`` whose one input is a FIFO
    straight from the fork (an identity shortcut): the other path (its stages from the plan) is
    characterised alone (:func:`skip_depths`) over ``frames`` frames of random words. Adds only:
    :func:`skip_depths` models a join taking word k of both inputs together, not a concat taking one
    input's words of a pixel, then the other's (its depths: ``bench/bench_skip_depths.py``'s bisection
    on the whole graph). Adds whose both paths compute, and those whose characterisation would
    simulate more than ``limit`` cycles (``frames`` frames at the path's slowest stage, then
    ``quiet`` cycles per word of the starved run), are left out: their plan depth stands."""
    plan = plan_of(cfg, "const")
    rng = random.Random(seed)
    found = {}
    for join in (s for s in plan.stages if s.kind == "add"):
        fork, a, b = plan.join_paths(join.name)
        for short, long in ((a, b), (b, a)):
            if len(short) != 1 or short[0].kind != "fifo":
                continue
            if frames * max(s.cycles for s in long) + quiet * fork.o.words > limit:
                continue
            width = fork.o.width
            words = [rng.getrandbits(width) for _ in range(frames * fork.o.words)]
            found[short[0].name] = skip_depths(lambda: StageChain([(f"stage{k}", stage_component(plan, s))
                                                              for k, s in enumerate(long)]),
                                               words, frames, quiet=quiet)
    return found


def graph_throughput_depths(cfg):
    """``{fifo stage name: depth}``: the characterised throughput-keeping depth of every identity
    shortcut's FIFO (:func:`graph_skip_depths`), for :func:`qnnfab.plan.plan_of`'s ``skip_depths``;
    empty for a chain."""
    if not cfg.is_graph:
        return {}
    return {name: d.throughput for name, d in graph_skip_depths(cfg).items()}


def dataflow_streams(dataflow):
    """``{name: stream}`` of every stage input of a :class:`~qnnfab.rtl.dataflow.Dataflow`: ``"<stage>
    input"`` (``"<stage> input a"`` / ``"b"`` of a join), and ``"output"``."""
    streams = {}
    for _, name, comp in dataflow.stages:
        ports = input_ports(comp)
        for port, suffix in zip(ports, (" a", " b") if len(ports) == 2 else ("",)):
            streams[f"{name} input{suffix}"] = port
    streams["output"] = dataflow.o
    return streams


def run_dataflow(dataflow, frames, *, quiet=300, max_cycles=500_000):
    """Send ``frames`` (stored input values, (B,) + input shape) through ``dataflow`` on Amaranth's
    simulator, input always offered, output always taken; return ``(scores (B, outputs), output
    cycles)``, or raise :class:`StreamDeadlock` naming the stage inputs that hold a word nobody
    takes (:func:`dataflow_streams`)."""
    fmt = dataflow.plan.word_format
    words = fmt.pack_frames(frames)
    n_out = len(frames) * fmt.out_words
    src, snk = StreamSource(dataflow.i, words, name="i"), StreamSink(dataflow.o, name="o")
    run_streams(dataflow, [src], [snk], [n_out], max_cycles=max_cycles, extra_cycles=5,
                monitors=[deadlock_watch(dataflow_streams(dataflow), quiet)])
    if len(snk.words) != n_out:
        raise AssertionError(f"{len(snk.words) - n_out} words after the {n_out} expected")
    data = [int(w) & ((1 << (fmt.out_elems * fmt.out_bits)) - 1) for w in snk.words]
    scores = unpack_words(data, fmt.out_elems, fmt.out_bits, fmt.out_signed)
    return scores.reshape(len(frames), -1), list(snk.cycles)


def starved_schedule(branch, words, n_out, *, quiet=64):
    """Send ``words`` into ``branch`` alone one at a time, each once nothing has moved for ``quiet``
    cycles (output always taken); return ``(need, latency)``: per output word k, the input words
    taken before it came out, and the cycles from the last of them being taken to k coming out."""
    rng = random.Random(0)
    src = StreamSource(branch.i, [], rng=rng, name="i")
    out = StreamSink(branch.o, name="o")
    state = {"next": 0, "moved": 0}

    def feed(ctx, cycle):
        if src.idle and state["next"] < len(words) and cycle - state["moved"] >= quiet:
            src.send([words[state["next"]]])
            state["next"] += 1

    def watch(ctx, cycle):
        if (src.sent_cycles and src.sent_cycles[-1] == cycle) or (out.cycles and out.cycles[-1] == cycle):
            state["moved"] = cycle

    run_streams(branch, [src], [out], [n_out], max_cycles=(quiet + 50) * (len(words) + n_out) + 1000,
                drivers=[feed], monitors=[watch], timing_only=True)
    taken = src.sent_cycles
    need = [sum(1 for c in taken if c < o) for o in out.cycles]
    latency = [o - taken[n - 1] for o, n in zip(out.cycles, need)]
    return need, latency


@dataclass(frozen=True)
class SkipDepths:
    """Computed skip FIFO depths of a residual block (:mod:`qnnfab.fifo_sizing`): the least that does not
    deadlock, the least that keeps the cycles per frame, the least that keeps the whole schedule."""
    deadlock: int
    throughput: int
    schedule: int


def skip_depths(make_branch, words, frames, *, quiet=64):
    """The :class:`SkipDepths` of a block whose long branch ``make_branch()`` builds (a fresh one per
    run), from two characterisation runs of it alone: fork + branch over ``words`` (``frames`` frames,
    input always offered) and the branch starved on the first frame."""
    per_in = len(words) // frames
    fork_cycles, join_cycles = fork_branch_schedule(make_branch(), words, len(words))
    per_out = len(join_cycles) // frames
    need, latency = starved_schedule(make_branch(), words[:per_in], per_out, quiet=quiet)
    needs = repeat_frames(need, per_in, frames)
    return SkipDepths(deadlock_depth(needs), throughput_depth(fork_cycles, join_cycles, needs, min(latency), frames),
                      skip_fifo_depth(fork_cycles, join_cycles))

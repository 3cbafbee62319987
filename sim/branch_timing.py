"""Characterisation runs of a residual block's long branch, and a deadlock watch, on Amaranth's simulator.

:func:`fork_branch_schedule` runs a :class:`~qnnfab.rtl.stream_fork.StreamFork`
and the long branch alone (no skip FIFO, no join: the fork's skip output is
always ready, the branch's output is always taken) and returns the schedule
:func:`qnnfab.fifo_sizing.skip_fifo_depth` reads: the cycle of every fork
input transfer and of every branch output transfer (the join takes a word
as soon as both branches offer it, and the skip word is there first).

:func:`deadlock_watch` is a monitor for :func:`~qnnfab.sim.amaranth_stream.run_streams`
over named streams of a design: when no stream has moved a word for
``quiet`` cycles it raises :class:`StreamDeadlock`, naming the streams that
hold a word nobody takes and the ones that have nothing to offer.
:func:`run_residual_block` runs a whole :class:`~qnnfab.rtl.residual_block.ResidualBlock`
under that watch.
"""

import random

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.rtl.stream_fork import StreamFork

from .amaranth_stream import StreamSink, StreamSource, run_streams

__all__ = ["ForkedBranch", "fork_branch_schedule", "StreamDeadlock", "deadlock_watch", "run_residual_block"]


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
    run_streams(dut, [src], [out, skip], [n_out, len(words)], max_cycles=100 * (len(words) + n_out) + 1000)
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

"""Stream fork: every word of one stream delivered to several consumers."""

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import check_int

__all__ = ["StreamFork"]


class StreamFork(wiring.Component):
    """Copies a stream to ``n`` outputs; each output may stall on its own.

    Parameters
    ----------
    shape : shape-castable
        The payload shape (an int ``k`` means ``unsigned(k)``).
    n : int
        Outputs, >= 2.

    Ports
    -----
    i : stream of ``shape``.
    o : ``n`` streams of ``shape`` (``o[k]``); every input word comes out of
        each of them once, in input order. ``o[k].valid`` is a register
        (independent of every ready); the word stays on ``o[k]`` until
        ``o[k]`` takes it, whatever the other outputs do.

    Timing: one register holds the word being delivered, with one
    outstanding bit per output. ``i.ready`` is high when every output has
    taken the held word or takes it in this cycle, so a word taken at a
    clock edge is offered on every output from the next cycle (latency 1)
    and the fork runs at one word per cycle while all outputs are ready. An
    output that stalls stalls the input after at most the held word: no
    word is lost or duplicated, and a consumer that waits for the other
    branch needs a FIFO on its own side (a skip path's FIFO, sized by
    :mod:`qnnfab.fifo_sizing`).
    """

    def __init__(self, shape, n=2):
        width = shape if isinstance(shape, int) else Shape.cast(shape).width
        check_int("StreamFork", "width", width, 1)
        check_int("StreamFork", "n", n, 2, "a fork has at least two consumers")
        self.shape, self.n = shape, n
        self.latency = 1
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)).array(n),
        })

    def elaborate(self, platform):
        m = Module()
        outstanding = [Signal(name=f"outstanding{k}") for k in range(self.n)]
        free = [~outstanding[k] | self.o[k].ready for k in range(self.n)]
        take = Signal()
        all_free = free[0]
        for f in free[1:]:
            all_free = all_free & f
        m.d.comb += [self.i.ready.eq(all_free), take.eq(self.i.valid & self.i.ready)]
        held = Signal.like(self.i.payload)
        for k in range(self.n):
            m.d.comb += [self.o[k].valid.eq(outstanding[k]), self.o[k].payload.eq(held)]
            with m.If(self.o[k].ready):
                m.d.sync += outstanding[k].eq(0)
        with m.If(take):
            m.d.sync += held.eq(self.i.payload)
            m.d.sync += [b.eq(1) for b in outstanding]
        return m

"""Stream FIFO: ``amaranth.lib.fifo.SyncFIFOBuffered`` behind stream ports."""

from amaranth.hdl import Module, Shape
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from qnnfab.errors import check_int

__all__ = ["StreamFIFO"]


class StreamFIFO(wiring.Component):
    """First-in first-out buffer between two streams of words of one shape.

    Parameters
    ----------
    shape : shape-castable
        The payload shape, e.g. ``lanes(unsigned(1), 64)`` (an int ``n`` means
        ``unsigned(n)``); ``self.width`` is its width in bits, >= 1.
    depth : int
        Words held in the FIFO memory, >= 2, plus one in the output register
        (``SyncFIFOBuffered(depth + 1)``: a buffered FIFO of depth d keeps d-1
        words in memory, and one of depth 2 alternates between full and empty,
        halving the throughput).

    Ports
    -----
    i : stream of ``shape``; ``i.ready`` = not full.
    o : stream of ``shape``, words in the order they came in; ``o.valid`` = not empty, registered,
        independent of ``o.ready``; the head word stays until taken.

    Timing: a word written into an empty FIFO is offered 2 cycles later; one
    word per cycle in and out.
    """

    def __init__(self, shape, depth):
        width = Shape.cast(shape).width if not isinstance(shape, int) else shape
        check_int("StreamFIFO", "width", width, 1)
        check_int("StreamFIFO", "depth", depth, 2)
        self.shape, self.width, self.depth = shape, width, depth
        self.latency = 2
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.width, depth=self.depth + 1)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload),
            fifo.w_en.eq(self.i.valid),
            self.i.ready.eq(fifo.w_rdy),
            self.o.payload.eq(fifo.r_data),
            self.o.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o.ready),
        ]
        return m

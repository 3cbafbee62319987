"""Stream FIFO: ``amaranth.lib.fifo.SyncFIFOBuffered`` behind stream ports."""

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from qnnfab.errors import check_int

__all__ = ["StreamFIFO"]


class StreamFIFO(wiring.Component):
    """First-in first-out buffer between two streams of ``width``-bit words.

    Parameters
    ----------
    width : int
        Payload bits, >= 1.
    depth : int
        Words held in the FIFO memory, >= 2, plus one in the output register
        (``SyncFIFOBuffered(depth + 1)``: a buffered FIFO of depth d keeps d-1
        words in memory, and one of depth 2 alternates between full and empty,
        halving the throughput).

    Ports
    -----
    i : stream of ``unsigned(width)``; ``i.ready`` = not full.
    o : stream of ``unsigned(width)``; ``o.valid`` = not empty, registered,
        independent of ``o.ready``; the head word stays until taken.

    Timing: a word written into an empty FIFO is offered 2 cycles later; one
    word per cycle in and out.
    """

    def __init__(self, width, depth):
        check_int("StreamFIFO", "width", width, 1)
        check_int("StreamFIFO", "depth", depth, 2)
        self.width, self.depth = width, depth
        self.latency = 2
        super().__init__({
            "i": In(stream.Signature(unsigned(width))),
            "o": Out(stream.Signature(unsigned(width))),
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

"""Bus words from memory -> the 64-bit words of a weights image (Dataflow's ``wload``)."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["WeightWords"]


class WeightWords(wiring.Component):
    """Splits (bus 128) or gathers (bus 32) bus words into 64-bit image words.

    ``words`` (held during the load) is the image's length in 64-bit words;
    ``start`` (one cycle, before the first word) restarts the count. ``i``
    takes the ``ceil(8 * words / bus bytes)`` bus words read from the image
    (little endian: the first image word at the LSBs of the first bus word),
    ``o`` gives ``words`` words with ``last`` on the final one; the unused
    upper half of a 128-bit bus word after the final image word is dropped.
    One image word per cycle at bus 64 and 128 (no latency), one per two
    bus words at bus 32 (valid the cycle after the second arrives).
    """

    def __init__(self, bus_bits, count_width=32):
        if bus_bits not in (32, 64, 128):
            raise ValueError(f"bus_bits must be 32, 64 or 128, not {bus_bits!r}")
        self.bus_bits, self.count_width = bus_bits, count_width
        super().__init__({
            "start": In(1), "words": In(count_width),
            "i": In(stream.Signature(bus_bits)),
            "o": Out(stream.Signature(data.StructLayout({"data": unsigned(64), "last": unsigned(1)}))),
        })

    def elaborate(self, platform):
        m = Module()
        count = Signal(self.count_width)
        last = Signal()
        m.d.comb += [last.eq(count == self.words - 1), self.o.payload.last.eq(last)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += count.eq(count + 1)
        if self.bus_bits == 64:
            m.d.comb += [self.o.payload.data.eq(self.i.payload), self.o.valid.eq(self.i.valid),
                         self.i.ready.eq(self.o.ready)]
        elif self.bus_bits == 128:
            half = Signal()
            m.d.comb += [
                self.o.payload.data.eq(Mux(half, self.i.payload[64:], self.i.payload[:64])),
                self.o.valid.eq(self.i.valid),
                self.i.ready.eq(self.o.ready & (half | last)),
            ]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += half.eq(~half & ~last)
            with m.If(self.start):
                m.d.sync += half.eq(0)
        else:
            low = Signal(32)
            have_low, full = Signal(), Signal()
            buf = Signal(64)
            m.d.comb += [self.o.payload.data.eq(buf), self.o.valid.eq(full),
                         self.i.ready.eq(~full | self.o.ready)]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += full.eq(0)
            with m.If(self.i.valid & self.i.ready):
                with m.If(have_low):
                    m.d.sync += [buf.eq(low | (self.i.payload << 32)), full.eq(1), have_low.eq(0)]
                with m.Else():
                    m.d.sync += [low.eq(self.i.payload), have_low.eq(1)]
            with m.If(self.start):
                m.d.sync += [have_low.eq(0), full.eq(0)]
        with m.If(self.start):
            m.d.sync += count.eq(0)
        return m

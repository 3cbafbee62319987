"""Stream width converter: regroups a stream of IN-element words into OUT-element words.

Used between two dataflow stages when one layer's PE (elements per output
word) differs from the next layer's SIMD (elements per input word), in the
role of FINN's StreamingDataWidthConverter.
"""

from amaranth.hdl import Module, Mux, Shape, ShapeCastable, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import check_int

from .lanes import lanes

__all__ = ["WidthConverter"]


class WidthConverter(wiring.Component):
    """Regroup elements from ``in_elems`` to ``out_elems`` per word.

    The element order is preserved: elements leave in the order they came in,
    ``payload[0]`` of a word first.

    Parameters
    ----------
    in_elems, out_elems : int
        Elements per input and per output word (>= 1).
    bits : int or shape-castable
        The element shape (an int ``b`` means ``unsigned(b)``); ``self.bits``
        is its width, ``self.shape`` the shape.
    name : str
        Layer or link name used in error messages.

    Ports
    -----
    i : stream of ``lanes(self.shape, in_elems)`` (:mod:`qnnfab.rtl.lanes`)
    o : stream of ``lanes(self.shape, out_elems)``

    Timing
    ------
    A buffer of ``in_elems + out_elems`` elements. ``o.valid`` is high whenever
    the buffer holds at least ``out_elems`` elements (a registered condition,
    independent of ``o.ready``); an input word is accepted when it fits after
    the output transfer of the same cycle, so with ``o`` stalled from empty it
    takes ``(in_elems + out_elems) // in_elems`` input words, then holds
    ``i.ready`` low. Steady-state throughput is
    ``min(1, out/in)`` input words and ``min(1, in/out)`` output words per
    cycle, the rate of the wider side. Latency one cycle (also when
    ``in_elems == out_elems``, where it is a plain register stage; the
    dataflow generator leaves it out in that case).
    """

    def __init__(self, in_elems, out_elems, bits, name="width_converter"):
        shape = bits
        if not isinstance(shape, (Shape, ShapeCastable)):
            check_int(name, "bits", shape, 1)      # a plain width (refuses floats, strings, bools)
        bits = Shape.cast(shape).width
        for field, v in (("in_elems", in_elems), ("out_elems", out_elems), ("bits", bits)):
            check_int(name, field, v, 1)
        self.in_elems, self.out_elems, self.bits = in_elems, out_elems, bits
        self.shape = Shape.cast(shape)
        self.capacity = in_elems + out_elems
        super().__init__({
            "i": In(stream.Signature(lanes(self.shape, in_elems))),
            "o": Out(stream.Signature(lanes(self.shape, out_elems))),
        })

    def elaborate(self, platform):
        m = Module()
        ie, oe, b, cap = self.in_elems, self.out_elems, self.bits, self.capacity
        buf = Signal(cap * b)
        count = Signal(range(cap + 1))
        m.d.comb += [
            self.o.valid.eq(count >= oe),
            Value.cast(self.o.payload).eq(buf[:oe * b]),
        ]
        take = Signal()  # output transfer this cycle
        m.d.comb += take.eq(self.o.valid & self.o.ready)
        after = Signal(range(cap + 1))  # elements left after the output transfer
        m.d.comb += after.eq(Mux(take, count - oe, count))
        m.d.comb += self.i.ready.eq(after + ie <= cap)
        put = Signal()
        m.d.comb += put.eq(self.i.valid & self.i.ready)

        shifted = Signal(cap * b)
        m.d.comb += shifted.eq(Mux(take, buf >> (oe * b), buf))
        # write the input word at element position `after`
        nxt = Signal(cap * b)
        m.d.comb += nxt.eq(shifted)
        with m.If(put):
            with m.Switch(after):
                for pos in range(cap - ie + 1):
                    with m.Case(pos):
                        m.d.comb += nxt[pos * b:(pos + ie) * b].eq(Value.cast(self.i.payload))
        m.d.sync += [
            buf.eq(nxt),
            count.eq(after + Mux(put, ie, 0)),
        ]
        return m

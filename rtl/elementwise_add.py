"""Element-wise addition of two streams (the join of a residual block), and the add + thresholds.

The counterpart of :func:`qnnfab.golden.graph.elementwise_add` (and of
:func:`qnnfab.golden.threshold.multithreshold` on the sum for
:class:`ResidualAdd`).
"""

from amaranth.hdl import Module, Shape, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import check_int

from .dot_product import range_shape
from .lanes import lanes
from .threshold import Threshold, connect_threshold_load, threshold_load_port

__all__ = ["ElementwiseAdd", "ResidualAdd", "shape_range", "sum_shape"]


def shape_range(shape):
    """(lo, hi) of the integers of an Amaranth ``signed(k)`` / ``unsigned(k)`` shape."""
    s = Shape.cast(shape)
    return (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)


def sum_shape(a_shape, b_shape):
    """The narrowest shape holding every sum of an ``a_shape`` and a ``b_shape`` integer."""
    (alo, ahi), (blo, bhi) = shape_range(a_shape), shape_range(b_shape)
    return range_shape(alo + blo, ahi + bhi)


class ElementwiseAdd(wiring.Component):
    """Joins two streams word by word and adds them lane by lane.

    Parameters
    ----------
    a_shape, b_shape : shape-castable
        Element shapes of the two inputs (``signed(k)`` / ``unsigned(k)``;
        stored integers are added, so a bipolar bit counts as 0 or 1).
    n : int
        Lanes (elements) per word, equal on both inputs and the output.

    Ports
    -----
    a : stream of ``lanes(a_shape, n)``; b : stream of ``lanes(b_shape, n)``.
    o : stream of ``lanes(sum_shape(a_shape, b_shape), n)``: lane j of output
        word k is lane j of ``a`` word k plus lane j of ``b`` word k; the
        width is derived from both ranges, so the sum never overflows.

    Timing: a pair is taken in a cycle where both inputs are valid and the
    output register is empty or taken (``a.ready = b.valid & (~o.valid |
    o.ready)``, and symmetrically): neither input is taken without the other.
    Latency 1; one word per cycle.
    """

    def __init__(self, a_shape, b_shape, n):
        check_int("ElementwiseAdd", "n", n, 1)
        self.a_shape, self.b_shape, self.n = Shape.cast(a_shape), Shape.cast(b_shape), n
        self.out_shape = sum_shape(a_shape, b_shape)
        self.latency = 1
        super().__init__({
            "a": In(stream.Signature(lanes(a_shape, n))),
            "b": In(stream.Signature(lanes(b_shape, n))),
            "o": Out(stream.Signature(lanes(self.out_shape, n))),
        })

    def elaborate(self, platform):
        m = Module()
        advance = ~self.o.valid | self.o.ready
        m.d.comb += [self.a.ready.eq(advance & self.b.valid), self.b.ready.eq(advance & self.a.valid)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.a.valid & self.b.valid & advance):
            m.d.sync += self.o.valid.eq(1)
            m.d.sync += [self.o.payload[j].eq(self.a.payload[j] + self.b.payload[j]) for j in range(self.n)]
        return m


class ResidualAdd(wiring.Component):
    """:class:`ElementwiseAdd` followed by a :class:`~qnnfab.rtl.threshold.Threshold` (the
    requantization of the sum).

    Parameters: ``a_shape``, ``b_shape``, ``pe`` (lanes per word) as
    :class:`ElementwiseAdd`; ``thresholds`` (C, N) integers sorted ascending
    per row, on the sum of the stored integers, channel ``c`` of a pixel in
    lane ``c % pe`` of the pixel's word ``c // pe`` (``pe`` divides C).

    Ports: ``a``, ``b`` as :class:`ElementwiseAdd`; ``o``: stream of
    ``lanes(unsigned(n), pe)``, n = bit_length(N): the number of thresholds
    each sum is >= to. With ``runtime``: the threshold unit's RAMs and its
    ``load`` port (:class:`~qnnfab.rtl.threshold.Threshold`, :attr:`memory_groups`).

    Timing: latency 1 + the threshold unit's ``n + 1``; one word per cycle.
    """

    def __init__(self, a_shape, b_shape, thresholds, *, pe, runtime=False, name="residual add"):
        check_int(name, "pe", pe, 1)
        self.add = ElementwiseAdd(a_shape, b_shape, pe)
        s = self.add.out_shape
        self.threshold = Threshold(thresholds, pe=pe, in_width=s.width, in_signed=s.signed, runtime=runtime,
                                   name=name)
        self.pe, self.out_bits = pe, self.threshold.out_bits
        self.memory_groups = self.threshold.memory_groups
        self.latency = self.add.latency + self.threshold.latency
        super().__init__({
            "a": In(stream.Signature(lanes(a_shape, pe))),
            "b": In(stream.Signature(lanes(b_shape, pe))),
            "o": Out(stream.Signature(lanes(unsigned(self.out_bits), pe))),
            **threshold_load_port(self.threshold),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.add = self.add
        m.submodules.threshold = self.threshold
        wiring.connect(m, wiring.flipped(self.a), self.add.a)
        wiring.connect(m, wiring.flipped(self.b), self.add.b)
        wiring.connect(m, self.add.o, self.threshold.i)
        wiring.connect(m, self.threshold.o, wiring.flipped(self.o))
        connect_threshold_load(m, self, self.threshold)
        return m

"""Channel concatenation of two NHWC streams of the same height and width."""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError, check_int

from .lanes import lanes

__all__ = ["ChannelConcat"]


class ChannelConcat(wiring.Component):
    """Concatenates the channels of two maps, pixel by pixel: the counterpart of
    :func:`qnnfab.golden.graph.concat_channels`.

    Parameters
    ----------
    a_words, b_words : int
        Words per pixel of each input (its channels / SIMD).
    shape : shape-castable
        The element shape of both inputs and the output.
    simd : int
        Elements per word, equal on both inputs and the output.

    Ports
    -----
    a, b : streams of ``lanes(shape, simd)``, NHWC raster order.
    o : stream of ``lanes(shape, simd)``: for every pixel, its ``a_words`` words of
        ``a`` then its ``b_words`` words of ``b`` (channel ``c`` of ``b`` becomes
        channel ``a_words * simd + c``).

    Timing: the output is a register (``o.valid`` does not depend on ready); the
    input whose turn it is is taken when the register is empty or taken
    (``a.ready = ~b_turn & (~o.valid | o.ready)``, ``b.ready`` likewise), the
    other waits, so the branch whose turn it is not may stall freely. Latency 1;
    one word per cycle while the input whose turn it is offers words.
    """

    def __init__(self, a_words, b_words, shape, simd):
        check_int("ChannelConcat", "a_words", a_words, 1)
        check_int("ChannelConcat", "b_words", b_words, 1)
        check_int("ChannelConcat", "simd", simd, 1)
        if not isinstance(shape, int):
            try:
                Shape.cast(shape)
            except TypeError:
                raise ConfigError("ChannelConcat", "shape", f"must be an Amaranth shape, not {shape!r}",
                                  "pass unsigned(k) or signed(k)") from None
        self.a_words, self.b_words, self.simd = a_words, b_words, simd
        self.latency = 1
        layout = lanes(shape, simd)
        super().__init__({
            "a": In(stream.Signature(layout)),
            "b": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        b_turn = Signal()
        word = Signal(range(max(self.a_words, self.b_words, 2)))
        advance = ~self.o.valid | self.o.ready
        m.d.comb += [self.a.ready.eq(advance & ~b_turn), self.b.ready.eq(advance & b_turn)]
        take = (self.a.valid & self.a.ready) | (self.b.valid & self.b.ready)
        last = Mux(b_turn, word == self.b_words - 1, word == self.a_words - 1)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(Mux(b_turn, self.b.payload, self.a.payload))]
            with m.If(last):
                m.d.sync += [word.eq(0), b_turn.eq(~b_turn)]
            with m.Else():
                m.d.sync += word.eq(word + 1)
        return m

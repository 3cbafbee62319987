"""Input framing check: a stream with ``last`` markers -> a stream of whole frames of a fixed length."""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError

from .threshold import wrap_increment

__all__ = ["FrameChecker"]


class _State(enum.Enum, shape=2):
    PASS = 0   # forwarding the sender's words
    PAD = 1    # completing a frame that ended early with zero words
    DROP = 2   # discarding the words of a frame that ran long, up to its last


class FrameChecker(wiring.Component):
    """Makes every frame the sender marks with ``last`` exactly ``words`` words long.

    The design behind it counts words, not markers, so one frame of the wrong
    length would shift every later frame. This checker keeps the two in step:
    every frame the sender ends with ``last`` becomes exactly one frame of
    ``words`` words on ``o``, and the next frame starts aligned.

    * Correct frame (``last`` on word ``words - 1``): passed through.
    * Short frame (``last`` on word k < ``words - 1``): words 0..k are passed
      through, then the frame is completed with ``words - 1 - k`` all-zero
      words (``o`` only, the sender is stalled meanwhile); ``short`` pulses.
      The result of that frame is meaningless but it keeps its place.
    * Long frame (no ``last`` on word ``words - 1``): words 0..``words - 1``
      are passed through (the frame as the design sees it), then the sender's
      words are accepted and discarded up to and including the next word with
      ``last``; ``long`` pulses.

    Parameters
    ----------
    layout : shape-castable
        The word (e.g. ``lanes(unsigned(1), 64)``).
    words : int
        Words per frame, >= 1.

    Ports
    -----
    i : stream of ``StructLayout({"data": layout, "last": 1})``
    o : stream of ``layout``, ``words`` words per frame.
    short, long : one-cycle pulses in the cycle after the transfer of the word
        that revealed the error (the early ``last``; the frame's final word
        without ``last``).
    error : sticky: high from the first pulse on, cleared only by reset.

    Timing: no register on the data path (``o`` follows ``i`` combinationally
    while passing; ``i.ready = o.ready`` then); one word per cycle, no bubble
    between frames. ``o.valid`` never depends on ``o.ready``.
    """

    def __init__(self, layout, words):
        if not isinstance(words, int) or isinstance(words, bool) or words < 1:
            raise ConfigError("FrameChecker", "words", f"must be a positive integer, got {words!r}",
                              "pass the number of words per frame")
        self.layout, self.words = layout, words
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"data": layout, "last": unsigned(1)}))),
            "o": Out(stream.Signature(layout)),
            "short": Out(1), "long": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.words
        state = Signal(_State)
        pos = Signal(range(max(2, n)))       # position in the frame of the next word on o
        final = Signal()
        m.d.comb += final.eq(pos == n - 1)
        moved = Signal()
        m.d.comb += moved.eq(self.o.valid & self.o.ready)
        with m.If(moved):
            m.d.sync += pos.eq(wrap_increment(pos, n))

        m.d.sync += [self.short.eq(0), self.long.eq(0)]
        with m.Switch(state):
            with m.Case(_State.PASS):
                m.d.comb += [
                    self.o.valid.eq(self.i.valid),
                    self.o.payload.eq(self.i.payload.data),
                    self.i.ready.eq(self.o.ready),
                ]
                with m.If(moved):
                    with m.If(final & ~self.i.payload.last):
                        m.d.sync += [state.eq(_State.DROP), self.long.eq(1), self.error.eq(1)]
                    with m.If(~final & self.i.payload.last):
                        m.d.sync += [state.eq(_State.PAD), self.short.eq(1), self.error.eq(1)]
            with m.Case(_State.PAD):
                m.d.comb += self.o.valid.eq(1)   # payload 0
                with m.If(moved & final):
                    m.d.sync += state.eq(_State.PASS)
            with m.Case(_State.DROP):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid & self.i.payload.last):
                    m.d.sync += state.eq(_State.PASS)
        return m

"""The label of a frame of one-bit outputs: the highest index whose bit is set."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lanes import if_output, lanes

__all__ = ["HighestSetBit"]


class HighestSetBit(wiring.Component):
    """Observes a stream of one-bit outputs and produces, per frame, the highest index whose bit is 1
    (0 when no bit is): label rule "highest_set_bit" (:func:`qnnfab.packing.frame_labels`).

    Parameters: ``pe`` bits per word, ``words`` words per frame; bit ``k * pe + p`` of a frame is
    ``payload[p]`` of word k. ``count`` (default all ``pe * words``): only bits at index < ``count``
    are outputs; the rest are padding rows and never make the label.

    Ports (the contract of :class:`qnnfab.rtl.dataflow.ArgMax`): ``valid``/``ready``/``payload``
    are inputs that mirror the stream's signals (a tap, no backpressure of its own), ``payload``
    is ``lanes(unsigned(1), pe)``; a word counts when ``valid & ready``. ``label`` (``range(max(2,
    pe * words))``) holds the frame's result from the cycle after its last word transfers, when
    ``label_valid`` pulses for one cycle; it keeps that value until the next frame's.
    """

    def __init__(self, pe, words, count=None):
        self.pe, self.words = pe, words
        self.count = pe * words if count is None else count
        if not 1 <= self.count <= pe * words:
            raise ValueError(f"count {count} is not in [1, {pe * words}]")
        super().__init__({
            "valid": In(1), "ready": In(1), "payload": In(lanes(unsigned(1), pe)),
            "label": Out(range(max(2, pe * words))), "label_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pe, words = self.pe, self.words
        n = pe * words
        word = Signal(range(max(2, words)))
        best_idx = Signal(range(max(2, n)))
        # highest set bit of this word: later lanes override earlier ones
        any_set = Signal()
        lane = Signal(range(max(2, pe)))
        for p in range(pe):
            with m.If(if_output(self.payload[p], word, p, pe=pe, words=words, count=self.count)):
                m.d.comb += [any_set.eq(1), lane.eq(p)]
        idx = Signal(range(max(2, n)))
        m.d.comb += idx.eq(word * pe + lane)
        # a later word's set bit has a higher index; a frame's first word starts from "none" (0)
        kept = Mux(word == 0, 0, best_idx)
        new_idx = Mux(any_set, idx, kept)
        m.d.sync += self.label_valid.eq(0)
        with m.If(self.valid & self.ready):
            m.d.sync += best_idx.eq(new_idx)
            with m.If(word == words - 1):
                m.d.sync += [word.eq(0), self.label.eq(new_idx), self.label_valid.eq(1)]
            with m.Else():
                m.d.sync += word.eq(word + 1)
        return m

"""Bus words from memory -> the accelerator's input words, frame by frame."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FrameUnpacker"]


class FrameUnpacker(wiring.Component):
    """Splits (or gathers) bus words into input words of ``word_bits`` bits.

    Parameters: ``bus_bits``, ``word_bits``, ``slot_bits`` (a power of two >=
    ``word_bits`` and >= 8: the space one word takes in memory),
    ``words_per_frame``.

    Memory format (see :mod:`qnnfab.overlay_map`): each frame is
    ``words_per_frame`` slots, the first slot at the LSBs of the frame's first
    bus word, zero padding after the frame's last slot up to a whole bus
    word. ``i`` takes bus words, ``o`` gives input words (the low
    ``word_bits`` of each slot).

    When a slot is at most a bus word, ``o`` is a pass-through (one word per
    cycle, no latency) and ``i`` advances on the last slot of a bus word or of
    a frame. When a slot spans ``n`` bus words, they are gathered in a
    register: ``o`` is valid the cycle after the ``n``-th word arrives, and
    the next word's first bus word is taken in the cycle ``o`` is taken.
    """

    def __init__(self, bus_bits, word_bits, slot_bits, words_per_frame):
        if slot_bits & (slot_bits - 1) or slot_bits < max(8, word_bits):
            raise ValueError(f"slot_bits must be a power of two >= max(8, word_bits), not {slot_bits!r}")
        self.bus_bits, self.word_bits, self.slot_bits = bus_bits, word_bits, slot_bits
        self.words_per_frame = words_per_frame
        super().__init__({
            "i": In(stream.Signature(bus_bits)),
            "o": Out(stream.Signature(word_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        if self.slot_bits <= self.bus_bits:
            per_beat = self.bus_bits // self.slot_bits
            slot = Signal(range(max(2, per_beat)))
            word = Signal(range(max(2, self.words_per_frame)))
            last_word = word == self.words_per_frame - 1
            last_slot = slot == per_beat - 1
            m.d.comb += [
                self.o.payload.eq(self.i.payload.word_select(slot, self.slot_bits)[:self.word_bits]),
                self.o.valid.eq(self.i.valid),
                self.i.ready.eq(self.o.ready & (last_slot | last_word)),
            ]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += [word.eq(word + 1), slot.eq(slot + 1)]
                with m.If(last_word | last_slot):
                    m.d.sync += slot.eq(0)
                with m.If(last_word):
                    m.d.sync += word.eq(0)
        else:
            n = self.slot_bits // self.bus_bits
            buf = Signal(self.slot_bits)
            count = Signal(range(n + 1))
            full = count == n
            m.d.comb += [
                self.o.payload.eq(buf[:self.word_bits]),
                self.o.valid.eq(full),
                self.i.ready.eq(~full | self.o.ready),
            ]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += count.eq(0)
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += buf.eq((buf >> self.bus_bits) | (self.i.payload << (self.slot_bits - self.bus_bits)))
                m.d.sync += count.eq(Mux(full, 1, count + 1))
        return m

"""The accelerator's scores and label -> output records in bus words."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RecordPacker"]


class RecordPacker(wiring.Component):
    """Builds one output record per frame and packs it into bus words.

    Parameters: ``bus_bits``, ``word_bits`` (a score word), ``slot_bits`` (a
    power of two >= max(32, ``word_bits``)), ``label_bits``.

    Inputs: ``scores`` (the score words, ``last`` on each frame's last one);
    ``label``/``label_valid``: the frame's label, valid for one cycle at the
    earliest in the cycle after the frame's last score word transfers (as
    Dataflow's arg-max gives it); no score word of the next frame is taken
    before it came.

    Record format (see :mod:`qnnfab.overlay_map`): the frame's score words in
    slots (zero-extended), then a slot with the label word (bits 15:0 label,
    bits 31:16 the frame's index since reset, modulo 2^16), zero padding to
    a whole bus word. ``o`` gives the bus words; ``record_done`` pulses when
    a frame's label slot is taken into the packer.

    Throughput: one slot per cycle, plus up to two cycles per frame waiting
    for the label.
    """

    def __init__(self, bus_bits, word_bits, slot_bits, label_bits):
        if slot_bits & (slot_bits - 1) or slot_bits < max(32, word_bits):
            raise ValueError(f"slot_bits must be a power of two >= max(32, word_bits), not {slot_bits!r}")
        if label_bits > 16:
            raise ValueError(f"label_bits must be at most 16, not {label_bits!r}")
        self.bus_bits, self.word_bits, self.slot_bits = bus_bits, word_bits, slot_bits
        self.label_bits = label_bits
        super().__init__({
            "scores": In(stream.Signature(data.StructLayout({"data": word_bits, "last": 1}))),
            "label": In(label_bits), "label_valid": In(1),
            "o": Out(stream.Signature(bus_bits)),
            "record_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # 1. slots: the score words, then the label word
        slot = Signal(self.slot_bits)
        slot_end = Signal()          # the record's last slot
        slot_valid, slot_ready = Signal(), Signal()
        waiting_label = Signal()
        have_label = Signal()
        label = Signal(16)
        index = Signal(16)
        with m.If(~waiting_label):
            m.d.comb += [
                slot.eq(self.scores.payload.data), slot_end.eq(0),
                slot_valid.eq(self.scores.valid), self.scores.ready.eq(slot_ready),
            ]
            with m.If(self.scores.valid & self.scores.ready & self.scores.payload.last):
                m.d.sync += [waiting_label.eq(1), have_label.eq(0)]
        with m.Else():
            m.d.comb += [slot.eq(Cat(label, index)), slot_end.eq(1), slot_valid.eq(have_label)]
            with m.If(self.label_valid & ~have_label):
                m.d.sync += [label.eq(self.label), have_label.eq(1)]
            with m.If(slot_valid & slot_ready):
                m.d.sync += [waiting_label.eq(0), index.eq(index + 1)]
                m.d.comb += self.record_done.eq(1)

        # 2. slots -> bus words (zero padded at the record's end)
        out_valid = Signal()
        out_data = Signal(self.bus_bits)
        m.d.comb += [self.o.valid.eq(out_valid), self.o.payload.eq(out_data)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        if self.slot_bits <= self.bus_bits:
            per_beat = self.bus_bits // self.slot_bits
            part = Signal(self.bus_bits)
            pos = Signal(range(max(2, per_beat)))
            m.d.comb += slot_ready.eq(~out_valid | self.o.ready)
            with m.If(slot_valid & slot_ready):
                merged = part | (slot << (pos * self.slot_bits))
                with m.If(slot_end | (pos == per_beat - 1)):
                    m.d.sync += [out_data.eq(merged), out_valid.eq(1), part.eq(0), pos.eq(0)]
                with m.Else():
                    m.d.sync += [part.eq(merged), pos.eq(pos + 1)]
        else:
            n = self.slot_bits // self.bus_bits
            buf = Signal(self.slot_bits)
            left = Signal(range(n + 1))
            m.d.comb += slot_ready.eq((left == 0) | ((left == 1) & (~out_valid | self.o.ready)))
            with m.If((left != 0) & (~out_valid | self.o.ready)):
                m.d.sync += [out_data.eq(buf[:self.bus_bits]), out_valid.eq(1),
                             buf.eq(buf >> self.bus_bits), left.eq(left - 1)]
            with m.If(slot_valid & slot_ready):
                m.d.sync += [buf.eq(slot), left.eq(n)]
        return m

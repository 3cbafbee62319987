"""The bare accelerator as users get it: a network's dataflow behind AXI4-Stream ports.

:class:`AxiStreamAccelerator` is the top that ``qnnfab generate`` exports
(``accel/<name>.v``) and that the overlay shell wraps. :class:`WordFormat` is
the one definition of its word formats, used by the hardware, the benches,
the generated README and drivers.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import ClockDomain, DomainRenamer, Module, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.packing import pack_words, unpack_words

from .dataflow import Dataflow
from .frame_checker import FrameChecker
from .lanes import lanes

__all__ = ["AxiStreamAccelerator", "WordFormat"]


def _bytes(bits):
    return -(-bits // 8)


@dataclass(frozen=True)
class WordFormat:
    """The AXI-Stream word formats of a network's accelerator.

    Input (``s_axis_tdata``, ``in_bytes`` bytes): ``in_elems`` elements of
    ``in_bits`` bits packed from the least significant bit up (element 0 at
    bits ``[0, in_bits)``), in NHWC raster order, ``in_words`` words per
    frame; the bits above ``in_elems * in_bits`` are padding (ignored; send
    0). Element encoding: bipolar bit 1 = +1, 0 = -1; uint: unsigned; int:
    two's complement.

    Output (``m_axis_tdata``, ``out_bytes`` bytes): ``out_elems`` scores per
    word, each in its own ``score_bytes``-byte field (score 0 in the lowest
    bytes), sign-extended when ``out_signed`` (else zero-extended), so a
    field reads as a little-endian ``int``/``uint`` of ``score_bytes``
    bytes; ``out_words`` words per frame, ``tlast`` on the last.
    Score k of a frame is field ``k % out_elems`` of word ``k // out_elems``.
    """

    in_elems: int
    in_bits: int
    in_signed: bool
    in_words: int
    out_elems: int
    out_bits: int
    out_signed: bool
    out_words: int

    @classmethod
    def of(cls, top):
        """The format of a :class:`Dataflow`."""
        il = top.in_layout
        return cls(il.length, il.elem_shape.width, il.elem_shape.signed, top.in_words,
                   top.out_elems, top.out_bits, top.out_signed, top.out_words)

    @property
    def in_bytes(self):
        return _bytes(self.in_elems * self.in_bits)

    @property
    def score_bytes(self):
        return _bytes(self.out_bits)

    @property
    def out_bytes(self):
        return self.out_elems * self.score_bytes

    def pack_frames(self, frames):
        """Frames (B, ...) of stored element values (NHWC) -> list of input words (ints)."""
        flat = np.asarray(frames).reshape(len(frames), -1)
        if flat.shape[1] != self.in_elems * self.in_words:
            raise ValueError(f"frames of {flat.shape[1]} elements, the network takes "
                             f"{self.in_elems * self.in_words}")
        return pack_words(flat.reshape(-1, self.in_elems), self.in_bits)

    def unpack_scores(self, words):
        """Output words (ints) -> scores, shape (frames, out_elems * out_words)."""
        scores = unpack_words(words, self.out_elems, 8 * self.score_bytes, self.out_signed)
        return scores.reshape(-1, self.out_elems * self.out_words)


class AxiStreamAccelerator(wiring.Component):
    """A network's :class:`Dataflow` with AXI4-Stream ports, ready to instantiate.

    Ports (all synchronous to ``aclk``)
    -----------------------------------
    aclk, aresetn : clock, synchronous reset (active low).
    s_axis_tdata/tvalid/tready/tlast : input words (:class:`WordFormat`,
        ``in_bytes * 8`` bits). ``tlast`` must mark each frame's last word;
        a frame of the wrong length is fixed up so that the next one starts
        aligned (:class:`~qnnfab.rtl.frame_checker.FrameChecker`): a short one
        is completed with zero words (its result is meaningless), the excess
        words of a long one are discarded up to its ``tlast``. Every frame
        the sender ends with ``tlast`` yields exactly one output frame.
    m_axis_tdata/tvalid/tready/tlast : scores (``out_bytes * 8`` bits),
        ``tlast`` on the last word of every frame.
    label, label_valid : arg-max of each frame's scores (lowest index on
        ties), valid for one cycle after the frame's last output word.
    frame_error : high from the first input framing error on, until reset.
    frame_error_pulse : one cycle per badly framed input frame (the cycle
        after the word that revealed it).
    wload_tdata/tvalid/tready/tlast, wload_done, wload_error : only with
        runtime weights: the dataflow's ``wload`` stream (64-bit words of the
        weights image, ``tlast`` on the final one) and its outputs.

    Adds no register and no cycle to the dataflow's data path.
    """

    def __init__(self, cfg, *, pipeline=None, weights_mode=None):
        self.dataflow = Dataflow(cfg, pipeline=pipeline, weights_mode=weights_mode)
        self.format = fmt = WordFormat.of(self.dataflow)
        self.model = self.dataflow.model
        ports = {
            "aclk": In(1), "aresetn": In(1),
            "s_axis_tdata": In(8 * fmt.in_bytes), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(8 * fmt.out_bytes), "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1), "m_axis_tlast": Out(1),
            "label": Out(self.dataflow.label.shape()), "label_valid": Out(1),
            "frame_error": Out(1), "frame_error_pulse": Out(1),
        }
        if hasattr(self.dataflow, "wload"):
            ports.update({
                "wload_tdata": In(len(self.dataflow.wload.payload.data)), "wload_tvalid": In(1),
                "wload_tready": Out(1), "wload_tlast": In(1),
                "wload_done": Out(1), "wload_error": Out(len(self.dataflow.wload_error)),
            })
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        # the design's own clock domain, so that a parent's ``sync`` stays apart
        m.domains.aclk = cd = ClockDomain("aclk", local=True)
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        df = self.dataflow
        fc = FrameChecker(df.in_layout, df.in_words)
        m.submodules.dataflow = DomainRenamer("aclk")(df)
        m.submodules.framing = DomainRenamer("aclk")(fc)
        wiring.connect(m, fc.o, df.i)
        width = df.in_layout.size
        m.d.comb += [
            Value.cast(fc.i.payload.data).eq(self.s_axis_tdata[:width]),
            fc.i.payload.last.eq(self.s_axis_tlast),
            fc.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(fc.i.ready),
            self.frame_error.eq(fc.error),
            self.frame_error_pulse.eq(fc.short | fc.long),
            self.m_axis_tvalid.eq(df.o.valid),
            self.m_axis_tlast.eq(df.o.payload.last),
            df.o.ready.eq(self.m_axis_tready),
            self.label.eq(df.label),
            self.label_valid.eq(df.label_valid),
        ]
        fmt = self.format
        score = signed(8 * fmt.score_bytes) if fmt.out_signed else unsigned(8 * fmt.score_bytes)
        fields = data.View(lanes(score, fmt.out_elems), self.m_axis_tdata)
        m.d.comb += [fields[p].eq(df.o.payload.data[p]) for p in range(fmt.out_elems)]   # sign-/zero-extends
        return m

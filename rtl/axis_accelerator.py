"""The bare accelerator as users get it: a network's dataflow behind AXI4-Stream ports.

:class:`AxiStreamAccelerator` is the top that ``qnnfab generate`` exports
(``accel/<name>.v``) and that the overlay shell wraps. Its word formats are
the plan's :class:`qnnfab.plan.WordFormat`.
"""

from amaranth.hdl import ClockDomain, DomainRenamer, Module, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.packing import pack_words, unpack_words

from .dataflow import Dataflow
from .frame_checker import FrameChecker
from .lanes import lanes

__all__ = ["AxiStreamAccelerator"]


class AxiStreamAccelerator(wiring.Component):
    """A network's :class:`Dataflow` with AXI4-Stream ports, ready to instantiate.

    Ports (all synchronous to ``aclk``)
    -----------------------------------
    aclk, aresetn : clock, synchronous reset (active low).
    s_axis_tdata/tvalid/tready/tlast : input words (:class:`qnnfab.plan.WordFormat`,
        ``in_bytes * 8`` bits). ``tlast`` must mark each frame's last word;
        a frame of the wrong length is fixed up so that the next one starts
        aligned (:class:`~qnnfab.rtl.frame_checker.FrameChecker`): a short one
        is completed with zero words (its result is meaningless), the excess
        words of a long one are discarded up to its ``tlast``. Every frame
        the sender ends with ``tlast`` yields exactly one output frame.
    m_axis_tdata/tvalid/tready/tlast : scores (``out_bytes * 8`` bits),
        ``tlast`` on the last word of every frame.
    label, label_valid : each frame's label under the config's label rule
        (``label``: "argmax", the lowest index on ties, or
        "highest_set_bit"; see :class:`~qnnfab.rtl.dataflow.Dataflow`),
        valid for one cycle after the frame's last output word.
    frame_error : high from the first input framing error on, until reset.
    frame_error_pulse : one cycle per badly framed input frame (the cycle
        after the word that revealed it).
    wload_tdata/tvalid/tready/tlast, wload_done, wload_error : only with
        runtime weights: the dataflow's ``wload`` stream (64-bit words of the
        weights image, ``tlast`` on the final one) and its outputs.

    stage_in (out), stage_out (in) : only with ``stages_outside=True``: the
        dataflow's ``stages_i`` / ``stages_o`` streams (see
        :class:`~qnnfab.rtl.dataflow.Dataflow`; its stages are left out, its
        ``stages`` components to be simulated each on its own).

    Adds no register and no cycle to the dataflow's data path.
    """

    def __init__(self, cfg, *, pipeline=None, weights_mode=None, skip_depths=None, stages_outside=False):
        self.dataflow = Dataflow(cfg, pipeline=pipeline, weights_mode=weights_mode, skip_depths=skip_depths,
                                 stages_outside=stages_outside)
        self.format = fmt = self.dataflow.plan.word_format
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
        if stages_outside:
            ports.update({"stage_in": Out(stream.Signature(self.dataflow.in_layout)),
                          "stage_out": In(stream.Signature(self.dataflow.out_layout))})
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
        if df.stages_outside:
            wiring.connect(m, wiring.flipped(self.stage_in), df.stages_i)
            wiring.connect(m, wiring.flipped(self.stage_out), df.stages_o)
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

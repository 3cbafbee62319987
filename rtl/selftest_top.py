"""A standalone board top that proves a network places, routes and meets timing without the PS.

:class:`SelfTestTop` feeds an :class:`~qnnfab.rtl.axis_accelerator.AxiStreamAccelerator`
frames of pseudo-random words back to back and shows the label of the last
frame on four LEDs. ``qnnfab generate --top selftest`` writes Amaranth's
Xilinx build plan of it (:func:`qnnfab.boards.emit.selftest.write_build_plan`).
"""

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from .axis_accelerator import AxiStreamAccelerator

__all__ = ["SelfTestTop"]


class SelfTestTop(Elaboratable):
    """Standalone board top: LFSR frames -> accelerator -> labels on the LEDs.

    ``mmcm``: ``(DIVCLK_DIVIDE, CLKFBOUT_MULT_F, CLKOUT0_DIVIDE_F)`` of a
    7-series MMCME2_BASE on the platform's default clock
    (:func:`qnnfab.boards.targets.clock.mmcm_settings`), or None.

    On a platform with ``mmcm``, the accelerator runs from that MMCM's
    CLKOUT0 through a BUFG (Vivado derives that clock's constraint from the
    MMCM), held in reset until the MMCM locks. Otherwise in the ``sync``
    domain as given (the platform's own has no reset).

    Frames: a 32-bit LFSR (taps 32, 22, 2, 1), replicated across
    ``s_axis_tdata``, steps on every accepted word; ``tvalid`` is always high,
    ``tlast`` on every frame's last word; the output is always ready. The
    label of the last frame (its low 4 bits) drives ``led`` 0-3.
    """

    def __init__(self, cfg, mmcm=None):
        self.cfg = cfg
        self.mmcm = mmcm

    def elaborate(self, platform):
        m = Module()
        if platform is not None and self.mmcm is not None:
            f_in = platform.default_clk_frequency / 1e6
            d, mult, div = self.mmcm
            m.submodules.clk_in = clk_in = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
            feedback, clk_out, locked = Signal(), Signal(), Signal()
            m.submodules.mmcm = Instance(
                "MMCME2_BASE", p_CLKIN1_PERIOD=round(1000 / f_in, 3), p_DIVCLK_DIVIDE=d,
                p_CLKFBOUT_MULT_F=mult, p_CLKOUT0_DIVIDE_F=div,
                i_CLKIN1=clk_in.i, i_CLKFBIN=feedback, o_CLKFBOUT=feedback, o_CLKOUT0=clk_out,
                o_LOCKED=locked, i_RST=0, i_PWRDWN=0)
            m.domains.sync = sync = ClockDomain("sync")
            m.submodules.bufg = Instance("BUFG", i_I=clk_out, o_O=sync.clk)
            m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
        m.submodules.accel = accel = AxiStreamAccelerator(self.cfg)
        # (the platform's own sync domain, without an MMCM, has no reset)
        m.d.comb += [accel.aclk.eq(ClockSignal()), accel.aresetn.eq(~ResetSignal(allow_reset_less=True))]
        lfsr = Signal(32, init=1)
        words = accel.format.in_words
        word = Signal(range(max(2, words)))
        with m.If(accel.s_axis_tready):
            fb = lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]
            m.d.sync += [lfsr.eq((lfsr << 1) | fb), word.eq(Mux(word == words - 1, 0, word + 1))]
        width = len(accel.s_axis_tdata)
        data = Signal(width)
        reps = -(-width // 32)
        m.d.comb += [
            data.eq(lfsr.replicate(reps)[:width]),
            accel.s_axis_tdata.eq(data),
            accel.s_axis_tvalid.eq(1),
            accel.s_axis_tlast.eq(word == words - 1),
            accel.m_axis_tready.eq(1),
        ]
        label = Signal(4)
        with m.If(accel.label_valid):
            m.d.sync += label.eq(accel.label)
        if platform is not None:
            for k in range(4):
                m.submodules[f"led{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
                m.d.comb += led.o.eq(label[k])
        return m

"""Build plans for a board: the accelerator IP (AXI-Stream) and a standalone board top.

``generate`` writes two things:

* ``accel/<name>.v``: the network accelerator (:class:`qnnfab.rtl.dataflow.Dataflow`)
  with AXI-Stream style ports (``s_axis_*``, ``m_axis_*``, ``label``), to be
  instantiated in a Vivado block design next to the Zynq PS and an AXI DMA.
* ``plan/``: Amaranth's Xilinx build plan for the board (Verilog, Tcl,
  constraints, ``build_top.sh``) of a *standalone self-test top*: the board's
  125 MHz clock, a frame generator (a 32-bit LFSR) feeding the accelerator
  back to back, the output always ready, the label of the last frame on the
  LEDs. It proves the design places, routes and meets
  timing on the part without the PS.

Not generated yet: the PS7 + AXI DMA block design and the PYNQ overlay
(``.bit`` + ``.hwh`` + Python driver); see the README.
"""

from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

__all__ = ["SelfTestTop", "accelerator_name", "write_build_plan", "write_accelerator"]


class SelfTestTop(Elaboratable):
    """Standalone board top: LFSR frames -> accelerator -> labels on the LEDs."""

    def __init__(self, cfg):
        self.cfg = cfg

    def elaborate(self, platform):
        from qnnfab.rtl.dataflow import Dataflow

        m = Module()
        m.submodules.accel = accel = Dataflow(self.cfg)
        # the platform derives the sync domain from its default clock (125 MHz)
        lfsr = Signal(32, init=1)
        with m.If(accel.s_axis_tready):
            fb = lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]
            m.d.sync += lfsr.eq((lfsr << 1) | fb)
        data = Signal(accel.in_width)
        reps = -(-accel.in_width // 32)
        m.d.comb += [
            data.eq(lfsr.replicate(reps)[:accel.in_width]),
            accel.s_axis_tdata.eq(data),
            accel.s_axis_tvalid.eq(1),
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


def accelerator_name(cfg):
    """The Verilog module (and file) name of ``cfg``'s accelerator."""
    return "qnnfab_" + "".join(c if c.isalnum() else "_" for c in cfg.name)


def write_accelerator(cfg, out_dir):
    """Write the accelerator IP's Verilog (AXI-Stream ports) into ``out_dir``;
    return ``(module name, path)``."""
    from amaranth.back import verilog
    from qnnfab.rtl.dataflow import Dataflow

    name = accelerator_name(cfg)
    path = Path(out_dir) / f"{name}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(verilog.convert(Dataflow(cfg), name=name, emit_src=False))
    return name, path


def write_build_plan(cfg, platform_cls, out_dir):
    """Write Amaranth's build plan (Vivado Tcl, XDC, Verilog, build script) to ``out_dir``."""
    plat = platform_cls()
    plan = plat.build(SelfTestTop(cfg), name="top", do_build=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan.extract(str(out))
    return sorted(p.name for p in out.iterdir())

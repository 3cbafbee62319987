"""The self-test build plan (``plan/`` of ``qnnfab generate --top selftest``).

Amaranth's Xilinx build plan for the board (Verilog, Tcl, constraints,
``build_top.sh``) of :class:`qnnfab.rtl.selftest_top.SelfTestTop`: ``--clock``
made by an MMCM from the board's oscillator, pseudo-random frames fed to the
accelerator back to back, the label of the last frame on the LEDs. It proves
the design places, routes and meets timing on the part without the PS.
"""

from pathlib import Path

from qnnfab.boards.targets.clock import mmcm_settings
from qnnfab.rtl.selftest_top import SelfTestTop

__all__ = ["write_build_plan"]


def write_build_plan(cfg, platform_cls, out_dir, clock_mhz=100.0):
    """Write Amaranth's build plan (Vivado Tcl, XDC, Verilog, build script) of the
    self-test top at ``clock_mhz`` to ``out_dir``; return the file names."""
    plat = platform_cls()
    divclk, mult, div, _ = mmcm_settings(plat.default_clk_frequency / 1e6, clock_mhz)
    plan = plat.build(SelfTestTop(cfg, mmcm=(divclk, mult, div)), name="top", do_build=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan.extract(str(out))
    return sorted(p.name for p in out.iterdir())

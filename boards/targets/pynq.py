"""PYNQ-Z1 and PYNQ-Z2 (Zynq xc7z020clg400-1) for Amaranth's Xilinx platform.

Pins follow the boards' master constraint files: the 125 MHz clock on H16,
four LEDs, two RGB LEDs, four buttons, two switches. The two boards share
these pins (the PYNQ-Z1 derives from the Arty Z7-20). Adding another board is
one small file like this one plus an entry in :data:`qnnfab.boards.targets.BOARDS`.
"""

from amaranth.build import Attrs, Clock, Pins, Resource
from amaranth.vendor import XilinxPlatform
from amaranth_boards.resources import (ButtonResources, LEDResources, RGBLEDResource,
                                       SwitchResources)

from .device import XC7Z020

__all__ = ["PynqZ1Platform", "PynqZ2Platform"]


def _pynq_resources():
    io = Attrs(IOSTANDARD="LVCMOS33")
    return [
        Resource("clk125", 0, Pins("H16", dir="i"), Clock(125e6), io),
        *LEDResources(pins="R14 P14 N16 M14", attrs=io),
        RGBLEDResource(0, r="N15", g="G17", b="L15", attrs=io),   # LD4
        RGBLEDResource(1, r="M15", g="L14", b="G14", attrs=io),   # LD5
        *ButtonResources(pins="D19 D20 L20 L19", attrs=io),
        *SwitchResources(pins="M20 M19", attrs=io),
    ]


class PynqZ1Platform(XilinxPlatform):
    """Digilent PYNQ-Z1."""
    device = "xc7z020"
    package = "clg400"
    speed = "1"
    default_clk = "clk125"
    resources = _pynq_resources()
    connectors = []
    capacity = XC7Z020
    board_name = "pynq-z1"
    #: Vivado board part (board files from the Vivado board store / Digilent)
    vivado_board_part = "www.digilentinc.com:pynq-z1:part0:1.0"
    #: DDR3 behind the PS (bytes), reachable from the PL through S_AXI_HP0
    ddr_bytes = 512 * 2**20


class PynqZ2Platform(PynqZ1Platform):
    """TUL PYNQ-Z2: the same part and the same pins for these resources."""
    board_name = "pynq-z2"
    vivado_board_part = "tul.com.tw:pynq-z2:part0:1.0"

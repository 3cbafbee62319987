"""FPGA device capacities and the check that a design fits.

``used`` below is a count of resources with the fields ``lut``, ``ff``,
``bram36``, ``dsp`` and ``lutram`` (a :class:`qnnfab.boards.estimate.yosys.Resources`:
from Yosys or the cost model).
"""

from dataclasses import dataclass

from qnnfab.errors import ConfigError

__all__ = ["Device", "XC7Z020", "check_fits", "overflows", "describe_overflows"]


@dataclass(frozen=True)
class Device:
    """Capacities of one FPGA part (7-series counting: BRAM in RAMB36 tiles)."""
    part: str
    lut: int
    ff: int
    bram36: int
    dsp: int
    lutram: int  # LUTs usable as distributed RAM (SLICEM)

    def utilisation(self, used):
        """``{resource: (used, available, fraction)}``; LUT-RAM counts against LUTs."""
        lut_total = used.lut + used.lutram
        return {
            "LUT": (lut_total, self.lut, lut_total / self.lut),
            "FF": (used.ff, self.ff, used.ff / self.ff),
            "BRAM36": (used.bram36, self.bram36, used.bram36 / self.bram36),
            "DSP": (used.dsp, self.dsp, used.dsp / self.dsp),
            "LUTRAM": (used.lutram, self.lutram, used.lutram / self.lutram),
        }


# Zynq-7020 (PYNQ-Z1, PYNQ-Z2): 53,200 LUT, 106,400 FF, 140 BRAM36, 220 DSP48E1;
# 17,400 LUTs are in SLICEMs and can be distributed RAM.
XC7Z020 = Device("xc7z020clg400-1", lut=53_200, ff=106_400, bram36=140, dsp=220, lutram=17_400)


def overflows(used, device: Device, margin=1.0):
    """The resources of ``used`` beyond ``margin`` of ``device``: a list of
    ``(name, used, available, fraction)``, empty when the design fits. LUT
    counts logic and LUT-RAM together (the LUTRAM row is its SLICEM share)."""
    return [(name, u, cap, frac) for name, (u, cap, frac) in device.utilisation(used).items() if frac > margin]


def describe_overflows(over):
    """``LUT 166,136 of 53,200 (312%, 112,936 over)`` for each entry of :func:`overflows`."""
    return ", ".join(f"{name} {u:,.0f} of {cap:,} ({100 * frac:.0f}%, {u - cap:,.0f} over)"
                     for name, u, cap, frac in over)


def check_fits(where, used, device: Device, margin=1.0, fix=None):
    """Raise :class:`ConfigError` naming the exhausted resource when ``used``
    does not fit ``device`` (``margin`` < 1 keeps headroom)."""
    over = overflows(used, device, margin)
    if over:
        raise ConfigError(where, "resources", f"does not fit {device.part}: " + describe_overflows(over),
                          fix or "reduce PE/SIMD of the largest layers (qnnfab fold) or pick a larger board")

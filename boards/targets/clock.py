"""Clock maths of the targets: what the Zynq PS and a 7-series MMCM can make.

* :func:`mmcm_settings`: the MMCM setting that makes a clock from the board's
  oscillator (the self-test top's clock, :class:`qnnfab.rtl.selftest_top.SelfTestTop`).
* :func:`check_clock`: refuses, before anything is written, a clock the
  board cannot make for the chosen top.
"""

from qnnfab.errors import ConfigError

__all__ = ["FCLK_MHZ", "BUFG_MAX_MHZ", "mmcm_settings", "check_clock"]

#: FCLK_CLK0 range of the Zynq-7000 PS (DS187: PL clocks up to 250 MHz; 1000 MHz / (63 * 63) at least)
FCLK_MHZ = (0.26, 250.0)
#: highest global clock (BUFG) of the -1 speed grade (DS187)
BUFG_MAX_MHZ = 464.0


def mmcm_settings(f_in_mhz, f_out_mhz):
    """The 7-series MMCM setting that makes ``f_out_mhz`` from ``f_in_mhz``, or the closest.

    Returns ``(DIVCLK_DIVIDE, CLKFBOUT_MULT_F, CLKOUT0_DIVIDE_F, achieved MHz)``
    within the -1 speed grade's limits (DS187: VCO 600-1200 MHz, phase detector
    10-450 MHz; UG472: multiplier 2-64 and output divider 2-128 in steps of
    1/8, or 1). Exact settings first, then the highest VCO (lowest jitter).
    """
    best = None
    for d in range(1, 107):
        pfd = f_in_mhz / d
        if pfd < 10:
            break
        if pfd > 450:
            continue
        for m8 in range(16, 513):
            vco = pfd * m8 / 8
            if not 600 <= vco <= 1200:
                continue
            o8 = round(vco * 8 / f_out_mhz)
            o8 = 8 if o8 < 12 else min(o8, 1024)   # divide by 1, or 2.000-128.000
            f = vco * 8 / o8
            key = (abs(f - f_out_mhz), -vco, d)
            if best is None or key < best[0]:
                best = (key, (d, m8 / 8, o8 / 8, f))
    return best[1]


def check_clock(top, clock_mhz, board):
    """Raise :class:`ConfigError` (before anything is written) when the board cannot clock
    ``top`` ("overlay": FCLK_CLK0 of the PS; "selftest": an MMCM on the board's oscillator)
    at ``clock_mhz``."""
    lo, hi = FCLK_MHZ
    if top == "overlay" and not lo <= clock_mhz <= hi:
        raise ConfigError("check_clock", "clock_mhz", f"{clock_mhz:g} MHz is outside the {lo:g}-{hi:g} MHz "
                          "the Zynq PS makes on FCLK_CLK0", "choose e.g. 100 MHz")
    if top == "selftest":
        f_in = board().default_clk_frequency / 1e6
        achieved = mmcm_settings(f_in, clock_mhz)[3]
        if clock_mhz > BUFG_MAX_MHZ or abs(achieved - clock_mhz) > 1e-3 * clock_mhz:
            raise ConfigError("check_clock", "clock_mhz", f"an MMCM on the {f_in:g} MHz oscillator cannot make "
                              f"{clock_mhz:g} MHz for a global clock (closest {achieved:.6g} MHz, at most "
                              f"{BUFG_MAX_MHZ:g} MHz)", "choose e.g. 100 MHz")

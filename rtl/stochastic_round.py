"""Rounding stage: drop D LSBs of a wide accumulator and saturate to (I, F).

Arithmetic (bit-exact with :func:`qnnfab.golden.fixedpoint.shift_round`)::

    truncate:    q = (acc + 0)          >> D
    nearest:     q = (acc + 2**(D-1))   >> D     (ties toward +inf)
    stochastic:  q = (acc + r)          >> D     r = D random LFSR bits
    out = clip(q, -2**(W-1), 2**(W-1) - 1)       W = I + F of the output

``>>`` is the arithmetic shift. The input format is (I_in, F_in) and the
output format (I, F) with D = F_in - F >= 0 dropped bits.

Random bits: r is the D LSBs of a leap-forward Fibonacci LFSR
(:class:`qnnfab.rtl.lfsr.LFSR`) wider than D that advances
``steps_per_cycle`` (>= D, default D) steps per rounded value, so the n-th
value rounded uses ``qnnfab.golden.lfsr.lfsr_words(n + 1, D, lfsr_width,
seed)[n]`` whatever the stream timing.
"""

from amaranth.hdl import Module, Signal, Mux, signed
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError

from .lfsr import LFSR, lfsr_taps

__all__ = ["StochasticRound", "MODES", "MAX_WIDTH", "check_format", "check_rounding", "round_expr"]

MODES = ("stochastic", "nearest", "truncate")
#: widest fixed-point format accepted anywhere (the DSP48E1 accumulator is 48 bits)
MAX_WIDTH = 48


def check_format(fmt, where, field):
    """Validate an (I, F) pair (tuple or golden FixedFormat); return ``(I, F)``."""
    try:
        i, f = (fmt.I, fmt.F) if hasattr(fmt, "I") else tuple(fmt)
    except (TypeError, ValueError):
        raise ConfigError(where, field, f"must be an (I, F) pair, not {fmt!r}",
                          "pass (integer bits incl. sign, fraction bits)") from None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (i, f)):
        raise ConfigError(where, field, f"I and F must be ints, not {fmt!r}",
                          "pass (integer bits incl. sign, fraction bits), e.g. (1, 15)")
    if f < 0 or i + f < 1 or i + f > MAX_WIDTH:
        raise ConfigError(where, field, f"format ({i}, {f}) cannot be represented: need F >= 0 and "
                          f"1 <= I + F <= {MAX_WIDTH}", f"use at most {MAX_WIDTH} bits in total")
    return i, f


def check_rounding(where, mode, drop_bits, lfsr_width, steps_per_cycle, seed):
    """Validate the rounding parameters; return ``(lfsr_width, steps_per_cycle)``
    (both None when no random bits are needed)."""
    if mode not in MODES:
        raise ConfigError(where, "mode", f"must be one of {MODES}, not {mode!r}",
                          "choose 'stochastic', 'nearest' or 'truncate'")
    if drop_bits < 0:
        raise ConfigError(where, "formats", f"the output keeps more fraction bits than the input has "
                          f"(D = {drop_bits} < 0)", "lower the output F or raise the input F")
    if mode != "stochastic" or drop_bits == 0:
        return None, None
    if lfsr_width is None:
        lfsr_width = min(32, max(16, drop_bits + 8))
    if isinstance(lfsr_width, bool) or not isinstance(lfsr_width, int) or lfsr_width <= drop_bits:
        raise ConfigError(where, "lfsr_width", f"{lfsr_width!r} bits cannot supply {drop_bits} random bits "
                          "sliced from a wider register",
                          f"use an LFSR of at least {drop_bits + 1} bits (the D bits come from a wider LFSR), "
                          f"or drop fewer bits")
    lfsr_taps(lfsr_width, None, where)
    if steps_per_cycle is None:
        steps_per_cycle = drop_bits
    if isinstance(steps_per_cycle, bool) or not isinstance(steps_per_cycle, int) or steps_per_cycle < drop_bits:
        raise ConfigError(where, "steps_per_cycle", f"{steps_per_cycle!r} < D = {drop_bits}: consecutive "
                          "random words would share shifted bits", f"use steps_per_cycle >= {drop_bits}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 < seed < (1 << lfsr_width):
        raise ConfigError(where, "seed", f"must be in 1..{(1 << lfsr_width) - 1}, not {seed!r}",
                          "use a nonzero seed (0 locks up the LFSR)")
    return lfsr_width, steps_per_cycle


def round_expr(m, value, in_width, drop_bits, out_width, mode, random=None, name="rnd"):
    """Combinational rounding of signed ``value`` (``in_width`` bits): returns a
    ``signed(out_width)`` signal holding the saturated result (module docstring)."""
    d = drop_bits
    s = Signal(signed(in_width + 1), name=f"{name}_sum")
    if mode == "stochastic" and d:
        m.d.comb += s.eq(value + random[:d])
    elif mode == "nearest" and d:
        m.d.comb += s.eq(value + (1 << (d - 1)))
    else:
        m.d.comb += s.eq(value)
    q = Signal(signed(max(1, in_width + 1 - d)), name=f"{name}_q")
    m.d.comb += q.eq(s >> d)
    lo, hi = -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1
    out = Signal(signed(out_width), name=f"{name}_out")
    m.d.comb += out.eq(Mux(q > hi, hi, Mux(q < lo, lo, q)))
    return out


class StochasticRound(wiring.Component):
    """Streaming rounding stage (arithmetic in the module docstring).

    Parameters
    ----------
    in_fmt, out_fmt : (I, F)
        Fixed-point formats of the input accumulator and the output; widths
        I + F in 1..48, F >= 0, and D = F_in - F_out >= 0.
    mode : "stochastic" | "nearest" | "truncate"
        Fixed at generation time.
    lfsr_width : int or None
        Width of the LFSR (> D; default min(32, max(16, D + 8))).
    seed : int
        LFSR seed (nonzero).
    steps_per_cycle : int or None
        LFSR steps per rounded value (>= D; default D).

    Ports
    -----
    i : stream of ``signed(I_in + F_in)`` accumulator codes
    o : stream of ``signed(I + F)`` rounded, saturated codes

    Timing
    ------
    Latency 1 cycle (registered output), one value per cycle;
    ``i.ready = ~o.valid | o.ready``. The LFSR advances on every input transfer.
    """

    def __init__(self, in_fmt, out_fmt, mode="stochastic", lfsr_width=None, seed=1, steps_per_cycle=None):
        where = "StochasticRound"
        self.in_fmt = check_format(in_fmt, where, "in_fmt")
        self.out_fmt = check_format(out_fmt, where, "out_fmt")
        self.drop_bits = self.in_fmt[1] - self.out_fmt[1]
        self.mode = mode
        self.lfsr_width, self.steps_per_cycle = check_rounding(
            where, mode, self.drop_bits, lfsr_width, steps_per_cycle, seed)
        self.seed = seed
        self.in_width = sum(self.in_fmt)
        self.out_width = sum(self.out_fmt)
        self.latency = 1
        super().__init__({
            "i": In(stream.Signature(signed(self.in_width))),
            "o": Out(stream.Signature(signed(self.out_width))),
        })

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]
        rnd = None
        if self.lfsr_width is not None:
            m.submodules.lfsr = lfsr = LFSR(self.lfsr_width, self.seed, self.steps_per_cycle)
            m.d.comb += lfsr.en.eq(self.i.valid & advance)
            rnd = lfsr.state[0]
        out = round_expr(m, self.i.payload, self.in_width, self.drop_bits, self.out_width, self.mode, rnd)
        with m.If(advance):
            m.d.sync += [self.o.payload.eq(out), self.o.valid.eq(self.i.valid)]
        return m

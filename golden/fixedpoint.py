"""Fixed point (I, F): quantize, saturate, and the rounding stages of the hardware.

Format (I, F): W = I + F bit two's complement, value = code * 2^-F, code in
[-2^(W-1), 2^(W-1) - 1], i.e. values in [-2^(I-1), 2^(I-1) - 2^-F] (Gupta et
al. <IL, FL>). Codes are int64 arrays.

Rounding stage (drop D LSBs of an integer accumulator, then saturate to a
signed ``out_width``-bit code)::

    truncate:        (acc + 0)           >> D
    round_nearest:   (acc + 2**(D-1))    >> D      (ties go up, toward +inf)
    stochastic:      (acc + r)           >> D      r = D random bits, 0 <= r < 2**D
    then             clip to [-2**(out_width-1), 2**(out_width-1) - 1]

``>>`` is the arithmetic shift (floor division by 2^D). With r uniform,
stochastic rounding is unbiased: it rounds up with probability
(acc mod 2^D) / 2^D. The hardware takes r from an LFSR
(:func:`qnnfab.golden.lfsr.lfsr_words`), so golden and RTL see the same bits.
Accumulators must fit in 62 bits.
"""

from dataclasses import dataclass

import numpy as np

from ._util import ConfigError, as_int_array, check_range

__all__ = ["FixedFormat", "saturate", "truncate", "round_nearest", "stochastic_round", "shift_round",
           "quantize", "to_float"]


@dataclass(frozen=True)
class FixedFormat:
    """Two's complement fixed point with ``I`` integer bits (sign included) and ``F`` fraction bits."""

    I: int
    F: int

    def __post_init__(self):
        if not isinstance(self.I, (int, np.integer)) or not isinstance(self.F, (int, np.integer)):
            raise ConfigError("FixedFormat", "I/F", f"must be ints, got ({self.I!r}, {self.F!r})")
        if self.I + self.F < 1 or self.I + self.F > 62 or self.F < 0:
            raise ConfigError("FixedFormat", "I/F", f"need F >= 0 and 1 <= I + F <= 62, got ({self.I}, {self.F})",
                              "e.g. FixedFormat(1, 7) for ap_fixed<8,1>")

    @property
    def width(self):
        return self.I + self.F

    @property
    def eps(self):
        return 2.0 ** -self.F

    @property
    def min_code(self):
        return -(1 << (self.width - 1))

    @property
    def max_code(self):
        return (1 << (self.width - 1)) - 1

    @property
    def min_value(self):
        return self.min_code * self.eps

    @property
    def max_value(self):
        return self.max_code * self.eps

    def product(self, other):
        """Format of the exact product of two codes: (I1 + I2, F1 + F2)."""
        return FixedFormat(self.I + other.I, self.F + other.F)


def saturate(q, width, signed=True):
    """Clip integer codes to a ``width``-bit signed (or unsigned) range; returns int64."""
    q = as_int_array(q, "saturate", "q").astype(np.int64, copy=False)
    width = int(width)
    if not 1 <= width <= 63:
        raise ConfigError("saturate", "width", f"must be in 1..63, got {width}")
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    return np.clip(q, lo, hi)


def shift_round(acc, drop_bits, mode="nearest", random_bits=None, out_width=None):
    """Drop ``drop_bits`` LSBs of integer ``acc`` (any shape) with ``mode`` in
    "truncate" / "nearest" / "stochastic", then saturate to signed ``out_width``
    bits (None: no saturation). ``random_bits``: integers broadcastable to acc,
    each in [0, 2^drop_bits), required for "stochastic". Returns int64.
    """
    where = f"shift_round({mode})" if mode != "stochastic" else "stochastic_round"
    a = as_int_array(acc, where, "acc").astype(np.int64, copy=False)
    d = int(drop_bits)
    if d < 0 or d > 61:
        raise ConfigError(where, "drop_bits", f"must be in 0..61, got {d}")
    if mode == "truncate":
        add = 0
    elif mode == "nearest":
        add = (1 << (d - 1)) if d else 0
    elif mode == "stochastic":
        if random_bits is None:
            raise ConfigError(where, "random_bits", "stochastic rounding needs D random bits per value",
                              "pass lfsr_words(...) or rng.integers(0, 2**D, shape)")
        r = as_int_array(random_bits, where, "random_bits").astype(np.int64, copy=False)
        check_range(r, 0, (1 << d) - 1, where, "random_bits", f"{d}-bit random words")
        try:
            np.broadcast_shapes(r.shape, a.shape)
        except ValueError:
            raise ConfigError(where, "random_bits", f"shape {r.shape} does not broadcast to acc {a.shape}",
                              "give one random word per value") from None
        add = r
    else:
        raise ConfigError(where, "mode", f"must be 'truncate', 'nearest' or 'stochastic', got {mode!r}")
    out = (a + add) >> d
    if out_width is not None:
        out = saturate(out, out_width)
    return np.asarray(out, np.int64)


def truncate(acc, drop_bits, out_width=None):
    """Floor: ``acc >> drop_bits``, then saturate (see module docstring)."""
    return shift_round(acc, drop_bits, "truncate", None, out_width)


def round_nearest(acc, drop_bits, out_width=None):
    """Round to nearest, ties up: ``(acc + 2**(D-1)) >> D``, then saturate."""
    return shift_round(acc, drop_bits, "nearest", None, out_width)


def stochastic_round(acc, drop_bits, random_bits, out_width=None):
    """Stochastic rounding: ``(acc + r) >> D`` with r = ``random_bits`` (0 <= r < 2^D), then saturate.

    ``acc``: integer array (any shape); ``random_bits``: integer array
    broadcastable to acc (one D-bit word per value, e.g. from
    ``lfsr_words``); ``out_width``: signed output width or None. Returns int64.
    """
    return shift_round(acc, drop_bits, "stochastic", random_bits, out_width)


def quantize(x, fmt, rounding="nearest", random_bits=None, random_width=None, rng=None):
    """Real values -> saturated integer codes of ``fmt`` (int64, same shape).

    ``rounding``: "nearest" (floor(x*2^F + 1/2)), "truncate" (floor) or
    "stochastic". Stochastic takes either ``random_bits`` (D-bit integers,
    D = ``random_width``): x is first floored to F + D fraction bits, then
    rounded with :func:`stochastic_round` (the integer hardware path); or an
    ``rng`` (numpy Generator): floor(x*2^F + u), u uniform in [0, 1).
    """
    if not isinstance(fmt, FixedFormat):
        raise ConfigError("quantize", "fmt", f"must be a FixedFormat, got {fmt!r}", "FixedFormat(I, F)")
    x = np.asarray(x, np.float64)
    s = np.ldexp(x, fmt.F)
    big = float(2**62)
    if rounding == "nearest":
        q = np.floor(np.clip(s + 0.5, -big, big))
    elif rounding == "truncate":
        q = np.floor(np.clip(s, -big, big))
    elif rounding == "stochastic":
        if random_bits is not None:
            if random_width is None:
                raise ConfigError("quantize", "random_width", "random_bits need their width D", "pass random_width=D")
            d = int(random_width)
            y = np.floor(np.clip(np.ldexp(x, fmt.F + d), -big / 2**d, big / 2**d)).astype(np.int64)
            return stochastic_round(y, d, random_bits, fmt.width)
        if rng is None:
            raise ConfigError("quantize", "rng", "stochastic rounding needs random_bits or rng",
                              "pass rng=np.random.default_rng(seed)")
        q = np.floor(np.clip(s + rng.random(s.shape), -big, big))
    else:
        raise ConfigError("quantize", "rounding", f"must be 'nearest', 'truncate' or 'stochastic', got {rounding!r}")
    return np.clip(q, fmt.min_code, fmt.max_code).astype(np.int64)


def to_float(q, fmt):
    """Codes -> float64 values (code * 2^-F)."""
    return np.ldexp(np.asarray(q, np.float64), -fmt.F)

"""Data kinds: how an integer array is stored and what values it stands for.

One definition, used by the network configs, the golden models, the RTL,
the resource model and the trainer. A :class:`DataKind` is a kind and a
stored width:

===========  =====  ==============================  ==========================  ==================
kind         bits   stored integers                 values                      hardware element
===========  =====  ==============================  ==========================  ==================
"bipolar"    1      bits {0, 1}                     0 -> -1, 1 -> +1            ``unsigned(1)``
"ternary"    2      {-1, 0, +1}                     itself                      ``signed(2)``
"uint"       k      [0, 2^k - 1]                    itself                      ``unsigned(k)``
"int"        k      [-2^(k-1), 2^(k-1) - 1]         itself (two's complement)   ``signed(k)``
===========  =====  ==============================  ==========================  ==================

A stream word of N lanes holds N elements, element 0 at the LSBs
(:meth:`DataKind.layout`). Ternary elements are 2-bit two's complement
(-1 -> 0b11, 0 -> 0b00, +1 -> 0b01; 0b10 is never stored).

Accumulators of a dot product over N terms (:func:`accumulator_range`):
bipolar x bipolar accumulates the XNOR popcount P in [0, N] (as FINN; the
dot product is 2P - N); every other pair accumulates the integer dot product
of the values.

NumPy only; Amaranth is imported inside :meth:`DataKind.shape` and
:meth:`DataKind.layout` so that the golden models stay free of it.
"""

from dataclasses import dataclass
from numbers import Integral

import numpy as np

from qnnfab.errors import ConfigError

__all__ = ["KINDS", "WEIGHT_KINDS", "ACTIVATION_KINDS", "MAX_BITS", "DataKind", "check_range", "product_range", "dot_range",
           "accumulator_range", "range_bits"]

KINDS = ("bipolar", "ternary", "uint", "int")
WEIGHT_KINDS = ("bipolar", "ternary", "int")        # what the hardware stores as weights
ACTIVATION_KINDS = ("bipolar", "uint", "int")       # what the hardware streams between layers
MAX_BITS = 62                                       # widest uint/int the int64 golden models hold exactly

_FIXED_BITS = {"bipolar": 1, "ternary": 2}


@dataclass(frozen=True)
class DataKind:
    """A data kind and its stored width (``bits`` is 1 for bipolar and 2 for ternary).

    Build one with :meth:`of`, which names the caller in its errors; the
    constructor checks the same rules.
    """

    kind: str
    bits: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "bits", _checked_bits(self.kind, self.bits, "DataKind"))

    @classmethod
    def of(cls, kind, bits=None, where="DataKind"):
        """The kind ``kind`` of width ``bits`` (needed for "uint"/"int", ignored for the others).

        Raises :class:`~qnnfab.errors.ConfigError` naming ``where`` for an
        unknown kind or a missing or out-of-range width.
        """
        return cls(kind, _checked_bits(kind, bits, where))

    @property
    def name(self):
        """"bipolar", "ternary", "uint4", "int8", ..."""
        return self.kind if self.kind in _FIXED_BITS else f"{self.kind}{self.bits}"

    @property
    def width(self):
        """Bits of one stored element."""
        return self.bits

    @property
    def signed(self):
        """Whether the stored element is two's complement."""
        return self.kind in ("ternary", "int")

    @property
    def stored_range(self):
        """(lo, hi) of the stored integers."""
        if self.kind == "bipolar":
            return 0, 1
        if self.kind == "ternary":
            return -1, 1
        if self.kind == "uint":
            return 0, (1 << self.bits) - 1
        return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1

    @property
    def value_range(self):
        """(lo, hi) of the arithmetic values."""
        return (-1, 1) if self.kind == "bipolar" else self.stored_range

    @property
    def max_abs(self):
        """Largest magnitude of a value."""
        lo, hi = self.value_range
        return max(abs(lo), abs(hi))

    def values(self, stored):
        """Stored integers -> int64 values (bipolar bits to -1/+1; the others unchanged)."""
        a = np.asarray(stored).astype(np.int64, copy=False)
        return 2 * a - 1 if self.kind == "bipolar" else a

    def stored(self, values):
        """Values -> int64 stored integers (the inverse of :meth:`values`)."""
        a = np.asarray(values).astype(np.int64, copy=False)
        return (a + 1) // 2 if self.kind == "bipolar" else a

    def check_stored(self, a, where, field, what=None):
        """Raise :class:`~qnnfab.errors.ConfigError` unless every element of ``a`` is a stored integer of this kind."""
        what = what or (f"{self.name} data, stored as bits (1 = +1)" if self.kind == "bipolar" else f"{self.name} data")
        check_range(np.asarray(a), *self.stored_range, where, field, what)

    def shape(self):
        """The Amaranth shape of one element (``signed`` for ternary and int)."""
        from amaranth.hdl import signed, unsigned
        return signed(self.bits) if self.signed else unsigned(self.bits)

    def layout(self, lanes):
        """The Amaranth payload layout of ``lanes`` elements, element 0 at the LSBs."""
        from amaranth.lib import data
        if not isinstance(lanes, Integral) or isinstance(lanes, bool) or lanes < 1:
            raise TypeError(f"Number of lanes must be a positive integer, not {lanes!r}")
        return data.ArrayLayout(self.shape(), int(lanes))


def check_range(a, lo, hi, where, field, what):
    """Raise :class:`~qnnfab.errors.ConfigError` unless ``lo <= a <= hi`` everywhere (``what`` names the values)."""
    if a.size == 0:
        return
    amin, amax = a.min(), a.max()
    if amin < lo or amax > hi:
        raise ConfigError(where, field, f"values must be {what} (range [{lo}, {hi}]), found [{amin}, {amax}]",
                          f"clip or re-quantize {field} into [{lo}, {hi}]")


def _checked_bits(kind, bits, where):
    if kind in _FIXED_BITS:
        return _FIXED_BITS[kind]
    if kind not in KINDS:
        raise ConfigError(where, "kind", f"unknown data kind {kind!r}", f"use one of {KINDS}")
    if bits is None or isinstance(bits, bool) or not isinstance(bits, Integral) or not 1 <= bits <= MAX_BITS:
        raise ConfigError(where, "bits", f"kind {kind!r} needs a bit width 1..{MAX_BITS}, not {bits!r}",
                          "pass bits=k for k-bit data")
    return int(bits)


def product_range(a, b):
    """(lo, hi) of the product of a value of kind ``a`` and one of kind ``b``."""
    (al, ah), (bl, bh) = a.value_range, b.value_range
    c = (al * bl, al * bh, ah * bl, ah * bh)
    return min(c), max(c)


def dot_range(n, a, b):
    """(lo, hi) of a dot product of ``n`` terms of kinds ``a`` x ``b``."""
    lo, hi = product_range(a, b)
    return n * lo, n * hi


def accumulator_range(n, w, x):
    """(lo, hi) of the accumulator of ``n`` terms: the popcount [0, n] for bipolar x bipolar, else :func:`dot_range`."""
    if w.kind == "bipolar" and x.kind == "bipolar":
        return 0, n
    return dot_range(n, w, x)


def range_bits(lo, hi):
    """``(bits, signed)`` of the narrowest two's complement or unsigned integer
    holding every integer in ``[lo, hi]`` (at least 1 bit unsigned, 2 bits signed)."""
    lo, hi = int(lo), int(hi)
    if lo >= 0:
        return max(1, hi.bit_length()), False
    return max(1, (-lo - 1).bit_length(), hi.bit_length()) + 1, True

"""Folding: the legal PE/SIMD of a layer and its cycles per frame (one definition for every room).

A layer with an MH x MW weight matrix runs on PE processing elements (PE
divides MH) taking SIMD columns per cycle (SIMD divides MW); one
matrix-vector product takes (MH/PE) * (MW/SIMD) cycles (FINN's model, one
PE x SIMD step per cycle). Feature maps stream channel-last in words of SIMD
channels, so a convolution's or max pool's SIMD divides the channels, and so
does the SIMD of a fully connected layer reading a flattened feature map.

Cycles per frame (the hardware reaches them unstalled; ``qnnfab sim``
measures them):

* fc: ``(MH/PE) * (MW/SIMD)``;
* conv: the slower of its MVTU, ``OH*OW * (OFM/PE) * (K*K*IFM/SIMD)``, and its
  sliding window, which reads ``H*W*IFM/SIMD`` words and writes
  ``OH*OW*K*K*IFM/SIMD``;
* maxpool: the slower of reading ``H*W*C/SIMD`` words and scanning
  ``OH*OW*K*K*C/SIMD`` window words.
"""

import math

from qnnfab.errors import ConfigError, check_int

__all__ = ["divisors", "largest_divisor", "check_divisor", "simd_choices", "pe_choices", "fc_cycles", "conv_cycles",
           "maxpool_cycles", "layer_cycles"]


def divisors(n):
    """The divisors of ``n`` in increasing order."""
    return [d for d in range(1, n + 1) if n % d == 0]


def largest_divisor(n, limit):
    """The largest divisor of ``n`` not above ``limit`` (1 if ``limit`` < 1)."""
    return max(d for d in divisors(n) if d <= max(1, limit))


def check_divisor(where, field, value, n, of):
    """Return ``value`` if it is a positive integer dividing ``n`` (named ``of``, e.g. "MH"), else raise
    :class:`~qnnfab.errors.ConfigError` listing the divisors."""
    check_int(where, field, value, 1, f"choose {field} among {divisors(n)}")
    if n % value:
        raise ConfigError(where, field, f"must divide {of} = {n}, not {value!r}", f"choose {field} among {divisors(n)}")
    return value


def simd_choices(layer_type, in_shape):
    """Legal SIMD of a layer of type "fc" | "conv" | "maxpool" reading ``in_shape``, increasing."""
    if layer_type == "fc":
        return [s for s in divisors(math.prod(in_shape)) if len(in_shape) != 3 or in_shape[2] % s == 0]
    return divisors(in_shape[2])


def pe_choices(out):
    """Legal PE of an fc/conv layer with ``out`` rows (output channels), increasing."""
    return divisors(out)


def fc_cycles(mh, mw, pe, simd):
    """Cycles per frame of an fc layer (MH rows, MW columns)."""
    return (mh // pe) * (mw // simd)


def conv_cycles(in_shape, out_shape, kernel, pe, simd):
    """Cycles per frame of a convolution (``in_shape`` (H, W, IFM), ``out_shape`` (OH, OW, OFM))."""
    h, w, c = in_shape
    oh, ow, ofm = out_shape
    mvtu = oh * ow * fc_cycles(ofm, kernel * kernel * c, pe, simd)
    window = max(oh * ow * kernel * kernel * c // simd, h * w * c // simd)
    return max(mvtu, window)


def maxpool_cycles(in_shape, out_shape, kernel, simd):
    """Cycles per frame of a max pool (``in_shape`` (H, W, C), ``out_shape`` (OH, OW, C))."""
    h, w, c = in_shape
    oh, ow, _ = out_shape
    return max(oh * ow * kernel * kernel * c // simd, h * w * c // simd)


def layer_cycles(L):
    """Cycles per frame of a :class:`qnnfab.netconfig.LayerSpec` at its PE/SIMD."""
    if L.type == "fc":
        return fc_cycles(L.out, math.prod(L.in_shape), L.pe, L.simd)
    if L.type == "conv":
        return conv_cycles(L.in_shape, L.out_shape, L.kernel, L.pe, L.simd)
    return maxpool_cycles(L.in_shape, L.out_shape, L.kernel, L.simd)

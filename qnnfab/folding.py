"""Folding: the legal PE/SIMD of a layer and its cycles per frame (one definition for every room).

A layer with an MH x MW weight matrix runs on PE processing elements (PE
divides MH) taking SIMD columns per cycle (SIMD divides MW); one
matrix-vector product takes (MH/PE) * (MW/SIMD) cycles (FINN's model, one
PE x SIMD step per cycle). Feature maps stream channel-last in words of SIMD
channels, so a max pool's SIMD divides the channels, and so does the SIMD of
a fully connected layer reading a flattened feature map.

A convolution's SIMD either divides its input channels C (its sliding window
emits part of one kernel position per word, and reads words of SIMD
channels), or is ``m * C`` with ``m > 1`` dividing K*K: the window emits m
whole kernel positions per word (an im2col word of m consecutive (ky, kx)
positions, up to the whole window at m = K*K) and reads whole pixels, words
of C channels (:func:`in_simd`).

Cycles per frame (the hardware reaches them unstalled; ``qnnfab sim``
measures them):

* fc: ``(MH/PE) * (MW/SIMD)``;
* conv: the slower of its MVTU, ``OH*OW * (OFM/PE) * (K*K*IFM/SIMD)``, and its
  sliding window, which reads ``H*W*IFM/in_simd`` words (one a cycle) and
  writes ``OH*OW*K*K*IFM/SIMD``;
* maxpool: the slower of reading ``H*W*C/SIMD`` words and scanning
  ``OH*OW*K*K*C/SIMD`` window words;
* add, global_avgpool: reading ``H*W*C/SIMD`` words (of each input); concat:
  writing ``H*W*(Ca+Cb)/SIMD`` words.
"""

import math

from qnnfab.errors import ConfigError, check_int

__all__ = ["divisors", "largest_divisor", "check_divisor", "simd_choices", "concat_simd_choices", "conv_simd_choices",
           "check_conv_simd", "conv_in_simd", "in_simd", "pe_choices", "fc_cycles", "conv_cycles", "maxpool_cycles", "layer_cycles",
           "window_buffer_rows"]


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


def simd_choices(layer_type, in_shape, kernel=1):
    """Legal SIMD of a layer of type "fc" | "conv" | "maxpool" reading ``in_shape``, increasing
    (a convolution's with its ``kernel``: :func:`conv_simd_choices`)."""
    if layer_type == "fc":
        return [s for s in divisors(math.prod(in_shape)) if len(in_shape) != 3 or in_shape[2] % s == 0]
    if layer_type == "conv":
        return conv_simd_choices(in_shape[2], kernel)
    return divisors(in_shape[2])


def concat_simd_choices(in_shapes):
    """Legal SIMD of a channel concatenation of images of ``in_shapes``, increasing: the divisors of
    both inputs' channels (each word holds channels of one input)."""
    return divisors(math.gcd(*(shape[2] for shape in in_shapes)))


def conv_simd_choices(channels, kernel):
    """Legal SIMD of a K x K convolution over ``channels`` input channels, increasing: the
    divisors of C, then ``m * C`` for every ``m > 1`` dividing K*K (m kernel positions per word)."""
    return divisors(channels) + [m * channels for m in divisors(kernel * kernel)[1:]]


def check_conv_simd(where, simd, channels, kernel):
    """Return ``simd`` if it is a legal SIMD of a K x K convolution over ``channels`` channels
    (:func:`conv_simd_choices`), else raise :class:`~qnnfab.errors.ConfigError` listing the choices."""
    choices = conv_simd_choices(channels, kernel)
    check_int(where, "simd", simd, 1, f"choose simd among {choices}")
    if simd not in choices:
        raise ConfigError(where, "simd", f"{simd} neither divides the {channels} input channels nor is m x "
                          f"{channels} with m dividing {kernel}x{kernel} (kernel positions per word)",
                          f"choose simd among {choices}")
    return simd


def conv_in_simd(channels, simd):
    """Elements per input word of a convolution at ``simd``: SIMD when it divides the channels,
    else C (whole pixels, when SIMD = m * C)."""
    return min(simd, channels)


def in_simd(L):
    """Elements per word of the input stream of :class:`qnnfab.netconfig.LayerSpec` ``L``."""
    return conv_in_simd(L.in_shape[2], L.simd) if L.type == "conv" else L.simd


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
    window = max(oh * ow * kernel * kernel * c // simd, h * w * c // conv_in_simd(c, simd))
    return max(mvtu, window)


def maxpool_cycles(in_shape, out_shape, kernel, simd):
    """Cycles per frame of a max pool (``in_shape`` (H, W, C), ``out_shape`` (OH, OW, C))."""
    h, w, c = in_shape
    oh, ow, _ = out_shape
    return max(oh * ow * kernel * kernel * c // simd, h * w * c // simd)


def window_buffer_rows(height, width, kernel, stride, pad):
    """Image rows KR held by a sliding window's line buffer (:class:`qnnfab.rtl.sliding_window.SlidingWindow`).

    The buffer keeps the last KR*W pixels; a slot is reused as soon as no
    current or later window needs its pixel. K rows (at most H) hold every
    window, but then the next image's first window waits for this image's
    last one at every image boundary (a refill stall of about a row). When
    the reader starts an image's last window at top-left (fy, fx) (clamped
    into the image), the writer may have stored ``(fy + KR)*W + fx - H*W``
    pixels of the next image; its first window needs ``(K-1-P)*W + K-P`` of
    them. KR is the least number of rows >= min(K, H) that covers them, at
    most H (the writer stays less than one image ahead of the reader).
    """
    oh = (height + 2 * pad - kernel) // stride + 1
    ow = (width + 2 * pad - kernel) // stride + 1
    fy = min(max((oh - 1) * stride - pad, 0), height - 1)
    fx = min(max((ow - 1) * stride - pad, 0), width - 1)
    edge = kernel - 1 - pad                      # last row / column of the first window
    need = min(edge, height - 1) * width + min(edge, width - 1) + 1
    rows = min(kernel, height)
    while rows < height and (fy + rows) * width + fx - height * width < need:
        rows += 1
    return rows


def layer_cycles(L):
    """Cycles per frame of a :class:`qnnfab.netconfig.LayerSpec` at its PE/SIMD."""
    if L.type == "fc":
        return fc_cycles(L.out, math.prod(L.in_shape), L.pe, L.simd)
    if L.type == "conv":
        return conv_cycles(L.in_shape, L.out_shape, L.kernel, L.pe, L.simd)
    if L.type in ("add", "global_avgpool"):       # one input word (of each input) per cycle
        return math.prod(L.in_shape) // L.simd
    if L.type == "concat":                         # one output word per cycle
        return math.prod(L.out_shape) // L.simd
    return maxpool_cycles(L.in_shape, L.out_shape, L.kernel, L.simd)

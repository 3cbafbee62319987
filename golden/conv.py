"""Convolution lowering (im2col / sliding window) and max pooling.

Layouts: feature maps are channel-last, (H, W, C) for one image or
(B, H, W, C) for a batch (NHWC), streamed in raster order. The sliding-window
unit emits, for each output pixel in raster order (oy outer, ox inner), one
window vector ordered (ky, kx, c) with c fastest, i.e. the loop nest
``for oy: for ox: for ky: for kx: for c`` (finn-hlslib
ConvolutionInputGenerator). A convolution is then ``im2col(x) @ W.T`` with
``W = conv_weights_to_matrix(w_oihw)`` of shape (OFM, KH*KW*IFM).

Geometry: ``OH = (H + 2*PH - KH) // SH + 1`` (same for W); padding adds PH
rows at top and bottom and PW columns left and right, filled with
``pad_value``. For bipolar data stored as bits, ``pad_value=0`` pads with -1
(the hardware's zero bits) and ``pad_value=1`` pads with +1; the arithmetic
"zero" does not exist in bipolar data.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._util import ConfigError, as_pair

__all__ = ["conv_output_size", "im2col", "conv_weights_to_matrix", "maxpool", "pool_output_size"]


def conv_output_size(size, kernel, stride=1, pad=0, where="conv_output_size"):
    """(OH, OW) of a convolution over ``size`` = (H, W); raises if the kernel does not fit."""
    h, w = size
    kh, kw = as_pair(kernel, where, "kernel")
    sh, sw = as_pair(stride, where, "stride")
    ph, pw = as_pair(pad, where, "pad", minimum=0)
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ConfigError(where, "kernel", f"{kh}x{kw} kernel does not fit a {h}x{w} input with padding {ph},{pw}",
                          "use a smaller kernel or more padding")
    return oh, ow


def _as_nhwc(x, where):
    x = np.asarray(x)
    if x.ndim == 3:
        return x[None], True
    if x.ndim == 4:
        return x, False
    raise ConfigError(where, "x", f"expected (H, W, C) or (B, H, W, C), got shape {x.shape}", "use NHWC layout")


def im2col(x, kernel, stride=1, pad=0, pad_value=0):
    """Sliding-window vectors in hardware stream order.

    ``x``: (H, W, C) or (B, H, W, C), any dtype (also uint64 channel words of
    packed bipolar data). ``kernel``, ``stride``: int or (rows, cols);
    ``pad``: int or (PH, PW), symmetric, filled with ``pad_value``.
    Returns (OH, OW, KH*KW*C) or (B, OH, OW, KH*KW*C) with the same dtype,
    window vector index ``(ky*KW + kx)*C + c``. Reshape to (B, OH*OW, K) for the
    stream of windows in raster order.
    """
    where = "im2col"
    xb, single = _as_nhwc(x, where)
    B, H, W, C = xb.shape
    kh, kw = as_pair(kernel, where, "kernel")
    sh, sw = as_pair(stride, where, "stride")
    ph, pw = as_pair(pad, where, "pad", minimum=0)
    oh, ow = conv_output_size((H, W), (kh, kw), (sh, sw), (ph, pw), where)
    if ph or pw:
        xp = np.full((B, H + 2 * ph, W + 2 * pw, C), pad_value, dtype=xb.dtype)
        xp[:, ph:ph + H, pw:pw + W] = xb
    else:
        xp = xb
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))  # (B, H', W', C, kh, kw)
    win = win[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]
    out = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(B, oh, ow, kh * kw * C)
    return out[0] if single else out


def conv_weights_to_matrix(w, layout="OIHW"):
    """Convolution weights -> (OFM, KH*KW*IFM) matrix in im2col (ky, kx, c) column order.

    ``w``: (OFM, IFM, KH, KW) for layout "OIHW" (PyTorch/Brevitas) or
    (OFM, KH, KW, IFM) for "OHWI". Same dtype as the input.
    """
    w = np.asarray(w)
    if w.ndim != 4:
        raise ConfigError("conv_weights_to_matrix", "w", f"must be 4-D ({layout}), got shape {w.shape}")
    if layout == "OIHW":
        w = w.transpose(0, 2, 3, 1)
    elif layout != "OHWI":
        raise ConfigError("conv_weights_to_matrix", "layout", f"must be 'OIHW' or 'OHWI', got {layout!r}")
    return np.ascontiguousarray(w).reshape(w.shape[0], -1)


def pool_output_size(size, kernel, stride=None, where="pool_output_size"):
    """(OH, OW) of a max pool without padding: (H - K) // S + 1."""
    kh, kw = as_pair(kernel, where, "kernel")
    sh, sw = as_pair(kernel if stride is None else stride, where, "stride")
    h, w = size
    if h < kh or w < kw:
        raise ConfigError(where, "kernel", f"{kh}x{kw} pool window does not fit a {h}x{w} input",
                          "use a smaller pool or drop the pool layer")
    return (h - kh) // sh + 1, (w - kw) // sw + 1


def maxpool(x, kernel, stride=None, kind="uint"):
    """Max pooling without padding over (H, W, C) or (B, H, W, C).

    ``kind``: "uint" / "int" (max of integers), "bipolar" (bits, OR = max since
    bit 1 = +1) or "packed" (uint64 words of packed bipolar channels: bitwise
    OR of the words). ``stride`` defaults to ``kernel``. Windows that would
    run past the edge are dropped (floor). Output has the input's dtype.
    """
    where = "maxpool"
    if kind not in ("uint", "int", "bipolar", "packed"):
        raise ConfigError(where, "kind", f"must be 'uint', 'int', 'bipolar' or 'packed', got {kind!r}")
    xb, single = _as_nhwc(x, where)
    if kind == "packed" and xb.dtype != np.uint64:
        raise ConfigError(where, "x", f"kind 'packed' needs uint64 words, got {xb.dtype}", "pack with pack_bits")
    B, H, W, C = xb.shape
    kh, kw = as_pair(kernel, where, "kernel")
    sh, sw = as_pair(kernel if stride is None else stride, where, "stride")
    oh, ow = pool_output_size((H, W), (kh, kw), (sh, sw), where)
    red = np.bitwise_or.reduce if kind == "packed" else np.max
    if (kh, kw) == (sh, sw):  # non-overlapping: a reshape, no window copy
        v = xb[:, : oh * kh, : ow * kw].reshape(B, oh, kh, ow, kw, C)
        out = red(red(v, axis=4), axis=2)
    else:
        win = sliding_window_view(xb, (kh, kw), axis=(1, 2))[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]
        out = red(red(win, axis=5), axis=4)
    out = np.ascontiguousarray(out)
    return out[0] if single else out

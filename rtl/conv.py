"""Streaming convolution layer: sliding window -> stream FIFO -> MVTU (matrix product + thresholds).

FINN's lowering of a convolution: the :class:`SlidingWindow` turns the input
feature map into the im2col stream (one K*K*IFM vector per output pixel, order
(ky, kx, c)), and the :class:`MVTU` multiplies each vector with the weight
matrix ``w.transpose(0, 2, 3, 1).reshape(OFM, K*K*IFM)`` (same column order)
and applies the thresholds.
"""

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError
from qnnfab.kinds import DataKind

from .mvtu import MVTU
from .sliding_window import SlidingWindow
from .stream_fifo import StreamFIFO

__all__ = ["ConvLayer"]


class ConvLayer(wiring.Component):
    """Convolution + threshold layer over an NHWC raster stream.

    Parameters
    ----------
    height, width : int
        Input image H x W.
    weights : ndarray (OFM, IFM, K, K) of integers (OIHW, as PyTorch)
        Stored weights, see :class:`MVTU` (``weight_kind``). K is taken from
        the shape (square kernels, 1..7).
    thresholds : ndarray (OFM, N) or None
        Thresholds in the MVTU's accumulator domain (popcount for bipolar x
        bipolar, else the signed dot product); None outputs raw accumulators.
    stride, pad, pad_value : int
        As :class:`SlidingWindow` (pad_value is the stored element value:
        0 is -1 for bipolar activations).
    simd : int
        The MVTU's SIMD, im2col elements per word: a divisor of IFM (input
        words of SIMD channels), or ``m * IFM`` with m dividing K*K (the
        window emits m kernel positions per word, up to the whole window;
        input words are whole pixels): :func:`qnnfab.folding.conv_simd_choices`.
    pe : int
        Output channels per output word (divides OFM).
    weight_kind, weight_bits, act_kind, act_bits, pipeline, runtime, weight_memory, accumulator, popcount :
        Passed to :class:`MVTU` (``runtime``: weights loaded at run time
        through the ``load`` port, which goes to the MVTU's).
    fifo_depth : int or None
        Words of :class:`StreamFIFO` between window generator and MVTU
        (0: none). The MVTU also double-buffers one input vector. Default
        (None): 2 when SIMD <= IFM, else 0 (a vector is one to K*K/m wide
        words: the window's output register and the MVTU's double buffer
        keep it at one word per cycle, a FIFO of such words would cost
        ``SIMD * bits / 6 * 4`` LUT-RAM per 2 words).

    Ports
    -----
    i : stream of ``DataKind(act_kind, act_bits).layout(in_simd)``
        (:mod:`qnnfab.kinds`), ``in_simd = min(simd, IFM)``: input map, NHWC
        raster order, in_simd channels per word, ``payload[j]`` of word w of
        a pixel = channel w * in_simd + j.
    o : stream of ``lanes(out_shape, pe)``: output map, NHWC raster order, PE
        channels per word (OFM / PE words per pixel), ``payload[p]`` of word
        nf = channel nf*PE + p (``out_shape`` as :class:`MVTU`).

    Timing
    ------
    The window generator reads ``H*W*IFM/in_simd`` words and emits
    ``OH*OW*K*K*IFM/SIMD`` words per image, each at up to one per cycle; the
    MVTU takes ``OH*OW*(OFM/PE)*(K*K*IFM/SIMD)`` cycles per image. Back to back, an image takes about the larger of the two
    (:attr:`cycles_per_image`; the window has no refill stall at image
    boundaries); the first image adds the fill latency.
    """

    def __init__(self, height, width, weights, thresholds=None, *, stride=1, pad=0, pad_value=0, simd, pe,
                 weight_kind="bipolar", weight_bits=None, act_kind="bipolar", act_bits=None, pipeline=0,
                 fifo_depth=None, runtime=False, weight_memory="auto", accumulator="mux", popcount="adder-tree",
                 name="conv"):
        w = np.asarray(weights)
        if w.ndim != 4 or w.shape[2] != w.shape[3] or 0 in w.shape:
            raise ConfigError(name, "weights", f"must be 4-D (OFM, IFM, K, K) with a square kernel, got shape "
                              f"{w.shape}", "pass OIHW conv weights (PyTorch layout)")
        ofm, ifm, k, _ = w.shape
        if fifo_depth is None:   # wide words of several kernel positions: the MVTU's double buffer suffices
            fifo_depth = 0 if isinstance(simd, int) and simd > ifm else 2
        if isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < 0 or fifo_depth == 1:
            raise ConfigError(name, "fifo_depth", f"must be 0 (no FIFO) or >= 2, not {fifo_depth!r}",
                              "use 0 or a depth >= 2")
        matrix = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(ofm, k * k * ifm)
        try:
            elem = 1 if act_kind == "bipolar" else act_bits   # checked by the window (then the MVTU)
            if act_kind == "int" and isinstance(elem, int) and elem >= 2:
                elem = DataKind("int", elem).shape()
            self.window = SlidingWindow(height, width, ifm, simd, k, stride, pad, pad_value, elem)
        except ConfigError as e:
            raise ConfigError(f"{name} (sliding window)", e.field, e.problem, e.fix) from None
        oh, ow = self.window.out_height, self.window.out_width
        self.mvtu = MVTU(matrix, thresholds, pe=pe, simd=simd, weight_kind=weight_kind, weight_bits=weight_bits,
                         act_kind=act_kind, act_bits=act_bits, vectors=oh * ow, pipeline=pipeline,
                         runtime=runtime, weight_memory=weight_memory, accumulator=accumulator, popcount=popcount,
                         name=f"{name} (mvtu)")
        self.fifo = StreamFIFO(self.window.o.payload.shape(), fifo_depth) if fifo_depth else None
        self.height, self.width, self.ifm, self.ofm, self.kernel = height, width, ifm, ofm, k
        self.stride, self.pad, self.pad_value = stride, pad, pad_value
        self.simd, self.pe = simd, pe
        self.memory_groups = self.mvtu.memory_groups
        self.in_simd = self.window.in_simd
        self.out_height, self.out_width = oh, ow
        self.matrix = matrix
        self.in_words = self.window.in_words
        self.out_words = oh * ow * (ofm // pe)
        self.window_cycles = max(self.window.out_words, self.window.in_words)
        self.mvtu_cycles = oh * ow * self.mvtu.cycles_per_vector
        self.cycles_per_image = max(self.window_cycles, self.mvtu_cycles)
        ports = {
            "i": In(stream.Signature(self.window.i.payload.shape())),
            "o": Out(stream.Signature(self.mvtu.o.payload.shape())),
        }
        if runtime:
            ports["load"] = self.mvtu.signature.members["load"]
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self.window
        m.submodules.mvtu = self.mvtu
        wiring.connect(m, wiring.flipped(self.i), self.window.i)
        if self.fifo is not None:
            m.submodules.fifo = self.fifo
            wiring.connect(m, self.window.o, self.fifo.i)
            wiring.connect(m, self.fifo.o, self.mvtu.i)
        else:
            wiring.connect(m, self.window.o, self.mvtu.i)
        wiring.connect(m, self.mvtu.o, wiring.flipped(self.o))
        if self.mvtu.runtime:
            wiring.connect(m, wiring.flipped(self.load), self.mvtu.load)
        return m

"""Global pooling: the sum of every channel over the image, and global average pooling
as that sum followed by thresholds.

The counterpart of :func:`qnnfab.golden.graph.global_sum_pool` (and of
:func:`qnnfab.golden.threshold.multithreshold` on the sums for
:class:`GlobalAveragePool`).
"""

from amaranth.hdl import Module, Mux, Shape, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError, check_int
from qnnfab.folding import check_divisor

from .dot_product import range_shape
from .elementwise_add import shape_range
from .lanes import lanes
from .threshold import Threshold, connect_threshold_load, threshold_load_port

__all__ = ["GlobalSum", "GlobalAveragePool"]


class GlobalSum(wiring.Component):
    """Sums every channel of an NHWC image over its H*W pixels.

    Parameters
    ----------
    pixels : int
        H * W, pixels per image (>= 1).
    channels, simd : int
        C channels, SIMD per word (SIMD divides C).
    shape : shape-castable
        Input element shape, ``unsigned(k)`` or ``signed(k)``.

    Ports
    -----
    i : stream of ``lanes(shape, simd)``: NHWC raster order, ``payload[j]``
        of word w of a pixel = channel w * SIMD + j; pixels * C / SIMD words
        per image, images back to back.
    o : stream of ``lanes(sum_shape, simd)``: C / SIMD words per image, word w
        holding the sums of channels w * SIMD .. w * SIMD + SIMD - 1;
        ``sum_shape`` (``self.sum_shape``) is derived from pixels times the
        input range, so a sum never overflows.

    Resources and timing: partial sums wait in a delay line of C / SIMD
    words (``C * sum bits`` flip-flops). One input word per cycle; output
    word w is offered in the cycle after the last pixel's word w is taken
    (latency 1), so the pool keeps up with its input.
    ``i.ready = ~o.valid | o.ready``.
    """

    def __init__(self, pixels, channels, simd, shape, name="global sum"):
        check_int(name, "pixels", pixels, 1)
        check_int(name, "channels", channels, 1)
        check_divisor(name, "simd", simd, channels, "channels")
        s = Shape.cast(shape)
        lo, hi = shape_range(s)
        self.sum_shape = range_shape(lo * pixels, hi * pixels)
        self.pixels, self.channels, self.simd, self.cw = pixels, channels, simd, channels // simd
        self.in_words, self.out_words = pixels * self.cw, self.cw
        self.latency = 1
        super().__init__({
            "i": In(stream.Signature(lanes(s, simd))),
            "o": Out(stream.Signature(lanes(self.sum_shape, simd))),
        })

    def elaborate(self, platform):
        m = Module()
        cw, simd = self.cw, self.simd
        pixel = Signal(range(max(self.pixels, 2)))
        word = Signal(range(max(cw, 2)))
        layout = lanes(self.sum_shape, simd)
        line = [Signal(layout, name=f"partial_{k}") for k in range(cw)]   # line[-1]: this word's partial sum
        head = line[-1]
        first = pixel == 0
        total = Signal(layout)
        m.d.comb += [total[j].eq(Mux(first, self.i.payload[j], head[j] + self.i.payload[j])) for j in range(simd)]
        take = Signal()
        m.d.comb += [self.i.ready.eq(~self.o.valid | self.o.ready), take.eq(self.i.valid & self.i.ready)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += line[0].eq(total)
            m.d.sync += [line[k].eq(line[k - 1]) for k in range(1, cw)]
            with m.If(pixel == self.pixels - 1):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(total)]
            with m.If(word == cw - 1):
                m.d.sync += [word.eq(0), pixel.eq(Mux(pixel == self.pixels - 1, 0, pixel + 1))]
            with m.Else():
                m.d.sync += word.eq(word + 1)
        return m


class GlobalAveragePool(wiring.Component):
    """:class:`GlobalSum` followed by a :class:`~qnnfab.rtl.threshold.Threshold`: global average
    pooling with its requantization.

    Parameters: ``pixels``, ``channels``, ``simd``, ``shape`` as :class:`GlobalSum`;
    ``thresholds`` (C, N) integers sorted ascending per row, on the channel's
    sum (a threshold ``t`` on the average is ``ceil(t * pixels)`` on the sum).

    Ports: ``i`` as :class:`GlobalSum`; ``o``: stream of ``lanes(unsigned(n),
    simd)``, n = bit_length(N), C / SIMD words per image. With ``runtime``: the
    threshold unit's RAMs and its ``load`` port (:class:`~qnnfab.rtl.threshold.Threshold`,
    :attr:`memory_groups`).

    Timing: latency 1 + the threshold unit's ``n + 1``; one word per cycle.
    """

    def __init__(self, pixels, channels, simd, shape, thresholds, runtime=False, name="global average pool"):
        self.sum = GlobalSum(pixels, channels, simd, shape, name=name)
        s = self.sum.sum_shape
        self.threshold = Threshold(thresholds, pe=simd, in_width=s.width, in_signed=s.signed, runtime=runtime,
                                   name=name)
        self.memory_groups = self.threshold.memory_groups
        if self.threshold.channels != channels:
            raise ConfigError(name, "thresholds", f"has {self.threshold.channels} rows for {channels} channels",
                              "pass one row of thresholds per channel")
        self.pixels, self.channels, self.simd = pixels, channels, simd
        self.in_words, self.out_words = self.sum.in_words, self.sum.out_words
        self.out_bits = self.threshold.out_bits
        self.latency = self.sum.latency + self.threshold.latency
        super().__init__({
            "i": In(stream.Signature(lanes(shape, simd))),
            "o": Out(stream.Signature(lanes(unsigned(self.out_bits), simd))),
            **threshold_load_port(self.threshold),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.sum = self.sum
        m.submodules.threshold = self.threshold
        wiring.connect(m, wiring.flipped(self.i), self.sum.i)
        wiring.connect(m, self.sum.o, self.threshold.i)
        wiring.connect(m, self.threshold.o, wiring.flipped(self.o))
        connect_threshold_load(m, self, self.threshold)
        return m

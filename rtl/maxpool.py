"""Streaming max pooling: K x K windows, stride S, bipolar (OR) or unsigned (max).

The counterpart of :func:`qnnfab.golden.maxpool` (no padding; windows that
would run past the edge are dropped). Built as a :class:`SlidingWindow`
(padding 0) followed by a window reducer that folds the K*K words of each
channel word with an element-wise max.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError

from .lanes import lanes
from .sliding_window import SlidingWindow

__all__ = ["MaxPool", "WindowMax"]


class WindowMax(wiring.Component):
    """Element-wise max over the K*K window positions of an im2col stream.

    Parameters: ``window`` (K*K positions), ``cw`` (words per pixel), ``simd``,
    ``bits``, ``kind`` ("bipolar": OR, "uint": unsigned max).

    Ports: ``i`` takes the im2col stream of ``lanes(unsigned(bits), simd)``
    words (for each window: for each position, ``cw`` words); ``o`` emits
    ``cw`` words of the same layout per window, word ``c`` holding the
    element-wise max of the window's words ``c``. Partial maxima wait in a
    delay line of ``cw`` words (``cw * simd * bits`` flip-flops).

    Timing: one input word per cycle; the output register is loaded in the
    cycle after the last position of a channel word arrives (latency 1).
    ``i.ready = ~o.valid | o.ready``.
    """

    def __init__(self, window, cw, simd, bits, kind):
        self.window, self.cw, self.simd, self.bits, self.kind = window, cw, simd, bits, kind
        layout = lanes(unsigned(bits), simd)
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        n, cw, b = self.window, self.cw, self.bits
        pos = Signal(range(max(n, 2)))
        c = Signal(range(max(cw, 2)))
        layout = self.i.payload.shape()
        line = [Signal(layout, name=f"acc_{k}") for k in range(cw)]  # line[-1] is the oldest
        head = line[-1]
        x = self.i.payload
        if self.kind == "bipolar" or b == 1:
            folded = Value.cast(x) | Value.cast(head)
        else:
            folded = Cat(*[Mux(x[j] > head[j], x[j], head[j]) for j in range(self.simd)])
        val = Signal(layout)
        m.d.comb += val.eq(Mux(pos.any(), folded, x))

        take = Signal()
        m.d.comb += [self.i.ready.eq(~self.o.valid | self.o.ready), take.eq(self.i.valid & self.i.ready)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += line[0].eq(val)
            for k in range(1, cw):
                m.d.sync += line[k].eq(line[k - 1])
            with m.If(pos == n - 1):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(val)]
            with m.If(c == cw - 1):
                m.d.sync += [c.eq(0), pos.eq(Mux(pos == n - 1, 0, pos + 1))]
            with m.Else():
                m.d.sync += c.eq(c + 1)
        return m


class MaxPool(wiring.Component):
    """Streaming K x K max pool with stride S over an NHWC raster stream.

    Parameters
    ----------
    height, width, channels, simd : int
        Input image H x W x C, SIMD channels per word (SIMD divides C).
    kernel : int
        Pool window K (1..7).
    stride : int or None
        Step S (default K). Windows past the edge are dropped:
        OH = (H - K) // S + 1.
    kind : "bipolar" or "uint"
        "bipolar": 1-bit elements, max = OR (bit 1 = +1). "uint": unsigned
        ``bits``-bit elements, element-wise max.
    bits : int
        Element width for "uint" (ignored, 1, for "bipolar").

    Ports
    -----
    i : stream of ``lanes(unsigned(bits), simd)`` (:mod:`qnnfab.rtl.lanes`):
        NHWC raster order, ``payload[j]`` of word w of a pixel = channel
        w * SIMD + j (as :class:`SlidingWindow`).
    o : stream of ``lanes(unsigned(bits), simd)``: the pooled map, NHWC raster
        order, OH * OW * C / SIMD words per image.

    Resources and timing
    --------------------
    A :class:`SlidingWindow` line buffer of ``min(K, H) * W * C * bits`` bits
    plus a ``C * bits``-bit delay line of partial maxima. Latency: the sliding
    window's 2 cycles plus 1. Throughput: the window generator emits
    ``OH * OW * K * K * C / SIMD`` words per image at one per cycle, which for
    non-overlapping pools (S = K dividing H, W) equals the input's
    ``H * W * C / SIMD`` words, i.e. the pool keeps up with its input.
    """

    def __init__(self, height, width, channels, simd, kernel, stride=None, kind="bipolar", bits=1):
        where = "MaxPool"
        if kind not in ("bipolar", "uint"):
            raise ConfigError(where, "kind", f"must be 'bipolar' or 'uint', not {kind!r}",
                              "use 'bipolar' for 1-bit +-1 data, 'uint' for unsigned activations")
        if kind == "bipolar":
            bits = 1
        stride = kernel if stride is None else stride
        if isinstance(simd, int) and isinstance(channels, int) and simd > channels > 0:
            raise ConfigError(where, "simd", f"SIMD={simd} exceeds channels={channels}",
                              "choose SIMD among the divisors of the channels")
        try:
            self.window = SlidingWindow(height, width, channels, simd, kernel, stride, 0, 0, bits)
        except ConfigError as e:
            raise ConfigError(where, e.field, e.problem, e.fix) from None
        self.height, self.width, self.channels, self.simd = height, width, channels, simd
        self.kernel, self.stride, self.kind, self.bits = kernel, stride, kind, bits
        self.out_height, self.out_width = self.window.out_height, self.window.out_width
        self.cw = channels // simd
        self.in_words = self.window.in_words
        self.out_words = self.out_height * self.out_width * self.cw
        self.cycles_per_image = max(self.window.out_words, self.window.in_words)
        self.latency = self.window.latency + 1
        self.reduce = WindowMax(kernel * kernel, self.cw, simd, bits, kind)
        super().__init__({
            "i": In(stream.Signature(lanes(unsigned(bits), simd))),
            "o": Out(stream.Signature(lanes(unsigned(bits), simd))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self.window
        m.submodules.reduce = self.reduce
        wiring.connect(m, wiring.flipped(self.i), self.window.i)
        wiring.connect(m, self.window.o, self.reduce.i)
        wiring.connect(m, self.reduce.o, wiring.flipped(self.o))
        return m

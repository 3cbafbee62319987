"""Sliding-window buffer: lowers a streamed feature map to the im2col stream.

The hardware counterpart of finn-hlslib's ConvolutionInputGenerator and of
:func:`qnnfab.golden.im2col`: it takes a feature map in raster order and emits,
for every output pixel, the K x K window in (ky, kx, c) order, so that a
matrix-vector unit with weights ``conv_weights_to_matrix(w)`` computes the
convolution. A word holds part of one kernel position (SIMD dividing the
channels) or m whole kernel positions (SIMD = m * C, m dividing K*K, up to the
whole window per word), the latter for convolutions whose SIMD exceeds their
channel count (FINN's parallel window).
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError, check_int
from qnnfab.folding import check_conv_simd, conv_in_simd, conv_simd_choices, window_buffer_rows
from qnnfab.packing import pack_fields

from .lanes import lanes

__all__ = ["SlidingWindow", "sliding_window_geometry", "BLOCK_RAM_COPY_BITS"]

BLOCK_RAM_COPY_BITS = 1024   # line-buffer copies (several positions per word) of this size or more: block RAM


def _counter(n, name=None):
    """A counter over 0..n-1, at least one bit wide (no zero-width signals in the Verilog)."""
    return Signal(range(max(n, 2)), name=name)


def sliding_window_geometry(height, width, kernel, stride, pad, where="SlidingWindow"):
    """(OH, OW) of a K x K window with ``stride`` over a ``pad``-padded image.

    Raises :class:`ConfigError` when the kernel does not fit the padded image.
    """
    if height + 2 * pad < kernel or width + 2 * pad < kernel:
        raise ConfigError(where, "kernel",
                          f"{kernel}x{kernel} kernel does not fit a {height}x{width} image with padding {pad}",
                          f"use a kernel <= {min(height, width) + 2 * pad} or pad >= "
                          f"{(kernel - min(height, width) + 1) // 2}")
    return (height + 2 * pad - kernel) // stride + 1, (width + 2 * pad - kernel) // stride + 1


class SlidingWindow(wiring.Component):
    """Streaming sliding-window (im2col) generator over line buffers.

    Parameters
    ----------
    height, width : int
        Input image size H x W (need not be square), >= 1.
    channels : int
        Channels C per pixel.
    simd : int
        Elements per output word: a divisor of ``channels`` (CW = C / SIMD
        words per pixel, on both ports), or ``M * channels`` with M > 1
        dividing K*K: M kernel positions per output word, whole pixels (C
        elements) per input word (CW = 1); :func:`qnnfab.folding.conv_simd_choices`.
    kernel : int
        Window size K, 1..7 (square K x K).
    stride : int
        Step S between windows, >= 1 (same in both directions).
    pad : int
        P rows/columns of padding on every side, 0 <= P < K. The window never
        lies entirely in the padding.
    pad_value : int
        Element value inserted for the padding (``0 <= pad_value < 2**bits``);
        for bipolar data (bits = 1) 0 pads with -1 and 1 pads with +1.
    bits : int or shape-castable
        The element shape (an int ``b`` means ``unsigned(b)``; 1 for
        bipolar); ``self.bits`` is its width. Elements are moved, never
        interpreted.

    Ports
    -----
    i : stream of ``lanes(shape, in_simd)`` (:mod:`qnnfab.rtl.lanes`),
        ``in_simd = min(SIMD, C)`` (:func:`qnnfab.folding.conv_in_simd`)
        The feature map, NHWC raster order: for y, for x, for channel word;
        ``payload[j]`` of word w of a pixel is channel ``w * in_simd + j``.
        Images follow each other back to back.
    o : stream of ``lanes(shape, simd)``
        The im2col stream: for oy, for ox (OH x OW output pixels, raster
        order), the K*K*C window elements in (ky, kx, c) order, SIMD per
        word: ``payload[j]`` of word n of an output pixel is window element
        ``n * SIMD + j``. With SIMD <= C that is for ky, for kx, for channel
        word; with SIMD = M * C, word n holds the kernel positions
        ``n*M .. n*M + M-1`` (position q = ky * K + kx), position
        ``n*M + l`` in elements ``l*C .. l*C + C-1``. Elements of padding
        positions hold ``pad_value``. OH = (H + 2P - K) // S + 1, likewise OW.

    Line buffer
    -----------
    One simple dual-port memory of ``KR * W * CW`` words of ``SIMD * bits``
    bits, i.e. ``KR * W * C * bits`` bits, used as a circular buffer of the
    last ``KR * W`` input pixels, KR = :func:`qnnfab.folding.window_buffer_rows`:
    K rows (at most H), and more (K=3 without padding: 5) where the next
    image's first window would otherwise wait for this image's last one. A
    pixel slot is recycled as soon as no current or later window needs it,
    tracked per pixel (not per row), so the input is stalled only when all
    slots hold pixels still to be read. Control is a handful of counters and
    comparators.

    With M positions per word (SIMD = M * C) the M reads of a word go to M
    different pixels in one cycle, so the buffer is replicated: M identical
    memories of ``KR * W`` pixel words (KR: :func:`qnnfab.folding.window_buffer_rows`) (``C * bits`` bits), written
    together, each read by one position lane of the word (``buffer_bits``
    counts all copies); copies of :data:`BLOCK_RAM_COPY_BITS` or more are
    marked ``ram_style = "block"`` (``buffer_in_block_ram``). Each lane has its own address, padding check and
    "written" check (a few adders and comparators per lane); a word leaves
    when every real position in it has arrived.

    Timing
    ------
    The output register is loaded one cycle after a word is read from the
    buffer; a word written at one clock edge can be read in the next cycle,
    so the latency from the input word that completes a window to that
    window's last output word is 2 cycles. The read side emits one word per
    cycle whenever the word it needs has arrived (padding words need none)
    and the output is not stalled; ``o.valid`` never depends on ``o.ready``.
    With the output unstalled and the input always valid, back-to-back
    images take ``max(OH*OW*K*K*CW, H*W*CW)`` cycles each: the output is
    the bottleneck when the window reuse K*K/S^2 exceeds 1, the input
    otherwise. There is no refill stall at image boundaries: the KR buffered
    rows hold the last windows of one image and the first window of the next
    (``bench/bench_sliding_window.py``, ``qnnfab sim sliding_window``).
    With M positions per word the output takes ``OH*OW*K*K/M`` words per
    image and the input ``H*W`` pixel words: at M = K*K (whole windows) the
    input is the bottleneck unless the stride exceeds 1.
    """

    def __init__(self, height, width, channels, simd, kernel, stride=1, pad=0, pad_value=0, bits=1):
        where = "SlidingWindow"
        shape = bits
        if not isinstance(shape, int):
            bits = Shape.cast(shape).width
        check_int(where, "height", height, 1, "use an image height >= 1")
        check_int(where, "width", width, 1, "use an image width >= 1")
        check_int(where, "channels", channels, 1, "use channels >= 1")
        check_int(where, "simd", simd, 1, "use SIMD >= 1 dividing channels")
        check_int(where, "kernel", kernel, 1, "use a kernel size 1..7")
        check_int(where, "stride", stride, 1, "use stride >= 1")
        check_int(where, "pad", pad, 0, "use pad >= 0")
        check_int(where, "bits", bits, 1, "use bits >= 1 (1 for bipolar)")
        if kernel > 7:
            raise ConfigError(where, "kernel", f"must be 1..7, not {kernel}", "use a kernel size 1..7")
        if simd not in conv_simd_choices(channels, kernel):
            if simd <= channels:
                raise ConfigError(where, "simd", f"SIMD={simd} does not divide channels={channels}",
                                  f"choose SIMD among {conv_simd_choices(channels, kernel)}")
            check_conv_simd(where, simd, channels, kernel)
        if pad >= kernel:
            raise ConfigError(where, "pad", f"pad={pad} >= kernel={kernel} gives windows made only of padding",
                              f"use pad <= {kernel - 1}")
        if isinstance(pad_value, bool) or not isinstance(pad_value, int) or not 0 <= pad_value < (1 << bits):
            raise ConfigError(where, "pad_value", f"must be an element value in [0, {(1 << bits) - 1}], "
                              f"not {pad_value!r}", "for bipolar data use 0 (-1) or 1 (+1)")
        self.out_height, self.out_width = sliding_window_geometry(height, width, kernel, stride, pad, where)
        self.height, self.width, self.channels, self.simd = height, width, channels, simd
        self.kernel, self.stride, self.pad, self.pad_value, self.bits = kernel, stride, pad, pad_value, bits
        self.shape = Shape.cast(shape)
        self.in_simd = conv_in_simd(channels, simd)
        self.positions = max(1, simd // channels)      # kernel positions per output word (M)
        self.cw = channels // self.in_simd
        self.word_bits = simd * bits
        self.in_word_bits = self.in_simd * bits
        self.buffer_rows = window_buffer_rows(height, width, kernel, stride, pad)
        self.buffer_words = self.buffer_rows * width * self.cw
        self.buffer_copies = self.positions
        # copies of a kilobit or more go to block RAM: LUTs are what several positions per word
        # run short of, and Yosys' cost rule would put a 96 x 24 copy into 64 LUT-RAM cells
        self.buffer_in_block_ram = self.positions > 1 and self.buffer_words * self.in_word_bits >= BLOCK_RAM_COPY_BITS
        self._copy_attrs = {"ram_style": "block"} if self.buffer_in_block_ram else None
        self.buffer_bits = self.buffer_words * self.in_word_bits * self.buffer_copies
        self.in_words = height * width * self.cw
        self.out_words = self.out_height * self.out_width * kernel * kernel * channels // simd
        self.latency = 2
        super().__init__({
            "i": In(stream.Signature(lanes(self.shape, self.in_simd))),
            "o": Out(stream.Signature(lanes(self.shape, simd))),
        })

    def _line_buffer(self, m):
        """The line buffer (see "Line buffer" above): one memory ``mem`` of ``buffer_words``
        SIMD-element words or, with M > 1, M copies ``mem0`` .. of pixel words written
        together (``ram_style = "block"`` when ``buffer_in_block_ram``). Returns
        ``(writes, reads)``: their write ports and their synchronous read ports (data one
        cycle after the address)."""
        DEPTH = self.buffer_words
        # (a 1-word buffer is declared with 2 words: Verilog has no zero-width address)
        if self.positions == 1:
            m.submodules.mem = mem = Memory(shape=unsigned(self.word_bits), depth=max(DEPTH, 2), init=[])
            wr = mem.write_port()
            rd = mem.read_port(domain="sync")
            writes, reads = [wr], [rd]
        else:   # one copy per position lane of a word, written together
            writes, reads = [], []
            for lane in range(self.positions):
                m.submodules[f"mem{lane}"] = mem = Memory(shape=unsigned(self.in_word_bits),
                                                          depth=max(DEPTH, 2), init=[], attrs=self._copy_attrs)
                wr = mem.write_port()
                rd = mem.read_port(domain="sync")
                writes.append(wr)
                reads.append(rd)
        return writes, reads

    def elaborate(self, platform):
        """The parts below, in the order they add statements and submodules (the Verilog's
        text depends on that order: hence the window pixel of M = 1 before the writer's row)."""
        m = Module()
        writes, reads = self._line_buffer(m)
        w = self._write_position()
        r = self._read_position()
        if self.positions == 1:
            iy, ix, real = self._window_pixel(m, r)
        wy_eff = self._writer_row(m, w, r)
        if self.positions == 1:
            ready = self._pixel_ready(m, wy_eff, w, r, iy, ix, real)
            lane_real = None
        else:
            ready, lane_real = self._position_lanes(m, reads, r.wsel, r.iy_top, r.ix_left, r.top_base, wy_eff, w.x)
            real = None
        room = self._room(m, r, wy_eff, w.x)
        self._write(m, w, writes, room)
        issue = self._read(m, r, reads, ready, real, lane_real)
        self._step_read(m, r, issue)
        return m

    def _write_position(self):
        """Write side: raster position of the next input word (registers, driven by
        :meth:`_write`). A namespace: ``img`` (image counter mod 4), ``y``, ``x``, ``c``
        (word of the pixel) and ``addr`` (circular: linear word index mod the buffer depth)."""
        wimg = Signal(2)               # image counter mod 4
        wy = _counter(self.height, "wy")
        wx = _counter(self.width, "wx")
        wc = _counter(self.cw, "wc")
        waddr = _counter(self.buffer_words, "waddr")   # circular: linear word index mod DEPTH
        return SimpleNamespace(img=wimg, y=wy, x=wx, c=wc, addr=waddr)

    def _read_position(self):
        """Read side: loop counters of the next output word (registers, driven by
        :meth:`_step_read`). A namespace: ``img`` (image counter mod 4), ``oy``, ``ox``
        (output pixel); with M = 1 ``ky``, ``kx``, ``c`` (word of the kernel position)
        and ``kxc`` (kx * CW + c), with M > 1 ``wsel`` (word of the window); ``iy_top``,
        ``ix_left`` (oy * S - P, ox * S - P), ``left_off`` (ix_left * CW, M = 1),
        ``top_base`` (buffer address of row iy_top) and ``row_base`` (of row iy_top + ky,
        M = 1). Fields that do not apply are None."""
        H, W, K, S, P = self.height, self.width, self.kernel, self.stride, self.pad
        CW, KR, M = self.cw, self.buffer_rows, self.positions
        OH, OW, DEPTH = self.out_height, self.out_width, self.buffer_words
        WCW = W * CW
        ky = kx = c = kxc = wsel = left_off = row_base = None
        rimg = Signal(2)
        oy = _counter(OH, "oy")
        ox = _counter(OW, "ox")
        if M == 1:
            ky = _counter(K, "ky")
            kx = _counter(K, "kx")
            c = _counter(CW, "c")
            kxc = _counter(K * CW, "kxc")    # kx * CW + c
        else:
            wsel = _counter(K * K // M, "wsel")      # word of the output pixel's window
        iy_top = Signal(range(-P, max((OH - 1) * S - P + 1, 2)), init=-P)    # oy * S - P
        ix_left = Signal(range(-P, max((OW - 1) * S - P + 1, 2)), init=-P)   # ox * S - P
        if M == 1:
            left_off = Signal(range(-P * CW, max(((OW - 1) * S - P) * CW + 1, 2)), init=-P * CW)  # ix_left * CW
        # buffer slot of a row: row iy of image n lives in slot (n*H + iy) mod KR
        top0 = (-P) % KR
        top_base = Signal(range(max(DEPTH, 2)), init=top0 * WCW)   # slot(iy_top) * W * CW
        if M == 1:
            row_base = Signal(range(max(DEPTH, 2)), init=top0 * WCW)   # slot(iy) * W * CW
        return SimpleNamespace(img=rimg, oy=oy, ox=ox, ky=ky, kx=kx, c=c, kxc=kxc, wsel=wsel, iy_top=iy_top,
                               ix_left=ix_left, left_off=left_off, top_base=top_base, row_base=row_base)

    def _is_real(self, m, real, iy, ix):
        """Drive ``real`` (comb): pixel (iy, ix) lies inside the image, not in the padding."""
        H, W, P = self.height, self.width, self.pad
        if P:
            m.d.comb += real.eq((iy >= 0) & (iy < H) & (ix >= 0) & (ix < W))
        else:
            m.d.comb += real.eq((iy < H) & (ix < W))

    def _window_pixel(self, m, r):
        """The pixel of the current word (M = 1), comb: ``(iy, ix, real)``, its image row and
        column (iy_top + ky, ix_left + kx) and whether it is real (not padding)."""
        H, W, K, S, P = self.height, self.width, self.kernel, self.stride, self.pad
        iy = Signal(range(-P, H + P + K + S))
        ix = Signal(range(-P, W + P + K + S))
        m.d.comb += [iy.eq(r.iy_top + r.ky), ix.eq(r.ix_left + r.kx)]
        real = Signal()
        self._is_real(m, real, iy, ix)
        return iy, ix, real

    def _writer_row(self, m, w, r):
        """The writer's row in the reader's image frame (comb, returned): the writer is at most
        one image behind the reader (only unused rows/columns left) or one image ahead."""
        H = self.height
        diff = Signal(2)
        m.d.comb += diff.eq(w.img - r.img)
        wy_eff = Signal(range(-H, 2 * H))
        with m.Switch(diff):
            with m.Case(0):
                m.d.comb += wy_eff.eq(w.y)
            with m.Case(1):
                m.d.comb += wy_eff.eq(w.y + H)
            with m.Default():
                m.d.comb += wy_eff.eq(w.y - H)
        return wy_eff

    def _pixel_ready(self, m, wy_eff, w, r, iy, ix, real):
        """The word the reader needs now (M = 1) can be read: it is padding or has been
        written (comb; a word written at a clock edge counts from that edge)."""
        written = Signal()
        m.d.comb += written.eq((wy_eff > iy) | ((wy_eff == iy) & ((w.x > ix) | ((w.x == ix) & (w.c > r.c)))))
        return ~real | written

    def _room(self, m, r, wy_eff, wx):
        """A buffer slot is free for the next input word (comb, returned).

        The oldest pixel any current or later window needs is (fy, fx) of the reader's
        image; a slot is free when the pixel it would hold is < (fy, fx) + KR*W in
        linear order."""
        H, W, S, P = self.height, self.width, self.stride, self.pad
        KR, OH, OW = self.buffer_rows, self.out_height, self.out_width
        iy_top, ix_left = r.iy_top, r.ix_left
        fy = _counter(H, "fy")
        fx = _counter(W, "fx")
        rowwise = Signal()
        # (constant sub-conditions are folded here: Verilator lints constant comparisons)
        top_same = (iy_top + S <= 0) if P >= S else False
        bottom_same = (iy_top >= H - 1) if H - 1 > -P else True
        m.d.comb += rowwise.eq((r.oy != OH - 1) & (top_same | bottom_same))
        with m.If((iy_top < 0) if P else False):
            m.d.comb += fy.eq(0)
        with m.Elif((iy_top > H - 1) if (OH - 1) * S - P > H - 1 else False):
            m.d.comb += fy.eq(H - 1)
        with m.Else():
            m.d.comb += fy.eq(iy_top)
        with m.If(rowwise | ((ix_left < 0) if P else False)):
            m.d.comb += fx.eq(0)
        with m.Elif((ix_left > W - 1) if (OW - 1) * S - P > W - 1 else False):
            m.d.comb += fx.eq(W - 1)
        with m.Else():
            m.d.comb += fx.eq(ix_left)
        fy_lim = Signal(range(H + KR))
        m.d.comb += fy_lim.eq(fy + KR)
        room = Signal()
        m.d.comb += room.eq((wy_eff < fy_lim) | ((wy_eff == fy_lim) & (wx < fx)))
        return room

    def _write(self, m, w, writes, room):
        """The input side: ``i.ready`` is ``room``; an accepted word is written at ``w.addr``
        (every copy) and the write position advances at the same clock edge."""
        H, W, CW, DEPTH = self.height, self.width, self.cw, self.buffer_words
        waddr, wy, wx, wc = w.addr, w.y, w.x, w.c
        m.d.comb += self.i.ready.eq(room)
        for wr in writes:
            m.d.comb += [
                wr.addr.eq(waddr),
                wr.data.eq(Value.cast(self.i.payload)),
                wr.en.eq(self.i.valid & room),
            ]
        with m.If(self.i.valid & room):
            m.d.sync += waddr.eq(Mux(waddr == DEPTH - 1, 0, waddr + 1))
            with m.If(wc == CW - 1):
                m.d.sync += wc.eq(0)
                with m.If(wx == W - 1):
                    m.d.sync += wx.eq(0)
                    with m.If(wy == H - 1):
                        m.d.sync += [wy.eq(0), w.img.eq(w.img + 1)]
                    with m.Else():
                        m.d.sync += wy.eq(wy + 1)
                with m.Else():
                    m.d.sync += wx.eq(wx + 1)
            with m.Else():
                m.d.sync += wc.eq(wc + 1)

    def _read(self, m, r, reads, ready, real, lane_real):
        """The output side: the buffer read and the output register.

        ``advance`` (comb): the output register is empty or taken; then the buffer is
        read at the current word's address and, one clock edge later, ``o.valid``
        becomes ``ready`` (the word has arrived or is padding); padding positions
        (``real`` low for M = 1, ``lane_real`` per lane for M > 1) are replaced by
        ``pad_value`` at the output. Returns ``issue`` (comb: the current word is read
        this cycle), which moves the read position on."""
        P, M = self.pad, self.positions
        advance = Signal()
        issue = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            issue.eq(advance & ready),
        ]
        if M == 1:
            m.d.comb += [
                reads[0].addr.eq(r.row_base + r.left_off + r.kxc),
                reads[0].en.eq(advance),
            ]
            padflag = Signal()
            with m.If(advance):
                m.d.sync += [self.o.valid.eq(ready), padflag.eq(~real)]
            pad_word = self._pad_elements(self.simd)
            m.d.comb += Value.cast(self.o.payload).eq(Mux(padflag, pad_word, reads[0].data))
        else:
            with m.If(advance):
                m.d.sync += self.o.valid.eq(ready)
            if P:
                pad_pixel = self._pad_elements(self.in_simd)
                padflags = [Signal(name=f"padflag{lane}") for lane in range(M)]
                with m.If(advance):
                    m.d.sync += [flag.eq(~is_real) for flag, is_real in zip(padflags, lane_real)]
                m.d.comb += Value.cast(self.o.payload).eq(Cat(*[Mux(f, pad_pixel, rd.data)
                                                                for f, rd in zip(padflags, reads)]))
            else:   # every window lies inside the image: no padding multiplexer
                m.d.comb += Value.cast(self.o.payload).eq(Cat(*[rd.data for rd in reads]))
        return issue

    def _mod_add(self, sig, step):
        """``sig + step`` modulo the buffer depth (``sig`` < depth)."""
        DEPTH = self.buffer_words
        step %= DEPTH
        return Mux(sig >= DEPTH - step, sig - (DEPTH - step), sig + step)

    def _step_read(self, m, r, issue):
        """On ``issue`` move the read position to the next word at the clock edge: for
        M = 1 through channel words, kernel columns and rows (``row_base`` a buffer row
        further per ky), for M > 1 through the words of the window; after a window's
        last word to the next output pixel (:meth:`_next_pixel`)."""
        K, CW, M = self.kernel, self.cw, self.positions
        with m.If(issue):
            if M == 1:
                c, kx, ky, kxc = r.c, r.kx, r.ky, r.kxc
                with m.If(c == CW - 1):
                    m.d.sync += c.eq(0)
                    with m.If(kx == K - 1):
                        m.d.sync += [kx.eq(0), kxc.eq(0)]
                        with m.If(ky == K - 1):
                            m.d.sync += ky.eq(0)
                            self._next_pixel(m, r)
                        with m.Else():
                            m.d.sync += [ky.eq(ky + 1), r.row_base.eq(self._mod_add(r.row_base, self.width * CW))]
                    with m.Else():
                        m.d.sync += [kx.eq(kx + 1), kxc.eq(kxc + 1)]
                with m.Else():
                    m.d.sync += [c.eq(c + 1), kxc.eq(kxc + 1)]
            else:
                with m.If(r.wsel == K * K // M - 1):
                    m.d.sync += r.wsel.eq(0)
                    self._next_pixel(m, r)
                with m.Else():
                    m.d.sync += r.wsel.eq(r.wsel + 1)

    def _next_pixel(self, m, r):
        """Move the read side to the next output pixel (after its window's last word), in
        raster order, to the next image after the last: ``iy_top``, ``ix_left``,
        ``left_off``, ``top_base`` and ``row_base`` follow (at the same clock edge)."""
        H, W, S, P = self.height, self.width, self.stride, self.pad
        CW, KR, M = self.cw, self.buffer_rows, self.positions
        OH, OW = self.out_height, self.out_width
        WCW = W * CW
        row_step = (S % KR) * WCW
        img_step = ((H - (OH - 1) * S) % KR) * WCW
        ox, oy, ix_left, iy_top, top_base = r.ox, r.oy, r.ix_left, r.iy_top, r.top_base
        mod_add = self._mod_add
        with m.If(ox == OW - 1):
            m.d.sync += [ox.eq(0), ix_left.eq(-P)] + ([r.left_off.eq(-P * CW)] if M == 1 else [])
            with m.If(oy == OH - 1):
                m.d.sync += [oy.eq(0), iy_top.eq(-P), r.img.eq(r.img + 1),
                             top_base.eq(mod_add(top_base, img_step))]
                if M == 1:
                    m.d.sync += r.row_base.eq(mod_add(top_base, img_step))
            with m.Else():
                m.d.sync += [oy.eq(oy + 1), iy_top.eq(iy_top + S),
                             top_base.eq(mod_add(top_base, row_step))]
                if M == 1:
                    m.d.sync += r.row_base.eq(mod_add(top_base, row_step))
        with m.Else():
            m.d.sync += [ox.eq(ox + 1), ix_left.eq(ix_left + S)]
            if M == 1:
                m.d.sync += [r.left_off.eq(r.left_off + S * CW), r.row_base.eq(top_base)]

    def _pad_elements(self, n):
        """A word of ``n`` elements, each ``pad_value``."""
        return Const(pack_fields([self.pad_value] * n, [self.bits] * n), n * self.bits)

    def _position_lanes(self, m, reads, wsel, iy_top, ix_left, top_base, wy_eff, wx):
        """Read addresses of the M position lanes of the current word (M > 1, CW = 1).

        Lane l of word n reads kernel position q = n*M + l, (ky, kx) = divmod(q, K),
        pixel (iy_top + ky, ix_left + kx) from its own buffer copy. Returns the
        word's ready condition (every real position written) and the lanes'
        real (not padding) flags (None without padding: all real).
        """
        H, W, K, S, P = self.height, self.width, self.kernel, self.stride, self.pad
        KR, M, DEPTH = self.buffer_rows, self.positions, self.buffer_words
        NW = K * K // M
        kys = [Signal(range(K), name=f"ky{lane}") for lane in range(M)]
        kxs = [Signal(range(K), name=f"kx{lane}") for lane in range(M)]
        row_offs = [Signal(range(max(DEPTH, 2)), name=f"row_off{lane}") for lane in range(M)]
        with m.Switch(wsel):
            for n in range(NW):
                with m.Case(n):
                    for lane in range(M):
                        ky, kx = divmod(n * M + lane, K)
                        m.d.comb += [kys[lane].eq(ky), kxs[lane].eq(kx), row_offs[lane].eq((ky % KR) * W)]
        oks, reals = [], []
        for lane, rd in enumerate(reads):
            iy = Signal(range(-P, H + P + K + S), name=f"iy{lane}")
            ix = Signal(range(-P, W + P + K + S), name=f"ix{lane}")
            m.d.comb += [iy.eq(iy_top + kys[lane]), ix.eq(ix_left + kxs[lane])]
            written = Signal(name=f"written{lane}")
            m.d.comb += written.eq((wy_eff > iy) | ((wy_eff == iy) & (wx > ix)))
            if not P:   # without padding (iy, ix) < (H, W) by the geometry: every position is real
                oks.append(written)
                reals.append(None)
            else:
                real = Signal(name=f"real{lane}")
                self._is_real(m, real, iy, ix)
                oks.append(~real | written)
                reals.append(real)
            row = Signal(range(max(DEPTH, 2)), name=f"row{lane}")
            row_sum = top_base + row_offs[lane]
            m.d.comb += [
                row.eq(Mux(row_sum >= DEPTH, row_sum - DEPTH, row_sum)),
                rd.addr.eq(row + ix),
                rd.en.eq(~self.o.valid | self.o.ready),
            ]
        ready = Signal()
        m.d.comb += ready.eq(Cat(*oks).all())
        return ready, reals

"""GEMM engine: the stochastic-rounding systolic array behind the overlay's AXI shell.

Computes ``C = round(A . B)`` for matrices in DDR laid out as A panels, B
panels and output tiles (formats and registers in :mod:`qnnfab.overlay_map`,
section "GEMM engine"), with the array of :mod:`qnnfab.rtl.systolic`.
"""

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from qnnfab import overlay_map as om
from qnnfab.errors import ConfigError, check_int

from .axi_read_dma import AxiReadDma
from .axi_write_dma import AxiWriteDma
from .axil_registers import AxiLiteRegisters
from .overlay import DMA_FIFO_BEATS, abort_on_errors, connect_shell_axi, shell_clock, shell_ports
from .systolic import SystolicArray
from .width_converter import WidthConverter

__all__ = ["GemmShell", "serial_product"]

COUNT_WIDTH = 40


def serial_product(m, start, x, y, width, name):
    """Shift-and-add product ``x * y`` (no multiplier: the DSPs are the array's).

    ``start`` (one cycle) latches ``x``, ``y``; the returned ``(product,
    busy)``: ``busy`` is low again (and ``product`` valid) at most
    ``len(y)`` cycles later."""
    prod = Signal(width, name=f"{name}_product")
    mcand = Signal(width, name=f"{name}_mcand")
    mplier = Signal(len(y), name=f"{name}_mplier")
    with m.If(start):
        m.d.sync += [prod.eq(0), mcand.eq(x), mplier.eq(y)]
    with m.Elif(mplier != 0):
        m.d.sync += [mcand.eq(mcand << 1), mplier.eq(mplier >> 1)]
        with m.If(mplier[0]):
            m.d.sync += prod.eq(prod + mcand)
    return prod, mplier != 0


class GemmShell(wiring.Component):
    """An R x C systolic GEMM engine as a Zynq peripheral.

    Ports: those of the overlay shell (CONTRACTS section 2, :func:`shell_ports`).
    Registers and DDR formats: :mod:`qnnfab.overlay_map` (GEMM_REGISTERS).

    A run (CTRL.START) checks ROW_TILES, COL_TILES, K (GEMM_SIZE) and the
    addresses (IN_ADDR for A/B, OUT_ADDR for C), resets the datapath,
    computes the buffer lengths (shift-and-add, ~16 cycles), starts the write
    DMA for all output tiles, then for each row tile: reads its A panel (K
    words) into the A memory (a BRAM of ``k_max`` words of R elements), then
    for each column tile reads the B panel (K words) from DDR and streams it
    with the A words from the memory into the array as one tile; output rows
    go to the write DMA as they leave the array. DONE when the write DMA has
    every beat acknowledged. ROUNDING is sampled at START.

    Aborts (START while busy, a read/write error response, SOFT_RESET) as in
    :class:`qnnfab.rtl.overlay.OverlayShell`.

    Parameters: ``rows``, ``cols``; ``a_fmt``, ``b_fmt``, ``c_fmt`` as (I, F);
    ``k_max``; ``data_width`` (AXI bus bits, 32/64/128); ``seed``,
    ``lfsr_width`` of the array's rounding lanes.
    """

    def __init__(self, rows, cols, a_fmt, b_fmt, c_fmt, k_max=1024, data_width=64, seed=1, lfsr_width=None):
        where = "gemm"
        check_int(where, "rows", rows, 1)
        check_int(where, "cols", cols, 1)
        if rows > 255 or cols > 255:
            raise ConfigError(where, "rows/cols", f"{rows}x{cols} exceeds the ARRAY register's 255", "use a smaller array")
        if data_width not in (32, 64, 128):
            raise ConfigError(where, "data_width", f"AXI data width {data_width!r} is not supported",
                              "use 32, 64 or 128")
        self.array = SystolicArray(rows, cols, a_fmt, b_fmt, c_fmt, k_max=k_max, mode="stochastic",
                                   seed=seed, lfsr_width=lfsr_width, rounding_select=True)
        self.rows, self.cols, self.k_max, self.data_width = rows, cols, k_max, data_width
        arr = self.array
        self.formats = om.GemmFormats(rows=rows, cols=cols, a_fmt=list(arr.a_fmt), b_fmt=list(arr.b_fmt),
                                      c_fmt=list(arr.c_fmt), k_max=k_max, seed=seed, bus_bytes=data_width // 8)
        super().__init__(shell_ports(data_width))

    def elaborate(self, platform):
        m = Module()
        fm = self.formats
        R, C, bus = self.rows, self.cols, self.data_width
        bus_bytes = bus // 8
        shift = (bus_bytes - 1).bit_length()
        arr = self.array
        shell_clock(m, self)

        flush = Signal()
        regs = AxiLiteRegisters(om.GEMM_REGISTERS, addr_width=12)
        m.submodules.regs = regs
        rd = AxiReadDma(bus, DMA_FIFO_BEATS, COUNT_WIDTH)
        wr = AxiWriteDma(bus, DMA_FIFO_BEATS, COUNT_WIDTH)
        m.submodules.read_dma = ResetInserter({"sync": flush})(rd)
        m.submodules.write_dma = ResetInserter({"sync": flush})(wr)
        m.submodules.array = ResetInserter({"sync": flush})(arr)
        connect_shell_axi(m, self, regs, rd, wr)

        def gather(beats, name):
            """Bus words -> operand words of ``beats`` bus words (None: one bus word, direct)."""
            if beats == 1:
                return None
            conv = WidthConverter(1, beats, bus, name=name)
            m.submodules[name] = ResetInserter({"sync": flush})(conv)
            return conv

        a_gather = gather(fm.a_word_beats, "a_gather")
        b_gather = gather(fm.b_word_beats, "b_gather")
        if fm.c_word_beats == 1:
            c_split = None
        else:
            c_split = WidthConverter(fm.c_word_beats, 1, bus, name="c_split")
            m.submodules.c_split = ResetInserter({"sync": flush})(c_split)

        # read DMA -> A memory (state LOAD_A) or -> array.b (state STREAM)
        loading_a, streaming = Signal(), Signal()
        a_in_valid, a_in_data, a_in_ready = Signal(), Signal(fm.a_word_beats * bus), Signal()
        b_in_valid, b_in_data, b_in_ready = Signal(), Signal(fm.b_word_beats * bus), Signal()
        if a_gather is None:
            m.d.comb += [a_in_valid.eq(rd.o.valid & loading_a), a_in_data.eq(rd.o.payload)]
        else:
            m.d.comb += [a_gather.i.valid.eq(rd.o.valid & loading_a), a_gather.i.payload.eq(rd.o.payload),
                         a_in_valid.eq(a_gather.o.valid), a_in_data.eq(a_gather.o.payload),
                         a_gather.o.ready.eq(a_in_ready)]
        if b_gather is None:
            m.d.comb += [b_in_valid.eq(rd.o.valid & streaming), b_in_data.eq(rd.o.payload)]
        else:
            m.d.comb += [b_gather.i.valid.eq(rd.o.valid & streaming), b_gather.i.payload.eq(rd.o.payload),
                         b_in_valid.eq(b_gather.o.valid), b_in_data.eq(b_gather.o.payload),
                         b_gather.o.ready.eq(b_in_ready)]
        a_ready_raw = a_in_ready if a_gather is None else a_gather.i.ready
        b_ready_raw = b_in_ready if b_gather is None else b_gather.i.ready
        m.d.comb += rd.o.ready.eq((loading_a & a_ready_raw) | (streaming & b_ready_raw))

        # A memory: K words of R elements
        a_bits = R * arr.a_width
        m.submodules.a_mem = a_mem = Memory(shape=unsigned(a_bits), depth=self.k_max, init=[])
        a_wr = a_mem.write_port()
        a_rd = a_mem.read_port()
        k_wr = Signal(range(self.k_max + 1))
        m.d.comb += [a_in_ready.eq(loading_a), a_wr.addr.eq(k_wr), a_wr.data.eq(a_in_data[:a_bits]),
                     a_wr.en.eq(a_in_valid & loading_a)]
        a_word_in = Signal()
        m.d.comb += a_word_in.eq(a_in_valid & loading_a)

        # A words from memory to array.a: a one-word pipe over the read port
        k_rd = Signal(range(self.k_max + 1))
        a_valid, a_last = Signal(), Signal()
        a_taken = Signal()
        m.d.comb += a_taken.eq(arr.a.valid & arr.a.ready)
        k_reg = regs.K
        fetch = Signal()
        m.d.comb += [fetch.eq(streaming & (k_rd != k_reg) & (~a_valid | a_taken)),
                     a_rd.addr.eq(k_rd), a_rd.en.eq(fetch)]
        with m.If(fetch):
            m.d.sync += [k_rd.eq(k_rd + 1), a_valid.eq(1), a_last.eq(k_rd == k_reg - 1)]
        with m.Elif(a_taken):
            m.d.sync += a_valid.eq(0)
        m.d.comb += [
            arr.a.valid.eq(a_valid), arr.a.payload.eq(Cat(a_rd.data, a_last)),
            arr.b.valid.eq(b_in_valid & streaming), arr.b.payload.eq(b_in_data[:C * arr.b_width]),
            b_in_ready.eq(arr.b.ready & streaming),
        ]
        tile_in = Signal()                       # the last k step of a tile entered the array
        m.d.comb += tile_in.eq(a_taken & a_last)

        # array.o -> write DMA
        if c_split is None:
            m.d.comb += [wr.i.payload.eq(arr.o.payload), wr.i.valid.eq(arr.o.valid), arr.o.ready.eq(wr.i.ready)]
        else:
            m.d.comb += [c_split.i.payload.eq(arr.o.payload), c_split.i.valid.eq(arr.o.valid),
                         arr.o.ready.eq(c_split.i.ready)]
            wiring.connect(m, c_split.o, wr.i)
        row_out = Signal(range(R))
        tiles_done = Signal(32)
        with m.If(arr.o.valid & arr.o.ready):
            m.d.sync += row_out.eq(Mux(row_out == R - 1, 0, row_out + 1))
            with m.If(row_out == R - 1):
                m.d.sync += tiles_done.eq(tiles_done + 1)

        # lengths: panel beats and bytes, output beats
        mul_go, mul2_go = Signal(), Signal()
        a_beats, a_busy = serial_product(m, mul_go, fm.a_word_beats, regs.K, COUNT_WIDTH, "a_beats")
        b_beats, b_busy = serial_product(m, mul_go, fm.b_word_beats, regs.K, COUNT_WIDTH, "b_beats")
        row_beats, r_busy = serial_product(m, mul_go, R * fm.c_word_beats, regs.COL_TILES[:16], COUNT_WIDTH,
                                           "row_beats")
        out_beats, o_busy = serial_product(m, mul2_go, row_beats, regs.ROW_TILES[:16], COUNT_WIDTH, "out_beats")

        # control
        irq_enable, done, soft = Signal(), Signal(), Signal()
        code = Signal(8)
        cycles = Signal(32)
        stochastic = Signal()
        m.d.comb += arr.stochastic.eq(stochastic)
        wdata = regs.wdata_out
        start_cmd, soft_cmd = Signal(), Signal()
        m.d.comb += [start_cmd.eq(regs.CTRL_write & wdata[0]), soft_cmd.eq(regs.CTRL_write & wdata[1])]
        with m.If(regs.CTRL_write):
            m.d.sync += irq_enable.eq(wdata[2])
        with m.If(regs.STATUS_write & wdata[1]):
            m.d.sync += done.eq(0)
        ti, tj = Signal(16), Signal(16)
        a_ptr, b_ptr = Signal(32), Signal(32)

        def bad_addr(a):
            return (a == 0) | ((a & (bus_bytes - 1)) != 0)

        def bad_tiles(t):
            return (t == 0) | (t > om.MAX_TILES)

        def finish(error):
            m.d.sync += [done.eq(1), code.eq(error)]
            m.next = "IDLE"

        busy = Signal()
        with m.FSM(name="control"):
            with m.State("IDLE"):
                with m.If(soft_cmd):
                    m.d.sync += [done.eq(0), code.eq(0), soft.eq(1)]
                    m.next = "FLUSH"
                with m.Elif(start_cmd):
                    m.d.sync += [done.eq(0), code.eq(0), soft.eq(0)]
                    with m.If(bad_tiles(regs.ROW_TILES) | bad_tiles(regs.COL_TILES) | (regs.K == 0) |
                              (regs.K > self.k_max)):
                        finish(om.ERRORS["GEMM_SIZE"])
                    with m.Elif(bad_addr(regs.A_ADDR) | bad_addr(regs.B_ADDR)):
                        finish(om.ERRORS["IN_ADDR"])
                    with m.Elif(bad_addr(regs.C_ADDR)):
                        finish(om.ERRORS["OUT_ADDR"])
                    with m.Else():
                        m.d.sync += [cycles.eq(0), tiles_done.eq(0), stochastic.eq(regs.ROUNDING[0])]
                        m.next = "PREPARE"
            with m.State("PREPARE"):
                m.d.comb += [flush.eq(1), busy.eq(1), mul_go.eq(1)]
                m.d.sync += [cycles.eq(cycles + 1), tiles_done.eq(0), row_out.eq(0), a_valid.eq(0),
                             ti.eq(0), a_ptr.eq(regs.A_ADDR)]
                m.next = "LENGTHS"
            with m.State("LENGTHS"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(~a_busy & ~b_busy & ~r_busy):
                    m.d.comb += mul2_go.eq(1)
                    m.next = "LENGTHS2"
            with m.State("LENGTHS2"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(~o_busy):
                    m.d.comb += [wr.start.eq(1), wr.addr.eq(regs.C_ADDR), wr.beats.eq(out_beats)]
                    m.next = "A_START"
            with m.State("A_START"):
                m.d.comb += [busy.eq(1), rd.start.eq(1), rd.addr.eq(a_ptr), rd.beats.eq(a_beats)]
                m.d.sync += [cycles.eq(cycles + 1), a_ptr.eq(a_ptr + (a_beats << shift)), k_wr.eq(0),
                             tj.eq(0), b_ptr.eq(regs.B_ADDR)]
                m.next = "LOAD_A"
            with m.State("LOAD_A"):
                m.d.comb += [busy.eq(1), loading_a.eq(1)]
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(a_word_in):
                    m.d.sync += k_wr.eq(k_wr + 1)
                    with m.If(k_wr == regs.K - 1):
                        m.next = "B_START"
                abort_on_errors(m, rd, wr, soft_cmd, start_cmd, soft, code)
            with m.State("B_START"):
                m.d.comb += [busy.eq(1), rd.start.eq(1), rd.addr.eq(b_ptr), rd.beats.eq(b_beats)]
                m.d.sync += [cycles.eq(cycles + 1), b_ptr.eq(b_ptr + (b_beats << shift)), k_rd.eq(0)]
                m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += [busy.eq(1), streaming.eq(1)]
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(tile_in):
                    with m.If(tj != regs.COL_TILES - 1):
                        m.d.sync += tj.eq(tj + 1)
                        m.next = "B_START"
                    with m.Elif(ti != regs.ROW_TILES - 1):
                        m.d.sync += ti.eq(ti + 1)
                        m.next = "A_START"
                    with m.Else():
                        m.next = "DRAIN"
                abort_on_errors(m, rd, wr, soft_cmd, start_cmd, soft, code)
            with m.State("DRAIN"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(wr.done):
                    finish(om.ERRORS["OK"])
                abort_on_errors(m, rd, wr, soft_cmd, start_cmd, soft, code)
            with m.State("ABORT"):
                m.d.comb += [busy.eq(1), rd.abort.eq(1), wr.abort.eq(1)]
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(soft_cmd):
                    m.d.sync += [soft.eq(1), code.eq(0)]
                with m.If(rd.drained & wr.drained):
                    m.next = "FLUSH"
            with m.State("FLUSH"):
                m.d.comb += [busy.eq(1), flush.eq(1)]
                m.d.sync += [done.eq(~soft), a_valid.eq(0)]
                m.next = "IDLE"

        ident = fm.identity()
        m.d.comb += [
            regs.CTRL.eq(irq_enable << 2),
            regs.STATUS.eq(busy | (done << 1) | ((code != 0) << 2)),
            regs.ERROR.eq(code),
            regs.TILES_DONE.eq(tiles_done),
            regs.CYCLES.eq(cycles),
            self.interrupt.eq(irq_enable & done),
        ] + [getattr(regs, k).eq(v) for k, v in ident.items()]
        return m

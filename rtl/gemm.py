"""GEMM engine: the stochastic-rounding systolic array behind the overlay's AXI shell.

Computes ``C = round(A . B)`` for matrices in DDR laid out as A panels, B
panels and output tiles (formats and registers in :mod:`qnnfab.overlay_map`,
section "GEMM engine"), with the array of :mod:`qnnfab.rtl.systolic`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from qnnfab import overlay_map as om
from qnnfab.errors import ConfigError, check_int

from .axi_read_dma import AxiReadDma
from .axi_write_dma import AxiWriteDma
from .axil_registers import AxiLiteRegisters
from .overlay import (DMA_FIFO_BEATS, abort_on_errors, connect_shell_axi, drain_after_abort, shell_clock,
                      shell_ports)
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

    Ports: those of the overlay shell (:func:`qnnfab.rtl.overlay.shell_ports`).
    Registers and DDR formats: :mod:`qnnfab.overlay_map` (GEMM_REGISTERS).

    Memories: the A memory holds two blocks of ``panels`` (p) A panels of
    ``k_max`` words of R elements (ping-pong halves: one block computes
    while the next one loads); the B memory two B panels of ``k_max`` words
    of C elements (ping-pong slots).

    A run (CTRL.START) checks ROW_TILES, COL_TILES, K, BLOCK_TILES
    (GEMM_SIZE) and the addresses (IN_ADDR for A/B, OUT_ADDR for C), resets
    the datapath, computes the buffer lengths (shift-and-add, ~16 cycles),
    starts the write DMA for all output tiles, then runs two processes
    until every tile has entered the array:

    * the loader reads DDR into the memories, one read-DMA run at a time:
      the next B panel (panels of each block in column order, B re-read
      for every block) whenever a B slot is free, otherwise the next chunk
      of ``a_chunk`` words of the A panels (read once, in order) whenever
      its block's half is free; A chunks go first while the feeder's own
      block is still loading and a B panel is loaded or loading;
    * the feeder streams the tiles in :func:`~qnnfab.overlay_map.gemm_tile_order`
      into the array, A and B words read from the memories: tile (i, j)
      waits until panel i of its block and B panel j are loaded; the last
      tile of a column frees its B slot, the last tile of a block its A half.

    Output rows go to the write DMA as they leave the array; DONE when the
    write DMA has every beat acknowledged. ROUNDING and BLOCK_TILES are
    sampled at START.

    Aborts (START while busy, a read/write error response, SOFT_RESET) as in
    :class:`qnnfab.rtl.overlay.OverlayShell`.

    Parameters: ``rows``, ``cols``; ``a_fmt``, ``b_fmt``, ``c_fmt`` as (I, F);
    ``k_max``; ``panels`` (p >= 1); ``data_width`` (AXI bus bits,
    32/64/128); ``seed``, ``lfsr_width`` of the array's rounding lanes;
    ``a_chunk`` (A words per read-DMA run).
    """

    def __init__(self, rows, cols, a_fmt, b_fmt, c_fmt, k_max=1024, panels=2, data_width=64, seed=1,
                 lfsr_width=None, a_chunk=64):
        where = "gemm"
        check_int(where, "rows", rows, 1)
        check_int(where, "cols", cols, 1)
        check_int(where, "panels", panels, 1)
        check_int(where, "a_chunk", a_chunk, 1)
        if rows > 255 or cols > 255:
            raise ConfigError(where, "rows/cols", f"{rows}x{cols} exceeds the ARRAY register's 255", "use a smaller array")
        if data_width not in (32, 64, 128):
            raise ConfigError(where, "data_width", f"AXI data width {data_width!r} is not supported",
                              "use 32, 64 or 128")
        self.array = SystolicArray(rows, cols, a_fmt, b_fmt, c_fmt, k_max=k_max, mode="stochastic",
                                   seed=seed, lfsr_width=lfsr_width, rounding_select=True)
        self.rows, self.cols, self.k_max, self.data_width = rows, cols, k_max, data_width
        self.panels, self.a_chunk = panels, a_chunk
        arr = self.array
        self.formats = om.GemmFormats(rows=rows, cols=cols, a_fmt=list(arr.a_fmt), b_fmt=list(arr.b_fmt),
                                      c_fmt=list(arr.c_fmt), k_max=k_max, panels=panels, seed=seed,
                                      bus_bytes=data_width // 8)
        super().__init__(shell_ports(data_width))

    def elaborate(self, platform):
        m = Module()
        fm = self.formats
        R, C, bus, P, KM = self.rows, self.cols, self.data_width, self.panels, self.k_max
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

        if fm.c_word_beats == 1:
            c_split = None
        else:
            c_split = WidthConverter(fm.c_word_beats, 1, bus, name="c_split")
            m.submodules.c_split = ResetInserter({"sync": flush})(c_split)

        # ---- loader datapath: read DMA -> (gather) -> A memory (ld_a) or B memory (ld_b)
        ld_a, ld_b = Signal(), Signal()          # the DMA run in flight fills A / B
        ld_addr = Signal(range(max(2 * P * KM, 2 * KM)))
        ld_left = Signal(range(KM + 1))          # words of the run still to come
        word_in = {}
        ready_raw = {}
        for role, beats, sel in (("a", fm.a_word_beats, ld_a), ("b", fm.b_word_beats, ld_b)):
            g = gather(beats, f"{role}_gather")
            valid, payload = Signal(name=f"{role}_in_valid"), Signal(beats * bus, name=f"{role}_in_data")
            if g is None:
                m.d.comb += [valid.eq(rd.o.valid & sel), payload.eq(rd.o.payload)]
                ready_raw[role] = Const(1)
            else:
                m.d.comb += [g.i.valid.eq(rd.o.valid & sel), g.i.payload.eq(rd.o.payload),
                             valid.eq(g.o.valid), payload.eq(g.o.payload), g.o.ready.eq(1)]
                ready_raw[role] = g.i.ready
            word_in[role] = (valid, payload)
        m.d.comb += rd.o.ready.eq((ld_a & ready_raw["a"]) | (ld_b & ready_raw["b"]))

        a_bits, b_bits = R * arr.a_width, C * arr.b_width
        m.submodules.a_mem = a_mem = Memory(shape=unsigned(a_bits), depth=2 * P * KM, init=[])
        m.submodules.b_mem = b_mem = Memory(shape=unsigned(b_bits), depth=2 * KM, init=[])
        a_wr, a_rd = a_mem.write_port(), a_mem.read_port()
        b_wr, b_rd = b_mem.write_port(), b_mem.read_port()
        word_written = Signal()
        m.d.comb += [
            a_wr.addr.eq(ld_addr), a_wr.data.eq(word_in["a"][1][:a_bits]), a_wr.en.eq(word_in["a"][0]),
            b_wr.addr.eq(ld_addr), b_wr.data.eq(word_in["b"][1][:b_bits]), b_wr.en.eq(word_in["b"][0]),
            word_written.eq(word_in["a"][0] | word_in["b"][0]),
        ]
        with m.If(word_written):
            m.d.sync += [ld_addr.eq(ld_addr + 1), ld_left.eq(ld_left - 1)]
        run_end = Signal()                       # the run's last word is written this cycle
        m.d.comb += run_end.eq(word_written & (ld_left == 1))

        # ---- feeder datapath: memories -> array, one register stage over the read ports
        k_reg = regs.K
        k_rd = Signal(range(KM + 1))
        f_abase = Signal(range(2 * P * KM))      # A memory address of word 0 of the feeder's panel
        f_slot = Signal()                        # B slot of the feeder's column tile
        f_valid, f_last = Signal(), Signal()
        taken = Signal()
        m.d.comb += taken.eq(arr.a.valid & arr.a.ready)
        tile_ready, fetch = Signal(), Signal()
        m.d.comb += [
            fetch.eq(tile_ready & (~f_valid | taken)),
            a_rd.addr.eq(f_abase + k_rd), a_rd.en.eq(fetch),
            b_rd.addr.eq(Mux(f_slot, KM, 0) + k_rd), b_rd.en.eq(fetch),
        ]
        with m.If(fetch):
            m.d.sync += [f_valid.eq(1), f_last.eq(k_rd == k_reg - 1)]
        with m.Elif(taken):
            m.d.sync += f_valid.eq(0)
        m.d.comb += [
            arr.a.valid.eq(f_valid), arr.a.payload.eq(Cat(a_rd.data, f_last)),
            arr.b.valid.eq(f_valid), arr.b.payload.eq(b_rd.data),
        ]

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

        # lengths: B panel beats, output beats
        mul_go, mul2_go = Signal(), Signal()
        b_beats, b_busy = serial_product(m, mul_go, fm.b_word_beats, regs.K, COUNT_WIDTH, "b_beats")
        row_beats, r_busy = serial_product(m, mul_go, R * fm.c_word_beats, regs.COL_TILES[:16], COUNT_WIDTH,
                                           "row_beats")
        out_beats, o_busy = serial_product(m, mul2_go, row_beats, regs.ROW_TILES[:16], COUNT_WIDTH, "out_beats")

        # ---- shared state of loader and feeder
        q = Signal(16)                           # BLOCK_TILES of the run
        a_count = Signal(range(3))               # A halves loading or loaded, not yet freed
        a_full = Signal(range(3))                # A halves loaded, not yet freed
        b_count = Signal(range(3))               # B slots loading or loaded, not yet freed
        b_full = Signal(range(3))                # B slots loaded, not yet freed
        la_active = Signal()                     # an A block is loading
        la_panel = Signal(range(P + 1))          # its panels loaded so far
        a_start, a_done, a_free = Signal(), Signal(), Signal()
        b_start, b_done, b_free = Signal(), Signal(), Signal()
        m.d.sync += [a_count.eq(a_count + a_start - a_free), a_full.eq(a_full + a_done - a_free),
                     b_count.eq(b_count + b_start - b_free), b_full.eq(b_full + b_done - b_free)]

        running = Signal()                       # control state RUN
        run_init = Signal()                      # the cycle before RUN: reset loader and feeder

        # ---- loader
        la_rows_left = Signal(16)                # row tiles whose A panels are not yet started
        la_q = Signal(16)                        # panels of the block loading
        la_half = Signal()
        la_k = Signal(range(KM + 1))             # words of the current panel loaded
        la_ptr = Signal(32)                      # DDR address of the next A chunk
        la_base = Signal(range(2 * P * KM))      # A memory address of word 0 of the current panel
        lb_rows_left = Signal(16)                # row tiles whose blocks still need B passes
        lb_j = Signal(16)
        lb_slot = Signal()
        lb_ptr = Signal(32)
        chunk = Signal(range(self.a_chunk + 1))
        left_k = Signal(range(KM + 1))
        m.d.comb += [left_k.eq(k_reg - la_k), chunk.eq(Mux(left_k < self.a_chunk, left_k, self.a_chunk))]
        can_b, can_a, new_block, a_first = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            can_b.eq((b_count != 2) & (lb_rows_left != 0)),
            new_block.eq(~la_active & (a_count != 2) & (la_rows_left != 0)),
            can_a.eq(la_active | new_block),
            # the feeder's own block is still loading and it has a B panel: its A panels first
            a_first.eq(la_active & (a_full == 0) & (b_count != 0)),
        ]
        with m.If(run_init):
            m.d.sync += [la_rows_left.eq(regs.ROW_TILES), lb_rows_left.eq(regs.ROW_TILES), la_active.eq(0),
                         la_half.eq(0), la_k.eq(0), la_ptr.eq(regs.A_ADDR), lb_j.eq(0), lb_slot.eq(0),
                         lb_ptr.eq(regs.B_ADDR), ld_a.eq(0), ld_b.eq(0), a_count.eq(0), a_full.eq(0),
                         b_count.eq(0), b_full.eq(0)]
        with m.FSM(name="loader"):
            with m.State("PICK"):
                with m.If(running & rd.done):
                    with m.If(can_b & ~a_first):
                        m.d.comb += [b_start.eq(1), rd.start.eq(1), rd.addr.eq(lb_ptr), rd.beats.eq(b_beats)]
                        m.d.sync += [ld_b.eq(1), ld_addr.eq(Mux(lb_slot, KM, 0)), ld_left.eq(k_reg),
                                     lb_ptr.eq(lb_ptr + (b_beats << shift))]
                        m.next = "LOAD"
                    with m.Elif(can_a):
                        beats = chunk * fm.a_word_beats
                        m.d.comb += [rd.start.eq(1), rd.addr.eq(la_ptr), rd.beats.eq(beats)]
                        m.d.sync += [ld_a.eq(1), ld_left.eq(chunk), la_ptr.eq(la_ptr + (beats << shift))]
                        with m.If(new_block):
                            qb = Mux(la_rows_left < q, la_rows_left, q)
                            m.d.comb += a_start.eq(1)
                            m.d.sync += [la_active.eq(1), la_panel.eq(0), la_q.eq(qb),
                                         la_rows_left.eq(la_rows_left - qb),
                                         la_base.eq(Mux(la_half, P * KM, 0)),
                                         ld_addr.eq(Mux(la_half, P * KM, 0))]
                        with m.Else():
                            m.d.sync += ld_addr.eq(la_base + la_k)
                        m.next = "LOAD"
            with m.State("LOAD"):
                with m.If(run_init):                 # after an abort
                    m.next = "PICK"
                with m.Elif(run_end):
                    m.d.sync += [ld_a.eq(0), ld_b.eq(0)]
                    with m.If(ld_b):
                        m.d.comb += b_done.eq(1)
                        m.d.sync += [lb_slot.eq(~lb_slot), lb_j.eq(lb_j + 1)]
                        with m.If(lb_j == regs.COL_TILES - 1):
                            m.d.sync += [lb_j.eq(0), lb_ptr.eq(regs.B_ADDR),
                                         lb_rows_left.eq(Mux(lb_rows_left < q, 0, lb_rows_left - q))]
                    with m.Else():
                        m.d.sync += la_k.eq(la_k + chunk)
                        with m.If(la_k + chunk == k_reg):
                            m.d.sync += [la_k.eq(0), la_panel.eq(la_panel + 1), la_base.eq(la_base + KM)]
                            with m.If(la_panel == la_q - 1):
                                m.d.comb += a_done.eq(1)
                                m.d.sync += [la_active.eq(0), la_half.eq(~la_half)]
                    m.next = "PICK"

        # ---- feeder
        f_i, f_j = Signal(16), Signal(16)
        f_q = Signal(16)                         # row tiles of the feeder's block
        f_rows_left = Signal(16)                 # row tiles of this and later blocks
        f_half = Signal()
        f_run = Signal()                         # tiles remain
        a_here = Signal()
        m.d.comb += [
            a_here.eq((a_full != 0) | ((a_count != 0) & (la_panel > f_i))),
            tile_ready.eq(running & f_run & (b_full != 0) & a_here),
        ]
        with m.If(run_init):
            m.d.sync += [f_i.eq(0), f_j.eq(0), f_rows_left.eq(regs.ROW_TILES), f_half.eq(0), f_slot.eq(0),
                         f_abase.eq(0), f_run.eq(1), k_rd.eq(0),
                         f_q.eq(Mux(regs.ROW_TILES < q, regs.ROW_TILES, q))]
        with m.Elif(fetch):
            m.d.sync += k_rd.eq(k_rd + 1)
            with m.If(k_rd == k_reg - 1):
                m.d.sync += [k_rd.eq(0), f_i.eq(f_i + 1), f_abase.eq(f_abase + KM)]
                with m.If(f_i == f_q - 1):
                    m.d.comb += b_free.eq(1)
                    m.d.sync += [f_i.eq(0), f_slot.eq(~f_slot), f_j.eq(f_j + 1),
                                 f_abase.eq(Mux(f_half, P * KM, 0))]
                    with m.If(f_j == regs.COL_TILES - 1):
                        rest = f_rows_left - f_q
                        m.d.comb += a_free.eq(1)
                        m.d.sync += [f_j.eq(0), f_half.eq(~f_half), f_abase.eq(Mux(f_half, 0, P * KM)),
                                     f_rows_left.eq(rest), f_q.eq(Mux(rest < q, rest, q))]
                        with m.If(rest == 0):
                            m.d.sync += f_run.eq(0)

        # ---- control
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
                              (regs.K > KM) | (regs.BLOCK_TILES == 0) | (regs.BLOCK_TILES > P)):
                        finish(om.ERRORS["GEMM_SIZE"])
                    with m.Elif(bad_addr(regs.A_ADDR) | bad_addr(regs.B_ADDR)):
                        finish(om.ERRORS["IN_ADDR"])
                    with m.Elif(bad_addr(regs.C_ADDR)):
                        finish(om.ERRORS["OUT_ADDR"])
                    with m.Else():
                        m.d.sync += [cycles.eq(0), tiles_done.eq(0), stochastic.eq(regs.ROUNDING[0]),
                                     q.eq(regs.BLOCK_TILES)]
                        m.next = "PREPARE"
            with m.State("PREPARE"):
                m.d.comb += [flush.eq(1), busy.eq(1), mul_go.eq(1)]
                m.d.sync += [cycles.eq(cycles + 1), tiles_done.eq(0), row_out.eq(0), f_valid.eq(0)]
                m.next = "LENGTHS"
            with m.State("LENGTHS"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(~b_busy & ~r_busy):
                    m.d.comb += mul2_go.eq(1)
                    m.next = "LENGTHS2"
            with m.State("LENGTHS2"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(~o_busy):
                    m.d.comb += [wr.start.eq(1), wr.addr.eq(regs.C_ADDR), wr.beats.eq(out_beats), run_init.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [busy.eq(1), running.eq(1)]
                m.d.sync += cycles.eq(cycles + 1)
                abort_on_errors(m, rd, wr, soft_cmd, start_cmd, soft, code)
                with m.Elif(wr.done):
                    finish(om.ERRORS["OK"])
            with m.State("ABORT"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                drain_after_abort(m, rd, wr, soft_cmd, soft, code)
            with m.State("FLUSH"):
                m.d.comb += [busy.eq(1), flush.eq(1)]
                m.d.sync += [done.eq(~soft), f_valid.eq(0)]
                m.next = "IDLE"

        ident = fm.identity()
        m.d.comb += [
            regs.CTRL.eq(irq_enable << 2),
            regs.STATUS.eq(busy | (done << 1) | ((code != 0) << 2)),
            regs.ERROR.eq(code),
            regs.TILES_DONE.eq(tiles_done),
            regs.CYCLES.eq(cycles),
            self.interrupt.eq(irq_enable & done),
        ] + [getattr(regs, name).eq(value) for name, value in ident.items()]
        return m

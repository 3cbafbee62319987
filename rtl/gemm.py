"""GEMM engine: the stochastic-rounding systolic array behind the overlay's AXI shell.

Computes ``C = round(A . B)`` for matrices in DDR laid out as A panels, B
panels and output tiles (formats and registers in :mod:`qnnfab.overlay_map`,
section "GEMM engine"), with the array of :mod:`qnnfab.rtl.systolic`.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from qnnfab import overlay_map as om
from qnnfab.errors import ConfigError, check_int

from .axi_read_dma import AxiReadDma
from .axi_write_dma import AxiWriteDma
from .axil_registers import AxiLiteRegisters
from .overlay import (DMA_FIFO_BEATS, abort_on_errors, bad_bus_address, connect_shell_axi, drain_after_abort,
                      end_command, shell_clock, shell_ports)
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
        """The parts below, in the order they add statements and submodules (the Verilog's
        text depends on that order)."""
        m = Module()
        shell_clock(m, self)
        flush = Signal()                         # resets the datapath (only while the AXI side is quiet)
        regs, rd, wr, c_split = self._shell(m, flush)
        load = self._load_path(m, flush, rd)
        feed = self._feed_path(m, regs.K, load.a_rd, load.b_rd)
        row_out, tiles_done = self._output_path(m, wr, c_split)
        lengths = self._lengths(m, regs)
        buf = self._buffer_state(m)
        running = Signal()                       # control state RUN
        run_init = Signal()                      # the cycle before RUN: reset loader and feeder
        la, lb = self._loader_registers(m, regs, load, buf, run_init)
        self._loader(m, regs, rd, load, lengths.b_beats, buf, la, lb, running, run_init)
        self._feeder(m, regs, feed, buf, running, run_init)
        ctl = self._commands(m, regs)
        self._control(m, regs, rd, wr, ctl, flush, lengths, buf.q, feed.valid, row_out, tiles_done, running,
                      run_init)
        self._status(m, regs, ctl, tiles_done)
        return m

    def _converter(self, m, flush, in_beats, out_beats, name):
        """A :class:`WidthConverter` from ``in_beats`` to ``out_beats`` bus words, added as
        submodule ``name`` reset by ``flush``; None when both are 1 (connect directly)."""
        if in_beats == out_beats == 1:
            return None
        conv = WidthConverter(in_beats, out_beats, self.data_width, name=name)
        m.submodules[name] = ResetInserter({"sync": flush})(conv)
        return conv

    def _shell(self, m, flush):
        """The AXI side: submodules ``regs`` (register file), ``read_dma``, ``write_dma``,
        ``array`` and, when an output row spans several bus words, ``c_split`` (all but
        ``regs`` reset while ``flush``), the shell's AXI ports wired to them.

        Returns ``(regs, rd, wr, c_split)``; ``c_split`` is None when array rows go to the
        write DMA directly."""
        regs = AxiLiteRegisters(om.GEMM_REGISTERS, addr_width=12)
        m.submodules.regs = regs
        rd = AxiReadDma(self.data_width, DMA_FIFO_BEATS, COUNT_WIDTH)
        wr = AxiWriteDma(self.data_width, DMA_FIFO_BEATS, COUNT_WIDTH)
        m.submodules.read_dma = ResetInserter({"sync": flush})(rd)
        m.submodules.write_dma = ResetInserter({"sync": flush})(wr)
        m.submodules.array = ResetInserter({"sync": flush})(self.array)
        connect_shell_axi(m, self, regs, rd, wr)
        c_split = self._converter(m, flush, self.formats.c_word_beats, 1, "c_split")
        return regs, rd, wr, c_split

    def _load_path(self, m, flush, rd):
        """Loader datapath: read DMA -> (gather) -> A memory or B memory.

        Adds ``a_gather``/``b_gather`` (when an operand word spans several bus words, reset
        while ``flush``) and the memories ``a_mem``, ``b_mem``, and drives ``rd.o.ready``
        and the write ports. The loader sets ``ld_a`` (or ``ld_b``), ``ld_addr`` and
        ``ld_left`` when it starts a read-DMA run; each word of the run is written to A
        (or B) at ``ld_addr`` in the cycle it arrives, ``ld_addr`` counting up and
        ``ld_left`` down. Returns a namespace of those four registers, ``run_end`` (comb:
        the run's last word is written this cycle) and the read ports ``a_rd``, ``b_rd``.
        """
        fm, P, KM, bus, arr = self.formats, self.panels, self.k_max, self.data_width, self.array
        ld_a, ld_b = Signal(), Signal()          # the DMA run in flight fills A / B
        ld_addr = Signal(range(max(2 * P * KM, 2 * KM)))
        ld_left = Signal(range(KM + 1))          # words of the run still to come
        word_in = {}
        ready_raw = {}
        for role, beats, sel in (("a", fm.a_word_beats, ld_a), ("b", fm.b_word_beats, ld_b)):
            g = self._converter(m, flush, 1, beats, f"{role}_gather")
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

        a_bits, b_bits = self.rows * arr.a_width, self.cols * arr.b_width
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
        return SimpleNamespace(ld_a=ld_a, ld_b=ld_b, ld_addr=ld_addr, ld_left=ld_left, run_end=run_end,
                               a_rd=a_rd, b_rd=b_rd)

    def _feed_path(self, m, k_reg, a_rd, b_rd):
        """Feeder datapath: memories -> array, one register stage over the read ports.

        While ``tile_ready`` (set by the feeder) and the stage is empty or taken, ``fetch``
        (comb) reads word ``k_rd`` of the feeder's tile: A at ``abase + k_rd``, B at
        ``k_rd`` of B slot ``slot``; the words reach the array's ``a``/``b`` streams one
        cycle later (``valid``, ``a.payload`` marked last at word ``k_reg - 1``).
        Returns a namespace of ``k_rd``, ``abase``, ``slot`` (registers the feeder
        sequences), ``valid`` (the stage is full; the controller clears it), ``tile_ready``
        and ``fetch``.
        """
        KM, arr = self.k_max, self.array
        k_rd = Signal(range(KM + 1))
        f_abase = Signal(range(2 * self.panels * KM))      # A memory address of word 0 of the feeder's panel
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
        return SimpleNamespace(k_rd=k_rd, abase=f_abase, slot=f_slot, valid=f_valid, tile_ready=tile_ready,
                               fetch=fetch)

    def _output_path(self, m, wr, c_split):
        """Array rows -> (``c_split``) -> write DMA ``wr``, with the output counters.

        Returns ``(row_out, tiles_done)``: the row of the current output tile and the
        tiles whose last row has left the array (both count on each row the array
        hands over; the controller clears them at PREPARE)."""
        arr, R = self.array, self.rows
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
        return row_out, tiles_done

    def _lengths(self, m, regs):
        """The run's DMA lengths in bus beats, by shift-and-add (:func:`serial_product`).

        ``mul_go`` (one cycle) starts ``b_beats`` (of a B panel: K words) and
        ``row_beats`` (of an output row of tiles); once both are ready (``b_busy``,
        ``r_busy`` low: at most one cycle per bit of K, of COL_TILES[15:0]) ``mul2_go``
        starts ``out_beats`` (of all output tiles; ``o_busy``: one cycle per bit of
        ROW_TILES[15:0] at most). Returns a namespace of those signals."""
        fm = self.formats
        mul_go, mul2_go = Signal(), Signal()
        b_beats, b_busy = serial_product(m, mul_go, fm.b_word_beats, regs.K, COUNT_WIDTH, "b_beats")
        row_beats, r_busy = serial_product(m, mul_go, self.rows * fm.c_word_beats, regs.COL_TILES[:16],
                                           COUNT_WIDTH, "row_beats")
        out_beats, o_busy = serial_product(m, mul2_go, row_beats, regs.ROW_TILES[:16], COUNT_WIDTH, "out_beats")
        return SimpleNamespace(mul_go=mul_go, mul2_go=mul2_go, b_beats=b_beats, b_busy=b_busy, r_busy=r_busy,
                               out_beats=out_beats, o_busy=o_busy)

    def _buffer_state(self, m):
        """Shared state of loader and feeder: which A halves and B slots are taken.

        ``a_count``/``b_count`` count the halves/slots loading or loaded, ``a_full``/
        ``b_full`` those loaded, both until freed; they follow the one-cycle strobes
        ``a_start``, ``a_done`` (loader), ``a_free`` (feeder), likewise for B, at the
        next clock edge. ``la_active`` (an A block is loading) and ``la_panel`` (its
        panels loaded so far) are the loader's, read by the feeder; ``q`` is
        BLOCK_TILES, sampled by the controller at START. Returns a namespace of them."""
        P = self.panels
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
        return SimpleNamespace(q=q, a_count=a_count, a_full=a_full, b_count=b_count, b_full=b_full,
                               la_active=la_active, la_panel=la_panel, a_start=a_start, a_done=a_done,
                               a_free=a_free, b_start=b_start, b_done=b_done, b_free=b_free)

    def _loader_registers(self, m, regs, load, buf, run_init):
        """The loader's registers and its choice of the next read-DMA run.

        ``la`` (A side): row tiles whose panels are not yet started, panels of the
        block loading, its half, words of the current panel loaded (``k``), DDR address
        of the next chunk, A memory address of the panel's word 0, the next chunk's
        words (comb, at most ``a_chunk``), and the comb choices ``new_block`` (a free
        half takes the next block) and ``can_a``. ``lb`` (B side): row tiles whose blocks
        still need B passes, column tile, slot, DDR address of the next panel, and the
        comb ``can_b`` and ``a_first`` (A chunks before B: the feeder's own block is
        still loading and has a B panel). ``run_init`` resets these, ``load``'s
        ``ld_a``/``ld_b`` and ``buf``'s counters at the next clock edge.
        Returns ``(la, lb)``."""
        KM, k_reg = self.k_max, regs.K
        la_rows_left = Signal(16)                # row tiles whose A panels are not yet started
        la_q = Signal(16)                        # panels of the block loading
        la_half = Signal()
        la_k = Signal(range(KM + 1))             # words of the current panel loaded
        la_ptr = Signal(32)                      # DDR address of the next A chunk
        la_base = Signal(range(2 * self.panels * KM))      # A memory address of word 0 of the current panel
        lb_rows_left = Signal(16)                # row tiles whose blocks still need B passes
        lb_j = Signal(16)
        lb_slot = Signal()
        lb_ptr = Signal(32)
        chunk = Signal(range(self.a_chunk + 1))
        left_k = Signal(range(KM + 1))
        m.d.comb += [left_k.eq(k_reg - la_k), chunk.eq(Mux(left_k < self.a_chunk, left_k, self.a_chunk))]
        can_b, can_a, new_block, a_first = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            can_b.eq((buf.b_count != 2) & (lb_rows_left != 0)),
            new_block.eq(~buf.la_active & (buf.a_count != 2) & (la_rows_left != 0)),
            can_a.eq(buf.la_active | new_block),
            # the feeder's own block is still loading and it has a B panel: its A panels first
            a_first.eq(buf.la_active & (buf.a_full == 0) & (buf.b_count != 0)),
        ]
        with m.If(run_init):
            m.d.sync += [la_rows_left.eq(regs.ROW_TILES), lb_rows_left.eq(regs.ROW_TILES), buf.la_active.eq(0),
                         la_half.eq(0), la_k.eq(0), la_ptr.eq(regs.A_ADDR), lb_j.eq(0), lb_slot.eq(0),
                         lb_ptr.eq(regs.B_ADDR), load.ld_a.eq(0), load.ld_b.eq(0), buf.a_count.eq(0),
                         buf.a_full.eq(0), buf.b_count.eq(0), buf.b_full.eq(0)]
        la = SimpleNamespace(rows_left=la_rows_left, q=la_q, half=la_half, k=la_k, ptr=la_ptr, base=la_base,
                             chunk=chunk, new_block=new_block, can_a=can_a)
        lb = SimpleNamespace(rows_left=lb_rows_left, j=lb_j, slot=lb_slot, ptr=lb_ptr, can_b=can_b,
                             a_first=a_first)
        return la, lb

    def _loader(self, m, regs, rd, load, b_beats, buf, la, lb, running, run_init):
        """The loader FSM: starts one read-DMA run at a time while ``running``.

        PICK: when the read DMA is idle (``rd.done``), starts the next B panel
        (``b_beats`` beats into B slot ``lb.slot``; strobes ``buf.b_start``) or else the
        next A chunk (``la.chunk`` words; a new block strobes ``buf.a_start`` and takes
        the next half), setting ``load``'s ``ld_a``/``ld_b``, ``ld_addr``, ``ld_left``.
        LOAD: at the run's last word (``load.run_end``) advances the B column tile or the
        A panel, strobing ``buf.b_done`` / ``buf.a_done`` when a panel / block is in,
        and returns to PICK the next cycle (or at once on ``run_init``, after an abort).
        """
        KM, P, k_reg = self.k_max, self.panels, regs.K
        shift = (self.data_width // 8 - 1).bit_length()
        a_beats = self.formats.a_word_beats
        with m.FSM(name="loader"):
            with m.State("PICK"):
                with m.If(running & rd.done):
                    with m.If(lb.can_b & ~lb.a_first):
                        m.d.comb += [buf.b_start.eq(1), rd.start.eq(1), rd.addr.eq(lb.ptr), rd.beats.eq(b_beats)]
                        m.d.sync += [load.ld_b.eq(1), load.ld_addr.eq(Mux(lb.slot, KM, 0)), load.ld_left.eq(k_reg),
                                     lb.ptr.eq(lb.ptr + (b_beats << shift))]
                        m.next = "LOAD"
                    with m.Elif(la.can_a):
                        beats = la.chunk * a_beats
                        m.d.comb += [rd.start.eq(1), rd.addr.eq(la.ptr), rd.beats.eq(beats)]
                        m.d.sync += [load.ld_a.eq(1), load.ld_left.eq(la.chunk), la.ptr.eq(la.ptr + (beats << shift))]
                        with m.If(la.new_block):
                            qb = Mux(la.rows_left < buf.q, la.rows_left, buf.q)
                            m.d.comb += buf.a_start.eq(1)
                            m.d.sync += [buf.la_active.eq(1), buf.la_panel.eq(0), la.q.eq(qb),
                                         la.rows_left.eq(la.rows_left - qb),
                                         la.base.eq(Mux(la.half, P * KM, 0)),
                                         load.ld_addr.eq(Mux(la.half, P * KM, 0))]
                        with m.Else():
                            m.d.sync += load.ld_addr.eq(la.base + la.k)
                        m.next = "LOAD"
            with m.State("LOAD"):
                with m.If(run_init):                 # after an abort
                    m.next = "PICK"
                with m.Elif(load.run_end):
                    m.d.sync += [load.ld_a.eq(0), load.ld_b.eq(0)]
                    with m.If(load.ld_b):
                        m.d.comb += buf.b_done.eq(1)
                        m.d.sync += [lb.slot.eq(~lb.slot), lb.j.eq(lb.j + 1)]
                        with m.If(lb.j == regs.COL_TILES - 1):
                            m.d.sync += [lb.j.eq(0), lb.ptr.eq(regs.B_ADDR),
                                         lb.rows_left.eq(Mux(lb.rows_left < buf.q, 0, lb.rows_left - buf.q))]
                    with m.Else():
                        m.d.sync += la.k.eq(la.k + la.chunk)
                        with m.If(la.k + la.chunk == k_reg):
                            m.d.sync += [la.k.eq(0), buf.la_panel.eq(buf.la_panel + 1), la.base.eq(la.base + KM)]
                            with m.If(buf.la_panel == la.q - 1):
                                m.d.comb += buf.a_done.eq(1)
                                m.d.sync += [buf.la_active.eq(0), la.half.eq(~la.half)]
                    m.next = "PICK"

    def _feeder(self, m, regs, feed, buf, running, run_init):
        """The feeder: which tile goes into the array next.

        Tile (i, j) of the feeder's block (``f_q`` row tiles, half ``f_half``) is ready
        (``feed.tile_ready``, comb) while ``running`` once panel i of its block
        (``buf.a_full``, or ``buf.la_panel`` of the block loading) and a B panel
        (``buf.b_full``) are loaded. Each ``feed.fetch`` advances ``feed.k_rd``; a
        tile's last word moves to the next row tile (``feed.abase``), a column's last
        tile strobes ``buf.b_free`` and moves to the next B slot, a block's last tile
        strobes ``buf.a_free`` and moves to the other half; ``run_init`` starts at
        tile (0, 0) of half 0 at the next clock edge."""
        KM, P, k_reg, q = self.k_max, self.panels, regs.K, buf.q
        k_rd, f_slot, f_abase, fetch = feed.k_rd, feed.slot, feed.abase, feed.fetch
        f_i, f_j = Signal(16), Signal(16)
        f_q = Signal(16)                         # row tiles of the feeder's block
        f_rows_left = Signal(16)                 # row tiles of this and later blocks
        f_half = Signal()
        f_run = Signal()                         # tiles remain
        a_here = Signal()
        m.d.comb += [
            a_here.eq((buf.a_full != 0) | ((buf.a_count != 0) & (buf.la_panel > f_i))),
            feed.tile_ready.eq(running & f_run & (buf.b_full != 0) & a_here),
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
                    m.d.comb += buf.b_free.eq(1)
                    m.d.sync += [f_i.eq(0), f_slot.eq(~f_slot), f_j.eq(f_j + 1),
                                 f_abase.eq(Mux(f_half, P * KM, 0))]
                    with m.If(f_j == regs.COL_TILES - 1):
                        rest = f_rows_left - f_q
                        m.d.comb += buf.a_free.eq(1)
                        m.d.sync += [f_j.eq(0), f_half.eq(~f_half), f_abase.eq(Mux(f_half, 0, P * KM)),
                                     f_rows_left.eq(rest), f_q.eq(Mux(rest < q, rest, q))]
                        with m.If(rest == 0):
                            m.d.sync += f_run.eq(0)

    def _commands(self, m, regs):
        """The controller's registers and the CTRL / STATUS writes.

        ``start_cmd``, ``soft_cmd`` (comb) are CTRL writes with START / SOFT_RESET set;
        a CTRL write sets ``irq_enable`` from IRQ_ENABLE, a STATUS write with DONE set
        clears ``done``, at the next clock edge. Also ``code`` (ERROR), ``soft`` (the
        run ends by SOFT_RESET), ``cycles``, ``stochastic`` (ROUNDING, to the array) and
        ``busy`` (comb), driven by :meth:`_control`. Returns a namespace of them."""
        # unnamed ($signal) in the Verilog as before the split of elaborate, which keeps its text
        irq_enable, done, soft = Signal(name="$signal"), Signal(name="$signal"), Signal(name="$signal")
        code = Signal(8)
        cycles = Signal(32)
        stochastic = Signal()
        m.d.comb += self.array.stochastic.eq(stochastic)
        wdata = regs.wdata_out
        start_cmd, soft_cmd = Signal(), Signal()
        m.d.comb += [start_cmd.eq(regs.CTRL_write & wdata[0]), soft_cmd.eq(regs.CTRL_write & wdata[1])]
        with m.If(regs.CTRL_write):
            m.d.sync += irq_enable.eq(wdata[2])
        with m.If(regs.STATUS_write & wdata[1]):
            m.d.sync += done.eq(0)
        busy = Signal()
        return SimpleNamespace(irq_enable=irq_enable, done=done, soft=soft, code=code, cycles=cycles,
                               stochastic=stochastic, start_cmd=start_cmd, soft_cmd=soft_cmd, busy=busy)

    def _control(self, m, regs, rd, wr, ctl, flush, lengths, q, f_valid, row_out, tiles_done, running,
                 run_init):
        """The control FSM: checks START's registers, prepares, runs, aborts.

        IDLE: START checks the sizes and addresses (a bad one ends the run with its
        code), samples ROUNDING into ``ctl.stochastic`` and BLOCK_TILES into ``q``;
        PREPARE (one cycle): ``flush`` resets the datapath, clears ``tiles_done``,
        ``row_out``, ``f_valid`` and strobes ``lengths.mul_go``; LENGTHS, LENGTHS2 wait
        for :meth:`_lengths`; the last cycle of LENGTHS2 starts the write DMA for all
        output beats and strobes ``run_init``; RUN (``running``) until the write DMA is
        done, or ABORT (:func:`abort_on_errors`, :func:`drain_after_abort`) then FLUSH.
        ``ctl.busy`` is high outside IDLE, ``ctl.cycles`` counts the cycles of a run."""
        KM, P, bus_bytes = self.k_max, self.panels, self.data_width // 8
        done, code, soft, cycles, busy = ctl.done, ctl.code, ctl.soft, ctl.cycles, ctl.busy
        start_cmd, soft_cmd = ctl.start_cmd, ctl.soft_cmd

        def bad_tiles(t):
            return (t == 0) | (t > om.MAX_TILES)

        with m.FSM(name="control"):
            with m.State("IDLE"):
                with m.If(soft_cmd):
                    m.d.sync += [done.eq(0), code.eq(0), soft.eq(1)]
                    m.next = "FLUSH"
                with m.Elif(start_cmd):
                    m.d.sync += [done.eq(0), code.eq(0), soft.eq(0)]
                    with m.If(bad_tiles(regs.ROW_TILES) | bad_tiles(regs.COL_TILES) | (regs.K == 0) |
                              (regs.K > KM) | (regs.BLOCK_TILES == 0) | (regs.BLOCK_TILES > P)):
                        end_command(m, done, code, om.ERRORS["GEMM_SIZE"])
                    with m.Elif(bad_bus_address(regs.A_ADDR, bus_bytes) | bad_bus_address(regs.B_ADDR, bus_bytes)):
                        end_command(m, done, code, om.ERRORS["IN_ADDR"])
                    with m.Elif(bad_bus_address(regs.C_ADDR, bus_bytes)):
                        end_command(m, done, code, om.ERRORS["OUT_ADDR"])
                    with m.Else():
                        m.d.sync += [cycles.eq(0), tiles_done.eq(0), ctl.stochastic.eq(regs.ROUNDING[0]),
                                     q.eq(regs.BLOCK_TILES)]
                        m.next = "PREPARE"
            with m.State("PREPARE"):
                m.d.comb += [flush.eq(1), busy.eq(1), lengths.mul_go.eq(1)]
                m.d.sync += [cycles.eq(cycles + 1), tiles_done.eq(0), row_out.eq(0), f_valid.eq(0)]
                m.next = "LENGTHS"
            with m.State("LENGTHS"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(~lengths.b_busy & ~lengths.r_busy):
                    m.d.comb += lengths.mul2_go.eq(1)
                    m.next = "LENGTHS2"
            with m.State("LENGTHS2"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(~lengths.o_busy):
                    m.d.comb += [wr.start.eq(1), wr.addr.eq(regs.C_ADDR), wr.beats.eq(lengths.out_beats),
                                 run_init.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [busy.eq(1), running.eq(1)]
                m.d.sync += cycles.eq(cycles + 1)
                abort_on_errors(m, rd, wr, soft_cmd, start_cmd, soft, code)
                with m.Elif(wr.done):
                    end_command(m, done, code, om.ERRORS["OK"])
            with m.State("ABORT"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                drain_after_abort(m, rd, wr, soft_cmd, soft, code)
            with m.State("FLUSH"):
                m.d.comb += [busy.eq(1), flush.eq(1)]
                m.d.sync += [done.eq(~soft), f_valid.eq(0)]
                m.next = "IDLE"

    def _status(self, m, regs, ctl, tiles_done):
        """The register file's read values (CTRL, STATUS, ERROR, TILES_DONE, CYCLES and the
        identity registers, :meth:`qnnfab.overlay_map.GemmFormats.identity`) and
        ``interrupt`` (high while DONE and IRQ_ENABLE), all comb."""
        m.d.comb += [
            regs.CTRL.eq(ctl.irq_enable << 2),
            regs.STATUS.eq(ctl.busy | (ctl.done << 1) | ((ctl.code != 0) << 2)),
            regs.ERROR.eq(ctl.code),
            regs.TILES_DONE.eq(tiles_done),
            regs.CYCLES.eq(ctl.cycles),
            self.interrupt.eq(ctl.irq_enable & ctl.done),
        ] + [getattr(regs, name).eq(value) for name, value in self.formats.identity().items()]

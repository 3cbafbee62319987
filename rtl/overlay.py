"""The PYNQ overlay shell: the accelerator as a Zynq peripheral (AXI4-Lite + AXI4 master)."""

from types import SimpleNamespace

from amaranth.hdl import ClockDomain, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qnnfab import overlay_map as om

from .axi_read_dma import AxiReadDma, axi_read_members
from .axi_write_dma import AxiWriteDma, axi_write_members
from .axil_registers import AxiLiteRegisters, axil_slave_members
from .dataflow import Dataflow
from .frame_unpacker import FrameUnpacker
from .record_packer import RecordPacker
from .weight_words import WeightWords

__all__ = ["OverlayShell", "shell_ports", "shell_clock", "connect_shell_axi"]

DMA_FIFO_BEATS = 64


def _accelerator_ports(accel):
    """The one place that knows the accelerator's stream ports.

    Returns ``(input, output)``: ``input`` = (payload, valid, ready) of the
    input word stream, ``output`` = (score word, last, valid, ready); the
    words as flat values (element 0 at the LSBs)."""
    return ((Value.cast(accel.i.payload), accel.i.valid, accel.i.ready),
            (Value.cast(accel.o.payload.data), accel.o.payload.last, accel.o.valid, accel.o.ready))


def _weights_port(accel):
    """The accelerator's weights-image port (layout: :mod:`qnnfab.weights_image`), or None:
    ``(wload stream, wload_done, wload_error)``."""
    if not hasattr(accel, "wload"):
        return None
    return accel.wload, accel.wload_done, accel.wload_error


def shell_ports(data_width):
    """Signature members of a shell, the one definition of its ports: ``ap_clk``, ``ap_rst_n``,
    ``interrupt``, ``s_axi_control_*`` (AXI4-Lite, 12-bit address), ``m_axi_gmem_*``."""
    members = {"ap_clk": In(1), "ap_rst_n": In(1), "interrupt": Out(1)}
    members.update({f"s_axi_control_{k}": v for k, v in axil_slave_members(12).items()})
    members.update(axi_read_members(data_width, "m_axi_gmem_"))
    members.update(axi_write_members(data_width, "m_axi_gmem_"))
    return members


def shell_clock(m, shell):
    """The shell's ``sync`` domain: ``ap_clk``, synchronous reset while ``ap_rst_n`` is low."""
    cd = ClockDomain("sync", local=True)
    m.domains.sync = cd
    m.d.comb += [cd.clk.eq(shell.ap_clk), cd.rst.eq(~shell.ap_rst_n)]


def connect_shell_axi(m, shell, regs, rd, wr):
    """Wire ``shell``'s ``s_axi_control_*`` to the register file ``regs``
    (:class:`AxiLiteRegisters`) and its ``m_axi_gmem_*`` to the read and write DMAs."""
    for k in axil_slave_members(12):
        ours, theirs = getattr(regs, f"s_{k}"), getattr(shell, f"s_axi_control_{k}")
        m.d.comb += (theirs.eq(ours) if k in ("awready", "wready", "bresp", "bvalid", "arready",
                                               "rdata", "rresp", "rvalid") else ours.eq(theirs))
    for dma, members in ((rd, axi_read_members(rd.data_width, "")), (wr, axi_write_members(wr.data_width, ""))):
        for k, member in members.items():
            ours, theirs = getattr(dma, f"m_{k}"), getattr(shell, f"m_axi_gmem_{k}")
            m.d.comb += theirs.eq(ours) if member.flow == wiring.Out else ours.eq(theirs)


def abort_on_errors(m, rd, wr, soft_cmd, start_cmd, soft, code):
    """In a busy state of a shell's controller: go to ABORT on a soft reset, a START while
    busy, or an error response of the read DMA ``rd`` (or the write DMA ``wr``, unless None).
    Opens an ``If``/``Elif`` chain the caller may continue with its own ``Elif``."""
    with m.If(soft_cmd):
        m.d.sync += [soft.eq(1), code.eq(0)]
        m.next = "ABORT"
    with m.Elif(start_cmd):
        m.d.sync += code.eq(om.ERRORS["START_WHILE_BUSY"])
        m.next = "ABORT"
    with m.Elif(rd.error != 0):
        m.d.sync += code.eq(om.ERRORS["READ_SLVERR"] + rd.error[0])
        m.next = "ABORT"
    if wr is not None:
        with m.Elif(wr.error != 0):
            m.d.sync += code.eq(om.ERRORS["WRITE_SLVERR"] + wr.error[0])
            m.next = "ABORT"


def drain_after_abort(m, rd, wr, soft_cmd, soft, code):
    """The body of a shell controller's ABORT state (after :func:`abort_on_errors`): both
    DMAs aborted until their AXI sides are quiet, then FLUSH; a soft reset meanwhile
    clears the error code (the run ends without DONE)."""
    m.d.comb += [rd.abort.eq(1), wr.abort.eq(1)]
    with m.If(soft_cmd):
        m.d.sync += [soft.eq(1), code.eq(0)]
    with m.If(rd.drained & wr.drained):
        m.next = "FLUSH"



def bad_bus_address(addr, bus_bytes):
    """A DDR address a shell rejects: 0, or not aligned to the ``bus_bytes``-byte bus word."""
    return (addr == 0) | ((addr & (bus_bytes - 1)) != 0)


def end_command(m, done, code, error):
    """In a shell controller's FSM: end the command at the next clock edge with DONE set and
    error code ``error``, back to IDLE."""
    m.d.sync += [done.eq(1), code.eq(error)]
    m.next = "IDLE"

class OverlayShell(wiring.Component):
    """The accelerator of ``cfg`` behind an AXI4-Lite register file and an AXI4 DMA.

    Ports (:func:`shell_ports`): ``ap_clk``; ``ap_rst_n`` (active low,
    synchronous); ``s_axi_control_*`` (AXI4-Lite slave, 32-bit data, 12-bit
    address; registers in :mod:`qnnfab.overlay_map`); ``m_axi_gmem_*`` (AXI4
    master, ``data_width`` 32/64/128 bits, 32-bit address, ID width 1);
    ``interrupt`` (level, high while DONE and IRQ_ENABLE).

    A run (CTRL.START): checks FRAMES and the buffer addresses (a bad value
    ends the run at once with its error code), resets the datapath for one
    cycle, then the read DMA streams ``FRAMES`` input frames from IN_ADDR
    through a :class:`FrameUnpacker` into the accelerator while the write
    DMA writes each frame's record (:class:`RecordPacker`) from OUT_ADDR on;
    both keep several bursts in flight. The run ends (DONE) when every
    record is written and acknowledged.

    Aborts: a START during a run, or an error response on either side, stops
    both DMAs from issuing bursts, lets the outstanding ones finish (read
    data is dropped; owed write beats carry data already buffered for the
    output buffer), resets the datapath and ends in DONE with the error
    code. SOFT_RESET does the same from any state but ends with DONE clear
    and code 0. Nothing is written outside the output buffer's records of
    the run.

    LOAD_WEIGHTS: when the accelerator has a ``wload`` port (runtime
    weights), checks WEIGHTS_ADDR (bus aligned, not 0) and WEIGHTS_LEN (not
    0), then the read DMA streams the image's ``ceil(WEIGHTS_LEN / 8)``
    64-bit words (:class:`WeightWords`) into ``wload``; the command ends
    (DONE) when the accelerator reports ``wload_done``, with code WLOAD and
    its ``wload_error`` in ERROR bits 15:8 when that is not 0. The datapath
    is not reset after a load (the loaded weights stay). Without a ``wload``
    port the command ends at once with WEIGHTS_UNSUPPORTED.
    """

    def __init__(self, cfg, data_width=64, *, pipeline=None):
        if data_width not in (32, 64, 128):
            raise ValueError(f"data_width must be 32, 64 or 128, not {data_width!r}")
        self.cfg = cfg
        self.data_width = data_width
        self.accel = Dataflow(cfg, pipeline=pipeline)
        self.formats = self.accel.plan.overlay_formats(data_width)
        super().__init__(shell_ports(data_width))

    def elaborate(self, platform):
        """The parts below, in the order they add statements and submodules (the Verilog's
        text depends on that order)."""
        m = Module()
        shell_clock(m, self)
        flush = Signal()                 # resets the datapath (only while the AXI side is quiet)
        regs, rd, wr, unpacker, packer = self._shell(m, flush)
        loading = Signal()               # the read DMA feeds the weights image, not frames
        words = self._datapath(m, flush, regs, rd, wr, unpacker, packer, loading)
        ctl = self._commands(m, regs, packer)
        self._control(m, regs, rd, wr, ctl, flush, loading, words)
        self._status(m, regs, ctl)
        return m

    def _shell(self, m, flush):
        """The submodules: ``regs`` (register file), ``read_dma``, ``write_dma``,
        ``unpacker``, ``packer`` and ``accel`` (all but ``regs`` reset while ``flush``),
        the shell's AXI ports wired to the register file and the DMAs.
        Returns ``(regs, rd, wr, unpacker, packer)``."""
        fm, bus_bits = self.formats, self.data_width
        count_width = 32 + max(fm.in_frame_beats, fm.out_record_beats).bit_length()
        regs = AxiLiteRegisters(om.REGISTERS, addr_width=12)
        m.submodules.regs = regs
        rd = AxiReadDma(bus_bits, DMA_FIFO_BEATS, count_width)
        wr = AxiWriteDma(bus_bits, DMA_FIFO_BEATS, count_width)
        unpacker = FrameUnpacker(bus_bits, fm.in_word_bits, 8 * fm.in_slot_bytes, fm.in_words)
        packer = RecordPacker(bus_bits, fm.out_word_bits, 8 * fm.out_slot_bytes, len(self.accel.label))
        m.submodules.read_dma = ResetInserter({"sync": flush})(rd)
        m.submodules.write_dma = ResetInserter({"sync": flush})(wr)
        m.submodules.unpacker = ResetInserter({"sync": flush})(unpacker)
        m.submodules.packer = ResetInserter({"sync": flush})(packer)
        m.submodules.accel = ResetInserter({"sync": flush})(self.accel)

        connect_shell_axi(m, self, regs, rd, wr)
        return regs, rd, wr, unpacker, packer

    def _datapath(self, m, flush, regs, rd, wr, unpacker, packer, loading):
        """The datapath: read DMA -> unpacker -> accelerator -> packer -> write DMA.

        While ``loading`` the read DMA's words go instead to the accelerator's ``wload``
        port through a :class:`WeightWords` (submodule ``weight_words``, reset while
        ``flush``; it passes ``ceil(WEIGHTS_LEN / 8)`` 64-bit words), when the
        accelerator has one. All connections are comb (the stages' own timing).
        Returns the :class:`WeightWords`, or None without a ``wload`` port."""
        weights = _weights_port(self.accel)
        words = None
        m.d.comb += [unpacker.i.payload.eq(rd.o.payload), unpacker.i.valid.eq(rd.o.valid & ~loading)]
        if weights is None:
            m.d.comb += rd.o.ready.eq(unpacker.i.ready)
        else:
            wload, wload_done, wload_error = weights
            m.submodules.weight_words = words = ResetInserter({"sync": flush})(WeightWords(self.data_width))
            m.d.comb += [
                words.i.payload.eq(rd.o.payload), words.i.valid.eq(rd.o.valid & loading),
                rd.o.ready.eq(Mux(loading, words.i.ready, unpacker.i.ready)),
                wload.payload.data.eq(words.o.payload.data), wload.payload.last.eq(words.o.payload.last),
                wload.valid.eq(words.o.valid), words.o.ready.eq(wload.ready),
                words.words.eq((regs.WEIGHTS_LEN + 7) >> 3),
            ]
        (i_data, i_valid, i_ready), (o_data, o_last, o_valid, o_ready) = _accelerator_ports(self.accel)
        m.d.comb += [
            i_data.eq(unpacker.o.payload), i_valid.eq(unpacker.o.valid), unpacker.o.ready.eq(i_ready),
            packer.scores.payload.data.eq(o_data), packer.scores.payload.last.eq(o_last),
            packer.scores.valid.eq(o_valid), o_ready.eq(packer.scores.ready),
            packer.label.eq(self.accel.label), packer.label_valid.eq(self.accel.label_valid),
        ]
        wiring.connect(m, packer.o, wr.i)
        return words

    def _commands(self, m, regs, packer):
        """The controller's registers and the CTRL / STATUS writes.

        ``start_cmd``, ``soft_cmd``, ``weights_cmd`` (comb) are CTRL writes with START,
        SOFT_RESET, LOAD_WEIGHTS set; at the next clock edge a CTRL write sets
        ``irq_enable`` from IRQ_ENABLE, a STATUS write with DONE set clears ``done``, and
        ``frames_done`` counts the packer's records. Also ``code`` (ERROR 7:0),
        ``wload_code`` (ERROR 15:8), ``soft`` (the command ends by SOFT_RESET),
        ``cycles`` and ``busy`` (comb), driven by :meth:`_control`. Returns a namespace
        of them."""
        irq_enable = Signal()
        done = Signal()
        code = Signal(8)
        wload_code = Signal(8)
        soft = Signal()
        cycles = Signal(32)
        frames_done = Signal(32)
        ctrl_write = regs.CTRL_write
        wdata = regs.wdata_out
        start_cmd = Signal()
        soft_cmd = Signal()
        weights_cmd = Signal()
        m.d.comb += [
            start_cmd.eq(ctrl_write & wdata[0]),
            soft_cmd.eq(ctrl_write & wdata[1]),
            weights_cmd.eq(ctrl_write & wdata[3]),
        ]
        with m.If(ctrl_write):
            m.d.sync += irq_enable.eq(wdata[2])
        with m.If(regs.STATUS_write & wdata[1]):
            m.d.sync += done.eq(0)
        with m.If(packer.record_done):
            m.d.sync += frames_done.eq(frames_done + 1)
        busy = Signal()
        return SimpleNamespace(irq_enable=irq_enable, done=done, code=code, wload_code=wload_code, soft=soft,
                               cycles=cycles, frames_done=frames_done, start_cmd=start_cmd, soft_cmd=soft_cmd,
                               weights_cmd=weights_cmd, busy=busy)

    def _control(self, m, regs, rd, wr, ctl, flush, loading, words):
        """The control FSM: IDLE (:meth:`_idle`); a run: PREPARE (one cycle: ``flush``
        resets the datapath), LAUNCH (one cycle: starts both DMAs for FRAMES frames), RUN
        until both DMAs are done; a weights load (:meth:`_weights_states`); ABORT
        (:func:`abort_on_errors`, :func:`drain_after_abort`) then FLUSH (one cycle:
        ``flush``, DONE unless SOFT_RESET). A SOFT_RESET in PREPARE or LAUNCH aborts.
        ``ctl.busy`` (comb) is high outside IDLE, ``ctl.cycles`` counts a command's cycles."""
        fm = self.formats
        weights = _weights_port(self.accel)
        done, code, soft, cycles, busy = ctl.done, ctl.code, ctl.soft, ctl.cycles, ctl.busy
        start_cmd, soft_cmd = ctl.start_cmd, ctl.soft_cmd
        with m.FSM(name="control"):
            with m.State("IDLE"):
                self._idle(m, regs, ctl, weights is not None)
            with m.State("PREPARE"):
                m.d.comb += [flush.eq(1), busy.eq(1)]
                m.d.sync += [cycles.eq(cycles + 1), ctl.frames_done.eq(0)]
                with m.If(soft_cmd):
                    m.d.sync += soft.eq(1)
                    m.next = "FLUSH"
                with m.Else():
                    m.next = "LAUNCH"
            with m.State("LAUNCH"):
                m.d.comb += [
                    busy.eq(1),
                    rd.start.eq(1), rd.addr.eq(regs.IN_ADDR), rd.beats.eq(regs.FRAMES * fm.in_frame_beats),
                    wr.start.eq(1), wr.addr.eq(regs.OUT_ADDR),
                    wr.beats.eq(regs.FRAMES * fm.out_record_beats),
                ]
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(soft_cmd):
                    m.d.sync += soft.eq(1)
                    m.next = "ABORT"
                with m.Else():
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                abort_on_errors(m, rd, wr, soft_cmd, start_cmd, soft, code)
                with m.Elif(wr.done & rd.done):
                    end_command(m, done, code, om.ERRORS["OK"])
            if weights is not None:
                _wload, wload_done, wload_error = weights
                self._weights_states(m, regs, rd, ctl, loading, words, wload_done, wload_error)
            with m.State("ABORT"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                drain_after_abort(m, rd, wr, soft_cmd, soft, code)
            with m.State("FLUSH"):
                m.d.comb += [busy.eq(1), flush.eq(1)]
                m.d.sync += done.eq(~soft)
                m.next = "IDLE"

    def _idle(self, m, regs, ctl, has_weights):
        """The body of the control FSM's IDLE state: the commands.

        SOFT_RESET goes to FLUSH; START checks FRAMES, IN_ADDR, OUT_ADDR (a bad one ends
        the run with its code), clears ``cycles`` and ``frames_done`` and goes to
        PREPARE; LOAD_WEIGHTS (``has_weights``, else WEIGHTS_UNSUPPORTED) checks
        WEIGHTS_ADDR and WEIGHTS_LEN and goes to WLAUNCH. Every command clears DONE
        and the error codes at the next clock edge."""
        bus_bytes = self.data_width // 8
        done, code, wload_code, soft, cycles = ctl.done, ctl.code, ctl.wload_code, ctl.soft, ctl.cycles
        with m.If(ctl.soft_cmd):
            m.d.sync += [done.eq(0), code.eq(0), wload_code.eq(0), soft.eq(1)]
            m.next = "FLUSH"
        with m.Elif(ctl.start_cmd):
            m.d.sync += [done.eq(0), code.eq(0), wload_code.eq(0), soft.eq(0)]
            with m.If(regs.FRAMES == 0):
                end_command(m, done, code, om.ERRORS["ZERO_FRAMES"])
            with m.Elif(bad_bus_address(regs.IN_ADDR, bus_bytes)):
                end_command(m, done, code, om.ERRORS["IN_ADDR"])
            with m.Elif(bad_bus_address(regs.OUT_ADDR, bus_bytes)):
                end_command(m, done, code, om.ERRORS["OUT_ADDR"])
            with m.Else():
                m.d.sync += [cycles.eq(0), ctl.frames_done.eq(0)]
                m.next = "PREPARE"
        with m.Elif(ctl.weights_cmd):
            m.d.sync += [done.eq(0), code.eq(0), wload_code.eq(0), soft.eq(0)]
            if not has_weights:
                end_command(m, done, code, om.ERRORS["WEIGHTS_UNSUPPORTED"])
            else:
                with m.If(bad_bus_address(regs.WEIGHTS_ADDR, bus_bytes)):
                    end_command(m, done, code, om.ERRORS["WEIGHTS_ADDR"])
                with m.Elif(regs.WEIGHTS_LEN == 0):
                    end_command(m, done, code, om.ERRORS["WEIGHTS_LEN"])
                with m.Else():
                    m.d.sync += cycles.eq(0)
                    m.next = "WLAUNCH"

    def _weights_states(self, m, regs, rd, ctl, loading, words, wload_done, wload_error):
        """The control FSM's states of a weights load (``loading`` high in all three).

        WLAUNCH (one cycle) starts the read DMA for the image's bus beats and ``words``;
        WLOAD until the accelerator's ``wload_done`` (a nonzero ``wload_error`` gives
        code WLOAD with it in ``ctl.wload_code``), or ABORT as in a run (read side only);
        WEND lets the read DMA finish (nothing is reset), then DONE and IDLE."""
        bus_bytes = self.data_width // 8
        code, cycles, busy = ctl.code, ctl.cycles, ctl.busy
        shift = (bus_bytes - 1).bit_length()
        with m.State("WLAUNCH"):
            m.d.comb += [
                busy.eq(1), loading.eq(1), words.start.eq(1),
                rd.start.eq(1), rd.addr.eq(regs.WEIGHTS_ADDR),
                rd.beats.eq((regs.WEIGHTS_LEN + (bus_bytes - 1)) >> shift),
            ]
            m.d.sync += cycles.eq(cycles + 1)
            m.next = "WLOAD"
        with m.State("WLOAD"):
            m.d.comb += [busy.eq(1), loading.eq(1)]
            m.d.sync += cycles.eq(cycles + 1)
            abort_on_errors(m, rd, None, ctl.soft_cmd, ctl.start_cmd, ctl.soft, code)
            with m.Elif(wload_done):
                with m.If(wload_error != 0):
                    m.d.sync += [code.eq(om.ERRORS["WLOAD"]), ctl.wload_code.eq(wload_error)]
                m.next = "WEND"
        with m.State("WEND"):
            # the loader has ended; let the read DMA finish (nothing is reset)
            m.d.comb += [busy.eq(1), loading.eq(1), rd.abort.eq(1)]
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(rd.drained):
                m.d.sync += ctl.done.eq(1)
                m.next = "IDLE"

    def _status(self, m, regs, ctl):
        """The register file's read values (CTRL, STATUS, ERROR, FRAMES_DONE, CYCLES and
        the identity registers of :mod:`qnnfab.overlay_map`) and ``interrupt`` (high
        while DONE and IRQ_ENABLE), all comb."""
        fm = self.formats
        m.d.comb += [
            regs.CTRL.eq(ctl.irq_enable << 2),
            regs.STATUS.eq(ctl.busy | (ctl.done << 1) | ((ctl.code != 0) << 2)),
            regs.ERROR.eq(ctl.code | (ctl.wload_code << 8)),
            regs.FRAMES_DONE.eq(ctl.frames_done),
            regs.CYCLES.eq(ctl.cycles),
            regs.IDENTITY.eq(om.IDENTITY),
            regs.TOPOLOGY.eq(fm.topology_hash),
            regs.IDENTITY_HASH.eq(fm.identity_hash),
            regs.FEATURES.eq(fm.features()),
            regs.IN_FRAME_BYTES.eq(fm.in_frame_bytes),
            regs.OUT_RECORD_BYTES.eq(fm.out_record_bytes),
            self.interrupt.eq(ctl.irq_enable & ctl.done),
        ]

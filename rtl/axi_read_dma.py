"""AXI4 read DMA: a run of beats from memory into a stream, bursts issued ahead."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from qnnfab.overlay_map import MAX_BURST

__all__ = ["AxiReadDma", "BurstRequests", "axi_read_members", "burst_length", "check_dma_params",
           "dma_control_members"]


def axi_read_members(data_width, prefix="m_"):
    """Signature members of an AXI4 master's read channels (ID width 1)."""
    return {f"{prefix}{k}": v for k, v in {
        "arid": Out(1), "araddr": Out(32), "arlen": Out(8), "arsize": Out(3), "arburst": Out(2),
        "arlock": Out(1), "arcache": Out(4), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rid": In(1), "rdata": In(data_width), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
        "rready": Out(1),
    }.items()}


def burst_length(m, addr, remaining, bus_bytes, name):
    """Beats of the next burst from byte address ``addr`` with ``remaining``
    beats to go: up to the end of the aligned block of ``MAX_BURST`` beats
    (so no burst crosses 4 KiB), at most ``remaining``. A 5-bit signal."""
    shift = (bus_bytes - 1).bit_length()
    beat = addr[shift:shift + 4]
    to_block_end = Signal(range(MAX_BURST + 1), name=f"{name}_to_block_end")
    length = Signal(range(MAX_BURST + 1), name=f"{name}_length")
    m.d.comb += [
        to_block_end.eq(MAX_BURST - beat),
        length.eq(Mux(remaining < to_block_end, remaining, to_block_end)),
    ]
    return length


def dma_control_members(count_width):
    """Signature members of a DMA's run control (shared by both DMAs; see their docstrings)."""
    return {"start": In(1), "addr": In(32), "beats": In(count_width), "abort": In(1),
            "drained": Out(1), "done": Out(1), "error": Out(2)}


def check_dma_params(data_width, fifo_depth):
    """The parameter rules shared by both DMAs (ValueError naming the parameter)."""
    if data_width not in (32, 64, 128):
        raise ValueError(f"data_width must be 32, 64 or 128, not {data_width!r}")
    if fifo_depth < 2 * MAX_BURST:
        raise ValueError(f"fifo_depth must be at least {2 * MAX_BURST}, not {fifo_depth!r}")


class BurstRequests:
    """The address channel (``"ar"`` or ``"aw"``) of a DMA run, built into ``m``.

    ``cur`` (byte address of the next burst) and ``remaining`` (beats not yet
    requested) are loaded by the DMA's ``start``; ``length`` is the next
    burst's beats (:func:`burst_length`). :meth:`issue_when` makes ``issue``
    (a burst of ``length`` beats is requested this cycle): no request pending,
    beats remaining and the DMA's own condition. The request is held on the
    channel (``valid``) until the slave takes it.
    """

    def __init__(self, m, dma, channel, count_width):
        self._m, self._dma, self._ch = m, dma, channel
        self.bus_bytes = dma.data_width // 8
        self.cur = Signal(32, name="cur")
        self.remaining = Signal(count_width, name="remaining")
        self.valid = Signal(name=f"{channel}_valid")
        self.addr = Signal(32, name=f"{channel}_addr")
        self.len = Signal(8, name=f"{channel}_len")
        self.length = burst_length(m, self.cur, self.remaining, self.bus_bytes, channel)
        self.issue = Signal(name="issue")

    def issue_when(self, condition):
        m, ch = self._m, self._ch
        port = {n: getattr(self._dma, f"m_{ch}{n}") for n in
                ("id", "addr", "len", "size", "burst", "lock", "cache", "prot", "valid", "ready")}
        m.d.comb += self.issue.eq(~self.valid & (self.remaining != 0) & condition)
        m.d.comb += [
            port["id"].eq(0), port["addr"].eq(self.addr), port["len"].eq(self.len),
            port["size"].eq((self.bus_bytes - 1).bit_length()), port["burst"].eq(1),
            port["lock"].eq(0), port["cache"].eq(0b0011), port["prot"].eq(0),
            port["valid"].eq(self.valid),
        ]
        with m.If(self.issue):
            m.d.sync += [
                self.valid.eq(1), self.addr.eq(self.cur), self.len.eq(self.length - 1),
                self.cur.eq(self.cur + self.length * self.bus_bytes),
                self.remaining.eq(self.remaining - self.length),
            ]
        with m.If(self.valid & port["ready"]):
            m.d.sync += self.valid.eq(0)
        with m.If(self._dma.start):
            m.d.sync += [self.cur.eq(self._dma.addr), self.remaining.eq(self._dma.beats)]


class AxiReadDma(wiring.Component):
    """Reads ``beats`` bus words from byte address ``addr`` into the stream ``o``.

    Parameters: ``data_width`` (bus bits: 32, 64 or 128), ``fifo_depth``
    (beats buffered, at least 2 * MAX_BURST), ``count_width`` (bits of
    ``beats``).

    Control: ``start`` (one cycle, while ``drained``) latches ``addr`` (bus
    aligned) and ``beats``; words of an earlier run still in the FIFO leave
    ``o`` first. INCR bursts of at most ``MAX_BURST`` beats, none crossing a
    16-beat block (hence never 4 KiB), are issued while the FIFO has room for
    every beat already requested, so RREADY stays high, whatever ``o.ready``
    does, and several bursts are in flight. ``o`` carries the beats in
    address order.

    ``error`` is the first non-OKAY RRESP of the run (2 = SLVERR, 3 =
    DECERR; 0 = none), cleared by ``start`` (no reset needed before the next
    run). The beat with the error and every later beat are dropped: ``o``
    carries exactly the beats before it. After the error no more bursts are
    issued; ``abort`` (level) does the same (beats arriving while it is high
    are dropped). After either, RREADY stays high, so the beats of the bursts
    still outstanding are taken and dropped even while ``o`` is stalled.
    ``drained`` is high when no burst is outstanding (the AXI side is quiet:
    the DMA may be reset); ``done`` when every beat of the run has arrived.
    """

    def __init__(self, data_width=64, fifo_depth=64, count_width=40):
        check_dma_params(data_width, fifo_depth)
        self.data_width, self.fifo_depth, self.count_width = data_width, fifo_depth, count_width
        super().__init__({
            **dma_control_members(count_width),
            "o": Out(stream.Signature(data_width)),
            **axi_read_members(data_width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.data_width, depth=self.fifo_depth)
        req = BurstRequests(m, self, "ar", self.count_width)
        reserved = Signal(range(self.fifo_depth + 1))     # beats requested and not yet taken/dropped
        bursts = Signal(range(self.fifo_depth + 1))       # bursts requested, last beat not yet in
        error = Signal(2)
        stopped = Signal()
        m.d.comb += stopped.eq(self.abort | (error != 0))
        req.issue_when(~stopped & (reserved + req.length <= self.fifo_depth))

        beat_in = Signal()
        m.d.comb += [
            self.m_rready.eq(fifo.w_rdy | stopped),
            beat_in.eq(self.m_rvalid & self.m_rready),
            fifo.w_data.eq(self.m_rdata),
            fifo.w_en.eq(beat_in & ~stopped & ~self.m_rresp[1]),
        ]
        dropped = Signal()
        m.d.comb += dropped.eq(beat_in & ~fifo.w_en)
        with m.If(beat_in & self.m_rresp[1] & (error == 0)):
            m.d.sync += error.eq(self.m_rresp)

        wiring.connect(m, fifo.r_stream, wiring.flipped(self.o))
        taken = Signal()
        m.d.comb += taken.eq(self.o.valid & self.o.ready)
        m.d.sync += reserved.eq(reserved + Mux(req.issue, req.length, 0) - taken - dropped)
        m.d.sync += bursts.eq(bursts + req.issue - (beat_in & self.m_rlast))

        with m.If(self.start):
            m.d.sync += error.eq(0)
        m.d.comb += [
            self.error.eq(error),
            self.drained.eq(~req.valid & (bursts == 0)),
            self.done.eq(~req.valid & (bursts == 0) & (req.remaining == 0)),
        ]
        return m

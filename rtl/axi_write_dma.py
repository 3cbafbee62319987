"""AXI4 write DMA: a stream of beats written to consecutive memory."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from qnnfab.overlay_map import MAX_BURST

from .axi_read_dma import BurstRequests, check_dma_params, dma_control_members

__all__ = ["AxiWriteDma", "axi_write_members"]

MAX_BURSTS_IN_FLIGHT = 8


def axi_write_members(data_width, prefix="m_"):
    """Signature members of an AXI4 master's write channels (ID width 1)."""
    return {f"{prefix}{k}": v for k, v in {
        "awid": Out(1), "awaddr": Out(32), "awlen": Out(8), "awsize": Out(3), "awburst": Out(2),
        "awlock": Out(1), "awcache": Out(4), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1), "wvalid": Out(1),
        "wready": In(1),
        "bid": In(1), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    }.items()}


class AxiWriteDma(wiring.Component):
    """Writes ``beats`` bus words from the stream ``i`` to byte address ``addr`` on.

    Parameters: ``data_width`` (32, 64 or 128), ``fifo_depth`` (beats
    buffered, at least 2 * MAX_BURST), ``count_width`` (bits of ``beats``).

    Control: ``start`` (one cycle, while ``drained``) latches ``addr`` (bus
    aligned) and ``beats``. Beats from ``i`` collect in a FIFO; a burst (INCR,
    at most ``MAX_BURST`` beats, inside one 16-beat block, so never across 4
    KiB) is requested on AW only once all its beats are in the FIFO, so its W
    beats follow back to back with every byte strobe set. Up to
    ``MAX_BURSTS_IN_FLIGHT`` bursts wait for their B response; BREADY stays
    high.

    ``error`` is the first non-OKAY BRESP of the run (2 = SLVERR, 3 = DECERR),
    cleared by ``start``: a run whose beats all went out in bursts needs no
    reset before the next one, even after an error (beats of a stopped run
    left in the FIFO would be written first by the next run: reset the DMA
    then). After the error, or while ``abort`` (level) is high, no new burst
    is requested (the W beats of bursts already requested still follow,
    their data is in the FIFO). ``drained``: no burst is waiting for its
    response (the AXI side is quiet: the DMA may be reset); ``done``: every
    beat of the run is written and acknowledged.
    """

    def __init__(self, data_width=64, fifo_depth=64, count_width=40):
        check_dma_params(data_width, fifo_depth)
        self.data_width, self.fifo_depth, self.count_width = data_width, fifo_depth, count_width
        super().__init__({
            **dma_control_members(count_width),
            "i": In(stream.Signature(data_width)),
            **axi_write_members(data_width),
        })

    def elaborate(self, platform):
        m = Module()
        bus_bytes = self.data_width // 8
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.data_width, depth=self.fifo_depth)
        m.submodules.lengths = lengths = SyncFIFO(width=5, depth=MAX_BURSTS_IN_FLIGHT)
        wiring.connect(m, wiring.flipped(self.i), fifo.w_stream)
        req = BurstRequests(m, self, "aw", self.count_width)
        avail = Signal(range(self.fifo_depth + 1))            # beats in the FIFO not yet in a burst
        bursts = Signal(range(MAX_BURSTS_IN_FLIGHT + 1))      # bursts requested, B not yet in
        error = Signal(2)
        stopped = Signal()
        m.d.comb += stopped.eq(self.abort | (error != 0))
        req.issue_when(~stopped & (avail >= req.length) & (bursts < MAX_BURSTS_IN_FLIGHT) & lengths.w_rdy)
        m.d.comb += [lengths.w_en.eq(req.issue), lengths.w_data.eq(req.length)]
        pushed = Signal()
        m.d.comb += pushed.eq(fifo.w_en & fifo.w_rdy)
        m.d.sync += avail.eq(avail + pushed - Mux(req.issue, req.length, 0))

        # W: the beats of each requested burst, in order; the next burst's
        # length is loaded on the last beat of the previous one (no gap)
        w_left = Signal(range(MAX_BURST + 1))
        beat_out = Signal()
        m.d.comb += [
            self.m_wvalid.eq((w_left != 0) & fifo.r_rdy),
            self.m_wdata.eq(fifo.r_data),
            self.m_wstrb.eq((1 << bus_bytes) - 1),
            self.m_wlast.eq(w_left == 1),
            beat_out.eq(self.m_wvalid & self.m_wready),
            fifo.r_en.eq(beat_out),
        ]
        load = Signal()
        m.d.comb += load.eq(lengths.r_rdy & ((w_left == 0) | (beat_out & (w_left == 1))))
        m.d.comb += lengths.r_en.eq(load)
        with m.If(load):
            m.d.sync += w_left.eq(lengths.r_data)
        with m.Elif(beat_out):
            m.d.sync += w_left.eq(w_left - 1)

        response = Signal()
        m.d.comb += [self.m_bready.eq(1), response.eq(self.m_bvalid)]
        m.d.sync += bursts.eq(bursts + req.issue - response)
        with m.If(response & self.m_bresp[1] & (error == 0)):
            m.d.sync += error.eq(self.m_bresp)

        with m.If(self.start):
            m.d.sync += error.eq(0)
        m.d.comb += [
            self.error.eq(error),
            self.drained.eq(~req.valid & (bursts == 0)),
            self.done.eq(~req.valid & (bursts == 0) & (req.remaining == 0)),
        ]
        return m

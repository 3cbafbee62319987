"""The AXI4 read and write DMAs on Amaranth's simulator against a memory slave
model, with stalled and erroring neighbours: no burst after a stop, the drain
after a stop while the output stream stalls, what leaves the read DMA around
an error response, and ``start`` clearing the error of the previous run."""

import random

import pytest
from amaranth.sim import Simulator

from qnnfab.rtl.axi_read_dma import AxiReadDma
from qnnfab.rtl.axi_write_dma import AxiWriteDma
from qnnfab.sim.amaranth_stream import StreamSink, StreamSource, run_streams

BUS_BYTES = 8          # the DMAs under test have a 64-bit bus


def word_at(addr):
    """The memory's content at byte address ``addr``: distinct for every bus word."""
    return (0xC0DE << 48) | addr


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


class ReadSlave:
    """Memory behind a read DMA's AXI4 read channels (``drive`` and ``sample``
    are a driver and a monitor of :func:`run_streams`).

    AR is taken in cycles drawn with ``arready_prob``; R returns the beats of
    the taken bursts in order (``word_at`` their addresses), each offered in a
    cycle drawn with ``rvalid_prob`` and held until RREADY. Beat
    ``error_beat`` (counted from 0 over the whole simulation) answers RRESP
    ``resp``, every other one OKAY. ``requests``: (cycle, address, beats) of
    every taken burst; ``taken``: (cycle, address) of every beat the DMA
    took; ``refused``: cycles a beat was offered and RREADY was low.
    """

    def __init__(self, dut, rng, *, arready_prob=1.0, rvalid_prob=1.0, error_beat=None, resp=2):
        self.dut, self.rng = dut, rng
        self.arready_prob, self.rvalid_prob = arready_prob, rvalid_prob
        self.error_beat, self.resp = error_beat, resp
        self.pending = []          # [address of the next beat, beats left] of every taken burst
        self.offer = None
        self.requests, self.taken, self.refused = [], [], []

    @property
    def outstanding(self):
        """Beats requested and not yet taken by the DMA."""
        return sum(left for _, left in self.pending)

    def drive(self, ctx, cycle):
        d = self.dut
        ctx.set(d.m_arready, self.rng.random() < self.arready_prob)
        if self.offer is None and self.pending and self.rng.random() < self.rvalid_prob:
            addr, left = self.pending[0]
            self.offer = (word_at(addr), int(left == 1), self.resp if len(self.taken) == self.error_beat else 0)
        ctx.set(d.m_rvalid, self.offer is not None)
        if self.offer is not None:
            ctx.set(d.m_rdata, self.offer[0])
            ctx.set(d.m_rlast, self.offer[1])
            ctx.set(d.m_rresp, self.offer[2])
        else:
            ctx.set(d.m_rdata, self.rng.getrandbits(64))
            ctx.set(d.m_rlast, self.rng.getrandbits(1))
            ctx.set(d.m_rresp, self.rng.getrandbits(2))

    def sample(self, ctx, cycle):
        d = self.dut
        if ctx.get(d.m_arvalid) and ctx.get(d.m_arready):
            addr, beats = ctx.get(d.m_araddr), ctx.get(d.m_arlen) + 1
            self.requests.append((cycle, addr, beats))
            self.pending.append([addr, beats])
        if self.offer is not None:
            if ctx.get(d.m_rready):
                self.taken.append((cycle, self.pending[0][0]))
                self.pending[0][0] += BUS_BYTES
                self.pending[0][1] -= 1
                if self.pending[0][1] == 0:
                    self.pending.pop(0)
                self.offer = None
            else:
                self.refused.append(cycle)


class WriteSlave:
    """Memory behind a write DMA's AXI4 write channels (``drive`` and ``sample``
    as for :class:`ReadSlave`).

    AW and W are taken in cycles drawn with ``awready_prob`` and
    ``wready_prob``; W beats belong to the bursts in AW order. A burst is
    written to ``mem`` (byte address -> word) once its address and all its
    beats are in (WLAST must mark its final beat: ``wlast_errors`` lists the
    beats where it does not), and its B response is offered ``b_delay``
    cycles later, held until BREADY: burst ``error_burst`` (counted from 0
    over the simulation) answers BRESP ``resp``. ``requests``: (cycle,
    address, beats) of every taken burst.
    """

    def __init__(self, dut, rng, *, awready_prob=1.0, wready_prob=1.0, b_delay=2, error_burst=None, resp=2):
        self.dut, self.rng = dut, rng
        self.awready_prob, self.wready_prob, self.b_delay = awready_prob, wready_prob, b_delay
        self.error_burst, self.resp = error_burst, resp
        self.bursts, self.beats = [], []       # taken addresses and W beats not yet matched
        self.responses = []                    # [cycle due, resp]
        self.mem, self.requests, self.wlast_errors = {}, [], []
        self.written = 0                       # bursts complete

    def drive(self, ctx, cycle):
        d = self.dut
        ctx.set(d.m_awready, self.rng.random() < self.awready_prob)
        ctx.set(d.m_wready, self.rng.random() < self.wready_prob)
        due = bool(self.responses) and self.responses[0][0] <= cycle
        ctx.set(d.m_bvalid, due)
        ctx.set(d.m_bresp, self.responses[0][1] if due else self.rng.getrandbits(2))

    def sample(self, ctx, cycle):
        d = self.dut
        if ctx.get(d.m_awvalid) and ctx.get(d.m_awready):
            addr, beats = ctx.get(d.m_awaddr), ctx.get(d.m_awlen) + 1
            self.requests.append((cycle, addr, beats))
            self.bursts.append((addr, beats))
        if ctx.get(d.m_wvalid) and ctx.get(d.m_wready):
            self.beats.append((ctx.get(d.m_wdata), ctx.get(d.m_wlast)))
        if ctx.get(d.m_bvalid) and ctx.get(d.m_bready):
            self.responses.pop(0)
        while self.bursts and len(self.beats) >= self.bursts[0][1]:
            addr, n = self.bursts.pop(0)
            for k, (data, last) in enumerate(self.beats[:n]):
                self.mem[addr + k * BUS_BYTES] = data
                if last != (k == n - 1):
                    self.wlast_errors.append((addr, k))
            del self.beats[:n]
            self.responses.append([cycle + self.b_delay, self.resp if self.written == self.error_burst else 0])
            self.written += 1


def _dma_under_stop(kind, stop):
    """Run a DMA against an always-ready slave; stop it (``abort`` high, or an
    error response on the second burst) and return (cycle of the stop,
    cycles of every new burst request, error, drained at the end)."""
    dut = (AxiWriteDma if kind == "write" else AxiReadDma)(64, 64, 40)
    a = "aw" if kind == "write" else "ar"
    log = {"requests": [], "stop": None}

    async def tb(ctx):
        ctx.set(dut.addr, 0x1000)
        ctx.set(dut.beats, 400)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(getattr(dut, f"m_{a}ready"), 1)
        if kind == "write":
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.m_wready, 1)
        else:
            ctx.set(dut.o.ready, 1)
        bursts = []             # lengths of accepted bursts awaiting data (read) or a response (write)
        beat = 0
        responses = 0
        for cycle in range(1500):
            ctx.set(dut.i.payload if kind == "write" else dut.m_rdata, cycle)
            if kind == "read":
                ctx.set(dut.m_rvalid, bool(bursts))
                ctx.set(dut.m_rlast, bool(bursts) and beat == bursts[0] - 1)
                ctx.set(dut.m_rresp, 2 if stop == "error" and responses == 1 else 0)
            else:
                done_bursts = [b for b in bursts if b == 0]
                ctx.set(dut.m_bvalid, bool(done_bursts))
                ctx.set(dut.m_bresp, 2 if stop == "error" and responses == 1 else 0)
            if stop == "abort" and responses == 2 and log["stop"] is None:
                log["stop"] = cycle
                ctx.set(dut.abort, 1)
            if ctx.get(dut.drained) and (bursts or ctx.get(getattr(dut, f"m_{a}valid"))):
                log.setdefault("early_drained", cycle)
            _, _, a_valid, a_ready, a_len, rr, w_taken, wlast, b_taken = await ctx.tick().sample(
                getattr(dut, f"m_{a}valid"), getattr(dut, f"m_{a}ready"), getattr(dut, f"m_{a}len"),
                dut.m_rready if kind == "read" else dut.m_bready,
                (dut.m_wvalid & dut.m_wready) if kind == "write" else dut.m_rvalid,
                dut.m_wlast if kind == "write" else dut.m_rlast,
                dut.m_bvalid & dut.m_bready if kind == "write" else dut.m_rvalid & dut.m_rready)
            if a_valid and a_ready:
                log["requests"].append(cycle)
                bursts.append(a_len + 1)
            if kind == "write":
                if w_taken:
                    i = next(k for k, b in enumerate(bursts) if b > 0)
                    bursts[i] -= 1
                if b_taken:
                    bursts.remove(0)
                    if stop == "error" and responses == 1:
                        log["stop"] = cycle
                    responses += 1
            elif b_taken:
                beat += 1
                if beat == bursts[0]:
                    bursts.pop(0)
                    beat = 0
                    if stop == "error" and responses == 1:
                        log["stop"] = cycle
                    responses += 1
        log["error"] = ctx.get(dut.error)
        log["drained"] = ctx.get(dut.drained)

    run(dut, tb)
    return log


@pytest.mark.parametrize("kind", ["read", "write"])
@pytest.mark.parametrize("stop", ["abort", "error"])
def test_dma_requests_no_burst_after_abort_or_error_and_drains(kind, stop):
    log = _dma_under_stop(kind, stop)
    assert log["stop"] is not None, "the stop condition never came"
    late = [c for c in log["requests"] if c > log["stop"] + 2]
    assert not late, f"{kind} DMA requested bursts after the {stop} (cycle {log['stop']}): {late}"
    assert log["requests"][-1] < log["stop"] + 3 and len(log["requests"]) >= 2
    assert log["error"] == (2 if stop == "error" else 0)
    assert log["drained"], f"{kind} DMA not drained after the {stop}"
    assert "early_drained" not in log, f"{kind} DMA said drained at cycle {log['early_drained']} with bursts outstanding"


def _start_driver(dut, runs, next_when):
    """A driver: ``start`` of ``runs[0]`` (address, beats) in cycle 0, of
    ``runs[k]`` in the first cycle ``next_when(ctx)`` holds after run k - 1
    started; ``starts`` (returned) collects the start cycles."""
    starts = []

    def drive(ctx, cycle):
        go = cycle == 0 or (len(starts) < len(runs) and cycle > starts[-1] + 1 and next_when(ctx))
        if go:
            starts.append(cycle)
        addr, beats = runs[len(starts) - 1]
        ctx.set(dut.start, go)
        ctx.set(dut.addr, addr)
        ctx.set(dut.beats, beats)
    return drive, starts


@pytest.mark.parametrize("stop", ["abort", "error"])
def test_read_dma_drains_after_a_stop_while_its_output_is_stalled(stop):
    """Nobody takes the DMA's output; after ``abort`` (or an error response)
    with bursts outstanding it still takes every beat (RREADY high), drops
    them, and comes to ``drained``."""
    dut = AxiReadDma(64, 64, 40)
    rng = random.Random(3)
    stop_beat = 10                      # the stop comes after this many beats, 54 of 64 still outstanding
    slave = ReadSlave(dut, rng, rvalid_prob=0.5, error_beat=stop_beat if stop == "error" else None)
    snk = StreamSink(dut.o, ready_prob=0.0, rng=rng, name="o")
    start, _ = _start_driver(dut, [(0x1000, 400)], None)
    log = {"stop": None, "outstanding": None, "early_drained": [], "drained": [], "error": 0}

    def abort(ctx, cycle):
        if log["stop"] is None and len(slave.taken) == stop_beat + (stop == "error"):
            log["stop"], log["outstanding"] = cycle, slave.outstanding
        ctx.set(dut.abort, stop == "abort" and log["stop"] is not None)

    def watch(ctx, cycle):
        log["drained"].append(ctx.get(dut.drained))
        if log["drained"][-1] and (slave.outstanding or ctx.get(dut.m_arvalid)):
            log["early_drained"].append(cycle)
        log["error"] = ctx.get(dut.error)

    run_streams(dut, [], [snk], [0], max_cycles=10, extra_cycles=400, drivers=[start, abort, slave.drive],
                monitors=[watch, slave.sample])
    assert log["stop"] is not None and log["outstanding"] >= 32, log
    assert not slave.refused, (f"RREADY low with a beat offered in cycles {slave.refused[:8]} "
                               f"(the {stop} came in cycle {log['stop']}, the output is stalled)")
    assert slave.outstanding == 0, f"{slave.outstanding} beats never taken after the {stop}"
    assert log["drained"][-1], f"read DMA not drained after the {stop} with its output stalled"
    assert not log["early_drained"], f"drained with beats outstanding in cycles {log['early_drained'][:8]}"
    assert log["error"] == (2 if stop == "error" else 0)
    assert snk.words == []


@pytest.mark.parametrize("error_beat,resp", [(0, 2), (5, 3), (8, 2), (31, 3), (50, 2)])
def test_read_dma_passes_on_the_words_before_an_error_response_and_nothing_after(error_beat, resp):
    """An error response on beat ``error_beat`` of the run: exactly the words of
    the beats before it leave ``o``, in address order; neither the error beat
    nor any later beat does. Slow AR, gaps on R, a consumer that stalls."""
    dut = AxiReadDma(64, 64, 40)
    rng = random.Random(100 + error_beat)
    addr = 0x2040                       # 8 beats to the end of the first 16-beat block
    slave = ReadSlave(dut, rng, arready_prob=0.6, rvalid_prob=0.7, error_beat=error_beat, resp=resp)
    snk = StreamSink(dut.o, ready_prob=0.5, rng=rng, name="o")
    start, _ = _start_driver(dut, [(addr, 100)], None)
    end = {}

    def watch(ctx, cycle):
        end.update(error=ctx.get(dut.error), drained=ctx.get(dut.drained))

    run_streams(dut, [], [snk], [error_beat], max_cycles=2000, extra_cycles=300,
                drivers=[start, slave.drive], monitors=[watch, slave.sample])
    assert len(slave.taken) > error_beat, "the error beat was never sent"
    want = [word_at(addr + k * BUS_BYTES) for k in range(error_beat)]
    assert snk.words == want, (f"{len(snk.words)} words left the DMA, expected the {error_beat} before "
                               f"the error: extra {[hex(w) for w in snk.words[error_beat:error_beat + 3]]}")
    assert end == {"error": resp, "drained": 1}
    assert slave.outstanding == 0


def test_read_dma_start_clears_the_error_of_the_previous_run():
    """Run 1 ends in an error response; once it is drained and its good words
    taken, a ``start`` (no reset) clears ``error`` and run 2 delivers all its
    words, and nothing else, under backpressure."""
    dut = AxiReadDma(64, 64, 40)
    rng = random.Random(5)
    runs, error_beat = [(0x1000, 40), (0x7FE8, 50)], 20
    slave = ReadSlave(dut, rng, arready_prob=0.7, rvalid_prob=0.7, error_beat=error_beat)
    snk = StreamSink(dut.o, ready_prob=0.6, rng=rng, name="o")
    start, starts = _start_driver(
        dut, runs, lambda ctx: ctx.get(dut.drained) and ctx.get(dut.error) and len(snk.words) == error_beat)
    end = {}

    def watch(ctx, cycle):
        if len(starts) == 2 and cycle == starts[1] + 1:
            assert ctx.get(dut.error) == 0, f"error {ctx.get(dut.error)} still set after the start of run 2"
        end.update(error=ctx.get(dut.error), done=ctx.get(dut.done))

    run_streams(dut, [], [snk], [error_beat + runs[1][1]], max_cycles=3000, extra_cycles=30,
                drivers=[start, slave.drive], monitors=[watch, slave.sample])
    want = [word_at(runs[0][0] + k * BUS_BYTES) for k in range(error_beat)]
    want += [word_at(runs[1][0] + k * BUS_BYTES) for k in range(runs[1][1])]
    assert len(starts) == 2
    assert snk.words == want
    assert end == {"error": 0, "done": 1}


def test_write_dma_start_clears_the_error_of_the_previous_run():
    """Run 1 (one burst) gets SLVERR; once drained, a ``start`` (no reset)
    clears ``error`` and run 2 writes every word to its addresses. Slow AW
    and W, late B, gaps in the input stream."""
    dut = AxiWriteDma(64, 64, 40)
    rng = random.Random(6)
    runs = [(0x3000, 16), (0x5040, 40)]
    words = [[rng.getrandbits(64) for _ in range(n)] for _, n in runs]
    slave = WriteSlave(dut, rng, awready_prob=0.5, wready_prob=0.6, b_delay=3, error_burst=0)
    src = StreamSource(dut.i, words[0], valid_prob=0.7, rng=rng, name="i")
    start, starts = _start_driver(dut, runs, lambda ctx: ctx.get(dut.drained) and ctx.get(dut.error) and src.idle)
    end = {}

    def send(ctx, cycle):
        if len(starts) == 2 and cycle == starts[1]:
            src.send(words[1])

    def watch(ctx, cycle):
        if len(starts) == 2 and cycle == starts[1] + 1:
            assert ctx.get(dut.error) == 0, f"error {ctx.get(dut.error)} still set after the start of run 2"
        end.update(error=ctx.get(dut.error), done=ctx.get(dut.done))

    run_streams(dut, [src], [], [], max_cycles=10, extra_cycles=500,
                drivers=[start, send, slave.drive], monitors=[watch, slave.sample])
    assert len(starts) == 2, "run 1 never drained with its error"
    addr, n = runs[1]
    got = [slave.mem.get(addr + k * BUS_BYTES) for k in range(n)]
    assert got == words[1]
    assert all(addr <= a < addr + n * BUS_BYTES for c, a, _ in slave.requests if c > starts[1])
    assert not slave.wlast_errors
    assert end == {"error": 0, "done": 1}

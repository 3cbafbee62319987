"""The board in co-simulation of a shell (ports: :func:`qnnfab.rtl.overlay.shell_ports`) with cocotbext-axi.

:class:`Board`: clock, reset, the PS as an ``AxiLiteMaster`` on
``s_axi_control``, DDR as an ``AxiRam`` on ``m_axi_gmem`` (random pauses on
its five channels, fault windows, burst-rule checks, guard bytes and a host
shadow copy, and a progress watchdog on those five channels while a command
runs: :class:`ShellWatch`); :class:`CosimBackend`: the drivers' backend
(:mod:`qnnfab.boards.onboard.driver`) on that board, called from the driver's thread
through ``cocotb.task.bridge``/``resume``. Used by the ``overlay`` and
``gemm`` regressions.
"""

import logging
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import resume
from cocotb.triggers import ClockCycles, First, RisingEdge, ReadOnly

from qnnfab import overlay_map as om

from .stream import Handshake, ProgressWatchdog, stall_limit

__all__ = ["Board", "CosimBackend", "FaultyMemory", "SimBuffer", "ShellWatch", "AXI_CHANNELS", "RAM_BYTES",
           "CLOCK_NS"]

RAM_BYTES = 1 << 20
CLOCK_NS = 10
# the shell's AXI4 master channels: (stage named in a stall message, channel)
AXI_CHANNELS = (("read DMA m_axi AR", "ar"), ("read DMA m_axi R", "r"), ("write DMA m_axi AW", "aw"),
                ("write DMA m_axi W", "w"), ("write DMA m_axi B", "b"))


class ShellWatch:
    """A :class:`~qnnfab.sim.stream.ProgressWatchdog` on a shell's five
    ``m_axi_gmem`` channels, active while a command runs.

    A command runs from a CTRL write with START or LOAD_WEIGHTS until a STATUS
    read shows BUSY clear, a CTRL write with SOFT_RESET or ``ap_rst_n`` low, all
    seen on the ``s_axi_control`` ports (``registers``: the offsets of CTRL and
    STATUS). While it runs, ``limit`` cycles in a row without a beat or request
    on any AXI4 channel fail the test at once (:class:`~qnnfab.sim.stream.Stalled`
    naming the channel whose handshake stopped). :meth:`sample` is called in the
    read-only phase of every cycle."""

    def __init__(self, dut, limit, registers=om.OFFSET):
        self.dut = dut
        self.ctrl, self.status = registers["CTRL"], registers["STATUS"]
        self.watchdog = ProgressWatchdog(
            [Handshake.of(dut, stage, f"m_axi_gmem_{ch}valid", f"m_axi_gmem_{ch}ready") for stage, ch in AXI_CHANNELS],
            limit)
        self.running = False
        self.cycle = 0
        self._aw, self._w, self._ar = [], [], []

    def _fire(self, ch):
        d = self.dut
        return int(getattr(d, f"s_axi_control_{ch}valid").value) and int(getattr(d, f"s_axi_control_{ch}ready").value)

    def sample(self):
        d = self.dut
        if not int(d.ap_rst_n.value):
            self.running = False
            self._aw, self._w, self._ar = [], [], []
        if self._fire("aw"):
            self._aw.append(int(d.s_axi_control_awaddr.value))
        if self._fire("w"):
            self._w.append(int(d.s_axi_control_wdata.value))
        while self._aw and self._w:
            addr, data = self._aw.pop(0), self._w.pop(0)
            if addr == self.ctrl and data & om.CTRL_SOFT_RESET:
                self.running = False
            elif addr == self.ctrl and data & (om.CTRL_START | om.CTRL_LOAD_WEIGHTS):
                self.running = True
        if self._fire("ar"):
            self._ar.append(int(d.s_axi_control_araddr.value))
        if self._fire("r") and self._ar and self._ar.pop(0) == self.status:
            self.running = bool(int(d.s_axi_control_rdata.value) & om.STATUS_BUSY)
        self.watchdog.check(self.cycle, active=self.running)
        self.cycle += 1

    async def run(self):
        while True:
            await RisingEdge(self.dut.ap_clk)
            await ReadOnly()
            self.sample()


class FaultyMemory:
    """DDR contents (a bytearray) whose AXI accesses fail inside given windows.

    ``read_faults``/``write_faults``: lists of ``(lo, hi)`` byte ranges where
    an AXI read/write makes AxiRam answer SLVERR (DECERR when ``decerr``).
    Host accesses (the driver's flush/invalidate) use ``data`` directly."""

    def __init__(self, size):
        self.data = bytearray(size)
        self.read_faults, self.write_faults = [], []

    def __len__(self):
        return len(self.data)

    @staticmethod
    def _hits(faults, key):
        return any(key.start < hi and lo < key.stop for lo, hi in faults)

    def __getitem__(self, key):
        if self._hits(self.read_faults, key):
            raise IOError(f"read fault at 0x{key.start:x}")
        return self.data[key]

    def __setitem__(self, key, value):
        if self._hits(self.write_faults, key):
            raise IOError(f"write fault at 0x{key.start:x}")
        self.data[key] = value


class Board:
    """Clock, reset, AxiLiteMaster (PS GP0), AxiRam (DDR behind HP0), and a
    :class:`ShellWatch` whose bound is :func:`~qnnfab.sim.stream.stall_limit` of
    ``frame_cycles`` (the cycles one frame or job is expected to take; 0 when
    unknown); ``registers``: the shell's register offsets (CTRL and STATUS)."""

    def __init__(self, dut, rng, pause, ram_bytes=RAM_BYTES, *, frame_cycles=0, registers=om.OFFSET):
        from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam, AxiResp
        self.dut, self.rng = dut, rng
        self.mem = FaultyMemory(ram_bytes)
        self.decerr = False
        Clock(dut.ap_clk, CLOCK_NS, unit="ns").start()
        dut.ap_rst_n.value = 0
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                                  reset_active_level=False)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem"), dut.ap_clk, dut.ap_rst_n,
                          reset_active_level=False, mem=self.mem)
        for part in (self.axil.write_if, self.axil.read_if, self.ram.write_if, self.ram.read_if):
            part.log.setLevel(logging.WARNING)
        # SLVERR -> DECERR on request (AxiRam itself answers SLVERR on a failed access)
        for channel, field in ((self.ram.read_if.r_channel, "rresp"), (self.ram.write_if.b_channel, "bresp")):
            self._wrap_send(channel, field, AxiResp)
        self.bursts = {"ar": 0, "aw": 0}
        self.beats = {"ar": 0, "aw": 0}          # beats requested by the bursts so far
        for channel, kind in ((self.ram.read_if.ar_channel, "ar"), (self.ram.write_if.aw_channel, "aw")):
            self._check_bursts(channel, kind)
        self.set_pause(pause)
        # random guard bytes everywhere; the shadow is what DDR must hold
        self.mem.data[:] = rng.randbytes(ram_bytes)
        self.shadow = bytearray(self.mem.data)
        self.next_free = 0x1000
        self.progress = ShellWatch(dut, stall_limit(frame_cycles), registers)
        cocotb.start_soon(self.progress.run())

    def _wrap_send(self, channel, field, resp):
        orig = channel.send

        async def send(obj):
            if self.decerr and int(getattr(obj, field)) == resp.SLVERR:
                setattr(obj, field, resp.DECERR)
            await orig(obj)
        channel.send = send

    def _check_bursts(self, channel, kind):
        """Every burst: INCR, full bus words, at most MAX_BURST beats, inside one
        aligned block of MAX_BURST beats (so never across 4 KiB; AxiRam checks that too)."""
        orig = channel.recv
        bus_bytes = len(getattr(self.dut, "m_axi_gmem_wdata")) // 8

        async def recv():
            t = await orig()
            addr, length = int(getattr(t, f"{kind}addr")), int(getattr(t, f"{kind}len")) + 1
            size, burst = int(getattr(t, f"{kind}size")), int(getattr(t, f"{kind}burst"))
            block = om.MAX_BURST * bus_bytes
            assert burst == 1 and 1 << size == bus_bytes and addr % bus_bytes == 0, (
                f"{kind} burst at 0x{addr:x}: burst type {burst}, size {1 << size} bytes")
            assert length <= om.MAX_BURST and addr // block == (addr + length * bus_bytes - 1) // block, (
                f"{kind} burst at 0x{addr:x} of {length} beats leaves its {om.MAX_BURST}-beat block")
            self.bursts[kind] += 1
            self.beats[kind] += length
            return t
        channel.recv = recv

    def watch(self):
        """Record, per cycle, new AR/AW requests presented by the shell and
        error responses (for "no burst after an error or abort" checks)."""
        self.cycle = 0
        self.presented = {"ar": [], "aw": []}
        self.error_at = {"r": [], "b": []}
        dut = self.dut

        async def monitor():
            pending = {"ar": False, "aw": False}
            while True:
                await RisingEdge(dut.ap_clk)
                await ReadOnly()
                self.cycle += 1
                for ch in ("ar", "aw"):
                    valid = int(getattr(dut, f"m_axi_gmem_{ch}valid").value)
                    ready = int(getattr(dut, f"m_axi_gmem_{ch}ready").value)
                    if valid and not pending[ch]:
                        self.presented[ch].append(self.cycle)
                    pending[ch] = bool(valid and not ready)
                for ch in ("r", "b"):
                    if (int(getattr(dut, f"m_axi_gmem_{ch}valid").value)
                            and int(getattr(dut, f"m_axi_gmem_{ch}ready").value)
                            and int(getattr(dut, f"m_axi_gmem_{ch}resp").value) >= 2):
                        self.error_at[ch].append(self.cycle)
        cocotb.start_soon(monitor())

    def bursts_after(self, kind, cycle):
        """New ``kind`` ("ar"/"aw") requests presented more than 3 cycles after
        ``cycle`` (a request decided before the error or abort took effect may
        still appear: the error registers, then the abort reaches the other DMA)."""
        return [c for c in self.presented[kind] if c > cycle + 3]

    def set_pause(self, p):
        rng = random.Random(self.rng.getrandbits(32))

        def gen():
            while True:
                yield rng.random() < p
        ram = self.ram
        for ch in (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                   ram.read_if.ar_channel, ram.read_if.r_channel):
            ch.set_pause_generator(gen() if p > 0 else None)

    async def reset(self):
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, 4)
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 2)

    def carve(self, nbytes):
        """A page-aligned DDR range with at least one guard page after it."""
        addr = self.next_free
        self.next_free = (addr + nbytes + 0x1FFF) & ~0xFFF
        if self.next_free > len(self.mem):
            raise MemoryError("co-simulation DDR is full")
        return addr

    def host_write(self, addr, data):
        self.mem.data[addr:addr + len(data)] = data
        self.shadow[addr:addr + len(data)] = data

    def check_ddr(self, allowed=()):
        """DDR equals the shadow outside ``allowed`` ``(lo, hi)`` ranges (which
        are then taken into the shadow). Returns a message or None."""
        got = np.frombuffer(self.mem.data, np.uint8)
        want = np.frombuffer(self.shadow, np.uint8)
        mask = np.ones(len(self.mem), bool)
        for lo, hi in allowed:
            mask[lo:hi] = False
        bad = np.nonzero((got != want) & mask)[0]
        for lo, hi in allowed:
            self.shadow[lo:hi] = self.mem.data[lo:hi]
        if bad.size:
            return (f"DDR changed outside the output records: {bad.size} bytes, first at 0x{bad[0]:x} "
                    f"(0x{want[bad[0]]:02x} -> 0x{got[bad[0]]:02x})")
        return None


class SimBuffer(np.ndarray):
    """A host array backed by a DDR range (what ``pynq.allocate`` returns)."""

    def flush(self):
        base = self.base_buffer
        base.board.host_write(base.device_address, bytes(np.ascontiguousarray(base).view(np.uint8)))

    def invalidate(self):
        base = self.base_buffer
        n = base.nbytes
        base.view(np.uint8).reshape(-1)[:] = np.frombuffer(
            bytes(base.board.mem.data[base.device_address:base.device_address + n]), np.uint8)

    @property
    def base_buffer(self):
        b = self
        while not hasattr(b, "board") and isinstance(b.base, SimBuffer):
            b = b.base
        return b

    @property
    def device_address(self):
        b = self.base_buffer
        return b._address + (self.__array_interface__["data"][0] - b.__array_interface__["data"][0])


class CosimBackend:
    """The driver's backend in co-simulation: registers through the AxiLiteMaster,
    buffers in the AxiRam, waits on the interrupt. Its methods are called from
    the driver's thread (``bridge``); each blocks while the simulator runs."""

    def __init__(self, board, wait_cycles=4000):
        self.board = board
        self.wait_cycles = wait_cycles
        self.reads = 0
        self.waits = 0

    def read(self, offset):
        self.reads += 1
        return resume(self.board.axil.read_dword)(offset)

    def write(self, offset, value):
        resume(self.board.axil.write_dword)(offset, value)

    def allocate(self, shape, dtype):
        arr = np.zeros(shape, dtype).view(SimBuffer)
        arr.board = self.board
        arr._address = self.board.carve(arr.nbytes)
        arr.flush()
        return arr

    def wait(self):
        self.waits += 1
        return resume(self._wait)()

    async def _wait(self):
        dut = self.board.dut
        if int(dut.interrupt.value):
            return 0.0
        await First(RisingEdge(dut.interrupt), ClockCycles(dut.ap_clk, self.wait_cycles))
        return self.wait_cycles * CLOCK_NS * 1e-9

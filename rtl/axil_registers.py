"""AXI4-Lite slave with a register file of 32-bit registers."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxiLiteRegisters", "axil_slave_members"]


def axil_slave_members(addr_width=12):
    """Signature members of an AXI4-Lite slave, 32-bit data, AXI signal names."""
    return {
        "awaddr": In(addr_width), "awvalid": In(1), "awready": Out(1),
        "wdata": In(32), "wstrb": In(4), "wvalid": In(1), "wready": Out(1),
        "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
        "araddr": In(addr_width), "arvalid": In(1), "arready": Out(1),
        "rdata": Out(32), "rresp": Out(2), "rvalid": Out(1), "rready": In(1),
    }


class AxiLiteRegisters(wiring.Component):
    """A register file behind an AXI4-Lite slave (32-bit data, ``addr_width``-bit
    byte addresses).

    ``registers``: objects with ``name``, ``offset`` (a multiple of 4) and
    ``access``:

    * ``"rw"``: held here, reset to 0, written with the byte strobes; its value
      is the output ``<name>``.
    * ``"ro"``: reads return the input ``<name>``; a write leaves nothing here
      but pulses ``<name>_write`` for one cycle with the strobed data on
      ``wdata_out`` (commands, write-1-to-clear bits).

    Every register also pulses ``<name>_write`` when written. Reads of
    unmapped addresses return 0; every response is OKAY. Address bits 1:0
    are ignored.

    Timing: AW and W are accepted independently (one each, held until both
    are there); the write takes effect and BVALID rises the cycle after both
    are held. While BVALID is high (the master has not taken the write
    response), AWREADY and WREADY are low: the next write's address and data
    are accepted from the cycle after the B handshake. AR is accepted when no
    read response is pending; RVALID rises the next cycle with the data of
    that cycle; the next AR is accepted from the cycle after the R handshake.
    """

    def __init__(self, registers, addr_width=12):
        self.registers = list(registers)
        offsets = [r.offset for r in self.registers]
        if len(set(offsets)) != len(offsets) or any(o % 4 or o >= 1 << addr_width for o in offsets):
            raise ValueError(f"register offsets must be distinct multiples of 4 below 2^{addr_width}")
        self.addr_width = addr_width
        members = {f"s_{k}": v for k, v in axil_slave_members(addr_width).items()}
        members["wdata_out"] = Out(32)
        for r in self.registers:
            members[r.name] = Out(32) if r.access == "rw" else In(32)
            members[f"{r.name}_write"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        aw_held, w_held = Signal(), Signal()
        aw_addr = Signal(self.addr_width)
        w_data, w_strb = Signal(32), Signal(4)
        bvalid = Signal()
        m.d.comb += [
            self.s_awready.eq(~aw_held & ~bvalid),
            self.s_wready.eq(~w_held & ~bvalid),
            self.s_bvalid.eq(bvalid),
            self.s_bresp.eq(0),
        ]
        with m.If(self.s_awvalid & self.s_awready):
            m.d.sync += [aw_held.eq(1), aw_addr.eq(self.s_awaddr)]
        with m.If(self.s_wvalid & self.s_wready):
            m.d.sync += [w_held.eq(1), w_data.eq(self.s_wdata), w_strb.eq(self.s_wstrb)]
        mask = Signal(32)
        m.d.comb += mask.eq(Cat(*(w_strb[k].replicate(8) for k in range(4))))
        m.d.comb += self.wdata_out.eq(w_data & mask)
        write = Signal()
        m.d.comb += write.eq(aw_held & w_held)
        word = aw_addr[2:]
        for r in self.registers:
            hit = Signal(name=f"{r.name}_hit")
            m.d.comb += [hit.eq(write & (word == r.offset >> 2)), getattr(self, f"{r.name}_write").eq(hit)]
            if r.access == "rw":
                reg = getattr(self, r.name)
                with m.If(hit):
                    m.d.sync += reg.eq((reg & ~mask) | (w_data & mask))
        with m.If(write):
            m.d.sync += [aw_held.eq(0), w_held.eq(0), bvalid.eq(1)]
        with m.If(bvalid & self.s_bready):
            m.d.sync += bvalid.eq(0)

        rvalid = Signal()
        rdata = Signal(32)
        m.d.comb += [
            self.s_arready.eq(~rvalid),
            self.s_rvalid.eq(rvalid), self.s_rdata.eq(rdata), self.s_rresp.eq(0),
        ]
        with m.If(self.s_arvalid & self.s_arready):
            m.d.sync += [rvalid.eq(1), rdata.eq(0)]
            rword = self.s_araddr[2:]
            with m.Switch(rword):
                for r in self.registers:
                    with m.Case(r.offset >> 2):
                        m.d.sync += rdata.eq(getattr(self, r.name))
        with m.If(rvalid & self.s_rready):
            m.d.sync += rvalid.eq(0)
        return m

"""The AXI4-Lite register file on Amaranth's simulator: reads, writes with
byte strobes, commands, and the ordering rule around a write response that
the master does not take at once."""

import pytest
from amaranth.hdl import Cat
from amaranth.sim import Simulator

from qnnfab import overlay_map as om
from qnnfab.rtl.axil_registers import AxiLiteRegisters


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_register_file_reads_writes_strobes_and_commands():
    regs = [om.Register("A", 0x00, "rw", ""), om.Register("B", 0x04, "ro", ""), om.Register("C", 0x10, "rw", "")]
    dut = AxiLiteRegisters(regs, addr_width=12)

    async def write(ctx, addr, data, strb=0xF, w_first=False):
        """AW and W offered in separate cycles (either first); returns the
        cycle the ``*_write`` strobes were seen and the strobed data."""
        seen = []
        order = [("w", data), ("aw", addr)] if w_first else [("aw", addr), ("w", data)]
        for kind, val in order:
            if kind == "aw":
                ctx.set(dut.s_awaddr, val)
                ctx.set(dut.s_awvalid, 1)
            else:
                ctx.set(dut.s_wdata, val)
                ctx.set(dut.s_wstrb, strb)
                ctx.set(dut.s_wvalid, 1)
            while True:
                *_, ready, strobes, wd = await ctx.tick().sample(
                    dut.s_awready if kind == "aw" else dut.s_wready,
                    Cat(dut.A_write, dut.B_write, dut.C_write), dut.wdata_out)
                if ready:
                    break
            ctx.set(dut.s_awvalid if kind == "aw" else dut.s_wvalid, 0)
        ctx.set(dut.s_bready, 1)
        for _ in range(4):
            *_, bvalid, strobes, wd = await ctx.tick().sample(dut.s_bvalid, Cat(dut.A_write, dut.B_write, dut.C_write),
                                                           dut.wdata_out)
            if strobes:
                seen.append((strobes, wd))
            if bvalid:
                break
        else:
            raise AssertionError("no write response")
        ctx.set(dut.s_bready, 0)
        return seen

    async def tb(ctx):
        ctx.set(dut.B, 0xB0B0B0B0)
        seen = await write(ctx, 0x00, 0x11223344)
        assert seen == [(0b001, 0x11223344)], seen
        seen = await write(ctx, 0x10, 0xAABBCCDD, strb=0b0101, w_first=True)
        assert seen == [(0b100, 0x00BB00DD)], seen
        seen = await write(ctx, 0x04, 0xFFFFFFFF)
        assert seen == [(0b010, 0xFFFFFFFF)], seen          # a command: B itself holds nothing
        assert ctx.get(dut.A) == 0x11223344
        assert ctx.get(dut.C) == 0x00BB00DD
        for addr, want in ((0x00, 0x11223344), (0x04, 0xB0B0B0B0), (0x10, 0x00BB00DD), (0x08, 0), (0xFFC, 0)):
            ctx.set(dut.s_araddr, addr)
            ctx.set(dut.s_arvalid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(dut.s_arready)
                if ready:
                    break
            ctx.set(dut.s_arvalid, 0)
            ctx.set(dut.s_rready, 0)
            for _ in range(2):                                    # the response waits for RREADY
                _, _, rvalid, rdata, resp, arready = await ctx.tick().sample(
                    dut.s_rvalid, dut.s_rdata, dut.s_rresp, dut.s_arready)
                assert rvalid and not arready and rdata == want and resp == 0, (hex(addr), rvalid, hex(rdata))
            ctx.set(dut.s_rready, 1)
            _, _, rvalid = await ctx.tick().sample(dut.s_rvalid)
            ctx.set(dut.s_rready, 0)
            assert not ctx.get(dut.s_rvalid)

    run(dut, tb)


@pytest.mark.parametrize("offered", ["aw", "w", "aw+w"])
def test_no_new_write_is_taken_while_the_write_response_waits_for_bready(offered):
    """The master holds BREADY low for several cycles after a write and
    meanwhile offers the next write's address, data or both: AWREADY and
    WREADY stay low, nothing is taken and the register is unchanged; in the
    cycle after B is taken the next write is taken and gets its response."""
    regs = [om.Register("A", 0x00, "rw", ""), om.Register("C", 0x10, "rw", "")]
    dut = AxiLiteRegisters(regs, addr_width=12)
    hold = 5

    async def tb(ctx):
        ctx.set(dut.s_bready, 0)
        ctx.set(dut.s_awaddr, 0x00)
        ctx.set(dut.s_wdata, 0x11111111)
        ctx.set(dut.s_wstrb, 0xF)
        ctx.set(dut.s_awvalid, 1)
        ctx.set(dut.s_wvalid, 1)
        await ctx.tick()                          # first write: AW and W taken together
        ctx.set(dut.s_awvalid, 0)
        ctx.set(dut.s_wvalid, 0)
        for _ in range(4):
            if ctx.get(dut.s_bvalid):
                break
            await ctx.tick()
        assert ctx.get(dut.s_bvalid) and ctx.get(dut.A) == 0x11111111
        # the next write, offered while B waits
        ctx.set(dut.s_awaddr, 0x10)
        ctx.set(dut.s_wdata, 0x22222222)
        ctx.set(dut.s_awvalid, "aw" in offered.split("+"))
        ctx.set(dut.s_wvalid, "w" in offered.split("+"))
        for k in range(hold):
            assert ctx.get(dut.s_bvalid), f"BVALID dropped in cycle {k} of BREADY low"
            assert not ctx.get(dut.s_awready), f"AWREADY high in cycle {k} with the write response pending"
            assert not ctx.get(dut.s_wready), f"WREADY high in cycle {k} with the write response pending"
            assert not ctx.get(dut.C_write)
            await ctx.tick()
        assert ctx.get(dut.C) == 0
        ctx.set(dut.s_bready, 1)                  # B taken at this edge
        await ctx.tick()
        ctx.set(dut.s_bready, 0)
        assert not ctx.get(dut.s_bvalid)
        # the offered half (or both) is taken in this cycle, the other half after it
        for kind, ready in (("aw", dut.s_awready), ("w", dut.s_wready)):
            if kind in offered.split("+"):
                assert ctx.get(ready), f"{kind.upper()} not taken in the cycle after B was taken"
        await ctx.tick()
        ctx.set(dut.s_awvalid, 0)
        ctx.set(dut.s_wvalid, 0)
        if offered != "aw+w":
            other = dut.s_wvalid if offered == "aw" else dut.s_awvalid
            other_ready = dut.s_wready if offered == "aw" else dut.s_awready
            ctx.set(other, 1)
            assert ctx.get(other_ready)
            await ctx.tick()
            ctx.set(other, 0)
        for _ in range(4):
            if ctx.get(dut.s_bvalid):
                break
            await ctx.tick()
        assert ctx.get(dut.s_bvalid), "no response to the second write"
        assert ctx.get(dut.C) == 0x22222222 and ctx.get(dut.A) == 0x11111111

    run(dut, tb)

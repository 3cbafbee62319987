"""The AXI4-Lite register file keeps the bytes a partial write's strobes leave
alone (Amaranth's simulator)."""

from amaranth.sim import Simulator

from qnnfab import overlay_map as om
from qnnfab.rtl.axil_registers import AxiLiteRegisters


def test_a_partial_write_changes_only_its_strobed_bytes():
    dut = AxiLiteRegisters([om.Register("A", 0x00, "rw", "")], addr_width=12)

    async def write(ctx, data, strb):
        ctx.set(dut.s_awaddr, 0x00)
        ctx.set(dut.s_wdata, data)
        ctx.set(dut.s_wstrb, strb)
        ctx.set(dut.s_awvalid, 1)
        ctx.set(dut.s_wvalid, 1)
        ctx.set(dut.s_bready, 1)
        aw_done = w_done = False
        for _ in range(8):
            _, _, awready, wready, bvalid = await ctx.tick().sample(dut.s_awready, dut.s_wready, dut.s_bvalid)
            aw_done |= bool(awready)
            w_done |= bool(wready)
            ctx.set(dut.s_awvalid, not aw_done)
            ctx.set(dut.s_wvalid, not w_done)
            if bvalid:
                break
        else:
            raise AssertionError("no write response")
        ctx.set(dut.s_bready, 0)
        await ctx.tick()

    async def tb(ctx):
        await write(ctx, 0x11223344, 0b1111)
        assert ctx.get(dut.A) == 0x11223344
        await write(ctx, 0xAABBCCDD, 0b0010)                 # byte 1 only
        assert ctx.get(dut.A) == 0x1122CC44, hex(ctx.get(dut.A))
        await write(ctx, 0xAABBCCDD, 0b1001)                 # bytes 3 and 0
        assert ctx.get(dut.A) == 0xAA22CCDD, hex(ctx.get(dut.A))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()

"""Weight and threshold memories: constant ROMs, or RAMs written through a load bus.

:func:`weight_memory` adds one PE memory to a module and returns its read
data. With ``init`` it is a read-only memory with those contents (the
``weights_mode = "const"`` hardware); with a ``load`` bus it is a RAM without
initial contents, stored as :class:`~qnnfab.weights_image.MemoryGroup`
says (``pack`` logical words per physical word), written by the
:class:`~qnnfab.rtl.weight_loader.WeightLoader`.

Load bus (:func:`load_bus`, driven by the loader, shared by every layer):
``addr`` = physical word (row) address, ``data`` = the row (PE memory ``p``
of a group takes bits ``[p * stored_width, (p + 1) * stored_width)``),
``en`` = one write enable per memory group of the layer.

Read timing is the same in both modes: the data of the logical address
``addr`` presented with ``enable`` high appears the cycle after (the packed
RAM's word select is registered with the same enable).

Memory style (``qnnfab.netconfig.MEMORY_STYLES``): ``"auto"`` leaves the
choice between block RAM, LUT-RAM and logic to synthesis (Yosys'
``memory_libmap`` picks the cheapest by its costs, so a read-only memory
below about half a block RAM becomes logic). ``"block"`` puts the attribute
``rom_style`` (const) or ``ram_style`` (runtime) = "block" on the memory,
which Yosys and Vivado both honour. ``"distributed"``: runtime memories get
``ram_style = "distributed"`` (LUT-RAM); a const memory becomes a LUT ROM
built here (:func:`_lut_rom`), because Yosys' xc7 LUT-RAM library refuses
read-only memories (``prune_rom``: "no valid mapping" with the attribute) and
its own logic mapping of a ROM with a registered, enabled output costs about
four times as many LUTs inside an MVTU.
"""

from amaranth.hdl import Cat, Const, Module, Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.utils import ceil_log2
from amaranth.lib.wiring import In, Out

from qnnfab.netconfig import MEMORY_STYLES

__all__ = ["load_bus", "weight_memory", "memory_attrs", "LutRom", "LUT_ROM_SUFFIX"]


def load_bus(addr_width, data_width, groups):
    """Signature of a load bus (as the loader drives it)."""
    return wiring.Signature({"addr": Out(max(1, addr_width)), "data": Out(max(1, data_width)),
                             "en": Out(max(1, groups))})


def bus_size(groups):
    """(addr width, data width) a load bus needs for ``groups``."""
    aw = max((g.stored_depth - 1).bit_length() for g in groups)
    dw = max(g.row_bits for g in groups)
    return aw, dw


def memory_attrs(style, writable):
    """Synthesis attributes of a memory of ``style`` (:data:`MEMORY_STYLES`); None for "auto"."""
    if style not in MEMORY_STYLES:
        raise ValueError(f"memory style must be one of {MEMORY_STYLES}, not {style!r}")
    if style == "auto":
        return None
    return {"ram_style" if writable else "rom_style": style}


def _read_port(mem, port_name):
    sig = ReadPort.Signature(shape=mem.shape, addr_width=ceil_log2(mem.depth))
    return ReadPort(sig, memory=mem, domain="sync", path=(port_name,))


LUT_ROM_SUFFIX = "__lut_rom"  # the name of every LUT ROM submodule ends so (qnnfab.boards.estimate.yosys finds them)


class LutRom(wiring.Component):
    """A read-only memory as LUT logic with a registered address: one constant
    of ``depth`` bits per data bit, indexed by the address register (a 64-deep
    column is one LUT6; deeper ones add MUXF7/F8 or LUTs).

    Ports: ``addr`` (in, the word address), ``enable`` (in), ``data`` (out,
    ``shape``). ``stages`` address registers in a row, each loading with
    ``enable``: the data of ``addr`` appears ``stages`` cycles after it.

    The address, not the data, is registered: logic between the address
    flip-flops and the constant columns, or an enable on a data register
    (merged into the LUTs in front of it by Yosys' ``xilinx_dffopt``), breaks
    that structure (measured: 22 instead of 4 LUT per bit of a 256-deep ROM).
    It is a submodule of its own (named ``..._lut_rom``, :data:`LUT_ROM_SUFFIX`)
    so that synthesis can map a layer's many ROMs one at a time
    (:func:`qnnfab.boards.estimate.yosys.synth_xc7`).
    """

    def __init__(self, name, shape, depth, init, addr_width, stages=1):
        self._name, self._depth, self._init, self._stages = name, depth, init, stages
        super().__init__({"addr": In(addr_width), "enable": In(1), "data": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        raddr = self.addr
        for k in range(self._stages):
            name = f"{self._name}_addr" if k == self._stages - 1 else f"{self._name}_addr{k}"
            reg = Signal.like(self.addr, name=name, reset_less=True)
            with m.If(self.enable):
                m.d.sync += reg.eq(raddr)
            raddr = reg
        columns = [Const(sum(((int(self._init[a]) >> b) & 1) << a for a in range(self._depth)), self._depth)
                   for b in range(Shape.cast(self.data.shape()).width)]
        m.d.comb += self.data.eq(Cat(*[c.bit_select(raddr, 1) for c in columns]))
        return m


def _lut_rom(m, name, shape, depth, init, addr, enable, stages=1):
    """Add a :class:`LutRom` named ``name`` (read address ``addr``) to ``m``; return its data."""
    rom = LutRom(name, shape, depth, init, len(addr), stages)
    m.submodules[name + LUT_ROM_SUFFIX] = rom
    m.d.comb += [rom.addr.eq(addr), rom.enable.eq(enable)]
    data = Signal(shape, name=f"{name}_data")
    m.d.comb += data.eq(rom.data)
    return data


def weight_memory(m, name, *, shape, depth, addr, enable, init=None, load=None, group=None, index=0, lane=0,
                  port_name="rd", style="auto", read_register=False, register_name=None):
    """Add one memory named ``name`` to ``m``; return its read data (one cycle after ``enable``).

    Const: ``init`` contents, ``depth`` words of ``shape``. Runtime: ``load``
    is the layer's load bus, ``group`` the memory's group (geometry), ``index``
    its enable bit, ``lane`` the PE (its slice of the row). ``port_name``
    names the read port's signals. ``style``: :data:`MEMORY_STYLES`.
    ``read_register``: the data a cycle later, through a register loading with
    ``enable`` (named ``register_name``; a LUT ROM registers its address twice
    instead, keeping its MUXF7/F8 structure).
    """
    if load is None and style == "distributed":
        return _lut_rom(m, name, Shape.cast(shape), depth, init, addr, enable, 1 + int(read_register))
    data = _memory(m, name, shape=shape, depth=depth, addr=addr, enable=enable, init=init, load=load, group=group,
                   index=index, lane=lane, port_name=port_name, style=style)
    if not read_register:
        return data
    reg = Signal.like(data, name=register_name or f"{name}_q")
    with m.If(enable):
        m.d.sync += reg.eq(data)
    return reg


def _memory(m, name, *, shape, depth, addr, enable, init, load, group, index, lane, port_name, style):
    if load is None:
        mem = Memory(shape=shape, depth=depth, init=init, attrs=memory_attrs(style, writable=False))
        m.submodules[name] = mem
        rd = _read_port(mem, port_name)
        m.d.comb += [rd.addr.eq(addr), rd.en.eq(enable)]
        return rd.data
    shape = Shape.cast(shape)
    k = group.pack.bit_length() - 1
    sw = group.stored_width
    mem = Memory(shape=unsigned(sw), depth=group.stored_depth, init=[], attrs=memory_attrs(style, writable=True))
    m.submodules[name] = mem
    wr = mem.write_port()
    m.d.comb += [wr.addr.eq(load.addr), wr.data.eq(load.data[lane * sw:(lane + 1) * sw]),
                 wr.en.eq(load.en[index])]
    rd = _read_port(mem, port_name)
    m.d.comb += [rd.addr.eq(addr >> k), rd.en.eq(enable)]
    data = Signal(shape, name=f"{name}_data")
    if k:
        sel = Signal(k, name=f"{name}_sel")
        with m.If(enable):
            m.d.sync += sel.eq(addr[:k])
        m.d.comb += data.eq(rd.data.word_select(sel, group.width))
    else:
        m.d.comb += data.eq(rd.data)
    return data

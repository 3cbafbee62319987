"""Weight and threshold memories: constant ROMs, or RAMs written through a load bus.

:func:`weight_memory` adds one PE memory to a module and returns its read
data. With ``init`` it is a read-only memory with those contents (the
``weights_mode = "const"`` hardware); with a ``load`` bus it is a RAM without
initial contents, stored as :class:`~qnnfab.rtl.weights_image.MemoryGroup`
says (``pack`` logical words per physical word), written by the
:class:`~qnnfab.rtl.weight_loader.WeightLoader`.

Load bus (:func:`load_bus`, driven by the loader, shared by every layer):
``addr`` = physical word (row) address, ``data`` = the row (PE memory ``p``
of a group takes bits ``[p * stored_width, (p + 1) * stored_width)``),
``en`` = one write enable per memory group of the layer.

Read timing is the same in both modes: the data of the logical address
``addr`` presented with ``enable`` high appears the cycle after (the packed
RAM's word select is registered with the same enable).
"""

from amaranth.hdl import Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.utils import ceil_log2
from amaranth.lib.wiring import Out

__all__ = ["load_bus", "weight_memory"]


def load_bus(addr_width, data_width, groups):
    """Signature of a load bus (as the loader drives it)."""
    return wiring.Signature({"addr": Out(max(1, addr_width)), "data": Out(max(1, data_width)),
                             "en": Out(max(1, groups))})


def bus_size(groups):
    """(addr width, data width) a load bus needs for ``groups``."""
    aw = max((g.stored_depth - 1).bit_length() for g in groups)
    dw = max(g.row_bits for g in groups)
    return aw, dw


def _read_port(mem, port_name):
    sig = ReadPort.Signature(shape=mem.shape, addr_width=ceil_log2(mem.depth))
    return ReadPort(sig, memory=mem, domain="sync", path=(port_name,))


def weight_memory(m, name, *, shape, depth, addr, enable, init=None, load=None, group=None, index=0, lane=0,
                  port_name="rd"):
    """Add one memory named ``name`` to ``m``; return its read data (one cycle after ``enable``).

    Const: ``init`` contents, ``depth`` words of ``shape``. Runtime: ``load``
    is the layer's load bus, ``group`` the memory's group (geometry), ``index``
    its enable bit, ``lane`` the PE (its slice of the row). ``port_name``
    names the read port's signals.
    """
    if load is None:
        mem = Memory(shape=shape, depth=depth, init=init)
        m.submodules[name] = mem
        rd = _read_port(mem, port_name)
        m.d.comb += [rd.addr.eq(addr), rd.en.eq(enable)]
        return rd.data
    shape = Shape.cast(shape)
    k = group.pack.bit_length() - 1
    sw = group.stored_width
    mem = Memory(shape=unsigned(sw), depth=group.stored_depth, init=[])
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

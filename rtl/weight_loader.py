"""Weight loader: streams a weights image into the runtime weight and threshold RAMs of a network.

Design: one central loader per accelerator (not a daisy chain). It checks the
two header words, then walks the memory groups of every layer in image order
(:mod:`qnnfab.weights_image`), shifting the words of a row (most
significant first) through a row register and writing the row into every PE
memory of the group in the cycle its last word arrives (the bus carries the
arriving word at the LSBs, the earlier ones above it). All layers share the loader's address and data bus;
each group has its own write enable.
"""

from amaranth.hdl import Array, Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .loadable_memory import bus_size, load_bus
from qnnfab.weights_image import ERROR_BITS, WORD_BITS, WloadError, header_words

__all__ = ["WeightLoader", "wload_signature"]


def wload_signature():
    """The ``wload`` stream: 64-bit little-endian image words, ``last`` on the final one."""
    return stream.Signature(data.StructLayout({"data": unsigned(WORD_BITS), "last": unsigned(1)}))


class WeightLoader(wiring.Component):
    """Loads a weights image into the memory groups of a network.

    Parameters
    ----------
    groups : list of :class:`~qnnfab.weights_image.MemoryGroup`
        Every memory group, in image order (group ``g`` = enable bit ``g``).
    topology_hash : int
        The network's :meth:`~qnnfab.netconfig.NetConfig.topology_hash`,
        checked against the image header.

    Ports
    -----
    wload : stream of ``{"data": 64 bits, "last": 1}`` (in): the image, one
        word per cycle (``ready`` is always high: the loader never stalls).
    busy : in, high while a frame is in flight. An image whose first word
        arrives while ``busy`` is taken (``ready`` stays high) and discarded
        up to its ``last``, even if ``busy`` falls meanwhile: nothing is
        written, ``active`` stays low, ``error`` is BUSY. Offered again once
        ``busy`` is low, it loads.
    active : out, high from the first header word of an accepted image
        (combinationally, in that cycle) to the end of its body: frames must
        not start while it is high.
    done : out, one-cycle pulse the cycle after the transfer of a word with
        ``last`` (or of the final body word when ``last`` is missing there,
        after the excess up to ``last`` is discarded).
    error : out, :class:`~qnnfab.weights_image.WloadError` code, valid
        with ``done`` (held until the next ``done``).
    load : the load bus (``addr``, ``data``, ``en``: one bit per group) of
        :mod:`qnnfab.rtl.loadable_memory`.

    Timing: an image of N body words loads in N + 2 cycles when offered back
    to back; ``done`` follows one cycle later.
    """

    def __init__(self, groups, topology_hash):
        if not groups:
            raise ValueError("a weight loader needs at least one memory group")
        self.groups = list(groups)
        self.topology_hash = topology_hash
        self.body_words = sum(g.words for g in self.groups)
        aw, dw = bus_size(self.groups)
        self.row_words = max(g.row_words for g in self.groups)
        super().__init__({
            "wload": In(wload_signature()),
            "busy": In(1),
            "active": Out(1),
            "done": Out(1),
            "error": Out(ERROR_BITS),
            "load": Out(load_bus(aw, max(dw, WORD_BITS * self.row_words), len(self.groups))),
        })

    def elaborate(self, platform):
        m = Module()
        G = len(self.groups)
        h0, h1 = header_words(self.topology_hash, self.body_words)
        word, last = self.wload.payload.data, self.wload.payload.last
        take = self.wload.valid
        m.d.comb += self.wload.ready.eq(1)

        g = Signal(range(max(2, G)))
        row = Signal(range(max(2, max(gr.stored_depth for gr in self.groups))))
        j = Signal(range(max(2, self.row_words)))
        rows_of = Array([Const(gr.stored_depth - 1, row.shape()) for gr in self.groups])
        words_of = Array([Const(gr.row_words - 1, j.shape()) for gr in self.groups])
        slots = [Signal(WORD_BITS, name=f"slot{k}") for k in range(self.row_words - 1)]
        code = Signal(ERROR_BITS)          # error of the image being drained

        row_end = Signal()
        group_end = Signal()
        final = Signal()
        m.d.comb += [
            row_end.eq(j == words_of[g]),
            group_end.eq(row_end & (row == rows_of[g])),
            final.eq(group_end & (g == G - 1)),
        ]
        m.d.comb += [self.load.addr.eq(row), self.load.data.eq(Cat(word, *slots))]
        m.d.sync += self.done.eq(0)

        def finish(err):
            m.d.sync += [self.done.eq(1), self.error.eq(err)]
            m.next = "IDLE"

        def reject(err):
            with m.If(last):
                finish(err)
            with m.Else():
                m.d.sync += code.eq(err)
                m.next = "DRAIN"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.active.eq(take & ~self.busy)
                with m.If(take):
                    with m.If(self.busy):
                        reject(WloadError.BUSY)
                    with m.Elif(word != h0):
                        reject(WloadError.BAD_HEADER)
                    with m.Elif(last):
                        finish(WloadError.TRUNCATED)
                    with m.Else():
                        m.next = "HEADER1"
            with m.State("HEADER1"):
                m.d.comb += self.active.eq(1)
                with m.If(take):
                    with m.If(word[:32] != (h1 & 0xFFFF_FFFF)):
                        reject(WloadError.WRONG_NETWORK)
                    with m.Elif(word[32:] != (h1 >> 32)):
                        reject(WloadError.BAD_HEADER)
                    with m.Elif(last):
                        finish(WloadError.TRUNCATED)
                    with m.Else():
                        m.d.sync += [g.eq(0), row.eq(0), j.eq(0)]
                        m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += self.active.eq(1)
                for k in range(G):
                    m.d.comb += self.load.en[k].eq(take & row_end & (g == k))
                with m.If(take):
                    if slots:
                        m.d.sync += [a.eq(b) for a, b in zip(slots, [word] + slots[:-1])]
                    with m.If(~row_end):
                        m.d.sync += j.eq(j + 1)
                    with m.Else():
                        m.d.sync += j.eq(0)
                        with m.If(group_end):
                            m.d.sync += [row.eq(0), g.eq(g + 1)]
                        with m.Else():
                            m.d.sync += row.eq(row + 1)
                    with m.If(final):
                        with m.If(last):
                            finish(WloadError.OK)
                        with m.Else():
                            m.d.sync += code.eq(WloadError.TOO_LONG)
                            m.next = "DRAIN"
                    with m.Elif(last):
                        finish(WloadError.TRUNCATED)
            with m.State("DRAIN"):
                with m.If(take & last):
                    finish(code)
        return m

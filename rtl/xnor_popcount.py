"""XNOR-popcount unit: the binary multiply-accumulate of a bipolar dot product.

For two SIMD-bit words ``w`` and ``x`` in the bipolar encoding (bit 1 = +1,
bit 0 = -1) it computes ``popcount(~(w ^ x))``, the number of equal bit
positions; the dot product is ``2 * popcount - SIMD``. The count is the
LUT6/carry-chain popcount of :func:`qnnfab.rtl.dot_product.xnor_popcount`,
the same one the MVTU uses.
"""

from amaranth.hdl import Signal, Module, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.wiring import In, Out

from qnnfab.errors import check_int

from .dot_product import sum_tree, tree_depth, xnor_popcount

__all__ = ["XnorPopcount", "popcount_width", "adder_tree"]


def popcount_width(n):
    """Bits needed to hold a count from 0 to ``n`` inclusive."""
    return max(1, int(n).bit_length())


def adder_tree(m, bits, stages, enable, domain="sync", name="pc"):
    """Sum the 1-bit signals ``bits`` with a balanced adder tree.

    ``stages`` pipeline registers are spread evenly over the tree levels; each
    register updates only when ``enable`` is high. Returns ``(value, latency)``
    where ``value`` is an unsigned signal wide enough for ``len(bits)`` and
    ``latency`` the number of registers on the path (== ``stages``, clamped to
    the tree depth). A thin wrapper of :func:`qnnfab.rtl.dot_product.sum_tree`.
    """
    value, _, _, latency = sum_tree(m, [(b, 0, 1) for b in bits], stages, enable, name=name, domain=domain)
    out = Signal(popcount_width(len(bits)), name=f"{name}_sum")
    m.d.comb += out.eq(value)
    return out, latency


class XnorPopcount(wiring.Component):
    """Streaming XNOR-popcount of two SIMD-bit words.

    Parameters
    ----------
    simd : int
        Word width (number of bipolar elements), >= 1.
    pipeline : int
        Pipeline registers inside the popcount, clamped to its adder levels
        ``tree_depth(simd, True)`` = ceil(log2(ceil(simd / 3))) (0 for
        SIMD <= 3). Larger values shorten the critical path.

    Ports
    -----
    i : stream of ``{w: simd bits, x: simd bits}`` (``i.payload.w``, ``i.payload.x``)
    o : stream of ``unsigned(popcount_width(simd))``: ``popcount(~(w ^ x))``

    Timing
    ------
    Latency is ``pipeline + 1`` cycles (``pipeline`` after the clamp) from an
    input transfer to ``o.valid`` (the output is always registered),
    throughput one word per cycle. The
    pipeline advances whenever the output register is empty or being read, so
    ``i.ready = ~o.valid | o.ready``; ``o.valid`` never depends on ``o.ready``.
    """

    def __init__(self, simd, pipeline=0):
        check_int("XnorPopcount", "simd", simd, 1, "use SIMD >= 1")
        check_int("XnorPopcount", "pipeline", pipeline, 0, "use 0 for a purely combinational tree")
        self.simd = simd
        self.pipeline = min(pipeline, tree_depth(simd, True))
        self.latency = self.pipeline + 1
        self.out_width = popcount_width(simd)
        in_layout = data.StructLayout({"w": unsigned(simd), "x": unsigned(simd)})
        super().__init__({
            "i": In(stream.Signature(in_layout)),
            "o": Out(stream.Signature(unsigned(self.out_width))),
        })

    def count(self, m, w, x, advance):
        """``(popcount of ~(w ^ x), registers on its path)``, the registers enabled by ``advance``."""
        total, _, _, lat = xnor_popcount(m, w, x, self.simd, self.pipeline, advance, name="pc")
        return total, lat

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        m.d.comb += self.i.ready.eq(advance)

        total, lat = self.count(m, self.i.payload.w, self.i.payload.x, advance)
        # valid bits travel alongside the data through the pipeline registers
        valid = self.i.valid
        for s in range(lat):
            v = Signal(name=f"valid_{s}")
            with m.If(advance):
                m.d.sync += v.eq(valid)
            valid = v
        with m.If(advance):
            m.d.sync += [
                self.o.payload.eq(total),
                self.o.valid.eq(valid),
            ]
        return m

"""XNOR-popcount unit: the binary multiply-accumulate of a bipolar dot product.

For two SIMD-bit words ``w`` and ``x`` in the bipolar encoding (bit 1 = +1,
bit 0 = -1) it computes ``popcount(~(w ^ x))``, the number of equal bit
positions; the dot product is ``2 * popcount - SIMD``.
"""

from amaranth.hdl import Signal, Module, unsigned, Const
from amaranth.lib import wiring, stream, data
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError

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
    the tree depth).
    """
    level = [(b, 1) for b in bits]  # (value, max_value) pairs
    depth = 0
    n = len(level)
    while n > 1:
        depth += 1
        n = (n + 1) // 2
    stages = max(0, min(stages, depth))
    # registers after these levels (1-based), spread evenly over 1..depth
    reg_after = {min(depth, max(1, round(depth * (k + 1) / (stages + 1)))) for k in range(stages)}
    k = depth
    while len(reg_after) < stages:  # rounding collided: fill from the output end
        reg_after.add(k)
        k -= 1
    lvl = 0
    while len(level) > 1:
        lvl += 1
        nxt = []
        for i in range(0, len(level), 2):
            if i + 1 < len(level):
                (a, amax), (b, bmax) = level[i], level[i + 1]
                vmax = amax + bmax
                s = Signal(popcount_width(vmax), name=f"{name}_l{lvl}_{i // 2}")
                m.d.comb += s.eq(a + b)
                nxt.append((s, vmax))
            else:
                nxt.append(level[i])
        if lvl in reg_after:
            regd = []
            for j, (v, vmax) in enumerate(nxt):
                r = Signal(popcount_width(vmax), name=f"{name}_r{lvl}_{j}")
                with m.If(enable):
                    m.d[domain] += r.eq(v)
                regd.append((r, vmax))
            nxt = regd
        level = nxt
    value, vmax = level[0]
    out = Signal(popcount_width(len(bits)), name=f"{name}_sum")
    m.d.comb += out.eq(value)
    return out, len(reg_after)


class XnorPopcount(wiring.Component):
    """Streaming XNOR-popcount of two SIMD-bit words.

    Parameters
    ----------
    simd : int
        Word width (number of bipolar elements), >= 1.
    pipeline : int
        Pipeline registers inside the adder tree (0 .. ceil(log2(simd))).
        Larger values shorten the critical path.

    Ports
    -----
    i : stream of ``{w: simd bits, x: simd bits}`` (``i.payload.w``, ``i.payload.x``)
    o : stream of ``unsigned(popcount_width(simd))``: ``popcount(~(w ^ x))``

    Timing
    ------
    Latency is ``pipeline + 1`` cycles from an input transfer to ``o.valid``
    (the output is always registered), throughput one word per cycle. The
    pipeline advances whenever the output register is empty or being read, so
    ``i.ready = ~o.valid | o.ready``; ``o.valid`` never depends on ``o.ready``.
    """

    def __init__(self, simd, pipeline=0):
        if not isinstance(simd, int) or simd < 1:
            raise ConfigError("XnorPopcount", "simd", f"must be a positive integer, got {simd!r}",
                              "use SIMD >= 1")
        if not isinstance(pipeline, int) or pipeline < 0:
            raise ConfigError("XnorPopcount", "pipeline", f"must be >= 0, got {pipeline!r}",
                              "use 0 for a purely combinational tree")
        self.simd = simd
        depth = (simd - 1).bit_length()
        self.pipeline = min(pipeline, depth)
        self.latency = self.pipeline + 1
        self.out_width = popcount_width(simd)
        in_layout = data.StructLayout({"w": unsigned(simd), "x": unsigned(simd)})
        super().__init__({
            "i": In(stream.Signature(in_layout)),
            "o": Out(stream.Signature(unsigned(self.out_width))),
        })

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        m.d.comb += self.i.ready.eq(advance)

        # valid bits travel alongside the data through the pipeline registers
        xnor = Signal(self.simd)
        m.d.comb += xnor.eq(~(self.i.payload.w ^ self.i.payload.x))
        bits = [xnor[k] for k in range(self.simd)]
        total, lat = adder_tree(m, bits, self.pipeline, advance)
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

"""XNOR popcount as a compressor tree of Xilinx 7-series LUT6_2 and CARRY4 cells.

Same contract as :class:`qnnfab.rtl.xnor_popcount.XnorPopcount` (ports, result,
latency per pipeline setting); a denser count for LUT6 + carry-chain devices,
built from explicit cells:

* **lane level**: one LUT6_2 (both outputs, five shared inputs) adds two lanes
  (``~(w ^ x)``, two inputs each) and one incoming bit of weight 1: O6 is the
  sum bit (weight 1), O5 the carry (weight 2). Chains of ``lane_chain`` such
  LUTs pass the sum bit on (the first LUT has no incoming bit), so ``n`` lanes
  cost ``ceil(n / 2)`` LUTs and leave about ``n / 2`` bits of weight 2 and
  ``n / (2 lane_chain)`` of weight 1.
* **compression levels** on the remaining bit heap (bits per column ``e`` of
  weight ``2**e``): carry-chain ternary adders. Position ``p`` of a chain sits
  in column ``e + p``; its LUT6_2 computes O6 = ``x ^ y ^ z ^ w`` (the CARRY4's
  select ``S``, with ``DI = w``) and O5 = ``maj(x, y, z)``, where ``w`` is the
  previous position's O5 (position 0: a fourth heap bit, and a fifth enters as
  the chain's carry input). Each position takes three new bits (the first
  five) and leaves one sum bit; the last position's O5 and carry out land in
  the next column: a chain of ``k`` positions turns ``3k + 2`` bits into
  ``k + 2``, about two bits removed per LUT. The last level is one chain
  across all columns whose carries are resolved in place.

Bits at or above ``popcount_width(simd)`` are never built: the count fits that
width, so the sum modulo ``2**width`` is exact.

With ``primitives=True`` the cells are ``Instance("LUT6_2")`` / ``Instance("CARRY4")``
for synthesis (Yosys keeps them as one LUT each); with ``False`` an Amaranth
model of the same cells (the LUT's INIT looked up by its inputs, the carry
chain's mux and xor, as in Yosys' ``xilinx/cells_sim.v``) for Amaranth's
simulator and plain Verilog simulators. Both forms come from the same INIT
values and connections.
"""

from amaranth.hdl import Cat, Const, Instance, Module, Mux, Signal

from qnnfab.errors import check_int

from .dot_product import reg_levels, tree_depth
from .xnor_popcount import XnorPopcount, popcount_width

__all__ = ["CompressorPopcount", "compressor_popcount", "lut6_2_init", "LANE_INIT", "TERNARY_INIT", "compressor_levels"]


def lut6_2_init(o6, o5):
    """INIT of a LUT6_2 used with ``I5 = 1``: O6 = ``o6(i0..i4)`` (INIT[63:32]) and
    O5 = ``o5(i0..i4)`` (INIT[31:0]), both truth-table functions of five 0/1 ints."""
    init = 0
    for idx in range(32):
        pins = [(idx >> k) & 1 for k in range(5)]
        init |= (o5(*pins) & 1) << idx
        init |= (o6(*pins) & 1) << (32 + idx)
    return init


def _maj(a, b, c):
    return (a & b) | (a & c) | (b & c)


def _lane_sum(a1, w1, a2, w2, s):
    return (1 ^ a1 ^ w1) ^ (1 ^ a2 ^ w2) ^ s


def _lane_carry(a1, w1, a2, w2, s):
    return _maj(1 ^ a1 ^ w1, 1 ^ a2 ^ w2, s)


#: lane LUT: pins (x1, w1, x2, w2, s): O6 = agree1 ^ agree2 ^ s, O5 = maj(agree1, agree2, s)
LANE_INIT = lut6_2_init(_lane_sum, _lane_carry)
#: ternary-adder position: pins (unused, x, y, z, w), the slowest pin unused and the chained
#: ``w`` on the fastest: O6 = x ^ y ^ z ^ w (S), O5 = maj(x, y, z)
TERNARY_INIT = lut6_2_init(lambda _, x, y, z, w: x ^ y ^ z ^ w, lambda _, x, y, z, w: _maj(x, y, z))

# a lane pair absent: x = 0, w = 1 never agree
_NO_LANE = (Const(0, 1), Const(1, 1))


class _Cells:
    """Makes LUT6_2 / CARRY4 cells in module ``m`` (instances or their model); counts them."""

    def __init__(self, m, primitives, name):
        self.m, self.primitives, self.name = m, primitives, name
        self.luts = self.carry4s = 0

    def lut6_2(self, init, pins):
        """``(O6, O5)`` of a LUT6_2 with INIT ``init``, I0..I4 = ``pins`` (missing ones 0), I5 = 1."""
        pins = list(pins) + [Const(0, 1)] * (5 - len(pins))
        n = self.luts
        self.luts += 1
        o6, o5 = Signal(name=f"{self.name}_l{n}_o6"), Signal(name=f"{self.name}_l{n}_o5")
        if self.primitives:
            self.m.submodules[f"{self.name}_lut{n}"] = Instance(
                "LUT6_2", p_INIT=Const(init, 64),
                i_I0=pins[0], i_I1=pins[1], i_I2=pins[2], i_I3=pins[3], i_I4=pins[4], i_I5=Const(1, 1),
                o_O6=o6, o_O5=o5)
        else:
            index = Cat(*pins)
            self.m.d.comb += [
                o6.eq(Const(init >> 32, 32).bit_select(index, 1)),
                o5.eq(Const(init & 0xFFFFFFFF, 32).bit_select(index, 1)),
            ]
        return o6, o5

    def carry4(self, cyinit, ci, di, s):
        """``(O, CO)`` (4 bits each) of a CARRY4: ``O[i] = S[i] ^ c[i]``, ``c[i+1] = S[i] ? c[i] : DI[i]``,
        ``c[0] = CI | CYINIT``."""
        n = self.carry4s
        self.carry4s += 1
        o, co = Signal(4, name=f"{self.name}_c{n}_o"), Signal(4, name=f"{self.name}_c{n}_co")
        if self.primitives:
            self.m.submodules[f"{self.name}_carry{n}"] = Instance(
                "CARRY4", i_CYINIT=cyinit, i_CI=ci, i_DI=Cat(*di), i_S=Cat(*s), o_O=o, o_CO=co)
        else:
            c = ci | cyinit
            for i in range(4):
                self.m.d.comb += o[i].eq(s[i] ^ c)
                c = Mux(s[i], c, di[i])
                self.m.d.comb += co[i].eq(c)
        return o, co


class _Counter:
    """Stands in for :class:`_Cells` when only the structure is planned: every output is None."""

    def __init__(self):
        self.luts = self.carry4s = 0

    def lut6_2(self, init, pins):
        self.luts += 1
        return None, None

    def carry4(self, cyinit, ci, di, s):
        self.carry4s += 1
        return [None] * 4, [None] * 4


def _lane_level(cells, lanes, lane_chain):
    """Heap ``{0: [...], 1: [...]}`` of the lane level over ``lanes`` ([(x, w)])."""
    heap = {0: [], 1: []}
    npairs = -(-len(lanes) // 2)
    nchains = -(-npairs // lane_chain)
    pairs = [lanes[2 * p:2 * p + 2] for p in range(npairs)]
    start = 0
    for c in range(nchains):
        size = npairs // nchains + (1 if c < npairs % nchains else 0)
        s = None
        for i, pair in enumerate(pairs[start:start + size]):
            (x1, w1), (x2, w2) = pair[0], (pair[1] if len(pair) > 1 else _NO_LANE)
            o6, o5 = cells.lut6_2(LANE_INIT, [x1, w1, x2, w2, Const(0, 1) if i == 0 else s])
            if len(pair) > 1 or i > 0:   # else O5 = maj(agree, 0, 0) = 0 (s is None when only planned)
                heap[1].append(o5)
            s = o6
        heap[0].append(s)
        start += size
    return heap


def _ternary_pins(xyz, w):
    zero = Const(0, 1)
    return [zero] + list(xyz) + [zero] * (3 - len(xyz)) + [w]


def _chain(cells, heap, e, takes, width, final):
    """One carry-chain ternary adder from column ``e``: ``takes[p]`` heap bits enter position
    ``p`` (column ``e + p``; at most 5 at p = 0, 3 above). Adds its outputs to ``heap``
    (a new level's); outputs at columns >= ``width`` are dropped (always 0 there)."""
    def put(col, bit):
        if col < width:
            heap.setdefault(col, []).append(bit)

    k = len(takes)
    first = takes[0]
    if k == 1 and len(first) <= 3 and not final:   # a full adder: no carry chain needed
        o6, o5 = cells.lut6_2(TERNARY_INIT, _ternary_pins(first[:3], Const(0, 1)))
        put(e, o6)
        put(e + 1, o5)
        return
    zero = Const(0, 1)
    ci = first[4] if len(first) > 4 else zero
    sel, di = [], []
    m_prev = None
    for p, bits in enumerate(takes):
        xyz = list(bits[:3])
        w = (bits[3] if len(bits) > 3 else zero) if p == 0 else m_prev
        o6, o5 = cells.lut6_2(TERNARY_INIT, _ternary_pins(xyz, w))
        sel.append(o6)
        di.append(w)
        m_prev = o5
    carry = None
    for g in range(0, k, 4):
        s4 = sel[g:g + 4] + [zero] * (4 - len(sel[g:g + 4]))
        d4 = di[g:g + 4] + [zero] * (4 - len(di[g:g + 4]))
        o, co = cells.carry4(ci if g == 0 else zero, zero if g == 0 else carry, d4, s4)
        for i in range(min(4, k - g)):
            put(e + g + i, o[i])
        carry = co[min(4, k - g) - 1]
    if not final:
        put(e + k, m_prev)
        put(e + k, carry)


def _level(cells, heap, width):
    """One compression level of the bit heap ``{column: [bits]}``; returns the next heap."""
    heap = {c: list(b) for c, b in heap.items() if b}
    nxt = {}
    cols = sorted(heap)
    rest = [c for c in cols[1:] if len(heap[c]) > 3]
    if not rest and len(heap[cols[0]]) <= 5:
        # last level: one chain from the lowest column holding two bits up to the top bit
        low = [c for c in cols if len(heap[c]) > 1]
        e = low[0]
        takes = [heap.pop(c, []) for c in range(e, width)]
        _chain(cells, nxt, e, takes, width, final=True)
    else:
        while True:
            starts = [c for c in sorted(heap) if len(heap[c]) >= 3]
            if not starts:
                break
            e = starts[0]
            takes = [heap[e][:5]]
            heap[e] = heap[e][5:]
            j = e + 1
            while j < width and len(heap.get(j, [])) >= 2:
                takes.append(heap[j][:3])
                heap[j] = heap[j][3:]
                j += 1
            _chain(cells, nxt, e, takes, width, final=False)
    for c, bits in heap.items():   # bits no chain took pass to the next level
        nxt.setdefault(c, []).extend(bits)
    return {c: b for c, b in nxt.items() if b}


def _done(heap):
    return all(len(b) <= 1 for b in heap.values())


def _build(cells, lanes, width, lane_chain, register):
    """The levels of the count; ``register(level, heap)`` returns the heap after level ``level``
    (registered or not). Returns ``(heap, levels)``."""
    heap = register(1, _lane_level(cells, lanes, lane_chain))
    levels = 1
    while not _done(heap):
        levels += 1
        if levels > 64:
            raise AssertionError("compressor levels do not converge")
        heap = register(levels, _level(cells, heap, width))
    return heap, levels


def compressor_levels(simd, lane_chain=4):
    """``(levels, LUT6_2 cells, CARRY4 cells)`` of the count over ``simd`` lanes."""
    counter = _Counter()
    lanes = [(None, None)] * simd
    _, levels = _build(counter, lanes, popcount_width(simd), lane_chain, lambda lvl, h: h)
    return levels, counter.luts, counter.carry4s


def compressor_popcount(m, w, x, simd, stages, enable, *, name="cp", lane_chain=4, primitives=True):
    """XNOR popcount of the SIMD-bit words ``w`` and ``x`` as the compressor tree (module doc)
    in module ``m``: the drop-in of :func:`qnnfab.rtl.dot_product.xnor_popcount`.

    ``stages`` pipeline registers (clamped to :func:`~qnnfab.rtl.dot_product.tree_depth`,
    enabled by ``enable``) are spread over the tree's levels (:func:`compressor_levels`),
    the ones beyond its levels at its output. Returns ``(value, 0, simd, latency)`` with
    ``value`` unsigned, ``popcount_width(simd)`` bits.
    """
    width = popcount_width(simd)
    nstages = min(stages, tree_depth(simd, True))
    levels, _, _ = compressor_levels(simd, lane_chain)
    reg_after = reg_levels(levels, nstages)

    def register(lvl, heap):
        if lvl not in reg_after:
            return heap
        out = {}
        for c, bits in heap.items():
            regs = []
            for j, b in enumerate(bits):
                r = Signal(name=f"{name}_q{lvl}_c{c}_{j}")
                with m.If(enable):
                    m.d.sync += r.eq(b)
                regs.append(r)
            out[c] = regs
        return out

    heap, _ = _build(_Cells(m, primitives, name), [(x[k], w[k]) for k in range(simd)], width, lane_chain,
                     register)
    value = Signal(width, name=f"{name}_sum")
    m.d.comb += value.eq(Cat(*(heap[c][0] if heap.get(c) else Const(0, 1) for c in range(width))))
    for j in range(nstages - len(reg_after)):
        r = Signal.like(value, name=f"{name}_oq{j}")
        with m.If(enable):
            m.d.sync += r.eq(value)
        value = r
    return value, 0, simd, nstages


class CompressorPopcount(XnorPopcount):
    """Streaming XNOR-popcount of two SIMD-bit words from LUT6_2/CARRY4 cells
    (:func:`compressor_popcount`).

    Ports, result and timing are those of :class:`~qnnfab.rtl.xnor_popcount.XnorPopcount`
    (``pipeline`` clamps to ``tree_depth(simd, True)``, latency ``pipeline + 1``).

    Parameters
    ----------
    simd, pipeline : as for ``XnorPopcount``
    lane_chain : int
        LUTs per chain of the lane level (>= 1): longer chains leave fewer
        weight-1 bits (fewer LUTs after) but pass the sum bit through more LUTs.
    primitives : bool
        True: ``LUT6_2``/``CARRY4`` instances (synthesis); False: their Amaranth
        model (simulation).
    """

    def __init__(self, simd, pipeline=0, *, lane_chain=4, primitives=True):
        check_int("CompressorPopcount", "lane_chain", lane_chain, 1, "use 1 or more LUTs per lane chain")
        super().__init__(simd, pipeline)
        self.lane_chain, self.primitives = lane_chain, primitives

    def count(self, m, w, x, advance):
        value, _, _, latency = compressor_popcount(m, w, x, self.simd, self.pipeline, advance, name="cp",
                                                   lane_chain=self.lane_chain, primitives=self.primitives)
        return value, latency

"""SIMD-lane dot products of quantized operands: lane products and a range-tracking adder tree.

Helpers (not components) used by the MVTU and by resource benchmarks that
synthesise the datapath alone. Every intermediate signal gets the narrowest
shape that holds its reachable range, so overflow is impossible by
construction.

Element encodings (one element per lane, ``bits`` wide, two's complement):

=========  ====  =====================================================
kind       bits  value
=========  ====  =====================================================
bipolar    1     bit 1 -> +1, bit 0 -> -1
ternary    2     0b01 -> +1, 0b00 -> 0, 0b11 -> -1 (0b10 never stored)
uint       k     unsigned k-bit integer
int        k     signed k-bit integer
=========  ====  =====================================================

Bipolar x bipolar uses XNOR + popcount (the count P of agreeing lanes, the
dot product is 2P - SIMD; full adders on groups of three lanes first, so the
XNORs fold into 6-input LUTs); every other pair is added or subtracted with
multiplexers (bipolar/ternary operands: no multiplier) or multiplied (int x
int/uint).
"""

from amaranth.hdl import Cat, Mux, Signal, signed, unsigned


__all__ = ["range_shape", "kind_bits", "value_range", "lane_products", "sum_tree", "tree_depth", "xnor_popcount", "dot_product"]


def range_shape(lo, hi):
    """Narrowest Amaranth shape holding every integer in [lo, hi] (at least 1 bit)."""
    lo, hi = int(lo), int(hi)
    if lo >= 0:
        return unsigned(max(1, hi.bit_length()))
    return signed(max(1, (-lo - 1).bit_length(), hi.bit_length()) + 1)


def kind_bits(kind, bits=None):
    """Element width of a data kind."""
    return {"bipolar": 1, "ternary": 2}.get(kind, bits)


def value_range(kind, bits=None):
    """(lo, hi) arithmetic values of a kind."""
    if kind == "bipolar":
        return -1, 1
    if kind == "ternary":
        return -1, 1
    if kind == "uint":
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _product_range(a, b):
    c = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    return min(c), max(c)


def _as_value(e, kind):
    """Stored element -> signed/unsigned Amaranth value (not for bipolar/ternary)."""
    return e.as_signed() if kind == "int" else e


def lane_products(m, w, x, simd, w_kind, w_bits, x_kind, x_bits, name="lane"):
    """Products of ``simd`` lanes; returns a list of (signal, lo, hi).

    ``w``/``x``: packed words (element 0 at the LSBs). Not for bipolar x bipolar
    (use :func:`dot_product`, which takes the XNOR-popcount path).
    """
    wb, xb = kind_bits(w_kind, w_bits), kind_bits(x_kind, x_bits)
    wr, xr = value_range(w_kind, w_bits), value_range(x_kind, x_bits)
    lo, hi = _product_range(wr, xr)
    shape = range_shape(lo, hi)
    terms = []
    for k in range(simd):
        we = w[k * wb:(k + 1) * wb]
        xe = x[k * xb:(k + 1) * xb]
        t = Signal(shape, name=f"{name}{k}")
        if w_kind == "bipolar":            # +x or -x
            xv = _as_value(xe, x_kind)
            m.d.comb += t.eq(Mux(we[0], xv, -xv))
        elif x_kind == "bipolar":
            if w_kind == "ternary":        # +1, 0, -1 times +-1
                m.d.comb += t.eq(Mux(we[0], Mux(we[1] ^ xe[0], 1, -1), 0))
            else:                          # +w or -w
                wv = _as_value(we, w_kind)
                m.d.comb += t.eq(Mux(xe[0], wv, -wv))
        elif w_kind == "ternary":
            xv = _as_value(xe, x_kind)
            m.d.comb += t.eq(Mux(we[0], Mux(we[1], -xv, xv), 0))
        else:                              # int x int/uint: a real multiplier
            m.d.comb += t.eq(_as_value(we, w_kind) * _as_value(xe, x_kind))
        terms.append((t, lo, hi))
    return terms


def _reg_levels(depth, stages):
    stages = max(0, min(stages, depth))
    reg_after = {max(1, round(depth * (k + 1) / (stages + 1))) for k in range(stages)}
    k = depth
    while len(reg_after) < stages:
        reg_after.add(k)
        k -= 1
    return reg_after


def tree_depth(simd, binary):
    """Adder levels of :func:`dot_product` for ``simd`` lanes (the most pipeline registers it takes)."""
    n = (simd + 2) // 3 if binary else simd
    return (n - 1).bit_length()


def sum_tree(m, terms, stages, enable, name="st"):
    """Balanced adder tree over (value, lo, hi) terms with ``stages`` pipeline registers.

    Registers update when ``enable`` is high. Returns ``(sum, lo, hi, latency)``.
    """
    level = list(terms)
    depth, n = 0, len(level)
    while n > 1:
        depth += 1
        n = (n + 1) // 2
    reg_after = _reg_levels(depth, stages)
    lvl = 0
    while len(level) > 1:
        lvl += 1
        nxt = []
        for i in range(0, len(level), 2):
            if i + 1 < len(level):
                (a, alo, ahi), (b, blo, bhi) = level[i], level[i + 1]
                s = Signal(range_shape(alo + blo, ahi + bhi), name=f"{name}_l{lvl}_{i // 2}")
                m.d.comb += s.eq(a + b)
                nxt.append((s, alo + blo, ahi + bhi))
            else:
                nxt.append(level[i])
        if lvl in reg_after:
            regd = []
            for j, (v, vlo, vhi) in enumerate(nxt):
                r = Signal(range_shape(vlo, vhi), name=f"{name}_r{lvl}_{j}")
                with m.If(enable):
                    m.d.sync += r.eq(v)
                regd.append((r, vlo, vhi))
            nxt = regd
        level = nxt
    v, lo, hi = level[0]
    return v, lo, hi, len(reg_after)


def xnor_popcount(m, w, x, simd, stages, enable, name="xp"):
    """XNOR popcount of two SIMD-bit words, sized for 6-input LUTs.

    The first level counts the agreeing lanes of groups of three (six inputs:
    one LUT6 per output bit, sum and carry of a full adder on the XNORs); the
    2-bit group counts are then summed by :func:`sum_tree` (carry chains).
    Returns ``(value, 0, simd, latency)`` with ``value`` unsigned.
    """
    xnor = Signal(simd, name=f"{name}_xnor")
    m.d.comb += xnor.eq(~(w[:simd] ^ x[:simd]))
    terms = []
    for g in range(0, simd, 3):
        bits = [xnor[k] for k in range(g, min(g + 3, simd))]
        if len(bits) == 1:
            terms.append((bits[0], 0, 1))
            continue
        s = Signal(2, name=f"{name}_fa{g // 3}")
        if len(bits) == 2:
            a, b = bits
            m.d.comb += s.eq(Cat(a ^ b, a & b))
        else:
            a, b, c = bits
            m.d.comb += s.eq(Cat(a ^ b ^ c, (a & b) | (a & c) | (b & c)))
        terms.append((s, 0, len(bits)))
    return sum_tree(m, terms, stages, enable, name=name)


def dot_product(m, w, x, simd, w_kind, w_bits, x_kind, x_bits, stages, enable, name="dp"):
    """Dot product of one SIMD-wide weight word and input word.

    Returns ``(value, lo, hi, latency)``. Bipolar x bipolar returns the XNOR
    popcount P in [0, simd] (unsigned); other kinds return the signed sum of
    the lane products. ``latency`` pipeline registers (enabled by ``enable``)
    lie on the path.
    """
    if w_kind == "bipolar" and x_kind == "bipolar":
        return xnor_popcount(m, w, x, simd, stages, enable, name=name)
    terms = lane_products(m, w, x, simd, w_kind, w_bits, x_kind, x_bits, name=f"{name}_t")
    return sum_tree(m, terms, stages, enable, name=name)

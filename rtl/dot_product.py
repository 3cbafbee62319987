"""SIMD-lane dot products of quantized operands: lane products and a range-tracking adder tree.

Helpers (not components) used by the MVTU and by resource benchmarks that
synthesise the datapath alone. Every intermediate signal gets the narrowest
shape that holds its reachable range, so overflow is impossible by
construction.

Operands are words of SIMD elements of a :class:`qnnfab.kinds.DataKind`
(element 0 at the LSBs; bipolar 1 bit, ternary 2-bit two's complement, k-bit
uint/int).

Bipolar x bipolar uses XNOR + popcount (the count P of agreeing lanes, the
dot product is 2P - SIMD: full adders on groups of three lanes, then chains of
carry-chain adders whose small addends, raw lane pairs or full-adder outputs,
fold into the adder bits' 6-input LUTs; see :func:`xnor_popcount`); every other pair is added or subtracted with
multiplexers (bipolar/ternary operands: no multiplier) or multiplied (int x
int/uint).
"""

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned

from qnnfab.kinds import product_range, range_bits

__all__ = ["range_shape", "lane_products", "sum_tree", "tree_depth", "reg_levels", "xnor_popcount", "dot_product"]


def range_shape(lo, hi):
    """Narrowest Amaranth shape holding every integer in [lo, hi] (:func:`qnnfab.kinds.range_bits`)."""
    bits, is_signed = range_bits(lo, hi)
    return signed(bits) if is_signed else unsigned(bits)


def _as_value(e, kind):
    """Stored element -> signed/unsigned Amaranth value (not for bipolar/ternary)."""
    return e.as_signed() if kind == "int" else e


def lane_products(m, w, x, *, simd, w_kind, x_kind, name="lane"):
    """Products of ``simd`` lanes; returns a list of (signal, lo, hi).

    ``w``/``x``: packed words of :class:`~qnnfab.kinds.DataKind` ``w_kind`` /
    ``x_kind`` (element 0 at the LSBs). Not for bipolar x bipolar (use
    :func:`dot_product`, which takes the XNOR-popcount path).
    """
    wb, xb = w_kind.width, x_kind.width
    lo, hi = product_range(w_kind, x_kind)
    shape = range_shape(lo, hi)
    w_kind, x_kind = w_kind.kind, x_kind.kind
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


def reg_levels(depth, stages):
    """The levels (1..``depth``) after which ``stages`` pipeline registers sit, spread evenly
    (at most ``depth`` of them)."""
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


def sum_tree(m, terms, stages, enable, name="st", domain="sync"):
    """Balanced adder tree over (value, lo, hi) terms with ``stages`` pipeline registers.

    Registers (in clock domain ``domain``) update when ``enable`` is high.
    Returns ``(sum, lo, hi, latency)``.
    """
    level = list(terms)
    depth, n = 0, len(level)
    while n > 1:
        depth += 1
        n = (n + 1) // 2
    reg_after = reg_levels(depth, stages)
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
                    m.d[domain] += r.eq(v)
                regd.append((r, vlo, vhi))
            nxt = regd
        level = nxt
    v, lo, hi = level[0]
    return v, lo, hi, len(reg_after)


_CHAIN_LANES = 32  # lanes per adder chain; longer SIMD words sum several chains in a tree


def _logic_sum(m, terms, nbits, name):
    """The ``nbits``-bit sum of ``terms`` (``(1-bit value, weight)``, weights powers of two) as plain logic.

    Written with ``^ & |`` full and half adders per bit column (no ``+``), so
    that Yosys keeps it as logic and ABC merges each output bit (a function of
    at most six inputs) into the LUT of the adder bit it feeds.
    """
    cols = {}
    for bit, wt in terms:
        cols.setdefault(wt.bit_length() - 1, []).append(bit)
    bits = []
    for e in range(nbits):
        col = cols.get(e, [])
        while len(col) > 1:
            if len(col) >= 3:
                a, b, c = col.pop(0), col.pop(0), col.pop(0)
                col.append(a ^ b ^ c)
                cols.setdefault(e + 1, []).append((a & b) | (a & c) | (b & c))
            else:
                a, b = col.pop(0), col.pop(0)
                col.append(a ^ b)
                cols.setdefault(e + 1, []).append(a & b)
        bits.append(col[0] if col else Const(0, 1))
    out = Signal(nbits, name=name)
    m.d.comb += out.eq(Cat(*bits))
    return out


def _agree(a, b):
    """1 where the bipolar bits agree (XNOR)."""
    return ~(a ^ b)


class AdderStep(NamedTuple):
    """One carry-chain adder ``R + (B << e) + ci`` of a popcount chain: what its small addend ``B`` sums."""
    raw: int            # raw lanes (XNORs of weight 1)
    take: dict          # {weight exponent: count} of full-adder output bits
    carry_in: bool      # one more weight-1 full-adder bit enters as the carry input


class ChainPlan(NamedTuple):
    """Plan of one XNOR-popcount chain (see :func:`xnor_popcount`)."""
    groups: int         # full adders over three lanes (2 LUTs each)
    start: int          # raw lanes of the chain's first value when no full adder starts it
    steps: list         # the AdderStep of every adder, in chain order
    luts: int           # LUT6 estimate


def _chain_step(raw, sig):
    """Greedy choice of the next ``B`` of a chain: (raw lanes, {weight exponent: count}, bits of ``B``)."""
    if raw:
        k = min(2, raw)
        n0 = min(5 - 2 * k, sig.get(0, 0), 3 - k)
        return k, {0: n0}, (k + n0).bit_length()
    e0 = min(e for e, n in sig.items() if n)
    best = None
    for n0 in range(1, min(5, sig[e0]) + 1):
        for n1 in range(0, min(5 - n0, sig.get(e0 + 1, 0)) + 1):
            vmax = n0 + 2 * n1
            score = ((n0 + n1) / vmax.bit_length(), n0 + n1)
            if best is None or score > best[0]:
                best = (score, {e0: n0, e0 + 1: n1}, vmax)
    _, take, vmax = best
    return 0, take, vmax.bit_length()


def _plan_chain(n_lanes, n_raw):
    """The :class:`ChainPlan` of one chain over ``n_lanes`` lanes keeping ``n_raw`` of them for the adders' ``B``."""
    groups = (n_lanes - n_raw) // 3
    raw = n_lanes - 3 * groups
    sig = {0: groups, 1: groups}
    luts = 2 * groups
    if groups:
        start = 0
        sig[0] -= 1
        sig[1] -= 1
    else:
        start = min(2, raw)
        raw -= start
        luts += start.bit_length()
    steps = []
    while raw or any(sig.values()):
        k, take, bits = _chain_step(raw, sig)
        raw -= k
        for e, n in take.items():
            sig[e] = sig.get(e, 0) - n
        ci = sig.get(0, 0) > 0
        if ci:
            sig[0] -= 1
        steps.append(AdderStep(k, take, ci))
        luts += bits
    return ChainPlan(groups, start, steps, luts)


def _best_plan(n_lanes):
    # Yosys' ABC often shares one lane's XNOR between the sum and carry LUTs of
    # a full adder (3 LUTs instead of 2): count that, keeping more raw lanes.
    plans = [_plan_chain(n_lanes, r) for r in range(0, min(n_lanes, 16) + 1)]
    return min(plans, key=lambda p: (p.luts + 0.7 * p.groups, len(p.steps)))



def xnor_popcount(m, w, x, simd, stages, enable, name="xp"):
    """XNOR popcount of two SIMD-bit words, sized for 6-input LUTs and carry chains.

    The lanes are split into chains of at most 32. Each chain first counts the
    agreeing lanes of groups of three (a full adder on the XNORs: one LUT6 per
    output bit), then sums those counts with a chain of carry-chain adders
    ``R + B + ci`` where every bit of the small addend ``B`` is a function of
    at most five bits (two raw lanes, or full-adder outputs) so that it merges
    into the single LUT6 of the adder bit (``R_i ^ B_i``), and the carry input
    takes one more bit. The chain results are summed by a balanced adder tree.
    ``stages`` pipeline registers (clamped to :func:`tree_depth`) are spread
    over all levels. Returns ``(value, 0, simd, latency)`` with ``value``
    unsigned.
    """
    nchains = -(-simd // _CHAIN_LANES)
    sizes = [simd // nchains + (1 if c < simd % nchains else 0) for c in range(nchains)]
    plans = [_best_plan(n) for n in sizes]
    chain_levels = max(1 + len(p.steps) for p in plans)
    tree_levels = (nchains - 1).bit_length()
    depth = chain_levels + tree_levels
    nstages = min(stages, tree_depth(simd, True))
    reg_after = reg_levels(depth, nstages)
    extra = nstages - len(reg_after)   # shallow trees: remaining registers at the output

    def reg(v, nm):
        r = Signal.like(v, name=nm)
        with m.If(enable):
            m.d.sync += r.eq(v)
        return r

    # per chain state: running sum (value, max), raw lanes [(w, x)], signals {exponent: [bit]}
    states = []
    base = 0
    for c, (n, plan) in enumerate(zip(sizes, plans)):
        groups, start = plan.groups, plan.start
        lanes = [(w[k], x[k]) for k in range(base, base + n)]
        base += n
        pre = f"{name}_c{c}"
        sig = {0: [], 1: []}
        for g in range(groups):
            fa = _logic_sum(m, [(_agree(a, b), 1) for a, b in lanes[3 * g:3 * g + 3]], 2, f"{pre}_fa{g}")
            sig[0].append(fa[0])
            sig[1].append(fa[1])
        raw = lanes[3 * groups:]
        if groups:
            r = Signal(2, name=f"{pre}_r0")
            m.d.comb += r.eq(Cat(sig[0].pop(0), sig[1].pop(0)))
            rmax = 3
        else:
            r = _logic_sum(m, [(_agree(a, b), 1) for a, b in raw[:start]], max(1, start.bit_length()),
                           f"{pre}_r0")
            raw = raw[start:]
            rmax = start
        states.append({"r": r, "max": rmax, "raw": raw, "sig": sig, "steps": list(plan.steps), "pre": pre})

    def register_states(lvl):
        for st in states:
            st["r"] = reg(st["r"], f"{st['pre']}_q{lvl}")
            st["raw"] = [(reg(a, f"{st['pre']}_q{lvl}_w{j}"), reg(b, f"{st['pre']}_q{lvl}_x{j}"))
                         for j, (a, b) in enumerate(st["raw"])]
            st["sig"] = {e: [reg(s, f"{st['pre']}_q{lvl}_s{e}_{j}") for j, s in enumerate(lst)]
                         for e, lst in st["sig"].items()}

    for lvl in range(1, chain_levels + 1):
        if lvl > 1:
            for st in states:
                if not st["steps"]:
                    continue
                step = st["steps"].pop(0)
                k, take, ci = step.raw, step.take, step.carry_in
                terms = [(_agree(a, b), 1) for a, b in st["raw"][:k]]
                st["raw"] = st["raw"][k:]
                e0 = 0 if k else min(e for e, n in take.items() if n)
                for e, n in sorted(take.items()):
                    for _ in range(n):
                        terms.append((st["sig"][e].pop(0), 1 << (e - e0)))
                bmax = sum(wt for _, wt in terms)
                bsig = _logic_sum(m, terms, bmax.bit_length(), f"{st['pre']}_b{lvl}")
                total = st["max"] + (bmax << e0) + (1 if ci else 0)
                # keep: stops Yosys' alumacc from merging the chain into one $macc
                r = Signal(total.bit_length(), name=f"{st['pre']}_s{lvl}", attrs={"keep": 1})
                # R + (B << e0) as P + Q with P = R[:top] and Q = (B << e0) | R[top:] << top:
                # Yosys makes the narrower operand the carry chain's DI, which must
                # be R (a signal) so that B merges into the adder bits' LUTs.
                top = e0 + len(bsig)
                p_op = st["r"][:top]
                q_op = Cat(Const(0, e0), bsig, st["r"][top:]) if e0 else Cat(bsig, st["r"][top:])
                if ci:
                    m.d.comb += r.eq(p_op + q_op + st["sig"][0].pop(0))
                else:
                    m.d.comb += r.eq(p_op + q_op)
                st["r"], st["max"] = r, total
        if lvl in reg_after:
            register_states(lvl)

    level = [(st["r"], 0, st["max"]) for st in states]
    for st in states:
        assert not st["steps"] and not st["raw"] and not any(st["sig"].values())
    lvl = chain_levels
    while len(level) > 1:
        lvl += 1
        nxt = []
        for i in range(0, len(level), 2):
            if i + 1 < len(level):
                (a, _, ahi), (b, _, bhi) = level[i], level[i + 1]
                s = Signal(range_shape(0, ahi + bhi), name=f"{name}_t{lvl}_{i // 2}")
                m.d.comb += s.eq(a + b)
                nxt.append((s, 0, ahi + bhi))
            else:
                nxt.append(level[i])
        if lvl in reg_after:
            nxt = [(reg(v, f"{name}_tq{lvl}_{j}"), lo, hi) for j, (v, lo, hi) in enumerate(nxt)]
        level = nxt
    v, _, hi = level[0]
    assert hi == simd
    for j in range(extra):
        v = reg(v, f"{name}_oq{j}")
    out = Signal(range_shape(0, simd), name=f"{name}_sum")
    m.d.comb += out.eq(v)
    return out, 0, simd, nstages


def dot_product(m, w, x, *, simd, w_kind, x_kind, stages, enable, name="dp"):
    """Dot product of one SIMD-wide weight word and input word.

    ``w_kind``/``x_kind``: the :class:`~qnnfab.kinds.DataKind` of the
    elements. Returns ``(value, lo, hi, latency)``. Bipolar x bipolar returns
    the XNOR popcount P in [0, simd] (unsigned); other kinds return the signed
    sum of the lane products. ``stages`` pipeline registers (enabled by
    ``enable``, clamped to :func:`tree_depth`) lie on the path: ``latency``.
    """
    if w_kind.kind == "bipolar" and x_kind.kind == "bipolar":
        return xnor_popcount(m, w, x, simd, stages, enable, name=name)
    terms = lane_products(m, w, x, simd=simd, w_kind=w_kind, x_kind=x_kind, name=f"{name}_t")
    return sum_tree(m, terms, stages, enable, name=name)

"""Output-stationary systolic MACC array with per-column stochastic rounding.

Computes C = A (R x K) . B (K x C) tile by tile (Gupta et al., ICML 2015):
R x C processing elements, each a signed WL_a x WL_b multiply into a
``acc_width``-bit accumulator (one DSP48E1 for WL_a <= 25, WL_b <= 18 and
acc_width <= 48), double-buffered (Gemmini style) so a finished tile drains
while the next one accumulates, and one rounding stage per output column
(own LFSR lane per column) that drops D = F_a + F_b - F_c bits and saturates
to the (I_c, F_c) output format (:mod:`qnnfab.rtl.stochastic_round`).

Stream formats (payload flattened with element 0 at the LSBs)
--------------------------------------------------------------
``a``: one k step of A per word: ``{data: R x signed(WL_a), last: 1}``;
  ``data[i] = A[i, k]`` (column k of the tile's A), ``last`` marks the final
  k step of an output tile. A tile may have any K >= 1 (tiling over K is a
  longer stream; K <= ``k_max`` keeps the accumulator exact).
``b``: one k step of B per word: ``C x signed(WL_b)``, ``data[j] = B[k, j]``.
  ``a`` and ``b`` transfer together (a word of each per k step).
``o``: one row of the rounded output tile per word: ``C x signed(WL_c)``,
  ``data[j] = round(sum_k A[i, k] B[k, j])``; each tile gives R words, rows
  i = 0..R-1 in order, tiles in input order.

Rounding lanes: column j uses LFSR lane j (``lane_seeds(lfsr_width, seed, C)``)
which advances ``steps_per_cycle`` steps per output word, so output word n
(counted from reset over all tiles) uses ``lfsr_words(n + 1, D, lfsr_width,
seed, lanes=C)[n, j]``.

Timing
------
The skew is done by the array's input registers: row i of A passes i skew
registers, column j of B passes j, then one register per PE; so PE(i, j)
does k step s in cycle ``t_s + 1 + i + j`` (t_s = cycle of the step's input
transfer). A tile whose last step is transferred in cycle L has output row i
valid at cycle ``L + LATENCY + i`` with ``LATENCY = C + 3`` (PE(i, C-1)
finishes at L + i + C, its result is captured into the drain buffer, read
and rounded), provided the output is not stalled and the previous tile's
rows have left (golden timing: :mod:`qnnfab.golden.systolic_timing`). One
tile therefore takes K + R + C - 2 cycles of array time plus 4 (input
register, capture, round/output register, and the first-row offset), and a
stream of tiles with K >= max(R, C + 1) runs with no stall: every PE does a
MAC every cycle (utilisation K / K in steady state).

Flow control: the last step of a tile is accepted only C + 1 or more
array cycles after the previous tile's last step (so tiles shorter than
C + 1 steps wait), and the whole array (input, skew and PE registers) holds
while a PE would overwrite a drain buffer whose row has not left yet
(output backpressure). ``valid`` never depends on ``ready``.
"""

from amaranth.hdl import Cat, Module, Signal, Mux, Array, signed, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError, check_int

from .lfsr import LFSR
from .stochastic_round import MAX_WIDTH, check_format, check_rounding, round_expr

__all__ = ["SystolicArray", "accumulator_width"]


def accumulator_width(a_width, b_width, k_max):
    """Bits that hold any sum of ``k_max`` products of a signed ``a_width`` and
    ``b_width``-bit code: WL_a + WL_b + ceil(log2(k_max))."""
    return a_width + b_width + (int(k_max) - 1).bit_length()


class SystolicArray(wiring.Component):
    """R x C output-stationary MACC array with stochastic rounding (module docstring).

    Parameters
    ----------
    rows, cols : int
        Array size R, C (>= 1).
    a_fmt, b_fmt, c_fmt : (I, F)
        Fixed-point formats of A, B and the output C (widths 1..48, F >= 0).
        D = F_a + F_b - F_c must be >= 0.
    k_max : int
        Largest K of a tile; sets ``acc_width`` = WL_a + WL_b + ceil(log2 k_max)
        (<= 48, the DSP48E1 accumulator).
    mode : "stochastic" | "nearest" | "truncate"
    lfsr_width, seed, steps_per_cycle
        Rounding LFSR (width > D, default min(32, max(16, D + 8)); steps >= D,
        default D).

    rounding_select : bool
        With ``mode="stochastic"``: adds the input ``stochastic`` (level,
        hold it while tiles are in flight): 1 rounds with the LFSR lanes, 0
        rounds to nearest (+2^(D-1)); the lanes advance per output word
        either way.

    Attributes: ``latency`` (= C + 3), ``acc_width``, ``drop_bits``.
    """

    def __init__(self, rows, cols, a_fmt, b_fmt, c_fmt, k_max=1024, mode="stochastic",
                 lfsr_width=None, seed=1, steps_per_cycle=None, rounding_select=False):
        where = "SystolicArray"
        for name, v in (("rows", rows), ("cols", cols), ("k_max", k_max)):
            check_int(where, name, v, 1)
        self.rows, self.cols, self.k_max = rows, cols, k_max
        self.a_fmt = check_format(a_fmt, where, "a_fmt")
        self.b_fmt = check_format(b_fmt, where, "b_fmt")
        self.c_fmt = check_format(c_fmt, where, "c_fmt")
        self.a_width, self.b_width, self.c_width = sum(self.a_fmt), sum(self.b_fmt), sum(self.c_fmt)
        self.acc_width = accumulator_width(self.a_width, self.b_width, k_max)
        if self.acc_width > MAX_WIDTH:
            raise ConfigError(where, "k_max", f"accumulator needs {self.acc_width} bits "
                              f"(WL_a {self.a_width} + WL_b {self.b_width} + ceil(log2 {k_max})) > {MAX_WIDTH}",
                              "use narrower A/B formats or a smaller k_max")
        self.acc_fmt = (self.acc_width - self.a_fmt[1] - self.b_fmt[1], self.a_fmt[1] + self.b_fmt[1])
        self.drop_bits = self.acc_fmt[1] - self.c_fmt[1]
        self.mode = mode
        self.seed = seed
        self.lfsr_width, self.steps_per_cycle = check_rounding(
            where, mode, self.drop_bits, lfsr_width, steps_per_cycle, seed)
        if self.lfsr_width is not None and (1 << self.lfsr_width) - 1 < cols:
            raise ConfigError(where, "lfsr_width", f"{cols} lanes exceed the states of a "
                              f"{self.lfsr_width}-bit LFSR", "use a wider LFSR")
        if rounding_select and mode != "stochastic":
            raise ConfigError(where, "rounding_select", f"needs mode 'stochastic', not {mode!r}",
                              "build the array with mode='stochastic'")
        self.rounding_select = rounding_select
        self.latency = cols + 3
        a_layout = data.StructLayout({"data": data.ArrayLayout(signed(self.a_width), rows),
                                      "last": unsigned(1)})
        super().__init__({
            "a": In(stream.Signature(a_layout)),
            "b": In(stream.Signature(data.ArrayLayout(signed(self.b_width), cols))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(self.c_width), cols))),
            **({"stochastic": In(1)} if rounding_select else {}),
        })

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        wa, wb, wacc = self.a_width, self.b_width, self.acc_width

        freeze = Signal()
        adv = Signal()
        m.d.comb += adv.eq(~freeze)

        # --- input control: gap between tile ends, first-step flag
        gap = Signal(range(C + 1), init=C)
        first = Signal(init=1)
        last_ok = Signal()
        m.d.comb += last_ok.eq(~self.a.payload.last | (gap == C))
        accept = Signal()
        m.d.comb += [
            self.a.ready.eq(self.b.valid & adv & last_ok),
            self.b.ready.eq(self.a.valid & adv & last_ok),
            accept.eq(self.a.valid & self.b.valid & adv & last_ok),
        ]
        with m.If(adv):
            with m.If(accept & self.a.payload.last):
                m.d.sync += gap.eq(0)
            with m.Elif(gap != C):
                m.d.sync += gap.eq(gap + 1)
        with m.If(accept):
            m.d.sync += first.eq(self.a.payload.last)

        # --- skew registers: row i delayed i cycles (data + control), column j delayed j
        def ctl_sigs(name):
            return (Signal(name=f"{name}_v"), Signal(name=f"{name}_first"), Signal(name=f"{name}_last"))

        a_src, ctl_src = [], []
        for i in range(R):
            d = self.a.payload.data[i]
            c = (accept, first, self.a.payload.last)
            for k in range(i):
                rd = Signal(signed(wa), name=f"askew{i}_{k}", reset_less=True)
                rc = ctl_sigs(f"cskew{i}_{k}")
                with m.If(adv):
                    m.d.sync += [rd.eq(d)] + [x.eq(y) for x, y in zip(rc, c)]
                d, c = rd, rc
            a_src.append(d)
            ctl_src.append(c)
        b_src = []
        for j in range(C):
            d = self.b.payload[j]
            for k in range(j):
                rd = Signal(signed(wb), name=f"bskew{j}_{k}", reset_less=True)
                with m.If(adv):
                    m.d.sync += rd.eq(d)
                d = rd
            b_src.append(d)

        # --- PE grid
        a_in = [[Signal(signed(wa), name=f"a_{i}_{j}", reset_less=True) for j in range(C)] for i in range(R)]
        b_in = [[Signal(signed(wb), name=f"b_{i}_{j}", reset_less=True) for j in range(C)] for i in range(R)]
        ctl = [[ctl_sigs(f"c_{i}_{j}") for j in range(C)] for i in range(R)]
        acc = [[Signal(signed(wacc), name=f"acc_{i}_{j}", reset_less=True) for j in range(C)] for i in range(R)]
        done = [[Signal(name=f"done_{i}_{j}") for j in range(C)] for i in range(R)]
        sh = [[Signal(signed(wacc), name=f"sh_{i}_{j}", reset_less=True) for j in range(C)] for i in range(R)]
        full = [[Signal(name=f"full_{i}_{j}") for j in range(C)] for i in range(R)]

        hazards = []
        for i in range(R):
            for j in range(C):
                a_prev = a_src[i] if j == 0 else a_in[i][j - 1]
                c_prev = ctl_src[i] if j == 0 else ctl[i][j - 1]
                b_prev = b_src[j] if i == 0 else b_in[i - 1][j]
                v, fst, lst = ctl[i][j]
                with m.If(adv):
                    m.d.sync += [a_in[i][j].eq(a_prev), b_in[i][j].eq(b_prev)]
                    m.d.sync += [x.eq(y) for x, y in zip(ctl[i][j], c_prev)]
                    m.d.sync += done[i][j].eq(v & lst)
                    with m.If(v):
                        # the DSP48E1 MACC: P <= (first ? 0 : P) + A * B
                        m.d.sync += acc[i][j].eq(Mux(fst, 0, acc[i][j]) + a_in[i][j] * b_in[i][j])
                    with m.If(done[i][j]):
                        m.d.sync += sh[i][j].eq(acc[i][j])
                hazards.append(done[i][j] & full[i][j])
        m.d.comb += freeze.eq(Cat(*hazards).any())     # one reduction (a tree), not a chain of ORs

        # --- drain: rows in order through one rounding stage per column
        rdptr = Signal(range(R), name="rdptr")
        row_ready = Signal()
        m.d.comb += row_ready.eq(Array(full[i][C - 1] for i in range(R))[rdptr])
        can_out = Signal()
        drain = Signal()
        m.d.comb += [can_out.eq(~self.o.valid | self.o.ready), drain.eq(row_ready & can_out)]
        for i in range(R):
            for j in range(C):
                with m.If(adv & done[i][j]):
                    m.d.sync += full[i][j].eq(1)
                with m.Elif(drain & (rdptr == i)):
                    m.d.sync += full[i][j].eq(0)
        with m.If(drain):
            m.d.sync += rdptr.eq(Mux(rdptr == R - 1, 0, rdptr + 1))

        rnd = [None] * C
        if self.lfsr_width is not None:
            m.submodules.lfsr = lfsr = LFSR(self.lfsr_width, self.seed, self.steps_per_cycle, lanes=C)
            m.d.comb += lfsr.en.eq(drain)
            rnd = [lfsr.state[j] for j in range(C)]
            if self.rounding_select:
                half = 1 << (self.drop_bits - 1)
                rnd = [Mux(self.stochastic, r[:self.drop_bits], half) for r in rnd]
        with m.If(can_out):
            m.d.sync += self.o.valid.eq(drain)
        for j in range(C):
            col = Array(sh[i][j] for i in range(R))
            sel = Signal(signed(wacc), name=f"drain_{j}")
            m.d.comb += sel.eq(col[rdptr])
            out = round_expr(m, sel, wacc, self.drop_bits, self.c_width, self.mode, rnd[j], name=f"rnd{j}")
            with m.If(drain):
                m.d.sync += self.o.payload[j].eq(out)
        return m

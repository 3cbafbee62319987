"""One PE's datapath as a module of its own: the dot product of a weight word and an input word.

The MVTU instantiates one per PE. Being a submodule whose Verilog depends only
on its parameters, every PE of a given (SIMD, kinds, pipeline) is the same
module text, which :func:`qnnfab.sim.build.share_modules` writes once
for the whole design (its name ends with :data:`SHARED_SUFFIX`).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qnnfab.kinds import accumulator_range
from qnnfab.netconfig import POPCOUNT_STYLES

from .compressor_popcount import compressor_popcount
from .dot_product import dot_product, range_shape, tree_depth

__all__ = ["DotProductUnit", "SHARED_SUFFIX"]

#: the end of the name of every submodule whose Verilog is written once per distinct text
#: (:func:`qnnfab.sim.build.share_modules`)
SHARED_SUFFIX = "__shared"


class DotProductUnit(wiring.Component):
    """Dot product of one SIMD-wide weight word and input word (:func:`qnnfab.rtl.dot_product.dot_product`).

    Parameters
    ----------
    simd : int
        Lanes per word.
    w_kind, x_kind : :class:`qnnfab.kinds.DataKind`
        Element kinds of the weight and input words.
    stages : int
        Pipeline registers on the path, clamped to
        :func:`qnnfab.rtl.dot_product.tree_depth`: :attr:`latency` cycles.
    popcount : "adder-tree" | "compressor"
        Bipolar x bipolar only (other kinds ignore it): the XNOR popcount of
        :func:`qnnfab.rtl.dot_product.xnor_popcount` or the LUT6_2/CARRY4 tree of
        :func:`qnnfab.rtl.compressor_popcount.compressor_popcount` (same result
        and latency).
    primitives : bool
        With the compressor: ``LUT6_2``/``CARRY4`` instances (True: synthesis and
        the Verilog simulators, which add the cells' models) or their Amaranth
        model (False: Amaranth's simulator).

    Ports
    -----
    w : In(simd * w_kind.width), x : In(simd * x_kind.width)
        Packed words, element 0 at the LSBs.
    enable : In(1)
        Every pipeline register loads when high (and holds when low).
    dot : Out(range_shape of :func:`qnnfab.kinds.accumulator_range` (simd, w, x))
        Bipolar x bipolar: the XNOR popcount in [0, simd] (unsigned); else the
        signed sum of the lane products; :attr:`latency` enabled cycles after
        ``w``/``x``.
    """

    def __init__(self, *, simd, w_kind, x_kind, stages, popcount="adder-tree", primitives=True):
        assert popcount in POPCOUNT_STYLES, popcount
        self.simd, self.w_kind, self.x_kind, self.stages = simd, w_kind, x_kind, stages
        self.lo, self.hi = accumulator_range(simd, w_kind, x_kind)
        super().__init__({
            "w": In(simd * w_kind.width),
            "x": In(simd * x_kind.width),
            "enable": In(1),
            "dot": Out(range_shape(self.lo, self.hi)),
        })
        binary = w_kind.kind == "bipolar" and x_kind.kind == "bipolar"
        self.latency = min(stages, tree_depth(simd, binary))
        self.compressor = binary and popcount == "compressor"
        self.primitives = primitives

    def elaborate(self, platform):
        m = Module()
        if self.compressor:
            v, lo, hi, lat = compressor_popcount(m, self.w, self.x, self.simd, self.stages, self.enable, name="dp",
                                                 primitives=self.primitives)
        else:
            v, lo, hi, lat = dot_product(m, self.w, self.x, simd=self.simd, w_kind=self.w_kind,
                                         x_kind=self.x_kind, stages=self.stages, enable=self.enable, name="dp")
        assert (lo, hi, lat) == (self.lo, self.hi, self.latency), "dot_product's range or latency changed"
        m.d.comb += self.dot.eq(v)
        return m

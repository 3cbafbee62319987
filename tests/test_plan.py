"""The plan (qnnfab.plan): facts about a design computed from its config, with no
Amaranth, checked against first principles and against the elaborated hardware."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Shape

from qnnfab import netconfig
from qnnfab.errors import ConfigError
from qnnfab.kinds import range_bits
from qnnfab.netconfig import sum_range
from qnnfab.plan import fifo_depth_for, plan_of, threshold_memory
from qnnfab.rtl.axis_accelerator import AxiStreamAccelerator
from qnnfab.rtl.dataflow import Dataflow, input_ports, output_ports

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p for p in (ROOT / "configs").glob("*.toml") if "fast" not in p.name)


def test_the_plan_imports_no_amaranth():
    code = ("import sys, qnnfab.plan, qnnfab.weights_image, qnnfab.weight_layout\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'amaranth')\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_link_carries_the_whole_tensor_and_the_chain_connects(path):
    cfg = netconfig.load(path)
    plan = plan_of(cfg)
    assert plan.input.elems * plan.input.words == math.prod(cfg.input_shape)
    by_name = {s.name: s for s in plan.stages}
    for a, b in zip(plan.stages, plan.stages[1:]):
        sources = [(by_name[n], port) for port, (n, _) in enumerate(b.reads) if n] if cfg.is_graph else [(a, 0)]
        for source, port in sources:
            i = b.input_link(port)
            assert source.o.elem == i.elem and source.o.elems * source.o.words == i.elems * i.words, \
                (source.name, b.name)
    for L, s in zip(cfg.layers, plan.layers):
        assert s.name == L.name and s.i.elems * s.i.words == math.prod(L.in_shape)
        assert s.o.elems * s.o.words == math.prod(L.out_shape)
        if L.act != "acc":      # (raw accumulators: checked against the hardware below)
            assert (s.o.elem.bits, s.o.elem.signed) == (L.out_bits, L.out_signed), L.name
    assert [n for n, _ in plan.model] == [L.name for L in cfg.layers]
    assert plan.topology_hash == cfg.topology_hash()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
@pytest.mark.parametrize("mode", ["const", "runtime"])
def test_plan_agrees_with_the_elaborated_hardware(path, mode):
    cfg = netconfig.load(path)
    plan = plan_of(cfg, mode)
    top = AxiStreamAccelerator(cfg, weights_mode=mode)
    df = top.dataflow
    assert [(k, n) for k, n, _ in df.stages] == [(s.kind, s.name) for s in plan.stages]
    for (_, _, comp), s in zip(df.stages, plan.stages):
        for k, port in enumerate(input_ports(comp)):
            i = port.payload.shape()
            assert (i.length, Shape.cast(i.elem_shape).width) == (s.input_link(k).elems, s.input_link(k).elem.bits)
        for port in output_ports(comp):
            o = port.payload.shape()
            assert (o.length, Shape.cast(o.elem_shape).width) == (s.o.elems, s.o.elem.bits)
        if s.kind == "fifo":
            assert comp.depth == s.fifo_depth
        mvtu = comp if s.kind == "fc" else getattr(comp, "mvtu", None)
        if mvtu is not None:
            assert tuple(mvtu.memory_groups) == s.memories.groups
        if s.kind == "concat":                       # each input's words a pixel: its channels / simd
            assert (comp.a_words, comp.b_words) == tuple(sh[2] // s.layer.simd for sh in s.layer.in_shapes)
        if s.kind in ("add", "global_avgpool"):      # a graph's threshold units
            assert tuple(comp.threshold.memory_groups) == s.memories.groups
            summed = range_bits(*sum_range(s.layer))    # the RTL's sum shape
            assert (comp.threshold.in_width, comp.threshold.in_signed) == summed
    fm = plan.word_format
    assert len(top.s_axis_tdata) == 8 * fm.in_bytes and len(top.m_axis_tdata) == 8 * fm.out_bytes
    if mode == "runtime":
        assert tuple(df.loader.groups) == plan.groups
        assert len(plan.image_words()) == 2 + plan.image_body_words
    else:
        assert plan.groups == ()


def test_fifo_depth_is_the_configs_or_the_rate_rule():
    cfg = netconfig.load(ROOT / "configs" / "cnv_small.toml")
    plan = plan_of(cfg)
    fifos = [s for s in plan.stages if s.kind == "fifo"]
    assert fifos
    layers = list(plan.layers)
    for f in fifos:
        k = next(j for j, s in enumerate(layers) if s.layer is f.layer)
        producer, consumer = layers[k - 1].cycles, layers[k].cycles
        want = f.layer.fifo_depth or fifo_depth_for(f.i.words, producer, consumer)
        assert f.fifo_depth == want


@pytest.mark.parametrize("lo,hi,want", [(0, 0, (1, False)), (0, 1, (1, False)), (0, 255, (8, False)),
                                        (0, 256, (9, False)), (-1, 0, (2, True)), (-128, 127, (8, True)),
                                        (-129, 127, (9, True)), (-128, 128, (9, True)), (-3, 100, (8, True))])
def test_range_bits_is_the_narrowest_that_holds_both_ends(lo, hi, want):
    bits, is_signed = range_bits(lo, hi)
    assert (bits, is_signed) == want
    if is_signed:
        assert -(1 << bits - 1) <= lo and hi < 1 << bits - 1
        assert not (-(1 << bits - 2) <= lo and hi < 1 << bits - 2) or bits == 2   # signed: 2 bits at least
    else:
        assert hi < 1 << bits and (bits == 1 or hi >= 1 << bits - 1)


def test_threshold_memory_holds_the_clamped_values_and_the_pad():
    # one threshold per row (n = 1 stage, table of 1 = 2^1 - 1: full, no pad entry)
    assert threshold_memory(np.array([[3], [5]]), 0, 8, runtime=False) == (3, False)
    # two thresholds (n = 2 stages, table of 3 padded with acc_hi + 1 = 9): 4 bits
    assert threshold_memory(np.array([[1, 2], [2, 3]]), 0, 8, runtime=False) == (4, False)
    # negative thresholds of a signed accumulator, clamped to acc_lo = -20
    assert threshold_memory(np.array([[-100], [4]]), -20, 20, runtime=False) == (6, True)
    # runtime thresholds hold any value of [min(lo, 0), hi + 1] whatever the given ones
    assert threshold_memory(np.array([[0]]), 0, 255, runtime=True) == (9, False)
    assert threshold_memory(np.array([[0]]), -20, 20, runtime=True) == (6, True)


def test_unknown_weights_mode_is_refused():
    cfg = netconfig.load(ROOT / "configs" / "lfc_small.toml")
    with pytest.raises(ConfigError, match="weights_mode.*ram"):
        plan_of(cfg, "ram")

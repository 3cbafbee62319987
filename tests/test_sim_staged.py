"""The compiled engine with one Verilator model per stage (NetworkBench(per_stage=True)):
the same run as the design built as one model, word for word and cycle for cycle; an
unchanged stage is not rebuilt; a stage that breaks the harness's assumption is refused."""

from pathlib import Path

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.errors import QnnfabError
from qnnfab.sim.build import largest_first, run_steps
from qnnfab.sim.compiled import NetworkBench, SimulationMismatch, check_network, stage_ports

ROOT = Path(__file__).resolve().parent.parent
LFC_SMALL = ROOT / "configs" / "lfc_small.toml"
CNV_SMALL = ROOT / "configs" / "cnv_small.toml"


def _same_run(a, b):
    assert a.cycles == b.cycles
    np.testing.assert_array_equal(a.words, b.words)
    np.testing.assert_array_equal(a.word_cycles, b.word_cycles)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.label_cycles, b.label_cycles)


@pytest.mark.parametrize("config, frames", [(LFC_SMALL, 12), (CNV_SMALL, 3)], ids=["lfc_small", "cnv_small"])
def test_per_stage_run_equals_the_one_model_run_cycle_for_cycle_and_golden(config, frames):
    cfg = netconfig.load(config)
    x = cfg.random_inputs(frames, 7)
    whole, staged = NetworkBench(cfg, per_stage=False), NetworkBench(cfg, per_stage=True)
    assert [t for t, _ in staged._stages] == [f"stage_{L.name}" for L in cfg.layers]
    for kw in ({}, {"seed": 3, "valid_prob": 0.6, "ready_prob": 0.4}, {"seed": 4, "valid_prob": 0.9, "ready_prob": 0.8}):
        a, b = whole.run(x, **kw), staged.run(x, **kw)
        _same_run(a, b)
        check_network(staged, x, b)


def _stage_entries(cache):
    return {p.name for p in (cache / "builds").glob("stage_*-stage-*") if p.is_dir()}


def test_a_one_layer_change_rebuilds_only_that_layers_model(tmp_path, monkeypatch):
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path))
    cfg = netconfig.load(LFC_SMALL)
    lines = []
    first = NetworkBench(cfg, per_stage=True, log=lines.append)
    assert not first.build.cached
    before = _stage_entries(tmp_path)
    assert len(before) == len(first._stages)
    names = [t for t, _ in first._stages]
    assert [m.toplevel for m in first.build.stage_models] == names
    assert all(not m.cached and m.cpu_seconds > 0 for m in first.build.stage_models)
    # the two largest stage models start first, one on each worker
    by_size = sorted(first._stages, key=lambda st: -len(st[1]))
    assert len(by_size[1][1]) > len(by_size[2][1])
    started = [line.split()[2] for line in lines if line.startswith("building stage ")]
    assert sorted(started) == sorted(names) and set(started[:2]) == {by_size[0][0], by_size[1][0]}
    cfg2 = netconfig.load(LFC_SMALL)
    last = [L for L in cfg2.layers if L.type == "fc"][-1]
    last.pe = 2 if last.pe != 2 else 5
    second = NetworkBench(cfg2, per_stage=True)
    x = cfg2.random_inputs(4, 1)
    check_network(second, x, second.run(x))
    new = {name.rsplit("-", 2)[0] for name in _stage_entries(tmp_path) - before}
    assert new == {"stage_fc_out"}
    rebuilt = {m.toplevel: m for m in second.build.stage_models if not m.cached}
    assert list(rebuilt) == ["stage_fc_out"] and rebuilt["stage_fc_out"].cpu_seconds > 0
    assert all(m.cpu_seconds == 0 for m in second.build.stage_models if m.cached)
    assert NetworkBench(cfg2, per_stage=True).build.cached


def test_a_stage_whose_valid_depends_on_its_ready_is_refused():
    cfg = netconfig.load(LFC_SMALL)
    bench = NetworkBench(cfg, per_stage=True)
    k = next(i for i, (t, _) in enumerate(bench._stages) if t == "stage_fc_out")
    t, v = bench._stages[k]
    # in the model's top module: the layer's output valid, passed out, gated by the model's o.ready
    start = v.index("module stage_fc_out(")
    end = v.index("endmodule", start)
    top = v[start:end]
    assert top.count("    .o__valid(o__valid),\n") == 1 and top.count("  output o__valid;\n  wire o__valid;\n") == 1
    top = top.replace("    .o__valid(o__valid),\n", "    .o__valid(valid_inner),\n").replace(
        "  output o__valid;\n  wire o__valid;\n",
        "  output o__valid;\n  wire o__valid;\n  wire valid_inner;\n  assign o__valid = valid_inner & o__ready;\n")
    v = v[:start] + top + v[end:]
    bench._stages[k] = (t, v)
    bench._build = None
    x = cfg.random_inputs(8, 2)
    with pytest.raises(SimulationMismatch, match="stage stage_fc_out: a valid or payload changed when a ready did"):
        bench.run(x, valid_prob=0.9, ready_prob=0.05)


def test_a_stage_with_other_ports_is_refused():
    text = ("module stage_x(clk, rst, i__valid, i__ready, i__payload, o__valid, o__ready, o__payload, busy);\n"
            "endmodule\n")
    with pytest.raises(ValueError, match="stage stage_x has ports"):
        stage_ports(text, "stage_x")
    assert stage_ports(text.replace(", busy", ""), "stage_x") == (True, True)
    assert stage_ports(text.replace("clk, rst, ", "").replace(", busy", ""), "stage_x") == (False, False)


def test_stages_outside_needs_const_weights():
    from qnnfab.rtl.dataflow import Dataflow
    with pytest.raises(ValueError, match="stages_outside needs const weights"):
        Dataflow(netconfig.load(LFC_SMALL), weights_mode="runtime", stages_outside=True)


def test_largest_first_orders_by_length_ties_in_order():
    assert largest_first(["bb", "a", "ccc", "dd", ""]) == [2, 0, 3, 1, 4]
    assert largest_first([]) == []


def test_run_steps_returns_the_cpu_seconds_of_its_commands_and_names_a_failure(tmp_path):
    import sys
    busy = "import time\nwhile time.process_time() < 0.3: pass\nprint('done')"
    cpu = run_steps([[sys.executable, "-c", busy], [sys.executable, "-c", busy]], tmp_path, tmp_path / "log", "busy")
    assert cpu >= 0.6
    assert (tmp_path / "log").read_text() == "done\ndone\n"
    with pytest.raises(QnnfabError, match=r"(?s)broken failed \(log: .*\):\n.*oops"):
        run_steps([[sys.executable, "-c", "import sys; sys.exit('oops')"]], tmp_path, tmp_path / "log2", "broken")

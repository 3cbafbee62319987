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
    # only the changed layer was elaborated; the others' Verilog, read from their models' entries,
    # is the text elaborated the first time
    assert first.elaborated == names and second.elaborated == ["stage_fc_out"]
    assert second._stages[:-1] == first._stages[:-1]
    third = NetworkBench(cfg2, per_stage=True)
    assert third.elaborated == [] and third._stages == second._stages and third.build.cached
    # a stage read from the cache is not even made (Amaranth would warn of it as never used)
    import gc
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert NetworkBench(cfg2, per_stage=True).elaborated == []
        gc.collect()
    assert not [w for w in caught if "never used" in str(w.message)]
    # a model entry whose Verilog is not the text remembered is not served: that stage is elaborated
    entry = next(m.directory for m in third.build.stage_models if m.toplevel == "stage_fc1")
    text = (entry / "stage_fc1.v").read_text()
    (entry / "stage_fc1.v").write_text(text.replace("module stage_fc1(", "module stage_fc1 (", 1))
    fourth = NetworkBench(cfg2, per_stage=True)
    assert fourth.elaborated == ["stage_fc1"] and fourth._stages == second._stages


def test_a_stage_whose_valid_depends_on_its_ready_is_refused(tmp_path, monkeypatch):
    """A stage model that breaks the handshake rule is refused; built from a text other than
    the elaborated one, it is not remembered as that stage's Verilog: a new bench in the same
    cache still gets the elaborated text."""
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path))
    cfg = netconfig.load(LFC_SMALL)
    bench = NetworkBench(cfg, per_stage=True)
    original = list(bench._stages)
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
    again = NetworkBench(cfg, per_stage=True)
    assert again._stages == original and again.elaborated == ["stage_fc_out"]


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


TINY = """[network]
name = "tiny"
input_shape = [16]
input_kind = "bipolar"
weights = "random"
seed = 3

[[layer]]
name = "fc0"
type = "fc"
out = 8
act = "bipolar"

[[layer]]
name = "fc1"
type = "fc"
out = 4
act = "acc"
"""

VARIANTS = [("seed = 3", "seed = 4"),                                  # other weights
            ('act = "bipolar"', 'act = "uint2"'),                      # fc0's output: fc1's input format
            ('out = 4\nact = "acc"', 'out = 4\nact = "acc"\npe = 2'),   # fc1's folding
            ('out = 8\nact = "bipolar"', 'out = 8\nact = "bipolar"\nsimd = 4'),   # fc0's: fc1's input word
            ('out = 4\nact = "acc"', 'out = 4\nact = "acc"\npipeline = "max"'),
            ('out = 4\nact = "acc"', 'out = 4\nact = "acc"\nfifo_depth = 7')]


def _chains(cfg, pipeline=None):
    """{stage module: (chain_description, its Verilog)} of ``cfg`` as NetworkBench builds it per stage."""
    from qnnfab.rtl.axis_accelerator import AxiStreamAccelerator
    from qnnfab.rtl.dataflow import chain_layers
    from qnnfab.sim.stage_identity import chain_description, chain_toplevel, chain_verilog
    plan = AxiStreamAccelerator(cfg, pipeline=pipeline, weights_mode="const", stages_outside=True).dataflow.plan
    out = {}
    for layer in chain_layers(plan):
        t = chain_toplevel(layer)
        out[t] = (chain_description(plan, layer, t, pipeline), chain_verilog(plan, layer, t, pipeline))
    return out


def _tiny(tmp_path, text, tag):
    p = tmp_path / f"tiny_{tag}.toml"
    p.write_text(text)
    return netconfig.load(p)


def test_chain_description_changes_whenever_the_stage_verilog_does(tmp_path, monkeypatch):
    """The key under which a stage's Verilog is served without elaborating it
    (chain_description): the same for the same config loaded twice; wherever a variant
    (weights, upstream format, folding, pipeline, FIFO depth, a pipeline override) changes a
    stage's Verilog, its key changes; one flipped weight, a plan's FIFO depth and another
    version of the sources each change it too."""
    import dataclasses

    import qnnfab.sim.stage_identity as stage_identity
    from qnnfab.plan import plan_of
    base = _chains(_tiny(tmp_path, TINY, "base"))
    assert base == _chains(_tiny(tmp_path, TINY, "again"))
    assert all(d is not None for d, _ in base.values()) and len({d for d, _ in base.values()}) == len(base)
    differing = 0
    variants = [_chains(_tiny(tmp_path, TINY.replace(old, new, 1), k)) for k, (old, new) in enumerate(VARIANTS)]
    variants.append(_chains(_tiny(tmp_path, TINY, "override"), pipeline="max"))
    for k, variant in enumerate(variants):
        assert variant.keys() == base.keys()
        changed = [t for t in base if base[t][1] != variant[t][1]]
        assert changed, k
        for t in changed:
            differing += 1
            assert base[t][0] != variant[t][0], (k, t)
    assert differing >= len(variants)
    cfg = _tiny(tmp_path, TINY, "weights")
    plan = plan_of(cfg, "const")
    from qnnfab.sim.stage_identity import chain_description
    d0 = chain_description(plan, "fc0", "stage_fc0")
    cfg.layers[0].weights[0, 0] ^= 1          # bipolar weights are stored as bits
    assert chain_description(plan_of(cfg, "const"), "fc0", "stage_fc0") != d0
    cfg.layers[0].weights[0, 0] ^= 1
    assert chain_description(plan_of(cfg, "const"), "fc0", "stage_fc0") == d0
    assert cfg.layers[0].thresholds.shape == (8, 1)   # one threshold a row: any value keeps it sorted
    cfg.layers[0].thresholds[0, 0] += 1
    assert chain_description(plan_of(cfg, "const"), "fc0", "stage_fc0") != d0
    cfg.layers[0].thresholds[0, 0] -= 1
    d1 = chain_description(plan, "fc1", "stage_fc1")
    k, fifo = next((k, s) for k, s in enumerate(plan.stages) if s.kind == "fifo" and s.layer.name == "fc1")
    stages = list(plan.stages)
    stages[k] = dataclasses.replace(fifo, fifo_depth=fifo.fifo_depth + 1)
    assert chain_description(dataclasses.replace(plan, stages=stages), "fc1", "stage_fc1") != d1
    assert chain_description(plan, "fc1", "stage_fc1") == d1
    monkeypatch.setattr(stage_identity, "verilog_source_hash", lambda: "another version of the sources")
    assert chain_description(plan, "fc1", "stage_fc1") != d1


def test_the_source_hash_names_the_yosys_amaranth_writes_verilog_with(monkeypatch):
    """Another Yosys (a system one Amaranth prefers to its built-in one, another version)
    changes the source hash; the one found is the one Amaranth's Verilog back end would use."""
    from amaranth._toolchain import yosys

    import qnnfab.sim.stage_identity as stage_identity
    found = yosys.find_yosys(lambda v: v >= (0, 40))
    assert stage_identity.amaranth_yosys() == f"{found.__name__} {found.version()}"
    source_hash = stage_identity.verilog_source_hash.__wrapped__
    base = source_hash()
    assert source_hash() == base

    class OtherYosys:
        @staticmethod
        def version():
            return (0, 41, 0)
    monkeypatch.setattr(stage_identity, "find_yosys", lambda requirement: OtherYosys)
    assert stage_identity.amaranth_yosys() == "OtherYosys (0, 41, 0)"
    assert source_hash() != base


def test_a_stage_record_serves_only_the_text_it_remembered(tmp_path, monkeypatch):
    """known_stage_verilog: a miss without a record, with a record of another module, when the
    model's entry is gone, or when the entry's Verilog is not the remembered text; the
    remembered text (without the cell models after it) otherwise."""
    from qnnfab.sim.build import StageModel, cache_dir, known_stage_verilog, remember_stage_verilog, with_cell_models
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path))
    text = "module stage_a(clk);\n  LUT6_2 x (\n  );\nendmodule\n"
    entry = cache_dir("builds") / "stage_a-stage-0123"
    entry.mkdir()
    assert known_stage_verilog("d" * 32, "stage_a") is None
    (entry / "stage_a.v").write_text(with_cell_models(text))
    assert with_cell_models(text) != text
    remember_stage_verilog("d" * 32, StageModel("stage_a", entry, False, 1.0, 1.0), text)
    assert known_stage_verilog("d" * 32, "stage_a") == text
    assert known_stage_verilog("e" * 32, "stage_a") is None
    assert known_stage_verilog("d" * 32, "stage_b") is None
    assert known_stage_verilog(None, "stage_a") is None
    # a hand-written record naming the same file by a path, or with a length not a count, is refused
    import hashlib
    import json
    record_path = cache_dir("stages") / f"sim-{'d' * 32}.json"
    record = json.loads(record_path.read_text())
    for bad in ({"entry": f"../builds/{entry.name}"}, {"entry": str(entry)}, {"entry": "."}, {"entry": 7},
                {"length": True, "sha256": hashlib.sha256(text[:1].encode()).hexdigest()},
                {"length": float(len(text))}, {"length": -1}):
        record_path.write_text(json.dumps({**record, **bad}))
        assert known_stage_verilog("d" * 32, "stage_a") is None, bad
    record_path.write_text(json.dumps(record))
    assert known_stage_verilog("d" * 32, "stage_a") == text
    (entry / "stage_a.v").write_text(with_cell_models(text.replace("clk", "clj")))
    assert known_stage_verilog("d" * 32, "stage_a") is None
    (entry / "stage_a.v").unlink()
    assert known_stage_verilog("d" * 32, "stage_a") is None

"""The measured folding search (qnnfab.boards.estimate.measured) on Dask (synth_pool), and its options.

The expected figures come from ``qnnfab report``'s own path (network_report: the
stage components synthesized in threads through the Yosys cache), not from the
search's composition; the budgets are set from the fully folded design's report so
the tests hold whatever the RTL's LUT counts are.
"""

import os
import signal
import threading
from pathlib import Path

import pytest

from qnnfab import netconfig
from qnnfab.boards.estimate.fold import assign_memory_styles, folding_steps
from qnnfab.boards.estimate.measured import (BRAM_PRICES, Budget, Composer, apply, measured_fold, pareto_front,
                                             proposals, settings_of)
from qnnfab.boards.estimate.report import network_report
from qnnfab.boards.estimate.synth_pool import SynthesisPool
from qnnfab.boards.targets import XC7Z020
from qnnfab.cli import main

ROOT = Path(__file__).resolve().parent.parent

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


def _tiny(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return netconfig.load(p)


def _luts(res):
    return res.lut + res.lutram


def _figures(res):
    return (res.lut, res.lutram, res.ff, res.bram36, res.dsp, res.logic_ps)


def _budget_after_first_point(cfg, extra):
    """A LUT budget ``extra`` LUTs above the fully folded design's report (the path's first point)."""
    points, _ = proposals(cfg, XC7Z020, Budget(), prune=100.0)
    apply(cfg, points[0].settings)
    first = network_report(cfg, progress=None, jobs=2)
    return Budget(lut=(_luts(first.total) + extra) / XC7Z020.lut), first


def _check_stop(tmp_path, cfg, res, budget):
    """The chosen folding fits by ``report``; every setting the search rejected for the
    bottleneck's next step (SIMD/PE one step up, each memory style and pipeline) does not."""
    chosen = network_report(cfg, progress=None, jobs=2)
    assert _figures(chosen.total) == _figures(res.report.total)     # composition == report, every figure
    assert _luts(chosen.total) <= budget.lut * XC7Z020.lut
    assert res.stopper is not None, res.reason
    L = next(x for x in cfg.layers if x.name == res.stopper)
    steps = folding_steps(L)
    nxt = steps[steps.index((L.simd, L.pe)) + 1]
    assert {(s[L.name]["simd"], s[L.name]["pe"]) for s, _ in res.rejected} == {nxt}
    assert {(s[L.name]["weight_memory"], s[L.name]["pipeline"]) for s, _ in res.rejected} == \
        {(st, p) for st in ("auto", "block", "distributed") for p in (0, "max")}
    for settings, over in res.rejected:
        probe = _tiny(tmp_path)
        apply(probe, settings)
        rep = network_report(probe, progress=None, jobs=2)
        assert _luts(rep.total) > budget.lut * XC7Z020.lut and over, settings
    assert res.stopper in res.notes and "next step" in res.notes[res.stopper]


def test_measured_fold_stops_where_report_says(tmp_path, monkeypatch):
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))
    cfg = _tiny(tmp_path)
    budget, first = _budget_after_first_point(cfg, 12)
    with SynthesisPool(workers=2, progress=None) as pool:
        res = measured_fold(cfg, XC7Z020, pool, budget=budget, prune=100.0, lookahead=2, progress=None,
                            rebalance=False)
        chosen = settings_of(cfg)
        assert res.report.bottleneck_cycles < first.bottleneck_cycles   # it did raise something
        # a layer table: the layer's own stage at two settings, the others untouched
        from qnnfab.boards.estimate.measured import layer_candidates, layer_table
        cands = layer_candidates(cfg, "fc1", styles=("auto",), pipelines=(0,))[:2]
        table = layer_table(cfg, "fc1", cands, pool)
        assert settings_of(cfg) == chosen
    for cand, cycles, res_stage in table:
        probe = _tiny(tmp_path)
        apply(probe, chosen)
        L = probe.layers[1]
        L.simd, L.pe, L.weight_memory, L.pipeline = cand["simd"], cand["pe"], "auto", 0
        rep = network_report(probe, progress=None, stages=[s for s in _stages(probe) if s[0] == "fc1"])
        assert _figures(rep.layers[1].resources) == _figures(res_stage)
        assert cycles == probe.layer_cycles(L)
    _check_stop(tmp_path, cfg, res, budget)


def test_search_started_over_budget_walks_back_to_a_fit(tmp_path, monkeypatch):
    """A walk started at the path's last point, measured over the budget: it goes back
    until a point fits, then checks the next step (with every memory style and pipeline)
    as a forward walk does; the chosen design fits by report."""
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))
    cfg = _tiny(tmp_path)
    budget, first = _budget_after_first_point(cfg, 12)
    points, _ = proposals(_tiny(tmp_path), XC7Z020, budget, prune=100.0)
    last = _tiny(tmp_path)
    apply(last, points[-1].settings)
    assert _luts(network_report(last, progress=None, jobs=2).total) > budget.lut * XC7Z020.lut   # starts over
    lines = []
    with SynthesisPool(workers=2, progress=None) as pool:
        res = measured_fold(cfg, XC7Z020, pool, budget=budget, prune=100.0, lookahead=2, progress=lines.append,
                            start=-1, rebalance=False)
    assert res.start == len(points) - 1 and res.walked_back >= 1
    assert any("walked back" in line for line in lines), lines
    _check_stop(tmp_path, cfg, res, budget)


def test_model_stop_is_where_the_cost_model_search_stops():
    """model_stop: the last point before the first the cost model puts over the budget."""
    from qnnfab.boards.estimate.measured import Point, model_stop
    from qnnfab.boards.estimate.yosys import Resources
    cap = XC7Z020.lut
    budget = Budget(lut=0.5)

    def path(*luts):
        return [Point({}, None, "x", 100 - k, Resources(lut=n)) for k, n in enumerate(luts)]

    assert model_stop(path(10, 20, cap // 2, cap // 2 + 1, 10), budget, XC7Z020) == 2   # 26,600 fits; 26,601 not
    assert model_stop(path(10, 20), budget, XC7Z020) == 1
    assert model_stop(path(cap, 10), budget, XC7Z020) == 0
    assert model_stop(path(10, 20, 10), Budget(lut=0.5, margin=10.0), XC7Z020) == 2   # margin is for measurements


def test_failed_stage_synthesis_is_one_line_with_its_log(tmp_path, monkeypatch, capfd):
    """A stage Yosys rejects (fc1's Verilog broken on its way to the worker): the measured
    search ends with one line naming the stage, Yosys' error and the kept log; no config."""
    import qnnfab.boards.estimate.measured as measured
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))
    _tiny(tmp_path)
    real = measured.stage_verilog

    def broken_fc1(comp, top):
        text = real(comp, top)
        return text.replace("endmodule", "endmodule garbage(", 1) if top == "fc1" else text

    monkeypatch.setattr(measured, "stage_verilog", broken_fc1)
    out = tmp_path / "x.toml"
    rc = main(["fold", "--config", str(tmp_path / "tiny.toml"), "--fastest", "--measured", "--workers", "1",
               "--out", str(out)])
    err = capfd.readouterr().err.strip().splitlines()     # the worker processes' output too
    assert rc == 2 and len(err) == 1, err
    assert "failed for stage fc1: " in err[0] and "ERROR: syntax error" in err[0] and "the search stopped at point" in err[0], err
    log = Path(err[0].rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path / "cache" / "yosys-failed" and "ERROR: syntax error" in log.read_text()
    assert not out.exists()


def _stages(cfg):
    from qnnfab.boards.estimate.report import synthesis_stages
    return synthesis_stages(cfg)


def test_search_survives_a_killed_worker_and_resumes_from_the_cache(tmp_path, monkeypatch):
    """A real local cluster of two worker processes; one is killed (SIGKILL) while it runs a
    synthesis: Dask runs the task again, the search completes, and a second search over the
    same cache synthesizes nothing and chooses the same folding."""
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))
    cfg = _tiny(tmp_path)
    budget, _ = _budget_after_first_point(cfg, 3)    # a short search: the kill is what is tested here
    out, killed = {}, []
    with SynthesisPool(workers=2, progress=None) as pool:
        client = pool.dask_client()
        pids = client.run(os.getpid)

        def search():
            out["res"] = measured_fold(cfg, XC7Z020, pool, budget=budget, prune=100.0, lookahead=3, progress=None)

        t = threading.Thread(target=search)
        t.start()
        while t.is_alive() and not killed:
            busy = [w for w, keys in client.processing().items() if any("yosys-" in str(k) for k in keys)]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
            else:
                t.join(0.05)
        t.join()
    assert killed, "the search ended before a worker could be killed"
    res = out["res"]
    chosen = settings_of(cfg)
    rep = network_report(cfg, progress=None, jobs=2)
    assert _figures(rep.total) == _figures(res.report.total) and _luts(rep.total) <= budget.lut * XC7Z020.lut
    again = _tiny(tmp_path)
    with SynthesisPool(workers=1, progress=None) as pool:
        res2 = measured_fold(again, XC7Z020, pool, budget=budget, prune=100.0, lookahead=3, progress=None)
        # every point it checks was measured before (points ahead it may submit, then cancel)
        assert pool.synthesized == 0 and pool.cached > 0
        # only stages the cache lacks (of points ahead the first search cancelled) are elaborated
        assert res2.elaborated == pool.submitted
    assert settings_of(again) == chosen
    assert _figures(res2.report.total) == _figures(res.report.total)


def test_composer_reuses_one_text_per_stage(tmp_path, monkeypatch):
    """Two configs that differ only in fc1 share fc0's result; no Yosys runs when cached."""
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))
    cfg = _tiny(tmp_path)
    network_report(cfg, progress=None, jobs=2)
    with SynthesisPool(workers=1, progress=None) as pool:
        rep = Composer(pool).report(cfg)
        assert pool.synthesized == 0 and pool._cluster is None
    assert [_figures(L.resources) for L in rep.layers] == \
        [_figures(L.resources) for L in network_report(cfg, progress=None).layers]


def test_entries_made_elsewhere_land_in_this_cache(tmp_path, monkeypatch):
    """What a remote worker hands back (synth_xc7_entries) makes the result a cache hit here."""
    from qnnfab.boards.estimate.yosys import store_entries, synth_xc7, synth_xc7_cached, synth_xc7_entries
    text = ("module top(input clk, input [3:0] a, input [3:0] b, output reg [3:0] y);\n"
            "  always @(posedge clk) y <= a + b;\nendmodule\n")
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "worker"))
    res, how, entries = synth_xc7_entries(text, "top")
    assert how == "synthesized" and len(entries) == 1 and res.ff == 4
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "here"))
    assert synth_xc7_cached(text, "top") is None
    store_entries(entries)
    assert synth_xc7_cached(text, "top") == res == synth_xc7(text, "top")
    with pytest.raises(ValueError):
        store_entries({"../x.json": next(iter(entries.values()))})
    with pytest.raises(ValueError):
        store_entries({"top-0.json": "[1, 2]"})   # not a cell count table


def test_pareto_front_from_first_principles():
    rows = [{"cycles": 100, "lut": 10, "bram36": 1}, {"cycles": 50, "lut": 20, "bram36": 1},
            {"cycles": 50, "lut": 25, "bram36": 1},      # beaten by the one before
            {"cycles": 50, "lut": 25, "bram36": 0},      # less BRAM: kept
            {"cycles": 100, "lut": 10, "bram36": 1},     # a duplicate: once
            {"cycles": 25, "lut": 40, "bram36": 2}, {"cycles": 30, "lut": 45, "bram36": 2}]
    front = pareto_front(rows)
    assert [(r["cycles"], r["lut"], r["bram36"]) for r in front] == [(25, 40, 2), (50, 20, 1), (50, 25, 0),
                                                                   (100, 10, 1)]


def test_budget_names_what_is_over():
    from qnnfab.boards.estimate.yosys import Resources
    b = Budget(lut=0.5, bram36=0.5, dsp=1.0, ff=1.0, margin=0.1, logic_ps=5000)
    fits = Resources(lut=20_000, lutram=4_000, bram36=63, ff=1000, logic_ps=5000)   # 24,000 * 1.1 <= 26,600
    assert b.over(fits, XC7Z020) == []
    over = b.over(Resources(lut=24_000, lutram=500, bram36=64, dsp=221, ff=1000, logic_ps=5001), XC7Z020)
    assert [o.split()[0] for o in over] == ["LUT", "BRAM36", "DSP", "logic"]


@pytest.mark.parametrize("extra, option", [
    (["--ff", "50"], "--ff"), (["--margin", "5"], "--margin"), (["--meet-clock"], "--meet-clock"),
    (["--workers", "2"], "--workers"), (["--measured", "--lut", "150"], "--lut"),
    (["--measured", "--lut", "0"], "--lut"), (["--measured", "--workers", "0"], "--workers"),
    (["--measured", "--scheduler", "host:8786"], "--scheduler"),
    (["--measured", "--scheduler", "tcp://h:1", "--workers", "2"], "--workers"),
    (["--measured", "--margin", "-1"], "--margin"), (["--prune", "15"], "--prune"),
    (["--measured", "--prune", "-1"], "--prune"), (["--measured", "--prune", "nan"], "--prune"),
    (["--no-rebalance"], "--no-rebalance")])
def test_fold_search_options_refused_in_one_line(tmp_path, capsys, extra, option):
    out = tmp_path / "x.toml"
    rc = main(["fold", "--config", str(ROOT / "configs" / "lfc_small.toml"), "--fastest", *extra, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"qnnfab fold: {option}:" in err[0], err
    assert not out.exists()


def test_model_fold_writes_why_each_layer_stopped(tmp_path, capsys):
    out = tmp_path / "x.toml"
    assert main(["fold", "--config", str(ROOT / "configs" / "cnv_w1a1.toml"), "--fastest", "--lut", "90",
                 "--bram", "100", "--out", str(out)]) == 0
    text = out.read_text()
    cfg = netconfig.load(out)
    worst = max(cfg.layer_cycles(L) for L in cfg.layers)
    for L in cfg.layers:
        line = next(x for x in text.splitlines() if x.startswith(f"#   {L.name}: "))
        c = cfg.layer_cycles(L)
        assert ("not the bottleneck" in line) == (c < worst and (L.simd, L.pe) != folding_steps(L)[-1]), line
    assert "90% LUT, 100% BRAM36" in text


@pytest.mark.parametrize("extra, option", [(["--layer", "nope"], "--layer"), (["--lut", "101"], "--lut"),
                                           (["--meet-clock"], "--meet-clock"), (["--workers", "0"], "--workers"),
                                           (["--prune", "-1"], "--prune"), (["--prune", "nan"], "--prune")])
def test_explore_options_refused_in_one_line(tmp_path, capsys, extra, option):
    out = tmp_path / "pareto"
    rc = main(["explore", "--config", str(ROOT / "configs" / "lfc_small.toml"), *extra, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"qnnfab explore: {option}:" in err[0], err
    assert not out.exists()


def test_explore_refuses_a_folder_with_files(tmp_path, capsys):
    out = tmp_path / "pareto"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    rc = main(["explore", "--config", str(ROOT / "configs" / "lfc_small.toml"), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--out" in err[0], err
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and (out / "mine.txt").read_text() == "keep"


VARIANTS = [("seed = 3", "seed = 4"),                                  # other weights
            ('act = "bipolar"', 'act = "uint2"'),                      # fc0's output: fc1's input format
            ('out = 4\nact = "acc"', 'out = 4\nact = "acc"\npe = 2'),   # fc1's folding
            ('out = 8\nact = "bipolar"', 'out = 8\nact = "bipolar"\nsimd = 4'),   # fc0's: fc1's input word
            ('out = 4\nact = "acc"', 'out = 4\nact = "acc"\npipeline = "max"'),
            ('out = 4\nact = "acc"', 'out = 4\nact = "acc"\nweight_memory = "distributed"'),
            ('out = 4\nact = "acc"', 'out = 4\nact = "acc"\nfifo_depth = 7'),
            ('name = "tiny"', 'name = "tiny"\nweights_mode = "runtime"')]


def _descriptions_and_texts(tmp_path, text, tag):
    from qnnfab.boards.estimate.report import stage_owners, synthesis_component
    from qnnfab.boards.estimate.stage_cache import stage_description
    from qnnfab.boards.estimate.synth_pool import stage_verilog
    from qnnfab.plan import plan_of
    p = tmp_path / f"tiny_{tag}.toml"
    p.write_text(text)
    plan = plan_of(netconfig.load(p))
    return {stage: (stage_description(plan, stage), stage_verilog(synthesis_component(plan, stage), stage))
            for stage, _ in stage_owners(plan)}


def test_stage_description_changes_with_the_verilog(tmp_path):
    """The stage cache's key (stage_description) of every stage of the tiny network and of
    variants of it (weights, upstream formats, folding, pipeline, memory style, FIFO depth,
    run-time weights): wherever two stages' Verilog differ, their descriptions differ; the
    same config loaded twice gives the same descriptions."""
    base = _descriptions_and_texts(tmp_path, TINY, "base")
    assert base == _descriptions_and_texts(tmp_path, TINY, "again")
    assert all(d is not None for d, _ in base.values())
    differing = 0
    for k, (old, new) in enumerate(VARIANTS):
        assert old in TINY
        variant = _descriptions_and_texts(tmp_path, TINY.replace(old, new, 1), k)
        for stage in base.keys() & variant.keys():
            (d0, t0), (d1, t1) = base[stage], variant[stage]
            if t0 != t1:
                differing += 1
                assert d0 != d1, (new, stage)
        assert any(base.get(s, (None, None))[1] != t for s, (_, t) in variant.items()), new   # it changed some
    assert differing >= len(VARIANTS)
    # weights from a file whose content changes (the config's text stays the same): fc0's Verilog
    # and description change with its weights
    cfg = _tiny(tmp_path)
    npz = tmp_path / "w.npz"
    from_file = TINY.replace('weights = "random"', 'weights = "w.npz"')
    netconfig.save_weights(npz, cfg)
    before = _descriptions_and_texts(tmp_path, from_file, "file")
    cfg.layers[0].weights[0, 0] ^= 1          # bipolar weights are stored as bits
    netconfig.save_weights(npz, cfg)
    after = _descriptions_and_texts(tmp_path, from_file, "file")
    assert before["fc0"][1] != after["fc0"][1] and before["fc0"][0] != after["fc0"][0]
    assert before["fc1"] == after["fc1"]


def test_stage_description_covers_a_fork_and_the_timing_setting():
    """A fork stage's description changes with its number of outputs and with what it reads
    (its Verilog does: StreamFork(lanes, fanout)), and every stage's with whether the synthesis
    runs static timing (a result without timing must not answer a search that checks the clock)."""
    import dataclasses

    from qnnfab.boards.estimate.stage_cache import stage_description
    from qnnfab.plan import plan_of
    plan = plan_of(netconfig.load(Path(__file__).parent.parent / "configs" / "resnet_tiny.toml"))
    k, fork = next((k, s) for k, s in enumerate(plan.stages) if s.kind == "fork")
    base = stage_description(plan, fork.name)
    for change in ({"fanout": fork.fanout + 1}, {"reads": (("another", 0),)}):
        stages = list(plan.stages)
        stages[k] = dataclasses.replace(fork, **change)
        assert stage_description(dataclasses.replace(plan, stages=stages), fork.name) != base, change
    assert stage_description(plan, fork.name, timing=False) != base
    assert stage_description(plan, fork.name, timing=True) == base


def test_warm_composition_elaborates_only_what_the_cache_lacks(tmp_path, monkeypatch):
    """A second Composer over the same cache elaborates no stage and gives report's figures;
    a stage whose Yosys entry is gone, or every stage after a source change, is elaborated
    again (and its result read or synthesized anew)."""
    import qnnfab.boards.estimate.stage_cache as stage_cache
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))
    cfg = _tiny(tmp_path)
    expected = [_figures(L.resources) for L in network_report(cfg, progress=None, jobs=2).layers]
    n = len(_stages(cfg))

    def compose():
        with SynthesisPool(workers=1, progress=None) as pool:
            comp = Composer(pool)
            rep = comp.report(cfg)
            assert [_figures(L.resources) for L in rep.layers] == expected
            return comp.elaborated, pool.synthesized

    assert compose() == (n, 0)      # report's entries are read; the stages' Verilog was not known
    assert compose() == (0, 0)
    entries = sorted((tmp_path / "cache" / "yosys").glob("fc1-*.json"))
    assert len(entries) == 1
    entries[0].unlink()
    assert compose() == (1, 1)
    monkeypatch.setattr(stage_cache, "source_hash", lambda: "another version of the sources")
    assert compose() == (n, 0)
    assert compose() == (0, 0)


def test_explore_unreachable_scheduler_refused_and_out_undone(tmp_path, capsys, monkeypatch):
    """A --scheduler nobody answers at: one line naming it, exit 2, the --out folders the
    command created removed again."""
    import qnnfab.boards.estimate.synth_pool as synth_pool
    monkeypatch.setattr(synth_pool, "CONNECT_TIMEOUT", "2s")
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))   # empty: the first stage needs the cluster
    _tiny(tmp_path)
    out = tmp_path / "new" / "pareto"
    rc = main(["explore", "--config", str(tmp_path / "tiny.toml"),
               "--scheduler", "tcp://127.0.0.1:1", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--scheduler: " in err[0] and "127.0.0.1:1" in err[0], err
    assert not (tmp_path / "new").exists()


# conv0 over 5x5x2 (3x3 kernel, 8 outputs: a 72 x 18 matrix over 9 pixels), fc0 over its 3x3x8 output (4 x 72)
CONVNET = """[network]
name = "convnet"
input_shape = [5, 5, 2]
input_kind = "bipolar"
weights = "random"
seed = 3

[[layer]]
name = "conv0"
type = "conv"
out = 8
kernel = 3
act = "bipolar"

[[layer]]
name = "fc0"
type = "fc"
out = 4
act = "acc"
"""

# The balanced folding by hand: conv0 three kernel positions per word (SIMD 6 = 3 x 2 channels) at PE 2,
# 9 * (8/2) * (18/6) = 108 cycles/frame; fc0 SIMD 2, (4/1) * (72/2) = 144: bottleneck 144. The path reaches
# 144 only with conv0 at SIMD 2, PE 8 (81 cycles/frame: it takes SIMD beyond the channels only after the
# full PE), eight lanes of adders and thresholds where three kernel positions at two lanes suffice.
BALANCED = {"conv0": (6, 2), "fc0": (2, 1)}
BALANCED_CYCLES = max(9 * (8 // 2) * (18 // 6), (4 // 1) * (72 // 2))


@pytest.fixture(scope="module")
def convnet_cache(tmp_path_factory):
    """One Yosys cache for the tests of the conv network (they measure many of the same stages)."""
    return tmp_path_factory.mktemp("convnet_cache")


def _convnet(tmp_path, folding=None):
    p = tmp_path / "convnet.toml"
    p.write_text(CONVNET)
    cfg = netconfig.load(p)
    for L in cfg.layers:
        if folding:
            L.simd, L.pe = folding[L.name]
    return cfg


def test_foldings_include_kernel_positions_at_every_pe(tmp_path):
    from qnnfab.boards.estimate.measured import foldings
    L0, L1 = _convnet(tmp_path).layers
    # conv0: SIMD divides the 2 channels or is m x 2 with m dividing 9; PE divides 8
    assert sorted(foldings(L0)) == sorted((s, p) for s in (1, 2, 6, 18) for p in (1, 2, 4, 8))
    assert (6, 2) in foldings(L0) and (6, 2) not in folding_steps(L0)     # off the path
    # fc0: SIMD divides 72 and the 8 channels of the flattened map; PE divides 4
    assert sorted(foldings(L1)) == sorted((s, p) for s in (1, 2, 4, 8) for p in (1, 2, 4))


def test_rebalancing_reaches_the_balanced_folding_the_path_misses(tmp_path, monkeypatch, convnet_cache):
    """Budget: the LUTs of the hand-balanced folding (BALANCED, weight memory and pipeline left at
    their defaults) by ``report``. Without rebalancing the search cannot reach its 144 cycles/frame
    (the path gets there only with conv0 at PE 8, measured over); with it, the search reaches at least
    that speed, and its choice fits by ``report``."""
    monkeypatch.setenv("QNNFAB_CACHE", str(convnet_cache))
    balanced = network_report(_convnet(tmp_path, BALANCED), progress=None, jobs=2)
    assert balanced.bottleneck_cycles == BALANCED_CYCLES == 144
    budget = Budget(lut=(_luts(balanced.total) + 0.5) / XC7Z020.lut)     # half a LUT: no float rounding
    greedy, cfg = _convnet(tmp_path), _convnet(tmp_path)
    with SynthesisPool(workers=2, progress=None) as pool:
        walk = measured_fold(greedy, XC7Z020, pool, budget=budget, prune=100.0, lookahead=2, progress=None,
                             rebalance=False)
        res = measured_fold(cfg, XC7Z020, pool, budget=budget, prune=100.0, lookahead=2, progress=None)
    assert walk.report.bottleneck_cycles > BALANCED_CYCLES          # the walk alone falls short
    assert res.report.bottleneck_cycles <= BALANCED_CYCLES < walk.report.bottleneck_cycles
    assert max(cfg.layer_cycles(L) for L in cfg.layers) == res.report.bottleneck_cycles
    chosen = network_report(cfg, progress=None, jobs=2)
    assert _figures(chosen.total) == _figures(res.report.total) and not budget.over(chosen.total, XC7Z020)
    assert res.balanced.target is not None and res.report.bottleneck_cycles <= res.balanced.target
    # the next lower target was measured over the budget: that is why it stopped
    assert res.balanced.tried[-1][3] and "rebalanced for" in res.reason
    worst = res.report.bottleneck_cycles
    for L in cfg.layers:
        note = res.notes[L.name]
        assert note.startswith("bottleneck; rebalanced for") if cfg.layer_cycles(L) == worst else \
            "cheapest measured setting within" in note, note


def test_measured_fps_target_met_by_rebalancing_and_out_of_reach_in_one_line(tmp_path, monkeypatch, capfd,
                                                                            convnet_cache):
    """``fold --fps --measured`` for the balanced folding's speed (1e8 / 144 frames/s) under its LUTs:
    met (exit 0, every layer's reason written), out of reach with ``--no-rebalance``; fully parallel under the same budget: out of reach,
    exit 2 in one line, no config written."""
    monkeypatch.setenv("QNNFAB_CACHE", str(convnet_cache))
    balanced = network_report(_convnet(tmp_path, BALANCED), progress=None, jobs=2)
    pct = 100 * (_luts(balanced.total) + 0.5) / XC7Z020.lut       # half a LUT: no float rounding
    out = tmp_path / "fps.toml"
    args = ["fold", "--config", str(tmp_path / "convnet.toml"), "--measured", "--workers", "2",
            "--lut", repr(pct), "--prune", "10000"]
    assert main([*args, "--fps", str(1e8 / BALANCED_CYCLES), "--out", str(out)]) == 0
    cfg = netconfig.load(out)
    assert max(cfg.layer_cycles(L) for L in cfg.layers) <= BALANCED_CYCLES
    assert not Budget(lut=pct / 100).over(network_report(cfg, progress=None, jobs=2).total, XC7Z020)
    text = out.read_text()
    for L in cfg.layers:
        assert any(x.startswith(f"#   {L.name}: ") and "meeting the target" in x for x in text.splitlines())
    capfd.readouterr()
    walk = tmp_path / "walk.toml"       # the walk alone reaches 144 only with conv0 at PE 8, over the budget
    assert main([*args, "--no-rebalance", "--fps", str(1e8 / BALANCED_CYCLES), "--out", str(walk)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of reach" in err[0] and "rebalanced" not in err[0], err
    assert not walk.exists()
    far = tmp_path / "far.toml"
    assert main([*args, "--fps", str(1e8 / 9), "--out", str(far)]) == 2      # 9: every layer fully parallel
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of reach" in err[0] and "--fps" in err[0], err
    assert not far.exists()


def _balanced_budget(tmp_path):
    """The LUTs of the hand-balanced folding (BALANCED) by ``report``, half a LUT above."""
    balanced = network_report(_convnet(tmp_path, BALANCED), progress=None, jobs=2)
    return Budget(lut=(_luts(balanced.total) + 0.5) / XC7Z020.lut)


def test_unreachable_fps_rebalancing_synthesizes_nothing_beyond_the_walk(tmp_path, monkeypatch, convnet_cache):
    """A target every layer can reach only (nearly) fully parallel, 25 cycles/frame (conv0 reads its 5x5
    input a pixel per cycle), under the balanced folding's LUTs, the default ``prune``: the cost model puts the rebalanced design far beyond the budget, so the rebalancing
    synthesizes nothing. The walk alone fills the cache, then the search with the rebalancing: no
    synthesis at all, out of reach (ConfigError), the rebalancing's reason names the cost model."""
    from qnnfab.errors import ConfigError
    monkeypatch.setenv("QNNFAB_CACHE", str(convnet_cache))
    budget = _balanced_budget(tmp_path)
    for rebalance in (False, True):
        lines = []
        with SynthesisPool(workers=2, progress=None) as pool:
            with pytest.raises(ConfigError, match="out of reach") as err:
                measured_fold(_convnet(tmp_path), XC7Z020, pool, budget=budget, target_fps=1e8 / 25,
                              lookahead=2, progress=lines.append, rebalance=rebalance)
            synthesized = pool.synthesized
    assert synthesized == 0, lines
    assert "cost model puts it more than 15% beyond the budget" in str(err.value), err.value
    assert any(line.startswith("rebalanced for 25 cycles/frame: not measured") for line in lines), lines


def _while_rebalancing(monkeypatch):
    """A list that is non-empty exactly while the measured search's rebalancing step runs
    (``measured._rebalance`` wrapped for the test)."""
    import qnnfab.boards.estimate.measured as measured
    flag, real = [], measured._rebalance

    def flagged(*args, **kw):
        flag.append(True)
        try:
            return real(*args, **kw)
        finally:
            flag.clear()

    monkeypatch.setattr(measured, "_rebalance", flagged)
    return flag


def test_synthesis_failing_while_rebalancing_keeps_the_walks_answer(tmp_path, monkeypatch):
    """Every stage Yosys is given during the rebalancing fails (its Verilog broken on the way): the
    failed settings are left out, a failed design does not fit, and the search ends with a design
    (the walk's or a rebalanced one from stages already measured) at least as fast as the walk's
    that fits by ``report``; no SynthesisFailed."""
    import qnnfab.boards.estimate.measured as measured
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))
    budget = _balanced_budget(tmp_path)
    walk_cfg, cfg = _convnet(tmp_path), _convnet(tmp_path)
    rebalancing, broken = _while_rebalancing(monkeypatch), []
    real_verilog = measured.stage_verilog

    def breaking(comp, top):
        text = real_verilog(comp, top)
        if rebalancing:
            broken.append(top)
            return text.replace("endmodule", "endmodule garbage(", 1)
        return text

    monkeypatch.setattr(measured, "stage_verilog", breaking)
    with SynthesisPool(workers=2, progress=None) as pool:
        walk = measured_fold(walk_cfg, XC7Z020, pool, budget=budget, prune=100.0, lookahead=2, progress=None,
                             rebalance=False)
        res = measured_fold(cfg, XC7Z020, pool, budget=budget, prune=100.0, lookahead=2, progress=None)
    assert broken, "the rebalancing asked for no new stage: the test checks nothing"
    assert res.report.bottleneck_cycles <= walk.report.bottleneck_cycles
    monkeypatch.setattr(measured, "stage_verilog", real_verilog)
    chosen = network_report(cfg, progress=None, jobs=2)
    assert _figures(chosen.total) == _figures(res.report.total) and not budget.over(chosen.total, XC7Z020)


def test_rebalancing_pipelines_its_own_copy_of_the_walks_layers(tmp_path, monkeypatch, convnet_cache):
    """Every layer over the logic-delay target while rebalancing (``_over_timing`` made to say so
    there only): the walk's set of pipelined layers is left as it was, the outcome's set holds only
    layers its design has at pipeline = "max", and the notes claim pipeline = "max" exactly for the
    layers the chosen design has at pipeline = "max"."""
    import qnnfab.boards.estimate.measured as measured
    from qnnfab.boards.estimate.measured import Composer
    monkeypatch.setenv("QNNFAB_CACHE", str(convnet_cache))
    budget = _balanced_budget(tmp_path)
    rebalancing = _while_rebalancing(monkeypatch)
    real_over = measured._over_timing

    def over_while_rebalancing(rep, b):
        return [L.name for L in rep.layers if L.type in ("fc", "conv")] if rebalancing else real_over(rep, b)

    monkeypatch.setattr(measured, "_over_timing", over_while_rebalancing)
    cfg = _convnet(tmp_path)
    with SynthesisPool(workers=2, progress=None) as pool:
        walk = measured_fold(cfg, XC7Z020, pool, budget=budget, prune=100.0, lookahead=2, progress=None,
                             rebalance=False)
        points, _ = proposals(_convnet(tmp_path), XC7Z020, budget, prune=100.0)
        pipelined = set()
        out = measured._rebalance(cfg, XC7Z020, Composer(pool, 100e6), budget, settings_of(cfg), walk.report,
                                  points, None, pipelined, None, 100.0)
        res = measured_fold(_convnet(tmp_path), XC7Z020, pool, budget=budget, prune=100.0, lookahead=2,
                            progress=None)
    assert pipelined == set()
    assert out.tried, "the rebalancing measured nothing: the test checks nothing"
    if out.settings is not None:
        assert out.pipelined and all(out.settings[n]["pipeline"] == "max" for n in out.pipelined)
    else:
        assert out.pipelined == set()
    for L in res.cfg.layers:
        assert ('pipeline = "max"' in res.notes[L.name]) == (L.pipeline == "max"), (L.name, res.notes[L.name])


# conv0's and fc0's weights in block RAM take the fewest LUTs at 144 cycles/frame (BALANCED_CYCLES), a
# RAMB18 (half a BRAM36) a PE each: a budget of one BRAM36 (and a quarter: no float rounding) leaves
# room for one layer's only, so the rebalancing's price-0 design does not fit and a priced one must.
# LUT: room for a rebalanced design without block RAM (about 260 to 280 measured).
BRAM_BUDGET = 1.25
BRAM_TEST_LUT = 400


def _bram_budget(lut=BRAM_TEST_LUT):
    """``lut`` LUTs and BRAM_BUDGET BRAM36."""
    return Budget(lut=lut / XC7Z020.lut, bram36=BRAM_BUDGET / XC7Z020.bram36)


def _model_over(tmp_path, budget, prune, price):
    """What the cost model's rebalanced choice for BALANCED_CYCLES, a BRAM36 priced ``price`` LUTs
    (Rebalancer.model_choice), exceeds of ``budget`` raised by ``prune``: the phrases' first words."""
    from qnnfab.boards.estimate.measured import Rebalancer, _pruned
    cfg = _convnet(tmp_path)
    model = Rebalancer(cfg, None).model_choice(settings_of(cfg), BALANCED_CYCLES, price)
    return [o.split()[0] for o in _pruned(budget, prune).over(model, XC7Z020)], model


@pytest.mark.parametrize("prune", [100.0, 0.5])
def test_fps_rebalancing_prices_block_rams_until_the_design_fits(tmp_path, monkeypatch, convnet_cache, prune):
    """``--fps`` for 144 cycles/frame under BRAM_TEST_LUT LUTs and BRAM_BUDGET BRAM36: the rebalanced
    design of fewest LUTs (a BRAM36 priced 0) measures over on BRAM36 alone; a higher price moves
    weights out of block RAM and that design, measured to fit (by ``report``), is the search's answer
    (fewer LUTs than the walk's point for 144). With ``prune`` 0.5 the cost model puts the price-0
    choice beyond the pruned budget on BRAM36 (a priced choice within it): the target is measured all
    the same, not skipped."""
    monkeypatch.setenv("QNNFAB_CACHE", str(convnet_cache))
    budget = _bram_budget()
    if prune < 100:
        assert _model_over(tmp_path, budget, prune, 0)[0] == ["BRAM36"]
        assert any(not _model_over(tmp_path, budget, prune, p)[0] for p in BRAM_PRICES[1:])
    cfg, lines = _convnet(tmp_path), []
    with SynthesisPool(workers=2, progress=None) as pool:
        res = measured_fold(cfg, XC7Z020, pool, budget=budget, target_fps=1e8 / BALANCED_CYCLES, prune=prune,
                            lookahead=2, progress=lines.append)
    assert res.balanced.settings == settings_of(cfg), res.reason          # the rebalanced design is the answer
    chosen = network_report(cfg, progress=None, jobs=2)
    assert _figures(chosen.total) == _figures(res.report.total)
    assert chosen.bottleneck_cycles <= BALANCED_CYCLES
    assert chosen.total.bram36 <= BRAM_BUDGET and _luts(chosen.total) <= budget.lut * XC7Z020.lut
    # price 0's design was measured, over on BRAM36 only; the answer is the last design measured
    (t0, _, _, over0), *_, (t1, _, lut1, over1) = res.balanced.tried
    assert t0 == t1 == BALANCED_CYCLES and len(res.balanced.tried) >= 2
    assert over0 and all(o.startswith("BRAM36") for o in over0), over0
    assert not over1 and lut1 == _luts(chosen.total)
    assert any("(a BRAM36 priced" in line for line in lines), lines


def test_fps_rebalancing_not_measured_when_every_bram_price_is_beyond_the_budget(tmp_path, monkeypatch,
                                                                               convnet_cache):
    """The cost model's rebalanced choice for 144 cycles/frame over the pruned budget at every BRAM36
    price: on BRAM36 at price 0, on LUT at every other (the LUT budget between the two choices'
    estimates). The walk alone fills the cache; the search with the rebalancing then synthesizes
    nothing and the target is out of reach, the rebalancing's reason naming the cost model."""
    from qnnfab.errors import ConfigError
    monkeypatch.setenv("QNNFAB_CACHE", str(convnet_cache))
    prune = 0.15
    lut0 = _luts(_model_over(tmp_path, Budget(), prune, 0)[1])
    lut64 = _luts(_model_over(tmp_path, Budget(), prune, 64)[1])
    assert lut0 < lut64
    budget = _bram_budget(lut=(lut0 + lut64) / 2 / (1 + prune))
    assert _model_over(tmp_path, budget, prune, 0)[0] == ["BRAM36"]
    assert all(_model_over(tmp_path, budget, prune, p)[0] == ["LUT"] for p in BRAM_PRICES[1:])
    for rebalance in (False, True):
        lines = []
        with SynthesisPool(workers=2, progress=None) as pool:
            with pytest.raises(ConfigError, match="out of reach") as err:
                measured_fold(_convnet(tmp_path), XC7Z020, pool, budget=budget, target_fps=1e8 / BALANCED_CYCLES,
                              prune=prune, lookahead=2, progress=lines.append, rebalance=rebalance)
            synthesized = pool.synthesized
    assert synthesized == 0, lines
    assert "cost model puts it more than 15% beyond the budget" in str(err.value), err.value
    assert any(line.startswith(f"rebalanced for {BALANCED_CYCLES} cycles/frame: not measured") for line in lines)


def test_rebalancing_pipelines_a_layer_over_the_clock_target(tmp_path, monkeypatch):
    """``--meet-clock`` while rebalancing, on real logic delays: the tiny network for 32 cycles/frame
    under a 2.5 ns logic-delay target (the walk's set of pipelined layers empty). A layer of the
    rebalanced design is over the target at pipeline 0 (by ``report``) and the design returned has it
    at pipeline = "max", within the target; the outcome's set is not empty and names only layers at
    pipeline = "max", and the walk's set is left empty."""
    import qnnfab.boards.estimate.measured as measured
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))
    budget = Budget(lut=1.0, logic_ps=2500)
    cfg = _tiny(tmp_path)
    points, _ = proposals(_tiny(tmp_path), XC7Z020, budget, prune=100.0)
    walk_pipelined = set()
    with SynthesisPool(workers=2, progress=None) as pool:
        comp = Composer(pool)
        apply(cfg, points[0].settings)
        start = comp.report(cfg)
        assert start.bottleneck_cycles > 32
        out = measured._rebalance(cfg, XC7Z020, comp, budget, settings_of(cfg), start, points, 32,
                                  walk_pipelined, None, 100.0)
    assert walk_pipelined == set()
    assert out.settings is not None and out.pipelined, out.reason
    assert {n for n, s in out.settings.items() if s.get("pipeline") == "max"} >= out.pipelined
    apply(cfg, out.settings)
    chosen = network_report(cfg, progress=None, jobs=2)
    assert _figures(chosen.total) == _figures(out.report.total)
    assert chosen.bottleneck_cycles <= 32 and not budget.over(chosen.total, XC7Z020)
    for name in out.pipelined:       # each pipelined layer: over the target at pipeline 0
        unpipelined = _tiny(tmp_path)
        apply(unpipelined, out.settings)
        next(L for L in unpipelined.layers if L.name == name).pipeline = 0
        rep = network_report(unpipelined, progress=None, jobs=2)
        assert next(L for L in rep.layers if L.name == name).resources.logic_ps > budget.logic_ps, name

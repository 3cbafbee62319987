"""A shared module's instances share their C++ in a Verilator model (sim.build.shared_module_config):
the code Verilator writes for the PEs of an MVTU does not grow with the number of PEs."""

import re
from pathlib import Path

import numpy as np

from qnnfab.rtl.mvtu import MVTU
from qnnfab.sim.build import (COMPILED_VERILATOR_ARGS, SHARED_CODE_ARGS, SHARED_CODE_MIN_BYTES, run_steps,
                              setup_verilator, shared_module_config, to_verilog)

ROOT = Path(__file__).resolve().parent.parent


def _mvtu(pe):
    rng = np.random.default_rng(5)
    w = rng.integers(0, 2, (8, 64))
    return MVTU(w, np.sort(rng.integers(0, 65, (8, 1)), axis=1), pe=pe, simd=32, pipeline="max")


def _shared_modules(text):
    return re.findall(r"^module (top__shared_[0-9a-f]{16}) ?\(", text, re.M)


def test_the_config_makes_each_shared_modules_inputs_but_the_clock_public():
    text = to_verilog(_mvtu(4), "top")
    (shared,) = _shared_modules(text)
    config = shared_module_config(text, min_bytes=0)
    assert config.splitlines()[0] == "`verilator_config"
    public = re.findall(r'^public -module "(\S+)" -var "(\S+)"$', config, re.M)
    assert len(public) == len(config.splitlines()) - 1
    # the DotProductUnit's inputs (w, x, enable) and its domain's reset; its clock stays as it is
    assert sorted(public) == sorted((shared, v) for v in ("w", "x", "enable", "rst"))
    # a design without shared modules needs no configuration
    assert shared_module_config(text.replace("__shared", "_own"), min_bytes=0) == ""


def test_only_modules_whose_copies_would_add_min_bytes_of_verilog_are_shared():
    text = to_verilog(_mvtu(4), "top")
    (shared,) = _shared_modules(text)
    module = re.search(rf"^module {shared} .*?^endmodule\n", text, re.M | re.S).group(0)
    copies = 3 * len(module)           # 4 instances: the definition and 3 copies
    assert shared_module_config(text, min_bytes=copies).count("public") == 4
    assert shared_module_config(text, min_bytes=copies + 1) == ""
    # the default leaves a small MVTU's PEs as Verilator specialises them
    assert copies < SHARED_CODE_MIN_BYTES and shared_module_config(text) == ""


def _pe_class_cpp_bytes(tmp_path, pe, config=True):
    """Bytes of per-cycle C++ (not ``__Slow``) Verilator writes for the shared PE class of an MVTU of ``pe`` PEs."""
    setup_verilator()
    d = tmp_path / f"pe{pe}-{config}"
    d.mkdir()
    text = to_verilog(_mvtu(pe), "top")
    (d / "top.v").write_text(text)
    sources = ["top.v"]
    if config:
        (d / "shared.vlt").write_text(shared_module_config(text, min_bytes=0))
        sources = [*SHARED_CODE_ARGS, "shared.vlt", *sources]
    args = [a for a in COMPILED_VERILATOR_ARGS if a != "--exe"]
    run_steps([["verilator", *args, "--top-module", "top", "--Mdir", "obj", *sources]], d, d / "log", "verilator")
    files = [f for f in (d / "obj").glob("Vtop_top*shared_*.cpp") if not f.name.endswith("__Slow.cpp")]
    assert files
    return sum(f.stat().st_size for f in files)


def test_the_pes_code_is_written_once_not_per_instance(tmp_path):
    two, eight = _pe_class_cpp_bytes(tmp_path, 2), _pe_class_cpp_bytes(tmp_path, 8)
    # the same PE logic: 4x the instances, at most a per-instance copy of the inputs more
    assert eight < 1.5 * two, (two, eight)
    # without the configuration Verilator writes each instance's logic again
    assert _pe_class_cpp_bytes(tmp_path, 8, config=False) > 3 * eight


def test_a_network_with_shared_pe_code_runs_as_golden_and_as_specialised_code(tmp_path, monkeypatch):
    """lfc_small with every shared module's code shared (threshold 0): the same run, word for word
    and cycle for cycle, as the default build (its PEs specialised per instance), and golden."""
    import qnnfab.sim.build as build
    from qnnfab import netconfig
    from qnnfab.sim.compiled import NetworkBench, check_network

    cfg = netconfig.load(ROOT / "configs" / "lfc_small.toml")
    x = cfg.random_inputs(6, 3)
    kw = {"seed": 2, "valid_prob": 0.7, "ready_prob": 0.6}
    specialised = NetworkBench(cfg, per_stage=True).run(x, **kw)
    monkeypatch.setattr(build, "SHARED_CODE_MIN_BYTES", 0)
    bench = NetworkBench(cfg, per_stage=True)
    shared = bench.run(x, **kw)
    configs = [(m.directory / "shared.vlt").read_text() for m in bench.build.stage_models
               if (m.directory / "shared.vlt").exists()]
    # every layer's stage has a shared PE module (lfc_small: 4 fc layers)
    assert len(configs) == len(bench._stages) == 4 and all('-var "w"' in c for c in configs)
    assert shared.cycles == specialised.cycles
    np.testing.assert_array_equal(shared.words, specialised.words)
    np.testing.assert_array_equal(shared.word_cycles, specialised.word_cycles)
    check_network(bench, x, shared)

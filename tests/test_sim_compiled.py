"""The compiled simulation engine (qnnfab.sim.compiled): packing, rule checks, broken designs,
agreement with the cocotb engine, and the `sim --config` / `verify` commands."""

from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from qnnfab import netconfig
from qnnfab.cli import main
from qnnfab.sim import registry
from qnnfab.sim.compiled import NetworkBench, SimulationMismatch, check_network, steady_cycles_per_frame, verify_network
from qnnfab.golden.network import network_of

ROOT = Path(__file__).resolve().parent.parent
LFC_SMALL = ROOT / "configs" / "lfc_small.toml"
CNV_SMALL = ROOT / "configs" / "cnv_small.toml"


@pytest.fixture(scope="module")
def lfc():
    return netconfig.load(LFC_SMALL)


class _Tamper(wiring.Component):
    """The accelerator with one output port rewired by ``tamper(inner, port_name, value)``."""

    def __init__(self, inner, tamper):
        self.inner, self.tamper = inner, tamper
        super().__init__(inner.signature)

    def __getattr__(self, name):  # derived formats (in_width, out_words, ...) of the accelerator
        if name in ("inner", "tamper") or name in self.inner.signature.members:
            raise AttributeError(name)
        return getattr(self.inner, name)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        for (path, member, mine), (_, _, theirs) in zip(self.signature.flatten(self),
                                                       self.inner.signature.flatten(self.inner)):
            if member.flow == wiring.In:
                m.d.comb += theirs.eq(mine)
            else:
                m.d.comb += mine.eq(self.tamper(self.inner, "_".join(map(str, path)), theirs))
        return m


def _bench_with(cfg, tamper):
    from qnnfab.rtl.axis_accelerator import AxiStreamAccelerator
    return NetworkBench(cfg, top=_Tamper(AxiStreamAccelerator(cfg), tamper))


def test_a_design_with_a_wrong_score_is_named_by_frame_and_word(lfc):
    bench = NetworkBench(lfc)
    ports = bench.ports
    x = lfc.random_inputs(30, 7)

    def wrong_bit0_of_frame_words(inner, name, value):
        return value ^ 1 if name == ports.out_data else value

    broken = _bench_with(lfc, wrong_bit0_of_frame_words)
    run = broken.run(x)
    with pytest.raises(SimulationMismatch, match=r"^frame 0, word 0 \(output 0\): expected \[.*\], got \[.*\]$"):
        check_network(broken, x, run)
    res = verify_network(lfc, x, stalled_frames=0)
    assert res.identical and res.frames_identical == 30   # the same frames pass on the real design


def test_valid_that_depends_on_ready_is_caught(lfc):
    ports = NetworkBench(lfc).ports

    def valid_only_when_ready(inner, name, value):
        return value & getattr(inner, ports.out_ready) if name == ports.out_valid else value

    broken = _bench_with(lfc, valid_only_when_ready)
    x = lfc.random_inputs(5, 1)
    with pytest.raises(SimulationMismatch, match="output valid depends on ready"):
        broken.run(x, valid_prob=0.7, ready_prob=0.5)


def test_a_misplaced_last_is_caught(lfc):
    ports = NetworkBench(lfc).ports

    def last_never(inner, name, value):
        return 0 if name == ports.out_last else value

    with pytest.raises(SimulationMismatch, match="last is not on the last word"):
        _bench_with(lfc, last_never).run(lfc.random_inputs(3, 1))


@pytest.mark.cocotb
@pytest.mark.parametrize("config", [LFC_SMALL, CNV_SMALL], ids=["lfc_small", "cnv_small"])
def test_compiled_and_cocotb_engines_agree_on_the_same_frames(config, tmp_path):
    cfg = netconfig.load(config)
    x = cfg.random_inputs(24, 11)
    np.savez(tmp_path / "frames.npz", x=x)
    cocotb_res = registry.run_case("network", {"config": str(config), "frames": len(x),
                                               "inputs": str(tmp_path / "frames.npz")}, seed=3)
    bench = NetworkBench(cfg)
    run = bench.run(x)
    golden = check_network(bench, x, run)       # every word equal to golden, as the cocotb bench checked
    assert run.labels.tolist() == cocotb_res.metrics["labels"] == np.argmax(golden, 1).tolist()
    assert steady_cycles_per_frame(run, bench.format.out_words) == cocotb_res.metrics["cycles_per_frame"]


def test_stalled_run_keeps_every_word(lfc):
    bench = NetworkBench(lfc)
    x = lfc.random_inputs(40, 2)
    free = bench.run(x)
    stalled = bench.run(x, seed=9, valid_prob=0.05, ready_prob=0.2)
    check_network(bench, x, stalled)
    assert stalled.cycles > 2 * free.cycles       # the stalls really happened
    np.testing.assert_array_equal(stalled.words, free.words)


def test_cli_sim_prints_the_simulation_line(capsys):
    assert main(["sim", "--config", str(LFC_SMALL), "--frames", "20", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "simulation: 20 frames, " in out and "cycles/s (compiled)" in out
    assert "steady state: 32.0 cycles/frame (model 32" in out
    assert "20 of 20 frames identical" in out


def test_cli_verify_reports_accuracy_and_agreement(lfc, tmp_path, capsys):
    x = lfc.random_inputs(16, 5)
    golden = network_of(lfc).forward(x).argmax(1)
    y = golden.copy()
    y[:4] = (y[:4] + 1) % 10      # four wrong labels: 75% accuracy, 100% agreement
    np.savez(tmp_path / "d.npz", x=x.reshape(16, -1), y=y)
    assert main(["verify", "--config", str(LFC_SMALL), "--data", str(tmp_path / "d.npz")]) == 0
    out = capsys.readouterr().out
    assert "accuracy: hardware 75.00%, golden 75.00% on 16 labelled frames" in out
    assert "labels agree on 100.00%" in out


@pytest.mark.parametrize("arrays,message", [
    ({"y": np.zeros(3)}, "no frames"),
    ({"x": np.zeros((3, 64), np.float32)}, "must hold integer input codes"),
    ({"x": np.zeros((3, 63), np.int64)}, "frames of shape (63,)"),
    ({"x": np.full((3, 64), 2)}, "values span [2, 2]"),
    ({"x": np.zeros((3, 64), np.int64), "y": np.zeros(2)}, "has 2 labels for 3 frames"),
])
def test_cli_verify_rejects_bad_data_in_one_line(arrays, message, tmp_path, capsys):
    np.savez(tmp_path / "d.npz", **arrays)
    assert main(["verify", "--config", str(LFC_SMALL), "--data", str(tmp_path / "d.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_sim_rejects_zero_frames(capsys):
    assert main(["sim", "--config", str(LFC_SMALL), "--frames", "0"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_testbench_template_is_filled_in_whole():
    from qnnfab.sim.compiled import StreamPorts, testbench_source
    ports = StreamPorts("clk", "rst", 1, "i_data", "i_valid", "i_ready", 72, "o_data", "o_valid", "o_ready", 16,
                        "o_last", None, None)
    text = testbench_source(ports, "dut", 3)
    assert "@" not in text                                   # every placeholder filled
    assert '#include "Vdut.h"' in text and "top->rst = 1;" in text and "top->o_last" in text
    # 72 bits are more than Verilator's 64-bit ports: the input is an array of 32-bit words
    for line in ("#define IN_WIDE 1", "#define OUT_WIDE 0", "#define HAS_IN_LAST 0", "#define HAS_OUT_LAST 1",
                 "#define HAS_LABEL 0", "static const int in_bytes = 9;", "static const int out_bytes = 2;",
                 "static const uint64_t in_words_per_frame = 3;"):
        assert line in text, line


def test_cli_verify_out_writes_the_per_frame_arrays_of_hardware_and_golden(lfc, tmp_path, capsys):
    x = lfc.random_inputs(12, 6)
    golden = network_of(lfc).forward(x).reshape(12, -1)
    y = np.arange(12) % 10
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = tmp_path / "res.npz"
    args = ["verify", "--config", str(LFC_SMALL), "--data", str(tmp_path / "d.npz"), "--out", str(out)]
    assert main(args) == 0
    with np.load(out) as f:
        assert sorted(f.files) == ["golden_labels", "golden_scores", "label_rule", "labels", "scores", "y"]
        np.testing.assert_array_equal(f["golden_scores"], golden)
        np.testing.assert_array_equal(f["scores"], golden)
        np.testing.assert_array_equal(f["golden_labels"], golden.argmax(1))
        np.testing.assert_array_equal(f["labels"], golden.argmax(1))
        np.testing.assert_array_equal(f["y"], y)
        assert str(f["label_rule"]) == "argmax"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temporary left
    capsys.readouterr()
    # an existing file is refused before any simulation, unless --force
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "exists" in err and "--force" in err
    out.write_bytes(b"old")
    assert main(args + ["--force"]) == 0
    with np.load(out) as f:
        np.testing.assert_array_equal(f["scores"], golden)


@pytest.mark.parametrize("extra,message", [
    (["--out", "res.txt"], "does not end in .npz"),
    (["--out", "missing/res.npz"], "does not exist"),
    (["--force"], "no --out"),
])
def test_cli_verify_out_is_checked_before_the_data(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "--config", str(LFC_SMALL), "--data", "absent.npz"] + extra) == 2
    assert message in capsys.readouterr().err


def test_highest_set_bit_label_port_matches_the_rule_on_the_compiled_engine(tmp_path):
    # one bit per class, several set per frame: the highest set bit, not the arg-max (the lowest)
    text = LFC_SMALL.read_text().replace('act = "acc"', 'act = "bipolar"').replace(
        "[network]\n", '[network]\nlabel = "highest_set_bit"\n')
    cfg = netconfig.loads(text, LFC_SMALL.parent)
    x = cfg.random_inputs(40, 8)
    res = verify_network(cfg, x, stalled_frames=8)
    bits = network_of(cfg).forward(x).reshape(40, -1)
    want = [max((k for k, b in enumerate(row) if b), default=0) for row in bits]
    assert res.identical
    assert res.labels.tolist() == res.golden_labels.tolist() == want
    assert (res.labels != bits.argmax(1)).any()       # the two rules really differ on these frames

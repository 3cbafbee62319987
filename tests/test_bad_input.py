"""Bad input on the command line: exit code 2 and one line naming what is wrong and the
fix (or a warning where the input is odd but usable), before any long work, and nothing
written outside the folders the user named.

Every case runs ``qnnfab.cli.main`` in-process inside an empty working folder with its
own empty build cache; after a failing case both must still be empty (so no Yosys run,
no Verilator build and no stray file happened), and the named output must not exist.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.cache import atomic_write_text, read_entry
from qnnfab.cli import main

ROOT = Path(__file__).resolve().parent.parent
LFC_SMALL = ROOT / "configs" / "lfc_small.toml"

CONV = """[network]
name = "tiny-conv"
input_shape = [6, 6, 2]
input_kind = "{kind}"
{bits}
weights = "random"

[[layer]]
name = "conv0"
type = "conv"
out = 4
kernel = 3
pe = 2
simd = 2
{conv}

[[layer]]
name = "fc_out"
type = "fc"
out = 2
act = "acc"
simd = 4
"""


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """An empty working folder and an empty build cache for one case."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))
    return work


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def _fails(argv, capsys, *words):
    """Run ``qnnfab argv`` in the current folder; check exit 2, one line naming ``words``
    and a fix, and that nothing was written there or in the build cache."""
    work = Path.cwd()
    before = _tree(work)
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("qnnfab: error:") and "(fix:" in line, line
    assert "Traceback" not in out + err
    for w in words:
        assert w in line, (w, line)
    assert "epoch" not in out and "synthesiz" not in out, out   # before any long work
    assert _tree(work) == before, "files written"
    cache = Path(os.environ["QNNFAB_CACHE"])
    assert not cache.exists() or not any(cache.rglob("*")), _tree(cache)
    return line


def _config(text, name="net.toml"):
    p = Path.cwd() / name
    p.write_text(text)
    return p


# --------------------------------------------------------------------------- output paths

def test_fold_out_is_an_existing_folder(cwd, capsys):
    (cwd / "dir").mkdir()
    _fails(["fold", "--config", LFC_SMALL, "--fastest", "--out", "dir"], capsys, "--out", "dir")


@pytest.mark.parametrize("out, words", [
    ("/nonexistent/x.toml", ["--out", "/nonexistent", "does not exist"]),
    ("x.txt", ["--out", ".toml"]),
    ("x", ["--out", ".toml"]),
    ("/proc/x.toml", ["--out", "cannot write"]),
])
def test_fold_out_file_is_checked_first(cwd, capsys, out, words):
    _fails(["fold", "--config", LFC_SMALL, "--fastest", "--out", out], capsys, *words)


@pytest.mark.parametrize("png, words", [
    ("/nonexistent/x.png", ["--png", "does not exist"]),
    ("x.jpgg", ["--png", ".png"]),
    ("DIR", ["--png", ".png"]),
    ("DIR.png", ["--png", "is a directory"]),
    ("/proc/x.png", ["--png", "cannot write"]),
])
def test_report_png_is_checked_before_yosys(cwd, capsys, png, words):
    (cwd / "DIR").mkdir()
    (cwd / "DIR.png").mkdir()
    _fails(["report", "--config", LFC_SMALL, "--png", png], capsys, *words)


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_text("x"), ["--out", "not a folder"]),
    (lambda p: None, ["--out", "cannot create"]),
])
def test_generate_out_is_checked_before_yosys(cwd, capsys, make, words):
    target = cwd / "gen" if "not a folder" in words else Path("/proc/qnnfab-gen")
    make(target)
    _fails(["generate", "--config", LFC_SMALL, "--out", target], capsys, *words)
    assert not Path("/proc/qnnfab-gen").exists()


def test_generate_out_below_a_file(cwd, capsys):
    (cwd / "file").write_text("x")
    _fails(["generate", "--config", LFC_SMALL, "--out", "file/sub"], capsys, "--out", "not a folder")


@pytest.mark.parametrize("out", ["/proc/train", "file", "file/sub"])
def test_train_out_is_checked_before_the_first_epoch(cwd, capsys, out):
    (cwd / "file").write_text("x")
    _fails(["train", "--schemes", "ste", "--epochs", "1", "--hidden", "8", "--out", out], capsys, "--out")


def test_demo_out_is_checked_first(cwd, capsys):
    (cwd / "file").write_text("x")
    _fails(["demo", "--epochs", "1", "--out", "file"], capsys, "--out", "not a folder")


# --------------------------------------------------------------------------- stale output

def test_generate_refuses_a_non_empty_folder_without_force(cwd, capsys):
    out = cwd / "gen"
    out.mkdir()
    (out / "report.txt").write_text("network lfc-small\n")
    _fails(["generate", "--no-report", "--config", LFC_SMALL, "--out", out], capsys, "not empty", "--force")
    # --force touches only folders that qnnfab generate wrote
    _fails(["generate", "--no-report", "--force", "--config", LFC_SMALL, "--out", out], capsys,
           "not written by qnnfab generate")
    assert (out / "report.txt").read_text() == "network lfc-small\n"


def test_generate_force_replaces_what_an_earlier_run_wrote(cwd, capsys):
    # the folder of an earlier run (of another network): its mark, its module, its report
    out = cwd / "gen"
    (out / "accel").mkdir(parents=True)
    (out / ".qnnfab-generated").write_text("written by qnnfab generate\n")
    (out / "accel" / "qnnfab_cnv_small.v").write_text("module qnnfab_cnv_small; endmodule\n")
    (out / "report.txt").write_text("network cnv-small\n")
    _fails(["generate", "--no-report", "--config", LFC_SMALL, "--out", out], capsys, "not empty", "--force")
    assert main(["generate", "--no-report", "--force", "--config", str(LFC_SMALL), "--out", str(out)]) == 0
    capsys.readouterr()
    files = set(_tree(out))
    assert not {"report.txt", "accel/qnnfab_cnv_small.v"} & files, files     # nothing stale is left
    assert sorted(p for p in files if p.startswith("accel/")) == ["accel/README.md", "accel/qnnfab_lfc_small.v"], files
    assert ".qnnfab-generated" in files      # marked again: the next --force may replace it


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["fc 0", "fc/out", "../../escaped", "", "0fc", "fc-0", "fc0_fifo", "x" * 65,
                                  "ü"])
def test_layer_names_must_be_identifiers(cwd, capsys, name):
    text = LFC_SMALL.read_text().replace('name = "fc1"', f'name = "{name}"')
    p = _config(text)
    line = _fails(["generate", "--no-report", "--config", p, "--out", "gen"], capsys, "name")
    assert "letter" in line or "reserved" in line
    assert not (cwd / "gen").exists()


@pytest.mark.parametrize("name", ["../x", "a b", "", "-net", "net.v"])
def test_network_names_must_be_identifiers(cwd, capsys, name):
    text = LFC_SMALL.read_text().replace('name = "lfc-small"', f'name = "{name}"')
    p = _config(text)
    _fails(["report", "--config", p], capsys, "name", "letter")


def test_a_name_never_becomes_a_path_outside_the_cache(tmp_path, monkeypatch):
    # the Yosys cache file is named after the stage: a name that passes load is a plain file name
    for bad in ("../../escaped", "fc/out"):
        text = LFC_SMALL.read_text().replace('name = "fc1"', f'name = "{bad}"')
        with pytest.raises(netconfig.ConfigError, match="not a valid layer name"):
            netconfig.loads(text)
    assert netconfig.safe_name("../my data") == "my-data"
    assert netconfig.safe_name("7") == "net-7"
    netconfig.check_name("t", "name", netconfig.safe_name("../my data"), "network")


# --------------------------------------------------------------------------- config values

def _npz_with(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("edit, words", [
    (('weights = "random"', "weights = 5"), ["weights", "random"]),
    (('weights = "random"', 'weights = ""'), ["weights"]),
    (('weights = "random"', 'weights = "sub"'), ["weights", "not a file"]),
    (('weights = "random"', 'weights = "text.txt"'), ["weights", "readable"]),
    (('weights = "random"', 'weights = "single.npy"'), ["weights", "single array"]),
    (('weights = "random"', 'weights = "objects.npz"'), ["weights", "object"]),
    (('weights = "random"', 'weights = "floats.npz"'), ["weights", "integers"]),
    (("out = 64\n", "out = 1000000000\n"), ["out", "above the limit"]),
    (("input_shape = [64]", "input_shape = [100000, 100000]"), ["input_shape"]),
    (('input_kind = "bipolar"', 'input_kind = "uint"\ninput_bits = 99'), ["input_bits", "16"]),
    (('input_kind = "bipolar"', 'input_kind = "int"\ninput_bits = 1'), ["input_bits", ">= 2"]),
    (('act = "bipolar"\npe = 8', 'act = "bipolar"\nweight_kind = "int"\nweight_bits = 99\npe = 8'),
     ["weight_bits", "16"]),
    (('act = "bipolar"\npe = 8', 'act = "bipolar"\nweight_bits = 4\npe = 8'), ["weight_bits", "int"]),
    (('act = "bipolar"\npe = 8', 'act = "bipolar"\nfifo_depth = 1000000000\npe = 8'), ["fifo_depth"]),
    (('act = "bipolar"\npe = 8', 'act = 5\npe = 8'), ["act"]),
    (('act = "bipolar"\npe = 8', 'act = "uint16"\npe = 8'), ["act", "thresholds", "above the limit"]),
    (("seed = 1", "seed = -1"), ["seed"]),
])
def test_configs_that_load_also_build(cwd, capsys, edit, words):
    (cwd / "sub").mkdir()
    (cwd / "text.txt").write_text("not weights\n")
    np.save(cwd / "single.npy", np.zeros(3, dtype=np.int64))
    np.savez(cwd / "objects.npz", **{"fc0/weights": np.array([None, 1], dtype=object)})
    cfg = netconfig.load(LFC_SMALL)
    arrays = {f"{L.name}/weights": L.weights.astype(np.float32) for L in cfg.layers}
    arrays.update({f"{L.name}/thresholds": L.thresholds for L in cfg.layers if L.thresholds is not None})
    np.savez(cwd / "floats.npz", **arrays)
    old, new = edit
    text = LFC_SMALL.read_text()
    assert old in text
    p = _config(text.replace(old, new, 1))
    _fails(["generate", "--no-report", "--config", p, "--out", "gen"], capsys, *words)


def _thresholds(dtype, value=None):
    def mutate(arrays):
        t = arrays["fc0/thresholds"].astype(dtype)
        if value is not None:
            t[:] = value
        arrays["fc0/thresholds"] = t
    return mutate


@pytest.mark.parametrize("mutate, words", [
    (_thresholds(np.float64), ["fc0", "thresholds", "integers"]),
    (_thresholds(np.bool_), ["fc0", "thresholds", "integers"]),
    (_thresholds(np.uint64, 2**63 + 5), ["fc0", "thresholds", "64-bit"]),
    (lambda a: a.pop("fc1/thresholds"), ["fc1", "thresholds", "not in the weights file"]),
    (lambda a: a.pop("fc2/weights"), ["fc2", "weights", "not in the weights file"]),
    (lambda a: a.__setitem__("fc0/weights", a["fc0/weights"][None]), ["fc0", "weights", "shape"]),
    (lambda a: a.__setitem__("fc0/weights", a["fc0/weights"] * 2), ["fc0", "weights", "range"]),
])
def test_weights_file_contents(cwd, capsys, mutate, words):
    cfg = netconfig.load(LFC_SMALL)
    arrays = {f"{L.name}/weights": L.weights for L in cfg.layers}
    arrays.update({f"{L.name}/thresholds": L.thresholds for L in cfg.layers if L.thresholds is not None})
    mutate(arrays)
    np.savez(cwd / "w.npz", **arrays)
    p = _config(netconfig.dumps(cfg, "w.npz"))
    _fails(["generate", "--no-report", "--config", p, "--out", "gen"], capsys, *words)


@pytest.mark.parametrize("kind, bits, conv, words", [
    ("bipolar", "", 'pad = 3', ["pad", "kernel"]),
    ("bipolar", "", 'pad = 4', ["pad"]),
    ("int", "input_bits = 8", 'pad = 1\npad_value = -1', ["pad_value", "negative"]),
    ("uint", "input_bits = 4", 'pad = 1\npad_value = 16', ["pad_value", "[0, 15]"]),
    ("bipolar", "", 'pad = 1\npad_value = "zero"', ["pad_value"]),
    ("bipolar", "", 'pad = 1\npad_value = 2', ["pad_value", "[0, 1]"]),
    ("bipolar", "", 'kernel = 9', ["kernel"]),
])
def test_conv_settings_the_hardware_cannot_build(cwd, capsys, kind, bits, conv, words):
    text = CONV.format(kind=kind, bits=bits, conv=conv)
    if "kernel = 9" in conv:
        text = text.replace("kernel = 3\n", "")
    p = _config(text)
    _fails(["generate", "--no-report", "--config", p, "--out", "gen"], capsys, *words)


@pytest.mark.parametrize("kind, bits, conv", [
    ("bipolar", "", "pad = 2\npad_value = 1"),
    ("int", "input_bits = 8", "pad = 1\npad_value = 127"),
    ("uint", "input_bits = 4", "pad = 2\npad_value = 15"),
])
def test_conv_edges_that_load_do_build(kind, bits, conv):
    from amaranth.back import rtlil
    from qnnfab.rtl.dataflow import Dataflow
    cfg = netconfig.loads(CONV.format(kind=kind, bits=bits, conv=conv))
    rtlil.convert(Dataflow(cfg), name="top")


@pytest.mark.parametrize("content, words", [
    (None, ["config", "not a file"]),
    (b"\xff\xfe\x00[network]", ["config", "UTF-8"]),
    (b'layer = [1, 2]\n[network]\ninput_shape = [4]\n', ["[[layer]]", "not a table"]),
    (b"[network\n", ["toml", "line"]),
])
def test_config_files_that_are_not_configs(cwd, capsys, content, words):
    p = cwd / "c.toml"
    if content is None:
        p.mkdir()
    else:
        p.write_bytes(content)
    _fails(["sim", "--config", p], capsys, *words)


@pytest.mark.parametrize("path", ["", " "])
def test_empty_output_paths(cwd, capsys, path):
    _fails(["generate", "--config", LFC_SMALL, "--out", path], capsys, "--out", "empty")
    _fails(["fold", "--config", LFC_SMALL, "--fastest", "--out", path], capsys, "--out", ".toml")


def test_max_pool_of_int_inputs_is_refused(cwd, capsys):
    text = CONV.format(kind="int", bits="input_bits = 8", conv="").replace(
        '[[layer]]\nname = "conv0"', '[[layer]]\nname = "pool0"\ntype = "maxpool"\n\n[[layer]]\nname = "conv0"', 1)
    p = _config(text)
    _fails(["report", "--config", p], capsys, "pool0", "int")


# --------------------------------------------------------------------------- sim arguments

@pytest.mark.parametrize("argv, words", [
    (["--config", LFC_SMALL, "--frames", "0"], ["--frames", ">= 1"]),
    (["--config", LFC_SMALL, "--frames", "-3"], ["--frames", ">= 1"]),
    (["--list", "--config", LFC_SMALL], ["--list", "--config"]),
    (["--list", "xnor_popcount"], ["--list"]),
    (["xnor_popcount", "--frames", "5"], ["--frames", "--config"]),
    (["xnor_popcount", "--seed", "-1"], ["--seed"]),
    (["no_such_regression"], ["no_such_regression"]),
])
def test_sim_arguments(cwd, capsys, argv, words):
    _fails(["sim", *argv], capsys, *words)


# --------------------------------------------------------------------------- report arguments

@pytest.mark.parametrize("cmd", ["report", "generate", "fold"])
@pytest.mark.parametrize("clock", ["-100", "0", "nan", "inf"])
def test_clock_must_be_a_positive_number(cwd, capsys, cmd, clock):
    extra = {"report": [], "generate": ["--out", "gen"], "fold": ["--fastest", "--out", "x.toml"]}[cmd]
    _fails([cmd, "--config", LFC_SMALL, "--clock", clock, *extra], capsys, "--clock", "> 0")


@pytest.mark.parametrize("argv, words", [
    (["report", "--config", LFC_SMALL, "--jobs", "0"], ["--jobs"]),
    (["fold", "--config", LFC_SMALL, "--fps", "nan", "--out", "x.toml"], ["--fps"]),
    (["fold", "--config", LFC_SMALL, "--fps", "0", "--out", "x.toml"], ["--fps"]),
])
def test_other_numbers(cwd, capsys, argv, words):
    _fails(argv, capsys, *words)


# --------------------------------------------------------------------------- training arguments

TRAIN = ["train", "--epochs", "1", "--hidden", "8", "--out", "out"]


@pytest.mark.parametrize("argv, words", [
    (["--schemes", "ste,foo"], ["--schemes", "'foo'"]),
    (["--schemes", ""], ["--schemes"]),
    (["--schemes", " , "], ["--schemes"]),
    (["--schemes", "ste,ste"], ["--schemes", "twice"]),
    (["--lr", "nan"], ["--lr"]),
    (["--lr", "inf"], ["--lr"]),
    (["--lr", "0"], ["--lr"]),
    (["--seed", "-1"], ["--seed"]),
    (["--seed", str(2**40)], ["--seed"]),
    (["--epochs", "0"], ["--epochs"]),
    (["--batch", "0"], ["--batch"]),
    (["--act-bits", "0"], ["--act-bits", "1..16"]),
    (["--act-bits", "17"], ["--act-bits", "1..16"]),
    (["--act-bits", "16", "--hidden", "256"], ["--hidden", "thresholds"]),
    (["--pixel-bits", "4"], ["--pixel-bits", "--data"]),
    (["--hidden", "c4,q3"], ["hidden", "q3"]),
    (["--hidden", "c4k9"], ["hidden"]),
])
def test_training_arguments_before_the_first_epoch(cwd, capsys, argv, words):
    _fails(TRAIN + ["--schemes", "ste"] + argv, capsys, *words)
    assert not (cwd / "out").exists()


def _data(cwd, **arrays):
    p = cwd / "d.npz"
    np.savez(p, **arrays)
    return p


def _images(n, shape=(4, 4), seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n,) + shape).astype(np.uint8), rng.integers(0, 2, n)


@pytest.mark.parametrize("case, words", [
    ("empty_train", ["x_train", "empty"]),
    ("empty_test", ["x_test", "empty"]),
    ("huge_label", ["y_train", "1000000000"]),
    ("shapes", ["x_test", "(4, 4, 1)", "(16,"]),
    ("objects", ["object arrays"]),
    ("missing", ["does not exist"]),
    ("pixel_bits", ["--pixel-bits"]),
    ("floats", ["[0, 1]"]),
])
def test_training_data_is_checked_before_the_first_epoch(cwd, capsys, case, words):
    x, y = _images(20)
    extra = []
    if case == "empty_train":
        p = _data(cwd, x_train=x[:0], y_train=y[:0], x_test=x, y_test=y)
    elif case == "empty_test":
        p = _data(cwd, x_train=x, y_train=y, x_test=x[:0], y_test=y[:0])
    elif case == "huge_label":
        y = y.copy()
        y[3] = 10**9
        p = _data(cwd, x_train=x, y_train=y, x_test=x, y_test=y % 2)
    elif case == "shapes":
        p = _data(cwd, x_train=x, y_train=y, x_test=x.reshape(20, 16), y_test=y)
    elif case == "objects":
        p = _data(cwd, x=np.array([None] * 20, dtype=object), y=y)
    elif case == "missing":
        p = cwd / "none.npz"
    elif case == "pixel_bits":
        p = _data(cwd, x=x, y=y)
        extra = ["--pixel-bits", "0"]
    else:
        p = _data(cwd, x=x / 255.0 * 2, y=y)
    _fails(TRAIN + ["--schemes", "ste", "--data", p, *extra], capsys, *words)


def test_a_stray_label_is_a_warning_with_the_counts(cwd, capsys):
    x, y = _images(24)
    y = y.copy()
    y[5] = 12                         # one stray label: a 13-class network
    p = _data(cwd, x=x, y=y)
    rc = main(TRAIN + ["--schemes", "ste", "--data", str(p)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    warning = [line for line in err.splitlines() if line.startswith("qnnfab: warning:")]
    assert len(warning) == 1, err
    w = warning[0]
    assert "labels 0..12 make 13 classes" in w and "10 of them (2, 3, 4, 5, 6, ...)" in w, w
    assert "12: 1" in w or "12:" not in w   # the stray image may land in the test part
    assert "epoch" in out     # it trains


def test_a_dataset_file_name_becomes_a_valid_network_name(cwd, capsys):
    x, y = _images(24)
    p = cwd / "my data.v2.npz"
    np.savez(p, x=x, y=y)
    rc = main(TRAIN + ["--schemes", "ste", "--data", str(p)])
    capsys.readouterr()
    assert rc == 0
    cfg = netconfig.load(cwd / "out" / "my-data-v2-ste.toml")
    assert cfg.name == "my-data-v2-ste"


# --------------------------------------------------------------------------- the build cache

def test_atomic_write_leaves_the_old_entry_when_interrupted(tmp_path, monkeypatch):
    p = tmp_path / "entry.json"
    atomic_write_text(p, '{"a": 1}')

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(p, '{"a": 2, "long": "' + "x" * 100000 + '"}')
    monkeypatch.undo()
    assert json.loads(p.read_text()) == {"a": 1}
    assert _tree(tmp_path) == ["entry.json"]          # no temporary file left behind


@pytest.mark.parametrize("damage", [b'{"cells": {"LUT4": 1', b"", b"\xff\xfe", b"[1, 2]", b'{"cells": {"LUT4": "x"}}'])
def test_an_unreadable_cache_entry_is_a_miss_with_a_warning(tmp_path, capsys, damage):
    from qnnfab.boards.estimate.yosys import _parse_entry
    p = tmp_path / "e.json"
    p.write_bytes(damage)
    assert read_entry(p, _parse_entry) is None
    err = capsys.readouterr().err
    assert err.startswith("qnnfab: warning: unreadable cache entry") and "rebuilding" in err
    assert not p.exists()
    assert read_entry(p, _parse_entry) is None and capsys.readouterr().err == ""   # a plain miss now


def test_a_truncated_yosys_entry_is_rebuilt(tmp_path, monkeypatch, capsys):
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from qnnfab.boards.estimate.yosys import synth_xc7

    class Adder(wiring.Component):
        a: In(4)
        b: In(4)
        s: Out(5)

        def elaborate(self, platform):
            m = Module()
            r = Signal(5)
            m.d.sync += r.eq(self.a + self.b)
            m.d.comb += self.s.eq(r)
            return m

    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path))
    first = synth_xc7(Adder(), top="adder", timing=False)
    (entry,) = (tmp_path / "yosys").glob("adder-*.json")
    entry.write_text(entry.read_text()[:10])            # a crash / full disk mid-write
    again = synth_xc7(Adder(), top="adder", timing=False)
    assert again == first and first.ff == 5
    assert "unreadable cache entry" in capsys.readouterr().err
    assert json.loads(entry.read_text())                # rewritten whole
    assert [p.name for p in (tmp_path / "yosys").iterdir()] == [entry.name]


def test_a_verilator_build_without_its_executable_or_libraries_is_not_reused(tmp_path):
    from qnnfab.sim.build import _build_complete
    (tmp_path / "build.ok").write_text("1.0\n")
    assert not _build_complete(tmp_path, "verilator", "top")
    exe = tmp_path / "top"
    exe.write_text("#!/bin/sh\n")
    assert not _build_complete(tmp_path, "verilator", "top")
    exe.chmod(0o755)
    assert _build_complete(tmp_path, "verilator", "top")
    # linked against the cocotb libraries of a venv that is gone (moved or deleted): rebuilt
    libs = tmp_path / "venv" / "cocotb" / "libs"
    libs.mkdir(parents=True)
    (tmp_path / "build.ok").write_text(f"1.0\n{libs}\n")
    assert _build_complete(tmp_path, "verilator", "top")
    libs.rmdir()
    assert not _build_complete(tmp_path, "verilator", "top")


# --------------------------------------------------------------------------- interrupts

def test_an_interrupted_report_is_one_line(tmp_path):
    # Ctrl-C while the Yosys runs are under way (the stages built, most never elaborated)
    code = ("import os, signal, sys, time\n"
            "import qnnfab.boards.estimate.report as r\n"
            "from amaranth.back import rtlil\n"
            "def synth(comp, *a, **k):\n"
            "    rtlil.convert(comp)\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    time.sleep(2)\n"
            "    raise KeyboardInterrupt  # a Yosys thread that finishes first sees the interrupt too\n"
            "r.synth_xc7 = synth\n"
            "from qnnfab.cli import main\n"
            f"sys.exit(main(['report', '--config', {str(LFC_SMALL)!r}]))\n")
    env = dict(os.environ, QNNFAB_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines() == ["qnnfab: interrupted"], proc.stderr


# --------------------------------------------------------------------------- help

def test_every_option_of_every_command_has_help():
    import argparse
    from qnnfab.cli import build_parser
    parser = build_parser()
    (subs,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}"
               for name, sp in subs.choices.items() for a in sp._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    assert not missing, missing


def test_act_bits_range_is_the_configs():
    # --act-bits k exports act = "uint<k>": the largest k the trainer takes is the largest a config takes
    top = netconfig.LIMITS["data_bits"]
    text = LFC_SMALL.read_text().replace('act = "bipolar"\npe = 8', f'act = "uint{top}"\npe = 8', 1)
    text = text.replace("out = 64\n", "out = 8\n", 1)
    assert netconfig.loads(text).layers[0].act_bits == top
    with pytest.raises(netconfig.ConfigError, match="act"):
        netconfig.loads(text.replace(f'"uint{top}"', f'"uint{top + 1}"'))


@pytest.mark.parametrize("argv, words", [
    (["report", "--config", "x.toml", "--clock", "abc"], ["--clock", "abc", "qnnfab report --help"]),
    (["nope"], ["nope", "qnnfab --help"]),
    (["train", "--epochs"], ["--epochs", "qnnfab train --help"]),
    (["generate", "--config", "x.toml"], ["--out", "required"]),
])
def test_argument_syntax_errors_are_one_line(cwd, capsys, argv, words):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qnnfab: error:") and "(fix:" in lines[0], err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert _tree(cwd) == []


# --------------------------------------------------------------------------- issue 27: no tracebacks

def _one_line(argv, capsys, *words):
    """``qnnfab argv`` exits 2 with one ``qnnfab: error:`` line naming ``words`` and a fix, no
    traceback, and writes nothing in the working folder."""
    work = Path.cwd()
    before = _tree(work)
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qnnfab: error:") and "(fix:" in lines[0], err
    assert "Traceback" not in out + err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "epoch" not in out and "synthesiz" not in out and "building" not in out, out
    assert _tree(work) == before, "files written"
    return lines[0]


def _damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[:len(data) // 2])
    else:   # a run of zeros inside the first member's data: its CRC no longer matches
        path.write_bytes(data[:100] + bytes(40) + data[140:])


class TestNoTracebacks:
    @pytest.mark.parametrize("how", ["truncated", "corrupt"])
    @pytest.mark.parametrize("use", ["verify", "train", "weights"])
    def test_a_damaged_npz(self, cwd, capsys, how, use):
        x, y = _images(20, (64,))
        p = _data(cwd, x=x % 2, y=y)
        if use == "weights":
            cfg = netconfig.load(LFC_SMALL)
            arrays = {f"{L.name}/weights": L.weights for L in cfg.layers}
            arrays.update({f"{L.name}/thresholds": L.thresholds for L in cfg.layers if L.thresholds is not None})
            p = cwd / "w.npz"
            np.savez(p, **arrays)
            config = _config(netconfig.dumps(cfg, "w.npz"))
        _damage(p, how)
        argv = {"verify": ["verify", "--config", LFC_SMALL, "--data", p],
                "train": TRAIN + ["--schemes", "ste", "--data", p],
                "weights": ["generate", "--no-report", "--config", config if use == "weights" else "",
                            "--out", "gen"]}[use]
        _one_line(argv, capsys, p.name, "truncated or damaged", "write it again")

    @pytest.mark.parametrize("use", ["verify", "train"])
    @pytest.mark.parametrize("case, words", [
        ("scalar", ["x", "shape ()"]),
        ("string_labels", ["y", "integers"]),
    ])
    def test_data_that_is_not_frames_and_labels(self, cwd, capsys, use, case, words):
        x, y = _images(20, (64,))
        if case == "scalar":
            p = _data(cwd, x=np.array(3), y=np.array(1))
        else:
            p = _data(cwd, x=x % 2, y=np.array(["cat"] * 20))
        argv = (["verify", "--config", LFC_SMALL, "--data", p] if use == "verify" else
                TRAIN + ["--schemes", "ste", "--data", p])
        _one_line(argv, capsys, *words)

    @pytest.mark.parametrize("content, words", [
        (b"", ["empty.onnx", "holds no graph", "0 bytes"]),
        (b"not an onnx model at all, just text\n" * 4, ["text.onnx", "not an ONNX model"]),
    ])
    def test_import_of_a_file_that_is_not_onnx(self, cwd, capsys, content, words):
        pytest.importorskip("onnx")
        name = "empty.onnx" if not content else "text.onnx"
        (cwd / name).write_bytes(content)
        _one_line(["import", name, "--out", "imp"], capsys, "MODEL", *words)
        assert not (cwd / "imp").exists()

    def test_sim_frames_beyond_the_machine_memory(self, cwd, capsys):
        line = _one_line(["sim", "--config", LFC_SMALL, "--frames", 10**13], capsys, "--frames", "GiB")
        # the bound it offers is one the check itself accepts
        bound = int(line.split("--frames <= ")[1].split(")")[0].replace(",", ""))
        from qnnfab.commands.sim import check_frames_fit
        check_frames_fit("t", netconfig.load(LFC_SMALL), bound)
        with pytest.raises(netconfig.ConfigError):
            check_frames_fit("t", netconfig.load(LFC_SMALL), bound + 1)

    @pytest.mark.parametrize("where, words", [
        ("file", ["QNNFAB_CACHE", "is a file"]),
        ("below_file", ["QNNFAB_CACHE", "below the file"]),
        ("proc", ["QNNFAB_CACHE", "cannot create"]),
    ])
    @pytest.mark.parametrize("command", ["verify", "sim", "report"])
    def test_a_cache_folder_that_cannot_be(self, cwd, capsys, monkeypatch, where, words, command):
        (cwd / "afile").write_text("mine\n")
        cache = {"file": cwd / "afile", "below_file": cwd / "afile" / "cache", "proc": Path("/proc/qnnfab-cache")}
        monkeypatch.setenv("QNNFAB_CACHE", str(cache[where]))
        x, y = _images(4, (64,))
        p = _data(cwd, x=x % 2, y=y)
        argv = {"verify": ["verify", "--config", LFC_SMALL, "--data", p],
                "sim": ["sim", "lfsr"], "report": ["report", "--config", LFC_SMALL]}[command]
        _one_line(argv, capsys, f"qnnfab {command}", *words)
        assert (cwd / "afile").read_text() == "mine\n"


# --------------------------------------------------------------------------- issue 27: late or misleading messages

def _fast_auto(cwd):
    """lfc_w1a1_fast with its weight memories left to Yosys: ~3x the xc7z020's LUTs by the cost model."""
    text = (ROOT / "configs" / "lfc_w1a1_fast.toml").read_text()
    assert "weight_memory" in text
    return _config("\n".join(line for line in text.splitlines() if not line.startswith("weight_memory")),
                   "fast_auto.toml")


class TestMessages:
    def test_report_refuses_a_network_far_above_the_board_before_yosys(self, cwd, capsys):
        _one_line(["report", "--config", _fast_auto(cwd)], capsys, "does not fit", "LUT", "--allow-overflow")

    def test_report_allow_overflow_warns_before_synthesis(self, cwd, capsys, monkeypatch):
        from qnnfab.errors import QnnfabError
        from qnnfab.flow import steps

        def no_yosys(cfg):
            raise QnnfabError("stopped before synthesis")
        monkeypatch.setattr(steps, "synthesis_stages", no_yosys)
        rc = main(["report", "--config", str(_fast_auto(cwd)), "--allow-overflow"])
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 2, err
        assert lines[0].startswith("qnnfab: warning:") and "does not fit" in lines[0], lines
        assert "synthesizing it anyway" in lines[0] and "stopped before synthesis" in lines[1]

    def test_synthesis_counts_the_stages_it_numbers(self):
        from qnnfab.flow import steps
        cfg = netconfig.load(LFC_SMALL)   # 4 fully connected layers, a FIFO in front of each but the first
        stages, text = steps.synthesis_stages(cfg)
        assert len(stages) == 7
        assert text == "7 stages (4 layers and the 3 FIFOs/width converters between them)"

    @pytest.mark.parametrize("hidden, words", [
        ("12x", ["not a layer"]),
        ("c4k9", ["9x9 kernel", "8x8"]),
        ("c8,p2,p2,p2,p2", ["empty"]),
    ])
    def test_demo_hidden_names_demo_and_creates_nothing(self, cwd, capsys, hidden, words):
        line = _one_line(["demo", "--hidden", hidden, "--out", "d"], capsys, "qnnfab demo: --hidden", *words)
        assert "train" not in line
        assert not (cwd / "d").exists()

    @pytest.mark.parametrize("command, required", [
        ("generate", ["--config", "x.toml", "--out", "o"]),
        ("sim", []),
        ("report", ["--config", "x.toml"]),
        ("verify", ["--config", "x.toml", "--data", "d.npz"]),
    ])
    def test_an_unknown_option_points_at_the_commands_help(self, cwd, capsys, command, required):
        with pytest.raises(SystemExit) as ei:
            main([command, *required, "--bogus"])
        assert ei.value.code == 2
        _, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "--bogus" in lines[0], err
        assert f"see `qnnfab {command} --help`" in lines[0], lines[0]
        assert _tree(cwd) == []

    def test_verify_names_its_lines_verify(self, cwd, capsys, monkeypatch):
        from qnnfab.errors import QnnfabError
        from qnnfab.flow import steps

        def no_build(*a, **k):
            raise QnnfabError("stopped before the build")
        monkeypatch.setattr(steps, "verify", no_build)
        x, y = _images(4, (64,))
        rc = main(["verify", "--config", str(LFC_SMALL), "--data", str(_data(cwd, x=x % 2, y=y))])
        out, err = capsys.readouterr()
        assert rc == 2 and "stopped before the build" in err
        assert out.startswith("qnnfab verify: 4 frames"), out
        assert "qnnfab sim" not in out

    def test_a_build_says_what_it_builds_and_how_long_the_last_one_took(self, tmp_path, monkeypatch):
        from qnnfab.sim.build import cached_build
        monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path / "cache"))
        builds = tmp_path / "cache" / "builds"
        (builds / f"net-verilator-{'0' * 20}").mkdir(parents=True)
        (builds / f"net-verilator-{'0' * 20}" / "build.ok").write_text("95.2\n/some/lib\n")
        (builds / f"net-verilator2-{'1' * 20}").mkdir()       # another design: not counted
        (builds / f"net-verilator2-{'1' * 20}" / "build.ok").write_text("7.0\n")
        said = []
        cached_build("net-verilator", "2" * 20, lambda d: None, log=said.append, what="net with Verilator")
        assert said[0] == "building net with Verilator (took 95 s last time)", said
        assert said[1].startswith("built net with Verilator in "), said
        said.clear()
        cached_build("other-verilator", "3" * 20, lambda d: None, log=said.append, what="other")
        assert said[0] == "building other (first build of this design)", said


# --------------------------------------------------------------------------- issue 27: README statements

class TestReadmeStatements:
    README = (ROOT / "README.md").read_text()

    def test_the_board_copy_line_names_every_driver_file(self):
        from qnnfab.boards.emit.overlay import driver_files
        copy = self.README.split("\nscp ", 1)[1].split("xilinx@pynq")[0]
        for name in driver_files(netconfig.load(LFC_SMALL)):
            assert name in copy.split(), (name, copy)

    def test_a_case_count_is_the_registrys(self):
        import re
        from qnnfab.sim import registry
        total = sum(len(r.cases) for r in registry.regressions().values())
        for n in re.findall(r"all (\d+) cases", self.README):
            assert int(n) == total, (n, total)

    def test_ctrl_says_a_write_is_a_command(self):
        from qnnfab.overlay_map import REGISTERS
        ctrl = next(r for r in REGISTERS if r.name == "CTRL")
        assert ctrl.access == "ro" and ctrl.access_text == "ro; write: command"
        rw = next(r for r in REGISTERS if r.access == "rw")
        assert rw.access_text == "rw"

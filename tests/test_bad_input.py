"""Bad input on the command line: exit code 2 and one line naming what is wrong and the
fix (or a warning where the input is odd but usable), before any long work, and nothing
written outside the folders the user named.

Every case runs ``qnnfab.cli.main`` in-process inside an empty working folder with its
own empty build cache; after a failing case both must still be empty (so no Yosys run,
no Verilator build and no stray file happened), and the named output must not exist.
"""

import dataclasses
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
    assert "epoch" not in out and "synthesiz" not in out and "building" not in out, out   # before any long work
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


def test_generate_force_refuses_a_folder_marked_without_a_manifest(cwd, capsys):
    # a folder marked by an older qnnfab (no list of its files): which files are the user's is unknown
    out = cwd / "gen"
    (out / "accel").mkdir(parents=True)
    (out / ".qnnfab-generated").write_text("written by qnnfab generate\n")
    (out / "accel" / "qnnfab_cnv_small.v").write_text("module qnnfab_cnv_small; endmodule\n")
    (out / "report.txt").write_text("network cnv-small\n")
    before = {f: (out / f).read_bytes() for f in _tree(out) if (out / f).is_file()}
    _fails(["generate", "--no-report", "--config", LFC_SMALL, "--out", out], capsys, "not empty", "--force")
    _fails(["generate", "--no-report", "--force", "--config", LFC_SMALL, "--out", out], capsys,
           "is unknown", "empty it yourself")
    assert {f: (out / f).read_bytes() for f in _tree(out) if (out / f).is_file()} == before


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["fc 0", "fc/out", "../../escaped", "", "0fc", "fc-0", "fc0_fifo", "x" * 65,
                                  "ü", "stem_fork", "b1_fifo1", "b1_dwc0"])
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
    (["--weight-bits", "2"], ["--weight-bits", "dorefa, syq, ttq"]),
    (["--schemes", "syq", "--weight-bits", "3"], ["--weight-bits", "1..2 for syq"]),
    (["--schemes", "float,dorefa,ttq", "--weight-bits", "1"], ["--weight-bits", "2..8 for ttq"]),
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
    assert sorted(p.name for p in (tmp_path / "yosys").iterdir()) == [entry.name, entry.name + ".lock"]


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
            "r.synth_xc7_how = synth\n"
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


# --------------------------------------------------------------------------- data loss: generate --force

def _sha(path):
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _generate(out, *more, config=LFC_SMALL):
    return main(["generate", "--no-report", "--config", str(config), "--out", str(out), *map(str, more)])


class TestForceKeepsUserFiles:
    """``generate --force`` replaces exactly the files an earlier run listed in its manifest."""

    def test_the_manifest_lists_every_file_the_run_wrote_with_its_sha256(self, cwd, capsys):
        assert _generate(cwd / "gen") == 0
        capsys.readouterr()
        manifest = json.loads((cwd / "gen" / ".qnnfab-manifest.json").read_text())
        files = [f for f in _tree(cwd / "gen") if (cwd / "gen" / f).is_file() and f != ".qnnfab-manifest.json"]
        assert manifest["files"] == {f: _sha(cwd / "gen" / f) for f in files}
        assert "accel/qnnfab_lfc_small.v" in files

    def test_force_keeps_a_file_the_user_put_there_and_says_so(self, cwd, capsys):
        out = cwd / "gen"
        assert _generate(out) == 0
        bit = os.urandom(4096)
        (out / "overlay" / "my.bit").write_bytes(bit)
        (out / "notes").mkdir()
        (out / "notes" / "todo.txt").write_text("check timing\n")
        generated = set(json.loads((out / ".qnnfab-manifest.json").read_text())["files"])
        capsys.readouterr()
        assert _generate(out, "--force") == 0
        _, err = capsys.readouterr()
        assert err.strip().splitlines() == ["qnnfab: kept 2 files qnnfab did not write: notes/todo.txt, "
                                            "overlay/my.bit"], err
        assert (out / "overlay" / "my.bit").read_bytes() == bit
        assert (out / "notes" / "todo.txt").read_text() == "check timing\n"
        # the new manifest lists the run's files again, not the user's
        assert set(json.loads((out / ".qnnfab-manifest.json").read_text())["files"]) == generated
        assert [p.name for p in cwd.iterdir()] == ["gen"]       # no staging or old folder left

    def test_force_removes_the_files_of_another_network_that_the_manifest_lists(self, cwd, capsys):
        out = cwd / "gen"
        assert _generate(out) == 0
        # the manifest of a run of another network: its module is listed, so --force replaces it
        stale = out / "accel" / "qnnfab_cnv_small.v"
        stale.write_text("module qnnfab_cnv_small; endmodule\n")
        m = json.loads((out / ".qnnfab-manifest.json").read_text())
        m["files"]["accel/qnnfab_cnv_small.v"] = _sha(stale)
        (out / ".qnnfab-manifest.json").write_text(json.dumps(m))
        capsys.readouterr()
        assert _generate(out, "--force") == 0
        _, err = capsys.readouterr()
        assert err == ""
        assert not stale.exists()

    def test_a_config_inside_out_that_the_run_did_not_write_is_kept(self, cwd, capsys):
        out = cwd / "gen"
        assert _generate(out) == 0
        cfg = out / "net.toml"
        cfg.write_text(LFC_SMALL.read_text())
        capsys.readouterr()
        assert _generate(out, "--force", config=cfg) == 0
        _, err = capsys.readouterr()
        assert err.strip().splitlines() == ["qnnfab: kept 1 file qnnfab did not write: net.toml"], err
        assert cfg.read_text() == LFC_SMALL.read_text()

    def test_force_refuses_when_the_config_it_reads_would_be_replaced(self, cwd, capsys):
        out = cwd / "gen"
        assert _generate(out) == 0
        cfg = out / "net.toml"
        cfg.write_text(LFC_SMALL.read_text())
        m = json.loads((out / ".qnnfab-manifest.json").read_text())
        m["files"]["net.toml"] = _sha(cfg)          # listed: --force would replace it
        (out / ".qnnfab-manifest.json").write_text(json.dumps(m))
        capsys.readouterr()
        _fails(["generate", "--no-report", "--force", "--config", cfg, "--out", out], capsys,
               str(cfg), "read by this run")
        assert cfg.read_text() == LFC_SMALL.read_text()

    def test_force_refuses_a_listed_file_the_user_changed(self, cwd, capsys):
        out = cwd / "gen"
        assert _generate(out) == 0
        driver = out / "overlay" / "driver.py"
        edited = driver.read_text() + "# my change\n"
        driver.write_text(edited)
        capsys.readouterr()
        _fails(["generate", "--no-report", "--force", "--config", LFC_SMALL, "--out", out], capsys,
               "overlay/driver.py", "changed")
        assert driver.read_text() == edited

    def test_a_user_file_where_the_run_writes_is_refused_and_kept(self, tmp_path):
        from qnnfab.errors import ConfigError
        from qnnfab.flow import OutputFolder, Run, Step, run

        def write(r):
            (r.stage / "a").write_text("new")
        out = tmp_path / "out"
        run([Step("write", write, True)], Run(), OutputFolder("t", "--out", out, staged=True))
        (out / "a").write_text("the user's")        # changed since: not the run's any more
        with pytest.raises(ConfigError, match="changed"):
            OutputFolder("t", "--out", out, staged=True, force=True)
        # changed during the run (after the checks): kept, and the run that would overwrite it fails
        (out / "a").write_text("new")
        folder = OutputFolder("t", "--out", out, staged=True, force=True)
        (out / "a").write_text("the user's")
        with pytest.raises(ConfigError, match="not a file qnnfab wrote"):
            run([Step("write", write, True)], Run(), folder)
        assert (out / "a").read_text() == "the user's"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --------------------------------------------------------------------------- data loss: import

class TestImportOutput:
    """``import --out DIR --name NET`` never overwrites NET's files there without ``--force``."""

    @pytest.mark.parametrize("existing", [["net.toml"], ["net.npz"], ["net.toml", "net.npz", "net.input_codes.json"]])
    def test_existing_files_are_refused_before_the_model_is_read(self, cwd, capsys, existing):
        (cwd / "model.onnx").write_bytes(b"not an onnx model: reading it would fail differently")
        (cwd / "imp").mkdir()
        mine = {name: os.urandom(64) for name in existing + ["other.txt"]}
        for name, data in mine.items():
            (cwd / "imp" / name).write_bytes(data)
        line = _fails(["import", "model.onnx", "--out", "imp", "--name", "net"], capsys,
                      "--out", existing[0], "--force")
        assert all(name in line for name in existing), line
        assert {name: (cwd / "imp" / name).read_bytes() for name in mine} == mine

    def test_force_replaces_exactly_the_imported_files(self, cwd, capsys):
        assert main(["export", "--config", str(LFC_SMALL), "--out", "lfc.onnx"]) == 0
        (cwd / "imp").mkdir()
        stale = {name: b"stale" for name in ("net.toml", "net.npz", "net.input_codes.json")}
        for name, data in stale.items():
            (cwd / "imp" / name).write_bytes(data)
        (cwd / "imp" / "notes.txt").write_text("mine\n")
        capsys.readouterr()
        assert main(["import", "lfc.onnx", "--out", "imp", "--name", "net", "--force"]) == 0
        _, err = capsys.readouterr()
        assert "Traceback" not in err
        assert sorted(p.name for p in (cwd / "imp").iterdir()) == sorted([*stale, "notes.txt"])   # no temp file
        assert (cwd / "imp" / "notes.txt").read_text() == "mine\n"
        assert all((cwd / "imp" / name).read_bytes() != data for name, data in stale.items())
        back = netconfig.load(cwd / "imp" / "net.toml")
        ref = netconfig.load(LFC_SMALL)
        assert [L.out_shape for L in back.layers] == [L.out_shape for L in ref.layers]


# --------------------------------------------------------------------------- concurrent runs

def _env(tmp_path):
    """The environment of a qnnfab subprocess: its own build cache and temporary folder."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return dict(os.environ, QNNFAB_CACHE=str(tmp_path / "cache"), TMPDIR=str(tmp_path / "tmp"))


def _qnnfab(argv, cwd, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "qnnfab", *map(str, argv)], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _finish(proc):
    """``(exit code, stdout, stderr)`` of a subprocess started by :func:`_qnnfab`."""
    out, err = proc.communicate()
    return proc.returncode, out, err


class TestConcurrentRuns:
    def test_two_generates_into_one_new_folder_one_wins_one_refuses(self, tmp_path):
        work = tmp_path / "work"
        work.mkdir()
        conv = work / "conv.toml"
        conv.write_text(CONV.format(kind="bipolar", bits="", conv=""))
        env = _env(tmp_path)
        runs = {net: _qnnfab(["generate", "--no-report", "--config", cfg, "--out", "gen"], work, env)
                for net, cfg in (("lfc_small", LFC_SMALL), ("tiny_conv", conv))}
        results = {net: _finish(p) for net, p in runs.items()}
        codes = sorted(rc for rc, _, _ in results.values())
        assert codes == [0, 2], results
        (winner,) = [net for net, (rc, _, _) in results.items() if rc == 0]
        (err,) = [e for rc, _, e in results.values() if rc == 2]
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("qnnfab: error:") and "(fix:" in lines[0], err
        assert "Traceback" not in err
        # exactly the winner's files: those its manifest lists, its module and no other network's
        gen = work / "gen"
        files = {f for f in _tree(gen) if (gen / f).is_file()} - {".qnnfab-manifest.json"}
        assert set(json.loads((gen / ".qnnfab-manifest.json").read_text())["files"]) == files
        assert sorted(f for f in files if f.startswith("accel/") and f.endswith(".v")) == \
            [f"accel/qnnfab_{winner}.v"]
        assert sorted(p.name for p in work.iterdir()) == ["conv.toml", "gen"]     # no staging folder left
        assert list((tmp_path / "tmp").iterdir()) == []

    def test_two_identical_reports_run_yosys_once_per_stage(self, tmp_path):
        import re
        work = tmp_path / "work"
        work.mkdir()
        (work / "conv.toml").write_text(CONV.format(kind="bipolar", bits="", conv=""))
        env = _env(tmp_path)
        runs = [_qnnfab(["report", "--config", "conv.toml", "--jobs", "1"], work, env) for _ in range(2)]
        results = [_finish(p) for p in runs]
        assert [rc for rc, _, _ in results] == [0, 0], results
        line = re.compile(r"^\s*\[\d+/\d+\] synthesized (\S+): .*\(\d+ s(, cached|, waited for another run)?\)$")
        seen = [line.match(x).groups() for _, out, _ in results for x in out.splitlines() if line.match(x)]
        stages = {stage for stage, _ in seen}
        assert len(seen) == 2 * len(stages) >= 2 * 3, results         # conv0, fc_out and a FIFO at least
        fresh = sorted(stage for stage, how in seen if how is None)
        assert fresh == sorted(stages), seen                         # Yosys ran once for each stage
        assert "Traceback" not in "".join(err for _, _, err in results)
        assert list((tmp_path / "tmp").iterdir()) == []


# --------------------------------------------------------------------------- signals

# runs qnnfab's command line after replacing one function of a module with a wrapper that sends
# SIGTERM to this process first (the handler raises at the wrapper's next line, before the original)
_SIGTERM_IN = """import os, signal, sys, importlib
owner = importlib.import_module({module!r})
*path, name = {name!r}.split(".")
for part in path:
    owner = getattr(owner, part)
original = getattr(owner, name)
def wrapper(*a, **k):
    os.kill(os.getpid(), signal.SIGTERM)
    return original(*a, **k)
setattr(owner, name, wrapper)
from qnnfab.cli import main
sys.exit(main({argv!r}))
"""


class TestSignals:
    """SIGTERM stops a command like Ctrl-C: one line, exit 143, no staging or temporary folder left."""

    def _terminated(self, proc):
        rc, out, err = _finish(proc)
        assert rc == 143, (rc, out, err)
        assert err.strip().splitlines() == ["qnnfab: terminated"], err

    def _run(self, tmp_path, module, name, argv):
        code = _SIGTERM_IN.format(module=module, name=name, argv=[str(a) for a in argv])
        return subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path / "work", env=_env(tmp_path),
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def test_sigterm_while_generate_stages_leaves_nothing(self, tmp_path):
        (tmp_path / "work").mkdir()
        self._terminated(self._run(tmp_path, "qnnfab.flow.output", "write_manifest",
                                   ["generate", "--no-report", "--config", LFC_SMALL, "--out", "new/gen"]))
        assert list((tmp_path / "work").iterdir()) == []     # neither the folder, its staging sibling nor new/
        assert list((tmp_path / "tmp").iterdir()) == []

    def test_sigterm_while_force_swaps_folders_keeps_the_users_files(self, tmp_path):
        work = tmp_path / "work"
        work.mkdir()
        assert _finish(_qnnfab(["generate", "--no-report", "--config", LFC_SMALL, "--out", "gen"], work,
                               _env(tmp_path)))[0] == 0
        before = {f: (work / "gen" / f).read_bytes() for f in _tree(work / "gen") if (work / "gen" / f).is_file()}
        bit = os.urandom(1000)
        (work / "gen" / "overlay" / "my.bit").write_bytes(bit)
        # after the user's file moved into the staging folder, before the swap
        self._terminated(self._run(tmp_path, "qnnfab.flow.output", "OutputFolder._rename_into_place",
                                   ["generate", "--no-report", "--force", "--config", LFC_SMALL, "--out", "gen"]))
        after = {f: (work / "gen" / f).read_bytes() for f in _tree(work / "gen") if (work / "gen" / f).is_file()}
        assert after.pop("overlay/my.bit") == bit
        assert after == before          # the earlier run's folder, as it was
        assert [p.name for p in work.iterdir()] == ["gen"]
        assert list((tmp_path / "tmp").iterdir()) == []

    def test_sigterm_during_a_report_removes_the_yosys_folders(self, tmp_path):
        import time
        work = tmp_path / "work"
        work.mkdir()
        (work / "conv.toml").write_text(CONV.format(kind="bipolar", bits="", conv=""))
        proc = _qnnfab(["report", "--config", "conv.toml"], work, _env(tmp_path))
        while proc.poll() is None and not any((tmp_path / "tmp").glob("qnnfab-yosys-*")):
            time.sleep(0.05)
        assert proc.poll() is None, _finish(proc)       # Yosys was running
        proc.send_signal(15)
        self._terminated(proc)
        assert list((tmp_path / "tmp").iterdir()) == []
        assert [p.name for p in work.iterdir()] == ["conv.toml"]

# --------------------------------------------------------------------------- issue 27: wrong data is refused

def _conv_config():
    return _config(CONV.format(kind="uint", bits="input_bits = 4", conv='act = "uint2"'))


class TestVerifyData:
    """``verify --data``: frames exactly (B,) + input_shape of the network's input codes, labels 1-D
    integer class indices in [0, outputs), one per frame."""

    def _verify(self, capsys, *words, **arrays):
        cfg = _conv_config()                 # input (6, 6, 2) uint4, 2 outputs
        p = Path.cwd() / "d.npz"
        np.savez(p, **arrays)
        return _fails(["verify", "--config", cfg, "--data", p], capsys, *words)

    def test_nchw_frames_are_refused_naming_the_transpose(self, cwd, capsys):
        x = np.zeros((10, 2, 6, 6), np.uint8)   # right element count, channels first
        self._verify(capsys, "(10, 2, 6, 6)", "(B, 6, 6, 2)", "NHWC", "x.transpose(0, 2, 3, 1)", x=x)

    def test_flat_frames_of_an_image_network_are_refused(self, cwd, capsys):
        self._verify(capsys, "(10, 72)", "(B, 6, 6, 2)", "reshape", x=np.zeros((10, 72), np.uint8))

    @pytest.mark.parametrize("x, words", [
        (np.full((4, 6, 6, 2), 3.0), ["float64", "whole numbers", "astype(np.int64)"]),
        (np.full((4, 6, 6, 2), 0.5), ["float64", "quantize", "[0, 15]"]),
        (np.full((4, 6, 6, 2), 2**63, np.uint64), ["9223372036854775808", "[0, 15]"]),
        (np.full((4, 6, 6, 2), 16, np.int16), ["[16, 16]", "uint4"]),
    ])
    def test_frames_must_be_the_input_codes(self, cwd, capsys, x, words):
        line = self._verify(capsys, *words, x=x)
        assert "-9223372036854775808" not in line

    @pytest.mark.parametrize("y, words", [
        (np.eye(2, dtype=np.int64)[np.arange(4) % 2], ["y", "(4, 2)", "one-hot: use labels.argmax(1)"]),
        (np.zeros(4, np.float32), ["y", "float32", "whole numbers"]),
        (np.zeros(4, bool), ["y", "bool"]),
        (np.array(["a"] * 4), ["y", "<U1"]),
        (np.array([0, 1, 2, 0]), ["y", "label 2", "2 outputs"]),
        (np.array([0, 1, -1, 0]), ["y", "label -1"]),
        (np.zeros((4, 1, 1), np.int64), ["y", "(4, 1, 1)", "1-D"]),
        (np.full(4, 2**63, np.uint64), ["y", "label 9223372036854775808"]),
    ])
    def test_labels_are_class_indices(self, cwd, capsys, y, words):
        self._verify(capsys, *words, x=np.zeros((4, 6, 6, 2), np.uint8), y=y)

    def test_the_right_layout_still_runs(self, cwd, capsys):
        from qnnfab.sim.datafile import load_frames
        x = np.arange(4 * 72).reshape(4, 6, 6, 2) % 16
        np.savez(cwd / "d.npz", x=x.astype(np.uint8), y=np.array([0, 1, 1, 0], np.uint8))
        frames, labels = load_frames(cwd / "d.npz", netconfig.load(_conv_config()))
        assert frames.dtype == np.int64 and (frames == x).all() and labels.tolist() == [0, 1, 1, 0]


class TestTrainData:
    """``train --data``: the same label checks, and 5-D images or one class refused."""

    @pytest.mark.parametrize("case, words", [
        ("one_hot", ["y", "one-hot: use labels.argmax(1)"]),
        ("float_labels", ["y_train", "float64"]),
        ("bool_labels", ["y", "bool"]),
        ("five_d", ["x", "(20, 2, 2, 2, 2, 1)"]),
        ("one_class", ["y", "one class", "every label is 3"]),
        ("count", ["y", "19 labels for 20 frames"]),
    ])
    def test_labels_and_shapes(self, cwd, capsys, case, words):
        x, y = _images(20)
        if case == "one_hot":
            p = _data(cwd, x=x, y=np.eye(2, dtype=np.int64)[y])
        elif case == "float_labels":
            p = _data(cwd, x_train=x, y_train=y.astype(float), x_test=x, y_test=y)
        elif case == "bool_labels":
            p = _data(cwd, x=x, y=y.astype(bool))
        elif case == "five_d":
            p = _data(cwd, x=x.reshape(20, 2, 2, 2, 2, 1), y=y)
        elif case == "one_class":
            p = _data(cwd, x=x, y=np.full(20, 3))
        else:
            p = _data(cwd, x=x, y=y[:19])
        _fails(TRAIN + ["--schemes", "ste", "--data", p], capsys, *words)


class TestIdentityCoversWeights:
    """Two const-weight builds of one topology with other weights are different designs: the
    plan's identity hash (register IDENTITY_HASH, network.json) covers the weights, and the driver
    refuses the other's bitstream saying the weights differ; runtime builds share one identity."""

    @staticmethod
    def _configs(seeds):
        # the demo's situation: one topology, random weights of two seeds
        text = CONV.format(kind="uint", bits="input_bits = 4", conv='act = "uint2"')
        return [netconfig.loads(text.replace('weights = "random"', f'weights = "random"\nseed = {s}'))
                for s in seeds]

    def test_const_identity_covers_weights_and_runtime_does_not(self):
        from qnnfab.plan import plan_of
        a, b = self._configs([1, 2])
        assert a.topology_hash() == b.topology_hash()
        assert not np.array_equal(a.layers[0].weights, b.layers[0].weights)
        pa, pb = plan_of(a, "const"), plan_of(b, "const")
        assert pa.identity_hash != pb.identity_hash
        assert pa.identity_hash == plan_of(self._configs([1])[0], "const").identity_hash   # deterministic
        assert plan_of(a, "runtime").identity_hash == plan_of(b, "runtime").identity_hash == a.topology_hash()
        # the shell's formats (register and network.json) carry it; the weights image keeps the topology
        fa = pa.overlay_formats(64)
        assert fa.identity_hash == pa.identity_hash and fa.topology_hash == a.topology_hash()
        assert fa.to_dict()["identity_hash"] == pa.identity_hash
        words = plan_of(a, "runtime").image_words()
        assert words[1] & 0xFFFF_FFFF == a.topology_hash()

    def test_thresholds_alone_change_the_identity(self):
        from qnnfab.plan import weights_identity
        a, = self._configs([1])
        layers = list(a.layers)
        t = np.array(layers[0].thresholds, copy=True)
        t[0, 0] += 1
        other = [dataclasses.replace(layers[0], thresholds=t)] + layers[1:]
        assert weights_identity(a.topology_hash(), layers) != weights_identity(a.topology_hash(), other)

    def test_driver_refuses_the_other_weights_bitstream(self):
        from qnnfab import overlay_map as om
        from qnnfab.boards.onboard.driver import Accelerator, OverlayError
        from qnnfab.plan import plan_of
        a, b = self._configs([1, 2])

        class Shell:                       # the registers the shell of ``fm`` reads back
            def __init__(self, fm):
                self.regs = {"IDENTITY": om.IDENTITY, "TOPOLOGY": fm.topology_hash, "FEATURES": fm.features(),
                             "IN_FRAME_BYTES": fm.in_frame_bytes, "OUT_RECORD_BYTES": fm.out_record_bytes,
                             "IDENTITY_HASH": fm.identity_hash}

            def read(self, offset):
                return {om.OFFSET[k]: v for k, v in self.regs.items()}[offset]

            def allocate(self, shape, dtype):
                return np.zeros(shape, dtype)

        for mode in ("const", "runtime"):
            fa, fb = plan_of(a, mode).overlay_formats(64), plan_of(b, mode).overlay_formats(64)
            Accelerator(network=fa.to_dict(), backend=Shell(fa))           # its own bitstream
            if mode == "runtime":
                Accelerator(network=fa.to_dict(), backend=Shell(fb))       # one bitstream, any weights
                continue
            with pytest.raises(OverlayError) as ei:
                Accelerator(network=fa.to_dict(), backend=Shell(fb))
            msg = str(ei.value)
            assert "topology" in msg and "other weights and thresholds" in msg
            assert f"0x{fb.identity_hash:08X}" in msg and f"0x{fa.identity_hash:08X}" in msg


class TestGemmFit:
    """``generate --gemm RxC``: one DSP per PE, checked against the part before anything is written."""

    def test_an_engine_with_more_pes_than_dsps_is_refused(self, cwd, capsys):
        # 15 x 15 = 225 PEs, one DSP48E1 each; the xc7z020 has 220
        line = _fails(["generate", "--gemm", "15x15", "--out", "g"], capsys, "GEMM engine 15x15", "DSP 225 of 220",
                      "--allow-overflow")
        assert not (cwd / "g").exists(), line

    def test_allow_overflow_writes_it_with_a_warning(self, cwd, capsys, monkeypatch):
        from qnnfab.flow import flows
        monkeypatch.setattr(flows, "generate_gemm", [])        # the writing itself is not under test
        rc = main(["generate", "--gemm", "15x15", "--out", "g", "--allow-overflow"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("qnnfab: warning:") and "DSP 225 of 220" in lines[0], err

    def test_the_largest_engine_that_fits(self):
        from qnnfab.boards.emit.gemm import default_panels, gemm_resources
        from qnnfab.boards.targets.device import XC7Z020, overflows
        assert gemm_resources(14, 14, default_panels(14, 14)).dsp == 196
        assert not overflows(gemm_resources(14, 14, default_panels(14, 14)), XC7Z020)
        assert [o[0] for o in overflows(gemm_resources(15, 15, default_panels(15, 15)), XC7Z020)] == ["DSP"]


class TestSilentlyAccepted:
    """Inputs that used to be taken without a word: booleans for numbers, input_bits of a bipolar
    input, weights-file arrays no layer reads, a clock no global clock carries."""

    @pytest.mark.parametrize("edit, words", [
        (("input_shape = [64]", "input_shape = [true]"), ["input_shape", "[True]", "positive integers"]),
        (("input_shape = [64]", "input_shape = [8, true, 8]"), ["input_shape", "True"]),
        (('input_kind = "bipolar"', 'input_kind = "bipolar"\ninput_bits = 8'),
         ["input_bits", "bipolar", "one bit", "remove input_bits"]),
    ])
    def test_config_values(self, cwd, capsys, edit, words):
        text = LFC_SMALL.read_text()
        assert edit[0] in text
        p = _config(text.replace(*edit, 1))
        _fails(["generate", "--no-report", "--config", p, "--out", "gen"], capsys, *words)

    def test_arrays_no_layer_reads_are_named(self, cwd, capsys):
        cfg = netconfig.load(LFC_SMALL)
        netconfig.save_weights(cwd / "w.npz", cfg)
        arrays = dict(np.load(cwd / "w.npz"))
        first = cfg.layers[0].name
        arrays[f"{first}_old/weights"] = arrays[f"{first}/weights"]    # e.g. a layer renamed since
        arrays["bias"] = np.zeros(3, np.int64)
        np.savez(cwd / "w.npz", **arrays)
        p = _config(netconfig.dumps(cfg, "w.npz"))
        _fails(["generate", "--no-report", "--config", p, "--out", "gen"], capsys,
               "w.npz holds arrays no layer reads", f"'{first}_old/weights'", "'bias'")

    def test_the_saved_weights_load_back(self, cwd):
        cfg = netconfig.load(LFC_SMALL)
        netconfig.save_weights(cwd / "w.npz", cfg)
        again = netconfig.load(_config(netconfig.dumps(cfg, "w.npz")))
        assert all(np.array_equal(a.weights, b.weights) for a, b in zip(cfg.layers, again.layers))

    @pytest.mark.parametrize("cmd", ["report", "fold"])
    def test_a_clock_above_any_global_clock_is_refused(self, cwd, capsys, cmd):
        extra = ["--fps", "1000", "--out", "f.toml"] if cmd == "fold" else []
        _fails([cmd, "--config", LFC_SMALL, "--clock", "1e9", *extra], capsys, "--clock", "1e+09 MHz",
               "464 MHz", "BUFG")

    def test_a_clock_above_the_fmax_bound_is_a_warning(self, capsys):
        from types import SimpleNamespace
        from qnnfab.flow import flows
        said, warned = [], []
        report = SimpleNamespace(fmax_bound_mhz=312.4)
        r = SimpleNamespace(text="the report", report=report, clock_mhz=400.0, say=said.append, warn=warned.append)
        flows._print_report(r)
        assert said == ["the report"] and len(warned) == 1
        assert warned[0].startswith("qnnfab: warning:") and "400 MHz" in warned[0] and "312 MHz" in warned[0]
        r.clock_mhz, warned[:] = 300.0, []
        flows._print_report(r)
        assert warned == []
# --------------------------------------------------------------------------- issue 27: no tracebacks

def _one_line(argv, capsys, *words):
    """``qnnfab argv`` exits 2 with one ``qnnfab: error:`` line naming ``words`` and a fix (:func:`_fails`)."""
    return _fails(argv, capsys, *words)


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
        ("string_labels", ["y", "integer"]),
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

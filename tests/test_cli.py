"""The ``qnnfab`` command line (qnnfab.cli.main): help, boards, fold, generate, one-line errors."""

import argparse
from pathlib import Path

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
LFC_SMALL = str(ROOT / "configs" / "lfc_small.toml")


def _subcommands():
    p = build_parser()
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return sorted(a.choices)
    return []


def _error_line(capsys, rc):
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("qnnfab: error:"), err
    assert "Traceback" not in out + err
    return lines[0]


def _bad_config(tmp_path):
    text = Path(LFC_SMALL).read_text().replace("pe = 16\n", "pe = 5\n", 1)
    assert "pe = 5" in text
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return str(p)


# --------------------------------------------------------------------------- help

def test_there_are_the_documented_subcommands():
    assert {"sim", "boards", "generate", "report", "fold", "demo", "train"} <= set(_subcommands())


@pytest.mark.parametrize("cmd", _subcommands())
def test_subcommand_help_exits_0_with_an_example(cmd, capsys):
    with pytest.raises(SystemExit) as ei:
        main([cmd, "--help"])
    assert ei.value.code in (0, None)
    out = capsys.readouterr().out
    assert f"qnnfab {cmd}" in out
    assert "example" in out.lower()
    # the example is a command line of this sub-command
    assert any(line.strip().startswith(f"qnnfab {cmd}") for line in out.splitlines()
               if "usage" not in line), out


def test_main_help_lists_examples(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["--help"])
    assert ei.value.code in (0, None)
    out = capsys.readouterr().out
    for cmd in ("sim", "boards", "generate", "fold"):
        assert f"qnnfab {cmd}" in out


# --------------------------------------------------------------------------- boards

def test_boards_lists_the_pynq_boards(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    for b in ("pynq-z1", "pynq-z2"):
        assert b in rows, out
        assert "53,200" in rows[b] and "xc7z020" in rows[b]


# --------------------------------------------------------------------------- fold

def test_fold_fastest_writes_a_config_that_loads(tmp_path, capsys):
    out = tmp_path / "fast.toml"
    assert main(["fold", "--config", LFC_SMALL, "--fastest", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "frames/s" in text and "bottleneck" in text
    cfg = netconfig.load(out)
    orig = netconfig.load(LFC_SMALL)
    assert [L.name for L in cfg.layers] == [L.name for L in orig.layers]
    # random weights with the same seed: the same network, refolded
    for a, b in zip(cfg.layers, orig.layers):
        assert (a.weights == b.weights).all()
    rows, worst, fps = cfg.throughput()
    assert worst[1] <= orig.throughput()[1][1]


def test_fold_to_a_target_keeps_the_weights_file_reachable(tmp_path, capsys):
    # a config with an npz next to it, folded into another folder
    src = tmp_path / "src"
    src.mkdir()
    cfg = netconfig.load(LFC_SMALL)
    netconfig.save_weights(src / "w.npz", cfg)
    (src / "net.toml").write_text(netconfig.dumps(cfg, "w.npz"))
    dst = tmp_path / "dst"
    dst.mkdir()
    out = dst / "folded.toml"
    assert main(["fold", "--config", str(src / "net.toml"), "--fps", "2000000", "--out", str(out)]) == 0
    capsys.readouterr()
    again = netconfig.load(out)
    assert again.throughput()[2] >= 2_000_000
    for a, b in zip(again.layers, cfg.layers):
        assert (a.weights == b.weights).all()


# --------------------------------------------------------------------------- generate

def test_generate_writes_verilog_and_a_build_plan(tmp_path, capsys):
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--board", "pynq-z2", "--config", LFC_SMALL, "--out", str(out)])
    assert rc == 0
    capsys.readouterr()
    vs = list((out / "accel").glob("*.v"))
    assert len(vs) == 1
    v = vs[0].read_text()
    top = v[v.index("module qnnfab_lfc_small("):]
    top = top[:top.index("endmodule")]
    ports = {}
    for line in top.splitlines():
        words = line.replace(";", " ").split()
        if words and words[0] in ("input", "output"):
            ports[words[-1]] = (words[0], int(words[1][1:].split(":")[0]) + 1 if words[1].startswith("[") else 1)
    assert ports == {
        "aclk": ("input", 1), "aresetn": ("input", 1),
        "s_axis_tdata": ("input", 16), "s_axis_tvalid": ("input", 1), "s_axis_tready": ("output", 1),
        "s_axis_tlast": ("input", 1),
        # lfc_small: 10 scores, 5 per word, 7-bit popcounts each in its own byte
        "m_axis_tdata": ("output", 40), "m_axis_tvalid": ("output", 1), "m_axis_tready": ("input", 1),
        "m_axis_tlast": ("output", 1),
        "label": ("output", 4), "label_valid": ("output", 1),
        "frame_error": ("output", 1), "frame_error_pulse": ("output", 1),
    }, ports
    readme = (out / "accel" / "README.md").read_text()
    assert "2 words of\n5 scores" in readme
    assert "Set `s_axis_tlast` on word 3 of every frame" in readme
    # the default top is the PYNQ overlay (tests/test_vivado.py checks its Tcl)
    assert (out / "overlay" / "block_design.tcl").exists() and (out / "overlay" / "build.sh").exists()
    assert not (out / "report.txt").exists()  # --no-report
    out = tmp_path / "selftest"
    assert main(["generate", "--no-report", "--top", "selftest", "--config", LFC_SMALL, "--out", str(out)]) == 0
    capsys.readouterr()
    xdc = (out / "plan" / "top.xdc").read_text()
    assert "H16" in xdc  # PYNQ-Z2's 125 MHz clock pin
    assert (out / "plan" / "build_top.sh").exists()


# --------------------------------------------------------------------------- errors

def test_unknown_board(tmp_path, capsys):
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--board", "zedboard", "--config", LFC_SMALL, "--out", str(out)])
    line = _error_line(capsys, rc)
    assert "zedboard" in line and "pynq-z2" in line
    assert not out.exists()


def test_unknown_board_in_fold(tmp_path, capsys):
    rc = main(["fold", "--board", "nope", "--config", LFC_SMALL, "--fastest", "--out", str(tmp_path / "x.toml")])
    line = _error_line(capsys, rc)
    assert "qnnfab fold: --board: unknown board 'nope'" in line
    assert not (tmp_path / "x.toml").exists()


@pytest.mark.parametrize("config, fps, where", [("lfc_small", "1e12", "qnnfab fold"),
                                               ("cnv_small", "1e6", "network 'cnv-small'")])
def test_fold_errors_name_the_fps_option(tmp_path, capsys, config, fps, where):
    # the library names its argument (target_fps); the command line names its option.
    # cnv_small cannot reach one cycle per frame (its windows take one cycle per output pixel)
    rc = main(["fold", "--config", LFC_SMALL.replace("lfc_small", config), "--fps", fps, "--clock", "1",
               "--out", str(tmp_path / "x.toml")])
    line = _error_line(capsys, rc)
    assert line.startswith(f"qnnfab: error: {where}: --fps: ") and "target_fps" not in line
    assert not (tmp_path / "x.toml").exists()


def test_unknown_regression_names_the_argument(capsys):
    line = _error_line(capsys, main(["sim", "nosuchbench"]))
    assert "qnnfab sim: NAME: no regression named 'nosuchbench'" in line


def test_missing_config_file(tmp_path, capsys):
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--config", str(tmp_path / "none.toml"), "--out", str(out)])
    line = _error_line(capsys, rc)
    assert "none.toml" in line
    assert not out.exists()


@pytest.mark.parametrize("fps", ["1e9", "1e7", "-5"])
def test_bad_fps(tmp_path, capsys, fps):
    cfg = str(ROOT / "configs" / "cnv_w1a1.toml")
    rc = main(["fold", "--config", cfg, "--fps", fps, "--out", str(tmp_path / "x.toml")])
    line = _error_line(capsys, rc)
    assert "--fps" in line
    assert not (tmp_path / "x.toml").exists()


def test_fps_and_fastest_together_or_neither(tmp_path, capsys):
    for extra in (["--fps", "1000", "--fastest"], []):
        rc = main(["fold", "--config", LFC_SMALL, *extra, "--out", str(tmp_path / "x.toml")])
        line = _error_line(capsys, rc)
        assert "--fps" in line and "--fastest" in line
    assert not (tmp_path / "x.toml").exists()


def test_invalid_config_writes_no_verilog(tmp_path, capsys):
    bad = _bad_config(tmp_path)
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--config", bad, "--out", str(out)])
    line = _error_line(capsys, rc)
    assert "'fc1'" in line and "pe" in line and "fix:" in line
    assert not out.exists() or not any(out.rglob("*"))


def test_invalid_config_in_fold_and_report(tmp_path, capsys):
    bad = _bad_config(tmp_path)
    rc = main(["fold", "--config", bad, "--fastest", "--out", str(tmp_path / "x.toml")])
    assert "'fc1'" in _error_line(capsys, rc)
    assert not (tmp_path / "x.toml").exists()
    rc = main(["report", "--config", bad])
    assert "'fc1'" in _error_line(capsys, rc)


def test_config_too_big_for_the_board_writes_no_verilog(tmp_path, capsys):
    # LFC W1A1 with every layer fully parallel cannot fit: the model check
    # fails before any Verilog is written
    text = (ROOT / "configs" / "lfc_w1a1.toml").read_text()
    text = text.replace("simd = 64\npe = 32", "simd = 832\npe = 1024", 1)
    p = tmp_path / "huge.toml"
    p.write_text(text)
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--config", str(p), "--out", str(out)])
    line = _error_line(capsys, rc)
    assert "resources" in line and "LUT" in line
    assert not out.exists()


def test_generate_refuses_a_design_over_the_part_naming_the_resource_and_the_override(tmp_path, capsys):
    # lfc_w1a1_fast with its weight memories left to Yosys ("auto"): shallow ROMs that
    # become logic, ~3x the LUTs
    text = (ROOT / "configs" / "lfc_w1a1_fast.toml").read_text()
    cfg = tmp_path / "fast_auto.toml"
    cfg.write_text("\n".join(line for line in text.splitlines() if not line.startswith("weight_memory")))
    assert "weight_memory" in text
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--config", str(cfg), "--out", str(out)])
    line = _error_line(capsys, rc)
    assert "does not fit xc7z020" in line and "LUT" in line and "over)" in line, line
    assert "--allow-overflow" in line
    assert "BRAM36" not in line  # only the exceeded resource is named
    assert not out.exists()


def _report_of(total):
    from qnnfab.boards.estimate.report import LayerReport, NetworkReport
    from qnnfab.boards.estimate.yosys import Resources
    layers = [LayerReport("fc0", "fc", 64, 64, 256, Resources(**total))]
    return NetworkReport("n", layers, Resources(**total), "fc0", 256, 100e6)


def test_report_says_plainly_which_resource_is_exceeded_and_by_how_much():
    from qnnfab.boards.targets import XC7Z020
    from qnnfab.boards.estimate.report import format_report
    text = format_report(_report_of(dict(lut=166_000, lutram=136, bram36=12)), XC7Z020)
    assert "DOES NOT FIT xc7z020clg400-1: LUT 166,136 of 53,200 (312%, 112,936 over)" in text
    assert "BRAM36 12 of" not in text.splitlines()[-1]
    text = format_report(_report_of(dict(lut=1_000, bram36=141)), XC7Z020)
    assert "DOES NOT FIT" in text and "BRAM36 141 of 140 (101%, 1 over)" in text and "LUT 1,000" not in \
        text.splitlines()[-1]


def test_report_says_a_design_that_uses_the_whole_part_fits():
    from qnnfab.boards.targets import XC7Z020
    from qnnfab.boards.estimate.report import format_report
    text = format_report(_report_of(dict(lut=53_000, lutram=200, bram36=140, dsp=220)), XC7Z020)
    assert text.splitlines()[-1] == "fits xc7z020clg400-1"
    assert "DOES NOT FIT" not in text


# --------------------------------------------------------------------------- train

def test_train_conv_kbit_exports_configs_that_load(tmp_path, capsys):
    out = tmp_path / "train"
    rc = main(["train", "--schemes", "ste", "--hidden", "c4,p2,16", "--act-bits", "2", "--epochs", "1",
               "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "conv net 8x8x1 c4 p2 16 10, 2-bit hidden activations" in text
    cfg = netconfig.load(out / "digits-ste.toml")
    assert [L.type for L in cfg.layers] == ["conv", "maxpool", "fc", "fc"]
    assert cfg.layers[0].act == "uint2" and cfg.input_shape == (8, 8, 1)
    assert (out / "training_curves.png").stat().st_size > 0
    # the table's agreement column: the exported integer network predicts what the trained one does
    row = next(line for line in text.splitlines() if line.startswith("STE"))
    assert row.rstrip().endswith("100.00%"), row


@pytest.mark.parametrize("hidden, entry", [("c8,x3", "x3"), ("16,c8", "c8"), ("p2,16", "p2")])
def test_train_bad_hidden_is_one_line_naming_the_entry(hidden, entry, tmp_path, capsys):
    rc = main(["train", "--schemes", "ste", "--hidden", hidden, "--epochs", "1", "--out", str(tmp_path)])
    assert entry in _error_line(capsys, rc)


def test_train_bad_learning_rate_is_one_line(tmp_path, capsys):
    rc = main(["train", "--schemes", "ste", "--lr", "-1", "--epochs", "1", "--out", str(tmp_path)])
    assert "lr" in _error_line(capsys, rc)


def test_train_on_your_own_npz(tmp_path, capsys):
    # two classes any network separates: bright top half vs bright bottom half of 4x4 grey images
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    x = rng.integers(0, 60, (120, 4, 4)).astype(np.uint8)
    x[y == 0, :2] += 180
    x[y == 1, 2:] += 180
    data = tmp_path / "halves.npz"
    np.savez(data, x=x, y=y)
    rc = main(["train", "--data", str(data), "--schemes", "ste", "--hidden", "16", "--epochs", "3",
               "--out", str(tmp_path / "out")])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "training on halves: 90 train / 30 test images, MLP 16-16-2" in text
    cfg = netconfig.load(tmp_path / "out" / "halves-ste.toml")
    assert cfg.input_bits == 8 and cfg.input_shape == (16,)
    row = next(line for line in text.splitlines() if line.startswith("STE"))
    assert float(row.split()[2].rstrip("%")) > 90.0, row        # held-out accuracy of the trained network


def test_a_reader_that_goes_away_ends_the_output_without_a_traceback():
    """``qnnfab sim --list | head -0``: the closed pipe ends the command quietly (128 + SIGPIPE)."""
    import signal
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-m", "qnnfab", "sim", "--list"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait() == 128 + int(signal.SIGPIPE), err
    assert err == ""

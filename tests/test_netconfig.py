"""Network configs (qnnfab.netconfig): the shipped configs, round trips, and every ConfigError."""

import re
from pathlib import Path

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.errors import ConfigError
from qnnfab.golden import network as gn
from qnnfab.kinds import DataKind
from qnnfab.golden.network import network_of

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
CHAINS = [p for p in CONFIGS if not p.stem.startswith(("resnet", "concat"))]   # graphs: tests/test_graph_hardware.py


def _random_input(cfg, rng, batch):
    return cfg.random_inputs(batch, int(rng.integers(0, 2**31)))


def _assert_same(a, b):
    assert a.name == b.name
    assert tuple(a.input_shape) == tuple(b.input_shape)
    assert (a.input_kind, a.input_bits) == (b.input_kind, b.input_bits)
    assert [L.name for L in a.layers] == [L.name for L in b.layers]
    for x, y in zip(a.layers, b.layers):
        for f in ("type", "out", "act", "weight_kind", "weight_bits", "pe", "simd", "kernel", "stride", "pad",
                  "pad_value", "fifo_depth", "in_shape", "out_shape", "in_kind", "in_bits", "out_kind",
                  "out_bits"):
            assert getattr(x, f) == getattr(y, f), (x.name, f)
        if x.weights is None:
            assert y.weights is None
        else:
            np.testing.assert_array_equal(x.weights, y.weights)
        if x.thresholds is None:
            assert y.thresholds is None, x.name
        else:
            np.testing.assert_array_equal(x.thresholds, y.thresholds)


# --------------------------------------------------------------------------- the shipped configs

def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"lfc_small.toml", "cnv_small.toml", "cnv_w1a1.toml", "lfc_w1a1.toml"} <= names


@pytest.mark.parametrize("path", CHAINS, ids=lambda p: p.stem)
def test_config_loads_and_its_golden_network_builds(path):
    cfg = netconfig.load(path)
    assert cfg.layers
    net = network_of(cfg)
    assert isinstance(net, gn.Network)
    assert tuple(net.input_shape) == tuple(cfg.input_shape)
    # the golden output has the shape of the last layer's output
    assert tuple(net.output_shape) == tuple(cfg.layers[-1].out_shape)
    for L in cfg.layers:
        if L.type != "maxpool":
            assert L.out % L.pe == 0, L.name
        # thresholds (if any) are one sorted row of 2^n - 1 values per output
        if L.thresholds is not None:
            assert L.thresholds.shape == (L.out, L.n_thresholds)
            assert np.all(np.diff(L.thresholds, axis=1) >= 0)
    rows, worst, fps = cfg.throughput()
    assert worst[1] == max(c for _, c in rows) and fps > 0
    y = net.forward(_random_input(cfg, np.random.default_rng(0), 2))
    assert y.shape == (2,) + tuple(cfg.layers[-1].out_shape)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_dumps_loads_round_trip(path):
    cfg = netconfig.load(path)
    text = netconfig.dumps(cfg)
    again = netconfig.loads(text, base_dir=path.parent)
    _assert_same(cfg, again)
    # and dumping again is a fixed point
    assert netconfig.dumps(again) == text


def test_round_trip_through_an_npz(tmp_path):
    cfg = netconfig.load(ROOT / "configs" / "cnv_small.toml")
    cfg.layers[1].fifo_depth = 7
    netconfig.save_weights(tmp_path / "w.npz", cfg)
    (tmp_path / "net.toml").write_text(netconfig.dumps(cfg, "w.npz"))
    again = netconfig.load(tmp_path / "net.toml")
    assert again.weights_ref == str((tmp_path / "w.npz").resolve())
    _assert_same(cfg, again)
    # same network, bit for bit
    x = _random_input(cfg, np.random.default_rng(5), 3)
    np.testing.assert_array_equal(network_of(cfg).forward(x), network_of(again).forward(x))


# --------------------------------------------------------------------------- random weights

MIXED = """
[network]
name = "mixed"
input_shape = [48]
input_kind = "uint"
input_bits = 4
weights = "random"
seed = {seed}

[[layer]]
name = "t0"
type = "fc"
out = 32
act = "uint2"
weight_kind = "ternary"
pe = 4
simd = 8

[[layer]]
name = "i1"
type = "fc"
out = 24
act = "bipolar"
weight_kind = "int"
weight_bits = 3
pe = 6
simd = 4

[[layer]]
name = "b2"
type = "fc"
out = 16
act = "bipolar"
pe = 2
simd = 8

[[layer]]
name = "out"
type = "fc"
out = 4
act = "acc"
pe = 2
simd = 4
"""


@pytest.mark.parametrize("source", [p.stem for p in CHAINS] + ["mixed-1", "mixed-2"])
def test_random_weights_are_sorted_in_range_and_balanced(source):
    if source.startswith("mixed"):
        cfg = netconfig.loads(MIXED.format(seed=int(source[-1])))
    else:
        cfg = netconfig.load(ROOT / "configs" / f"{source}.toml")
    for L in cfg.layers:
        if L.type == "maxpool":
            continue
        lo, hi = DataKind.of(L.weight_kind, L.weight_bits).stored_range   # (tests/test_kinds.py)
        assert lo <= L.weights.min() and L.weights.max() <= hi, L.name
        if L.act == "acc":
            assert L.thresholds is None
        else:
            assert L.thresholds.shape == (L.out, L.n_thresholds)
            assert np.all(np.diff(L.thresholds, axis=1) >= 0), L.name
    net = network_of(cfg)
    x = _random_input(cfg, np.random.default_rng(1), 16)
    _, outs = net.forward(x, return_all=True)
    checked = 0
    for layer, y in zip(net.layers, outs):
        if not isinstance(layer, gn.Threshold):
            continue
        n = layer.thresholds.shape[1]
        frac = float(np.mean(y)) / n  # bipolar: fraction of +1; uint: mean level over the top level
        assert 0.2 <= frac <= 0.8, (layer.name, frac)
        checked += 1
    assert checked == sum(1 for L in cfg.layers if L.type != "maxpool" and L.act != "acc")


def test_random_weights_depend_on_the_seed_only():
    a = netconfig.loads(MIXED.format(seed=1))
    b = netconfig.loads(MIXED.format(seed=1))
    c = netconfig.loads(MIXED.format(seed=2))
    np.testing.assert_array_equal(a.layers[0].weights, b.layers[0].weights)
    assert not np.array_equal(a.layers[0].weights, c.layers[0].weights)


# --------------------------------------------------------------------------- errors

def _net(shape="[64]", kind="bipolar", bits=None, weights="random"):
    s = f'[network]\nname = "t"\ninput_shape = {shape}\ninput_kind = "{kind}"\nweights = "{weights}"\n'
    if bits:
        s += f"input_bits = {bits}\n"
    return s


def _layer(**kw):
    s = "\n[[layer]]\n"
    for k, v in kw.items():
        s += f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n"
    return s


def _expect(text_or_fn, where, field, *also, fix=True):
    with pytest.raises(ConfigError) as ei:
        if callable(text_or_fn):
            text_or_fn()
        else:
            netconfig.loads(text_or_fn)
    e = ei.value
    msg = str(e)
    assert where in msg, msg
    assert e.field == field and f": {field}:" in msg, msg
    if fix:
        assert "fix:" in msg, msg
    for s in also:
        assert s in msg, msg
    return e


def test_pe_not_dividing_out_lists_the_divisors():
    text = _net() + _layer(name="fc0", type="fc", out=48, pe=5, simd=8)
    e = _expect(text, "'fc0'", "pe", "48")
    assert "[1, 2, 3, 4, 6, 8, 12, 16, 24, 48]" in str(e)


def test_pe_not_dividing_out_of_a_later_conv():
    text = (_net("[8, 8, 3]", "int", 8) + _layer(name="c0", type="conv", out=8, pe=8, simd=3)
            + _layer(name="c1", type="conv", out=12, pe=8, simd=8))
    e = _expect(text, "layer 1 'c1'", "pe")
    assert "[1, 2, 3, 4, 6, 12]" in str(e)


def test_simd_not_dividing_the_fc_input_length():
    text = _net("[60]") + _layer(name="fc0", type="fc", out=8, pe=2, simd=8)
    _expect(text, "'fc0'", "simd", "60", "[1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60]")


def test_simd_not_dividing_the_conv_channels():
    text = _net("[8, 8, 6]", "int", 8) + _layer(name="c0", type="conv", out=8, pe=2, simd=4)
    _expect(text, "'c0'", "simd", "6 input channels", "[1, 2, 3, 6, 18, 54]")


@pytest.mark.parametrize("simd", [12, 36, 60])
def test_conv_simd_above_the_channels_must_be_whole_kernel_positions(simd):
    # SIMD = m * C with m dividing K*K = 9: 18 (3 positions) and 54 (the whole window)
    text = _net("[8, 8, 6]", "int", 8) + _layer(name="c0", type="conv", out=8, pe=2, simd=simd)
    _expect(text, "'c0'", "simd", "m x 6", "3x3", "[1, 2, 3, 6, 18, 54]")


def test_conv_simd_of_whole_kernel_positions_reads_whole_pixels():
    for simd, in_simd in ((18, 6), (54, 6), (3, 3)):
        text = _net("[8, 8, 6]", "int", 8) + _layer(name="c0", type="conv", out=8, pe=2, simd=simd)
        cfg = netconfig.loads(text)
        assert cfg.layers[0].in_simd == in_simd
        assert cfg.input_words() == 8 * 8 * 6 // in_simd
        # the window reads one word per cycle, writes K*K*C/SIMD per output pixel
        assert cfg.layer_cycles(cfg.layers[0]) == max(6 * 6 * (8 // 2) * (54 // simd), 8 * 8 * 6 // in_simd)


def test_simd_not_dividing_the_channels_of_a_flattened_image():
    # 4 divides the length 4*4*6 = 96 but not the 6 channels the words arrive in
    text = _net("[4, 4, 6]") + _layer(name="f0", type="fc", out=8, pe=2, simd=4)
    _expect(text, "'f0'", "simd", "6 channels", "[1, 2, 3, 6]")


def test_simd_not_dividing_the_maxpool_channels():
    text = _net("[8, 8, 4]") + _layer(name="p0", type="maxpool", kernel=2, simd=3)
    _expect(text, "'p0'", "simd", "[1, 2, 4]")


def test_layer_after_an_acc_layer():
    text = (_net() + _layer(name="fc0", type="fc", out=16, act="acc")
            + _layer(name="fc1", type="fc", out=8))
    _expect(text, "'fc1'", "input", "acc")


def test_unknown_layer_type():
    _expect(_net() + _layer(name="d0", type="dense", out=8), "'d0'", "type", "dense", "maxpool")


def test_unknown_field():
    _expect(_net() + _layer(name="fc0", type="fc", out=8, pee=4), "'fc0'", "pee", "known fields")


def test_unknown_activation():
    _expect(_net() + _layer(name="fc0", type="fc", out=8, act="relu"), "'fc0'", "act", "relu", "uint2")


def test_duplicate_names():
    text = _net() + _layer(name="fc0", type="fc", out=16) + _layer(name="fc0", type="fc", out=8)
    _expect(text, "layer 1 'fc0'", "name", "twice")


def test_kernel_larger_than_the_padded_image():
    text = _net("[4, 4, 3]", "int", 8) + _layer(name="c0", type="conv", out=8, kernel=7, pad=1)
    _expect(text, "'c0'", "kernel", "7x7", "4x4", "pad 1")
    # the same kernel fits with enough padding
    ok = netconfig.loads(_net("[4, 4, 3]", "int", 8) + _layer(name="c0", type="conv", out=8, kernel=7, pad=2))
    assert ok.layers[0].out_shape == (2, 2, 8)


def test_maxpool_larger_than_the_image():
    text = _net("[2, 2, 4]") + _layer(name="p0", type="maxpool", kernel=3)
    _expect(text, "'p0'", "kernel")


def test_conv_after_fc_needs_an_image():
    text = _net() + _layer(name="fc0", type="fc", out=16) + _layer(name="c0", type="conv", out=8)
    _expect(text, "'c0'", "type")


def test_missing_weights_file(tmp_path):
    (tmp_path / "n.toml").write_text(_net(weights="nope.npz") + _layer(name="fc0", type="fc", out=8))
    _expect(lambda: netconfig.load(tmp_path / "n.toml"), "network 't'", "weights", "nope.npz")


def test_missing_config_file(tmp_path):
    _expect(lambda: netconfig.load(tmp_path / "none.toml"), "none.toml", "config", "does not exist")


def test_invalid_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[network\nname = 1\n")
    with pytest.raises(ConfigError) as ei:
        netconfig.load(p)
    assert ei.value.field == "toml"
    assert "bad.toml" in str(ei.value) and "TOML" in str(ei.value)


def test_missing_network_table_and_layers():
    _expect("[[layer]]\nname = 'a'\n", "<string>", "[network]")
    _expect(_net(), "network 't'", "[[layer]]")


# ---- errors in a weights file

SMALL = """
[network]
name = "small"
input_shape = [32]
input_kind = "bipolar"
weights = "{weights}"
seed = 4

[[layer]]
name = "fc0"
type = "fc"
out = 16
act = "bipolar"
pe = 4
simd = 8

[[layer]]
name = "fc1"
type = "fc"
out = 8
act = "uint2"
weight_kind = "{kind1}"
{bits1}pe = 2
simd = 4

[[layer]]
name = "fc_out"
type = "fc"
out = 4
act = "acc"
pe = 2
simd = 8
"""


def _npz_case(tmp_path, mutate, kind1="ternary", bits1=None):
    bits = f"weight_bits = {bits1}\n" if bits1 else ""
    cfg = netconfig.loads(SMALL.format(weights="random", kind1=kind1, bits1=bits))
    arrays = {}
    for L in cfg.layers:
        arrays[f"{L.name}/weights"] = L.weights.copy()
        if L.thresholds is not None:
            arrays[f"{L.name}/thresholds"] = L.thresholds.copy()
    mutate(arrays)
    np.savez(tmp_path / "w.npz", **arrays)
    p = tmp_path / "net.toml"
    p.write_text(SMALL.format(weights="w.npz", kind1=kind1, bits1=bits))
    return lambda: netconfig.load(p)


def test_npz_unchanged_loads(tmp_path):
    cfg = _npz_case(tmp_path, lambda a: None)()
    assert [L.name for L in cfg.layers] == ["fc0", "fc1", "fc_out"]


def test_npz_unsorted_thresholds(tmp_path):
    def mutate(a):
        t = a["fc1/thresholds"]
        t[5] = [9, 3, 4]
        a["fc1/thresholds"] = t
    _expect(_npz_case(tmp_path, mutate), "'fc1'", "thresholds", "row 5", "sort")


def test_npz_thresholds_of_the_wrong_shape(tmp_path):
    def mutate(a):
        a["fc1/thresholds"] = a["fc1/thresholds"][:, :1]   # 1 threshold for a uint2 activation
    _expect(_npz_case(tmp_path, mutate), "'fc1'", "thresholds", "(8, 1)", "(8, 3)")


def test_npz_missing_thresholds(tmp_path):
    _expect(_npz_case(tmp_path, lambda a: a.pop("fc0/thresholds")), "'fc0'", "thresholds")


def test_npz_missing_weights(tmp_path):
    _expect(_npz_case(tmp_path, lambda a: a.pop("fc1/weights")), "'fc1'", "weights", "fc1/weights")


def test_npz_wrong_weight_shape(tmp_path):
    def mutate(a):
        a["fc1/weights"] = a["fc1/weights"].T.copy()
    _expect(_npz_case(tmp_path, mutate), "'fc1'", "weights", "(16, 8)", "(8, 16)")


@pytest.mark.parametrize("kind,bits,layer,bad", [
    ("ternary", None, "fc0", 2),      # bipolar weights are stored as bits 0/1
    ("ternary", None, "fc0", -1),
    ("ternary", None, "fc1", 2),      # ternary: -1..1
    ("ternary", None, "fc1", -2),
    ("int", 3, "fc1", 4),             # int3: -4..3
    ("int", 3, "fc1", -5),
])
def test_npz_weight_values_out_of_range(tmp_path, kind, bits, layer, bad):
    def mutate(a):
        w = a[f"{layer}/weights"]
        w[1, 2] = bad
    e = _expect(_npz_case(tmp_path, mutate, kind, bits), f"'{layer}'", "weights")
    assert re.search(r"\[-?\d+, -?\d+\]", str(e)), str(e)


def test_npz_float_weights(tmp_path):
    def mutate(a):
        a["fc1/weights"] = a["fc1/weights"] + 0.5
    _expect(_npz_case(tmp_path, mutate), "'fc1'", "weights")


# --------------------------------------------------------------------------- pipeline

def test_pipeline_defaults_from_the_network_and_is_overridden_per_layer():
    text = (_net().replace('name = "t"\n', 'name = "t"\npipeline = 2\n')
            + _layer(name="fc0", type="fc", out=16, pe=4, simd=16)
            + _layer(name="fc1", type="fc", out=10, act="acc", pe=2, simd=16, pipeline=0))
    cfg = netconfig.loads(text)
    assert [L.pipeline for L in cfg.layers] == [2, 0]
    again = netconfig.loads(netconfig.dumps(cfg))
    assert [L.pipeline for L in again.layers] == [2, 0]
    from qnnfab.rtl.dataflow import Dataflow
    mvtus = [c for kind, _, c in Dataflow(cfg).stages if kind == "fc"]
    assert [m.pipeline for m in mvtus] == [2, 0]
    flat = [c for kind, _, c in Dataflow(cfg, pipeline=0).stages if kind == "fc"]
    assert [m.latency - f.latency for m, f in zip(mvtus, flat)] == [2, 0]   # a cycle per register
    assert [m.pipeline for kind, _, m in Dataflow(cfg, pipeline=1).stages if kind == "fc"] == [1, 1]
    assert netconfig.loads(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16)).layers[0].pipeline == 0


def test_pipeline_max_registers_the_reads_and_every_adder_level():
    text = (_net().replace('name = "t"\n', 'name = "t"\npipeline = "max"\n')
            + _layer(name="fc0", type="fc", out=16, pe=4, simd=16)
            + _layer(name="fc1", type="fc", out=10, act="acc", pe=2, simd=16, pipeline=1))
    cfg = netconfig.loads(text)
    assert [L.pipeline for L in cfg.layers] == ["max", 1]
    assert [L.pipeline for L in netconfig.loads(netconfig.dumps(cfg)).layers] == ["max", 1]
    from qnnfab.rtl.dataflow import Dataflow
    fc0, fc1 = [c for kind, _, c in Dataflow(cfg).stages if kind == "fc"]
    flat0 = [c for kind, _, c in Dataflow(cfg, pipeline=0).stages if kind == "fc"][0]
    # 16 binary lanes: 6 groups of three -> 3 adder levels, plus the read register
    assert (fc0.pipeline, fc0.read_register, fc0.latency - flat0.latency) == (3, True, 4)
    assert (fc1.pipeline, fc1.read_register) == (1, False)
    # a different pipeline is different hardware
    assert cfg.topology_hash() != netconfig.loads(text.replace('"max"', "3")).topology_hash()


def test_pipeline_errors():
    _expect(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, pipeline="auto"), "'fc0'", "pipeline",
            "unknown value 'auto'", '"max"')
    _expect(_net().replace('name = "t"\n', 'name = "t"\npipeline = 1.5\n')
            + _layer(name="fc0", type="fc", out=16, pe=4, simd=16), "network 't'", "pipeline", "integer")
    _expect(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, pipeline=-1), "'fc0'", "pipeline",
            ">= 0")
    _expect(_net(shape="[4, 4, 2]") + _layer(name="pool", type="maxpool", kernel=2, pipeline=1)
            + _layer(name="fc0", type="fc", out=4, act="acc", pe=1, simd=2), "'pool'", "pipeline", "max pool")
    _expect(_net().replace('name = "t"\n', 'name = "t"\npipline = 1\n')
            + _layer(name="fc0", type="fc", out=16, pe=4, simd=16), "network 't'", "pipline", "known")


# --------------------------------------------------------------------------- accumulator style

def test_accumulator_defaults_from_the_network_reaches_the_mvtus_and_survives_a_round_trip():
    text = (_net().replace('name = "t"\n', 'name = "t"\naccumulator = "reset"\n')
            + _layer(name="fc0", type="fc", out=16, pe=4, simd=16)
            + _layer(name="fc1", type="fc", out=10, act="acc", pe=2, simd=16, accumulator="mux"))
    cfg = netconfig.loads(text)
    assert [L.accumulator for L in cfg.layers] == ["reset", "mux"]
    assert [L.accumulator for L in netconfig.loads(netconfig.dumps(cfg)).layers] == ["reset", "mux"]
    from qnnfab.rtl.dataflow import Dataflow
    assert [c.accumulator for kind, _, c in Dataflow(cfg).stages if kind == "fc"] == ["reset", "mux"]
    plain = netconfig.loads(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16))
    assert plain.layers[0].accumulator == "mux" and "accumulator" not in netconfig.dumps(plain)
    # a different accumulator style is different hardware; the default keeps the hash of configs without it
    explicit = netconfig.loads(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, accumulator="mux"))
    assert explicit.topology_hash() == plain.topology_hash()
    reset = netconfig.loads(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, accumulator="reset"))
    assert reset.topology_hash() != plain.topology_hash()


def test_accumulator_errors():
    _expect(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, accumulator="clear"), "'fc0'",
            "accumulator", "unknown accumulator style 'clear'", "reset")
    _expect(_net().replace('name = "t"\n', 'name = "t"\naccumulator = 1\n')
            + _layer(name="fc0", type="fc", out=16, pe=4, simd=16), "network 't'", "accumulator", "unknown")
    _expect(_net(shape="[4, 4, 2]") + _layer(name="pool", type="maxpool", kernel=2, accumulator="reset")
            + _layer(name="fc0", type="fc", out=4, act="acc", pe=1, simd=2), "'pool'", "accumulator", "max pool")


# --------------------------------------------------------------------------- popcount style

def test_popcount_defaults_from_the_network_reaches_the_pes_and_survives_a_round_trip():
    text = (_net("[6, 6, 4]").replace('name = "t"\n', 'name = "t"\npopcount = "compressor"\n')
            + _layer(name="c0", type="conv", out=8, pe=4, simd=4)
            + _layer(name="fc0", type="fc", out=16, pe=4, simd=8)
            + _layer(name="fc1", type="fc", out=10, act="acc", pe=2, simd=16, popcount="adder-tree"))
    cfg = netconfig.loads(text)
    assert [L.popcount for L in cfg.layers] == ["compressor", "compressor", "adder-tree"]
    assert [L.popcount for L in netconfig.loads(netconfig.dumps(cfg)).layers] == [
        "compressor", "compressor", "adder-tree"]
    from qnnfab.rtl.dataflow import Dataflow
    mvtus = [c.mvtu if kind == "conv" else c for kind, _, c in Dataflow(cfg).stages if kind in ("conv", "fc")]
    assert [m.popcount for m in mvtus] == ["compressor", "compressor", "adder-tree"]
    plain = netconfig.loads(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16))
    assert plain.layers[0].popcount == "adder-tree" and "popcount" not in netconfig.dumps(plain)
    # a different popcount is different hardware; the default keeps the hash of configs without it
    explicit = netconfig.loads(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, popcount="adder-tree"))
    assert explicit.topology_hash() == plain.topology_hash()
    compressor = netconfig.loads(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, popcount="compressor"))
    assert compressor.topology_hash() != plain.topology_hash()


def test_popcount_errors():
    _expect(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, popcount="wallace"), "'fc0'",
            "popcount", "unknown popcount style 'wallace'", "compressor")
    _expect(_net().replace('name = "t"\n', 'name = "t"\npopcount = true\n')
            + _layer(name="fc0", type="fc", out=16, pe=4, simd=16), "network 't'", "popcount", "unknown")
    _expect(_net(shape="[4, 4, 2]") + _layer(name="pool", type="maxpool", kernel=2, popcount="compressor")
            + _layer(name="fc0", type="fc", out=4, act="acc", pe=1, simd=2), "'pool'", "popcount", "max pool")


# --------------------------------------------------------------------------- weight memory style

def test_weight_memory_style_reaches_the_layers_and_survives_a_round_trip():
    text = (_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, weight_memory="block")
            + _layer(name="fc1", type="fc", out=10, act="acc", pe=2, simd=16, weight_memory="distributed")
            + _layer(name="fc2", type="fc", out=10, act="acc", pe=2, simd=10))
    text = text.replace('act = "acc"\npe = 2\nsimd = 16', 'pe = 2\nsimd = 16')  # fc1 feeds fc2
    cfg = netconfig.loads(text)
    assert [L.weight_memory for L in cfg.layers] == ["block", "distributed", "auto"]
    again = netconfig.loads(netconfig.dumps(cfg))
    assert [L.weight_memory for L in again.layers] == ["block", "distributed", "auto"]
    assert "weight_memory" not in netconfig.dumps(cfg).split("fc2")[1]   # auto is the default, not written
    from qnnfab.rtl.dataflow import Dataflow
    assert [c.weight_memory for kind, _, c in Dataflow(cfg).stages if kind == "fc"] == [
        "block", "distributed", "auto"]
    # a different memory style is different hardware; "auto" keeps the hash of configs without the field
    plain = netconfig.loads(text.replace('weight_memory = "block"\n', ""))
    assert plain.topology_hash() != cfg.topology_hash()
    assert netconfig.loads(text.replace('weight_memory = "block"', 'weight_memory = "auto"')).topology_hash() \
        == plain.topology_hash()


def test_weight_memory_errors():
    _expect(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, weight_memory="bram"), "'fc0'",
            "weight_memory", "'bram'", "distributed")
    _expect(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, weight_memory=1), "'fc0'",
            "weight_memory")
    _expect(_net(shape="[4, 4, 2]") + _layer(name="pool", type="maxpool", kernel=2, weight_memory="block")
            + _layer(name="fc0", type="fc", out=4, act="acc", pe=1, simd=2), "'pool'", "weight_memory",
            "no weights")


def test_topology_hash_ignores_weights_and_name_but_not_folding():
    text = (ROOT / "configs" / "lfc_small.toml").read_text()
    base = netconfig.loads(text, ROOT / "configs")
    reseeded = netconfig.loads(re.sub(r"(?m)^seed = \d+", "seed = 12345", text).replace(
        'name = "lfc-small"', 'name = "other"'), ROOT / "configs")
    assert any((a.weights != b.weights).any() for a, b in zip(base.layers, reseeded.layers))
    assert reseeded.topology_hash() == base.topology_hash()
    refolded = netconfig.loads(re.sub(r"(?m)^pe = (\d+)", lambda m: f"pe = {int(m[1]) // 2}", text, count=1),
                               ROOT / "configs")
    assert refolded.layers[0].pe != base.layers[0].pe
    assert refolded.topology_hash() != base.topology_hash()
    assert 0 <= base.topology_hash() < 2**32


# The identity registers of built hardware and the headers of weights images carry these values:
# they come from the earlier definition of NetConfig.topology_hash (a hand-written list of the
# layer fields, before the fields were declared once), computed on that tree. A change of the
# declarations must keep them.
SHIPPED_TOPOLOGY_HASHES = {
    "cnv_small": 0x965A5057,
    "cnv_w1a1": 0x94DD7959,
    "cnv_w1a1_fast": 0xBA0B8BDE,
    "lfc_small": 0x02F4F220,
    "lfc_w1a1": 0x9216D34A,
    "lfc_w1a1_fast": 0x3A538EF5,
    "lfc_w1a1_fast_measured": 0xD654E91A,   # qnnfab fold --measured's choice, added later
    "cnv_w1a1_fast_measured": 0xFD262EFE,   # qnnfab fold --measured --fps 27778 (rebalanced), added later
    # graphs, pinned when they were added
    "concat_tiny": 0x21DDFCC5,
    "resnet8_w2a2": 0xC5A09D33,
    "resnet_tiny": 0x5819B132,
}

# Every hashed field away from its default (uint input, int and ternary weights, padding, a
# pipeline from the network and per layer, "max", both memory styles, a FIFO depth, a pool);
# its hash from the same earlier definition.
EVERY_HASHED_FIELD = """
[network]
name = "every-field"
input_shape = [8, 8, 2]
input_kind = "uint"
input_bits = 3
weights = "random"
seed = 4
pipeline = 1

[[layer]]
name = "conv0"
type = "conv"
out = 8
act = "uint2"
weight_kind = "int"
weight_bits = 3
kernel = 3
stride = 1
pad = 1
pad_value = 2
pe = 4
simd = 2
pipeline = "max"
weight_memory = "block"
fifo_depth = 5

[[layer]]
name = "pool0"
type = "maxpool"
kernel = 2
stride = 2

[[layer]]
name = "conv1"
type = "conv"
out = 4
act = "bipolar"
weight_kind = "ternary"
kernel = 2
stride = 2
pe = 2
simd = 8

[[layer]]
name = "fc0"
type = "fc"
out = 6
act = "acc"
pe = 3
simd = 4
weight_memory = "distributed"
pipeline = 0
"""
EVERY_HASHED_FIELD_HASH = 0xDE16F421


def test_topology_hash_of_every_shipped_config_is_pinned():
    assert sorted(SHIPPED_TOPOLOGY_HASHES) == [p.stem for p in CONFIGS]
    for path in CONFIGS:
        assert netconfig.load(path).topology_hash() == SHIPPED_TOPOLOGY_HASHES[path.stem], path.stem


def test_topology_hash_with_every_hashed_field_set_is_pinned():
    cfg = netconfig.loads(EVERY_HASHED_FIELD)
    assert cfg.topology_hash() == EVERY_HASHED_FIELD_HASH
    # the weights mode, the name and the seed are not part of the hardware's identity
    other = EVERY_HASHED_FIELD.replace("seed = 4", 'seed = 5\nweights_mode = "runtime"').replace("every-field", "x")
    assert netconfig.loads(other).topology_hash() == EVERY_HASHED_FIELD_HASH


# --------------------------------------------------------------------------- the field declarations

def test_every_toml_field_is_declared_once_with_a_doc_line_and_documented_in_the_format():
    doc = netconfig.__doc__
    for cls in (netconfig.NetConfig, netconfig.LayerSpec):
        keys = [f.key for f in netconfig.toml_fields(cls)]
        assert len(keys) == len(set(keys)), cls
        for f in netconfig.toml_fields(cls):
            assert f.spec.doc and "\n" not in f.spec.doc, f.key
            assert re.search(rf"\b{f.key} =", doc), f"{f.key} is not in the format of the module docstring"
    # the keys loads() accepts are the declared ones (the error lists them)
    layer_keys = sorted(f.key for f in netconfig.toml_fields(netconfig.LayerSpec))
    _expect(_net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16, colour=1), "'fc0'", "colour",
            f"known fields: {layer_keys}")


def test_dumps_writes_only_the_fields_of_the_layer_type():
    cfg = netconfig.loads(EVERY_HASHED_FIELD)
    tables = netconfig.dumps(cfg).split("[[layer]]")
    keys = [{line.split(" = ")[0] for line in t.strip().splitlines()[1 if i == 0 else 0:]}
            for i, t in enumerate(tables)]
    assert keys[0] == {"name", "input_shape", "input_kind", "input_bits", "weights", "seed"}
    assert keys[2] == {"name", "type", "kernel", "stride", "simd"}                     # the pool
    assert {"kernel", "pad"} <= keys[3] and not {"kernel", "pad"} & keys[4]            # conv, fc
    assert "pipeline" not in keys[4] and keys[1] >= {"pipeline", "weight_memory", "fifo_depth", "weight_bits"}


def test_a_weights_path_with_quotes_tabs_and_backslashes_round_trips(tmp_path):
    cfg = netconfig.load(ROOT / "configs" / "lfc_small.toml")
    name = 'my "best"\tweights\\v2.npz'
    netconfig.save_weights(tmp_path / name, cfg)
    text = netconfig.dumps(cfg, name)
    again = netconfig.loads(text, base_dir=tmp_path)
    assert again.weights_ref == str((tmp_path / name).resolve())
    _assert_same(cfg, again)
    # an absolute path written back as it is
    third = netconfig.loads(netconfig.dumps(again), base_dir=ROOT)
    assert third.weights_ref == again.weights_ref
    assert netconfig.toml_value('a"b\tc\\d\ne\x7f') == '"a\\"b\\tc\\\\d\\ne\\u007F"'


# --------------------------------------------------------------------------- label rule

def _one_bit_net(label=None, act="bipolar"):
    text = _net() + _layer(name="fc0", type="fc", out=16, pe=4, simd=16) + _layer(
        name="fc1", type="fc", out=10, act=act, pe=2, simd=16)
    return text if label is None else text.replace('name = "t"\n', f'name = "t"\nlabel = "{label}"\n')


def test_label_rule_loads_dumps_and_round_trips():
    cfg = netconfig.loads(_one_bit_net("highest_set_bit"))
    assert cfg.label == "highest_set_bit"
    text = netconfig.dumps(cfg)
    assert 'label = "highest_set_bit"' in text.split("[[layer]]")[0]
    again = netconfig.loads(text)
    assert again.label == "highest_set_bit" and netconfig.dumps(again) == text
    plain = netconfig.loads(_one_bit_net())
    assert plain.label == "argmax" and "label" not in netconfig.dumps(plain)    # the default is not written
    assert netconfig.loads(_one_bit_net("argmax")).topology_hash() == plain.topology_hash()
    assert cfg.topology_hash() != plain.topology_hash()      # another label port: other hardware
    assert netconfig.loads(_one_bit_net("highest_set_bit", act="uint1")).label == "highest_set_bit"


def test_label_rule_errors():
    _expect(_one_bit_net("lowest_set_bit"), "network 't'", "label", "'lowest_set_bit'", "highest_set_bit")
    _expect(_one_bit_net("highest_set_bit", act="acc"), "network 't'", "label", "'fc1'", 'act = "acc"',
            "argmax")
    _expect(_one_bit_net("highest_set_bit", act="uint2"), "network 't'", "label", "'fc1'", 'act = "uint2"')

"""qnnfab.interop.bnn_pynq: BNN-PYNQ's finnthesizer parameter files into qnnfab matrices.

Expected values come from the format definition: a params folder the test
writes itself from known matrices, packed the way BNN-PYNQ's finnthesizer.py
packs them (its reshape / split / swapaxes steps, copied below), a single
cleared bit placed by the documented word and bit order, and the padding rules
seen in the real LFC W1A1 fixture (tests/fixtures/bnn_pynq/lfc-w1a1, its last
layer)."""

import dataclasses
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from fractions import Fraction

from qnnfab.interop.bnn_pynq import FcLayer, fixed_input_thresholds, parse_config_h, read_layer, read_network

FIXTURE = Path(__file__).parent / "fixtures" / "bnn_pynq" / "lfc-w1a1"


def _config_h(layers, apis=None):
    """A finnthesizer-style config.h text for ``[(simd, pe, mw, mh)]`` layers with 1-bit weights and
    ``apis`` activation bits (default 1)."""
    out = ["#ifndef __LAYER_CONFIG_H_", "#define __LAYER_CONFIG_H_"]
    for i, (simd, pe, mw, mh) in enumerate(layers):
        vals = dict(SIMD=simd, PE=pe, WMEM=mw * mh // (simd * pe), TMEM=mh // pe, MW=mw, MH=mh,
                    WPI=1, API=apis[i] if apis else 1, WPF=0, APF=0)
        out += [f"#define L{i}_{k} {v}" for k, v in vals.items()]
    return "\n".join(out + ["#endif"]) + "\n"


def _finnthesizer_pack(bits, thresholds, simd, pe):
    """Per-PE (uint64 words, int64 thresholds) as finnthesizer's BNNProcElemMem.__updatePEMapping makes them."""
    n, s = bits.shape
    nf, sf = n // pe, s // simd
    m = bits.reshape(n, sf, simd).astype(np.int64)
    m = m.dot(1 << np.arange(simd, dtype=np.int64))           # ArrayToAp_uints, precision 1
    w = np.asarray(np.split(m, nf, axis=0))
    w = np.asarray(np.split(w, sf, axis=-1)).swapaxes(0, 2)
    w = w.reshape(w.shape[0], -1)
    t = np.array(np.split(thresholds, nf, axis=0)).swapaxes(0, 1)
    return w, t


def _write_params(folder, index, bits, thresholds, simd, pe):
    w, t = _finnthesizer_pack(bits, thresholds, simd, pe)
    for p in range(pe):
        w[p].astype("<u8").tofile(folder / f"{index}-{p}-weights.bin")
        t[p].astype("<i8").tofile(folder / f"{index}-{p}-thres.bin")


#: a tiny two-layer network: 20 inputs padded to 24, 8 hidden, 3 classes padded to 4 rows
TINY = [(8, 4, 24, 8), (4, 2, 8, 4)]


def _tiny(folder, apis, seed=28):
    """A params folder and config.h of TINY with activation bits ``apis``; returns (params, config.h,
    [(bits, strict thresholds (MH, NT))]). Thresholds are drawn over the accumulator range (ties
    occur), ascending except row 0."""
    rng = np.random.default_rng(seed)
    hw, params = folder / "hw", folder / "params"
    hw.mkdir(), params.mkdir()
    (hw / "config.h").write_text(_config_h(TINY, apis))
    (hw / "top.cpp").write_text("const unsigned int inBits = 4 * 5;\n")
    (params / "classes.txt").write_text("a\nb\nc\n")
    mats = []
    for i, (simd, pe, mw, mh) in enumerate(TINY):
        bits = rng.integers(0, 2, (mh, mw), dtype=np.uint8)
        popcount = apis[i] == 1 and (i == 0 or apis[i - 1] == 1)
        lo, hi = (0, mw) if popcount else (-mw, mw)
        thr = np.sort(rng.integers(lo - 1, hi + 1, (mh, 1 << (apis[i] - 1))), axis=1).astype(np.int64)
        thr[0] = thr[0, ::-1]                      # a row with descending thresholds (a flipped row)
        if i == 0:
            bits[:, 20:] = 1                       # finnthesizer pads columns with 1 bits
        _write_params(params, i, bits, thr, simd, pe)
        mats.append((bits, thr))
    return params, hw / "config.h", mats


@pytest.fixture
def tiny(tmp_path):
    return _tiny(tmp_path, [1, 1])


def test_read_layer_inverts_finnthesizer_packing(tiny):
    params, config_h, mats = tiny
    layers = parse_config_h(config_h.read_text())
    for layer, (bits, thr) in zip(layers, mats):
        got_bits, got_thr = read_layer(params, layer)
        assert got_bits.dtype == np.uint8 and got_bits.shape == bits.shape
        np.testing.assert_array_equal(got_bits, bits)
        np.testing.assert_array_equal(got_thr, thr)


def test_read_layer_multi_threshold_rows(tmp_path):
    """API 2: NT = 2 thresholds per row, entry nf*NT + i of PE pe's file."""
    params, config_h, mats = _tiny(tmp_path, [2, 1])
    layers = parse_config_h(config_h.read_text())
    assert [l.thresholds_per_row for l in layers] == [2, 1]
    for layer, (bits, thr) in zip(layers, mats):
        got_bits, got_thr = read_layer(params, layer)
        np.testing.assert_array_equal(got_bits, bits)
        np.testing.assert_array_equal(got_thr, thr)


@pytest.mark.parametrize("row, col", [(0, 0), (5, 13), (7, 23), (2, 63)])
def test_single_cleared_bit_lands_on_its_row_and_column(tmp_path, row, col):
    """Row r lives in PE r % PE at fold r // PE; word nf*SF + sf, bit j = column sf*SIMD + j."""
    simd, pe, mw, mh = (8, 4, 24, 8) if col < 24 else (64, 2, 64, 8)
    layer = FcLayer(0, simd, pe, mw * mh // (simd * pe), mh // pe, mw, mh, 1, 1, 0, 0)
    sf = mw // simd
    for p in range(pe):
        words = np.full(layer.wmem, (1 << simd) - 1, dtype=np.uint64)
        if p == row % pe:
            words[(row // pe) * sf + col // simd] ^= np.uint64(1 << (col % simd))
        words.astype("<u8").tofile(tmp_path / f"0-{p}-weights.bin")
        np.arange(layer.tmem, dtype="<i8").tofile(tmp_path / f"0-{p}-thres.bin")
    bits, thr = read_layer(tmp_path, layer)
    expect = np.ones((mh, mw), dtype=np.uint8)
    expect[row, col] = 0
    np.testing.assert_array_equal(bits, expect)
    np.testing.assert_array_equal(thr, (np.arange(mh) // pe)[:, None])


def test_read_network_config_and_arrays(tiny):
    params, config_h, mats = tiny
    text, arrays = read_network(params, config_h, name="tiny")
    doc = tomllib.loads(text)
    net = doc["network"]
    assert (net["name"], net["input_shape"], net["input_pad"]) == ("tiny", [20], 4)
    assert (net["input_kind"], net["weights"], net["label"]) == ("bipolar", "tiny.npz", "highest_set_bit")
    assert [(l["name"], l["type"], l["out"], l["act"], l["simd"], l["pe"]) for l in doc["layer"]] == \
        [(f"fc{i}", "fc", mh, "bipolar", simd, pe) for i, (simd, pe, mw, mh) in enumerate(TINY)]
    assert doc["layer"][-1]["classes"] == 3 and "classes" not in doc["layer"][0]
    assert sorted(arrays) == ["fc0/thresholds", "fc0/weights", "fc1/thresholds", "fc1/weights"]
    for i, (bits, thr) in enumerate(mats):
        np.testing.assert_array_equal(arrays[f"fc{i}/weights"], bits)
        # strict popcount > T is popcount >= T + 1
        np.testing.assert_array_equal(arrays[f"fc{i}/thresholds"], thr + 1)


def _bnn_pynq_forward(mats, apis, x):
    """BNN-PYNQ's arithmetic (finn-hlslib, finnthesizer) on input bits x (B, MW0): W1A1 layers count
    popcount > T; other layers take the dot product with weights -1/+1 and inputs -1/+1 (bits) or
    count - 1 (a layer with more than one threshold starts its count at -1), counting acc > T."""
    values, bits_in = x.astype(np.int64), True
    for (bits, thr), api in zip(mats, apis):
        w = bits.astype(np.int64)
        if bits_in and api == 1:
            acc = values @ w.T + (1 - values) @ (1 - w).T
        else:
            a = 2 * values - 1 if bits_in else values
            acc = a @ (2 * w - 1).T
        count = (acc[:, :, None] > thr[None]).sum(axis=2)
        values, bits_in = (count, True) if api == 1 else (count - 1, False)
    return values


def _qnnfab_forward(arrays, kinds, x):
    """qnnfab's arithmetic on the imported arrays: popcount for bipolar inputs, sum(w * c) with
    w = -1/+1 for uint inputs; output = count of thresholds with acc >= T."""
    values = x.astype(np.int64)
    for i, kind in enumerate(kinds):
        w = arrays[f"fc{i}/weights"].astype(np.int64)
        acc = values @ w.T + (1 - values) @ (1 - w).T if kind == "bipolar" else values @ (2 * w - 1).T
        values = (acc[:, :, None] >= arrays[f"fc{i}/thresholds"][None]).sum(axis=2)
    return values


@pytest.mark.parametrize("apis", [[1, 1], [2, 1], [2, 2]])
def test_imported_thresholds_give_bnn_pynq_outputs(tmp_path, apis):
    """Every layer's output under qnnfab's >= thresholds equals BNN-PYNQ's strict ones, ties included."""
    params, config_h, mats = _tiny(tmp_path, apis)
    text, arrays = read_network(params, config_h)
    doc = tomllib.loads(text)
    assert [l["act"] for l in doc["layer"]] == ["bipolar" if a == 1 else f"uint{a}" for a in apis]
    for i, a in enumerate(apis):
        t = arrays[f"fc{i}/thresholds"]
        assert t.shape == (TINY[i][3], (1 << a) - 1) and np.all(np.diff(t, axis=1) >= 0)
    rng = np.random.default_rng(1)
    x = np.zeros((4000, 24), dtype=np.uint8)
    x[:, :20] = rng.integers(0, 2, (4000, 20))
    kinds = ["bipolar"] + ["bipolar" if a == 1 else "uint" for a in apis[:-1]]
    for n in (1, 2):
        expect = _bnn_pynq_forward(mats[:n], apis[:n], x)
        got = _qnnfab_forward(arrays, kinds[:n], x)
        if apis[n - 1] > 1:
            expect = expect + 1                    # qnnfab's count c is BNN-PYNQ's value c - 1
        np.testing.assert_array_equal(got, expect)


def test_read_network_overrides(tiny):
    params, config_h, _ = tiny
    text, _ = read_network(params, config_h, weights_file="w.npz", inputs=24, classes=4)
    doc = tomllib.loads(text)
    assert (doc["network"]["input_pad"], doc["network"]["weights"], doc["layer"][-1]["classes"]) == (0, "w.npz", 4)


def test_thresholds_same_decisions_as_strict():
    """acc >= T + 1 and acc > T agree on every integer popcount."""
    acc = np.arange(-3, 1030)[:, None]
    for t in (-1, 0, 512, 1024, 32767):
        assert np.array_equal(acc > t, acc >= t + 1)


def test_real_config_h_shapes():
    layers = parse_config_h((FIXTURE / "config.h").read_text())
    assert [(l.mw, l.mh, l.simd, l.pe) for l in layers] == \
        [(832, 1024, 64, 32), (1024, 1024, 32, 64), (1024, 1024, 64, 32), (1024, 64, 8, 16)]
    # cycles per frame (MH/PE)*(MW/SIMD): 512 at the two slowest layers
    assert max(l.neuron_folds * l.synapse_folds for l in layers) == 512


def test_real_last_layer_padding():
    """LFC W1A1's last layer: 10 class rows, padded to 64 with all-1 rows and the clipped 16-bit maximum."""
    layer = parse_config_h((FIXTURE / "config.h").read_text())[3]
    bits, thr = read_layer(FIXTURE, layer)
    assert bits.shape == (64, 1024) and thr.shape == (64, 1)
    assert np.all(bits[10:] == 1) and np.all(thr[10:] == 2**15 - 1)
    assert np.all((thr[:10] > 0) & (thr[:10] < 1024))
    ones = bits[:10].mean(axis=1)
    assert np.all((ones > 0.3) & (ones < 0.7)), ones       # trained rows, not padding


def _raises(match, fn, *args, **kw):
    with pytest.raises(ConfigError, match=match):
        fn(*args, **kw)


def test_bad_input(tiny, tmp_path):
    params, config_h, _ = tiny
    _raises("no L<n>_SIMD", parse_config_h, "#define FOO 1\n")
    _raises("only 1-bit weights", parse_config_h, _config_h(TINY).replace("L1_WPI 1", "L1_WPI 2"))
    _raises("only 1-bit weights", parse_config_h, _config_h(TINY).replace("L1_APF 0", "L1_APF 1"))
    _raises("WMEM", parse_config_h, _config_h(TINY).replace("L0_WMEM 6", "L0_WMEM 5"))
    _raises(r"lacks the defines \['L0_IFM_CH'", parse_config_h, _config_h(TINY) + "#define L0_K 3\n")
    _raises("lacks the defines", parse_config_h, _config_h(TINY).replace("#define L1_TMEM 2\n", ""))
    _raises("layer 0 has MH", parse_config_h, _config_h([(8, 4, 24, 8), (4, 2, 12, 4)]))
    pass_through = tmp_path / "pass" / "config.h"
    pass_through.parent.mkdir()
    pass_through.write_text(_config_h(TINY, [1, 16]))
    _raises("L1_API: is 16", read_network, params, pass_through)
    _raises("only 1-bit weights", parse_config_h, _config_h(TINY, [16, 1]))   # API 16 only on the last layer
    (params / "1-1-thres.bin").write_bytes(b"\0" * 8)
    _raises("expected 16", read_network, params, config_h)
    (params / "1-1-thres.bin").unlink()
    _raises("does not exist", read_network, params, config_h)
    _raises("does not exist", read_network, params, tmp_path / "nope.h")
    _raises("do not fit L0_MW", read_network, params, config_h, inputs=25)
    _raises("classes do not fit", read_network, params, config_h, classes=5)


@pytest.mark.parametrize("apis", [[1, 1], [2, 1]])
def test_netconfig_loads_imported_network(tmp_path, apis):
    """Once netconfig knows input_pad / label / classes, the imported config loads with its arrays."""
    from qnnfab import netconfig
    names = {f.name for f in dataclasses.fields(netconfig.NetConfig)}
    if not {"input_pad", "label"} <= names:
        pytest.skip("netconfig has no input_pad / label fields yet")
    params, config_h, mats = _tiny(tmp_path, apis)
    text, arrays = read_network(params, config_h, name="tiny")
    np.savez(tmp_path / "tiny.npz", **arrays)
    cfg = netconfig.loads(text, base_dir=tmp_path)
    for i, (spec, (bits, thr)) in enumerate(zip(cfg.layers, mats)):
        np.testing.assert_array_equal(spec.weights, bits)
        np.testing.assert_array_equal(spec.thresholds, arrays[f"fc{i}/thresholds"])


def test_import_command_writes_a_config_that_runs_like_bnn_pynq(tmp_path, capsys):
    """``qnnfab import PARAMS --config-h FILE``: the three files, BNN-PYNQ's folding, its read-out,
    and the input codes of its MNIST host (bit 1 for a pixel >= 128)."""
    import json
    from qnnfab import netconfig
    from qnnfab.cli import main
    from qnnfab.golden.network import network_of
    from qnnfab.interop.qonnx_import import InputCodes
    from qnnfab.packing import frame_labels
    params, config_h, mats = _tiny(tmp_path, [1, 1])
    out = tmp_path / "out"
    assert main(["import", str(params), "--config-h", str(config_h), "--out", str(out), "--name", "tiny"]) == 0
    assert "BNN-PYNQ" in capsys.readouterr().out
    cfg = netconfig.load(out / "tiny.toml")
    assert [(L.simd, L.pe) for L in cfg.layers] == [(simd, pe) for simd, pe, _, _ in TINY]
    assert cfg.label == "highest_set_bit" and cfg.input_pad == 4
    codes = InputCodes.from_json((out / "tiny.input_codes.json").read_text())
    pixels = np.array([[0, 127, 128, 255] * 5])
    np.testing.assert_array_equal(codes.to_codes(pixels), [[0, 0, 1, 1] * 5])
    # the golden model on the import equals BNN-PYNQ's strict arithmetic on the packed matrices
    x = np.random.default_rng(1).integers(0, 2, (50, 20))
    want = frame_labels(_bnn_pynq_forward(mats, [1, 1], np.concatenate([x, np.zeros((50, 4), int)], 1))[:, :3],
                        "highest_set_bit")
    np.testing.assert_array_equal(frame_labels(network_of(cfg).forward(x), cfg.label), want)
    # a second import refuses to replace them; --fps does not apply
    assert main(["import", str(params), "--config-h", str(config_h), "--out", str(out), "--name", "tiny"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["import", str(params), "--config-h", str(config_h), "--out", str(tmp_path / "o2"),
                 "--fps", "1000"]) == 2
    assert "--fps" in capsys.readouterr().err and not (tmp_path / "o2").exists()
    assert json.loads((out / "tiny.input_codes.json").read_text())["zero_point"] == -128.0


# ---------------------------------------------------------------- CNV: conv layers, fixed-point input


def test_fixed_input_threshold_matches_strict_fixed_point_rule():
    """BNN-PYNQ's first CNV layer counts a > T / 2^8 with a = S / 2^7 (S = sum(w * code), codes of
    ap_fixed<8,1>) in its ap_fixed<24,16> accumulator; qnnfab counts S >= T'. Checked with exact
    fractions for every threshold of the reachable range (27 inputs: |S| <= 27 * 128), odd and even,
    at every S within 4 of the decision point and at the range ends."""
    s_max = 27 * 128
    thresholds = np.arange(-2 * s_max - 3, 2 * s_max + 4)
    assert np.any(thresholds % 2 == 1) and np.any(thresholds % 2 == 0)
    converted = fixed_input_thresholds(thresholds[:, None])[:, 0]
    for t, t_q in zip(thresholds.tolist(), converted.tolist()):
        centre = t // 2
        for s in [*range(centre - 4, centre + 5), -s_max, s_max]:
            strict = Fraction(s, 128) > Fraction(t, 256)
            assert (s >= t_q) == strict, (t, s, t_q)


def test_fixed_input_threshold_half_step():
    """An odd stored threshold lies half way between two accumulator values: T = 5 (a > 5/256) needs
    S/128 >= 3/128, T = -5 needs S >= -2."""
    np.testing.assert_array_equal(fixed_input_thresholds(np.array([5, 4, -5, -4, 0, -1])), [3, 3, -2, -1, 1, 0])


def _conv_config_h(wpi=1, api=1):
    """A finnthesizer-style config.h of a tiny CNV: conv0 10x10x3 -> 8x8x8, (2x2 max pool) conv1
    4x4x8 -> 2x2x8, fc 32 -> 16, last fc 16 -> 4 without thresholds (API 16); ``wpi``-bit weights and
    ``api``-bit activations (the last layer's SIMD 2 for 2-bit activations, as BNN-PYNQ's is 1)."""
    conv = [(3, 3, 10, 8, 8, 3, 4), (3, 8, 4, 8, 2, 8, 2)]
    out = ["#ifndef __LAYER_CONFIG_H_", "#define __LAYER_CONFIG_H_"]
    for i, (k, ic, idim, oc, odim, simd, pe) in enumerate(conv):
        vals = dict(K=k, IFM_CH=ic, IFM_DIM=idim, OFM_CH=oc, OFM_DIM=odim, SIMD=simd, PE=pe,
                    WMEM=k * k * ic * oc // (simd * pe), TMEM=oc // pe, WPI=wpi, API=api, WPF=0, APF=0)
        out += [f"#define L{i}_{n} {v}" for n, v in vals.items()]
    for i, (simd, pe, mw, mh, a) in enumerate([(8, 2, 32, 16, api), (4 if api == 1 else 2, 2, 16, 4, 16)], start=2):
        vals = dict(SIMD=simd, PE=pe, WMEM=mw * mh // (simd * pe), TMEM=mh // pe, MW=mw, MH=mh,
                    WPI=wpi, API=a, WPF=0, APF=0)
        out += [f"#define L{i}_{n} {v}" for n, v in vals.items()]
    return "\n".join(out + ["#endif"]) + "\n"


def _pack_values(values, simd, pe, wpi):
    """Per-PE uint64 words of a (MH, MW) matrix of wpi-bit two's complement values (bits for wpi 1),
    as finnthesizer's ArrayToAp_uints and __updatePEMapping make them."""
    n, s = values.shape
    nf, sf = n // pe, s // simd
    m = values.reshape(n, sf, simd).astype(np.int64)
    m = np.where(m < 0, m + (1 << wpi), m).astype(np.uint64)
    m = m.dot(np.left_shift(np.uint64(1), np.uint64(wpi) * np.arange(simd, dtype=np.uint64)))
    w = np.asarray(np.split(m, nf, axis=0))
    w = np.asarray(np.split(w, sf, axis=-1)).swapaxes(0, 2)
    return w.reshape(w.shape[0], -1)


def _tiny_cnv(folder, seed=5, wpi=1, api=1):
    """The tiny CNV of :func:`_conv_config_h` written as a params folder; returns (layers, [weights as
    made: OIHW for conv, (MH, MW) for fc; bits for 1-bit weights, values -2..1 for 2-bit],
    [strict thresholds (MH, NT) sorted]). Layer 0's thresholds are drawn over its scaled range
    (2 * |S| <= 2 * 27 * 128 * 2), the others' over the accumulator range."""
    rng = np.random.default_rng(seed)
    (folder / "config.h").write_text(_conv_config_h(wpi, api))
    (folder / "classes.txt").write_text("a\nb\nc\n")
    layers = parse_config_h((folder / "config.h").read_text())
    weights, strict = [], []
    for layer in layers:
        lo, hi = (0, 2) if wpi == 1 else (-2, 2)
        if layer.is_conv:
            w = rng.integers(lo, hi, (layer.mh, layer.ifm_ch, 3, 3))
            flat = w.transpose(0, 2, 3, 1).reshape(layer.mh, -1)      # finnthesizer's (ky, kx, c) columns
        else:
            w = flat = rng.integers(lo, hi, (layer.mh, layer.mw))
        nt = 1 << (layer.api - 1) if layer.thresholded else 1
        if layer.index == 0:
            t = rng.integers(-2 * 27 * 128 // 4, 2 * 27 * 128 // 4 + 1, (layer.mh, nt))
        elif api == 1:
            t = rng.integers(0, layer.mw + 1, (layer.mh, nt))
        else:
            t = rng.integers(-layer.mw // 3, layer.mw // 3 + 1, (layer.mh, nt))
        t = np.sort(t, axis=1)
        words = _pack_values(flat, layer.simd, layer.pe, wpi)
        tt = np.array(np.split(t, layer.neuron_folds, axis=0)).swapaxes(0, 1).reshape(layer.pe, -1)
        for p in range(layer.pe):
            words[p].astype("<u8").tofile(folder / f"{layer.index}-{p}-weights.bin")
            if layer.thresholded:
                tt[p].astype("<i8").tofile(folder / f"{layer.index}-{p}-thres.bin")
        weights.append(w.astype(np.uint8) if wpi == 1 else w)
        strict.append(t)
    return layers, weights, strict


def test_read_conv_network_inverts_finnthesizer_packing(tmp_path):
    """Conv weights packed as finnthesizer packs them (matrix columns (ky, kx, c)) come back as the
    OIHW weights they were made from; thresholds: the first layer's fixed-point rule, popcount + 1
    after; the last layer has no thres.bin files and outputs accumulators."""
    layers, oihw, strict = _tiny_cnv(tmp_path)
    assert [(l.is_conv, l.mw, l.mh, l.thresholded) for l in layers] == \
        [(True, 27, 8, True), (True, 72, 8, True), (False, 32, 16, True), (False, 16, 4, False)]
    text, arrays = read_network(tmp_path, tmp_path / "config.h", name="tinycnv")
    doc = tomllib.loads(text)
    assert (doc["network"]["input_shape"], doc["network"]["input_kind"], doc["network"]["input_bits"]) == \
        ([10, 10, 3], "int", 8)
    assert [(l["name"], l["type"], l.get("act"), l.get("simd"), l.get("pe")) for l in doc["layer"]] == [
        ("conv0", "conv", "bipolar", 3, 4), ("pool0", "maxpool", None, None, None), ("conv1", "conv", "bipolar", 8, 2),
        ("fc0", "fc", "bipolar", 8, 2), ("fc1", "fc", "acc", 4, 2)]
    assert doc["layer"][-1]["classes"] == 3 and doc["network"]["label"] == "argmax"
    for name, w in zip(["conv0", "conv1", "fc0", "fc1"], oihw):
        np.testing.assert_array_equal(arrays[f"{name}/weights"], w)
    np.testing.assert_array_equal(arrays["conv0/thresholds"], strict[0] // 2 + 1)
    np.testing.assert_array_equal(arrays["conv1/thresholds"], strict[1] + 1)
    np.testing.assert_array_equal(arrays["fc0/thresholds"], strict[2] + 1)
    assert "fc1/thresholds" not in arrays


def test_conv_config_h_checks_dimensions():
    text = _conv_config_h()
    _raises("OFM_DIM 3 is not IFM_DIM 4", parse_config_h, text.replace("L1_OFM_DIM 2", "L1_OFM_DIM 3"))
    _raises("neither equal nor a 2x2 max pool", parse_config_h,
            text.replace("L1_IFM_DIM 4", "L1_IFM_DIM 3").replace("L1_OFM_DIM 2", "L1_OFM_DIM 1"))
    _raises(r"L1_IFM_CH: is 16 but layer 0 has 8", parse_config_h,
            text.replace("L1_IFM_CH 8", "L1_IFM_CH 16").replace("L1_WMEM 36", "L1_WMEM 72"))
    _raises("L2_MW: is 24 but layer 1 outputs 2x2x8", parse_config_h,
            text.replace("L2_MW 32", "L2_MW 24").replace("L2_WMEM 32", "L2_WMEM 24"))


def _bnn_pynq_cnv_forward(layers, weights, strict, codes):
    """BNN-PYNQ's CNV arithmetic on (B, H, W, 3) int8 codes: layer 0 counts sum(w * code / 128) > T / 256;
    later layers count XNOR popcount > T after 1-bit activations, sum(w * a) > T after 2-bit ones
    (a = count - 1, ThresholdsActivation's -1 start); w = -1/+1 for 1-bit weights, the values for 2-bit;
    OR / max pools where IFM_DIM halves; the last layer's accumulators out."""
    x, in_api = codes.astype(np.int64), 8
    for layer, w, t in zip(layers, weights, strict):
        if layer.is_conv:
            if layer.index and layer.ifm_dim != x.shape[1]:
                b, h, wd, c = x.shape
                x = x.reshape(b, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))
            oh = x.shape[1] - layer.kernel + 1
            # patch (ky, kx, c) against OIHW weights
            x = np.stack([x[:, ky:ky + oh, kx:kx + oh, :]
                          for ky in range(3) for kx in range(3)], axis=3)        # (B, oh, oh, 9, C)
            wk = w.transpose(0, 2, 3, 1).reshape(layer.mh, 9, layer.ifm_ch).astype(np.int64)
            dot = lambda a, v: np.einsum("bhwkc,okc->bhwo", a, v)
        else:
            x = x.reshape(len(x), -1)
            wk = w.astype(np.int64)
            dot = lambda a, v: a @ v.T
        value = 2 * wk - 1 if layer.wpi == 1 else wk
        if layer.index == 0:
            acc = dot(x.astype(object), value.astype(object))
            acc = np.vectorize(lambda a: Fraction(int(a), 128), otypes=[object])(acc)
            count = sum((acc > np.vectorize(lambda tt: Fraction(int(tt), 256), otypes=[object])(t[:, i])).astype(int)
                        for i in range(t.shape[1]))
        else:
            acc = dot(x, wk) + dot(1 - x, 1 - wk) if in_api == 1 else dot(x, value)
            if not layer.thresholded:
                return acc
            count = sum((acc > t[:, i]).astype(np.int64) for i in range(t.shape[1]))
        x, in_api = np.asarray(count - 1 if layer.api > 1 else count, np.int64), layer.api
    return x


def test_imported_cnv_golden_equals_bnn_pynq_arithmetic(tmp_path):
    """qnnfab's golden model on the imported tiny CNV gives BNN-PYNQ's popcounts (first classes rows)."""
    from qnnfab import netconfig
    from qnnfab.golden.network import network_of
    layers, weights, strict = _tiny_cnv(tmp_path)
    text, arrays = read_network(tmp_path, tmp_path / "config.h", name="tinycnv")
    np.savez(tmp_path / "tinycnv.npz", **arrays)
    cfg = netconfig.loads(text, base_dir=tmp_path)
    codes = np.random.default_rng(3).integers(-128, 128, (40, 10, 10, 3))
    codes[0] = 127                                        # a saturated frame
    expect = _bnn_pynq_cnv_forward(layers, weights, strict, codes)[:, :3]
    got = network_of(cfg).forward(codes)
    assert len(np.unique(expect)) > 3
    np.testing.assert_array_equal(got, expect)


# ---------------------------------------------------------------- CNV: BNN-PYNQ's input codes, the import command

CNV_FIXTURE = Path(__file__).parent / "fixtures" / "bnn_pynq" / "cnv-w1a1"


def _host_code(p):
    """BNN-PYNQ's CIFAR-10 host on pixel p, from its definition: tiny_cnn's x = -1 + 2p/255, then
    ap_fixed<8,1,AP_RND,AP_SAT>: x * 128 rounded to nearest (ties up), saturated to [-128, 127]."""
    v = (Fraction(2 * p, 255) - 1) * 128
    return max(-128, min(127, math.floor(v + Fraction(1, 2))))


def test_cifar_input_codes_are_bnn_pynq_host_preprocessing():
    """Every pixel value maps to the host's fixed-point code (exact fractions), equal to the golden
    model's CNV input quantizer; the JSON round trip keeps the raw-pixel mapping."""
    from qnnfab.golden import cnv_input_codes
    from qnnfab.interop.bnn_pynq import CIFAR_INPUT_CODES, MNIST_INPUT_CODES, input_codes
    from qnnfab.interop.qonnx_import import InputCodes
    pixels = np.arange(256).reshape(1, 16, 16, 1)
    want = np.array([_host_code(p) for p in range(256)]).reshape(pixels.shape)
    np.testing.assert_array_equal(CIFAR_INPUT_CODES.to_codes(pixels), want)
    np.testing.assert_array_equal(cnv_input_codes(pixels), want)
    assert (want.min(), want.max(), _host_code(128)) == (-128, 127, 1)
    again = InputCodes.from_json(CIFAR_INPUT_CODES.to_json())
    np.testing.assert_array_equal(again.to_codes(pixels), want)
    assert input_codes(CNV_FIXTURE / "config.h") == CIFAR_INPUT_CODES
    assert input_codes(FIXTURE / "config.h") == MNIST_INPUT_CODES


def test_real_cnv_config_h_shapes():
    """CNV W1A1's config.h: six 3x3 convolutions (pools where IFM_DIM halves) and three fc layers,
    the last one 64 rows of raw popcounts; the slowest layers take 32,768 cycles per frame."""
    layers = parse_config_h((CNV_FIXTURE / "config.h").read_text())
    assert [(l.is_conv, l.mw, l.mh, l.simd, l.pe) for l in layers] == [
        (True, 27, 64, 3, 16), (True, 576, 64, 32, 32), (True, 576, 128, 32, 16), (True, 1152, 128, 32, 16),
        (True, 1152, 256, 32, 4), (True, 2304, 256, 32, 1), (False, 256, 512, 4, 1), (False, 512, 512, 8, 1),
        (False, 512, 64, 1, 4)]
    assert [l.ifm_dim for l in layers[:6]] == [32, 30, 14, 12, 5, 3] and not layers[-1].thresholded
    cycles = [l.neuron_folds * l.synapse_folds * max(l.ofm_dim, 1) ** 2 for l in layers]
    assert max(cycles) == 32768


def test_real_cnv_first_layer_on_bnn_pynq_deer(tmp_path):
    """BNN-PYNQ's own first CNV layer on its own preprocessed deer.bin: qnnfab's golden conv layer
    with the imported thresholds (acc >= floor(T/2) + 1) gives BNN-PYNQ's decisions a > T / 2^8 with
    a = sum(w * code / 128), i.e. 2 * S > T on S = sum(w * code), computed here from the packed bits;
    about half of the real thresholds are odd (the half-step case)."""
    from qnnfab import netconfig
    from qnnfab.golden.network import network_of
    layer = parse_config_h((CNV_FIXTURE / "config.h").read_text())[0]
    bits, strict = read_layer(CNV_FIXTURE, layer)
    assert bits.shape == (64, 27) and strict.shape == (64, 1)
    odd = int(np.sum(strict % 2))
    assert 16 <= odd <= 48, odd
    record = np.frombuffer((CNV_FIXTURE / "deer.bin").read_bytes(), np.uint8)
    pixels = record[1:].reshape(3, 32, 32).transpose(1, 2, 0)[None]
    codes = np.array([_host_code(p) for p in range(256)])[pixels]
    # BNN-PYNQ: matrix column (ky, kx, c) of row o against the pixel (y + ky, x + kx, c)
    w = 2 * bits.astype(np.int64) - 1
    s = np.zeros((30, 30, 64), np.int64)
    for col in range(27):
        ky, kx, c = col // 9, (col // 3) % 3, col % 3
        s += codes[0, ky:ky + 30, kx:kx + 30, c, None] * w[:, col]
    expect = (2 * s > strict[:, 0]).astype(np.int64)
    text = "\n".join(['[network]', 'name = "conv0"', 'input_shape = [32, 32, 3]', 'input_kind = "int"',
                      'input_bits = 8', 'weights = "conv0.npz"', '', '[[layer]]', 'name = "conv0"', 'type = "conv"',
                      'out = 64', 'kernel = 3', 'act = "bipolar"', 'simd = 3', 'pe = 16']) + "\n"
    oihw = bits.reshape(64, 3, 3, 3).transpose(0, 3, 1, 2)        # documented (ky, kx, c) columns
    np.savez(tmp_path / "conv0.npz", **{"conv0/weights": oihw, "conv0/thresholds": fixed_input_thresholds(strict)})
    got = network_of(netconfig.loads(text, base_dir=tmp_path)).forward(codes)
    assert 0.2 < expect.mean() < 0.8
    np.testing.assert_array_equal(got[0], expect)
    # near misses differ on this image: >= instead of >, and rounding T / 2 up instead of down
    assert not np.array_equal((2 * s >= strict[:, 0]).astype(np.int64), expect)
    assert not np.array_equal((s >= -(-strict[:, 0] // 2) + 1).astype(np.int64), expect)


def test_import_command_reads_a_cnv_with_bnn_pynq_input_codes(tmp_path, capsys):
    """``qnnfab import`` of a CNV params folder: its folding kept, argmax over the classes, and input
    codes that turn 8-bit pixels into BNN-PYNQ's host codes; golden on those codes equals BNN-PYNQ's
    arithmetic on its stored parameters."""
    from qnnfab import netconfig
    from qnnfab.cli import main
    from qnnfab.golden.network import network_of
    from qnnfab.interop.qonnx_import import InputCodes
    folder = tmp_path / "params"
    folder.mkdir()
    layers, weights, strict = _tiny_cnv(folder)
    out = tmp_path / "out"
    assert main(["import", str(folder), "--config-h", str(folder / "config.h"), "--out", str(out),
                 "--name", "tinycnv"]) == 0
    printed = capsys.readouterr().out
    assert "--input-codes" in printed and "CIFAR-10 host" in printed
    cfg = netconfig.load(out / "tinycnv.toml")
    assert [(L.simd, L.pe) for L in cfg.layers if L.type != "maxpool"] == [(3, 4), (8, 2), (8, 2), (4, 2)]
    assert (cfg.label, cfg.classes, cfg.input_kind, cfg.input_bits) == ("argmax", 3, "int", 8)
    codes = InputCodes.from_json((out / "tinycnv.input_codes.json").read_text())
    pixels = np.random.default_rng(9).integers(0, 256, (30, 10, 10, 3))
    pixels[0] = 255
    x = codes.to_codes(pixels)
    np.testing.assert_array_equal(x, np.array([_host_code(p) for p in range(256)])[pixels])
    expect = _bnn_pynq_cnv_forward(layers, weights, strict, x)[:, :3]
    np.testing.assert_array_equal(network_of(cfg).forward(x), expect)


@pytest.mark.parametrize("wpi, api", [(1, 2), (2, 2)])
def test_two_bit_cnv_golden_equals_bnn_pynq_arithmetic(tmp_path, wpi, api):
    """CNV W1A2 / W2A2 (2-bit weights as finnthesizer packs them, values -2..1): qnnfab's golden model on
    the import gives BNN-PYNQ's class scores sum(w * (c - 1)) exactly, through the offset row and column;
    the layer before the last one gets PE extra rows, the last one int weights."""
    from qnnfab import netconfig
    from qnnfab.golden.network import network_of
    layers, weights, strict = _tiny_cnv(tmp_path, seed=7, wpi=wpi, api=api)
    text, arrays = read_network(tmp_path, tmp_path / "config.h", name="tinycnv")
    doc = tomllib.loads(text)
    assert [(l["name"], l.get("act"), l.get("weight_kind", "bipolar"), l.get("out")) for l in doc["layer"]] == [
        ("conv0", "uint2", "bipolar" if wpi == 1 else "int", 8), ("pool0", None, "bipolar", None),
        ("conv1", "uint2", "bipolar" if wpi == 1 else "int", 8), ("fc0", "uint2", "bipolar" if wpi == 1 else "int", 18),
        ("fc1", "acc", "int", 4)]
    bits_read, _ = read_layer(tmp_path, layers[0])
    np.testing.assert_array_equal(bits_read.reshape(8, 3, 3, 3).transpose(0, 3, 1, 2), weights[0])
    np.savez(tmp_path / "tinycnv.npz", **arrays)
    cfg = netconfig.loads(text, base_dir=tmp_path)
    codes = np.random.default_rng(3).integers(-128, 128, (40, 10, 10, 3))
    codes[0], codes[1] = 127, -128                                        # saturated frames
    expect = _bnn_pynq_cnv_forward(layers, weights, strict, codes)[:, :3]
    got = network_of(cfg).forward(codes)
    assert len(np.unique(expect)) > 5 and expect.min() < 0 < expect.max()
    np.testing.assert_array_equal(got, expect)


def test_cnv_config_h_refuses_other_precisions():
    text = _conv_config_h()
    _raises(r"L0: has 3.0-bit weights .* CNV layers with 1- or 2-bit", parse_config_h, text.replace("L0_WPI 1", "L0_WPI 3"))
    _raises(r"L1: has 1.0-bit weights and 4.0-bit", parse_config_h, text.replace("L1_API 1", "L1_API 4"))

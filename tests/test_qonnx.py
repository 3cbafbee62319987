"""QONNX export and import (qnnfab.interop): qonnx's execute_onnx is the reference of the graphs' semantics."""

import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qonnx", reason="QONNX tests need the onnx extra: pip install 'qnnfab[onnx]'")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from qonnx.core.datatype import DataType  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402

from qnnfab import netconfig  # noqa: E402
from qnnfab.errors import ConfigError  # noqa: E402
from qnnfab.interop.qonnx_export import execute, export_qonnx, input_values, stored_outputs  # noqa: E402
from qnnfab.interop.qonnx_import import import_qonnx, write_imported  # noqa: E402
from qnnfab.golden.network import network_of

ROOT = Path(__file__).resolve().parent.parent


def random_config(seed):
    """A random valid config: every input, weight and activation kind, conv padding with any
    pad value of the input kind, strides, max pools, FC after conv, raw or thresholded outputs."""
    rng = random.Random(seed)
    image = rng.random() < 0.6
    in_kind = rng.choice(["bipolar", "uint", "int"])
    in_bits = rng.randint(2, 4)
    shape = [rng.randint(3, 6), rng.randint(3, 6), rng.randint(1, 3)] if image else [rng.randint(4, 20)]
    net = [f'name = "r{seed}"', f"input_shape = {shape}", f'input_kind = "{in_kind}"', f"seed = {seed}"]
    if in_kind != "bipolar":
        net.append(f"input_bits = {in_bits}")
    layers = []
    cur, kind, bits = shape, in_kind, in_bits
    n = rng.randint(1, 3)
    for i in range(n):
        last = i == n - 1
        t = [f'name = "l{i}"']
        if len(cur) == 3 and kind in ("bipolar", "uint") and rng.random() < 0.25 and min(cur[:2]) >= 2:
            t += ['type = "maxpool"', "kernel = 2", f"stride = {rng.choice([1, 2])}"]
            s = 2 if "stride = 2" in t[-1] else 1
            cur = [(cur[0] - 2) // s + 1, (cur[1] - 2) // s + 1, cur[2]]
            layers.append(t)
            continue
        out = rng.randint(2, 6)
        wk = rng.choice(["bipolar", "ternary", "int"])
        act = "acc" if last and rng.random() < 0.6 else rng.choice(["bipolar", "uint2", "uint3"])
        t += [f"out = {out}", f'act = "{act}"', f'weight_kind = "{wk}"']
        if wk == "int":
            t.append(f"weight_bits = {rng.randint(2, 4)}")
        if len(cur) == 3 and rng.random() < 0.7:
            k = rng.choice([k for k in (1, 2, 3) if k <= min(cur[:2])])
            pad = rng.randint(0, k - 1)
            lo, hi = (0, 1) if kind == "bipolar" else (0, (1 << bits) - 1) if kind == "uint" else (
                0, (1 << (bits - 1)) - 1)   # the hardware pads int inputs with non-negative codes
            stride = rng.choice([1, 2])
            t += ['type = "conv"', f"kernel = {k}", f"stride = {stride}", f"pad = {pad}",
                  f"pad_value = {rng.randint(lo, hi)}"]
            cur = [(cur[0] + 2 * pad - k) // stride + 1, (cur[1] + 2 * pad - k) // stride + 1, out]
        else:
            t.append('type = "fc"')
            cur = [out]
        layers.append(t)
        kind, bits = ("bipolar", 1) if act == "bipolar" else ("uint", int(act[4:])) if act != "acc" else ("acc", 0)
    text = "[network]\n" + "\n".join(net) + "\n" + "".join("\n[[layer]]\n" + "\n".join(t) + "\n" for t in layers)
    return netconfig.loads(text, ".", f"<random {seed}>")


def _golden(cfg, x):
    return network_of(cfg).forward(x)


def _same_layers(a, b):
    assert [L.type for L in a.layers] == [L.type for L in b.layers]
    for x, y in zip(a.layers, b.layers):
        for f in ("out", "act", "weight_kind", "weight_bits", "kernel", "stride", "pad", "in_shape", "out_shape"):
            assert getattr(x, f) == getattr(y, f), (x.name, f)
        assert x.pad == 0 or x.pad_value == y.pad_value, x.name     # without padding the value means nothing
        np.testing.assert_array_equal(x.weights, y.weights)
        if x.thresholds is None:
            assert y.thresholds is None
        else:   # a threshold beyond the accumulator's range acts as its end: the import stores the ends
            lo, hi = _acc_range(x)
            np.testing.assert_array_equal(np.clip(x.thresholds, lo, hi + 1), y.thresholds)


def _acc_range(L):
    from qnnfab.kinds import DataKind, accumulator_range
    n = L.kernel * L.kernel * L.in_shape[2] if L.type == "conv" else int(np.prod(L.in_shape))
    return accumulator_range(n, DataKind.of(L.weight_kind, L.weight_bits), DataKind.of(L.in_kind, L.in_bits))


SEEDS = list(range(40))


@pytest.mark.parametrize("seed", SEEDS)
def test_export_runs_to_the_golden_outputs_and_imports_back(seed):
    cfg = random_config(seed)
    model = export_qonnx(cfg)
    x = cfg.random_inputs(6, seed)
    got = stored_outputs(cfg, execute(model, input_values(cfg, x)))
    np.testing.assert_array_equal(got, _golden(cfg, x))
    back = import_qonnx(model, name=cfg.name).cfg
    _same_layers(cfg, back)


@pytest.mark.parametrize("config", ["lfc_small", "cnv_small"])
def test_shipped_configs_round_trip(config):
    cfg = netconfig.load(ROOT / "configs" / f"{config}.toml")
    model = export_qonnx(cfg)
    x = cfg.random_inputs(4, 1)
    np.testing.assert_array_equal(stored_outputs(cfg, execute(model, input_values(cfg, x))), _golden(cfg, x))
    _same_layers(cfg, import_qonnx(model, name="x").cfg)


def test_export_annotates_integer_datatypes():
    cfg = netconfig.load(ROOT / "configs" / "cnv_small.toml")
    m = ModelWrapper(export_qonnx(cfg))
    assert m.get_tensor_datatype("global_in") == DataType[f"{cfg.input_kind.upper()}{cfg.input_bits}"]
    weights = [t.name for t in m.graph.initializer if "_W" in t.name]
    assert weights and all(m.get_tensor_datatype(w).name in ("BIPOLAR", "TERNARY") or
                           m.get_tensor_datatype(w).name.startswith("INT") for w in weights)
    ops = [n.op_type for n in m.graph.node]
    assert "MultiThreshold" in ops and "Conv" in ops and "MaxPool" in ops


# ---------------------------------------------------------------------------
# Brevitas-style graphs, built by hand as brevitas.export.export_qonnx writes them

def _const(name, v):
    return numpy_helper.from_array(np.asarray(v, dtype=np.float32), name)


class _G:
    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def c(self, v):
        self.k += 1
        n = f"c{self.k}"
        self.inits.append(_const(n, v))
        return n

    def op(self, op, inputs, domain=None, **attrs):
        self.k += 1
        out = f"t{self.k}"
        kw = {"domain": domain} if domain else {}
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{self.k}", **kw, **attrs))
        return out

    def quant(self, x, scale, bits, signed, narrow=False, mode="ROUND"):
        return self.op("Quant", [x, self.c(scale), self.c(0.0), self.c(float(bits))], "qonnx.custom_op.general",
                       signed=int(signed), narrow=int(narrow), rounding_mode=mode)

    def bipolar(self, x, scale):
        return self.op("BipolarQuant", [x, self.c(scale)], "qonnx.custom_op.general")

    def model(self, out, in_shape, out_shape):
        self.nodes.append(helper.make_node("Identity", [out], ["y"], name="out"))
        g = helper.make_graph(self.nodes, "brevitas_like",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("qonnx.custom_op.general", 1)])


def _bn(g, x, c, rng, gamma_sign=None):
    gamma = rng.choice([0.5, 1.0, 2.0], size=c) * (gamma_sign if gamma_sign is not None else
                                                   rng.choice([1.0, -1.0], size=c))
    var = rng.choice([0.25, 1.0, 4.0], size=c) - 1e-5  # var + eps a power-of-two square: exact sqrt
    beta, mean = rng.integers(-2, 3, c) / 4, rng.integers(-2, 3, c) / 4   # near the pre-activations' centre
    return g.op("BatchNormalization", [x, g.c(gamma), g.c(beta), g.c(mean), g.c(var)], epsilon=1e-5)


def brevitas_mlp(rng, act_bits, w_bits, sign_as_quant=False, feats=16, hidden=8, classes=4):
    """Quant input -> [Quant/BipolarQuant weights MatMul, BN, (Relu +) activation quant] x 2 -> MatMul -> Mul scale.

    ``sign_as_quant``: binary weights and activations as signed 1-bit ``Quant`` nodes (qonnx runs them
    as the sign), as some Brevitas quantizers export them."""
    g = _G()
    if sign_as_quant:
        g.bipolar = lambda x, scale: g.quant(x, float(np.asarray(scale).reshape(-1)[0]), 1, signed=True)
    x = g.quant("x", 0.125, 4, signed=False)          # the model quantizes its own float input
    width = feats
    for layer in range(2):
        w = rng.normal(0, 1, (width, hidden)).astype(np.float32)
        if w_bits == 1:
            wq = g.bipolar(g.c(w), np.full((1,), 0.5, np.float32))
        else:
            wq = g.quant(g.c(w), 0.25, w_bits, signed=True, narrow=w_bits == 2)
        y = g.op("MatMul", [x, wq])
        y = _bn(g, y, hidden, rng)
        if act_bits == 1:
            x = g.bipolar(y, 1.0)
        else:
            x = g.quant(g.op("Relu", [y]), 0.5, act_bits, signed=False)
        width = hidden
    w = rng.normal(0, 1, (width, classes)).astype(np.float32)
    wq = g.bipolar(g.c(w), np.full((1,), 0.5, np.float32)) if w_bits == 1 else g.quant(g.c(w), 0.25, w_bits, True)
    y = g.op("Mul", [g.op("MatMul", [x, wq]), g.c(0.75)])
    return g.model(y, [1, feats], [1, classes])


def brevitas_cnn(rng, act_bits, flatten="Flatten"):
    """Quant input (NCHW) -> conv (bipolar weights) + BN + act -> MaxPool -> Flatten/Reshape (NCHW order) -> Gemm."""
    g = _G()
    x = g.quant("x", 1.0 / 16, 5, signed=False)
    w = rng.normal(0, 1, (4, 1, 3, 3)).astype(np.float32)
    y = g.op("Conv", [x, g.bipolar(g.c(w), np.full((4, 1, 1, 1), 0.5, np.float32))], kernel_shape=[3, 3])
    y = _bn(g, y, 4, rng)
    x = g.bipolar(y, 1.0) if act_bits == 1 else g.quant(g.op("Relu", [y]), 0.25, act_bits, signed=False)
    x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    if flatten == "Flatten":
        x = g.op("Flatten", [x], axis=1)
    else:
        x = g.op("Reshape", [x, numpy_helper.from_array(np.array([1, -1], np.int64)).name])
        g.inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), x.replace("t", "shape_")))
        g.nodes[-1].input[1] = x.replace("t", "shape_")
    w = rng.normal(0, 1, (3, 4 * 3 * 3)).astype(np.float32)    # Gemm [out, in], transB
    wq = g.quant(g.c(w), 0.5, 3, signed=True)
    y = g.op("Gemm", [x, wq, g.c(np.full(3, 0.5))], transB=1)    # one bias for every class keeps the arg-max
    return g.model(y, [1, 1, 8, 8], [1, 3])


def _check_import(model, x_float):
    imp = import_qonnx(model, name="brevitas")
    cfg = imp.cfg
    frames = imp.input_codes.to_codes(x_float)
    ref = execute(model, x_float.astype(np.float32))
    got = network_of(cfg).forward(frames).reshape(len(frames), -1).astype(np.float64)
    # the model's outputs are a*scores + b with one positive a for all outputs (see notes)
    a, b = np.polyfit(got.reshape(-1), ref.reshape(-1), 1) if got.std() else (1.0, 0.0)
    np.testing.assert_allclose(ref, a * got + b, atol=1e-4)
    assert a > 0
    assert len(np.unique(got, axis=0)) >= 5, "the test network barely depends on its input"
    return imp


@pytest.mark.parametrize("act_bits,w_bits,sign_as_quant", [(1, 1, False), (2, 1, False), (1, 2, False), (2, 3, False),
                                                           (3, 4, False), (1, 1, True)])
def test_brevitas_style_mlp_imports_exactly(act_bits, w_bits, sign_as_quant):
    rng = np.random.default_rng(act_bits * 10 + w_bits)
    model = brevitas_mlp(rng, act_bits, w_bits, sign_as_quant)
    x = rng.uniform(0, 2, (64, 16))
    # place some inputs exactly on quantizer ties (half codes) of the input quantizer
    x[:8, :] = (rng.integers(0, 30, (8, 16)) + 0.5) * 0.125
    imp = _check_import(model, x)
    assert imp.cfg.input_kind == "uint" and imp.cfg.input_bits == 4
    kinds = [L.weight_kind for L in imp.cfg.layers]
    assert kinds[0] == {1: "bipolar", 2: "ternary"}.get(w_bits, "int")


@pytest.mark.parametrize("act_bits,flatten", [(1, "Flatten"), (2, "Reshape")])
def test_brevitas_style_conv_net_imports_exactly(act_bits, flatten):
    rng = np.random.default_rng(act_bits)
    model = brevitas_cnn(rng, act_bits, flatten)
    x = rng.uniform(0, 2, (32, 1, 8, 8))
    imp = _check_import(model, x)
    assert [L.type for L in imp.cfg.layers] == ["conv", "maxpool", "fc"]


def test_inputs_exactly_on_thresholds_follow_the_graph():
    """A one-layer net whose pre-activations land exactly on the activation quantizer's ties."""
    g = _G()
    x = g.quant("x", 1.0, 3, signed=False)
    w = np.array([[1.0, -1.0], [1.0, 1.0]], np.float32)               # (in, out)
    y = g.op("MatMul", [x, g.bipolar(g.c(w), np.ones(1, np.float32))])
    y = g.op("Mul", [y, g.c(0.5)])                                     # z = acc / 2: ties at half codes
    out = g.quant(g.op("Relu", [y]), 1.0, 2, signed=False)
    model = g.model(out, [1, 2], [1, 2])
    x = np.array([[a, b] for a in range(8) for b in range(8)], np.float32)
    imp = import_qonnx(model, name="ties")
    ref = execute(model, x)
    got = network_of(imp.cfg).forward(imp.input_codes.to_codes(x))
    np.testing.assert_array_equal(got, ref)
    assert {0.5, 1.5, 2.5}.issubset(set(((x @ np.sign(w)) / 2).reshape(-1)))   # ties were exercised


@pytest.mark.parametrize("build,message", [
    (lambda g, x: g.op("Sigmoid", [x]), "is not an op qnnfab's hardware implements"),
    (lambda g, x: g.op("Add", [x, x]), "feeds 2 nodes"),
    (lambda g, x: g.quant(x, 0.5, 2, signed=True), "a signed, narrow or offset activation quantizer"),
    (lambda g, x: g.op("Add", [x, g.c(np.array([0.5, -0.5]))]), "scaled per channel"),
])
def test_unsupported_graphs_are_refused_naming_the_node(build, message):
    g = _G()
    x = g.quant("x", 1.0, 3, signed=False)
    y = g.op("MatMul", [x, g.bipolar(g.c(np.ones((2, 2), np.float32)), np.ones(1, np.float32))])
    y = build(g, y)
    model = g.model(y, [1, 2], [1, 2])
    with pytest.raises(ConfigError, match=message) as info:
        import_qonnx(model, name="bad")
    assert "node '" in str(info.value)


def test_write_imported_writes_a_loadable_config(tmp_path):
    rng = np.random.default_rng(0)
    imp = import_qonnx(brevitas_mlp(rng, 2, 1), name="digits_mlp")
    toml = write_imported(imp, tmp_path)
    cfg = netconfig.load(toml)
    x = rng.integers(0, 16, (10, 16))
    np.testing.assert_array_equal(network_of(cfg).forward(x), network_of(imp.cfg).forward(x))
    assert (tmp_path / "digits_mlp.input_codes.json").exists()


# ---------------------------------------------------------------------------
# command line

def test_cli_export_then_import_round_trips(tmp_path, capsys):
    from qnnfab.cli import main
    onnx_path = tmp_path / "cnv.onnx"
    assert main(["export", "--config", str(ROOT / "configs" / "cnv_small.toml"), "--out", str(onnx_path)]) == 0
    assert main(["import", str(onnx_path), "--out", str(tmp_path / "imp"), "--name", "cnv_back"]) == 0
    out = capsys.readouterr().out
    assert "input codes the hardware reads: int8" in out
    back = netconfig.load(tmp_path / "imp" / "cnv_back.toml")
    _same_layers(netconfig.load(ROOT / "configs" / "cnv_small.toml"), back)


def test_cli_import_refuses_an_unsupported_graph_and_writes_nothing(tmp_path, capsys):
    from qnnfab.cli import main
    g = _G()
    x = g.quant("x", 1.0, 3, signed=False)
    y = g.op("Sigmoid", [g.op("MatMul", [x, g.bipolar(g.c(np.ones((2, 2), np.float32)), np.ones(1, np.float32))])])
    import onnx
    onnx.save(g.model(y, [1, 2], [1, 2]), str(tmp_path / "bad.onnx"))
    assert main(["import", str(tmp_path / "bad.onnx"), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(Sigmoid)" in err and "is not an op" in err
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("argv,message", [
    (["import", "missing.onnx", "--out", "x"], "is not a file"),
    (["export", "--config", str(ROOT / "configs" / "lfc_small.toml"), "--out", "model.txt"], "does not end in .onnx"),
])
def test_cli_bad_arguments_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    from qnnfab.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert list(tmp_path.iterdir()) == []


def test_trainer_writes_qonnx_that_runs_to_its_predictions(tmp_path, capsys):
    from qnnfab.cli import main
    assert main(["train", "--schemes", "ste", "--epochs", "1", "--out", str(tmp_path), "--qonnx"]) == 0
    onnx_path = next(tmp_path.glob("*.onnx"))
    cfg = netconfig.load(onnx_path.with_suffix(".toml"))
    import onnx
    x = cfg.random_inputs(16, 3)
    got = stored_outputs(cfg, execute(onnx.load(str(onnx_path)), input_values(cfg, x)))
    np.testing.assert_array_equal(got, network_of(cfg).forward(x))


# ---------------------------------------------------------------------------
# real Brevitas exports (made by bench/bench_brevitas.py with torch + brevitas; no torch needed here)

FIXTURES = ROOT / "tests" / "fixtures"
BREVITAS = sorted(FIXTURES.glob("brevitas_*.onnx"))


def test_the_brevitas_fixtures_are_there():
    names = {p.stem for p in BREVITAS}
    assert {f"brevitas_{n}_{e}" for n in ("mlp_w1a1", "cnn_w1a2") for e in ("torchscript", "dynamo")} <= names


@pytest.mark.parametrize("path", BREVITAS, ids=lambda p: p.stem)
def test_real_brevitas_exports_import_exactly_on_the_digits(path):
    import onnx

    from qnnfab.train.datasets import load_digits
    model = onnx.load(str(path))
    ds = load_digits()
    inits = {t.name for t in model.graph.initializer}
    data_in = next(i for i in model.graph.input if i.name not in inits)
    rank = len(data_in.type.tensor_type.shape.dim)
    x = (ds.x_test[:150] / float((1 << ds.pixel_bits) - 1)).astype(np.float32)   # as the bench trained them
    x = x.reshape(-1, 64) if rank == 2 else x.reshape(-1, 1, 8, 8)       # one channel: NHWC = NCHW order
    imp = import_qonnx(model, name="brevitas")
    golden = network_of(imp.cfg).forward(imp.input_codes.to_codes(x)).reshape(len(x), -1).astype(np.float64)
    ref = execute(model, x)
    a, b = np.polyfit(golden.reshape(-1), ref.reshape(-1), 1)
    assert a > 0
    np.testing.assert_allclose(ref, a * golden + b, atol=1e-4 * a)     # every score, every image
    top2 = np.sort(ref, axis=1)[:, -2:]
    untied = top2[:, 1] - top2[:, 0] > 1e-3 * a     # float32 rounding in the graph splits integer ties
    assert (golden.argmax(1)[untied] == ref.argmax(1)[untied]).all() and untied.mean() > 0.9
    assert np.mean(golden.argmax(1) == ds.y_test[:150]) > 0.6             # a trained network, not noise


def test_streamlined_nhwc_graph_imports():
    """A channels-last graph input (N, H, W, C) transposed to NCHW before the first convolution."""
    cfg = netconfig.load(ROOT / "configs" / "cnv_small.toml")
    model = export_qonnx(cfg)
    g = model.graph
    h, w, c = cfg.input_shape
    old = g.input[0]
    nhwc = helper.make_tensor_value_info("x_nhwc", TensorProto.FLOAT, [1, h, w, c])
    g.node.insert(0, helper.make_node("Transpose", ["x_nhwc"], [old.name], name="to_nchw", perm=[0, 3, 1, 2]))
    g.input.remove(old)
    g.input.append(nhwc)
    wrapper = ModelWrapper(model)
    wrapper.set_tensor_datatype("x_nhwc", DataType[f"INT{cfg.input_bits}"])
    imp = import_qonnx(wrapper.model, name="nhwc")
    _same_layers(cfg, imp.cfg)
    x = cfg.random_inputs(3, 2)
    got = stored_outputs(cfg, execute(wrapper.model, x.astype(np.float32)))    # NHWC values go straight in
    np.testing.assert_array_equal(got, _golden(cfg, x))
    np.testing.assert_array_equal(imp.input_codes.to_codes(x), x)

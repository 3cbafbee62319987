"""`qnnfab import` of residual QONNX graphs (Add of two branches, GlobalAveragePool, Concat, forks):
graph configs exported to QONNX and imported back run to the same outputs in the golden model and in
qonnx's execute_onnx; Brevitas-style residual graphs import to what qonnx computes."""

import numpy as np
import pytest

pytest.importorskip("qonnx", reason="QONNX tests need the onnx extra: pip install 'qnnfab[onnx]'")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from qnnfab import netconfig  # noqa: E402
from qnnfab.errors import ConfigError  # noqa: E402
from qnnfab.golden.graph_network import graph_forward  # noqa: E402
from qnnfab.interop.qonnx_export import execute, export_qonnx, input_values, stored_outputs  # noqa: E402
from qnnfab.interop.qonnx_import import import_qonnx, write_imported  # noqa: E402
from qnnfab.train import graph_export as GE  # noqa: E402
from qnnfab.train import graph_trainer as G  # noqa: E402
from qnnfab.train.datasets import load_digits  # noqa: E402

CONCAT = """
[network]
name = "cat-tiny"
input_shape = [6, 6, 2]
input_kind = "uint"
input_bits = 3
seed = 5

[[layer]]
name = "stem"
type = "conv"
out = 4
act = "uint2"
pad = 1
pe = 2
simd = 2

[[layer]]
name = "wide"
type = "conv"
out = 4
act = "uint2"
pad = 1
pe = 4
simd = 4

[[layer]]
name = "narrow"
type = "conv"
input = "stem"
out = 2
kernel = 1
act = "uint2"
pe = 2
simd = 4

[[layer]]
name = "cat"
type = "concat"
input = ["wide", "narrow"]
simd = 2

[[layer]]
name = "res"
type = "add"
input = ["cat", "cat"]
act = "uint2"
simd = 2

[[layer]]
name = "gap"
type = "global_avgpool"
act = "uint3"
simd = 2

[[layer]]
name = "fc"
type = "fc"
out = 3
act = "acc"
simd = 6
pe = 3
"""


def _reads(cfg, L):
    """The layers (None: the input) ``L`` reads."""
    by = {x.name: x for x in cfg.layers}
    if L.inputs:
        return [by.get(n) for n in L.inputs]
    i = cfg.layers.index(L)
    return [cfg.layers[i - 1] if i else None]


def _paired_layers(a, b):
    """The layers of configs ``a`` and ``b`` paired by walking both graphs back from their last layers
    (the importer may order independent branches differently); asserts both graphs have one shape."""
    pairs, todo = {}, [(a.layers[-1], b.layers[-1])]
    while todo:
        x, y = todo.pop()
        if x is None or y is None:
            assert x is None and y is None
            continue
        if x.name in pairs:
            assert pairs[x.name][1] is y
            continue
        assert (x.type, x.act, x.kernel, x.stride, x.pad, x.out_shape) == (y.type, y.act, y.kernel, y.stride, y.pad,
                                                                           y.out_shape), (x.name, y.name)
        pairs[x.name] = (x, y)
        rx, ry = _reads(a, x), _reads(b, y)
        assert len(rx) == len(ry)
        todo += zip(rx, ry)
    assert len(pairs) == len(a.layers) == len(b.layers)
    return list(pairs.values())


@pytest.fixture(scope="module")
def trained_residual():
    ds = load_digits().subset(300, 60)
    model = G.train(ds, G.resnet((4, 8), 10), scheme="ternary", act_bits=2, epochs=1, batch=32, seed=2, monitor=0)
    return GE.graph_config(model), ds.x_test.reshape(-1, 8, 8, 1)


def _round_trip(cfg, x, tmp_path):
    imported = import_qonnx(export_qonnx(cfg), name="back")
    back = netconfig.load(write_imported(imported, tmp_path))
    _paired_layers(cfg, back)
    want = graph_forward(cfg, x)
    assert np.array_equal(graph_forward(back, x), want)
    assert np.array_equal(stored_outputs(back, execute(export_qonnx(back), input_values(back, x))), want)
    return back


def test_a_trained_residual_graph_round_trips(trained_residual, tmp_path):
    """Strided and 1x1 shortcut convolutions, a fork, two adds, a global pool: export, import, same outputs."""
    cfg, x = trained_residual
    cfg_path = tmp_path / "src.toml"
    netconfig.save_weights(tmp_path / "src.npz", cfg)
    cfg_path.write_text(netconfig.dumps(cfg, "src.npz"))
    cfg = netconfig.load(cfg_path)
    back = _round_trip(cfg, x, tmp_path / "back")
    for a, b in _paired_layers(cfg, back):
        if a.thresholds is not None:
            assert np.array_equal(a.thresholds, b.thresholds), a.name
        if a.weights is not None:
            assert np.array_equal(a.weights, b.weights), a.name


def test_a_concat_and_an_add_of_one_tensor_round_trip(tmp_path):
    cfg = netconfig.loads(CONCAT, tmp_path, "<concat>")
    x = cfg.random_inputs(12, seed=1)
    back = _round_trip(cfg, x, tmp_path)
    assert [L.type for L in back.layers] == ["conv", "conv", "conv", "concat", "add", "global_avgpool", "fc"]


# ---------------------------------------------------------------------- Brevitas-style residual graphs

class _G:
    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def c(self, v):
        self.k += 1
        self.inits.append(numpy_helper.from_array(np.asarray(v, dtype=np.float32), f"c{self.k}"))
        return f"c{self.k}"

    def op(self, op, inputs, domain=None, **attrs):
        self.k += 1
        kw = {"domain": domain} if domain else {}
        self.nodes.append(helper.make_node(op, inputs, [f"t{self.k}"], name=f"{op}_{self.k}", **kw, **attrs))
        return f"t{self.k}"

    def quant(self, x, scale, bits, signed, narrow=False):
        return self.op("Quant", [x, self.c(scale), self.c(0.0), self.c(float(bits))], "qonnx.custom_op.general",
                       signed=int(signed), narrow=int(narrow), rounding_mode="ROUND")

    def conv(self, x, w, stride=1, pad=0):
        wq = self.quant(self.c(w), 1.0, 2, signed=True, narrow=True)        # ternary weights
        k = w.shape[-1]
        return self.op("Conv", [x, wq], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def bn(self, x, c, rng, positive=False):
        gamma = rng.choice([0.5, 1.0, 2.0], size=c) * (1.0 if positive else rng.choice([1.0, -1.0], size=c))
        var = rng.choice([0.25, 1.0, 4.0], size=c) - 1e-5
        beta, mean = rng.integers(-2, 3, c) / 4, rng.integers(0, 5, c) / 2
        return self.op("BatchNormalization", [x, self.c(gamma), self.c(beta), self.c(mean), self.c(var)],
                       epsilon=1e-5)

    def model(self, out, in_shape, out_shape):
        self.nodes.append(helper.make_node("Identity", [out], ["y"], name="out"))
        g = helper.make_graph(self.nodes, "brevitas_residual",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("qonnx.custom_op.general", 1)])


def brevitas_residual(rng, c=4, bad=None):
    """Quant input -> conv3x3 BN ReLU Quant (the stem, forked) -> [conv3x3 s2 BN ReLU Quant] and
    [1x1 s2 conv BN ReLU Quant] -> Add -> BN -> ReLU -> Quant -> GlobalAveragePool -> Quant ->
    Flatten -> MatMul; ``bad`` builds a variant the importer must refuse."""
    g = _G()
    a = 0.5
    x = g.quant("x", 0.25, 4, signed=False)
    stem = g.quant(g.op("Relu", [g.bn(g.conv(x, rng.normal(size=(c, 2, 3, 3))), c, rng)]), a, 2, signed=False)
    branch = g.quant(g.op("Relu", [g.bn(g.conv(stem, rng.normal(size=(c, c, 3, 3)), 2, 1), c, rng)]), a, 2,
                     signed=False)
    short_scale = 0.25 if bad == "scales" else a
    short = g.quant(g.op("Relu", [g.bn(g.conv(stem, rng.normal(size=(c, c, 1, 1)), 2), c, rng)]), short_scale, 2,
                    signed=False)
    y = g.op("Add", [branch, short])
    y = g.bn(y, c, rng, positive=True)
    if bad == "negative":
        y = g.op("Mul", [y, g.c(-1.0)])
    y = g.quant(g.op("Relu", [y]), a, 2, signed=False)
    if bad == "dangling":          # a third branch of the stem that nothing reads
        g.quant(g.op("Relu", [g.bn(g.conv(stem, rng.normal(size=(c, c, 1, 1))), c, rng)]), a, 2, signed=False)
    y = g.quant(g.op("GlobalAveragePool", [y]), 0.25, 3, signed=False)
    y = g.op("Flatten", [y], axis=1)
    wq = g.quant(g.c(rng.normal(size=(c, 3))), 1.0, 2, signed=True, narrow=True)
    y = g.op("MatMul", [y, wq])
    return g.model(y, [1, 2, 6, 6], [1, 3])


def test_a_brevitas_residual_graph_imports_to_what_qonnx_computes():
    rng = np.random.default_rng(7)
    model = brevitas_residual(rng)
    imp = import_qonnx(model, name="res")
    types = [(L.type, L.inputs) for L in imp.cfg.layers]
    assert [t for t, _ in types] == ["conv", "conv", "conv", "add", "global_avgpool", "fc"]
    assert types[2][1] == ("conv0",) and set(types[3][1]) == {"conv1", "conv2"}
    x = rng.uniform(0, 4, (40, 2, 6, 6)).astype(np.float32)
    ref = execute(model, x)
    got = graph_forward(imp.cfg, imp.input_codes.to_codes(x))
    np.testing.assert_array_equal(0.25 * got, ref)          # the last Quant's scale times the weights' 1.0
    assert any("0.25 * (hardware scores)" in n for n in imp.notes)
    assert len(np.unique(got, axis=0)) > 5                 # the scores depend on the image


@pytest.mark.parametrize("bad,message", [("scales", "joins uint2 codes at scale 0.5 with uint2 codes at scale 0.25"),
                                         ("negative", "negative scale"), ("dangling", "ends nowhere")])
def test_residual_graphs_the_hardware_cannot_run_are_refused(bad, message):
    with pytest.raises(ConfigError, match=message) as info:
        import_qonnx(brevitas_residual(np.random.default_rng(7), bad=bad), name="bad")
    assert "node '" in str(info.value)


def test_cli_imports_a_residual_graph(tmp_path, capsys):
    from qnnfab.cli import main
    src = tmp_path / "src.toml"
    src.write_text(CONCAT)
    onnx_path = tmp_path / "cat.onnx"
    assert main(["export", "--config", str(src), "--out", str(onnx_path)]) == 0
    assert main(["import", str(onnx_path), "--out", str(tmp_path / "imp"), "--name", "cat_back", "--fps", "10"]) == 2
    assert "--fps" in capsys.readouterr().err and not (tmp_path / "imp").exists()
    assert main(["import", str(onnx_path), "--out", str(tmp_path / "imp"), "--name", "cat_back"]) == 0
    out = capsys.readouterr().out
    assert "(reads conv0)" in out and "a graph config" in out
    cfg, back = netconfig.load(src), netconfig.load(tmp_path / "imp" / "cat_back.toml")
    x = cfg.random_inputs(8, seed=2)
    assert np.array_equal(graph_forward(back, x), graph_forward(cfg, x))

"""Training residual graphs (qnnfab.train.graph_trainer) and exporting them to graph configs whose golden
model (qnnfab.golden.graph_network.graph_forward) reproduces the trained network's scores exactly."""

import copy

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.errors import ConfigError
from qnnfab.golden import multithreshold
from qnnfab.golden.conv import im2col
from qnnfab.golden.graph_network import graph_forward
from qnnfab.netconfig import NETWORK_INPUT
from qnnfab.train import graph_export as GE
from qnnfab.train import graph_trainer as G
from qnnfab.train.datasets import load_digits


@pytest.fixture(scope="module")
def small():
    return load_digits().subset(400, 200)


def _images(ds, x):
    return x.reshape((-1,) + tuple(ds.input_shape))


@pytest.fixture(scope="module")
def trained(small):
    """One tiny residual graph per quantizer: stem 4, stage 4 (identity skip), stage 8 (stride-2 conv and
    1x1 stride-2 shortcut), global average pool, fc 10."""
    return {(s, b): G.train(small, G.resnet((4, 8), 10), scheme=s, act_bits=b, epochs=2, batch=32, seed=1,
                            monitor=50)
            for s, b in (("ste", 1), ("ste", 2), ("ternary", 2))}


def _golden(tmp_path, model, name):
    toml_path, _ = GE.export_graph(model, tmp_path, name)
    return netconfig.load(toml_path)


# ---------------------------------------------------------------------- pieces

@pytest.mark.parametrize("kernel,stride,pad", [(3, 1, 1), (3, 2, 1), (1, 2, 0), (2, 2, 1)])
def test_col2im_strided_is_the_adjoint_of_im2col(kernel, stride, pad):
    rng = np.random.default_rng(kernel * 10 + stride + pad)
    x = rng.normal(size=(2, 7, 6, 3))
    cols = im2col(x, kernel, stride, pad, 0)
    c = rng.normal(size=cols.shape)
    back = G.col2im_strided(c, x.shape[1:], kernel, stride, pad)
    assert back.shape == x.shape
    assert np.sum(cols * c) == pytest.approx(np.sum(x * back), rel=1e-12)


def test_graph_gradients_finite_differences(monkeypatch):
    """The backward pass (fork: a node read by two; strided and 1x1 shortcut convs; add; global pool; BN)
    against central differences, with the quantizers replaced by smooth functions (a quantized loss is
    piecewise constant)."""
    monkeypatch.setattr(G, "binarize", lambda w, scheme: w)
    monkeypatch.setattr(G, "kbit_act", lambda y, bits: (np.tanh(y), 1 - np.tanh(y) ** 2))
    monkeypatch.setattr(G, "_wgrad_factor", lambda w, scheme, v: 1.0)
    rng = np.random.default_rng(0)
    nodes = G.build(G.resnet((3, 4), 5), (6, 6, 2), 5)
    assert {n.kind for n in nodes} == {"conv", "add", "global_avgpool", "fc"}
    assert any(n.kind == "conv" and n.kernel == 1 and n.stride == 2 for n in nodes)
    model = G.GraphModel(nodes, (6, 6, 2), 4, "ste", 2, 1e-4, log_alpha=-0.3)
    G._init(model, rng, (0.5, 0.5))
    for n in model.nodes:
        if n.gamma is not None:
            n.gamma = rng.uniform(0.5, 1.5, n.gamma.shape) * rng.choice([-1, 1], n.gamma.shape)
            n.beta = rng.normal(0, 0.5, n.beta.shape)
    x, y = rng.integers(0, 16, (7, 6, 6, 2)), rng.integers(0, 5, 7)
    _, grads, _ = G._train_step(copy.deepcopy(model), x, y, np.float64)
    assert {name for name, _ in grads} == {n.name for n in model.nodes}
    h = 1e-6
    for (name, param), g in grads.items():
        arr = getattr(model.node(name), param)
        assert g.shape == arr.shape
        for idx in {tuple(int(rng.integers(0, s)) for s in arr.shape) for _ in range(3)}:
            plus, minus = copy.deepcopy(model), copy.deepcopy(model)
            getattr(plus.node(name), param)[idx] += h
            getattr(minus.node(name), param)[idx] -= h
            fd = (G._train_step(plus, x, y, np.float64)[0] - G._train_step(minus, x, y, np.float64)[0]) / (2 * h)
            assert g[idx] == pytest.approx(fd, rel=1e-4, abs=1e-7), (name, param, idx)


def test_sum_thresholds_count_the_bn_stages_of_every_sum():
    """Thresholds on an integer sum d in [0, 12] equal, for every d, the count of stages j with
    gamma (d s - mean) / sigma + (beta - c_j) >= 0 evaluated in float64; gamma 0 rows are constants."""
    gamma = np.array([1.0, 0.3, 0.0, 0.0, 2.5])
    beta = np.array([0.2, -0.4, 0.9, -0.1, 0.5])
    mean, var, eps, s = np.array([0.5, 1.0, 0.0, 0.0, 2.0]), np.array([0.3, 1.2, 1.0, 1.0, 4.0]), 1e-4, 1 / 3
    offsets = [(j - 0.5) / 3 for j in (1, 2, 3)]
    t = GE.sum_thresholds(gamma, beta, mean, var, eps, s, (0, 12), offsets)
    assert t.shape == (5, 3) and np.all(np.diff(t, axis=1) >= 0)
    d = np.arange(0, 13, dtype=np.float64)[:, None]
    y0 = gamma * (d * s - mean) / np.sqrt(var + eps)
    want = sum((y0 + (beta - c) >= 0).astype(np.int64) for c in offsets)
    assert np.array_equal(multithreshold(d.repeat(5, 1), t), want)
    assert want[:, 2].tolist() == [3] * 13 and want[:, 3].tolist() == [0] * 13     # the two constant rows
    with pytest.raises(ConfigError, match="gamma"):
        GE.sum_thresholds(-gamma, beta, mean, var, eps, s, (0, 12), offsets)


def test_resnet8_is_mlperf_tinys_topology():
    nodes = G.build(G.resnet8(), (32, 32, 3), 10)
    shapes = {n.name: n.out_shape for n in nodes}
    assert shapes == {"conv0": (32, 32, 16), "s1a": (32, 32, 16), "s1b": (32, 32, 16), "s1add": (32, 32, 16),
                      "s2a": (16, 16, 32), "s2b": (16, 16, 32), "s2sc": (16, 16, 32), "s2add": (16, 16, 32),
                      "s3a": (8, 8, 64), "s3b": (8, 8, 64), "s3sc": (8, 8, 64), "s3add": (8, 8, 64),
                      "gap": (1, 1, 64), "fc": (10,)}
    by = {n.name: n for n in nodes}
    assert by["s1add"].inputs == ("s1b", "conv0")                  # identity skip
    assert by["s2sc"].inputs == ("s1add",) and (by["s2sc"].kernel, by["s2sc"].stride) == (1, 2)
    assert (by["s3a"].kernel, by["s3a"].stride, by["s3a"].pad) == (3, 2, 1)
    # weights: 3x3 convs 3*16 + 16*16*2 + 16*32 + 32*32 + 32*64 + 64*64 (x 9), shortcuts 16*32 + 32*64, fc 64*10
    weights = 9 * (3 * 16 + 2 * 16 * 16 + 16 * 32 + 32 * 32 + 32 * 64 + 64 * 64) + 16 * 32 + 32 * 64 + 64 * 10
    model = G.GraphModel(nodes, (32, 32, 3), 8)
    G._init(model, np.random.default_rng(0), (0.5, 0.5))
    assert sum(n.w.size for n in model.nodes if n.w is not None) == weights == 77_360


def test_untrained_resnet8_exports_exactly(tmp_path):
    """The whole ResNet-8 (stride-2 "same" convs, 1x1 shortcuts, 32x32 pool) at initialisation, BN
    recalibrated on random images: the golden model of its config outputs its integer scores."""
    rng = np.random.default_rng(3)
    model = G.GraphModel(G.build(G.resnet8(), (32, 32, 3), 10), (32, 32, 3), 8, "ternary", 2)
    G._init(model, rng, (0.5, 0.5))
    G._recalibrate(model, rng.integers(0, 256, (24, 32, 32, 3)))
    x = rng.integers(0, 256, (6, 32, 32, 3))
    cfg = _golden(tmp_path, model, "rn8")
    assert cfg.is_graph and [L.type for L in cfg.layers].count("add") == 3
    assert np.array_equal(graph_forward(cfg, x), G.scores(model, x))


# ---------------------------------------------------------------------- trained networks, exported

@pytest.mark.parametrize("scheme,act_bits", [("ste", 1), ("ste", 2), ("ternary", 2)])
def test_exported_graph_reproduces_trained_scores(trained, small, tmp_path, scheme, act_bits):
    model = trained[(scheme, act_bits)]
    cfg = _golden(tmp_path, model, f"g-{scheme}{act_bits}")
    assert cfg.is_graph
    types = {L.name: L.type for L in cfg.layers}
    assert types == {"conv0": "conv", "s1a": "conv", "s1b": "conv", "s1add": "add", "s2a": "conv",
                     "s2b": "conv", "s2sc": "conv", "s2add": "add", "gap": "global_avgpool", "fc": "fc"}
    assert all(L.act == f"uint{act_bits}" for L in cfg.layers[:-1]) and cfg.layers[-1].act == "acc"
    wk = "ternary" if scheme == "ternary" else "bipolar"
    assert all(L.weight_kind == wk for L in cfg.layers if L.type in ("conv", "fc"))
    for x in (small.x_test, small.x_train):
        x = _images(small, x)
        assert np.array_equal(graph_forward(cfg, x), G.scores(model, x))
    golden_acc = float(np.mean(graph_forward(cfg, _images(small, small.x_test)).argmax(1) == small.y_test))
    assert golden_acc == model.test_acc


def test_export_refuses_to_overwrite(trained, tmp_path):
    GE.export_graph(trained[("ste", 2)], tmp_path, "once")
    before = (tmp_path / "once.npz").read_bytes()
    with pytest.raises(ConfigError, match="exists"):
        GE.export_graph(trained[("ste", 2)], tmp_path, "once")
    assert (tmp_path / "once.npz").read_bytes() == before


@pytest.mark.parametrize("mutation", ["add_scale", "pool_mean", "off_by_one", "shortcut_source"])
def test_a_wrong_export_changes_a_prediction(trained, small, tmp_path, monkeypatch, mutation):
    """Each plausible export bug changes some prediction: a wrong BN input scale of the add (1/(2m)),
    the global pool's division by H*W left out, thresholds one too low, and the stride-2 shortcut reading the block's
    last conv instead of the fork (the block's input, the add before it)."""
    model = trained[("ternary", 2)]
    x = _images(small, small.x_train)
    fold = GE.sum_thresholds

    def wrong(gamma, beta, mean, var, eps, scale, acc_range, offsets, where="sum_thresholds"):
        if mutation == "add_scale" and acc_range[1] == 2 * model.levels:
            scale = scale / 2
        if mutation == "pool_mean" and acc_range[1] > 2 * model.levels:
            scale = scale * (acc_range[1] // model.levels)
        t = fold(gamma, beta, mean, var, eps, scale, acc_range, offsets, where)
        return t - 1 if mutation == "off_by_one" else t

    monkeypatch.setattr(GE, "sum_thresholds", wrong)
    cfg = GE.graph_config(model)
    if mutation == "shortcut_source":
        next(L for L in cfg.layers if L.name == "s2sc").inputs = ("s1b",)
    toml_path = tmp_path / "wrong.toml"
    netconfig.save_weights(tmp_path / "wrong.npz", cfg)
    toml_path.write_text(netconfig.dumps(cfg, "wrong.npz"))
    golden = graph_forward(netconfig.load(toml_path), x)
    assert not np.array_equal(golden.argmax(1), G.predict(model, x))


# ---------------------------------------------------------------------- training

def test_training_learns_and_records_history():
    ds = load_digits()
    seen = []
    model = G.train(ds, G.resnet((8, 16), 10), scheme="ste", act_bits=2, epochs=4, batch=32, seed=0, monitor=100,
                    progress=lambda *a: seen.append(a))
    assert [s[0] for s in seen] == [1, 2, 3, 4]
    assert model.history["epoch"] == [1, 2, 3, 4] and len(model.history["monitor_acc"]) == 4
    assert model.test_acc == G.accuracy(model, _images(ds, ds.x_test), ds.y_test)
    assert model.test_acc > 0.6                      # chance is 0.1
    assert all(np.all(n.gamma >= 0) for n in model.nodes if n.kind in ("add", "global_avgpool"))
    assert all(np.all(np.abs(n.w) <= 1) for n in model.nodes if n.w is not None)


def test_train_is_deterministic_per_seed(small):
    a, b = (G.train(small, G.resnet((4,), 10), act_bits=2, epochs=1, seed=4, monitor=0) for _ in range(2))
    assert all(np.array_equal(p.w, q.w) for p, q in zip(a.nodes, b.nodes) if p.w is not None)


def test_bad_graphs_and_options_are_refused(small):
    with pytest.raises(ConfigError, match="adds maps of shapes"):
        G.build([G.Node("c0", "conv", (NETWORK_INPUT,), 4, 3, 1, 1), G.Node("c1", "conv", (), 4, 3, 2, 1),
                 G.Node("a", "add", ("c0", "c1")), G.Node("g", "global_avgpool"), G.Node("fc", "fc")], (8, 8, 1), 10)
    with pytest.raises(ConfigError, match="no node reads 'c1'"):
        G.build([G.Node("c0", "conv", (), 4, 3, 1, 1), G.Node("c1", "conv", (), 4, 3, 1, 1),
                 G.Node("g", "global_avgpool", ("c0",)), G.Node("fc", "fc")], (8, 8, 1), 10)
    with pytest.raises(ConfigError, match="not a node above it"):
        G.build([G.Node("c0", "conv", ("later",), 4), G.Node("fc", "fc")], (8, 8, 1), 10)
    with pytest.raises(ConfigError, match="last node"):
        G.build([G.Node("c0", "conv", (), 4), G.Node("g", "global_avgpool")], (8, 8, 1), 10)
    with pytest.raises(ConfigError, match="scheme"):
        G.train(small, G.resnet((4,), 10), scheme="xnor")
    with pytest.raises(ConfigError, match="act_bits"):
        G.train(small, G.resnet((4,), 10), act_bits=0)
    with pytest.raises(ConfigError, match="expected"):
        G.scores(G.train(small, G.resnet((4,), 10), epochs=1, monitor=0), np.zeros((2, 7)))


def test_trained_graph_runs_in_qonnx_equal_to_the_trained_network(trained, small, tmp_path):
    """The exported graph config through the QONNX export (Conv with strides and pads, Add,
    GlobalAveragePool, MultiThreshold), executed by qonnx: the trained network's integer scores."""
    from qnnfab.interop.qonnx_export import execute, export_qonnx, input_values, stored_outputs
    model = trained[("ternary", 2)]
    cfg = _golden(tmp_path, model, "q")
    x = _images(small, small.x_test[:40])
    onnx_model = export_qonnx(cfg)
    assert {"Add", "GlobalAveragePool", "MultiThreshold", "Conv"} <= {n.op_type for n in onnx_model.graph.node}
    assert np.array_equal(stored_outputs(cfg, execute(onnx_model, input_values(cfg, x))), G.scores(model, x))


def test_the_shipped_trained_resnet8_is_mlperf_tinys_topology():
    """configs/trained/resnet8_w2a2.toml (bench/bench_resnet8_train.py's export): ResNet-8's layers and
    shapes, ternary weights, uint2 activations, 8-bit input; its golden model runs."""
    from pathlib import Path
    cfg = netconfig.load(Path(__file__).resolve().parents[2] / "configs" / "trained" / "resnet8_w2a2.toml")
    want = G.build(G.resnet8(), (32, 32, 3), 10)
    assert cfg.is_graph and (cfg.input_shape, cfg.input_kind, cfg.input_bits) == ((32, 32, 3), "uint", 8)
    assert [(L.name, L.type, L.out_shape) for L in cfg.layers] == [
        (n.name, n.kind, n.out_shape) for n in want]
    assert all(L.weight_kind == "ternary" for L in cfg.layers if L.type in ("conv", "fc"))
    x = cfg.random_inputs(2, seed=0)
    assert graph_forward(cfg, x).shape == (2, 10)

"""The scaled quantization schemes (XNOR-Net, DoReFa, HWGQ, SYQ, TTQ): codebooks from first principles, training,
and the exact integer export (per-channel scales folded into thresholds, negative scales negating rows)."""

import math

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.errors import ConfigError
from qnnfab.golden.network import network_of
from qnnfab.golden.quantizers import syq_quantize, xnor_net_quantize
from qnnfab.train import codebooks as C
from qnnfab.train import export as E
from qnnfab.train import trainer as T
from qnnfab.train.datasets import load_digits


@pytest.fixture(scope="module")
def small():
    return load_digits().subset(500, 120)


def golden_predictions(toml_path, x):
    g = network_of(netconfig.load(toml_path))
    return g.forward(x.reshape((-1,) + g.input_shape)).argmax(1)


# ---------------------------------------------------------------------- codebooks

def test_dorefa_code_by_hand():
    # m = 3: tanh(+-2) = +-0.964 = +-max -> i = 0 and 3; tanh(0) -> (0 + 1/2) * 3 = 1.5 -> 2 (half up)
    codes, _ = C.dorefa_code(np.array([[-2.0, 0.0, 2.0]]), 2)
    assert codes.tolist() == [[-3.0, 1.0, 3.0]]
    # i = round_half_up(3 (t / 2 + 1/2)) for t = tanh(w) / max: t = -0.2 -> 0.9 -> 1 -> code -1
    w = np.array([[np.arctanh(0.5), -np.arctanh(0.1)]])
    assert C.dorefa_code(w, 2)[0].tolist() == [[3.0, -1.0]]
    # 1 bit: the sign, sign(0) = +1
    assert C.dorefa_code(np.array([[-0.3, 0.0, 0.2]]), 1)[0].tolist() == [[-1.0, 1.0, 1.0]]
    # every code is odd and within [-m, m]
    codes = C.dorefa_code(np.random.default_rng(0).normal(size=(7, 50)), 4)[0]
    assert set(np.unique(codes)) <= set(range(-15, 16, 2))


def test_ttq_code_by_hand():
    w = np.array([[0.5, -1.0, 0.04, -0.02, 0.06]])        # delta = 0.05 * 1.0
    codes, pos, neg = C.ttq_code(w, (2.0, 1.0), 4)       # M = 7: qp = 7, qn = round_half_up(3.5) = 4
    assert codes.tolist() == [[7.0, -4.0, 0.0, 0.0, 7.0]]
    assert pos.tolist() == [[True, False, False, False, True]] and neg.tolist() == [[False, True] + [False] * 3]
    assert C.ttq_code(w, (0.5, 3.0), 3)[0].tolist() == [[1.0, -3.0, 0.0, 0.0, 1.0]]   # M = 3: 0.5 -> round(0.5) = 1
    assert not C.ttq_code(w, (0.0, 0.0), 4)[0].any()


def test_xnor_and_syq_scales_equal_the_golden_quantizers():
    w = np.random.default_rng(1).normal(size=(6, 20))
    assert np.allclose(C.row_mean_abs(w), xnor_net_quantize(w)[1][:, 0])
    assert np.allclose(C.row_mean_abs(w), syq_quantize(w, 0.0, "row")[1][:, 0])


def test_hwgq_step_minimises_the_half_gaussian_error():
    x = np.random.default_rng(2).normal(size=400_000)
    x = np.maximum(x, 0.0)                               # half-wave: x <= 0 is quantized to 0 exactly

    def mse(step, m):
        return np.mean((step * np.minimum(np.floor(x / step + 0.5), m) - x) ** 2)

    for bits in (1, 2, 3):
        m, d = (1 << bits) - 1, C.hwgq_step(bits)
        assert mse(d, m) < mse(0.95 * d, m) and mse(d, m) < mse(1.05 * d, m)
    assert C.hwgq_step(1) > C.hwgq_step(2) > C.hwgq_step(3) > 0
    assert C.level_offsets(3) == [0.5 / 3, 1.5 / 3, 2.5 / 3]
    assert C.level_offsets(3, 0.5) == [0.25, 0.75, 1.25]


def test_hwgq_act_levels_and_mask():
    d = C.hwgq_step(2)
    y = np.array([-1.0, 0.0, 0.49 * d, 0.5 * d, 1.6 * d, 2.5 * d, 3.0 * d, 3.2 * d, 9.0])
    a, mask = T.hwgq_act(y, 2)
    assert np.allclose(a / d, [0, 0, 0, 1, 2, 3, 3, 3, 3])
    assert mask.tolist() == [0, 1, 1, 1, 1, 1, 1, 0, 0]


# ---------------------------------------------------------------------- training and exact export

CASES = [("xnor", {}, (24,)), ("dorefa", dict(act_bits=2), (24,)), ("hwgq", dict(act_bits=2), (24,)),
         ("syq", {}, (24,)), ("syq", dict(weight_bits=2, act_bits=2), (24,)), ("ttq", {}, (24,)),
         ("dorefa", dict(weight_bits=1), (24,)), ("hwgq", dict(act_bits=1), (24,)),
         ("xnor", {}, "c8,p2,16"), ("dorefa", dict(weight_bits=3, act_bits=3), "c8,p2,16"),
         ("hwgq", dict(act_bits=2), "c8,p2,16"), ("syq", dict(weight_bits=2), "c8,p2,16"),
         ("ttq", dict(act_bits=2, weight_bits=3), "c8,p2,16")]
KINDS = {"xnor": "bipolar", "hwgq": "bipolar", "ttq": "int"}


@pytest.mark.parametrize("scheme,kw,hidden", CASES, ids=[f"{s}-{k}-{h}" for s, k, h in CASES])
def test_scheme_trains_and_exports_exactly(small, tmp_path, scheme, kw, hidden):
    r = T.train(small, scheme, hidden=hidden, epochs=3, seed=0, **kw)
    assert r.test_acc > (0.7 if isinstance(hidden, tuple) else 0.45)          # chance is 0.1
    toml_path, _ = E.export(r, tmp_path, "net")
    cfg = netconfig.load(toml_path)
    comp = [L for L in cfg.layers if L.type != "maxpool"]
    wb = r.weight_bits
    kind = KINDS.get(scheme) or {"dorefa": "int" if wb > 1 else "bipolar",
                                 "syq": "ternary" if wb == 2 else "bipolar"}[scheme]
    assert {L.weight_kind for L in comp} == {kind}
    if kind == "int":
        assert {L.weight_bits for L in comp} == {wb + 1 if scheme == "dorefa" else wb}
        big = 2 ** (comp[0].weight_bits - 1) - 1
        assert all(np.abs(L.weights).max() <= big for L in comp)
    act = "bipolar" if (r.act_bits == 1 and scheme != "hwgq") else f"uint{r.act_bits}"
    assert [L.act for L in comp] == [act] * (len(comp) - 1) + ["acc"]
    assert np.array_equal(golden_predictions(toml_path, small.x_test), T.predict(r, small.x_test))
    # the exported last layer outputs the trained network's scores d (the popcount (d + n) / 2 for bipolar x bipolar)
    d = T.scores(r, small.x_test).astype(np.int64)
    if kind == "bipolar" and act == "bipolar":
        d = (d + comp[-1].weights.shape[1]) // 2
    assert np.array_equal(network_of(cfg).forward(small.x_test.reshape((-1,) + cfg.input_shape)), d)


def test_xnor_per_channel_scales_and_activation_scales_are_in_the_fold(small):
    r = T.train(small, "xnor", hidden=(24, 16), epochs=2, seed=1)
    codes, alpha = r.weight_code(1)
    assert np.array_equal(codes, np.where(r.layers[1].w >= 0, 1.0, -1.0))
    assert np.array_equal(alpha, np.abs(r.layers[1].w).mean(1)) and np.ptp(alpha) > 0
    # the BN input of layer 1 is d * act_scale(layer 0) * alpha
    assert r.layers[0].act_scale != 1.0
    assert np.allclose(r.row_scale(1, alpha), r.layers[0].act_scale * alpha)
    assert r.weight_code(2)[1] is None                   # the last layer has no per-channel scale


@pytest.fixture(scope="module")
def signed_syq(small):
    """A SYQ net (ternary codebook, 2-bit activations) whose learned scales are made distinct, some negative and
    one zero, and its scores recomputed through the integer inference network it defines."""
    r = T.train(small, "syq", hidden=(24, 16), epochs=2, seed=0, weight_bits=2, act_bits=2)
    rng = np.random.default_rng(5)
    for L in r.layers[:2]:
        L.alpha = L.alpha * rng.uniform(0.3, 3.0, L.alpha.shape) * np.where(rng.random(L.alpha.shape) < 0.4, -1, 1)
    r.layers[0].alpha[3] = 0.0
    r.layers[1].gamma[:4] *= -1                          # negative gamma with positive and negative scales
    return r


def test_negative_and_zero_scales_export_exactly(signed_syq, small, tmp_path):
    r = signed_syq
    x = small.x_train[:300]
    toml_path, _ = E.export(r, tmp_path, "signed")
    assert np.array_equal(golden_predictions(toml_path, x), T.predict(r, x))
    # the negative scales matter: the same net with |alpha| predicts differently
    flipped = [L.alpha.copy() for L in r.layers[:2]]
    try:
        for L in r.layers[:2]:
            L.alpha = np.abs(L.alpha)
        assert not np.array_equal(T.predict(r, x), np.asarray(golden_predictions(toml_path, x)))
    finally:
        for L, a in zip(r.layers[:2], flipped):
            L.alpha = a


@pytest.mark.parametrize("mutation", ["abs", "roll", "drop"])
@pytest.mark.parametrize("which", ["syq", "xnor"])
def test_a_wrong_scale_fold_changes_a_prediction(signed_syq, small, tmp_path, monkeypatch, mutation, which):
    r = signed_syq if which == "syq" else T.train(small, "xnor", hidden=(24, 16), epochs=2, seed=1)
    x = small.x_train[:300]
    fold = E.bn_fold_layer
    wrong = {"abs": np.abs, "roll": lambda s: np.roll(s, 1), "drop": lambda s: np.ones_like(s)}[mutation]

    def mutated(wbits, gamma, beta, mean, var, eps, in_kind, in_bits=None, scale=1.0, *a, **k):
        return fold(wbits, gamma, beta, mean, var, eps, in_kind, in_bits,
                    wrong(np.asarray(scale)) if np.ndim(scale) else scale, *a, **k)

    monkeypatch.setattr(E, "bn_fold_layer", mutated)
    toml_path, _ = E.export(r, tmp_path, "mutated")
    if which == "xnor" and mutation == "abs":
        # XNOR-Net's alpha = mean |W| is never negative: dropping the sign handling is harmless there
        assert np.array_equal(golden_predictions(toml_path, x), T.predict(r, x))
    else:
        assert not np.array_equal(golden_predictions(toml_path, x), T.predict(r, x))


def test_bn_fold_layer_sign_rules_by_hand():
    # three all-(+1) bipolar rows over 4 uint1 inputs (d = number of ones), BN gamma 1, mean 0, sigma 1,
    # scales +1, -1, 0: the output is 1 iff scale * d + beta >= 0, for every input
    w = np.ones((3, 4), np.int64)
    xs = np.array([[(k >> b) & 1 for b in range(4)] for k in range(16)])
    for beta, want in ((-1.5, lambda d: [d >= 1.5, -d >= 1.5, False]), (1.5, lambda d: [d >= -1.5, -d >= -1.5, True])):
        wq, t = E.bn_fold_layer(w, np.ones(3), np.full(3, beta), np.zeros(3), np.full(3, 1.0 - 1e-4), 1e-4, "uint",
                                1, np.array([1.0, -1.0, 0.0]))
        assert wq[0].tolist() == [1] * 4 and wq[1].tolist() == [0] * 4      # the negative-scale row is negated
        acc = xs @ (2 * wq - 1).T
        got = acc >= t[:, 0]
        assert got.tolist() == [want(int(x.sum())) for x in xs]
    with pytest.raises(ConfigError, match="scale"):
        E.bn_fold_layer(w, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), 1e-4, "uint", 1, -1.0)


def test_ttq_last_layer_scale_gradients_finite_differences(small):
    r = T.train(small, "ttq", hidden=(16,), epochs=1, seed=3)
    L = r.layers[-1]
    L.alpha = np.array([0.8, 1.3])
    x, y = small.x_train[:40].astype(np.float64), small.y_train[:40]
    _, grads, _ = T._train_step(r, x, y, np.random.default_rng(0), 1.0, "ce", False)
    h = 1e-6
    for k in range(2):
        lo, hi = L.alpha.copy(), L.alpha.copy()
        lo[k] -= h
        hi[k] += h
        losses = []
        for a in (hi, lo):
            L.alpha = a
            losses.append(T._train_step(r, x, y, np.random.default_rng(0), 1.0, "ce", False)[0])
        L.alpha = np.array([0.8, 1.3])
        assert grads[-1]["alpha"][k] == pytest.approx((losses[0] - losses[1]) / (2 * h), rel=1e-4, abs=1e-7)


def test_weight_bits_errors(small):
    with pytest.raises(ConfigError, match="weight_bits"):
        T.train(small, "ste", hidden=(8,), epochs=1, weight_bits=2)
    with pytest.raises(ConfigError, match="1..2"):
        T.train(small, "syq", hidden=(8,), epochs=1, weight_bits=3)
    with pytest.raises(ConfigError, match="2..8"):
        T.train(small, "ttq", hidden=(8,), epochs=1, weight_bits=1)
    r = T.train(small, "dorefa", hidden=(8,), epochs=1)
    assert r.weight_bits == 2 and r.weight_width == 3 and math.isfinite(r.test_acc)


@pytest.mark.parametrize("scheme", ["dorefa", "ttq"])
def test_integer_code_schemes_refuse_recalibrate_false(small, scheme):
    # training's BN statistics are at the real weights' scale (codes / m, Wp / Wn); evaluation uses codes
    with pytest.raises(ConfigError, match="recalibrate") as e:
        T.train(small, scheme, hidden=(8,), epochs=1, recalibrate=False)
    assert "\n" not in str(e.value)

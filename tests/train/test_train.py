"""Tests of the quantization-aware trainer (qnnfab.train) and the dataset interface."""

import copy
import math

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.errors import ConfigError
from qnnfab.golden import multithreshold
from qnnfab.train import export as E
from qnnfab.train import trainer as T
from qnnfab.train.datasets import Dataset, from_arrays, load_digits, split
from qnnfab.golden.network import network_of


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# ---------------------------------------------------------------------- datasets

def test_load_digits_split(digits):
    assert (len(digits.y_train), len(digits.y_test)) == (1347, 450)
    assert digits.features == 64 and digits.classes == 10 and digits.pixel_bits == 5
    assert digits.x_train.min() == 0 and digits.x_train.max() == 16
    assert set(np.unique(digits.y_test)) == set(range(10))
    again = load_digits()
    assert np.array_equal(again.x_test, digits.x_test) and np.array_equal(again.y_train, digits.y_train)
    other = load_digits(seed=1)
    assert not np.array_equal(other.y_test, digits.y_test)
    # the split is a partition of the 1797 images
    allx = np.concatenate([digits.x_train, digits.x_test])
    assert len(allx) == 1797


def test_split_partition():
    x = np.arange(40).reshape(20, 2)
    y = np.arange(20)
    xtr, ytr, xte, yte = split(x, y, 0.25, seed=3)
    assert len(yte) == 5 and sorted(np.concatenate([ytr, yte]).tolist()) == list(range(20))
    assert np.array_equal(xte[:, 0], 2 * yte)


def test_from_arrays_quantizes_and_validates():
    rng = np.random.default_rng(0)
    xf = rng.random((10, 4, 4, 1))
    ds = from_arrays(xf, rng.integers(0, 3, 10), xf[:4], np.array([0, 1, 2, 1]), pixel_bits=4, name="toy")
    assert ds.x_train.shape == (10, 16) and ds.x_train.max() <= 15 and ds.input_shape == (4, 4, 1)
    assert np.array_equal(ds.x_train, np.round(xf.reshape(10, -1) * 15))
    assert ds.classes == 3
    with pytest.raises(ConfigError, match="pixel_bits"):
        from_arrays(np.full((2, 3), 300), [0, 1], np.zeros((1, 3), int), [0], pixel_bits=8)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        from_arrays(np.full((2, 3), 1.5), [0, 1], np.zeros((1, 3)), [0])
    with pytest.raises(ConfigError, match="x_train"):
        Dataset(np.zeros((3, 2), int), np.zeros(2, int), np.zeros((1, 2), int), np.zeros(1, int))


# ---------------------------------------------------------------------- elementary pieces

def test_progressive_v_schedule():
    total = 101
    v = np.array([T.progressive_v(s, total) for s in range(total)])
    assert v[0] == pytest.approx(1.0) and v[-1] == pytest.approx(1000.0)
    assert np.all(np.diff(v) > 0)
    # logarithmic rise: log v is linear in the step
    assert np.allclose(np.diff(np.log10(v)), 3.0 / (total - 1))
    assert v[50] == pytest.approx(math.sqrt(1000.0))
    assert T.progressive_v(5, 11, 2.0, 8.0) == pytest.approx(4.0)
    # final weights sign(theta): theta = clip(v P) has the sign of P (0 -> +1)
    p = np.array([-0.5, -1e-4, 0.0, 2e-4, 0.3])
    th = T.binarize(p, "progressive", v=1000.0)
    assert np.array_equal(th, [-1.0, -0.1, 0.0, 0.2, 1.0])
    assert np.array_equal(T.binarize(p, "ste"), [-1, -1, 1, 1, 1])


def test_stochastic_binarization_probabilities():
    rng = np.random.default_rng(7)
    w = np.array([-1.5, -1.0, -0.6, -0.2, 0.0, 0.3, 0.8, 1.0, 2.0])
    n = 40000
    samples = np.stack([T.binarize(w, "stochastic", rng) for _ in range(n)])
    assert set(np.unique(samples)) <= {-1.0, 1.0}
    freq = (samples > 0).mean(0)
    p = T.hard_sigmoid(w)
    assert np.array_equal(p, [0, 0, 0.2, 0.4, 0.5, 0.65, 0.9, 1, 1])
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-12), (freq, p)
    assert np.all(freq[[0, 1]] == 0) and np.all(freq[[7, 8]] == 1)


def test_ste_sign_forward_and_mask():
    y = np.array([-2.0, -1.0, -0.3, 0.0, 0.5, 1.0, 1.01])
    f, m = T.ste_sign(y)
    assert np.array_equal(f, [-1, -1, -1, 1, 1, 1, 1])
    assert np.array_equal(m, [0, 1, 1, 1, 1, 1, 0])
    # the mask is the derivative of hard tanh (finite differences away from the kinks)
    h = 1e-6
    for yy in (-1.5, -0.7, 0.2, 0.9, 1.3):
        fd = (np.clip(yy + h, -1, 1) - np.clip(yy - h, -1, 1)) / (2 * h)
        assert fd == pytest.approx(T.ste_sign(np.array([yy]))[1][0])


# ---------------------------------------------------------------------- gradients

def _randomize_bn(layers, rng):
    """Random BN parameters (both signs of gamma) and biases, so the gradient checks see every case."""
    for L in layers:
        if L.gamma is not None:
            L.gamma = rng.uniform(0.5, 1.5, L.gamma.shape) * rng.choice([-1, 1], L.gamma.shape)
            L.beta = rng.normal(0, 0.5, L.beta.shape)
        if L.bias is not None:
            L.bias = rng.normal(0, 0.3, L.bias.shape)
    return layers


def _toy_model(scheme, sizes, rng, act="relu"):
    layers = _randomize_bn(T._init(sizes, scheme, rng), rng)
    return T.TrainResult(scheme, sizes, 4, layers, log_alpha=-0.7, act=act, eps=1e-4)


def _loss(model, x, y, loss, v=1.0, rng=None):
    m = copy.deepcopy(model)
    return T._train_step(m, x, y, rng, v, loss, False)[0]


def _check_gradients(model, x, y, loss, pick):
    """Backward of one training step against central differences of the loss, for the entries
    ``pick(array)`` of every parameter array; returns how many entries were checked."""
    _, grads, _ = T._train_step(copy.deepcopy(model), x, y, None, 1.0, loss, False)
    h = 1e-6
    checked = 0
    for i, L in enumerate(model.layers):
        for name in ("w", "gamma", "beta", "bias"):
            arr = getattr(L, name)
            if arr is None:
                continue
            g = grads[i][name]
            assert g.shape == arr.shape
            for idx in pick(arr):
                plus, minus = copy.deepcopy(model), copy.deepcopy(model)
                getattr(plus.layers[i], name)[idx] += h
                getattr(minus.layers[i], name)[idx] -= h
                fd = (_loss(plus, x, y, loss) - _loss(minus, x, y, loss)) / (2 * h)
                assert g[idx] == pytest.approx(fd, rel=1e-4, abs=1e-7), (i, name, idx)
                checked += 1
    return checked


@pytest.mark.parametrize("act,loss", [("relu", "ce"), ("hardtanh", "ce"), ("hardtanh", "hinge"), ("relu", "hinge")])
def test_float_gradients_finite_differences(act, loss):
    """Dense + BN (batch statistics) + activation + loss backward against central differences."""
    rng = np.random.default_rng(11)
    sizes = (7, 6, 5, 4)
    model = _toy_model("float", sizes, rng, act)
    x = rng.integers(0, 16, (9, 7)).astype(np.float64)
    y = rng.integers(0, 4, 9)
    assert _check_gradients(model, x, y, loss, lambda arr: list(np.ndindex(arr.shape))[:6]) > 30


@pytest.mark.parametrize("loss", ["ce", "hinge"])
def test_binary_last_layer_gradients_finite_differences(loss, monkeypatch):
    """STE network: the float parts after the last sign (last-layer weights as reals, the scale alpha)."""
    rng = np.random.default_rng(5)
    sizes = (8, 6, 6, 3)
    model = _toy_model("ste", sizes, rng)
    x = rng.integers(0, 16, (10, 8)).astype(np.float64)
    y = rng.integers(0, 3, 10)
    _, grads, ga = T._train_step(copy.deepcopy(model), x, y, None, 1.0, loss, False)
    # evaluate the loss as a function of the real-valued last-layer matrix Wq = sign(W)
    real = copy.deepcopy(model)
    for L in real.layers:
        L.w = np.where(L.w >= 0, 1.0, -1.0)
    monkeypatch.setattr(T, "binarize", lambda w, scheme, rng=None, v=1.0: w)
    h = 1e-6
    last = len(sizes) - 2
    for idx in np.ndindex(real.layers[last].w.shape):
        plus, minus = copy.deepcopy(real), copy.deepcopy(real)
        plus.layers[last].w[idx] += h
        minus.layers[last].w[idx] -= h
        fd = (_loss(plus, x, y, loss) - _loss(minus, x, y, loss)) / (2 * h)
        # STE: dL/dW = dL/dWq where |W| <= 1 (always, the latent weights are clipped)
        assert grads[last]["w"][idx] == pytest.approx(fd, rel=1e-5, abs=1e-8)
    plus, minus = copy.deepcopy(real), copy.deepcopy(real)
    plus.log_alpha += h
    minus.log_alpha -= h
    assert ga == pytest.approx((_loss(plus, x, y, loss) - _loss(minus, x, y, loss)) / (2 * h), rel=1e-5)


def test_ste_and_progressive_weight_gradient_factors():
    w = np.array([-1.0, -0.5, 0.0, 0.002, 0.9])
    assert np.array_equal(T._wgrad_factor(w, "ste", 1.0), [1, 1, 1, 1, 1])
    assert np.array_equal(T._wgrad_factor(np.array([1.2, -3.0]), "ste", 1.0), [0, 0])
    # progressive: d clip(v P)/dP = v inside |v P| < 1, 0 outside
    assert np.array_equal(T._wgrad_factor(w, "progressive", 1000.0), [0, 0, 1000, 0, 0])
    assert np.array_equal(T._wgrad_factor(w, "progressive", 1.0), [0, 1, 1, 1, 1])


# ---------------------------------------------------------------------- BN folding and export

def _float_bits(d, gamma, beta, mean, var, eps, scale):
    return (gamma * (d * scale - mean) / np.sqrt(var + eps) + beta >= 0)


@pytest.mark.parametrize("seed", range(4))
def test_bn_fold_first_layer_uint_pixels(seed):
    """uint pixels x bipolar weights: dot-domain thresholds (incl. gamma < 0 flips, gamma = 0, exact ties)."""
    rng = np.random.default_rng(seed)
    mh, mw, bits = 24, 20, 5
    scale = 1 / 31
    wbits = rng.integers(0, 2, (mh, mw))
    x = rng.integers(0, 32, (500, mw))
    d = x @ (2 * wbits - 1).T
    gamma = rng.normal(0, 1, mh)
    gamma[:3] = 0.0
    beta = rng.normal(0, 0.5, mh)
    mean = rng.normal(0, 2, mh) * scale * 10
    var = rng.uniform(0.5, 4, mh) * (scale * 30) ** 2
    eps = 1e-4
    # ties: rows whose real threshold is an integer reached by the data
    beta[3:6] = 0.0
    mean[3:6] = d[0, 3:6] * scale
    # rows always on / always off
    beta[6], gamma[6] = 1e6, 1.0
    beta[7], gamma[7] = -1e6, 1.0
    w, t = E.bn_fold_layer(wbits, gamma, beta, mean, var, eps, "uint", bits, scale)
    assert t.shape == (mh, 1) and t.dtype == np.int64
    assert np.array_equal(w[gamma >= 0], wbits[gamma >= 0]) and np.array_equal(w[gamma < 0], 1 - wbits[gamma < 0])
    acc = x @ (2 * w - 1).T
    got = multithreshold(acc, t)
    want = _float_bits(d, gamma, beta, mean, var, eps, scale)
    assert np.array_equal(got, want.astype(np.int64))
    hi = mw * 31
    assert t.min() >= -hi and t.max() <= hi + 1


def test_bn_fold_hidden_popcount():
    rng = np.random.default_rng(3)
    mh, mw = 16, 33
    wbits = rng.integers(0, 2, (mh, mw))
    a = rng.integers(0, 2, (400, mw))
    d = (2 * a - 1) @ (2 * wbits - 1).T
    gamma, beta = rng.normal(0, 1, mh), rng.normal(0, 0.5, mh)
    mean, var = rng.normal(0, 3, mh), rng.uniform(10, 40, mh)
    w, t = E.bn_fold_layer(wbits, gamma, beta, mean, var, 1e-4, "bipolar")
    pop = (a[:, None, :] == w[None]).sum(-1)
    assert np.array_equal(multithreshold(pop, t), _float_bits(d, gamma, beta, mean, var, 1e-4, 1.0).astype(np.int64))


def _check_export(result, ds, tmp_path, name):
    toml_path, npz_path = E.export(result, tmp_path, name)
    assert toml_path.exists() and npz_path.exists()
    cfg = netconfig.load(toml_path)
    assert cfg.input_kind == "uint" and cfg.input_bits == ds.pixel_bits
    net = network_of(cfg)
    n_last = result.sizes[-2]
    for x in (ds.x_test, ds.x_train):
        out = net.forward(x)
        # the hardware output is the last layer's popcount P = (d + n) / 2: same argmax as d
        assert np.array_equal(out.argmax(1), T.predict(result, x))
        assert np.array_equal(2 * out - n_last, T.scores(result, x))
    ref = net.forward(ds.x_test[:20], method="reference")
    assert np.array_equal(ref, net.forward(ds.x_test[:20]))
    return cfg


@pytest.mark.parametrize("scheme", ["ste", "stochastic", "progressive"])
def test_exported_network_reproduces_trained_predictions(scheme, digits, tmp_path):
    """The key check: the integer network in the golden model == the trained binarized network, every image."""
    r = T.train(digits, scheme, hidden=(64, 32), epochs=3, batch=64, seed=1)
    assert r.test_acc > 0.3                      # trained at all (accuracy is benchmarked elsewhere)
    cfg = _check_export(r, digits, tmp_path, f"d-{scheme}")
    assert [(L.simd, L.pe) for L in cfg.layers] == [(8, 16), (32, 16), (32, 10)]
    acc = float(np.mean(network_of(cfg).forward(digits.x_test).argmax(1) == digits.y_test))
    assert acc == r.test_acc


def test_export_with_negative_and_zero_gamma(digits, tmp_path):
    """Perturbed BN parameters (gamma < 0 rows flip weight bits, gamma = 0 rows are constant)."""
    r = T.train(digits.subset(300, 200), "ste", hidden=(32, 48), epochs=2, batch=32, seed=2)
    rng = np.random.default_rng(9)
    for L in r.layers[:-1]:
        n = len(L.gamma)
        L.gamma = L.gamma * rng.choice([-1.0, 1.0], n)
        L.gamma[rng.integers(0, n, 3)] = 0.0
        L.beta = L.beta + rng.normal(0, 0.3, n)
    assert any((L.gamma < 0).any() for L in r.layers[:-1])
    _check_export(r, digits, tmp_path, "perturbed")


def test_training_improves_over_chance_on_held_out(digits):
    small = digits.subset(400, 450)
    seen = []
    r = T.train(small, "ste", hidden=(64, 64), epochs=4, batch=32, seed=0,
                progress=lambda *a: seen.append(a))
    assert r.test_acc == T.accuracy(r, small.x_test, small.y_test)
    assert r.test_acc > 0.7                      # chance is 0.1
    assert [s[0] for s in seen] == [1, 2, 3, 4]
    assert len(r.history["loss"]) == 4 and r.history["loss"][-1] < r.history["loss"][0]
    f = T.train(small, "float", hidden=(64, 64), epochs=4, batch=32, seed=0)
    assert f.test_acc > 0.8


def test_train_is_deterministic_per_seed(digits):
    small = digits.subset(200, 50)
    a = T.train(small, "stochastic", hidden=(16,), epochs=2, seed=4)
    b = T.train(small, "stochastic", hidden=(16,), epochs=2, seed=4)
    assert a.history["loss"] == b.history["loss"]
    assert all(np.array_equal(x.w, y.w) for x, y in zip(a.layers, b.layers))


def test_errors(digits, tmp_path):
    small = digits.subset(50, 10)
    with pytest.raises(ConfigError, match="scheme"):
        T.train(small, "quaternary")              # ("ternary" is a scheme now)
    with pytest.raises(ConfigError, match="batch"):
        T.train(small, "ste", batch=1)
    with pytest.raises(ConfigError, match="hidden"):
        T.train(small, "ste", hidden=())
    with pytest.raises(ConfigError, match="loss"):
        T.train(small, "ste", loss="mse")
    f = T.train(small, "float", hidden=(8,), epochs=1)
    with pytest.raises(ConfigError, match="float"):
        E.export(f, tmp_path)
    r = T.train(small, "ste", hidden=(8,), epochs=1)
    with pytest.raises(ConfigError, match="folding"):
        E.export(r, tmp_path, "x", folding=[(1, 1)])
    with pytest.raises(ConfigError, match="x"):
        T.predict(r, small.x_test[:, :10])


def test_default_folding_divides():
    assert E.default_folding((64, 256, 256, 10)) == [(8, 16), (32, 16), (32, 10)]
    fold = E.default_folding((784, 100, 30, 7))
    sizes = (784, 100, 30, 7)
    for i, (simd, pe) in enumerate(fold):
        assert sizes[i] % simd == 0 and sizes[i + 1] % pe == 0


# ---------------------------------------------------------------------- conv nets and k-bit activations

def test_parse_hidden_entries():
    assert T.parse_hidden("c16,c32k5,p2,128") == [("c16", ("conv", 16, 3)), ("c32k5", ("conv", 32, 5)),
                                                  ("p2", ("pool", 2)), ("128", ("fc", 128))]
    assert T.parse_hidden((64, "C8", " p3 ")) == [("64", ("fc", 64)), ("c8", ("conv", 8, 3)), ("p3", ("pool", 3))]
    assert T.parse_hidden(7) == [("7", ("fc", 7))]


@pytest.mark.parametrize("hidden,entry", [
    ("c16x", "c16x"), ("c8,q2", "q2"), ("c0", "c0"), ((1.5,), "1.5"),
    ("32,c8", "c8"),              # conv after a fully connected layer
    ("p2,c8", "p2"),              # a pool cannot come first
    ("c4,p8", "p8"),              # 6x6 map, 8x8 pool: empty
    ("c4k9", "c4k9"),             # kernel larger than the 8x8 image
    ("c4,c4k7", "c4k7"),          # kernel larger than the 6x6 map
])
def test_bad_hidden_specs_name_the_entry(digits, hidden, entry):
    with pytest.raises(ConfigError, match="hidden") as e:
        T.train(digits.subset(20, 5), "ste", hidden=hidden, epochs=1)
    assert repr(entry) in str(e.value) or entry in str(e.value)


def test_conv_needs_image_dataset_and_other_errors(digits):
    rng = np.random.default_rng(0)
    flat = from_arrays(rng.integers(0, 16, (20, 64)), rng.integers(0, 3, 20), rng.integers(0, 16, (5, 64)),
                       rng.integers(0, 3, 5), pixel_bits=4)
    assert flat.input_shape == (64,)
    with pytest.raises(ConfigError, match="'c4'.*image dataset"):
        T.train(flat, "ste", hidden="c4,8", epochs=1)
    small = digits.subset(20, 5)
    for bad in (0, 9, 1.5, True):
        with pytest.raises(ConfigError, match="act_bits"):
            T.train(small, "ste", hidden=(8,), act_bits=bad)
    with pytest.raises(ConfigError, match="progressive_acts"):
        T.train(small, "progressive", hidden=(8,), act_bits=2, progressive_acts=True)
    r = T.train(small, "ste", hidden="c4,p2,8", epochs=1)
    with pytest.raises(ConfigError, match="x"):
        T.predict(r, small.x_test[:, :10])
    assert np.array_equal(T.predict(r, small.x_test), T.predict(r, small.x_test.reshape(-1, 8, 8, 1)))


def test_kbit_act_forward_and_mask():
    y = np.array([-0.5, 0.0, 0.1, 1 / 6 - 1e-12, 1 / 6, 0.5, 0.84, 1.0, 1.2])
    f, m = T.kbit_act(y, 2)                      # levels 0..3, thresholds (j - 0.5) / 3
    assert np.allclose(f * 3, [0, 0, 0, 0, 1, 2, 3, 3, 3])
    assert np.array_equal(m, [0, 1, 1, 1, 1, 1, 1, 1, 0])
    f1, _ = T.kbit_act(np.linspace(-1, 2, 301), 3)
    assert set(np.round(f1 * 7).astype(int)) == set(range(8))


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 7, 6, 4))
    for k in (1, 2, 3):
        cols = rng.normal(size=T.im2col(x, k).shape)
        assert np.sum(T.im2col(x, k) * cols) == pytest.approx(np.sum(x * T.col2im(cols, x.shape[1:], k)))


def _toy_conv_model(scheme, hidden, in_shape, classes, rng, act="relu", act_bits=1):
    geo = T._geometry(T.parse_hidden(hidden), in_shape, math.prod(in_shape), classes, "toy")
    sizes = (math.prod(in_shape),) + tuple(math.prod(g[4]) for g in geo)
    layers = _randomize_bn(T._init(sizes, scheme, rng, geo), rng)
    return T.TrainResult(scheme, sizes, 4, layers, log_alpha=-0.7, act=act, eps=1e-4, act_bits=act_bits,
                         input_shape=tuple(in_shape))


@pytest.mark.parametrize("act,loss,hidden", [("relu", "ce", "c3,p2,5"), ("hardtanh", "hinge", "c4k2,c3,p2,6"),
                                             ("hardtanh", "ce", "c3,c2k2,4")])
def test_conv_gradients_finite_differences(act, loss, hidden):
    """Conv (im2col / col2im) + BN over batch and positions + activation + max pool + Dense, float relaxation."""
    rng = np.random.default_rng(4)
    model = _toy_conv_model("float", hidden, (6, 6, 2), 4, rng, act)
    x = rng.integers(0, 16, (7, 72)).astype(np.float64)
    y = rng.integers(0, 4, 7)
    assert _check_gradients(model, x, y, loss,
                            lambda arr: list(np.ndindex(arr.shape))[::max(1, arr.size // 6)][:6]) > 20


def _fold_levels(d, gamma, beta, mean, var, eps, scale, m):
    y0 = gamma * (d * scale - mean) / np.sqrt(var + eps)
    return sum((y0 + (beta - (j - 0.5) / m) >= 0).astype(np.int64) for j in range(1, m + 1))


@pytest.mark.parametrize("in_kind,bits", [("uint", 2), ("uint", 3), ("bipolar", 2)])
def test_bn_fold_kbit_thresholds(in_kind, bits):
    """k-bit activations: m thresholds per row, sorted; gamma < 0 rows flip the weights, gamma = 0 constant."""
    rng = np.random.default_rng(bits)
    mh, mw, m = 30, 18, (1 << bits) - 1
    wbits = rng.integers(0, 2, (mh, mw))
    if in_kind == "uint":
        xin = rng.integers(0, 4, (600, mw))
        d = xin @ (2 * wbits - 1).T
        scale = 1 / 3
    else:
        xin = rng.integers(0, 2, (600, mw))
        d = (2 * xin - 1) @ (2 * wbits - 1).T
        scale = 1.0
    gamma = rng.normal(0, 1, mh)
    gamma[:4] = 0.0
    beta = rng.normal(0.3, 0.6, mh)
    beta[0], beta[1] = -0.2, 1.5                    # constant 0 and constant m
    mean = rng.normal(0, 1, mh) * scale * 4
    var = rng.uniform(0.5, 3, mh) * (scale * 5) ** 2
    eps = 1e-4
    mean[5:8] = d[0, 5:8] * scale                   # exact ties
    beta[5:8] = 0.5 / m
    w, t = E.bn_fold_layer(wbits, gamma, beta, mean, var, eps, in_kind, 2, scale, out_bits=bits)
    assert t.shape == (mh, m) and t.dtype == np.int64 and np.all(np.diff(t, axis=1) >= 0)
    assert np.array_equal(w[gamma >= 0], wbits[gamma >= 0]) and np.array_equal(w[gamma < 0], 1 - wbits[gamma < 0])
    if in_kind == "uint":
        acc = xin @ (2 * w - 1).T
    else:
        acc = (xin[:, None, :] == w[None]).sum(-1)
    got = multithreshold(acc, t)
    want = _fold_levels(d, gamma, beta, mean, var, eps, scale, m)
    assert np.array_equal(got, want)
    assert np.all(got[:, 0] == 0) and np.all(got[:, 1] == m)
    assert len(np.unique(want)) == m + 1            # every level is reached


def _check_export_any(result, ds, tmp_path, name):
    """Export, reload through netconfig, compare the golden integer network with the trained one on every image."""
    toml_path, _ = E.export(result, tmp_path, name)
    cfg = netconfig.load(toml_path)
    assert cfg.input_kind == "uint" and cfg.input_bits == ds.pixel_bits
    assert cfg.input_shape == result.input_shape
    net = network_of(cfg)
    last = result.layers[-1]
    for x in (ds.x_test, ds.x_train):
        xs = x.reshape((-1,) + cfg.input_shape)
        out = net.forward(xs)
        assert np.array_equal(out.argmax(1), T.predict(result, x))
        if result.kbit or result.weight_kind == "ternary":   # k-bit inputs or ternary weights: the dot product
            assert np.array_equal(out, T.scores(result, x))
        else:                                    # popcount P = (d + n) / 2
            assert np.array_equal(2 * out - last.w.shape[1], T.scores(result, x))
    xs = ds.x_test[:10].reshape((-1,) + cfg.input_shape)
    assert np.array_equal(net.forward(xs, method="reference"), net.forward(xs))
    acc = float(np.mean(net.forward(ds.x_test.reshape((-1,) + cfg.input_shape)).argmax(1) == ds.y_test))
    assert acc == result.test_acc
    return cfg


def test_export_mlp_kbit_exact(digits, tmp_path):
    r = T.train(digits, "ste", hidden=(64, 32), epochs=3, batch=64, seed=1, act_bits=2)
    assert r.kbit and r.test_acc > 0.5
    cfg = _check_export_any(r, digits, tmp_path, "mlp-a2")
    assert [L.act for L in cfg.layers] == ["uint2", "uint2", "acc"]
    assert [L.thresholds.shape for L in cfg.layers[:2]] == [(64, 3), (32, 3)]
    assert [(L.simd, L.pe) for L in cfg.layers] == [(8, 16), (32, 16), (32, 10)]


@pytest.mark.parametrize("act_bits,hidden", [(1, "c8,p2,24"), (2, "c6,c8,p2,16"), (3, "c8k2,p2,12")])
def test_export_conv_exact(digits, tmp_path, act_bits, hidden):
    small = digits.subset(500, 450)
    r = T.train(small, "ste", hidden=hidden, epochs=2, batch=32, seed=3, act_bits=act_bits)
    assert r.test_acc > 0.3
    cfg = _check_export_any(r, small, tmp_path, f"conv-a{act_bits}")
    kinds = [L.type for L in cfg.layers]
    assert kinds[0] == "conv" and "maxpool" in kinds and kinds[-1] == "fc"
    conv = [L for L in cfg.layers if L.type == "conv"]
    for L, TL in zip(conv, [L for L in r.layers if L.kind == "conv"]):
        assert L.weights.shape == (TL.w.shape[0], TL.in_shape[2], TL.kernel, TL.kernel)
        assert L.in_shape[2] % L.simd == 0 and L.out % L.pe == 0 and L.simd <= 8 and L.pe <= 8
        assert L.act == ("bipolar" if act_bits == 1 else f"uint{act_bits}")


def _perturb_gammas(r, ds, seed=9):
    """Every BN gets gamma < 0 rows (weights inverted, thresholds transformed and re-sorted) and two
    gamma = 0 rows (constants); test_acc is recomputed for the perturbed network."""
    rng = np.random.default_rng(seed)
    for L in r.layers:
        if L.gamma is None:
            continue
        n = len(L.gamma)
        L.gamma = L.gamma * rng.choice([-1.0, 1.0], n)
        L.gamma[rng.choice(n, 2, replace=False)] = 0.0
        L.beta = L.beta + rng.normal(0, 0.3, n)
    r.test_acc = T.accuracy(r, ds.x_test, ds.y_test)
    assert all((L.gamma < 0).any() and (L.gamma == 0).any() for L in r.layers if L.gamma is not None)


@pytest.mark.parametrize("scheme,act_bits,hidden", [
    ("ste", 2, (24, 16)), ("ste", 2, "c6,p2,c8,12"), ("ste", 1, "c6,c8,p2,12"),
    ("ternary", 1, (24, 16)), ("ternary", 2, "c6,p2,c8,12"), ("ternary", 1, "c6,c8,p2,12")])
def test_export_with_negative_and_zero_gamma_kbit_conv_ternary(digits, tmp_path, scheme, act_bits, hidden):
    """Forced gamma < 0 (weights inverted, thresholds transformed and re-sorted) and gamma = 0 (constants)."""
    small = digits.subset(300, 200)
    r = T.train(small, scheme, hidden=hidden, epochs=2, batch=32, seed=2, act_bits=act_bits)
    _perturb_gammas(r, small)
    check = _check_ternary_export if scheme == "ternary" else _check_export_any
    check(r, small, tmp_path, f"perturbed-{scheme}")


def test_conv_training_improves_over_chance(digits):
    small = digits.subset(600, 450)
    r = T.train(small, "ste", hidden="c8,p2,32", epochs=4, batch=32, seed=0, act_bits=2)
    assert r.arch == "8x8x1 c8 p2 32 10 (act_bits 2)"
    assert r.test_acc > 0.7                      # chance is 0.1
    assert r.history["loss"][-1] < r.history["loss"][0]
    f = T.train(small, "float", hidden="c8,p2,32", epochs=4, batch=32, seed=0)
    assert f.test_acc > 0.7


def test_default_folding_of_conv_nets(digits):
    r = T.train(digits.subset(40, 5), "ste", hidden="c16,c32,p2,128", epochs=1)
    # convs: largest divisors <= (8, 8); fcs: the smallest simd * pe within the slowest conv's cycles
    assert E.default_folding(r) == [(1, 8), (8, 8), (16, 1), (2, 1)]
    assert E.default_folding(r, conv=(4, 2)) == [(1, 2), (4, 2), (2, 1), (1, 1)]
    mlp = T.train(digits.subset(40, 5), "ste", hidden=(32, 16), epochs=1)
    assert E.default_folding(mlp) == E.default_folding(mlp.sizes) == [(8, 16), (32, 16), (16, 10)]
    for h in ("c64,p2,256", "c6,c8,p2,16", "c8k2,p2,c4,12,12"):
        r = T.train(digits.subset(40, 5), "ste", hidden=h, epochs=1)
        fold = E.default_folding(r)
        cfg = netconfig.loads(_folded_toml(r, fold))
        cycles = [cfg.layer_cycles(L) for L in cfg.layers]
        conv_max = max(c for c, L in zip(cycles, cfg.layers) if L.type == "conv")
        assert max(c for c, L in zip(cycles, cfg.layers) if L.type == "fc") <= conv_max


def _folded_toml(result, fold):
    lines = ["[network]", f"input_shape = {list(result.input_shape)}", 'input_kind = "uint"', "input_bits = 5"]
    it = iter(fold)
    for i, L in enumerate(result.layers):
        if L.kind == "pool":
            lines += ["[[layer]]", f'name = "l{i}"', 'type = "maxpool"', f"kernel = {L.kernel}"]
            continue
        simd, pe = next(it)
        lines += ["[[layer]]", f'name = "l{i}"', f'type = "{L.kind}"', f"out = {L.w.shape[0]}", f"pe = {pe}",
                  f"simd = {simd}"] + ([f"kernel = {L.kernel}"] if L.kind == "conv" else [])
    return "\n".join(lines) + "\n"


def test_load_npz_both_layouts_and_errors(tmp_path):
    from qnnfab.train.datasets import load_npz
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (20, 5, 4), dtype=np.uint8)        # grey (B, H, W) images
    y = rng.integers(0, 3, 20)
    np.savez(tmp_path / "split.npz", x_train=x[:15], y_train=y[:15], x_test=x[15:], y_test=y[15:])
    ds = load_npz(tmp_path / "split.npz")
    assert ds.name == "split" and ds.input_shape == (5, 4, 1) and ds.pixel_bits == 8
    assert np.array_equal(ds.x_test, x[15:].reshape(5, -1)) and np.array_equal(ds.y_train, y[:15])
    np.savez(tmp_path / "xy.npz", x=rng.random((40, 6)), y=rng.integers(0, 2, 40))
    ds = load_npz(tmp_path / "xy.npz", pixel_bits=4, test_fraction=0.25)
    assert (len(ds.y_train), len(ds.y_test)) == (30, 10) and ds.x_train.max() <= 15
    np.savez(tmp_path / "bad.npz", images=x)
    with pytest.raises(ConfigError, match="x_train"):
        load_npz(tmp_path / "bad.npz")
    with pytest.raises(ConfigError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")
    with pytest.raises(ConfigError, match="pixel_bits"):
        load_npz(tmp_path / "split.npz", pixel_bits=4)             # 8-bit pixels do not fit in 4 bits


# ---------------------------------------------------------------------- ternary weights (TWN)

def test_ternarize_rule():
    """delta = 0.7 * mean |W| per layer; sign(W) where |W| > delta, else 0; the STE mask and binarize agree."""
    from qnnfab.golden.quantizers import ternary_quantize
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (20, 30))
    q = T.ternarize(w)
    delta = 0.7 * np.mean(np.abs(w))
    assert T.TWN_DELTA == 0.7
    assert set(np.unique(q)) == {-1.0, 0.0, 1.0}
    assert np.array_equal(q == 0, np.abs(w) <= delta)
    nz = q != 0
    assert np.array_equal(q[nz], np.sign(w[nz]))
    assert 0.2 < np.mean(q == 0) < 0.5                    # uniform weights: P(|w| <= 0.35) = 0.35
    assert np.array_equal(T.binarize(w, "ternary"), q)
    qq, alpha = ternary_quantize(w, delta, "layer")       # SYQ with one scale (no exact ties here)
    assert np.array_equal(qq, q) and alpha.shape == (1, 1)
    assert np.array_equal(T.ternarize(np.full((2, 3), -0.5)), np.full((2, 3), -1.0))   # |w| = mean > 0.7 mean
    assert np.array_equal(T.ternarize(np.zeros((2, 3))), np.zeros((2, 3)))
    assert np.array_equal(T.ternarize(np.array([[0.1, 0.1, 0.1, 0.1, -4.0]])), [[0, 0, 0, 0, -1]])
    g = np.array([-1.5, -1.0, 0.0, 0.3, 1.0, 2.0])
    assert np.array_equal(T._wgrad_factor(g, "ternary", 1.0), [0, 1, 1, 1, 1, 0])


def test_bn_fold_ternary_reading_bipolar_is_dot_domain():
    """Ternary weights x bipolar inputs: thresholds on d = sum w x (acc_range +-n), flipped rows negated."""
    rng = np.random.default_rng(5)
    mh, mw = 16, 33
    w3 = rng.integers(-1, 2, (mh, mw))
    a = rng.integers(0, 2, (400, mw))
    d = (2 * a - 1) @ w3.T
    gamma, beta = rng.normal(0, 1, mh), rng.normal(0, 0.5, mh)
    gamma[:2] = 0.0
    mean, var = rng.normal(0, 3, mh), rng.uniform(5, 30, mh)
    for out_bits in (1, 2):
        w, t = E.bn_fold_layer(w3, gamma, beta, mean, var, 1e-4, "bipolar", out_bits=out_bits, w_kind="ternary")
        assert np.array_equal(w[gamma >= 0], w3[gamma >= 0]) and np.array_equal(w[gamma < 0], -w3[gamma < 0])
        assert t.min() >= -mw and t.max() <= mw + 1
        got = multithreshold((2 * a - 1) @ w.T, t)
        if out_bits == 1:
            want = _float_bits(d, gamma, beta, mean, var, 1e-4, 1.0).astype(np.int64)
        else:
            want = _fold_levels(d, gamma, beta, mean, var, 1e-4, 1.0, 3)
        assert np.array_equal(got, want)


def _check_ternary_export(result, ds, tmp_path, name):
    """Export a ternary net, reload, compare the golden integer network with the trained one on every image."""
    toml_path, _ = E.export(result, tmp_path, name)
    cfg = netconfig.load(toml_path)
    comp = [L for L in cfg.layers if L.type != "maxpool"]
    tl = [L for L in result.layers if L.kind != "pool"]
    assert all(L.weight_kind == "ternary" for L in comp)
    for L, TL in zip(comp, tl):
        w = L.weights if L.type == "fc" else L.weights.transpose(0, 2, 3, 1).reshape(L.out, -1)   # OIHW -> rows
        q = T.ternarize(TL.w).astype(np.int64)
        flip = np.zeros(L.out, bool) if TL.gamma is None else TL.gamma < 0
        assert np.array_equal(w, np.where(flip[:, None], -q, q))       # flipped rows negated
        assert (w == 0).any() and set(np.unique(w)) <= {-1, 0, 1}
        if L.thresholds is not None:
            n = w.shape[1]
            assert L.thresholds.min() >= -n * 255 and L.thresholds.max() <= n * 255 + 1
    assert _check_export_any(result, ds, tmp_path, name + "-again").layers[0].weight_kind == "ternary"
    return cfg


def test_export_ternary_mlp_bipolar_exact(digits, tmp_path):
    r = T.train(digits, "ternary", hidden=(64, 32), epochs=3, batch=64, seed=1)
    assert r.weight_kind == "ternary" and not r.kbit and r.test_acc > 0.5
    cfg = _check_ternary_export(r, digits, tmp_path, "mlp-tern")
    assert [L.act for L in cfg.layers] == ["bipolar", "bipolar", "acc"]
    assert [(L.simd, L.pe) for L in cfg.layers] == [(8, 16), (32, 16), (32, 10)]


def test_export_ternary_conv_kbit_exact(digits, tmp_path):
    small = digits.subset(500, 450)
    r = T.train(small, "ternary", hidden="c6,c8,p2,16", epochs=2, batch=32, seed=3, act_bits=2)
    assert r.kbit and r.test_acc > 0.3
    cfg = _check_ternary_export(r, small, tmp_path, "conv-tern-a2")
    assert [L.type for L in cfg.layers] == ["conv", "conv", "maxpool", "fc", "fc"]
    assert [L.act for L in cfg.layers if L.type != "maxpool"] == ["uint2", "uint2", "uint2", "acc"]




def test_ternary_training_learns(digits):
    small = digits.subset(400, 450)
    r = T.train(small, "ternary", hidden=(64, 64), epochs=4, batch=32, seed=0)
    assert r.test_acc == T.accuracy(r, small.x_test, small.y_test)
    assert r.test_acc > 0.7                      # chance is 0.1
    assert r.history["loss"][-1] < r.history["loss"][0]
    for L in r.layers:
        assert np.abs(L.w).max() <= 1.0          # latent weights clipped
        assert 0.05 < np.mean(T.ternarize(L.w) == 0) < 0.8
    with pytest.raises(ConfigError, match="float baseline"):
        E.integer_layers(T.train(small.subset(40, 10), "float", hidden=(8,), epochs=1))


def test_run_training_ternary_scheme_not_default(digits, tmp_path):
    import io

    from qnnfab.training import SCHEME_LABEL, SCHEME_ORDER, format_table, run_training
    assert "ternary" in T.SCHEMES and "ternary" not in SCHEME_ORDER
    assert SCHEME_LABEL["ternary"] == "ternary (TWN)"
    res = run_training(digits.subset(300, 100), ["ternary"], hidden=(16,), epochs=1, out_dir=tmp_path,
                       stream=io.StringIO())
    assert res[0].agreement == 1.0 and res[0].toml_path.exists()
    assert "ternary (TWN)" in format_table(res)

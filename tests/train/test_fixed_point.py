"""Fixed-point training on the systolic array's arithmetic (qnnfab.train.fixed_point), from first principles."""

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden import LFSR, FixedFormat, lane_seeds
from qnnfab.train import fixed_point as FP
from qnnfab.train.datasets import Dataset, load_digits

F14 = FixedFormat(2, 14)


@pytest.fixture(scope="module")
def small():
    d = load_digits()
    return Dataset(d.x_train[:96], d.y_train[:96], d.x_test[:40], d.y_test[:40], name="digits-small",
                   pixel_bits=d.pixel_bits, input_shape=d.input_shape)


def _train(ds, **kw):
    args = dict(hidden=(8,), epochs=2, batch=16, lr=0.1, seed=3, fixed_point=(16, 14), rounding="stochastic")
    args.update(kw)
    return FP.train_fixed_point(ds, **args)


# ---------------------------------------------------------------------- update rounding

@pytest.mark.parametrize("g,expected", [(40, 100), (-40, 100), (60, 100), (-60, 100), (100, 99), (-100, 101),
                                        (150, 99)])
def test_nearest_update_drops_changes_below_half_an_ulp(g, expected):
    # w = 100 codes, lr = 2^-7: the update is g / 128 ulps: 40 -> 0.31, 60 -> 0.47 (lost: the stall),
    # 100 -> 0.78, 150 -> 1.17 (rounded to 1)
    lr = 2.0 ** -7
    got = FP.round_update(np.array([100]), np.array([g]), lr, F14, "nearest", np.random.default_rng(0))
    assert got.tolist() == [expected]


def test_nearest_update_ties_go_up_and_saturate():
    lr = 2.0 ** -7
    rng = np.random.default_rng(0)
    assert FP.round_update(np.array([7, 7]), np.array([64, -64]), lr, F14, "nearest", rng).tolist() == [7, 8]
    top, bottom = F14.max_code, F14.min_code
    assert FP.round_update(np.array([top, bottom]), np.array([-1 << 14, 1 << 14]), 0.5, F14, "nearest",
                           rng).tolist() == [top, bottom]


def test_stochastic_update_is_unbiased_and_keeps_sub_ulp_updates():
    # 0.3 ulp down from 0: each value is 0 or -1 (never further), mean -0.3 (nearest would give all 0)
    lr = 0.3 / 100
    got = FP.round_update(np.zeros(40000, np.int64), np.full(40000, 100), lr, F14, "stochastic",
                          np.random.default_rng(1))
    assert set(got.tolist()) == {0, -1}
    assert abs(got.mean() - (-round(lr * 2**FP.LR_FRAC) * 100 / 2**FP.LR_FRAC)) < 0.01
    assert (FP.round_update(np.zeros(100, np.int64), np.full(100, 100), lr, F14, "nearest",
                            np.random.default_rng(1)) == 0).all()


def test_saturated_outputs_pass_no_gradient_outward():
    # z at the top may only come down (dz > 0 lowers it under w - lr g), at the bottom only go up
    top, bottom = F14.max_code, F14.min_code
    z = np.array([top, top, bottom, bottom, 5, top - 1, bottom + 1])
    dz = np.array([-3, 3, 3, -3, -7, -2, 2])
    assert FP._stop_at_saturation(dz, z, F14).tolist() == [0, 3, 0, -3, -7, -2, 2]


# ---------------------------------------------------------------------- training

def test_weights_stored_as_codes_and_training_deterministic_by_seed(small):
    a, b = _train(small), _train(small)
    assert a.sizes == (64, 8, 10)
    for w, w2, bias in zip(a.weights, b.weights, a.biases):
        assert w.dtype == np.int64 and bias.dtype == np.int64
        assert F14.min_code <= w.min() and w.max() <= F14.max_code
        assert np.array_equal(w, w2)
    assert a.history == b.history
    c = _train(small, seed=4)
    assert not all(np.array_equal(w, w2) for w, w2 in zip(a.weights, c.weights))
    n = _train(small, rounding="nearest")
    assert not all(np.array_equal(w, w2) for w, w2 in zip(a.weights, n.weights))
    # an 8-bit fraction stores weights on a 2^-8 grid: the codes fit WL 16, FL 8 (range [-128, 128))
    e = _train(small, fixed_point=(16, 8))
    assert e.fmt == FixedFormat(8, 8) and all(np.abs(w).max() <= 2**15 for w in e.weights)


def _reference_product(a, b, start, fmt, spec, rounding):
    """Element by element: exact sum in Python ints, D = FL bits dropped with the lane's LFSR word, saturation."""
    M, K = a.shape
    N = b.shape[1]
    R, C, d = spec.rows, spec.cols, fmt.F
    tc = -(-N // C)
    seeds = lane_seeds(spec.lfsr_width, spec.lfsr_seed, C)
    out = np.zeros((M, N), np.int64)
    for m in range(M):
        for n in range(N):
            acc = sum(int(a[m, k]) * int(b[k, n]) for k in range(K))
            ti, tj = m // R, n // C
            # words of earlier row tiles, earlier column tiles of this row tile, then the row within
            word = ti * R * tc + tj * min(R, M - ti * R) + m % R
            if rounding == "stochastic":
                lf = LFSR(spec.lfsr_width, seeds[n % C])
                lf.jump((start + word) * d)
                r = lf.state & ((1 << d) - 1)
            else:
                r = 1 << (d - 1)
            out[m, n] = min(fmt.max_code, max(fmt.min_code, (acc + r) >> d))
    return out


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_every_product_runs_on_the_array_with_continuing_lanes(small, rounding):
    rec = []
    spec = FP.ArraySpec(rows=4, cols=3, lfsr_width=20, lfsr_seed=0x155)
    r = _train(small, rounding=rounding, epochs=1, record=rec, array=spec)
    steps = -(-96 // 16)
    layers = 2
    # per step: forward (2), weight gradients (2), one back-propagated product (dz W of the last layer);
    # then the train and test forward passes of the evaluation
    assert len(rec) == steps * (3 * layers - 1) + 2 * layers
    kinds = [(p["a"].shape, p["b"].shape) for p in rec[:5]]
    assert kinds == [((16, 64), (64, 8)), ((16, 8), (8, 10)), ((10, 16), (16, 8)), ((16, 10), (10, 8)),
                     ((8, 16), (16, 64))]
    start = 0
    for p in rec:
        assert p["lfsr_start"] == start
        start += p["a"].shape[0] * -(-p["b"].shape[1] // spec.cols)
    assert r.array_words == start
    for i in (0, 2, 3, 4, len(rec) - 1):      # forward, both gradients, back-propagation, evaluation
        p = rec[i]
        b = p["b"]
        want = _reference_product(p["a"], b, p["lfsr_start"], F14, spec, rounding)[:6]
        assert np.array_equal(p["values"][:6], want), i


def test_float32_baseline_learns(small):
    r = _train(small, fixed_point=None, epochs=4, hidden=(16,))
    assert r.fmt is None and r.label == "float32" and r.array_words == 0
    assert all(w.dtype == np.float32 for w in r.weights)
    assert r.history["test_err"][-1] < 0.6 < r.history["test_err"][0] + 0.3


@pytest.mark.parametrize("text,match", [("16", "not WL,FL"), ("16,15", "FL must"), ("25,14", "WL must"),
                                        ("16,0", "FL must"), ("a,b", "not WL,FL"), ((16,), "pair")])
def test_parse_fixed_point_rejects(text, match):
    with pytest.raises(ConfigError, match=match):
        FP.parse_fixed_point(text)
    assert FP.parse_fixed_point("16, 14") == F14


def test_train_rejects_bad_arguments(small):
    with pytest.raises(ConfigError, match="rounding"):
        _train(small, rounding="truncate")
    with pytest.raises(ConfigError, match="comes after a fully connected layer"):
        _train(small, hidden=(8, "c8"))
    with pytest.raises(ConfigError, match="kernel is larger"):
        _train(small, hidden=("c4k9",))
    flat = Dataset(small.x_train, small.y_train, small.x_test, small.y_test, name="flat", pixel_bits=5)
    with pytest.raises(ConfigError, match="needs an image dataset"):
        _train(flat, hidden=("c4", 8))



def test_accumulator_bound_of_the_conv_weight_gradient():
    # <24,14> codes reach 2^23 in magnitude: a sum of K products fits 62 bits (|sum| < 2^61) for K <= 2^15;
    # a 3x3 convolution on 8x8 digits has 36 output positions, so K = batch x 36: 910 rows fit, 911 do not
    digits, f24 = load_digits(), FixedFormat(10, 14)
    geo = FP.fixed_point_geometry(digits, ("c4", 8), f24, batch=910)
    assert [g[0] for g in geo] == ["conv", "fc", "fc"] and geo[0][4] == (6, 6, 4)
    with pytest.raises(ConfigError, match="K = 32796 of <24,14> codes can overflow"):
        FP.fixed_point_geometry(digits, ("c4", 8), f24, batch=911)
    FP.fixed_point_geometry(digits, ("c4", 8), FixedFormat(2, 14), batch=10**6)   # 16-bit codes: any batch
    # the batch is at most the training set: 1347 rows x 36 overflows <24,14> at any larger batch
    with pytest.raises(ConfigError, match="K = 48492 "):
        FP.fixed_point_geometry(digits, ("c4", 8), f24, batch=10**6)
    with pytest.raises(ConfigError, match="lr"):
        _train(small, lr=2.0 ** -30)


# ---------------------------------------------------------------------- command line

@pytest.mark.parametrize("argv,match", [
    (["--fixed-point", "16"], "--fixed-point: '16' is not WL,FL"),
    (["--fixed-point", "16,15"], "--fixed-point: FL must"),
    (["--rounding", "nearest"], "--rounding: applies to --fixed-point"),
    (["--fixed-point", "16,14", "--schemes", "float"], "--schemes: does not apply"),
    (["--fixed-point", "16,14", "--hidden", "32,c8"], "--hidden: entry 1 'c8' comes after a fully connected"),
    (["--fixed-point", "16,14", "--hidden", "c8k9"], "--hidden: entry 0 'c8k9': 9x9 kernel is larger"),
    (["--fixed-point", "24,14", "--hidden", "c8", "--batch", "2000"], "--batch: products with K = 48492"),
    (["--fixed-point", "16,14", "--epochs", "0"], "--epochs"),
    (["--fixed-point", "16,14", "--lr", "1e-9"], "--lr: 1e-09 rounds to 0"),
])
def test_cli_rejects_bad_fixed_point_arguments_before_training(argv, match, tmp_path, capsys):
    from qnnfab.cli import main
    out = tmp_path / "out"
    assert main(["train", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0] and "fix:" in err[0], err
    assert not out.exists()


def test_cli_trains_in_fixed_point_and_writes_the_codes(tmp_path, capsys):
    from qnnfab.cli import main
    assert main(["train", "--fixed-point", "12,8", "--rounding", "nearest", "--hidden", "8", "--epochs", "1",
                 "--out", str(tmp_path)]) == 0
    saved = np.load(tmp_path / "digits-fixed12-8-nearest.npz")
    assert (int(saved["wl"]), int(saved["fl"])) == (12, 8)
    assert saved["w0"].shape == (8, 64) and saved["w0"].dtype == np.int64
    assert np.abs(saved["w0"]).max() < 2**11 and len(saved["test_err"]) == 1
    assert "<12,8> with nearest rounding" in capsys.readouterr().out


# ---------------------------------------------------------------------- the conv net

def _conv_loops(x, w4):
    """Direct definition: z[b, oy, ox, o] = sum_{ky, kx, c} x[b, oy + ky, ox + kx, c] w4[o, ky, kx, c]."""
    B, H, W, C = x.shape
    O, k = w4.shape[0], w4.shape[1]
    z = np.zeros((B, H - k + 1, W - k + 1, O))
    for b, oy, ox, o in np.ndindex(z.shape):
        z[b, oy, ox, o] = sum(x[b, oy + ky, ox + kx, c] * w4[o, ky, kx, c]
                              for ky in range(k) for kx in range(k) for c in range(C))
    return z


def _conv_grads_loops(x, w4, dz):
    """Direct definition of both gradients of z = conv(x, w4): every (b, oy, ox, o, ky, kx, c) term."""
    dx, dw = np.zeros(x.shape), np.zeros(w4.shape)
    k, C = w4.shape[1], x.shape[3]
    for b, oy, ox, o in np.ndindex(dz.shape):
        for ky, kx, c in np.ndindex(k, k, C):
            dx[b, oy + ky, ox + kx, c] += dz[b, oy, ox, o] * w4[o, ky, kx, c]
            dw[o, ky, kx, c] += dz[b, oy, ox, o] * x[b, oy + ky, ox + kx, c]
    return dx, dw


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
@pytest.mark.parametrize("k", [2, 3])
def test_conv_products_exact_when_nothing_rounds(rounding, k):
    # values on a 2^-3 grid, FL 10: every product sum has 6 fraction bits, so dropping 10 of the 20 product
    # fraction bits drops only zeros -- any rounding gives the exact convolution and gradients
    fmt = FixedFormat(6, 10)
    rng = np.random.default_rng(7)
    B, H, W, C, O = 2, 5, 4, 2, 3               # non-square map, several channels: transpositions show
    x = rng.integers(-8, 8, (B, H, W, C)) / 8
    w4 = rng.integers(-8, 8, (O, k, k, C)) / 8
    dz = rng.integers(-8, 8, (B, H - k + 1, W - k + 1, O)) / 8
    code = lambda v: (v * 2**fmt.F).astype(np.int64)       # noqa: E731
    arr = FP.ArrayModel(fmt, rounding, FP.ArraySpec(rows=3, cols=2, lfsr_width=20))
    z, cols = FP.conv_forward(code(x), code(w4.reshape(O, -1)), k, arr.matmul)
    dw = FP.conv_weight_grad(code(dz), cols, arr.matmul)
    dx = FP.conv_input_grad(code(dz), code(w4.reshape(O, -1)), k, (H, W, C), arr.matmul)
    dx_want, dw_want = _conv_grads_loops(x, w4, dz)
    assert np.array_equal(z, code(_conv_loops(x, w4)))
    assert np.array_equal(dw, code(dw_want).reshape(O, -1))
    assert np.array_equal(dx, code(dx_want))
    assert arr.words > 0 and np.abs(z).max() > 2**fmt.F      # the lanes ran; values beyond +-1 occur


def test_conv_products_round_once_per_value():
    # one fraction bit below the grid: 2^-6 values, FL 4 -> the exact sum has up to 12 fraction bits and
    # the array drops 4 with round-to-nearest once per output value (not once per col2im term)
    fmt = FixedFormat(8, 4)
    rng = np.random.default_rng(3)
    x, w4 = rng.integers(-16, 16, (1, 4, 4, 1)), rng.integers(-16, 16, (2, 3, 3, 1))
    dz = rng.integers(-16, 16, (1, 2, 2, 2))
    arr = FP.ArrayModel(fmt, "nearest")
    dx = FP.conv_input_grad(dz, w4.reshape(2, -1), 3, (4, 4, 1), arr.matmul)
    exact, _ = _conv_grads_loops(x, w4, dz)           # integer sums of code products (2F fraction bits)
    assert np.array_equal(dx, np.clip(np.floor(exact / 2**4 + 0.5), fmt.min_code, fmt.max_code).astype(np.int64))


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_conv_training_products_are_the_array_product_of_their_operands(small, rounding):
    rec = []
    spec = FP.ArraySpec(rows=4, cols=3, lfsr_width=20, lfsr_seed=0x2B1)
    r = _train(small, hidden=("c4", "p2", 8), epochs=1, rounding=rounding, record=rec, array=spec)
    assert r.arch == "c4k3,p2,8,10" and r.sizes == (64, 144, 36, 8, 10)
    assert [w.shape for w in r.weights] == [(4, 9), (8, 36), (10, 8)]
    # one step, in order: conv forward (16 images x 36 positions), both Dense forwards, then backward:
    # last Dense weight gradient and input gradient, hidden Dense the same, conv weight gradient (no input
    # gradient for the first layer)
    assert [(p["a"].shape, p["b"].shape) for p in rec[:7]] == [
        ((576, 9), (9, 4)), ((16, 36), (36, 8)), ((16, 8), (8, 10)),
        ((10, 16), (16, 8)), ((16, 10), (10, 8)), ((8, 16), (16, 36)), ((16, 8), (8, 36)),
    ] and (rec[7]["a"].shape, rec[7]["b"].shape) == ((4, 576), (576, 9))
    steps = -(-96 // 16)
    assert len(rec) == steps * 8 + 2 * 3
    start = 0
    for p in rec:
        assert p["lfsr_start"] == start
        start += p["a"].shape[0] * -(-p["b"].shape[1] // spec.cols)
    assert r.array_words == start
    for i in (0, 7, len(rec) - 3):                   # conv forward, conv weight gradient, evaluation
        p = rec[i]
        # the first two row tiles (full in the whole product too: same output words)
        want = _reference_product(p["a"][:8], p["b"], p["lfsr_start"], F14, spec, rounding)
        assert np.array_equal(p["values"][:8], want), i
    # the evaluation's conv product reads the windows of the test images, pixels / 31 rounded to <16,14>
    xq = np.floor(small.x_test.reshape(-1, 8, 8, 1) / 31 * 2**14 + 0.5).astype(np.int64)
    windows = np.array([[xq[b, oy + ky, ox + kx, 0] for ky in range(3) for kx in range(3)]
                        for b in range(len(xq)) for oy in range(6) for ox in range(6)])
    assert np.array_equal(rec[-3]["a"], windows) and np.array_equal(rec[-3]["b"], r.weights[0].T)


def _one_conv_step(small, rounding, lr, seed):
    """One SGD step of a c4,p2 net from the same initial codes; returns (conv codes before, after, its dW)."""
    ds = small.subset(8, 1)
    geo = FP.fixed_point_geometry(ds, ("c4", "p2"), F14, batch=8)
    weights, biases = FP._init_weights(geo, np.random.default_rng(11), F14)
    net = FP.FixedTrainResult(F14, rounding, (), weights, biases, ds.pixel_bits, layers=geo)
    rec = []
    rng = np.random.default_rng(seed)
    ar = FP._Arithmetic(FP.ArrayModel(F14, rounding, record=rec), F14, rounding, rng)
    x = FP._inputs(ds.x_train, ds.pixel_bits, F14, geo[0][3])
    w0 = net.weights[0].copy()
    FP._step(net, x, ds.y_train, lr, ar)
    gw = [p["values"] for p in rec if p["values"].shape == w0.shape][-1]
    return w0, net.weights[0], gw


def test_conv_update_below_half_an_ulp_stalls_under_nearest_and_moves_under_stochastic(small):
    _, _, gw = _one_conv_step(small, "nearest", 0.01, 0)
    lr = 0.45 / np.abs(gw).max()                         # every |lr * dW| below half an ulp
    lr_eff = round(lr * 2**FP.LR_FRAC) / 2**FP.LR_FRAC
    w0, w1, gw = _one_conv_step(small, "nearest", lr, 0)
    assert np.abs(lr_eff * gw).max() < 0.5 and np.abs(lr_eff * gw).max() > 0.4
    assert np.array_equal(w1, w0)                        # the stall: every update rounded away
    moved, expected, var = 0, 0.0, 0.0
    for seed in range(60):
        w0, w1, gw = _one_conv_step(small, "stochastic", lr, seed)
        step = -lr_eff * gw                              # exact update in ulps, |step| < 1
        d = w1 - w0
        assert np.all((d == np.floor(step)) | (d == np.ceil(step)))
        # each weight moves one ulp in the update's direction with probability |step|
        moved += int(np.sum(d * np.sign(step)))
        expected += float(np.abs(step).sum())
        var += float(np.sum(np.abs(step) * (1 - np.abs(step))))
    assert expected > 8 * var ** 0.5                     # far from the stall (0 moves)
    assert abs(moved - expected) < 4.5 * var ** 0.5, (moved, expected, var ** 0.5)


def _float64_conv_net(small, seed=5):
    """A c3,p2,5 net on 3 digits with float64 weights and random biases (the float path computes in float64)."""
    ds = small.subset(3, 1)
    geo = FP.fixed_point_geometry(ds, ("c3", "p2", 5))
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.6, (3, 9)), rng.normal(0, 0.4, (5, 27)), rng.normal(0, 0.5, (10, 5))]
    biases = [rng.normal(0, 0.2, n) for n in (3, 5, 10)]
    net = FP.FixedTrainResult(None, "float", (), weights, biases, ds.pixel_bits, layers=geo)
    return net, ds.x_train.reshape(-1, 8, 8, 1) / 31.0, np.asarray(ds.y_train)


def _loss(scores, y):
    s = FP.LOGIT_SCALE * scores
    s = s - s.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(len(y)), y]))


def test_conv_net_forward_and_gradients_from_first_principles(small):
    net, x, y = _float64_conv_net(small)
    w0, w1, w2 = net.weights
    b0, b1, b2 = net.biases
    # forward by hand: convolution, ReLU, 2x2 max pool, flatten in (h, w, c) order, Dense-ReLU, Dense
    a = np.maximum(_conv_loops(x, w0.reshape(3, 3, 3, 1)) + b0, 0)
    pooled = np.array([[[[max(a[b, 2 * py + dy, 2 * px + dx, c] for dy in (0, 1) for dx in (0, 1))
                          for c in range(3)] for px in range(3)] for py in range(3)] for b in range(3)])
    h = np.maximum(pooled.reshape(3, 27) @ w1.T + b1, 0)
    want = h @ w2.T + b2
    ar = FP._Arithmetic(None, None, "nearest", None)
    got, _ = FP._forward(net, x, ar)
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)
    # one SGD step with lr 1 subtracts the gradient: compare with central differences of the loss
    before = [p.copy() for p in net.weights + net.biases]
    FP._step(net, x, y, 1.0, ar)
    grads = [p0 - p1 for p0, p1 in zip(before, net.weights + net.biases)]
    probe, _, _ = _float64_conv_net(small)
    params = probe.weights + probe.biases
    eps = 1e-6
    for p, g in zip(params, grads):
        num = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            keep = p[idx]
            p[idx] = keep + eps
            up = _loss(FP._forward(probe, x, ar)[0], y)
            p[idx] = keep - eps
            down = _loss(FP._forward(probe, x, ar)[0], y)
            p[idx] = keep
            num[idx] = (up - down) / (2 * eps)
        # the loss gradient is taken in float32 (as the float32 baseline does): relative error ~1e-7
        assert np.allclose(g, num, rtol=1e-4, atol=1e-6 * np.abs(num).max()), (p.shape, np.abs(g - num).max())
        assert np.abs(num).max() > 1e-3


def test_fixed_point_conv_step_follows_the_float_step_at_long_fl(small):
    # <24,20>: 2^-20 resolution, so one fixed-point step (every product on the array) moves every weight and
    # bias by the float64 gradient to within a few ulps of its quantization
    net, x, y = _float64_conv_net(small)
    fmt = FixedFormat(4, 20)
    fixed = FP.FixedTrainResult(fmt, "nearest", (), [FP.quantize(w, fmt) for w in net.weights],
                                [FP.quantize(b, fmt) for b in net.biases], 5, layers=net.layers)
    net.weights, net.biases = [FP.to_float(w, fmt) for w in fixed.weights], [FP.to_float(b, fmt) for b in fixed.biases]
    before = net.weights + net.biases
    FP._step(net, x, y, 1.0, FP._Arithmetic(None, None, "nearest", None))
    want = [p0 - p1 for p0, p1 in zip(before, net.weights + net.biases)]
    codes = [p.copy() for p in fixed.weights + fixed.biases]
    rec = []
    ar = FP._Arithmetic(FP.ArrayModel(fmt, "nearest", record=rec), fmt, "nearest", np.random.default_rng(0))
    FP._step(fixed, FP.quantize(x, fmt), y, 1.0, ar)
    assert {r["a"].shape for r in rec} >= {(108, 9), (3, 27), (3, 108)}   # conv fwd, Dense fwd, conv wgrad
    for c0, c1, g in zip(codes, fixed.weights + fixed.biases, want):
        err = np.abs((c0 - c1) / 2**20 - g).max()
        assert err < 2e-4 * np.abs(g).max() + 2**-16, err


def test_cli_trains_the_conv_net_in_fixed_point(tmp_path, capsys):
    from qnnfab.cli import main
    assert main(["train", "--fixed-point", "16,12", "--hidden", "c4,p2,16", "--epochs", "1",
                 "--out", str(tmp_path)]) == 0
    saved = np.load(tmp_path / "digits-fixed16-12-stochastic.npz")
    assert str(saved["arch"]) == "c4k3,p2,16,10" and (int(saved["wl"]), int(saved["fl"])) == (16, 12)
    assert saved["w0"].shape == (4, 9) and saved["w1"].shape == (16, 36) and saved["w2"].shape == (10, 16)
    assert saved["w0"].dtype == np.int64 and np.abs(saved["w0"]).max() < 2**15
    out = capsys.readouterr().out
    assert "<16,12> with stochastic rounding" in out and "conv net 8x8x1 c4 p2 16 10" in out


def test_cli_rejects_a_conv_net_on_flat_data_before_training(tmp_path, capsys):
    from qnnfab.cli import main
    rng = np.random.default_rng(0)
    data = tmp_path / "flat.npz"
    np.savez(data, x=rng.integers(0, 256, (40, 20)), y=rng.integers(0, 3, 40))
    out = tmp_path / "out"
    assert main(["train", "--fixed-point", "16,14", "--data", str(data), "--hidden", "c4,8",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--hidden: entry 0 'c4' needs an image dataset" in err[0] and "fix:" in err[0], err
    assert not out.exists()


def test_saturated_conv_outputs_pass_no_gradient_outward(small):
    # conv outputs pinned at the top code (bias at the maximum, weights >= 0 on pixels >= 0): the gradient
    # reaching the conv weight-gradient product may only pull them down (dz >= 0 under w - lr dz)
    ds = small.subset(8, 1)
    geo = FP.fixed_point_geometry(ds, ("c4", "p2", 6), F14, batch=8)
    weights, biases = FP._init_weights(geo, np.random.default_rng(2), F14)
    weights[0] = np.abs(weights[0])
    biases[0] = np.full(4, F14.max_code)
    net = FP.FixedTrainResult(F14, "nearest", (), weights, biases, ds.pixel_bits, layers=geo)
    rec = []
    ar = FP._Arithmetic(FP.ArrayModel(F14, "nearest", record=rec), F14, "nearest", np.random.default_rng(0))
    FP._step(net, FP._inputs(ds.x_train, ds.pixel_bits, F14, geo[0][3]), ds.y_train, 0.1, ar)
    assert rec[0]["values"].min() >= 0          # the forward product is >= 0: plus the top bias, saturated
    dz_t = next(p["a"] for p in rec if p["a"].shape == (4, 8 * 36))   # conv weight gradient: dz^T x windows
    assert dz_t.min() == 0 and dz_t.max() > 0
    # the gradient arriving from the pool has both signs: without the stop the product would see them
    pooled_grad = next(p["values"] for p in rec if p["values"].shape == (8, 36))
    assert pooled_grad.min() < 0 < pooled_grad.max()


def test_roundings_of_one_seed_share_initialisation_and_batches(small):
    # the host's rounding draws come from their own generator: nearest and stochastic runs start from the
    # same codes and read the same batches in every epoch (the curves differ by the arithmetic alone)
    recs = {}
    for rounding in ("nearest", "stochastic"):
        recs[rounding] = rec = []
        _train(small, rounding=rounding, epochs=2, record=rec)
    per_epoch = 6 * 5 + 2 * 2                 # 6 steps of 5 products, then two evaluation passes of 2
    n, s = recs["nearest"], recs["stochastic"]
    assert len(n) == len(s) == 2 * per_epoch
    assert np.array_equal(n[0]["b"], s[0]["b"])                       # initial weights
    for i in (0, 5, per_epoch, per_epoch + 5):                        # first two batches of each epoch
        assert np.array_equal(n[i]["a"], s[i]["a"]), i
    assert not np.array_equal(n[per_epoch]["b"], s[per_epoch]["b"])   # the weights themselves differ

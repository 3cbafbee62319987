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
        a, b = p["a"][:6], p["b"]
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
    with pytest.raises(ConfigError, match="hidden"):
        _train(small, hidden=("c8",))
    with pytest.raises(ConfigError, match="lr"):
        _train(small, lr=2.0 ** -30)


# ---------------------------------------------------------------------- command line

@pytest.mark.parametrize("argv,match", [
    (["--fixed-point", "16"], "--fixed-point: '16' is not WL,FL"),
    (["--fixed-point", "16,15"], "--fixed-point: FL must"),
    (["--rounding", "nearest"], "--rounding: applies to --fixed-point"),
    (["--fixed-point", "16,14", "--schemes", "float"], "--schemes: does not apply"),
    (["--fixed-point", "16,14", "--hidden", "c8,32"], "--hidden: c8 is not fully connected"),
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

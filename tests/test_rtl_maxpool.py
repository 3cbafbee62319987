"""Max-pool unit in Amaranth's own simulator against golden maxpool."""

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden import maxpool
from qnnfab.rtl.maxpool import MaxPool

from qnnfab.packing import pack_words
from qnnfab.sim.amaranth_stream import stream_through

CASES = [
    # H, W, C, SIMD, K, S, kind, bits
    (4, 6, 4, 4, 2, 2, "bipolar", 1),
    (5, 5, 2, 1, 2, 2, "bipolar", 1),      # odd size: last row/column dropped
    (6, 5, 3, 3, 3, 2, "uint", 3),         # overlapping windows
    (4, 4, 4, 2, 2, 1, "uint", 2),
    (3, 3, 2, 2, 3, 3, "uint", 4),         # one output pixel
    (1, 1, 2, 1, 1, 1, "bipolar", 1),      # 1x1 image
]


@pytest.mark.parametrize("H,W,C,SIMD,K,S,kind,B", CASES)
def test_pool_matches_golden_with_gaps(H, W, C, SIMD, K, S, kind, B):
    dut = MaxPool(H, W, C, SIMD, K, S, kind, B)
    rng = np.random.default_rng(H * 100 + W * 10 + K)
    imgs = rng.integers(0, 1 << B, size=(3, H, W, C))
    exp_vals = maxpool(imgs, K, S, kind="bipolar" if kind == "bipolar" else "uint")
    exp = pack_words(exp_vals.reshape(-1, SIMD), B)
    got = stream_through(dut, pack_words(imgs.reshape(-1, SIMD), B), len(exp), 0.7, 0.6, seed=K + S).words
    assert got == exp


def test_non_overlapping_pool_keeps_up_with_its_input():
    H, W, C, SIMD = 8, 8, 4, 4
    dut = MaxPool(H, W, C, SIMD, 2)
    imgs = np.random.default_rng(3).integers(0, 2, size=(3, H, W, C))
    exp = pack_words(maxpool(imgs, 2, kind="bipolar").reshape(-1, SIMD), 1)
    run = stream_through(dut, pack_words(imgs.reshape(-1, SIMD), 1), len(exp))
    got, cyc = run.words, run.out_cycles
    assert got == exp
    per = dut.out_words
    steady = (cyc[3 * per - 1] - cyc[per - 1]) / 2
    assert steady <= H * W * C // SIMD * 1.1, steady


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ConfigError, match="MaxPool: kind"):
        MaxPool(4, 4, 2, 2, 2, kind="float")
    with pytest.raises(ConfigError, match="MaxPool: simd"):
        MaxPool(4, 4, 6, 4, 2)
    with pytest.raises(ConfigError, match="MaxPool: kernel"):
        MaxPool(1, 4, 2, 2, 2)

"""Sliding-window buffer in Amaranth's own simulator against golden im2col."""

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden import im2col
from qnnfab.rtl.sliding_window import SlidingWindow
from qnnfab.sim.amaranth_stream import stream_through
from qnnfab.sim.words import pack_rows


def golden_stream(imgs, simd, kernel, stride, pad, pad_value, bits):
    """Expected output words for a batch (B, H, W, C) of element values."""
    cols = im2col(imgs, kernel, stride, pad, pad_value)   # (B, OH, OW, K*K*C)
    return pack_rows(cols.reshape(-1, simd), bits)


CASES = [
    # H, W, C, SIMD, K, S, P, pad_value, bits
    (5, 7, 4, 4, 3, 1, 1, 0, 1),
    (6, 5, 4, 1, 2, 2, 0, 0, 1),
    (1, 1, 3, 3, 3, 1, 1, 1, 1),
    (7, 6, 2, 2, 5, 1, 1, 3, 2),
    (4, 4, 6, 3, 1, 1, 0, 0, 4),
    (9, 8, 2, 1, 3, 2, 1, 1, 1),
    (2, 3, 2, 2, 5, 1, 2, 0, 1),
    (5, 6, 1, 1, 1, 2, 0, 0, 1),
    (4, 3, 2, 1, 2, 1, 1, 1, 3),
]


@pytest.mark.parametrize("H,W,C,SIMD,K,S,P,PV,B", CASES)
def test_im2col_stream_matches_golden_with_gaps(H, W, C, SIMD, K, S, P, PV, B):
    dut = SlidingWindow(H, W, C, SIMD, K, S, P, PV, B)
    rng = np.random.default_rng(H * 1000 + W * 100 + K * 10 + S)
    n_img = 3
    imgs = rng.integers(0, 1 << B, size=(n_img, H, W, C))
    in_words = pack_rows(imgs.reshape(-1, SIMD), B)
    exp = golden_stream(imgs, SIMD, K, S, P, PV, B)
    assert len(exp) == n_img * dut.out_words
    # with padding, the next image's first (padding) words leave before any input: no check for extra words
    got = stream_through(dut, in_words, len(exp), 0.7, 0.6, seed=K * 7 + S, extra_cycles=0 if P else 8).words
    for k, (g, e) in enumerate(zip(got, exp)):
        assert g == e, f"word {k}: got {g:#x}, expected {e:#x}"


def test_one_word_per_cycle_when_output_bound():
    H, W, C, SIMD, K = 6, 8, 2, 2, 3
    dut = SlidingWindow(H, W, C, SIMD, K, 1, 1)
    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 2, size=(3, H, W, C))
    exp = golden_stream(imgs, SIMD, K, 1, 1, 0, 1)
    run = stream_through(dut, pack_rows(imgs.reshape(-1, SIMD), 1), len(exp), extra_cycles=0)
    got, cycles = run.words, run.out_cycles
    assert got == exp
    per = dut.out_words
    # steady state: the second and third images leave at one word per cycle
    assert cycles[3 * per - 1] - cycles[per - 1] == 2 * per


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ConfigError, match="simd"):
        SlidingWindow(4, 4, 6, 4, 3)
    with pytest.raises(ConfigError, match="kernel"):
        SlidingWindow(2, 5, 2, 2, 3)          # 2 rows, no padding, 3x3 kernel
    with pytest.raises(ConfigError, match="kernel"):
        SlidingWindow(4, 4, 2, 2, 8)
    with pytest.raises(ConfigError, match="pad"):
        SlidingWindow(4, 4, 2, 2, 2, pad=2)
    with pytest.raises(ConfigError, match="pad_value"):
        SlidingWindow(4, 4, 2, 2, 3, pad=1, pad_value=2)
    with pytest.raises(ConfigError, match="stride"):
        SlidingWindow(4, 4, 2, 2, 3, stride=0)
    SlidingWindow(2, 5, 2, 2, 3, pad=1)       # enough padding: fine


def test_line_buffer_is_k_rows_of_the_image():
    sw = SlidingWindow(32, 32, 64, 32, 3, 1, 1)
    assert sw.buffer_bits == 3 * 32 * 64
    assert SlidingWindow(1, 1, 3, 3, 3, 1, 1).buffer_bits == 3

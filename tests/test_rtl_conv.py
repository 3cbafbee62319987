"""Convolution layer (sliding window -> FIFO -> MVTU) in Amaranth's simulator against the golden convolution."""

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden import binary_weight_matvec, conv_weights_to_matrix, im2col, multithreshold, xnor_popcount_matmul
from qnnfab.rtl.conv import ConvLayer

from qnnfab.packing import pack_words
from qnnfab.sim.amaranth_stream import stream_through


def golden_conv(imgs, w, T, stride, pad, pad_value, act_kind, act_bits):
    """(B, H, W, IFM) stored activations -> (B*OH*OW, OFM) outputs (thresholded when T is given)."""
    k = w.shape[2]
    cols = im2col(imgs, k, stride, pad, pad_value)
    cols = cols.reshape(-1, cols.shape[-1])
    mat = conv_weights_to_matrix(w)
    if act_kind == "bipolar":
        acc = xnor_popcount_matmul(mat, cols)
    else:
        acc = binary_weight_matvec(mat, cols, "uint", act_bits)
    return acc if T is None else multithreshold(acc, T)


def make_case(rng, H, W, IFM, OFM, K, act_kind, act_bits, n_thr):
    w = rng.integers(0, 2, size=(OFM, IFM, K, K))
    mw = K * K * IFM
    if act_kind == "bipolar":
        T = np.sort(rng.integers(0, mw + 1, size=(OFM, n_thr)), axis=1)
    else:
        hi = mw * ((1 << act_bits) - 1)
        T = np.sort(rng.integers(-hi, hi + 1, size=(OFM, n_thr)), axis=1)
    imgs = rng.integers(0, 1 << act_bits, size=(3, H, W, IFM))
    return w, T, imgs


CASES = [
    # H, W, IFM, OFM, K, S, P, PV, SIMD, PE, act_kind, act_bits, n_thr
    (5, 6, 4, 4, 3, 1, 1, 0, 4, 2, "bipolar", 1, 1),
    (4, 4, 2, 3, 2, 2, 0, 0, 1, 3, "bipolar", 1, 1),
    (1, 1, 3, 2, 3, 1, 1, 1, 3, 1, "bipolar", 1, 1),
    (4, 5, 2, 4, 1, 1, 0, 0, 2, 4, "uint", 2, 3),
    (6, 6, 2, 2, 5, 2, 1, 0, 1, 1, "uint", 2, 3),
    # SIMD above IFM: several kernel positions per word, whole pixels in
    (5, 7, 3, 4, 3, 1, 0, 0, 27, 2, "uint", 3, 3),     # whole window (conv0-like, k-bit pixels)
    (6, 5, 4, 4, 3, 2, 1, 1, 12, 4, "bipolar", 1, 1),   # a kernel row per word, stride 2, pad +1
    (1, 1, 2, 3, 3, 1, 1, 2, 18, 3, "uint", 2, 3),     # one-pixel image, pad value 2
]


@pytest.mark.parametrize("H,W,IFM,OFM,K,S,P,PV,SIMD,PE,AK,AB,NT", CASES)
def test_conv_matches_golden_with_gaps(H, W, IFM, OFM, K, S, P, PV, SIMD, PE, AK, AB, NT):
    rng = np.random.default_rng(H * 7 + K * 3 + S)
    w, T, imgs = make_case(rng, H, W, IFM, OFM, K, AK, AB, NT)
    dut = ConvLayer(H, W, w, T, stride=S, pad=P, pad_value=PV, simd=SIMD, pe=PE,
                    act_kind=AK, act_bits=AB if AK != "bipolar" else None)
    out = golden_conv(imgs, w, T, S, P, PV, AK, AB)
    ob = dut.mvtu.out_elem_width
    exp = pack_words(out.reshape(-1, PE), ob)
    assert dut.in_simd == min(SIMD, IFM)
    got = stream_through(dut, pack_words(imgs.reshape(-1, dut.in_simd), AB), len(exp), 0.7, 0.6, seed=K).words
    assert got == exp


def test_window_fifo_only_for_words_within_a_pixel():
    w = np.zeros((2, 4, 3, 3), int)
    assert ConvLayer(6, 6, w, None, simd=4, pe=1).fifo.depth == 2
    assert ConvLayer(6, 6, w, None, simd=12, pe=1).fifo is None
    assert ConvLayer(6, 6, w, None, simd=12, pe=1, fifo_depth=4).fifo.depth == 4


def test_bad_parameters_raise_clear_errors():
    w = np.zeros((2, 4, 3, 3), int)
    with pytest.raises(ConfigError, match="sliding window.*simd"):
        ConvLayer(4, 4, w, None, simd=3, pe=1)
    with pytest.raises(ConfigError, match=r"sliding window.*simd.*\[1, 2, 4, 12, 36\]"):
        ConvLayer(4, 4, w, None, simd=8, pe=1)
    with pytest.raises(ConfigError, match="sliding window.*kernel"):
        ConvLayer(2, 4, w, None, simd=4, pe=1)
    with pytest.raises(ConfigError, match="mvtu.*pe"):
        ConvLayer(4, 4, w, None, simd=4, pe=3)
    with pytest.raises(ConfigError, match="weights"):
        ConvLayer(4, 4, np.zeros((2, 4, 3, 2), int), None, simd=4, pe=1)


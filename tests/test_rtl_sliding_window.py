"""Sliding-window buffer in Amaranth's own simulator against golden im2col."""

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden import im2col
from qnnfab.packing import pack_words
from qnnfab.rtl.sliding_window import SlidingWindow
from qnnfab.sim.amaranth_stream import stream_through


def golden_stream(imgs, simd, kernel, stride, pad, pad_value, bits):
    """Expected output words for a batch (B, H, W, C) of element values."""
    cols = im2col(imgs, kernel, stride, pad, pad_value)   # (B, OH, OW, K*K*C)
    return pack_words(cols.reshape(-1, simd), bits)


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

# SIMD = m * C: m kernel positions per word (whole pixels in)
POSITION_CASES = [
    # H, W, C, SIMD, K, S, P, pad_value, bits
    (5, 7, 3, 27, 3, 1, 1, 1, 1),     # the whole window per word, odd sizes, pad +1
    (7, 5, 2, 6, 3, 1, 0, 0, 1),      # one kernel row per word, no padding
    (9, 8, 2, 6, 3, 2, 1, 1, 3),      # stride 2, 3-bit elements, pad value 1
    (6, 5, 3, 12, 2, 2, 0, 0, 1),     # K=2 stride 2: all 4 positions, last column unused
    (1, 1, 3, 27, 3, 1, 1, 5, 3),     # one-pixel image: 8 of 9 positions are padding (value 5)
    (2, 3, 2, 50, 5, 1, 2, 2, 2),     # image smaller than the kernel, 25 positions per word
    (4, 6, 1, 3, 3, 1, 1, 0, 4),      # C = 1, 4-bit elements
    (6, 7, 2, 4, 2, 1, 1, 1, 1),      # K=2, 2 of 4 positions per word, pad +1
]


@pytest.mark.parametrize("H,W,C,SIMD,K,S,P,PV,B", CASES)
def test_im2col_stream_matches_golden_with_gaps(H, W, C, SIMD, K, S, P, PV, B):
    dut = SlidingWindow(H, W, C, SIMD, K, S, P, PV, B)
    rng = np.random.default_rng(H * 1000 + W * 100 + K * 10 + S)
    n_img = 3
    imgs = rng.integers(0, 1 << B, size=(n_img, H, W, C))
    in_words = pack_words(imgs.reshape(-1, SIMD), B)
    exp = golden_stream(imgs, SIMD, K, S, P, PV, B)
    assert len(exp) == n_img * dut.out_words
    # with padding, the next image's first (padding) words leave before any input: no check for extra words
    got = stream_through(dut, in_words, len(exp), 0.7, 0.6, seed=K * 7 + S, extra_cycles=0 if P else 8).words
    for k, (g, e) in enumerate(zip(got, exp)):
        assert g == e, f"word {k}: got {g:#x}, expected {e:#x}"


@pytest.mark.parametrize("H,W,C,SIMD,K,S,P,PV,B", POSITION_CASES)
def test_several_kernel_positions_per_word_match_golden_with_gaps(H, W, C, SIMD, K, S, P, PV, B):
    dut = SlidingWindow(H, W, C, SIMD, K, S, P, PV, B)
    assert (dut.in_simd, dut.positions) == (C, SIMD // C)
    rng = np.random.default_rng(H * 1000 + W * 100 + K * 10 + S + SIMD)
    n_img = 3
    imgs = rng.integers(0, 1 << B, size=(n_img, H, W, C))
    imgs[0] = (1 << B) - 1              # all-max first: padding must still show pad_value
    in_words = pack_words(imgs.reshape(-1, C), B)
    exp = golden_stream(imgs, SIMD, K, S, P, PV, B)
    assert len(exp) == n_img * dut.out_words
    for valid_prob, ready_prob, seed in ((0.7, 0.6, 1), (0.2, 0.9, 2), (1.0, 0.3, 3)):
        got = stream_through(dut, in_words, len(exp), valid_prob, ready_prob, seed=seed,
                             extra_cycles=0 if P else 8).words
        for k, (g, e) in enumerate(zip(got, exp)):
            assert g == e, f"word {k} (gaps {valid_prob}, ready {ready_prob}): got {g:#x}, expected {e:#x}"


def _steady(cycles, per):
    """Cycles between the last words of the first and the third image."""
    return cycles[3 * per - 1] - cycles[per - 1]


def test_whole_window_per_word_keeps_up_with_one_pixel_per_cycle():
    # stride 1, whole window per word: the output (OH*OW words) outpaces the
    # input (H*W pixels), so images take H*W cycles
    H, W, C, K = 6, 7, 2, 3
    dut = SlidingWindow(H, W, C, K * K * C, K, 1, 0)
    imgs = np.random.default_rng(6).integers(0, 2, size=(4, H, W, C))
    exp = golden_stream(imgs, K * K * C, K, 1, 0, 0, 1)
    run = stream_through(dut, pack_words(imgs.reshape(-1, C), 1), len(exp))
    assert run.words == exp
    per = dut.out_words
    assert per == (H - 2) * (W - 2)
    assert _steady(run.out_cycles, per) == 2 * H * W, run.out_cycles
    # and the input is taken at one pixel per cycle in steady state
    assert run.in_cycles[3 * H * W - 1] - run.in_cycles[H * W - 1] == 2 * H * W


def test_positions_per_word_leave_at_one_word_per_cycle_when_output_bound():
    H, W, C, K = 6, 8, 2, 3
    dut = SlidingWindow(H, W, C, 3 * C, K, 1, 1, 1)
    imgs = np.random.default_rng(7).integers(0, 2, size=(3, H, W, C))
    exp = golden_stream(imgs, 3 * C, K, 1, 1, 1, 1)
    run = stream_through(dut, pack_words(imgs.reshape(-1, C), 1), len(exp), extra_cycles=0)
    assert run.words == exp
    per = dut.out_words
    assert per == H * W * 3
    assert _steady(run.out_cycles, per) == 2 * per


def test_one_word_per_cycle_when_output_bound():
    H, W, C, SIMD, K = 6, 8, 2, 2, 3
    dut = SlidingWindow(H, W, C, SIMD, K, 1, 1)
    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 2, size=(3, H, W, C))
    exp = golden_stream(imgs, SIMD, K, 1, 1, 0, 1)
    run = stream_through(dut, pack_words(imgs.reshape(-1, SIMD), 1), len(exp), extra_cycles=0)
    got, cycles = run.words, run.out_cycles
    assert got == exp
    per = dut.out_words
    # steady state: the second and third images leave at one word per cycle
    assert cycles[3 * per - 1] - cycles[per - 1] == 2 * per


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ConfigError, match="simd"):
        SlidingWindow(4, 4, 6, 4, 3)
    # above C: a multiple m*C with m dividing K*K, else the choices are listed
    for simd in (12, 24, 36, 9):
        with pytest.raises(ConfigError, match=r"simd.*\[1, 2, 3, 6, 18, 54\]"):
            SlidingWindow(4, 4, 6, simd, 3)
    with pytest.raises(ConfigError, match=r"simd.*\[1, 2, 4, 8, 16\]"):
        SlidingWindow(4, 4, 4, 12, 2)        # 3 does not divide 2x2
    with pytest.raises(ConfigError, match="simd"):
        SlidingWindow(4, 4, 4, 8, 1)         # a 1x1 kernel has one position
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


def test_line_buffer_is_k_rows_or_more_without_padding():
    sw = SlidingWindow(32, 32, 64, 32, 3, 1, 1)
    assert sw.buffer_bits == 3 * 32 * 64
    assert SlidingWindow(1, 1, 3, 3, 3, 1, 1).buffer_bits == 3
    # no padding, 32 x 32, K = 3: the last window starts at (29, 29); with KR rows the writer may
    # hold (29 + KR) * 32 + 29 - 1024 pixels of the next image, its first window needs 2 * 32 + 3:
    # KR = 4 gives 61, KR = 5 gives 93
    # m positions per word: m copies of the KR rows, one read port each
    sw = SlidingWindow(32, 32, 3, 27, 3, 1, 0, 0, 8)
    assert sw.buffer_rows == 5
    assert (sw.buffer_copies, sw.buffer_bits, sw.in_words, sw.out_words) == (9, 9 * 5 * 32 * 3 * 8, 1024, 900)
    # a buffer never holds more than the image (the writer stays within one image of the reader)
    assert SlidingWindow(3, 8, 1, 1, 3, 1, 0).buffer_rows == 3


@pytest.mark.parametrize("H,W,C,SIMD,K,S", [
    (6, 8, 2, 2, 3, 1),     # output-bound (K*K reuse), one channel word of a position per word
    (5, 6, 1, 1, 3, 1),
    (7, 6, 2, 1, 3, 2),     # stride 2
    (6, 8, 2, 2, 2, 2),     # max-pool-like K = 2, S = 2
])
def test_no_refill_stall_at_image_boundaries_without_padding(H, W, C, SIMD, K, S):
    # back-to-back images, output and input unstalled: every image takes exactly
    # max(output words, input words) cycles (with K rows: 222, 112, 117 and 51)
    dut = SlidingWindow(H, W, C, SIMD, K, S, 0)
    imgs = np.random.default_rng(H * W + K).integers(0, 2, size=(4, H, W, C))
    exp = golden_stream(imgs, SIMD, K, S, 0, 0, 1)
    run = stream_through(dut, pack_words(imgs.reshape(-1, SIMD), 1), len(exp))
    assert run.words == exp
    oh, ow = (H - K) // S + 1, (W - K) // S + 1
    per_image = max(oh * ow * K * K * C // SIMD, H * W * C // SIMD)
    assert _steady(run.out_cycles, dut.out_words) == 2 * per_image


def test_line_buffer_copies_of_a_kilobit_or_more_are_marked_for_block_ram():
    from amaranth.back import verilog
    cases = [((32, 32, 3, 27, 3, 1, 0, 0, 8), 9),     # 9 copies of 96 x 24 bits
             ((5, 7, 3, 27, 3, 1, 1, 1, 1), 0),       # 9 copies of 21 x 3 bits: LUT-RAM
             ((32, 32, 3, 3, 3, 1, 0, 0, 8), 0)]      # one position per word: Yosys decides, as before
    for args, marked in cases:
        sw = SlidingWindow(*args)
        assert sw.buffer_in_block_ram == bool(marked)
        text = verilog.convert(sw, name="top", emit_src=False)
        assert text.count('ram_style = "block"') == marked, args

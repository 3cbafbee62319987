"""Global sum and global average pooling against golden in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.hdl import Shape, signed, unsigned

from qnnfab.errors import ConfigError
from qnnfab.golden.graph import global_sum_pool
from qnnfab.golden.threshold import multithreshold
from qnnfab.packing import pack_words, unpack_words
from qnnfab.rtl.global_pool import GlobalAveragePool, GlobalSum
from qnnfab.sim.amaranth_stream import stream_through


def _images(rng, shape, n, h, w, c):
    s = Shape.cast(shape)
    lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
    x = rng.integers(lo, hi, endpoint=True, size=(n, h, w, c))
    x[0] = hi          # the largest sum
    x[1] = lo          # the smallest
    return x


CASES = [
    # H, W, C, SIMD, shape
    (3, 3, 4, 2, unsigned(2)),
    (2, 4, 3, 3, signed(3)),      # one word per pixel
    (1, 1, 2, 1, unsigned(1)),    # a single pixel
    (4, 2, 6, 1, signed(2)),
    (5, 3, 2, 2, unsigned(4)),    # odd pixel count: sums not a power of two
    (2, 2, 2, 2, unsigned(1)),    # the largest sum, 4, is a power of two
]


@pytest.mark.parametrize("H,W,C,SIMD,shape", CASES)
def test_sums_match_golden_over_images_back_to_back_with_gaps(H, W, C, SIMD, shape):
    rng = np.random.default_rng(H * 31 + C)
    x = _images(rng, shape, 4, H, W, C)
    dut = GlobalSum(H * W, C, SIMD, shape)
    s, bits = dut.sum_shape, Shape.cast(shape).width
    words = pack_words(x.reshape(-1, SIMD), bits)
    out = stream_through(dut, words, 4 * C // SIMD, 0.7, 0.5, seed=C).words
    np.testing.assert_array_equal(unpack_words(out, SIMD, s.width, s.signed).reshape(4, C), global_sum_pool(x))


def test_sum_width_holds_pixels_times_the_range():
    # first principles: 9 pixels of [0, 3] sum to [0, 27] -> 5 bits; 8 of [-4, 3] to [-32, 24] -> signed(6)
    assert GlobalSum(9, 4, 2, unsigned(2)).sum_shape == unsigned(5)
    assert GlobalSum(8, 3, 3, signed(3)).sum_shape == signed(6)
    assert GlobalSum(4, 1, 1, unsigned(1)).sum_shape == unsigned(3)     # [0, 4]
    assert GlobalSum(2, 1, 1, signed(2)).sum_shape == signed(3)         # [-4, 2]


def test_one_word_per_cycle_and_sums_offered_after_the_last_pixel():
    H, W, C, SIMD = 3, 3, 4, 2
    dut = GlobalSum(H * W, C, SIMD, unsigned(2))
    x = _images(np.random.default_rng(2), unsigned(2), 3, H, W, C)
    run = stream_through(dut, pack_words(x.reshape(-1, SIMD), 2), 3 * C // SIMD)
    per = H * W * C // SIMD
    assert run.in_cycles == list(range(3 * per))
    last_pixel = [run.in_cycles[f * per + per - C // SIMD + w] for f in range(3) for w in range(C // SIMD)]
    assert run.out_cycles == [c + dut.latency for c in last_pixel]


@pytest.mark.parametrize("H,W,C,SIMD,nt", [(3, 3, 4, 2, 3), (2, 2, 2, 1, 1), (4, 4, 3, 3, 15)])
def test_average_pool_thresholds_the_sums_like_golden(H, W, C, SIMD, nt):
    rng = np.random.default_rng(nt)
    x = _images(rng, unsigned(2), 3, H, W, C)
    t = rng.integers(0, 3 * H * W + 2, size=(C, nt))
    t[0, 0] = 3 * H * W            # a tie with the largest sum (image 0) counts
    t = np.sort(t, axis=1)
    dut = GlobalAveragePool(H * W, C, SIMD, unsigned(2), t)
    out = stream_through(dut, pack_words(x.reshape(-1, SIMD), 2), 3 * C // SIMD, 0.8, 0.6, seed=1).words
    got = unpack_words(out, SIMD, dut.out_bits).reshape(3, C)
    np.testing.assert_array_equal(got, multithreshold(global_sum_pool(x), t))


def test_bad_parameters_raise():
    with pytest.raises(ConfigError, match="global sum: simd"):
        GlobalSum(4, 6, 4, unsigned(2))
    with pytest.raises(ConfigError, match="global sum: pixels"):
        GlobalSum(0, 2, 1, unsigned(2))
    with pytest.raises(ConfigError, match="thresholds"):
        GlobalAveragePool(4, 4, 2, unsigned(2), np.zeros((2, 1), int))

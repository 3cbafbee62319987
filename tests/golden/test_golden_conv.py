"""Sliding window (im2col) and max pooling against explicit loops."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qnnfab.errors import ConfigError
from qnnfab.golden import conv_weights_to_matrix, im2col, maxpool, pack_bits, unpack_bits

SET = settings(max_examples=80, deadline=None)


def slow_im2col(x, kh, kw, sh, sw, ph, pw, pv):
    """Loop nest of the hardware: for oy, ox, ky, kx, c (x is (B, H, W, C))."""
    B, H, W, C = x.shape
    oh, ow = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    out = np.zeros((B, oh, ow, kh * kw * C), x.dtype)
    for b in range(B):
        for oy in range(oh):
            for ox in range(ow):
                i = 0
                for ky in range(kh):
                    for kx in range(kw):
                        for c in range(C):
                            yy, xx = oy * sh + ky - ph, ox * sw + kx - pw
                            out[b, oy, ox, i] = x[b, yy, xx, c] if 0 <= yy < H and 0 <= xx < W else pv
                            i += 1
    return out


def slow_maxpool(x, kh, kw, sh, sw):
    B, H, W, C = x.shape
    oh, ow = (H - kh) // sh + 1, (W - kw) // sw + 1
    out = np.zeros((B, oh, ow, C), x.dtype)
    for b in range(B):
        for oy in range(oh):
            for ox in range(ow):
                for c in range(C):
                    out[b, oy, ox, c] = max(x[b, oy * sh + i, ox * sw + j, c] for i in range(kh) for j in range(kw))
    return out


@st.composite
def conv_geom(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 5)), draw(st.integers(1, 5))  # includes stride > kernel
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 8))
    w = draw(st.integers(max(1, kw - 2 * pw), 8))
    c = draw(st.sampled_from([1, 2, 3, 5]))
    return kh, kw, sh, sw, ph, pw, h, w, c


@SET
@given(g=conv_geom(), b=st.integers(1, 2), pv=st.sampled_from([0, 1]), seed=st.integers(0, 2**32 - 1))
def test_im2col_matches_loop_nest(g, b, pv, seed):
    kh, kw, sh, sw, ph, pw, h, w, c = g
    x = np.random.default_rng(seed).integers(0, 2, (b, h, w, c), dtype=np.uint8)
    got = im2col(x, (kh, kw), (sh, sw), (ph, pw), pad_value=pv)
    assert np.array_equal(got, slow_im2col(x, kh, kw, sh, sw, ph, pw, pv))
    assert np.array_equal(im2col(x[0], (kh, kw), (sh, sw), (ph, pw), pad_value=pv), got[0])


def test_im2col_1x1_image_and_kernel():
    x = np.arange(5).reshape(1, 1, 5)
    assert im2col(x, 1).tolist() == [[[0, 1, 2, 3, 4]]]
    assert im2col(x, 3, pad=1).reshape(9, 5)[4].tolist() == [0, 1, 2, 3, 4]


def test_conv_weights_to_matrix_matches_convolution():
    rng = np.random.default_rng(1)
    x = rng.integers(-5, 5, (2, 6, 7, 3))
    w = rng.integers(-2, 3, (4, 3, 3, 2))  # OIHW, 3x2 kernel
    mat = conv_weights_to_matrix(w)
    got = im2col(x, (3, 2), (2, 1), 1) @ mat.T
    ref = np.zeros_like(got)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for oy in range(got.shape[1]):
        for ox in range(got.shape[2]):
            patch = xp[:, 2 * oy:2 * oy + 3, ox:ox + 2, :]  # (B, 3, 2, C)
            ref[:, oy, ox] = np.einsum("bhwc,ochw->bo", patch, w)
    assert np.array_equal(got, ref)
    assert np.array_equal(conv_weights_to_matrix(w.transpose(0, 2, 3, 1), "OHWI"), mat)


@SET
@given(kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 4), sw=st.integers(1, 4),
       h=st.integers(3, 9), w=st.integers(3, 9), c=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_maxpool_uint_bipolar_and_packed(kh, kw, sh, sw, h, w, c, seed):
    rng = np.random.default_rng(seed)
    xu = rng.integers(0, 16, (2, h, w, c))
    assert np.array_equal(maxpool(xu, (kh, kw), (sh, sw), "uint"), slow_maxpool(xu, kh, kw, sh, sw))
    xb = rng.integers(0, 2, (2, h, w, c), dtype=np.uint8)
    ref = slow_maxpool(xb, kh, kw, sh, sw)
    assert np.array_equal(maxpool(xb, (kh, kw), (sh, sw), "bipolar"), ref)
    assert np.array_equal(unpack_bits(maxpool(pack_bits(xb), (kh, kw), (sh, sw), "packed"), c), ref)


def test_maxpool_default_stride_and_odd_size():
    x = np.arange(25).reshape(5, 5, 1)
    assert maxpool(x, 2).reshape(2, 2).tolist() == [[6, 8], [16, 18]]


def test_bad_geometry_raises():
    with pytest.raises(ConfigError, match="im2col"):
        im2col(np.zeros((2, 2, 1)), 3)
    with pytest.raises(ConfigError, match="stride"):
        im2col(np.zeros((4, 4, 1)), 3, stride=0)
    with pytest.raises(ConfigError, match="NHWC"):
        im2col(np.zeros((4, 4)), 3)
    with pytest.raises(ConfigError, match="maxpool"):
        maxpool(np.zeros((1, 1, 1)), 2)
    with pytest.raises(ConfigError, match="kind"):
        maxpool(np.zeros((2, 2, 1)), 2, kind="avg")

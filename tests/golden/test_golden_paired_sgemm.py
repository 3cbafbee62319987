"""The paired float32 GEMM path of binary FC layers against the packed XNOR popcount."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qnnfab.errors import ConfigError
from qnnfab.golden.bits import PairedSgemm, xnor_popcount_matmul
from qnnfab.golden.network import make_network

from random_nets import random_input, random_net
from qnnfab.golden.network import Network


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 41), n=st.integers(1, 2047), b=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       fill=st.sampled_from(["random", "zeros", "ones"]))
def test_popcount_equals_packed_xnor_popcount(m, n, b, seed, fill):
    rng = np.random.default_rng(seed)
    w = {"random": rng.integers(0, 2, (m, n)), "zeros": np.zeros((m, n), int),
         "ones": np.ones((m, n), int)}[fill].astype(np.uint8)
    x = rng.integers(0, 2, (b, n)).astype(np.uint8)
    expected = xnor_popcount_matmul(w, x)
    assert np.array_equal(PairedSgemm(w).popcount(x), expected)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 20), n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_threshold_bits_equal_popcount_compared_with_thresholds(m, n, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (m, n)).astype(np.uint8)
    x = rng.integers(0, 2, (7, n)).astype(np.uint8)
    t = rng.integers(-2, n + 3, m)
    p = xnor_popcount_matmul(w, x)
    assert np.array_equal(PairedSgemm(w).threshold_bits(x, t).astype(int), (p >= t).astype(int))


def test_too_long_rows_are_rejected():
    with pytest.raises(ConfigError):
        PairedSgemm(np.zeros((2, 2048), np.uint8))


@pytest.mark.parametrize("name", ["LFC-small", "CNV-small"])
def test_packed_method_equals_fast_and_reference(name):
    net = make_network(name, seed=3)
    x = random_input(net, 3, np.random.default_rng(1))
    ref = net.forward(x, method="reference")
    assert np.array_equal(net.forward(x, method="packed"), ref)
    assert np.array_equal(net.forward(x), ref)


@settings(max_examples=20, deadline=None)
@given(spec=random_net(), seed=st.integers(0, 2**32 - 1))
def test_random_networks_packed_equals_reference(spec, seed):
    layers, in_shape, kind, bits = spec
    net = Network(layers, in_shape, kind, bits)
    x = random_input(net, 2, np.random.default_rng(seed))
    assert np.array_equal(net.forward(x, method="packed"), net.forward(x, method="reference"))

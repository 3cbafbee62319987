"""Network forward pass: fast path == slow reference == float32 network, on the named topologies and random nets."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qnnfab.errors import ConfigError
from qnnfab.golden import (FC, TOPOLOGIES, Conv, Network, Threshold, binarize_input, cnv_input_codes,
                           float_forward, make_network)

from random_nets import random_input, random_net


@pytest.mark.parametrize("name", ["LFC-small", "CNV-small"])
def test_small_topologies_fast_equals_reference_and_float(name):
    net = make_network(name, seed=3)
    rng = np.random.default_rng(0)
    x = random_input(net, 9, rng)
    fast, fast_all = net.forward(x, return_all=True)
    ref, ref_all = net.forward(x, method="reference", return_all=True)
    assert fast.shape == (9, 10)
    assert np.array_equal(fast, ref)
    for a, b in zip(fast_all, ref_all):
        assert np.array_equal(a, b)
    assert np.array_equal(fast, float_forward(net, x))
    # activations are not degenerate (thresholds from random BN split the data)
    mid = fast_all[1]
    assert 0.2 < mid.mean() < 0.8
    # chunked batches give the same answer
    assert np.array_equal(net.forward(x, chunk=2), fast)


def test_named_topologies_have_the_published_shapes():
    lfc = make_network("LFC")
    fcs = [layer.weights.shape for layer in lfc.layers if isinstance(layer, FC)]
    assert fcs == [(1024, 784), (1024, 1024), (1024, 1024), (10, 1024)]
    assert lfc.input_kind == "bipolar" and lfc.output_kind == "acc"
    cnv = make_network("CNV")
    convs = [(inf.in_shape, inf.out_shape) for layer, inf in zip(cnv.layers, cnv.infos) if isinstance(layer, Conv)]
    assert [o for _, o in convs] == [(30, 30, 64), (28, 28, 64), (12, 12, 128), (10, 10, 128), (3, 3, 256),
                                     (1, 1, 256)]
    assert [layer.weights.shape for layer in cnv.layers if isinstance(layer, FC)] == [(512, 256), (512, 512),
                                                                                       (10, 512)]
    assert cnv.input_shape == (32, 32, 3) and (cnv.input_kind, cnv.input_bits) == ("int", 8)
    assert set(TOPOLOGIES) >= {"LFC", "CNV", "LFC-small", "CNV-small"}
    rng = np.random.default_rng(1)
    x = cnv_input_codes(rng.integers(0, 256, (2, 32, 32, 3)))
    assert x.min() >= -128 and x.max() <= 127
    assert np.array_equal(cnv.forward(x), float_forward(cnv, x))
    xl = binarize_input(rng.random((3, 784)))
    assert np.array_equal(lfc.forward(xl), float_forward(lfc, xl))




@settings(max_examples=40, deadline=None)
@given(spec=random_net(), b=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_random_networks_fast_equals_reference(spec, b, seed):
    layers, in_shape, kind, bits = spec
    net = Network(layers, in_shape, kind, bits)
    x = random_input(net, b, np.random.default_rng(seed))
    fast, fa = net.forward(x, return_all=True)
    ref, ra = net.forward(x, method="reference", return_all=True)
    for i, (p, q) in enumerate(zip(fa, ra)):
        assert np.array_equal(p, q), f"layer {i}"
    assert np.array_equal(fast, ref)


def test_padded_bipolar_conv_pads_with_configured_bit():
    w = np.ones((1, 9), np.uint8)  # all +1 weights: popcount = number of +1 inputs in the window
    x = np.ones((1, 1, 1, 1), np.uint8)
    for pv, expect in ((0, 1), (1, 9)):
        net = Network([Conv(w, 3, 1, 1, pv)], (1, 1, 1), "bipolar")
        assert net.forward(x).tolist() == [[[[expect]]]]
        assert net.forward(x, method="reference").tolist() == [[[[expect]]]]


def test_bad_network_configs_name_the_layer():
    with pytest.raises(ConfigError, match=r"layer 0 \(FC 'fc0'\): weights"):
        Network([FC(np.zeros((4, 5), np.uint8), name="fc0")], (6,))
    with pytest.raises(ConfigError, match=r"layer 1 \(FC\).*Threshold"):
        Network([FC(np.zeros((4, 6), np.uint8)), FC(np.zeros((4, 4), np.uint8))], (6,))
    with pytest.raises(ConfigError, match=r"layer 1 \(Threshold\): thresholds"):
        Network([FC(np.zeros((4, 6), np.uint8)), Threshold(np.array([[2, 1]] * 4))], (6,))
    with pytest.raises(ConfigError, match="layer 0"):
        Network([Conv(np.zeros((4, 27), np.uint8), 3)], (2, 2, 3))
    with pytest.raises(ConfigError, match="layer 0"):
        Network([FC(np.full((4, 6), 2))], (6,))
    net = Network([FC(np.zeros((4, 6), np.uint8))], (6,))
    with pytest.raises(ConfigError, match="shape"):
        net.forward(np.zeros((6,), np.uint8))
    with pytest.raises(ConfigError, match="range"):
        net.forward(np.full((1, 6), 3))


@pytest.mark.parametrize("c,k,pad,pv", [(100, 3, 0, 0), (130, 2, 1, 1), (64, 3, 1, 1), (65, 1, 0, 0), (3, 3, 1, 1)])
def test_multiword_channel_packing_is_exact(c, k, pad, pv):
    """Channels not a multiple of 64 leave padding bits inside every pixel's words; none may count."""
    rng = np.random.default_rng(c + k)
    n = k * k * c
    o = 4 + 2 * pad - k + 1
    layers = [Conv(rng.integers(0, 2, (7, n)), k, 1, pad, pv), Threshold(np.full((7, 1), n // 2)),
              FC(rng.integers(0, 2, (5, 7 * o * o)))]
    net = Network(layers, (4, 4, c), "bipolar")
    x = rng.integers(0, 2, (3, 4, 4, c))
    fast, fa = net.forward(x, return_all=True)
    ref, ra = net.forward(x, method="reference", return_all=True)
    assert np.array_equal(fa[0], ra[0]) and np.array_equal(fast, ref)


def test_folded_integer_mlp_matches_float_bn_network_signs():
    """A float BNN (+-1 weights, float batch norm, sign) and its folded integer Network agree exactly."""
    from qnnfab.golden import bn_sign, bn_to_thresholds, fold_flips_into_weights

    rng = np.random.default_rng(7)
    sizes = [130, 96, 70, 33]
    x = rng.integers(0, 2, (200, sizes[0]), dtype=np.uint8)
    layers = []
    a_float = 2.0 * x - 1
    for j, (n, m) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(0, 2, (m, n), dtype=np.uint8)
        gamma = rng.normal(0, 1, m)
        gamma[:3] = 0.0
        beta, mu = rng.normal(0, 1, m), rng.normal(0, 3, m)
        sigma = rng.uniform(0.5, 2, m) * np.sqrt(n)
        a_float = 2.0 * bn_sign(a_float @ (2.0 * w - 1).T, gamma, beta, mu, sigma) - 1  # float network
        folded = bn_to_thresholds(gamma, beta, mu, sigma, domain="popcount", n=n)
        w2, t2 = fold_flips_into_weights(w, folded)
        layers += [FC(w2, name=f"fc{j}"), Threshold(t2, name=f"th{j}")]
    net = Network(layers, (sizes[0],), "bipolar")
    out = net.forward(x)
    assert np.array_equal(2 * out.astype(int) - 1, a_float)
    assert 0.1 < out.mean() < 0.9
    assert np.array_equal(net.forward(x, threads=2, chunk=64), out)

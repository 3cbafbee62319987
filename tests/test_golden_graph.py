"""Golden models of graph operations from first principles (hand-computed values)."""

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden.graph import concat_channels, elementwise_add, global_sum_pool


def test_elementwise_add_of_hand_values():
    np.testing.assert_array_equal(elementwise_add([[1, -2], [3, 0]], [[4, 2], [-3, 7]]), [[5, 0], [0, 7]])


def test_elementwise_add_refuses_other_shapes_instead_of_broadcasting():
    with pytest.raises(ConfigError, match="elementwise_add: b"):
        elementwise_add(np.zeros((2, 3)), np.zeros((3,)))
    with pytest.raises(ConfigError, match="elementwise_add: a"):
        elementwise_add([0.5], [1])


def test_global_sum_of_a_hand_image():
    x = np.array([[[1, 10], [2, 20]], [[3, 30], [4, 40]]])       # H=2, W=2, C=2
    np.testing.assert_array_equal(global_sum_pool(x), [10, 100])
    np.testing.assert_array_equal(global_sum_pool(np.stack([x, -x])), [[10, 100], [-10, -100]])
    with pytest.raises(ConfigError, match="global_sum_pool: x"):
        global_sum_pool(np.zeros((2, 2)))


def test_concat_puts_the_first_maps_channels_first():
    a = np.arange(4).reshape(1, 2, 2, 1)
    b = 10 + np.arange(8).reshape(1, 2, 2, 2)
    got = concat_channels(a, b)
    assert got.shape == (1, 2, 2, 3)
    assert list(got[0, 1, 0]) == [2, 14, 15]
    with pytest.raises(ConfigError, match="maps\\[1\\]"):
        concat_channels(a, np.zeros((1, 2, 3, 1)))

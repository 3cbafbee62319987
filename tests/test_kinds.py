"""Data kinds (qnnfab.kinds) and folding (qnnfab.folding), from first principles."""

import itertools

import numpy as np
import pytest
from amaranth.hdl import Shape

from qnnfab import folding
from qnnfab.errors import ConfigError
from qnnfab.kinds import DataKind, accumulator_range, dot_range, product_range

CASES = [("bipolar", None, 1, (0, 1), (-1, 1), False), ("ternary", None, 2, (-1, 1), (-1, 1), True),
         ("uint", 1, 1, (0, 1), (0, 1), False), ("uint", 4, 4, (0, 15), (0, 15), False),
         ("int", 2, 2, (-2, 1), (-2, 1), True), ("int", 8, 8, (-128, 127), (-128, 127), True)]


@pytest.mark.parametrize("kind, bits, width, stored, values, signed", CASES)
def test_ranges_widths_and_element_shapes(kind, bits, width, stored, values, signed):
    k = DataKind.of(kind, bits)
    assert (k.width, k.stored_range, k.value_range, k.signed) == (width, stored, values, signed)
    assert k.shape() == Shape(width, signed)
    # every stored integer of the width reads back through the element shape
    lo, hi = stored
    assert Shape(width, signed).width == width and lo >= (-(1 << (width - 1)) if signed else 0)
    assert hi <= ((1 << (width - 1)) - 1 if signed else (1 << width) - 1)


def test_bipolar_values_and_back():
    k = DataKind.of("bipolar")
    assert k.values([0, 1, 1]).tolist() == [-1, 1, 1]
    assert k.stored(np.array([-1, 1])).tolist() == [0, 1]
    assert DataKind.of("int", 4).values([-8, 7]).tolist() == [-8, 7]


def test_payload_layout_holds_lanes_element_0_at_the_lsbs():
    from amaranth.lib import data
    lay = DataKind.of("int", 3).layout(4)
    assert isinstance(lay, data.ArrayLayout) and lay.size == 12 and lay.length == 4
    assert lay.elem_shape == Shape(3, True)
    assert lay[0].offset == 0 and lay[3].offset == 9
    with pytest.raises(TypeError, match="must be a positive integer, not True"):
        DataKind.of("uint", 2).layout(True)


@pytest.mark.parametrize("kind, bits, field", [("float", 8, "kind"), ("uint", None, "bits"), ("int", 0, "bits"),
                                               ("int", 63, "bits"), ("uint", True, "bits"), ("int", 2.5, "bits")])
def test_bad_kinds_name_the_caller_and_the_field(kind, bits, field):
    with pytest.raises(ConfigError) as e:
        DataKind.of(kind, bits, "layer 3 'fc3'")
    assert e.value.where == "layer 3 'fc3'" and e.value.field == field


def test_check_stored_names_the_range():
    DataKind.of("ternary").check_stored(np.array([-1, 0, 1]), "w", "weights")
    with pytest.raises(ConfigError, match=r"range \[-1, 1\]\), found \[-1, 2\]"):
        DataKind.of("ternary").check_stored(np.array([-1, 2]), "w", "weights")


@pytest.mark.parametrize("a, b", list(itertools.product([("bipolar", None), ("ternary", None), ("uint", 3),
                                                    ("int", 4)], repeat=2)))
def test_product_and_accumulator_ranges_are_reached_by_extremes(a, b):
    ka, kb = DataKind.of(*a), DataKind.of(*b)
    prods = [x * y for x in range(ka.value_range[0], ka.value_range[1] + 1)
             for y in range(kb.value_range[0], kb.value_range[1] + 1)]
    assert product_range(ka, kb) == (min(prods), max(prods))
    assert dot_range(5, ka, kb) == (5 * min(prods), 5 * max(prods))
    if a[0] == b[0] == "bipolar":
        assert accumulator_range(5, ka, kb) == (0, 5)   # the XNOR popcount
    else:
        assert accumulator_range(5, ka, kb) == dot_range(5, ka, kb)


def test_divisors_and_choices():
    assert folding.divisors(12) == [1, 2, 3, 4, 6, 12]
    assert folding.largest_divisor(12, 5) == 4 and folding.largest_divisor(7, 5) == 1
    assert folding.simd_choices("fc", (784,))[-1] == 784
    # a flattened 4x4x6 map arrives in words of channels: SIMD divides 6
    assert folding.simd_choices("fc", (4, 4, 6)) == [1, 2, 3, 6]
    assert folding.simd_choices("conv", (8, 8, 64)) == folding.divisors(64)


def test_cycles_of_bnn_pynq_layers():
    # LFC W1A1 (BNN-PYNQ): fc 784 -> 1024 at PE 32, SIMD 49 takes 32 * 16 = 512 cycles
    assert folding.fc_cycles(1024, 784, 32, 49) == 512
    # CNV W1A1 conv1: 30x30x64 -> 28x28x64, K 3, PE 32, SIMD 32: MVTU 784 * 2 * 18 = 28,224 cycles;
    # the window reads 30*30*2 = 1,800 words and writes 784 * 18 = 14,112
    assert folding.conv_cycles((30, 30, 64), (28, 28, 64), 3, 32, 32) == 28224
    # at PE 64 the MVTU (784 * 18) and the window's output (784 * 9 * 64 / 32) both take 14,112
    assert folding.conv_cycles((30, 30, 64), (28, 28, 64), 3, 64, 32) == 14112
    # a 2x2 kernel at stride 4 on 8x8x4, SIMD 4: the window reads 64 words, writes 16; the MVTU takes 16
    assert folding.conv_cycles((8, 8, 4), (2, 2, 4), 2, 4, 4) == 64
    # 2x2/2 pool of 28x28x64 at SIMD 64: 784 words read, 14*14*4 = 784 window words
    assert folding.maxpool_cycles((28, 28, 64), (14, 14, 64), 2, 64) == 784
    assert folding.maxpool_cycles((28, 28, 64), (14, 14, 64), 2, 16) == 3136

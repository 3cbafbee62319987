"""Element-wise add (the join of a residual block) and add + thresholds, against golden, in Amaranth's simulator."""

import random

import numpy as np
import pytest
from amaranth.hdl import Shape, signed, unsigned

from qnnfab.errors import ConfigError
from qnnfab.golden.graph import elementwise_add
from qnnfab.golden.threshold import multithreshold
from qnnfab.packing import pack_words, unpack_words
from qnnfab.rtl.elementwise_add import ElementwiseAdd, ResidualAdd, sum_shape
from qnnfab.sim.amaranth_stream import StreamSink, StreamSource, run_streams


def _lims(shape):
    s = Shape.cast(shape)
    return (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)


def _operands(rng, a_shape, b_shape, words, n):
    (alo, ahi), (blo, bhi) = _lims(a_shape), _lims(b_shape)
    a = rng.integers(alo, ahi, endpoint=True, size=(words, n))
    b = rng.integers(blo, bhi, endpoint=True, size=(words, n))
    a[0], b[0] = alo, blo          # the extremes of the sum
    a[1], b[1] = ahi, bhi
    a[2], b[2] = alo, bhi
    return a, b


def _join(dut, a, b, a_prob, b_prob, o_prob, seed, a_bits, b_bits):
    rng = random.Random(seed)
    sa = StreamSource(dut.a, pack_words(a, a_bits), valid_prob=a_prob, rng=rng, name="a")
    sb = StreamSource(dut.b, pack_words(b, b_bits), valid_prob=b_prob, rng=rng, name="b")
    so = StreamSink(dut.o, ready_prob=o_prob, rng=rng, name="o")
    run_streams(dut, [sa, sb], [so], [len(a)], max_cycles=40 * len(a) + 200, extra_cycles=12)
    assert len(so.words) == len(a), "words beyond the expected ones"
    return sa, sb, so


@pytest.mark.parametrize("a_shape,b_shape,n", [
    (signed(3), unsigned(2), 4), (unsigned(1), unsigned(1), 8), (signed(4), signed(4), 1), (unsigned(3), signed(5), 3)])
@pytest.mark.parametrize("a_prob,b_prob,o_prob", [(0.3, 0.9, 0.7), (0.9, 0.3, 0.7), (1.0, 1.0, 0.4)])
def test_sum_matches_golden_with_gaps_on_either_input_and_backpressure(a_shape, b_shape, n, a_prob, b_prob, o_prob):
    rng = np.random.default_rng(n * 7 + Shape.cast(a_shape).width)
    a, b = _operands(rng, a_shape, b_shape, 60, n)
    dut = ElementwiseAdd(a_shape, b_shape, n)
    sa, sb, so = _join(dut, a, b, a_prob, b_prob, o_prob, seed=n, a_bits=Shape.cast(a_shape).width,
                       b_bits=Shape.cast(b_shape).width)
    s = dut.out_shape
    got = unpack_words(so.words, n, s.width, s.signed)
    np.testing.assert_array_equal(got, elementwise_add(a, b))
    assert sa.sent_cycles == sb.sent_cycles      # neither input is taken without the other


def test_sum_width_is_the_narrowest_holding_every_sum():
    # first principles: [-4,3]+[0,3] = [-4,6] -> signed(4); [0,1]+[0,1] = [0,2] -> unsigned(2)
    assert sum_shape(signed(3), unsigned(2)) == signed(4)
    assert sum_shape(unsigned(1), unsigned(1)) == unsigned(2)
    assert sum_shape(signed(4), signed(4)) == signed(5)
    assert sum_shape(unsigned(2), unsigned(2)) == unsigned(3)


def test_one_pair_per_cycle_latency_one():
    rng = np.random.default_rng(1)
    a, b = _operands(rng, unsigned(2), unsigned(2), 30, 2)
    dut = ElementwiseAdd(unsigned(2), unsigned(2), 2)
    sa, sb, so = _join(dut, a, b, 1.0, 1.0, 1.0, 0, 2, 2)
    assert sa.sent_cycles == list(range(30))
    assert so.cycles == [c + dut.latency for c in sa.sent_cycles]


@pytest.mark.parametrize("c,pe,nt", [(4, 2, 3), (6, 3, 1), (2, 2, 7)])
def test_residual_add_requantizes_the_sum_like_golden(c, pe, nt):
    rng = np.random.default_rng(c * 10 + nt)
    a_shape, b_shape = unsigned(2), signed(3)
    pixels = 9
    a, b = _operands(rng, a_shape, b_shape, pixels * c // pe, pe)
    t = np.sort(rng.integers(-6, 8, size=(c, nt)), axis=1)
    dut = ResidualAdd(a_shape, b_shape, t, pe=pe)
    sa, sb, so = _join(dut, a, b, 0.6, 0.8, 0.6, seed=c, a_bits=2, b_bits=3)
    got = unpack_words(so.words, pe, dut.out_bits).reshape(pixels, c)
    exp = multithreshold(elementwise_add(a, b).reshape(pixels, c), t)
    np.testing.assert_array_equal(got, exp)


def test_bad_parameters_raise():
    with pytest.raises(ConfigError, match="ElementwiseAdd: n"):
        ElementwiseAdd(unsigned(2), unsigned(2), 0)
    with pytest.raises(ConfigError, match="residual add: pe"):
        ResidualAdd(unsigned(2), unsigned(2), np.zeros((6, 1), int), pe=4)

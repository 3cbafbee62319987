"""Channel concatenation against golden in Amaranth's simulator."""

import random

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from qnnfab.errors import ConfigError
from qnnfab.golden.graph import concat_channels
from qnnfab.packing import pack_words, unpack_words
from qnnfab.rtl.channel_concat import ChannelConcat
from qnnfab.sim.amaranth_stream import StreamSink, StreamSource, run_streams


def _run(dut, a_words, b_words, n_out, a_prob, b_prob, o_prob, seed, max_cycles=20_000):
    rng = random.Random(seed)
    sa = StreamSource(dut.a, a_words, valid_prob=a_prob, rng=rng, name="a")
    sb = StreamSource(dut.b, b_words, valid_prob=b_prob, rng=rng, name="b")
    so = StreamSink(dut.o, ready_prob=o_prob, rng=rng, name="o")
    run_streams(dut, [sa, sb], [so], [n_out], max_cycles=max_cycles, extra_cycles=10)
    assert len(so.words) == n_out, "words beyond the expected ones"
    return sa, sb, so


@pytest.mark.parametrize("ca,cb,simd,bits,sign", [(4, 2, 2, 2, False), (1, 3, 1, 3, True), (3, 3, 3, 1, False),
                                                  (2, 1, 2, 4, True)])
@pytest.mark.parametrize("a_prob,b_prob,o_prob", [(0.3, 0.9, 0.8), (0.9, 0.3, 0.8), (1.0, 1.0, 0.5)])
def test_concatenation_matches_golden_with_gaps_on_either_input(ca, cb, simd, bits, sign, a_prob, b_prob, o_prob):
    # ca, cb: words per pixel of a and b
    rng = np.random.default_rng(ca * 10 + cb)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if sign else (0, (1 << bits) - 1)
    dut = ChannelConcat(ca, cb, signed(bits) if sign else unsigned(bits), simd)
    a = rng.integers(lo, hi, endpoint=True, size=(2, 3, 2, ca * simd))
    b = rng.integers(lo, hi, endpoint=True, size=(2, 3, 2, cb * simd))
    exp = concat_channels(a, b)
    _, _, so = _run(dut, pack_words(a.reshape(-1, simd), bits), pack_words(b.reshape(-1, simd), bits),
                    exp.size // simd, a_prob, b_prob, o_prob, seed=ca + cb)
    got = unpack_words(so.words, simd, bits, sign)
    np.testing.assert_array_equal(got.reshape(exp.shape), exp)


def test_one_word_per_cycle_and_latency_one():
    dut = ChannelConcat(2, 1, unsigned(4), 1)
    sa, sb, so = _run(dut, list(range(1, 9)), list(range(11, 15)), 12, 1.0, 1.0, 1.0, 0)
    assert so.words == [1, 2, 11, 3, 4, 12, 5, 6, 13, 7, 8, 14]
    assert so.cycles == list(range(1, 13))
    assert sorted(sa.sent_cycles + sb.sent_cycles) == list(range(12))


def test_a_silent_input_stops_the_other_after_its_pixel_without_losing_words():
    dut = ChannelConcat(3, 2, unsigned(4), 1)
    sa = StreamSource(dut.a, list(range(1, 10)), name="a")
    sb = StreamSource(dut.b, [], name="b")           # b never offers a word
    so = StreamSink(dut.o, name="o")
    run_streams(dut, [sa, sb], [so], [0], max_cycles=1, extra_cycles=30)
    assert so.words == [1, 2, 3] and len(sa.sent_cycles) == 3


def test_bad_parameters_raise():
    with pytest.raises(ConfigError, match="ChannelConcat: b_words"):
        ChannelConcat(2, 0, unsigned(2), 1)
    with pytest.raises(ConfigError, match="ChannelConcat: simd"):
        ChannelConcat(2, 2, unsigned(2), 0)

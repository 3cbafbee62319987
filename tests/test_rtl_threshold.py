"""Threshold unit in Amaranth's own simulator (fast unit tests)."""

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden.threshold import multithreshold
from qnnfab.packing import pack_words, unpack_fields
from qnnfab.rtl.threshold import Threshold
from qnnfab.sim.amaranth_stream import stream_through


@pytest.mark.parametrize("c,n,pe,width,signed", [
    (8, 1, 2, 6, True), (16, 15, 4, 10, True), (6, 5, 3, 5, False), (4, 3, 4, 4, True), (5, 2, 1, 8, True)])
def test_counts_thresholds_passed_including_ties(c, n, pe, width, signed):
    rng = np.random.default_rng(c * 31 + n)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    t = np.sort(rng.integers(lo - 3, hi + 4, size=(c, n)), axis=1)
    acc = rng.integers(lo, hi, endpoint=True, size=(12, c))
    acc[0] = np.clip(t[:, 0], lo, hi)        # ties: acc == T counts (>=)
    acc[1] = np.clip(t[:, -1], lo, hi)
    acc[2], acc[3] = lo, hi
    dut = Threshold(t, pe=pe, in_width=width, in_signed=signed)
    words = pack_words(acc.reshape(-1, pe), width)
    outs = stream_through(dut, words, len(words), 0.7, 0.6, seed=c).words
    got = np.array([unpack_fields(o, [dut.out_bits] * pe) for o in outs]).reshape(12, c)
    np.testing.assert_array_equal(got, multithreshold(acc, t))
    run = stream_through(dut, words, len(words))
    ic, oc = run.in_cycles, run.out_cycles
    assert oc[0] - ic[0] == dut.latency == n.bit_length() + 1
    assert oc[-1] - oc[0] + 1 == len(words)


@pytest.mark.parametrize("args,field", [
    ((np.zeros((6, 1), int),), "pe"),
    ((np.zeros(8, int),), "thresholds"),
    ((np.array([[3, 1]] * 8),), "thresholds"),
    ((np.full((8, 1), 0.25),), "thresholds"),
])
def test_bad_configuration_raises_config_error_naming_the_field(args, field):
    with pytest.raises(ConfigError) as e:
        Threshold(*args, pe=4, in_width=8)
    assert e.value.field == field and e.value.fix


def test_in_width_must_be_positive():
    with pytest.raises(ConfigError, match="in_width"):
        Threshold(np.zeros((4, 1), int), pe=2, in_width=0)

"""Component parameters: one check, one message; a bool is not an integer (as netconfig rules)."""

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.errors import ConfigError
from qnnfab.rtl.conv import ConvLayer
from qnnfab.rtl.lfsr import LFSR
from qnnfab.rtl.mvtu import MVTU
from qnnfab.rtl.sliding_window import SlidingWindow
from qnnfab.rtl.stochastic_round import StochasticRound
from qnnfab.rtl.stream_fifo import StreamFIFO
from qnnfab.rtl.systolic import SystolicArray
from qnnfab.rtl.threshold import Threshold
from qnnfab.rtl.width_converter import WidthConverter
from qnnfab.rtl.xnor_popcount import XnorPopcount

W = np.ones((4, 6), dtype=np.int64)
T = np.zeros((4, 1), dtype=np.int64)

BUILD = {
    "MVTU pe": (lambda v: MVTU(W, pe=v, simd=1), "pe"),
    "MVTU simd": (lambda v: MVTU(W, pe=1, simd=v), "simd"),
    "MVTU vectors": (lambda v: MVTU(W, pe=1, simd=1, vectors=v), "vectors"),
    "MVTU weight_bits": (lambda v: MVTU(W, pe=1, simd=1, weight_kind="int", weight_bits=v), "weight_bits"),
    "XnorPopcount simd": (lambda v: XnorPopcount(v), "simd"),
    "StreamFIFO depth": (lambda v: StreamFIFO(8, v), "depth"),
    "SlidingWindow kernel": (lambda v: SlidingWindow(4, 4, 2, 2, v), "kernel"),
    "Threshold pe": (lambda v: Threshold(T, pe=v, in_width=4), "pe"),
    "WidthConverter bits": (lambda v: WidthConverter(2, 4, v), "bits"),
    "LFSR lanes": (lambda v: LFSR(16, lanes=v), "lanes"),
    "SystolicArray rows": (lambda v: SystolicArray(v, 2, (1, 7), (1, 7), (1, 7)), "rows"),
}


@pytest.mark.parametrize("name", list(BUILD))
@pytest.mark.parametrize("value", [True, 2.0, "2", 0])
def test_non_integers_bools_and_zero_are_refused_with_one_message(name, value):
    build, field = BUILD[name]
    with pytest.raises(ConfigError) as e:
        build(value)
    assert e.value.field == field
    if value != 0:
        assert f"must be a positive integer, not {value!r}" in str(e.value) or \
            f"must be an integer >= 2, not {value!r}" in str(e.value)


@pytest.mark.parametrize("name", list(BUILD))
def test_the_same_components_accept_a_plain_int(name):
    build, field = BUILD[name]
    build(2)


def test_mvtu_pe_true_is_refused_as_netconfig_refuses_pe_true():
    with pytest.raises(ConfigError, match="pe: must be a positive integer, not True"):
        MVTU(W, pe=True, simd=1)
    text = ('[network]\ninput_shape = [6]\n[[layer]]\nname = "fc0"\ntype = "fc"\nout = 4\npe = true\n')
    with pytest.raises(ConfigError, match="pe: must be a positive integer, not True"):
        netconfig.loads(text)


def test_divisor_errors_list_the_divisors():
    with pytest.raises(ConfigError, match=r"simd: must divide MW = 6, not 4 \(fix: choose simd among \[1, 2, 3, 6\]\)"):
        MVTU(W, pe=1, simd=4)


@pytest.mark.parametrize("build", [lambda: ConvLayer(4, 4, np.ones((2, 2, 3, 3), np.int64), simd=1, pe=1,
                                                     fifo_depth=False),
                                   lambda: StochasticRound((4, 8), (4, 4), seed=True)])
def test_bools_are_not_integers_elsewhere_either(build):
    with pytest.raises(ConfigError, match="not (False|True)"):
        build()

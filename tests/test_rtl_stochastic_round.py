"""Rounding stage in Amaranth's simulator against qnnfab.golden.fixedpoint."""

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden.fixedpoint import shift_round
from qnnfab.golden.lfsr import lfsr_words
from qnnfab.packing import unpack_fields
from qnnfab.rtl.stochastic_round import StochasticRound
from qnnfab.sim.amaranth_stream import stream_through


def run(dut, values, valid_prob, ready_prob, seed):
    """Round ``values`` through the stage; the outputs as signed integers."""
    words = stream_through(dut, values, len(values), valid_prob, ready_prob, seed=seed).words
    return [unpack_fields(w, [dut.out_width], signed=True)[0] for w in words]


@pytest.mark.parametrize("in_fmt,out_fmt,mode,lfsr_width,steps", [
    ((8, 12), (4, 4), "stochastic", None, None),
    ((8, 12), (4, 4), "nearest", None, None),
    ((8, 12), (4, 4), "truncate", None, None),
    ((3, 5), (3, 5), "stochastic", None, None),          # D = 0: pass-through with saturation only
    ((20, 28), (2, 1), "stochastic", 32, 29),            # D = 27, saturates both ways
    ((4, 3), (2, 1), "stochastic", 3, 5),                # narrowest legal LFSR (D + 1 bits)
])
def test_matches_golden_under_backpressure(in_fmt, out_fmt, mode, lfsr_width, steps):
    dut = StochasticRound(in_fmt, out_fmt, mode, lfsr_width=lfsr_width, seed=5, steps_per_cycle=steps)
    w = dut.in_width
    rng = np.random.default_rng(w)
    vals = rng.integers(-(1 << (w - 1)), 1 << (w - 1), 300)
    vals[:4] = [-(1 << (w - 1)), (1 << (w - 1)) - 1, 0, -1]
    d = dut.drop_bits
    ties = []
    if d:   # exact ties m + 1/2 (in output LSBs) over the whole input range, negative ones included
        ms = sorted({-(1 << (w - 1 - d)), -2, -1, 0, 1, 2, (1 << (w - 1 - d)) - 1})
        ties = [(m << d) + (1 << (d - 1)) for m in ms]
        vals[4:4 + len(ties)] = ties
    got = run(dut, [int(v) for v in vals], 0.7, 0.5, seed=w)
    rb = np.zeros(len(vals), np.int64)  # D = 0: no random bits
    if mode == "stochastic" and d:
        rb = lfsr_words(len(vals), d, dut.lfsr_width, 5, steps_per_cycle=dut.steps_per_cycle)[:, 0].astype(np.int64)
    exp = shift_round(vals, d, mode, rb, dut.out_width)
    assert got == exp.tolist()
    lo, hi = -(1 << (dut.out_width - 1)), (1 << (dut.out_width - 1)) - 1
    if mode == "nearest":   # first principles: m + 1/2 goes up to m + 1 (then saturates)
        assert got[4:4 + len(ties)] == [min(hi, max(lo, (t >> d) + 1)) for t in ties]
    if mode == "truncate":  # and down to m when truncating
        assert got[4:4 + len(ties)] == [min(hi, max(lo, t >> d)) for t in ties]


def test_bad_formats_and_lfsr_raise():
    with pytest.raises(ConfigError, match="in_fmt"):
        StochasticRound((30, 19), (4, 4))
    with pytest.raises(ConfigError, match="D = -2"):
        StochasticRound((8, 2), (4, 4))
    with pytest.raises(ConfigError, match="lfsr_width"):
        StochasticRound((8, 12), (4, 4), lfsr_width=8)
    with pytest.raises(ConfigError, match="steps_per_cycle"):
        StochasticRound((8, 12), (4, 4), steps_per_cycle=3)
    with pytest.raises(ConfigError, match="mode"):
        StochasticRound((8, 12), (4, 4), mode="floor")
    with pytest.raises(ConfigError, match="seed"):
        StochasticRound((8, 12), (4, 4), seed=0)

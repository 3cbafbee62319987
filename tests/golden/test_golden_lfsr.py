"""LFSR model: exact form, maximal periods, leap-forward, lanes, seeds."""

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden import LFSR, MAXIMAL_TAPS, is_maximal, lane_seeds, lfsr_words


def test_step_is_the_documented_fibonacci_form():
    lf = LFSR(4, seed=0b1001)  # taps 4,3: fb = bit3 ^ bit2
    assert lf.taps == (4, 3)
    s = 0b1001
    for _ in range(20):
        fb = ((s >> 3) ^ (s >> 2)) & 1
        s = ((s << 1) | fb) & 0xF
        assert lf.step() == s


def test_table_covers_3_to_32():
    assert sorted(MAXIMAL_TAPS) == list(range(3, 33))


@pytest.mark.parametrize("width", range(3, 21))
def test_brute_force_period_is_maximal_up_to_20(width):
    lf = LFSR(width, seed=1)
    assert lf.period() == 2**width - 1


def test_brute_force_visits_every_nonzero_state_width_10():
    seq = LFSR(10, seed=5).sequence(1023)
    assert len(set(seq.tolist())) == 1023 and 0 not in seq


def test_algebraic_proof_all_widths():
    for width in range(3, 33):
        assert is_maximal(width), width
    assert not is_maximal(4, (4, 2))  # x^4 + x^2 + 1 is not primitive


def test_zero_or_oversized_seed_rejected():
    with pytest.raises(ConfigError, match="lock-up"):
        LFSR(8, seed=0)
    with pytest.raises(ConfigError, match="fit"):
        LFSR(8, seed=256)
    with pytest.raises(ConfigError, match="taps"):
        LFSR(40)
    with pytest.raises(ConfigError, match="taps"):
        LFSR(8, 1, taps=(7, 5))


def test_leap_forward_and_sequence_timing():
    a, b = LFSR(16, 0xACE1), LFSR(16, 0xACE1)
    seq = a.sequence(50, steps_per_cycle=5)
    assert seq[0] == 0xACE1  # cycle 0 shows the seed
    for c in range(1, 50):
        assert seq[c] == b.step(5)
    assert a.state == b.step(5)  # afterwards: state of cycle 50
    # big jumps use GF(2) matrix powers; must agree with single steps
    c, d = LFSR(12, 77), LFSR(12, 77)
    for _ in range(1000):
        d.step()
    assert c.jump(1000) == d.state
    e = LFSR(20, 3)
    assert e.jump(2**20 - 1) == 3  # full period returns to the seed
    f = LFSR(12, 77)
    assert np.array_equal(f.sequence(10, steps_per_cycle=200), LFSR(12, 77).sequence(2000)[::200])


def test_words_slice_lsbs_and_default_leap():
    ref = LFSR(20, 9).sequence(30, steps_per_cycle=6) & 0x3F
    assert np.array_equal(LFSR(20, 9).words(30, 6), ref)
    with pytest.raises(ConfigError, match="wider"):
        LFSR(8, 1).words(4, 8)


def test_lane_seeds_are_evenly_spaced_phases():
    seeds = lane_seeds(10, 1, 4)
    spacing = 1023 // 4
    seq = LFSR(10, 1).sequence(1023)
    assert seeds == [int(seq[i * spacing]) for i in range(4)]
    words = lfsr_words(40, 4, 10, base_seed=1, lanes=4, steps_per_cycle=3)
    assert words.shape == (40, 4)
    for i, s in enumerate(seeds):
        assert np.array_equal(words[:, i], LFSR(10, s).sequence(40, 3) & 0xF)


def test_random_words_are_roughly_uniform():
    w = LFSR(24, 12345).words(20000, 4)
    counts = np.bincount(w.astype(np.int64), minlength=16)
    assert counts.min() > 1100 and counts.max() < 1400


@pytest.mark.parametrize("cycles,bits,width,seed,lanes,steps,start", [
    (0, 3, 5, 1, 1, None, 0), (1, 4, 10, 3, 4, 3, 0), (37, 14, 24, 0x1D2C, 8, None, 5),
    (100, 1, 3, 1, 2, 1, 7), (64, 7, 8, 9, 3, 16, 1000), (65, 0, 5, 1, 1, None, 3), (129, 12, 20, 77, 5, 13, 2**40 + 3)])
def test_vectorized_words_equal_the_step_by_step_lfsr(cycles, bits, width, seed, lanes, steps, start):
    # reference: each lane's LFSR object stepped one cycle at a time from its seed (jump() for huge starts)
    words = lfsr_words(cycles, bits, width, seed, lanes, steps, start=start)
    assert words.shape == (cycles, lanes) and words.dtype == np.uint64
    k = bits if steps is None else steps
    for i, s in enumerate(lane_seeds(width, seed, lanes)):
        lf = LFSR(width, s)
        lf.jump(start * max(1, k))
        assert words[:, i].tolist() == lf.words(cycles, bits, steps).tolist(), (i, s)


def test_words_with_start_continue_an_earlier_call():
    whole = lfsr_words(300, 9, 16, 5, lanes=3)
    assert np.array_equal(np.concatenate([lfsr_words(123, 9, 16, 5, 3), lfsr_words(177, 9, 16, 5, 3, start=123)]),
                          whole)
    with pytest.raises(ConfigError, match="start"):
        lfsr_words(4, 3, 8, start=-1)

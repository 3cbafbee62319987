"""HighestSetBit (qnnfab.rtl.highest_set_bit): the label port of label = "highest_set_bit", against the
NumPy rule (qnnfab.packing.frame_labels) and the rule written out from first principles."""

import random

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from qnnfab.packing import frame_labels
from qnnfab.rtl.highest_set_bit import HighestSetBit


def _highest_set_bit(bits):
    """The rule itself: the highest index whose bit is 1, 0 when none is."""
    return max((k for k, b in enumerate(bits) if b), default=0)


def _run(pe, words, frames, rng, valid_prob=0.6, ready_prob=0.6, count=None):
    """Feed ``frames`` (lists of pe * words bits) under random valid/ready; return the labels seen,
    the cycles of their pulses and the cycle of every frame's last transfer."""
    dut = HighestSetBit(pe, words, count)
    labels, pulses, last_transfer = [], [], []

    async def bench(ctx):
        cyc = 0

        async def tick():
            nonlocal cyc
            await ctx.tick()
            cyc += 1
            if ctx.get(dut.label_valid):
                labels.append(ctx.get(dut.label))
                pulses.append(cyc)

        for frame in frames:
            for w in range(words):
                word = sum(int(b) << p for p, b in enumerate(frame[w * pe:(w + 1) * pe]))
                while True:
                    valid, ready = rng.random() < valid_prob, rng.random() < ready_prob
                    # a word offered but not taken (or taken but not offered) must not count
                    ctx.set(Value.cast(dut.payload), word if valid else rng.getrandbits(pe))
                    ctx.set(dut.valid, int(valid))
                    ctx.set(dut.ready, int(ready))
                    await tick()
                    if valid and ready:
                        break
            last_transfer.append(cyc)
        ctx.set(dut.valid, 0)
        for _ in range(4):
            await tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return labels, pulses, last_transfer


def _frames(n_bits, rng, count=30):
    frames = []
    for f in range(count):
        if f % 5 == 0:
            frame = [0] * n_bits                                    # no bit set: label 0
        elif f % 5 == 1:
            frame = [0] * n_bits                                    # one bit set
            frame[rng.randrange(n_bits)] = 1
        elif f % 5 == 2:
            frame = [1] * n_bits                                    # every bit set: the last index
        else:
            frame = [rng.getrandbits(1) for _ in range(n_bits)]     # several set bits
        frames.append(frame)
    return frames


@pytest.mark.parametrize("pe,words", [(1, 10), (10, 1), (2, 5), (3, 4), (1, 1)])
def test_highest_set_bit_labels_every_frame_the_cycle_after_its_last_word(pe, words):
    rng = random.Random(pe * 100 + words)
    frames = _frames(pe * words, rng)
    labels, pulses, last = _run(pe, words, frames, rng)
    want = [_highest_set_bit(f) for f in frames]
    assert labels == want
    assert labels == frame_labels(np.array(frames), "highest_set_bit").tolist()
    assert pulses == last       # one pulse per frame, the cycle after its last word transferred


@pytest.mark.parametrize("pe,words,count", [(4, 3, 10), (4, 3, 9), (4, 3, 4), (3, 1, 1), (1, 5, 3)])
def test_padding_bits_beyond_count_never_make_the_label(pe, words, count):
    """Bits at index >= count are padding rows (a layer's ``classes``): set them all, and the label
    is the highest set bit among the first ``count`` only."""
    rng = random.Random(count * 7 + pe)
    frames = [f[:count] + [1] * (pe * words - count) for f in _frames(pe * words, rng)]
    labels, _, _ = _run(pe, words, frames, rng, count=count)
    assert labels == [_highest_set_bit(f[:count]) for f in frames]


def test_frame_labels_follow_each_rule_from_first_principles():
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, size=(200, 7))
    bits[:5] = 0
    assert frame_labels(bits, "highest_set_bit").tolist() == [_highest_set_bit(r) for r in bits]
    # argmax: the first index of the largest score, also among ties
    scores = rng.integers(-3, 4, size=(200, 7))
    scores[:5] = 2
    assert frame_labels(scores, "argmax").tolist() == [list(r).index(max(r)) for r in scores]
    # on bits the two rules differ exactly where more than one bit is set
    differ = frame_labels(bits, "argmax") != frame_labels(bits, "highest_set_bit")
    assert differ.tolist() == (bits.sum(1) > 1).tolist()
    with pytest.raises(ValueError, match="unknown label rule"):
        frame_labels(bits, "lowest")

"""Input framing check (qnnfab.rtl.frame_checker) in Amaranth's simulator: short and long frames,
resynchronisation, error outputs, stream rules on both sides."""

import random

import pytest
from amaranth.hdl import unsigned

from qnnfab.errors import ConfigError
from qnnfab.packing import unpack_fields
from qnnfab.rtl.frame_checker import FrameChecker
from qnnfab.rtl.lanes import lanes
from qnnfab.sim.amaranth_stream import StreamSink, StreamSource, run_streams


def frames_as_checked(sent, n):
    """The words the design behind the checker must see: every frame the sender ended with
    ``last`` cut to its first n words or completed with zero words up to n (written from the
    contract, not the RTL). Words after the final ``last`` are not a frame yet."""
    out, cur = [], []
    for word, last in sent:
        cur.append(word)
        if last:
            out += (cur + [0] * n)[:n]
            cur = []
    return out


def _run(n, sent, rng, valid_prob, ready_prob, max_cycles=None):
    """Send ``sent`` = [(word, last)] through a checker of ``n``-word frames (2 x 3-bit lanes).

    Returns (output words, [(cycle, "short" | "long") of every pulse], error level per cycle);
    the shared sink checks the stream rules on ``o``.
    """
    dut = FrameChecker(lanes(unsigned(3), 2), n)
    expected = len(frames_as_checked(sent, n))
    src = StreamSource(dut.i, [{"data": list(unpack_fields(w, [3, 3])), "last": last} for w, last in sent],
                       valid_prob=valid_prob, rng=rng, name="i")
    snk = StreamSink(dut.o, ready_prob=ready_prob, rng=rng, name="o")
    pulses, error_level = [], []

    def watch(ctx, cycle):
        if ctx.get(dut.short) or ctx.get(dut.long):
            pulses.append((cycle, "short" if ctx.get(dut.short) else "long"))
        error_level.append(ctx.get(dut.error))

    run_streams(dut, [src], [snk], [expected], max_cycles=max_cycles or 40 * (len(sent) + 4 * n) + 200,
                extra_cycles=2 * n + 8, monitors=[watch])
    assert len(snk.words) == expected, f"{len(snk.words) - expected} word(s) after the last frame"
    return snk.words, pulses, error_level


def _frames(rng, n, kinds):
    sent = []
    for kind in kinds:
        length = {"ok": n, "short": rng.randint(1, n - 1) if n > 1 else n,
                  "long": n + rng.randint(1, 2 * n)}[kind]
        words = [rng.getrandbits(6) for _ in range(length)]
        sent += [(w, j == length - 1) for j, w in enumerate(words)]
    return sent


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("valid_prob,ready_prob", [(1.0, 1.0), (0.6, 0.5)])
def test_every_frame_ended_by_last_becomes_one_frame_of_n_words(n, valid_prob, ready_prob):
    rng = random.Random(n * 100 + int(10 * valid_prob))
    kinds = ["ok", "short", "ok", "long", "long", "ok", "short", "short", "ok"]
    if n == 1:
        kinds = [k for k in kinds if k != "short"]
    sent = _frames(rng, n, kinds)
    got, pulses, error_level = _run(n, sent, rng, valid_prob, ready_prob)
    assert got == frames_as_checked(sent, n)
    assert [p for _, p in pulses] == [k for k in kinds if k != "ok"]
    first = pulses[0][0]
    assert not any(error_level[:first]) and all(error_level[first:])


def test_correct_frames_pass_at_one_word_per_cycle_without_error():
    rng = random.Random(3)
    n = 4
    sent = _frames(rng, n, ["ok"] * 6)
    got, pulses, error_level = _run(n, sent, rng, 1.0, 1.0, max_cycles=6 * n)
    assert got == [w for w, _ in sent]      # all 24 words in 24 cycles: no bubble between frames
    assert not pulses and not any(error_level)


def test_short_frame_is_padded_right_after_its_last_word():
    # a 1-word frame of 4, then a correct frame: 4 + 4 words in 8 cycles
    sent = [(5, 1)] + [(w, w == 4) for w in (1, 2, 3, 4)]
    got, pulses, _ = _run(4, sent, random.Random(0), 1.0, 1.0, max_cycles=8)
    assert got == [5, 0, 0, 0, 1, 2, 3, 4]
    assert pulses == [(1, "short")]         # the cycle after the early last's transfer (cycle 0)


def test_long_frame_drops_up_to_and_including_last():
    sent = [(w, w == 6) for w in (1, 2, 3, 4, 5, 6)] + [(w, w == 9) for w in (7, 8, 9)]
    got, pulses, _ = _run(3, sent, random.Random(0), 1.0, 1.0)
    assert got == [1, 2, 3, 7, 8, 9]
    assert pulses == [(3, "long")]          # the cycle after word 2 (no last) transferred


@pytest.mark.parametrize("words", [0, -1, 2.0, True])
def test_bad_words_per_frame(words):
    with pytest.raises(ConfigError) as ei:
        FrameChecker(unsigned(8), words)
    assert ei.value.field == "words"

"""Stream fork in Amaranth's simulator: every word reaches every output, whatever each one stalls."""

import random

import pytest

from qnnfab.errors import ConfigError
from qnnfab.rtl.stream_fork import StreamFork
from qnnfab.sim.amaranth_stream import StreamSink, StreamSource, run_streams


def _run(dut, words, ready_probs, valid_prob=1.0, seed=0, max_cycles=5000, extra=10):
    rng = random.Random(seed)
    src = StreamSource(dut.i, words, valid_prob=valid_prob, rng=rng, name="i")
    sinks = [StreamSink(dut.o[k], ready_prob=p, rng=rng, name=f"o{k}") for k, p in enumerate(ready_probs)]
    run_streams(dut, [src], sinks, [len(words)] * len(sinks), max_cycles=max_cycles, extra_cycles=extra)
    return src, sinks


@pytest.mark.parametrize("n,ready_probs,valid_prob", [
    (2, (0.2, 0.9), 0.8),      # the first output stalls most
    (2, (0.9, 0.2), 0.8),      # the second output stalls most
    (2, (0.5, 0.5), 0.5),
    (3, (1.0, 0.3, 0.7), 0.9),
])
def test_every_word_reaches_every_output_in_order(n, ready_probs, valid_prob):
    words = [(k * 53 + 7) % 256 for k in range(150)]
    src, sinks = _run(StreamFork(8, n), words, ready_probs, valid_prob, seed=n)
    for k in sinks:        # the sinks also check valid/payload never depend on ready and stay until taken
        assert k.words == words, k.name


def test_one_word_per_cycle_unstalled_latency_one():
    words = list(range(1, 41))
    dut = StreamFork(6)
    src, sinks = _run(dut, words, (1.0, 1.0))
    assert src.sent_cycles == list(range(len(words)))
    for k in sinks:
        assert k.words == words
        assert k.cycles == [c + dut.latency for c in src.sent_cycles]


def test_an_output_that_never_takes_stalls_the_input_without_losing_a_word():
    dut = StreamFork(5)
    src = StreamSource(dut.i, range(1, 10), name="i")
    stalled = StreamSink(dut.o[0], ready_prob=0.0, name="o0")
    free = StreamSink(dut.o[1], name="o1")
    run_streams(dut, [src], [stalled, free], [0, 0], max_cycles=1, extra_cycles=30)
    # the held word went to the free output; the input waits for the stalled one
    assert len(src.sent_cycles) == 1
    assert free.words == [1] and stalled.words == []


def test_stalled_output_then_released_gets_every_word():
    dut = StreamFork(5)
    words = list(range(1, 12))
    src = StreamSource(dut.i, words, name="i")
    late = StreamSink(dut.o[0], ready_prob=0.0, name="o0")
    early = StreamSink(dut.o[1], name="o1")

    def release(ctx, cycle):
        if cycle == 20:
            late.ready_prob = 1.0
    run_streams(dut, [src], [late, early], [len(words)] * 2, max_cycles=200, extra_cycles=10, drivers=[release])
    assert late.words == words and early.words == words
    assert late.cycles[0] >= 20


def test_bad_parameters_raise():
    with pytest.raises(ConfigError, match="StreamFork: n"):
        StreamFork(4, 1)
    with pytest.raises(ConfigError, match="StreamFork: width"):
        StreamFork(0)

"""Stream FIFO in Amaranth's simulator: order, throughput and capacity at the depths the dataflow uses."""

import pytest

from qnnfab.errors import ConfigError
from qnnfab.rtl.stream_fifo import StreamFIFO
from qnnfab.sim.amaranth_stream import StreamSink, StreamSource, run_streams, stream_through


@pytest.mark.parametrize("depth", [2, 5])
def test_passes_words_in_order_under_gaps_and_backpressure(depth):
    words = [(k * 37) % 128 for k in range(200)]
    assert stream_through(StreamFIFO(7, depth), words, len(words), 0.6, 0.5, seed=depth).words == words


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_one_word_per_cycle_unstalled(depth):
    # depth 2 is the dataflow's default (fifo_depth_for's lower bound)
    words = list(range(40))
    run = stream_through(StreamFIFO(6, depth), words, len(words))
    assert run.words == words
    assert run.out_cycles[-1] - run.out_cycles[0] == len(words) - 1
    assert run.in_cycles == list(range(len(words)))
    assert run.latency == StreamFIFO(6, depth).latency == 2


@pytest.mark.parametrize("depth", [2, 3, 6])
def test_holds_depth_plus_one_words_while_the_output_is_stalled(depth):
    # documented: ``depth`` words in memory plus one in the output register
    dut = StreamFIFO(5, depth)
    src = StreamSource(dut.i, range(1, 20), name="i")
    snk = StreamSink(dut.o, ready_prob=0.0, name="o")   # never ready
    run_streams(dut, [src], [snk], [0], max_cycles=1, extra_cycles=30)
    assert len(src.sent_cycles) == depth + 1
    assert snk.words == []


def test_bad_depth_raises():
    with pytest.raises(ConfigError, match="depth"):
        StreamFIFO(8, 1)
    with pytest.raises(ConfigError, match="width"):
        StreamFIFO(0, 4)

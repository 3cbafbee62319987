"""Stream width converter in Amaranth's simulator: element order, handshake rules, throughput, capacity, errors."""

import random

import pytest

from qnnfab.errors import ConfigError
from qnnfab.packing import pack_words, unpack_fields
from qnnfab.rtl.width_converter import WidthConverter
from qnnfab.packing import pack_words, unpack_fields
from qnnfab.sim.amaranth_stream import StreamSink, StreamSource, run_streams, stream_through

PAIRS = [(1, 3), (3, 1), (2, 3), (3, 2), (4, 4), (8, 2)]


def _convert(in_elems, out_elems, bits, elems, valid_prob, ready_prob, seed):
    """Stream ``elems`` through a converter; return (elements out, the run)."""
    dut = WidthConverter(in_elems, out_elems, bits)
    words = pack_words([elems[i:i + in_elems] for i in range(0, len(elems), in_elems)], bits)
    run = stream_through(dut, words, len(elems) // out_elems, valid_prob, ready_prob, seed=seed)
    return [e for w in run.words for e in unpack_fields(w, [bits] * out_elems)], run


@pytest.mark.parametrize("in_elems,out_elems", PAIRS)
@pytest.mark.parametrize("valid_prob,ready_prob", [(0.6, 0.5), (1.0, 0.3), (0.3, 1.0)])
def test_elements_leave_in_order_under_gaps_and_backpressure(in_elems, out_elems, valid_prob, ready_prob):
    bits = 3
    rng = random.Random(1000 * in_elems + 100 * out_elems + int(10 * valid_prob + ready_prob))
    # a whole number of output words, so every element must come out
    n_elems = in_elems * out_elems * rng.randint(6, 12)
    elems = [rng.randrange(1 << bits) for _ in range(n_elems)]
    out, _ = _convert(in_elems, out_elems, bits, elems, valid_prob, ready_prob, seed=rng.getrandbits(32))
    assert out == elems


@pytest.mark.parametrize("in_elems,out_elems", PAIRS)
def test_full_rate_when_unstalled(in_elems, out_elems):
    # steady state: the wider side moves one word per cycle
    bits = 2
    rng = random.Random(in_elems * 7 + out_elems)
    n_elems = 60 * out_elems
    n_elems -= n_elems % in_elems
    elems = [rng.randrange(1 << bits) for _ in range(n_elems)]
    out, run = _convert(in_elems, out_elems, bits, elems, 1.0, 1.0, seed=0)
    assert out == elems[:len(out)] and len(elems) - len(out) < out_elems
    span = run.out_cycles[-1] - run.in_cycles[0] + 1
    ideal = max(len(run.in_cycles), len(run.words))
    assert span <= ideal + 2, (span, ideal)


@pytest.mark.parametrize("in_elems,out_elems", PAIRS + [(3, 3), (2, 6)])
def test_stalled_output_fills_exactly_the_documented_buffer(in_elems, out_elems):
    """With ``o`` stalled the converter takes floor((in + out) / in) input words
    (its buffer of in + out elements), no fewer, no more; released, every
    element leaves in order."""
    bits = 4
    rng = random.Random(in_elems * 10 + out_elems)
    n_elems = in_elems * out_elems * 4
    elems = [rng.randrange(1 << bits) for _ in range(n_elems)]
    dut = WidthConverter(in_elems, out_elems, bits)
    src = StreamSource(dut.i, pack_words([elems[i:i + in_elems] for i in range(0, n_elems, in_elems)], bits),
                       rng=rng)
    snk = StreamSink(dut.o, ready_prob=0.0, rng=rng)
    stall = 4 * (in_elems + out_elems) + 4          # far longer than filling the buffer takes

    def release(ctx, cycle):
        snk.ready_prob = 0.0 if cycle < stall else 1.0

    run_streams(dut, [src], [snk], [n_elems // out_elems], max_cycles=stall + 4 * n_elems + 50, extra_cycles=8,
                drivers=[release])
    taken = sum(c < stall for c in src.sent_cycles)
    assert taken == (in_elems + out_elems) // in_elems, f"{taken} input words taken while the output was stalled"
    assert [e for w in snk.words for e in unpack_fields(w, [bits] * out_elems)] == elems


def test_wide_elements_keep_every_bit():
    rng = random.Random(3)
    elems = [rng.randrange(1 << 16) for _ in range(2 * 3 * 10)]
    out, _ = _convert(2, 3, 16, elems, 0.7, 0.7, seed=4)
    assert out == elems


@pytest.mark.parametrize("kwargs,field", [
    (dict(in_elems=0, out_elems=2, bits=1), "in_elems"),
    (dict(in_elems=2, out_elems=-1, bits=1), "out_elems"),
    (dict(in_elems=2, out_elems=2, bits=0), "bits"),
    (dict(in_elems=2.0, out_elems=2, bits=1), "in_elems"),
    (dict(in_elems=2, out_elems="3", bits=1), "out_elems"),
])
def test_bad_parameters_raise_clear_errors(kwargs, field):
    with pytest.raises(ConfigError) as ei:
        WidthConverter(**kwargs, name="fc1 width converter")
    assert ei.value.field == field
    assert "fc1 width converter" in str(ei.value) and field in str(ei.value)

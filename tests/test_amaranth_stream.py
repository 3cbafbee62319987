"""The Amaranth-simulator stream source and sink themselves: they pass a correct design, and the
sink stops a design that breaks a stream rule (deliberately broken one-register stages)."""

import random

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.packing import unpack_fields
from qnnfab.sim.amaranth_stream import StreamRuleError, StreamSink, StreamSource, run_streams, stream_through


class Stage(wiring.Component):
    """A register stage (i.ready = ~o.valid | o.ready) with one optional bug."""

    def __init__(self, shape, bug=None):
        self.bug = bug
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        word = Signal.like(self.o.payload)
        m.d.comb += self.i.ready.eq(~full | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += [full.eq(self.i.valid), word.eq(self.i.payload)]
        m.d.comb += self.o.payload.eq(word)
        if self.bug == "valid_needs_ready":
            m.d.comb += self.o.valid.eq(full & self.o.ready)
        elif self.bug == "valid_on_ready":
            m.d.comb += self.o.valid.eq(full | self.o.ready)
        elif self.bug == "drops_valid":          # forgets the word when not taken at once
            m.d.comb += self.o.valid.eq(full)
            with m.If(~self.o.ready):
                m.d.sync += full.eq(0)
        elif self.bug == "payload_moves":        # takes a new word while stalled
            m.d.comb += [self.o.valid.eq(full), self.i.ready.eq(1)]
        elif self.bug == "takes_without_valid":  # loads the payload whatever valid says
            m.d.comb += self.o.valid.eq(full)
            with m.If(self.i.ready):
                m.d.sync += full.eq(1)
        else:
            m.d.comb += self.o.valid.eq(full)
        return m


class PassThrough(wiring.Component):
    """o = i, combinationally: the sink then checks the source's side of the rules."""

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += Signal().eq(1)   # a clock domain for the simulator
        wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("valid_prob,ready_prob", [(1.0, 1.0), (0.5, 0.5), (0.2, 0.9)])
def test_a_correct_stage_passes_every_word(valid_prob, ready_prob):
    words = list(range(50))
    run = stream_through(Stage(unsigned(6)), words, len(words), valid_prob, ready_prob, seed=3)
    assert run.words == words
    if valid_prob == ready_prob == 1.0:
        assert run.in_cycles == list(range(50)) and run.latency == 1


@pytest.mark.parametrize("bug,message", [
    ("valid_needs_ready", "depend on ready"),
    ("valid_on_ready", "depend on ready"),
    ("drops_valid", "valid dropped"),
    ("payload_moves", "payload changed"),
])
def test_the_sink_stops_a_stage_that_breaks_a_rule(bug, message):
    with pytest.raises(StreamRuleError, match=message):
        stream_through(Stage(unsigned(6), bug), list(range(30)), 30, 0.7, 0.5, seed=1)


def test_a_stage_that_takes_words_without_valid_is_caught_by_the_data():
    # the source puts random bits on an idle payload, so the words taken without valid are junk
    run = stream_through(Stage(unsigned(6), "takes_without_valid"), list(range(30)), 30, 0.5, 1.0, seed=2,
                         extra_cycles=0)
    assert run.words != list(range(30))


def test_the_source_holds_each_word_until_taken():
    # through a wire, the sink's checks apply to the source
    words = [random.Random(4).getrandbits(8) for _ in range(100)]
    run = stream_through(PassThrough(unsigned(8)), words, len(words), 0.6, 0.4, seed=5)
    assert run.words == words and run.in_cycles == run.out_cycles


def test_extra_words_after_the_expected_ones_fail():
    with pytest.raises(AssertionError, match="1 word"):
        stream_through(Stage(unsigned(4)), [1, 2, 3], 2)


def test_typed_payloads_go_in_as_layout_values_or_raw_bits_and_come_out_as_raw_bits():
    layout = data.StructLayout({"data": data.ArrayLayout(signed(3), 2), "last": unsigned(1)})
    dut = PassThrough(layout)
    values = [{"data": [-4, 3], "last": 0}, {"data": [-1, 0], "last": 1}]
    raw = [w["data"][0] & 7 | (w["data"][1] & 7) << 3 | w["last"] << 6 for w in values]
    run = stream_through(dut, values + raw, 4)
    assert run.words == raw + raw
    assert [unpack_fields(w, [3, 3, 1], signed=True)[:2] for w in run.words[:2]] == [[-4, 3], [-1, 0]]


def test_flat_signed_payloads_take_negative_ints():
    run = stream_through(PassThrough(signed(5)), [-16, -1, 0, 15], 4)
    assert [unpack_fields(w, [5], signed=True)[0] for w in run.words] == [-16, -1, 0, 15]


def test_timeout_names_the_counts():
    dut = Stage(unsigned(4))
    src = StreamSource(dut.i, [1, 2], name="i")
    snk = StreamSink(dut.o, ready_prob=0.0, name="o")
    with pytest.raises(AssertionError, match=r"o: 0/2; i: 1/2 sent"):
        run_streams(dut, [src], [snk], [2], max_cycles=20)


def test_vendor_cells_are_refused_unless_only_timing_is_read():
    """Amaranth's simulator leaves an Instance's outputs at 0: a run whose data are read refuses a
    design with LUT6_2/CARRY4 cells (their Amaranth model simulates); a timing-only run takes it."""
    from qnnfab.rtl.compressor_popcount import CompressorPopcount

    def run(primitives, timing_only=False):
        dut = CompressorPopcount(6, primitives=primitives)
        src, snk = StreamSource(dut.i, [0b111111_000000], name="i"), StreamSink(dut.o, name="o")
        run_streams(dut, [src], [snk], [1], max_cycles=50, timing_only=timing_only)
        return snk.words

    with pytest.raises(ValueError, match="CARRY4, LUT6_2.*primitives=False"):
        run(True)
    assert run(True, timing_only=True) == [0]       # undriven cells: the count that would be wrong
    assert run(False) == [0]                        # x = 0b000000, w = 0b111111: no lane agrees

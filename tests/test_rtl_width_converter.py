"""Stream width converter in Amaranth's simulator: element order, handshake rules, throughput, errors."""

import random

import pytest
from amaranth.sim import Simulator

from qnnfab.errors import ConfigError
from qnnfab.rtl.width_converter import WidthConverter

PAIRS = [(1, 3), (3, 1), (2, 3), (3, 2), (4, 4), (8, 2)]


def _pack(elems, bits):
    return sum(e << (k * bits) for k, e in enumerate(elems))


def _unpack(word, n, bits):
    return [(word >> (k * bits)) & ((1 << bits) - 1) for k in range(n)]


def _run(dut, words, rng, valid_prob, ready_prob, max_cycles):
    """Drive ``words`` with random gaps, take outputs with random backpressure.

    Returns (output words, list of handshake violations, cycles)."""
    got, problems = [], []
    state = {"cycles": 0}

    async def bench(ctx):
        k = 0
        offering = False
        held = None           # (payload) of an output that was valid but not taken
        for cyc in range(max_cycles):
            # source: once valid, hold the word until it transfers
            if not offering and k < len(words) and rng.random() < valid_prob:
                offering = True
            ctx.set(dut.i.valid, int(offering))
            ctx.set(dut.i.payload, words[k] if offering else 0)
            # valid never depends on ready: look at o.valid under both ready levels
            ctx.set(dut.o.ready, 0)
            v0, p0 = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            ctx.set(dut.o.ready, 1)
            v1, p1 = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            if (v0, p0) != (v1, p1):
                problems.append(f"cycle {cyc}: o.valid/payload depend on o.ready")
            ready = int(rng.random() < ready_prob)
            ctx.set(dut.o.ready, ready)
            ovalid, opayload = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            if held is not None and not (ovalid and opayload == held):
                problems.append(f"cycle {cyc}: output dropped or changed while stalled "
                                f"(valid {ovalid}, payload {opayload:#x}, held {held:#x})")
            if ovalid and ready:
                got.append(opayload)
                held = None
            elif ovalid:
                held = opayload
            else:
                held = None
            if offering and ctx.get(dut.i.ready):
                offering = False
                k += 1
            await ctx.tick()
            state["cycles"] = cyc + 1
            if k == len(words) and not offering and ctx.get(dut.o.valid) == 0 and \
                    len(got) * dut.out_elems >= len(words) * dut.in_elems - (dut.out_elems - 1):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, problems, state["cycles"]


@pytest.mark.parametrize("in_elems,out_elems", PAIRS)
@pytest.mark.parametrize("valid_prob,ready_prob", [(0.6, 0.5), (1.0, 0.3), (0.3, 1.0)])
def test_elements_leave_in_order_under_gaps_and_backpressure(in_elems, out_elems, valid_prob, ready_prob):
    bits = 3
    dut = WidthConverter(in_elems, out_elems, bits)
    rng = random.Random(1000 * in_elems + 100 * out_elems + int(10 * valid_prob + ready_prob))
    # a whole number of output words, so every element must come out
    n_elems = in_elems * out_elems * rng.randint(6, 12)
    elems = [rng.randrange(1 << bits) for _ in range(n_elems)]
    words = [_pack(elems[i:i + in_elems], bits) for i in range(0, n_elems, in_elems)]
    got, problems, _ = _run(dut, words, rng, valid_prob, ready_prob, max_cycles=20 * len(words) + 200)
    assert not problems, problems[:5]
    out = [e for w in got for e in _unpack(w, out_elems, bits)]
    assert out == elems


@pytest.mark.parametrize("in_elems,out_elems", PAIRS)
def test_full_rate_when_unstalled(in_elems, out_elems):
    # steady state: the wider side moves one word per cycle
    bits = 2
    dut = WidthConverter(in_elems, out_elems, bits)
    rng = random.Random(in_elems * 7 + out_elems)
    n_out = 60
    n_elems = n_out * out_elems
    n_elems -= n_elems % in_elems
    elems = [rng.randrange(1 << bits) for _ in range(n_elems)]
    words = [_pack(elems[i:i + in_elems], bits) for i in range(0, n_elems, in_elems)]
    got, problems, cycles = _run(dut, words, rng, 1.0, 1.0, max_cycles=10 * len(words) + 50)
    assert not problems
    assert [e for w in got for e in _unpack(w, out_elems, bits)] == elems[:len(got) * out_elems]
    ideal = max(len(words), len(got))
    assert cycles <= ideal + 4, (cycles, ideal)


def test_wide_elements_keep_every_bit():
    dut = WidthConverter(2, 3, 16)
    rng = random.Random(3)
    elems = [rng.randrange(1 << 16) for _ in range(2 * 3 * 10)]
    words = [_pack(elems[i:i + 2], 16) for i in range(0, len(elems), 2)]
    got, problems, _ = _run(dut, words, rng, 0.7, 0.7, max_cycles=400)
    assert not problems
    assert [e for w in got for e in _unpack(w, 3, 16)] == elems


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

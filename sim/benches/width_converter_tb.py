"""Width converter: element order preserved across regrouping, random gaps and backpressure."""

import cocotb

from qnnfab.rtl.width_converter import WidthConverter
from qnnfab.packing import pack_fields, unpack_fields
from qnnfab.sim.stream import bench_params, bench_random, run_reset_in_flight, run_stream_test, write_metrics

NAME = "width_converter"
CASES = [
    {"in_elems": 4, "out_elems": 1, "bits": 1},
    {"in_elems": 1, "out_elems": 8, "bits": 1},
    {"in_elems": 3, "out_elems": 2, "bits": 4},
    {"in_elems": 2, "out_elems": 3, "bits": 2},
    {"in_elems": 16, "out_elems": 16, "bits": 1},
    {"in_elems": 32, "out_elems": 64, "bits": 1},
]


def design(params):
    return WidthConverter(params["in_elems"], params["out_elems"], params["bits"])


def summarize(result):
    m = result.metrics
    return f"{m['elements']} elements, {m['out_words_per_cycle']:.3f} output words/cycle unstalled"


def _stimulus(p, groups, rng):
    """(input words, golden output elements, check options) of ``groups`` x lcm-ish element groups."""
    ie, oe, b = p["in_elems"], p["out_elems"], p["bits"]
    # a whole number of both word sizes
    n_elems = ie * oe * groups
    elems = [rng.getrandbits(b) for _ in range(n_elems)]
    words = [pack_fields(elems[k:k + ie], [b] * ie) for k in range(0, n_elems, ie)]
    # first principles: the element sequence is unchanged, regrouped OE elements per word
    expected = [elems[k:k + oe] for k in range(0, n_elems, oe)]
    return words, expected, dict(decode=lambda w: unpack_fields(w, [b] * oe),
                                 describe=lambda k: f"elements {k * oe}..{k * oe + oe - 1}")


async def _run(dut, valid_prob, ready_prob, salt):
    p = bench_params()
    rng = bench_random(salt)
    words, expected, options = _stimulus(p, rng.randint(8, 40), rng)
    n_elems = len(words) * p["in_elems"]
    run = await run_stream_test(dut, words, expected, rng, valid_prob, ready_prob, max_cycles=20 * n_elems + 100,
                                **options)
    return n_elems, run.cycles, run.sink


@cocotb.test()
async def elements_keep_their_order_under_backpressure(dut):
    await _run(dut, 0.6, 0.5, 1)


@cocotb.test()
async def runs_at_the_rate_of_the_wider_side(dut):
    p = bench_params()
    n_elems, cycles, snk = await _run(dut, 1.0, 1.0, 2)
    span = snk.cycles[-1] - snk.cycles[0] + 1
    n_out = len(snk.words)
    # output words per cycle: 1 when the output is the wider... limited by min(1, in/out)
    rate = min(1.0, p["in_elems"] / p["out_elems"])
    expected_span = (n_out - 1) / rate + 1
    assert span <= expected_span + 1, f"{n_out} words took {span} cycles, expected {expected_span}"
    write_metrics(elements=n_elems, out_words_per_cycle=n_out / span)


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    """Reset with a partial output word assembled (or an input word half sent): the
    element count restarts, fresh elements are grouped from the first one."""
    p = bench_params()
    rng = bench_random(3)
    old, _, _ = _stimulus(p, 6, rng)
    words, expected, options = _stimulus(p, 6, rng)
    # a "frame" is one group of out_elems input words: cut inside one
    where = await run_reset_in_flight(dut, old, words, expected, rng, frame_words=p["out_elems"],
                                      frames_before=rng.randint(1, 4), max_cycles=40 * len(old) * p["in_elems"] + 200,
                                      **options)
    write_metrics(reset_in_flight=where)

"""MVTU and the per-PE weight layout in Amaranth's own simulator (fast unit tests)."""

import bisect
import re

import numpy as np
import pytest

from qnnfab.errors import ConfigError
from qnnfab.golden.bits import xnor_popcount_matvec
from qnnfab.golden.matvec import quantized_matvec
from qnnfab.golden.threshold import multithreshold
from qnnfab.kinds import DataKind
from qnnfab.packing import pack_words, unpack_fields
from qnnfab.rtl.mvtu import MVTU
from qnnfab.weight_layout import threshold_stage_tables, weight_words
from qnnfab.sim.amaranth_stream import stream_through


def _stored(rng, kind, bits, shape):
    return rng.integers(*DataKind.of(kind, bits).stored_range, endpoint=True, size=shape)


def test_weight_layout_places_row_r_in_pe_r_mod_pe_fold_r_div_pe():
    rng = np.random.default_rng(0)
    mh, mw, pe, simd, bits = 6, 10, 3, 5, 4
    w = rng.integers(-8, 8, size=(mh, mw))
    words = weight_words(w, pe, simd, bits)
    sf = mw // simd
    for r in range(mh):
        for c in range(mw):
            word = words[r % pe][(r // pe) * sf + c // simd]
            assert unpack_fields(word, [bits] * simd, signed=True)[c % simd] == w[r, c]


def test_threshold_stage_tables_binary_search_counts_like_bisect():
    rng = np.random.default_rng(1)
    c, pe = 6, 2
    for count in (1, 5, 7):
        t = np.sort(rng.integers(-20, 20, size=(c, count)), axis=1)
        pad = 100
        tables = threshold_stage_tables(t, pe, max(1, count.bit_length()), pad)
        nb = count.bit_length()
        for ch in range(c):
            for acc in range(-22, 23):
                q = 0
                for s in range(nb):   # the search the hardware does, MSB first
                    q = (q << 1) | int(acc >= tables[ch % pe][s][(ch // pe) * (1 << s) + q])
                assert q == bisect.bisect_right(t[ch].tolist(), acc), (count, ch, acc)


CASES = [  # mh, mw, pe, simd, wk, wb, ak, ab, thresholds per row (0 = raw), vectors, pipeline
    (4, 8, 2, 4, "bipolar", None, "bipolar", None, 1, 3, 0),
    (6, 15, 3, 5, "bipolar", None, "bipolar", None, 0, 3, 1),
    (6, 12, 2, 1, "ternary", None, "uint", 3, 7, 2, 0),
    (10, 9, 5, 3, "int", 4, "int", 6, 0, 3, 1),
    (3, 4, 3, 4, "int", 3, "bipolar", None, 2, 4, 2),
    (4, 6, 1, 6, "bipolar", None, "int", 5, 3, 2, 0),
    # pipeline = "max": the read register and every adder level
    (4, 8, 2, 4, "bipolar", None, "bipolar", None, 1, 3, "max"),
    (8, 96, 4, 32, "bipolar", None, "bipolar", None, 3, 2, "max"),
    (6, 15, 3, 5, "bipolar", None, "bipolar", None, 0, 3, "max"),
    (10, 9, 5, 3, "int", 4, "int", 6, 0, 3, "max"),
    (6, 12, 2, 1, "ternary", None, "uint", 3, 7, 2, "max"),
]


def _adder_levels(simd, binary):
    """Adder levels of a PE: binary lanes are first counted in groups of three (full adders)."""
    n = -(-simd // 3) if binary else simd
    return (n - 1).bit_length()


@pytest.mark.parametrize("accumulator", ["mux", "reset"])
@pytest.mark.parametrize("mh,mw,pe,simd,wk,wb,ak,ab,nthr,vectors,pipe", CASES)
def test_rows_match_golden_and_frame_takes_folds_plus_latency(mh, mw, pe, simd, wk, wb, ak, ab, nthr, vectors, pipe,
                                                              accumulator):
    _check_rows_and_frame(mh, mw, pe, simd, wk, wb, ak, ab, nthr, vectors, pipe, accumulator=accumulator)


COMPRESSOR_CASES = [  # bipolar x bipolar: mh, mw, pe, simd, thresholds per row, vectors, pipeline
    (3, 5, 1, 1, 1, 3, 0),          # PE 1, SIMD 1: a single lane, no carry chain
    (6, 15, 3, 5, 0, 3, 1),         # odd SIMD, raw accumulators
    (4, 13, 2, 13, 1, 3, 0),        # SIMD = MW, not a multiple of 6
    (2, 47, 1, 47, 0, 2, 2),        # SIMD = MW with a cascaded CARRY4, PE 1
    (8, 96, 4, 32, 3, 2, "max"),    # every register
]


@pytest.mark.parametrize("accumulator", ["mux", "reset"])
@pytest.mark.parametrize("mh,mw,pe,simd,nthr,vectors,pipe", COMPRESSOR_CASES)
def test_compressor_popcount_rows_match_golden_and_latency_is_unchanged(mh, mw, pe, simd, nthr, vectors, pipe,
                                                                        accumulator):
    _check_rows_and_frame(mh, mw, pe, simd, "bipolar", None, "bipolar", None, nthr, vectors, pipe,
                          accumulator=accumulator, popcount="compressor")


def _check_rows_and_frame(mh, mw, pe, simd, wk, wb, ak, ab, nthr, vectors, pipe, **options):
    """Two frames under gaps and backpressure equal to golden, then one unstalled frame in
    ``vectors * NF * SF + latency`` cycles with the documented latency; ``options`` go to the MVTU
    (the compressor as its Amaranth model: this is Amaranth's simulator)."""
    rng = np.random.default_rng(mh * 1000 + mw)
    w = _stored(rng, wk, wb, (mh, mw))
    x = _stored(rng, ak, ab, (2 * vectors, mw))
    # the extremes of both ranges meet in every lane: min x min, min x max, max x min, max x max
    w[0], w[-1] = DataKind.of(wk, wb).stored_range
    x[0], x[1] = DataKind.of(ak, ab).stored_range
    if wk == ak == "bipolar":
        acc = xnor_popcount_matvec(w, x)
    else:
        acc = quantized_matvec(w, x, wk, ak, wb, ab)
    t = np.sort(rng.integers(acc.min() - 1, acc.max() + 2, size=(mh, nthr)), axis=1) if nthr else None
    dut = MVTU(w, t, pe=pe, simd=simd, weight_kind=wk, weight_bits=wb, act_kind=ak, act_bits=ab,
               vectors=vectors, pipeline=pipe, primitives=False, **options)
    expected = acc if t is None else multithreshold(acc, t)
    words = pack_words(x.reshape(-1, simd), dut.act_bits)
    signed = t is None and dut.acc_signed
    # first: random gaps and backpressure over 2 frames
    outs = stream_through(dut, words, 2 * vectors * mh // pe, 0.6, 0.5, seed=mh + mw).words
    got = np.array([unpack_fields(o, [dut.out_elem_width] * pe, signed) for o in outs]).reshape(2 * vectors, mh)
    np.testing.assert_array_equal(got, expected)
    # then: one frame unstalled, cycles = vectors * NF * SF + latency
    n = vectors * mw // simd
    run = stream_through(dut, words[:n], vectors * mh // pe)
    ic, oc = run.in_cycles, run.out_cycles
    assert oc[-1] - ic[0] + 1 == vectors * (mh // pe) * (mw // simd) + dut.latency == dut.cycles_per_frame
    tree = _adder_levels(simd, wk == ak == "bipolar")
    tree_regs, read_reg = (tree, 1) if pipe == "max" else (min(pipe, tree), 0)
    assert dut.latency == 3 + read_reg + tree_regs + (0 if t is None else nthr.bit_length())


def test_widths_are_derived_from_the_reachable_range():
    w = np.ones((2, 1024), int)
    assert MVTU(w, pe=1, simd=32).acc_width == 11                   # popcount 0..1024
    d = MVTU(np.full((2, 9), -8), pe=2, simd=3, weight_kind="int", weight_bits=4, act_kind="int", act_bits=8)
    assert (d.acc_width, d.acc_signed) == (15, True)                 # 9 * (-8) * (-128) = 9216
    assert d.in_width == 24 and d.out_width == 30


@pytest.mark.parametrize("kwargs,field", [
    ({"pe": 3}, "pe"),
    ({"simd": 5}, "simd"),
    ({"pe": 0}, "pe"),
    ({"weight_kind": "binary"}, "weight_kind"),
    ({"act_kind": "uint"}, "act_bits"),
    ({"weight_kind": "int"}, "weight_bits"),
    ({"vectors": 0}, "vectors"),
    ({"weights": np.full((4, 8), 2)}, "weights"),
    ({"weights": np.ones(8, int)}, "weights"),
    ({"weights": np.full((4, 8), 2), "weight_kind": "ternary"}, "weights"),
    ({"thresholds": np.zeros((3, 1), int)}, "thresholds"),
    ({"thresholds": np.array([[2, 1]] * 4)}, "thresholds"),
    ({"thresholds": np.full((4, 1), 0.5)}, "thresholds"),
    ({"accumulator": "clear"}, "accumulator"),
    ({"popcount": "wallace"}, "popcount"),
])
def test_bad_configuration_raises_config_error_naming_the_field(kwargs, field):
    args = {"weights": np.ones((4, 8), int), "thresholds": None, "pe": 2, "simd": 4}
    args.update(kwargs)
    w, t = args.pop("weights"), args.pop("thresholds")
    with pytest.raises(ConfigError) as e:
        MVTU(w, t, **args)
    assert e.value.field == field and e.value.fix


@pytest.mark.parametrize("case,pipe", [(0, None), (2, None), (3, None), (0, "max"), (3, "max")])
@pytest.mark.parametrize("style", ["block", "distributed"])
def test_weight_memory_styles_compute_the_same_rows(case, pipe, style):
    """A LUT ROM (const "distributed") and a block-RAM memory give the rows of the golden model,
    under backpressure and unstalled in the same cycles as the default memories (also with
    pipeline = "max", where the LUT ROM registers its address twice instead of its data)."""
    mh, mw, pe, simd, wk, wb, ak, ab, nthr, vectors, case_pipe = CASES[case]
    pipe = case_pipe if pipe is None else pipe
    rng = np.random.default_rng(7 + case)
    w = _stored(rng, wk, wb, (mh, mw))
    x = _stored(rng, ak, ab, (2 * vectors, mw))
    acc = xnor_popcount_matvec(w, x) if wk == ak == "bipolar" else quantized_matvec(w, x, wk, ak, wb, ab)
    t = np.sort(rng.integers(acc.min() - 1, acc.max() + 2, size=(mh, nthr)), axis=1) if nthr else None
    kw = dict(pe=pe, simd=simd, weight_kind=wk, weight_bits=wb, act_kind=ak, act_bits=ab, vectors=vectors,
              pipeline=pipe)
    dut = MVTU(w, t, weight_memory=style, **kw)
    expected = acc if t is None else multithreshold(acc, t)
    words = pack_words(x.reshape(-1, simd), dut.act_bits)
    signed = t is None and dut.acc_signed
    outs = stream_through(dut, words, 2 * vectors * mh // pe, 0.6, 0.5, seed=case).words
    got = np.array([unpack_fields(o, [dut.out_elem_width] * pe, signed) for o in outs]).reshape(2 * vectors, mh)
    np.testing.assert_array_equal(got, expected)
    n = vectors * mw // simd
    run = stream_through(dut, words[:n], vectors * mh // pe)
    assert run.out_cycles[-1] - run.in_cycles[0] + 1 == dut.cycles_per_frame == MVTU(w, t, **kw).cycles_per_frame


def _verilog(dut):
    from amaranth.back import verilog
    return verilog.convert(dut, name="top", emit_src=False)


def test_weight_memory_style_is_the_synthesis_attribute_of_the_weight_memories():
    rng = np.random.default_rng(3)
    w = rng.integers(0, 2, (4, 32))
    auto, block = _verilog(MVTU(w, pe=2, simd=8)), _verilog(MVTU(w, pe=2, simd=8, weight_memory="block"))
    assert "rom_style" not in auto and "ram_style" not in auto
    assert block.count('(* rom_style = "block" *)\n  reg [7:0] wmem') == 2    # one per PE memory
    assert block.replace('  (* rom_style = "block" *)\n', "") == auto       # and nothing else differs
    rt = _verilog(MVTU(w, pe=2, simd=8, runtime=True, weight_memory="distributed"))
    assert rt.count('(* ram_style = "distributed" *)') == 2 and "rom_style" not in rt
    # const "distributed": no weight memory left for synthesis to map, a LUT ROM per PE
    lut = _verilog(MVTU(w, pe=2, simd=8, weight_memory="distributed"))
    assert "reg [7:0] wmem0 [7:0];" in auto
    assert "reg [7:0] wmem0 [" not in lut and "reg [2:0] wmem0_addr" in lut and "rom_style" not in lut


def test_unknown_weight_memory_style_is_refused():
    with pytest.raises(ConfigError) as e:
        MVTU(np.ones((4, 8), int), pe=2, simd=4, weight_memory="bram")
    assert e.value.field == "weight_memory" and "distributed" in e.value.fix


def test_compressor_popcount_builds_each_pe_from_lut6_2_and_carry4_cells_of_binary_layers_only():
    from qnnfab.rtl.compressor_popcount import compressor_levels
    from qnnfab.sim.build import to_verilog
    rng = np.random.default_rng(5)
    w = rng.integers(0, 2, (4, 40))
    text = to_verilog(MVTU(w, pe=2, simd=20, popcount="compressor"), "top")
    _, luts, carry4s = compressor_levels(20)
    # every PE is the same shared module: its cells appear once
    assert len(re.findall(r"^  LUT6_2 #", text, re.M)) == luts
    assert len(re.findall(r"^  CARRY4 ", text, re.M)) == carry4s > 0
    assert "LUT6_2" not in to_verilog(MVTU(w, pe=2, simd=20), "top")
    # k-bit lanes keep their datapath: the option changes nothing there
    wi = rng.integers(-4, 4, (4, 6))
    kbit = dict(pe=2, simd=3, weight_kind="int", weight_bits=3, act_kind="uint", act_bits=2)
    assert _verilog(MVTU(wi, popcount="compressor", **kbit)) == _verilog(MVTU(wi, **kbit))

"""MVTU (folded matrix-vector-threshold unit) against golden matvec + multithreshold, gaps and backpressure."""

import cocotb
import numpy as np

from qnnfab.golden.bits import xnor_popcount_matvec
from qnnfab.golden.matvec import quantized_matvec
from qnnfab.golden.threshold import multithreshold
from qnnfab.kinds import DataKind
from qnnfab.rtl.dot_product import tree_depth
from qnnfab.rtl.mvtu import MVTU
from qnnfab.packing import pack_fields, unpack_fields
from qnnfab.sim.stream import bench_params, bench_random, run_reset_in_flight, run_stream_test, write_metrics

NAME = "mvtu"
# out: "raw" accumulator, or N thresholds per row (1 = binary, 2^n - 1 = n-bit, others padded)
CASES = [
    {"mh": 8, "mw": 16, "pe": 1, "simd": 4, "wk": "bipolar", "wb": 1, "ak": "bipolar", "ab": 1,
     "out": 1, "vectors": 3, "pipeline": 0},
    {"mh": 6, "mw": 15, "pe": 3, "simd": 5, "wk": "bipolar", "wb": 1, "ak": "bipolar", "ab": 1,
     "out": "raw", "vectors": 4, "pipeline": 1},
    {"mh": 4, "mw": 8, "pe": 4, "simd": 8, "wk": "bipolar", "wb": 1, "ak": "bipolar", "ab": 1,
     "out": 3, "vectors": 6, "pipeline": 1},
    {"mh": 6, "mw": 12, "pe": 2, "simd": 1, "wk": "ternary", "wb": 2, "ak": "uint", "ab": 4,
     "out": 15, "vectors": 2, "pipeline": 0},
    {"mh": 10, "mw": 9, "pe": 5, "simd": 3, "wk": "int", "wb": 4, "ak": "int", "ab": 8,
     "out": "raw", "vectors": 3, "pipeline": 1},
    {"mh": 16, "mw": 27, "pe": 4, "simd": 9, "wk": "bipolar", "wb": 1, "ak": "int", "ab": 8,
     "out": 1, "vectors": 3, "pipeline": 2},
    {"mh": 4, "mw": 6, "pe": 2, "simd": 6, "wk": "int", "wb": 3, "ak": "bipolar", "ab": 1,
     "out": 2, "vectors": 5, "pipeline": 0},
    {"mh": 32, "mw": 64, "pe": 8, "simd": 16, "wk": "ternary", "wb": 2, "ak": "bipolar", "ab": 1,
     "out": 7, "vectors": 2, "pipeline": 2},
    # pipeline "max": read register + every adder level (4 tree registers at SIMD 32)
    {"mh": 16, "mw": 64, "pe": 4, "simd": 32, "wk": "bipolar", "wb": 1, "ak": "bipolar", "ab": 1,
     "out": 3, "vectors": 3, "pipeline": "max"},
    # weights in LUT ROMs (weight_memory "distributed"): address registered once, twice with "max"
    {"mh": 16, "mw": 64, "pe": 4, "simd": 32, "wk": "bipolar", "wb": 1, "ak": "bipolar", "ab": 1,
     "out": 3, "vectors": 3, "pipeline": "max", "wm": "distributed"},
    {"mh": 10, "mw": 9, "pe": 5, "simd": 3, "wk": "int", "wb": 4, "ak": "int", "ab": 8,
     "out": "raw", "vectors": 3, "pipeline": 1, "wm": "distributed"},
    # accumulator "reset": zeroed by the flip-flops' reset after a row's last word
    {"mh": 16, "mw": 64, "pe": 4, "simd": 32, "wk": "bipolar", "wb": 1, "ak": "bipolar", "ab": 1,
     "out": 3, "vectors": 3, "pipeline": "max", "acc": "reset"},
    {"mh": 10, "mw": 9, "pe": 5, "simd": 3, "wk": "int", "wb": 4, "ak": "int", "ab": 8,
     "out": "raw", "vectors": 3, "pipeline": 1, "acc": "reset"},
    # popcount "compressor": LUT6_2/CARRY4 instances with Yosys' cell models (sim/build.py);
    # PE 1 with SIMD = MW = 13 (odd, no multiple of 6), and every register with the reset accumulator
    {"mh": 3, "mw": 13, "pe": 1, "simd": 13, "wk": "bipolar", "wb": 1, "ak": "bipolar", "ab": 1,
     "out": 1, "vectors": 4, "pipeline": 0, "pc": "compressor"},
    {"mh": 16, "mw": 64, "pe": 4, "simd": 32, "wk": "bipolar", "wb": 1, "ak": "bipolar", "ab": 1,
     "out": 3, "vectors": 3, "pipeline": "max", "acc": "reset", "pc": "compressor"},
]


def _golden_acc(p, w, x):
    """Accumulator domain documented by MVTU: popcount for bipolar x bipolar, else the dot product."""
    if p["wk"] == "bipolar" and p["ak"] == "bipolar":
        return xnor_popcount_matvec(w, x)
    return quantized_matvec(w, x, p["wk"], p["ak"], p["wb"] if p["wk"] == "int" else None,
                            p["ab"] if p["ak"] != "bipolar" else None)


def arrays(p):
    """Weights and thresholds of a case: fixed by the parameters (they are baked into the Verilog)."""
    rng = np.random.default_rng([p["mh"], p["mw"], p["pe"], p["simd"]])
    w = rng.integers(*DataKind.of(p["wk"], p["wb"]).stored_range, endpoint=True, size=(p["mh"], p["mw"]))
    t = None
    if p["out"] != "raw":
        # thresholds spread over the accumulators of a probe batch, a few beyond the reachable range
        probe = rng.integers(*DataKind.of(p["ak"], p["ab"]).stored_range, endpoint=True, size=(64, p["mw"]))
        acc = _golden_acc(p, w, probe)
        lo, hi = acc.min(axis=0), acc.max(axis=0)
        t = np.stack([rng.integers(lo[r] - 2, hi[r] + 3, size=p["out"]) for r in range(p["mh"])])
        t[0, 0] = -10**6          # always passed
        t[-1, -1] = 10**6         # never passed
        t = np.sort(t, axis=1)
    return w, t


def design(p):
    w, t = arrays(p)
    return MVTU(w, t, pe=p["pe"], simd=p["simd"], weight_kind=p["wk"],
                weight_bits=p["wb"] if p["wk"] == "int" else None, act_kind=p["ak"],
                act_bits=p["ab"] if p["ak"] != "bipolar" else None, vectors=p["vectors"], pipeline=p["pipeline"],
                weight_memory=p.get("wm", "auto"), accumulator=p.get("acc", "mux"),
                popcount=p.get("pc", "adder-tree"))


def summarize(result):
    m = result.metrics
    return (f"{m.get('vectors', '?')} vectors in {m.get('cycles_per_frame', '?')} cycles "
            f"(= V*NF*SF + {m.get('latency', '?')}), {m.get('steps_per_cycle', 0):.3f} PExSIMD steps/cycle")


def _stimulus(dut, p, vectors, rng, edges):
    """(input words, golden output rows, check options, cycles per vector) of ``vectors`` random vectors."""
    nrng = np.random.default_rng(rng.getrandbits(32))
    w, t = arrays(p)
    lo, hi = DataKind.of(p["ak"], p["ab"]).stored_range
    x = nrng.integers(lo, hi, endpoint=True, size=(vectors, p["mw"]))
    if edges and vectors >= 2:
        x[0, :] = hi              # extremes of the input range
        x[1, :] = lo
    ab = DataKind.of(p["ak"], p["ab"]).width
    simd, pe = p["simd"], p["pe"]
    words = [pack_fields(x[v, s:s + simd], [ab] * simd) for v in range(vectors) for s in range(0, p["mw"], simd)]
    acc = _golden_acc(p, w, x)
    expected = acc if t is None else multithreshold(acc, t)
    raw_signed = t is None and not (p["wk"] == "bipolar" and p["ak"] == "bipolar")
    ew = len(dut.o__payload) // pe if t is None else int(t.shape[1]).bit_length()
    nf = p["mh"] // pe
    nf_sf = nf * (p["mw"] // simd)

    def where(k):   # output word k: rows fold * PE .. fold * PE + PE - 1 of vector k // NF
        v, r = k // nf, (k % nf) * pe
        return (f"vector {v} rows {r}..{r + pe - 1} (fold {r // pe}, one per PE), acc {acc[v, r:r + pe].tolist()}"
                f"{'' if t is None else f', thresholds {t[r:r + pe].tolist()}'}")

    options = dict(decode=lambda wd: unpack_fields(wd, [ew] * pe, signed=raw_signed), describe=where)
    return words, expected.reshape(-1, pe), options, nf_sf


async def _run(dut, vectors, valid_prob, ready_prob, salt, edges):
    rng = bench_random(salt)
    words, expected, options, nf_sf = _stimulus(dut, bench_params(), vectors, rng, edges)
    run = await run_stream_test(dut, words, expected, rng, valid_prob, ready_prob,
                                max_cycles=int(vectors * nf_sf / (valid_prob * ready_prob)) * 4 + 200, **options)
    return run.cycles, run.source, run.sink, nf_sf


@cocotb.test()
async def rows_match_golden_under_random_gaps_and_backpressure(dut):
    p = bench_params()
    await _run(dut, 2 * p["vectors"] + 2, valid_prob=0.6, ready_prob=0.5, salt=1, edges=True)


@cocotb.test()
async def frame_cycles_equal_folds_plus_constant_latency(dut):
    p = bench_params()
    v = p["vectors"]
    cycles, src, snk, nf_sf = await _run(dut, v, 1.0, 1.0, salt=2, edges=False)
    frame = snk.cycles[-1] - src.sent_cycles[0] + 1
    # documented constant: input write + memory read (+ read register) + tree registers + accumulator/output
    # + one per output bit
    binary = p["wk"] == "bipolar" and p["ak"] == "bipolar"
    n_bits = 0 if p["out"] == "raw" else int(p["out"]).bit_length()
    depth = tree_depth(p["simd"], binary)
    tree_regs = depth if p["pipeline"] == "max" else min(p["pipeline"], depth)
    latency = 3 + (p["pipeline"] == "max") + tree_regs + n_bits
    assert frame == v * nf_sf + latency, (
        f"frame of {v} vectors took {frame} cycles, expected {v} * {nf_sf} + {latency} = {v * nf_sf + latency}")
    write_metrics(vectors=v, cycles_per_frame=frame, latency=latency, cycles_per_vector=nf_sf,
                  steps_per_cycle=v * nf_sf / frame)


@cocotb.test()
async def restarts_cleanly_after_reset_in_flight(dut):
    """Reset in the middle of a vector (input buffer half written, accumulators and
    fold counters mid-row, outputs waiting): fresh vectors give exactly their rows."""
    p = bench_params()
    rng = bench_random(3)
    old, _, _, nf_sf = _stimulus(dut, p, 4, rng, edges=False)
    words, expected, options, _ = _stimulus(dut, p, 3, rng, edges=True)
    where = await run_reset_in_flight(dut, old, words, expected, rng, frame_words=p["mw"] // p["simd"],
                                      frames_before=rng.randint(1, 2), max_cycles=40 * 7 * nf_sf + 400, **options)
    write_metrics(reset_in_flight=where)

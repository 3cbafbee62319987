"""bench/bench_report_time.py reads `qnnfab report`'s output: the table of the report's own
formatter (format_report) and the per-stage progress lines, on resources chosen by hand."""

import importlib.util
import sys
from pathlib import Path

from qnnfab import netconfig
from qnnfab.boards.estimate.report import compose_report, format_report
from qnnfab.boards.estimate.yosys import Resources

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("bench_report_time", ROOT / "bench" / "bench_report_time.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return mod


def test_parse_report_reads_every_layer_and_the_total():
    cfg = netconfig.load(ROOT / "configs" / "lfc_small.toml")
    # thousands separators, a half BRAM36, a DSP, one layer untimed (its logic column "-")
    given = {"fc0": Resources(lut=1234, ff=5678, bram36=2.5, lutram=16, dsp=1, logic_ps=2900),
             "fc1": Resources(lut=640, ff=12, bram36=0.0, lutram=0, dsp=0, logic_ps=None),
             "fc2": Resources(lut=7, ff=100_001, bram36=64.0, lutram=280, dsp=3, logic_ps=1500),
             "fc_out": Resources(lut=149, ff=9, bram36=0.5, lutram=1, dsp=0, logic_ps=3100)}
    progress = ["  [1/2] synthesized fc0: 1234 LUT, 5678 FF, 2.5 BRAM36, 1 DSP, logic 2.90 ns (374 s)",
                "  [2/2] synthesized fc1_fifo: 10 LUT, 71 FF, 0 BRAM36, 0 DSP (385 s, cached)"]
    text = "\n".join(progress) + "\n" + format_report(compose_report(cfg, given))
    stages, layers = _bench().parse_report(text.splitlines())
    fields = ("lut", "lutram", "ff", "bram36", "dsp")
    assert layers == {**{n: {f: getattr(r, f) for f in fields} for n, r in given.items()},
                      "total": {"lut": 1234 + 640 + 7 + 149, "lutram": 16 + 280 + 1, "ff": 5678 + 12 + 100_001 + 9,
                                "bram36": 2.5 + 64.0 + 0.5, "dsp": 4}}
    assert stages == [("fc0", 374, {"lut": 1234, "ff": 5678, "bram36": 2.5, "dsp": 1}, "synthesized"),
                      ("fc1_fifo", 11, {"lut": 10, "ff": 71, "bram36": 0.0, "dsp": 0}, "cached")]


def test_parse_report_of_a_stopped_run_has_no_table():
    stages, layers = _bench().parse_report(["synthesizing 8 stages ...",
                                            "  [1/8] synthesized fc0: 6618 LUT, 16418 FF, 64 BRAM36, 0 DSP (374 s)"])
    assert layers == {} and [s[:2] for s in stages] == [("fc0", 374)]

"""Logic delay from Yosys ``sta`` (qnnfab.boards.estimate.yosys / report): parsing, a real
synthesis, and the report column."""

import json

import pytest

from qnnfab.boards.targets import XC7Z020
from qnnfab.boards.estimate.report import LayerReport, NetworkReport, format_report
from qnnfab.boards.estimate.yosys import Resources, _from_cache, parse_sta, sta_path, synth_xc7

# captured from `tee -q -o sta.txt sta` after synth_xilinx of a 64-lane XNOR popcount
# (shortened: the middle hops and most of the histogram are cut)
STA_LOG = r"""
4. Executing STA pass (static timing analysis).
Warning: Module 'FDRE' has no timing arcs!
Latest arrival time in 'top' is 5459:
    5459 (<unknown>)
Warning: Critical-path does not terminate in a recognised endpoint.
           $abc$25249$aiger$i360
    5459 $auto$alumacc.cc:578:replace_alu$1716.genblk1.slice[1].genblk1.carry4 (CARRY4.S->O)
           $abc$25249$aiger$o276
    4841 $abc$25249$lut$aiger$o276 (LUT2.I0->O)
           \pc_c1_s9 [5]
    4603 $auto$alumacc.cc:578:replace_alu$1722.genblk1.slice[1].genblk1.carry4 (CARRY4.CI->O)
           $abc$25249$aiger$o130
     631 $abc$25249$lut$aiger$o130 (LUT5.I0->O)
       0   \i__payload [103] (<primary input>)

Arrival histogram:
 legend: * represents 1 endpoint(s)
         + represents [1,1) endpoint(s)
(   147,    146] | 
(   128,    127] |* 
"""

NO_PATH_LOG = """
4. Executing STA pass (static timing analysis).
Warning: Module 'FDRE' has no timing arcs!
No timing paths found.
"""


def test_parse_sta_arrival_and_path():
    assert parse_sta(STA_LOG) == 5459
    path = sta_path(STA_LOG)
    assert path[0] == "Latest arrival time in 'top' is 5459:"
    assert path[-1].split() == ["0", "\\i__payload", "[103]", "(<primary", "input>)"]
    assert any("(LUT2.I0->O)" in line for line in path)
    assert not any(line.startswith("Warning") or "histogram" in line for line in path)
    assert len(path) == 11


def test_parse_sta_time_stamped_log():
    stamped = "\n".join(f"[{i:011.6f}] {line}" for i, line in enumerate(STA_LOG.splitlines()))
    assert parse_sta(stamped) == 5459
    assert sta_path(stamped) == sta_path(STA_LOG)


def test_parse_sta_no_arrival():
    assert parse_sta(NO_PATH_LOG) is None
    assert sta_path(NO_PATH_LOG) == []
    assert parse_sta("") is None
    assert parse_sta(None) is None


def test_parse_sta_several_modules_takes_worst():
    text = ("Latest arrival time in 'a' is 812:\n     812 (<primary output>)\n\n"
            "Latest arrival time in 'b' is 2300:\n    2300 (<primary output>)\n")
    assert parse_sta(text) == 2300
    assert sta_path(text)[0] == "Latest arrival time in 'b' is 2300:"


def test_resources_sum_keeps_worst_delay():
    a = Resources(lut=10, ff=4, bram36=0.5, carry4=2, logic_ps=1200)
    b = Resources(lut=5, ff=1, bram36=1.0, dsp=1, logic_ps=3400)
    c = Resources(lut=1)  # no timing
    s = a + b + c
    assert (s.lut, s.ff, s.bram36, s.dsp, s.carry4) == (16, 5, 1.5, 1, 2)
    assert s.logic_ps == 3400 and s.logic_ns == pytest.approx(3.4)
    assert (Resources() + c).logic_ps is None and c.logic_ns is None
    assert (c + a).logic_ps == 1200


def test_cache_entry_formats():
    cells = {"LUT6": 3, "FDRE": 2, "CARRY4": 1}
    old = _from_cache(json.loads(json.dumps(cells)))  # written without STA
    new = _from_cache({"cells": cells, "logic_ps": 2000, "path": []})
    assert (old.lut, old.ff, old.carry4, old.logic_ps) == (3, 2, 1, None)
    assert (new.lut, new.ff, new.carry4, new.logic_ps) == (3, 2, 1, 2000)


def test_real_synthesis_pipelining_shortens_logic(tmp_path, monkeypatch):
    from qnnfab.rtl.xnor_popcount import XnorPopcount
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path))  # a real Yosys run, not a cached one
    flat = synth_xc7(XnorPopcount(16, 0), top="xnor_popcount")
    piped = synth_xc7(XnorPopcount(16, 2), top="xnor_popcount")
    assert flat.logic_ps is not None and flat.logic_ps > 0
    assert piped.logic_ps is not None and 0 < piped.logic_ps < flat.logic_ps
    assert piped.ff > flat.ff  # the pipeline registers are there
    # cached: same figures; without timing: same counts, no delay
    again = synth_xc7(XnorPopcount(16, 0), top="xnor_popcount")
    assert again == flat
    no_sta = synth_xc7(XnorPopcount(16, 0), top="xnor_popcount", timing=False)
    assert no_sta.logic_ps is None
    assert no_sta == Resources(**{**flat.as_dict(), "logic_ps": None})


def test_real_synthesis_register_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path))
    # registers only: the path is the flip-flop's clock-to-out (FDRE C->Q) to the port
    regs = synth_xc7("module top(input clk, input [3:0] d, output reg [3:0] q);\n"
                     "  always @(posedge clk) q <= d;\nendmodule\n", top="top")
    assert regs.ff == 4 and regs.lut == 0
    assert regs.logic_ps is not None and 0 < regs.logic_ps < 1000
    # register -> 16-bit adder -> register: a reg-to-reg path (not just from the ports),
    # longer than the clock-to-out alone
    add = synth_xc7("module top(input clk, input [15:0] a, b, output reg [15:0] q);\n"
                    "  reg [15:0] x, y;\n"
                    "  always @(posedge clk) begin x <= a; y <= b; q <= x + y; end\nendmodule\n", top="top")
    assert add.carry4 >= 4 and add.logic_ps > regs.logic_ps
    # no cells at all: STA finds no path
    wire = synth_xc7("module top(input a, output q); assign q = a; endmodule\n", top="top")
    assert wire.logic_ps is None and wire.lut == 0


def _report(delays):
    layers = [LayerReport(f"fc{i}", "fc", 4, 8, 100 * (i + 1),
                          Resources(lut=100, ff=50, logic_ps=d)) for i, d in enumerate(delays)]
    total = Resources()
    for L in layers:
        total = total + L.resources
    return NetworkReport("net", layers, total, layers[-1].name, layers[-1].cycles, 100e6)


def test_format_report_logic_column_and_fmax_bound():
    rep = _report([2500, 4000, 1250])
    assert rep.worst_logic.name == "fc1"
    assert rep.fmax_bound_mhz == pytest.approx(250.0)
    text = format_report(rep, XC7Z020)
    lines = text.splitlines()
    assert "logic ns" in lines[1]
    row = next(line for line in lines if line.startswith("fc1 "))
    assert "4.00" in row and "longest path" in row
    assert next(line for line in lines if line.startswith("fc0 ")).split()[-1] == "2.50"
    assert "Fmax bound 250 MHz" in text and "worst fc1 4.00 ns" in text
    assert "833,333 frames/s at the bound" in text    # 250 MHz / 300 cycles (bottleneck fc2)
    assert "no routing" in text and "not timing closure" in text
    assert "cannot meet timing" not in text  # 100 MHz < 250 MHz
    total = next(line for line in lines if line.startswith("total"))
    assert "300" in total and "150" in total
    assert max(len(line) for line in lines) <= 120


def test_format_report_clock_above_bound_and_no_timing():
    rep = _report([12500, 3000])  # 80 MHz bound < 100 MHz clock
    assert "cannot meet timing" in format_report(rep)
    rep = _report([None, None])
    text = format_report(rep)
    assert rep.worst_logic is None and rep.fmax_bound_mhz is None
    assert "Fmax" not in text
    assert next(line for line in text.splitlines() if line.startswith("fc0 ")).split()[-1] == "-"


def test_element_aliases_dropped_per_module_only_when_unread():
    from amaranth.back import verilog
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out

    from qnnfab.boards.estimate.yosys import drop_element_aliases

    class Swap(wiring.Component):
        i: In(data.ArrayLayout(4, 3))
        o: Out(data.ArrayLayout(4, 3))

        def elaborate(self, platform):
            from amaranth.hdl import Module
            m = Module()
            m.d.comb += [self.o[0].eq(self.i[2]), self.o[1].eq(self.i[1]), self.o[2].eq(self.i[0])]
            return m

    text = verilog.convert(Swap(), name="swap", emit_src=False)
    assert "wire [3:0] \\i[0] ;" in text and "assign \\o[2]  =" in text
    out = drop_element_aliases(text)
    assert "\\i[" not in out and "\\o[" not in out
    assert out.count("assign ") == text.count("assign ") - 6

    hand = ("module a(x, y);\n  input [1:0] x;\n  output y;\n  wire \\x[0] ;\n  assign \\x[0]  = x[0];\n"
            "  assign y = \\x[0] ;\nendmodule\n"
            "module b(x);\n  input [1:0] x;\n  wire \\x[0] ;\n  assign \\x[0]  = x[0];\nendmodule\n")
    out = drop_element_aliases(hand)
    assert "assign y = \\x[0] ;" in out and "  wire \\x[0] ;\n  assign \\x[0]  = x[0];\n  assign y" in out
    assert out.endswith("module b(x);\n  input [1:0] x;\nendmodule\n")


# the longest path of lfc_small's fc1 -> fc2 pair (shortened): it starts at a register of fc2;
# the clock net is named after fc1's clk
PAIR_PATH_INSIDE = """Latest arrival time in 'link_fc1_fc2' is 4729:
    4729 (<unknown>)
           $abc$81036$aiger$i2059
    4147 $auto$abc_ops_reintegrate.cc:694:reintegrate$81227 (LUT3.I2->O)
           \\fc2.pe7_c0_s8 [4]
     945 $auto$abc_ops_reintegrate.cc:694:reintegrate$81266 (LUT6.I0->O)
           \\fc2._0_ [1]
     303 $auto$ff.cc:337:slice$17599 (FDRE.C->Q)
           \\fc1.clk
       0 $auto$clkbufmap.cc:261:execute$82623 (BUFG.I->O)
       0   \\clk (<primary input>)"""


def test_path_stages_names_the_stages_in_path_order_and_ignores_the_clock_net():
    from qnnfab.boards.estimate.report import path_stages
    names = ["fc1", "fc2_dwc", "fc2_fifo", "fc2"]
    assert path_stages(PAIR_PATH_INSIDE.splitlines(), names) == ["fc2"]
    crossing = (PAIR_PATH_INSIDE.replace("\\fc2.pe7_c0_s8", "\\fc2_fifo.fifo.r_level")
                .replace("\\fc2._0_", "\\fc2_dwc.count"))
    assert path_stages(crossing.splitlines(), names) == ["fc2_dwc", "fc2_fifo"]
    # a block RAM launching the path is named by its stage (fc2 is not a prefix match of fc2_fifo)
    bram = PAIR_PATH_INSIDE.replace("$auto$ff.cc:337:slice$17599 (FDRE.C->Q)",
                                    "fc1.wmem0.0.4 (RAMB18E1.CLKARDCLK->DOADO)")
    assert path_stages(bram.splitlines(), names) == ["fc1", "fc2"]


def test_format_links_states_the_bound_between_layers():
    from qnnfab.boards.estimate.report import LinkReport, format_links
    text = format_links([LinkReport("fc0", "fc1", 4100, ["fc1"]),
                         LinkReport("fc1", "fc2", 3900, ["fc1", "fc2_fifo", "fc2"]),
                         LinkReport("fc2", "fc3", None, [])])
    lines = text.splitlines()
    assert "4.10 ns" in lines[1] and "inside fc1" in lines[1]
    assert "3.90 ns" in lines[2] and "crosses fc1 -> fc2_fifo -> fc2" in lines[2]
    assert "at most 4.10 ns (pair fc0 -> fc1)" in lines[-2] and "crossing a boundary: 3.90 ns" in lines[-1]
    assert max(len(line) for line in lines) <= 120


def test_layer_links_pair_adjacent_layers_with_the_stages_between(tmp_path, monkeypatch):
    from qnnfab import netconfig
    from qnnfab.boards.estimate.report import StagePair, layer_links, link_report
    from qnnfab.plan import plan_of
    from qnnfab.rtl.dataflow import stage_components
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path))
    cfg = netconfig.loads('[network]\nname = "t"\ninput_shape = [8]\nweights = "random"\n'
                          '[[layer]]\nname = "a"\ntype = "fc"\nout = 4\npe = 2\nsimd = 4\n'
                          '[[layer]]\nname = "b"\ntype = "fc"\nout = 2\nact = "acc"\npe = 1\nsimd = 4\n')
    stages = stage_components(plan_of(cfg))
    links = layer_links(stages)
    assert [(s, d, [n for _, n, _ in st]) for s, d, st in links] == [("a", "b", ["a", "b_dwc", "b_fifo", "b"])]
    pair = StagePair(links[0][2])
    assert pair.signature.members["i"] == stages[0][2].signature.members["i"]
    assert pair.signature.members["o"] == stages[-1][2].signature.members["o"]
    # the pair synthesized: a register-to-register bound, its path in named stages
    (rep,) = link_report(cfg, jobs=1, progress=None)
    assert (rep.src, rep.dst) == ("a", "b") and 300 < rep.logic_ps < 5000
    assert rep.stages and set(rep.stages) <= {"a", "b_dwc", "b_fifo", "b"}


def _lut_rom_mvtu_verilog(style="distributed"):
    import numpy as np
    from amaranth.back import verilog
    from qnnfab.boards.estimate.yosys import drop_element_aliases, yosys_safe_names
    from qnnfab.rtl.mvtu import MVTU
    w = np.random.default_rng(3).integers(0, 2, (8, 64))
    design = MVTU(w, pe=2, simd=16, weight_memory=style)
    return yosys_safe_names(drop_element_aliases(verilog.convert(design, name="top", emit_src=False)))


def test_lut_roms_of_a_design_are_found_with_their_bits():
    from qnnfab.boards.estimate.yosys import rom_bits, split_lut_roms
    roms, rest = split_lut_roms(_lut_rom_mvtu_verilog())
    # one ROM per PE, each the PE's MH/PE x MW = 4 x 64 weight bits
    assert len(roms) == 2 and [rom_bits(body) for body in roms.values()] == [256, 256]
    assert all(f"module {name} " not in rest and f"{name}  " in rest for name in roms)  # instances stay
    assert split_lut_roms(_lut_rom_mvtu_verilog("auto"))[0] == {}


def test_split_synthesis_counts_and_times_like_the_whole_design(tmp_path, monkeypatch):
    import qnnfab.boards.estimate.yosys as yosys
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path))
    text = _lut_rom_mvtu_verilog()
    whole = synth_xc7(text, top="top")
    monkeypatch.setattr(yosys, "SPLIT_ROM_BITS", 0)
    split = synth_xc7(text, top="top")
    assert whole.lut * 0.9 <= split.lut <= whole.lut * 1.1 and split.lut >= 2 * 16  # a LUT per ROM column
    assert split.ff >= whole.ff  # each ROM keeps its own address register
    # the ROMs' stubs carry their delay, so the bound is never below the whole design's
    assert split.logic_ps is not None and split.logic_ps >= whole.logic_ps


def test_rom_stub_times_the_paths_through_the_rom(tmp_path, monkeypatch):
    from qnnfab.boards.estimate.yosys import _yosys_entry, rom_stub, split_lut_roms
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path))
    roms, rest = split_lut_roms(_lut_rom_mvtu_verilog())

    def worst(delay, drop=None):  # drop: the stub lines of one side (outputs "=>", inputs "$setup")
        stubs = "".join(rom_stub(body, delay) for body in roms.values())
        if drop:
            stubs = "\n".join(line for line in stubs.splitlines() if drop not in line) + "\n"
        return _yosys_entry(stubs + rest, "top", False, True, stubs=stubs)["logic_ps"]
    assert worst(0) < 9000
    assert worst(9000, drop="$setup") > 9000  # a ROM output starts a path at its delay
    assert worst(9000, drop="=>") > 9000      # and a path into a ROM input ends with it

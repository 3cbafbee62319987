"""Every registered design's Verilog passes ``verilator --lint-only -Wall``
without warnings that point at real problems (see qnnfab.sim.lint.BENIGN)."""

import pytest

from qnnfab.sim import registry
from qnnfab.sim.build import to_verilog
from qnnfab.sim.lint import lint

CASES = [(name, params) for name, reg in registry.regressions().items() for params in reg.cases]


@pytest.mark.parametrize("name,params", CASES,
                         ids=[f"{n}[{registry.case_id(p)}]" for n, p in CASES])
def test_verilog_lints_clean(name, params):
    design = registry.get(name).design(params)
    problems, _ = lint(to_verilog(design, name), name)
    assert not problems, "\n".join(f"{c}: {m}" for c, m in problems)


def test_lint_reports_a_real_problem():
    # a hand-written truncating assignment must be flagged
    text = ("module t(input [3:0] a, output [1:0] y);\n"
            "  assign y = a;\n"
            "endmodule\n")
    problems, _ = lint(text, "t")
    assert any(code == "WIDTHTRUNC" for code, _ in problems)


def test_only_amaranths_idioms_count_as_benign():
    from qnnfab.sim.lint import _benign
    assert _benign("WIDTHTRUNC", "Operator ASSIGNW expects 8 bits on the Assign RHS, but Assign RHS's SHIFTR "
                                 "generates 16 bits.")
    assert _benign("WIDTHTRUNC", "Logical operator LOGNOT expects 1 bit on the LHS")
    assert _benign("SYMRSVDWORD", "Symbol matches C++ common word: 'interrupt'")
    assert not _benign("WIDTHTRUNC", "Operator ASSIGNW expects 8 bits on the Assign RHS, but Assign RHS's ADD "
                                     "generates 9 bits.")
    assert not _benign("LATCH", "Latch inferred for signal")


def test_a_design_with_xilinx_cells_is_linted_with_their_models_and_its_own_problems_still_count():
    # the cells' models (Yosys' cells_sim.v) are waived; the design's truncation is not
    text = ("module t(input [3:0] a, output [1:0] y, output o6, output o5);\n"
            "  assign y = a;\n"
            "  LUT6_2 #(.INIT(64'h1)) l (.I0(a[0]), .I1(a[1]), .I2(1'b0), .I3(1'b0), .I4(1'b0), .I5(1'b1),\n"
            "    .O6(o6), .O5(o5));\n"
            "endmodule\n")
    problems, _ = lint(text, "t")
    assert [code for code, _ in problems] == ["WIDTHTRUNC"], problems

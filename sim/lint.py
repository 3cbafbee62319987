"""``verilator --lint-only -Wall`` on generated Verilog, with Amaranth's idioms sorted out.

Amaranth's Verilog backend produces a few warning classes by construction that
do not point at real problems:

* ``PROCASSINIT``: registers get their reset value as a declaration initialiser
  *and* are written in the clocked process (that is how Amaranth expresses
  ``init=``);
* ``UNUSEDSIGNAL`` / ``UNUSEDPARAM``: named debug aliases such as
  ``\\i__payload.w`` for struct fields, kept for waveforms;
* ``DECLFILENAME``: the file name differs from the module name;
* ``WIDTHEXPAND``: operands zero/sign-extended to the result width, exactly as
  Amaranth's arithmetic rules specify;
* ``WIDTHTRUNC`` on a logical NOT: Amaranth writes ``x == 0`` as ``!x`` for a
  multi-bit ``x`` (a reduction, not a truncation);
* ``WIDTHTRUNC`` of a right shift assigned to a narrower signal: Amaranth writes
  a variable part-select (``word_select``/``bit_select`` with a signal offset) as
  ``wide >> offset`` assigned to a signal of the part's width;
* ``SYMRSVDWORD``: a port named after a C++ word (the overlay's ``interrupt``,
  the name Vivado's block design expects); Verilator renames it in its C++;
* ``ASCRANGE`` of ``[-1:0]``: a zero-width signal (``Signal(range(1))``),
  which Amaranth declares but never reads as a value;
* ``CASEINCOMPLETE``: every combinational ``always @*`` block Amaranth writes
  first assigns the signal's default, then the ``case``, so a value without a
  case arm keeps that default (no latch; ``LATCH`` stays a problem).

Everything else (other ``WIDTHTRUNC``, ``LATCH``, ``MULTIDRIVEN``,
``UNOPTFLAT`` combinational loops, ...) is reported as a problem.

A design that instantiates Xilinx cells (``LUT6_2``, ``CARRY4``) is linted with
the cells' models every simulator build adds (:func:`qnnfab.sim.build.cell_models`,
Yosys' own) in a file of their own, whose warnings (its ``specify`` blocks) are
waived by a Verilator configuration file for that file only.
"""

import re
import subprocess
import tempfile
from pathlib import Path

from .build import cell_models
from .toolchain import setup_verilator

__all__ = ["lint", "BENIGN"]

BENIGN = frozenset({"PROCASSINIT", "UNUSEDSIGNAL", "UNUSEDPARAM", "DECLFILENAME", "WIDTHEXPAND",
                    "CASEINCOMPLETE", "SYMRSVDWORD"})

_WARN = re.compile(r"^%(Warning|Error)-?([A-Z0-9_]*): (.*)$")


def _benign(code, msg):
    if code in BENIGN:
        return True
    if code == "WIDTHTRUNC" and "Logical operator LOGNOT" in msg:
        return True
    if code == "WIDTHTRUNC" and "Assign RHS's SHIFTR generates" in msg:
        return True
    if code == "ASCRANGE" and "[-1:0]" in msg:
        return True
    return False


def lint(verilog_text, top):
    """Lint Verilog text; return ``(problems, benign)`` lists of ``(code, message)``."""
    root = setup_verilator()
    with tempfile.TemporaryDirectory(prefix="qnnfab-lint-") as tmp:
        path = Path(tmp) / f"{top}.v"
        path.write_text(verilog_text)
        library = []
        models = cell_models(verilog_text)
        if models:
            (Path(tmp) / "xilinx_cells.v").write_text(models)
            (Path(tmp) / "xilinx_cells.vlt").write_text("`verilator_config\nlint_off -file \"*/xilinx_cells.v\"\n"
                                                         "lint_off -rule SPECIFYIGN -file \"*/xilinx_cells.v\"\n")
            library = [str(Path(tmp) / "xilinx_cells.vlt"), str(Path(tmp) / "xilinx_cells.v")]
        proc = subprocess.run([str(root / "bin" / "verilator"), "--lint-only", "-Wall",
                               "--top-module", top, *library, str(path)],
                              capture_output=True, text=True)
    problems, benign = [], []
    for line in proc.stderr.splitlines():
        m = _WARN.match(line)
        if not m:
            continue
        kind, code, msg = m.groups()
        if not code and msg.startswith("Exiting due to"):
            continue
        entry = (code or kind.upper(), msg.replace(str(path), f"{top}.v"))
        (benign if _benign(code, msg) else problems).append(entry)
    if proc.returncode != 0 and not problems and not benign:
        problems.append(("ERROR", proc.stderr.strip()[-2000:]))
    return problems, benign

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
  Amaranth's arithmetic rules specify.

Everything else (``WIDTHTRUNC``, ``LATCH``, ``MULTIDRIVEN``, ``UNOPTFLAT``
combinational loops, ``CASEINCOMPLETE``, ...) is reported as a problem.
"""

import re
import subprocess
import tempfile
from pathlib import Path

from .toolchain import setup_verilator

__all__ = ["lint", "BENIGN"]

BENIGN = frozenset({"PROCASSINIT", "UNUSEDSIGNAL", "UNUSEDPARAM", "DECLFILENAME", "WIDTHEXPAND"})

_WARN = re.compile(r"^%(Warning|Error)-?([A-Z0-9_]*): (.*)$")


def lint(verilog_text, top):
    """Lint Verilog text; return ``(problems, benign)`` lists of ``(code, message)``."""
    root = setup_verilator()
    with tempfile.TemporaryDirectory(prefix="qnnfab-lint-") as tmp:
        path = Path(tmp) / f"{top}.v"
        path.write_text(verilog_text)
        proc = subprocess.run([str(root / "bin" / "verilator"), "--lint-only", "-Wall",
                               "--top-module", top, str(path)],
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
        (benign if code in BENIGN else problems).append(entry)
    if proc.returncode != 0 and not problems and not benign:
        problems.append(("ERROR", proc.stderr.strip()[-2000:]))
    return problems, benign

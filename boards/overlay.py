"""The overlay's generated files: the shell's Verilog and the driver folder.

* :func:`overlay_verilog`: Verilog text of :class:`qnnfab.rtl.overlay.OverlayShell`
  under the module name :func:`overlay_name` (CONTRACTS section 2).
* :func:`driver_modules`: ``{file name: text}`` of the driver and the
  dependency-free modules it imports, copied verbatim next to every overlay's
  bitstream (the network's and the GEMM engine's): ``driver.py``
  (:mod:`qnnfab.boards.driver`), ``qnnfab_overlay_map.py``
  (:mod:`qnnfab.overlay_map`), ``qnnfab_packing.py`` (:mod:`qnnfab.packing`)
  and ``qnnfab_weights_image.py`` (:mod:`qnnfab.rtl.weights_image`: the
  weights image header the driver checks).
* :func:`driver_files`: those and ``network.json`` (the network's buffer formats).
"""

import json
from pathlib import Path

from .plan import accelerator_name

__all__ = ["overlay_name", "overlay_shell", "overlay_verilog", "driver_modules", "driver_files", "write_driver"]

DATA_WIDTHS = (32, 64, 128)


def overlay_name(cfg):
    """Verilog module name of ``cfg``'s overlay shell."""
    return f"{accelerator_name(cfg)}_overlay"


def overlay_shell(cfg, data_width=64):
    """The shell component (checks ``data_width`` with a clear error)."""
    from qnnfab.errors import ConfigError
    from qnnfab.rtl.overlay import OverlayShell
    if data_width not in DATA_WIDTHS:
        raise ConfigError("overlay", "data_width", f"AXI data width {data_width!r} is not supported",
                          f"use one of {DATA_WIDTHS} (64 matches the Zynq HP ports)")
    return OverlayShell(cfg, data_width)


def overlay_verilog(cfg, data_width=64):
    """``(module name, Verilog text)`` of ``cfg``'s overlay shell."""
    from amaranth.back import verilog
    name = overlay_name(cfg)
    return name, verilog.convert(overlay_shell(cfg, data_width), name=name, emit_src=False)


def driver_modules():
    """``{file name: text}`` of ``driver.py`` and the modules it imports on a board without qnnfab
    (each under the name its ``except ImportError`` branch imports)."""
    from qnnfab import overlay_map, packing
    from qnnfab.rtl import weights_image
    from . import driver
    return {
        "driver.py": Path(driver.__file__).read_text(),
        "qnnfab_overlay_map.py": Path(overlay_map.__file__).read_text(),
        "qnnfab_packing.py": Path(packing.__file__).read_text(),
        "qnnfab_weights_image.py": Path(weights_image.__file__).read_text(),
    }


def driver_files(cfg, data_width=64, formats=None):
    """``{file name: text}`` of the driver folder for ``cfg``'s overlay: :func:`driver_modules` and
    ``network.json``."""
    if formats is None:
        formats = overlay_shell(cfg, data_width).formats
    return {**driver_modules(), "network.json": json.dumps(formats.to_dict(), indent=1) + "\n"}


def write_driver(cfg, out_dir, data_width=64):
    """Write :func:`driver_files` into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in driver_files(cfg, data_width).items():
        p = out / name
        p.write_text(text)
        paths.append(p)
    return paths

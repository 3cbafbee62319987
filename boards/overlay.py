"""The overlay's generated files: the shell's Verilog and the driver folder.

* :func:`overlay_verilog`: Verilog text of :class:`qnnfab.rtl.overlay.OverlayShell`
  under the module name :func:`overlay_name` (CONTRACTS section 2).
* :func:`driver_files`: ``{file name: text}`` of what goes next to the
  bitstream: ``driver.py`` (:mod:`qnnfab.boards.driver`, verbatim),
  ``qnnfab_overlay_map.py`` (:mod:`qnnfab.overlay_map`, verbatim),
  ``qnnfab_weights_image.py`` (:mod:`qnnfab.weights_image`, verbatim: the
  weights image header the driver checks) and ``network.json`` (the
  network's buffer formats).
"""

import json
from pathlib import Path

from qnnfab.plan import plan_of

from .plan import accelerator_name

__all__ = ["overlay_name", "overlay_shell", "overlay_verilog", "driver_files", "write_driver"]

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


def driver_files(cfg, data_width=64, formats=None):
    """``{file name: text}`` of the driver folder for ``cfg``'s overlay."""
    from qnnfab import overlay_map
    from qnnfab import weights_image
    from . import driver
    if formats is None:
        formats = plan_of(cfg).overlay_formats(data_width)
    return {
        "driver.py": Path(driver.__file__).read_text(),
        "qnnfab_overlay_map.py": Path(overlay_map.__file__).read_text(),
        "qnnfab_weights_image.py": Path(weights_image.__file__).read_text(),
        "network.json": json.dumps(formats.to_dict(), indent=1) + "\n",
    }


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

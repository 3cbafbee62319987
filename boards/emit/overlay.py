"""The PYNQ overlay folder (``overlay/`` of ``qnnfab generate``, the default ``--top overlay``).

The accelerator in its AXI shell (:class:`qnnfab.rtl.overlay.OverlayShell`,
ports: :func:`qnnfab.rtl.overlay.shell_ports`) under the module name
:func:`overlay_name`, the Vivado block design around the Zynq PS
(:mod:`qnnfab.boards.emit.vivado`: ``block_design.tcl``, ``build.sh``), the
driver files and a README (word formats, register map, build and run;
``templates/overlay_README.md``): :func:`write_overlay`.

:func:`driver_modules`: ``{file name: text}`` of the driver and the
dependency-free modules it imports, copied verbatim next to every overlay's
bitstream (the network's and the GEMM engine's): ``driver.py``
(:mod:`qnnfab.boards.onboard.driver`), ``qnnfab_overlay_map.py``
(:mod:`qnnfab.overlay_map`), ``qnnfab_packing.py`` (:mod:`qnnfab.packing`) and
``qnnfab_weights_image.py`` (:mod:`qnnfab.weights_image`: the weights image
header the driver checks). :func:`driver_files`: those and ``network.json``
(the network's buffer formats).
"""

import json
from dataclasses import dataclass
from pathlib import Path


from qnnfab import overlay_map, packing, weights_image
from qnnfab.boards.onboard import driver
from qnnfab.errors import ConfigError
from qnnfab.plan import plan_of, save_image
from qnnfab.rtl.overlay import OverlayShell
from qnnfab.sim.build import to_verilog

from .accelerator import accelerator_name, padding_notes
from .render import render
from .vivado import (CONTROL_BASE, IP_VLNV, SHELL_CELL, VIVADO_VERSIONS, BlockDesign, shell_ports,
                     write_vivado_project)

__all__ = ["DATA_WIDTHS", "RUNTIME_WEIGHTS_FILE", "overlay_name", "overlay_shell", "overlay_verilog",
           "driver_modules", "driver_files", "write_driver", "OverlayParts", "overlay_parts", "write_overlay", "overlay_readme"]

DATA_WIDTHS = (32, 64, 128)
#: the weights image in the overlay folder of a ``weights_mode = "runtime"`` network
RUNTIME_WEIGHTS_FILE = "weights.bin"


def overlay_name(cfg):
    """Verilog module name of ``cfg``'s overlay shell."""
    return f"{accelerator_name(cfg)}_overlay"


def overlay_shell(cfg, data_width=64):
    """The shell component (checks ``data_width`` with a clear error)."""
    if data_width not in DATA_WIDTHS:
        raise ConfigError("overlay", "data_width", f"AXI data width {data_width!r} is not supported",
                          f"use one of {DATA_WIDTHS} (64 matches the Zynq HP ports)")
    return OverlayShell(cfg, data_width)


def overlay_verilog(cfg, data_width=64):
    """``(module name, Verilog text)`` of ``cfg``'s overlay shell."""
    name = overlay_name(cfg)
    return name, to_verilog(overlay_shell(cfg, data_width), name)


def driver_modules():
    """``{file name: text}`` of ``driver.py`` and the modules it imports on a board without qnnfab
    (each under the name its ``except ImportError`` branch imports)."""
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
        formats = plan_of(cfg).overlay_formats(data_width)
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


@dataclass(frozen=True)
class OverlayParts:
    """What the overlay shell provides for the folder.

    ``shell_verilog``: Verilog text of module :func:`overlay_name`;
    ``driver_files``: ``{file name: text}`` of the driver folder;
    ``registers``: the register map (:data:`qnnfab.overlay_map.REGISTERS`);
    ``formats``: the DDR buffer formats (:class:`qnnfab.overlay_map.Formats`).
    """
    shell_verilog: str
    driver_files: dict
    registers: tuple
    formats: object


def overlay_parts(cfg, data_width=64):
    """The overlay shell's Verilog, driver files, register map and buffer formats
    (:mod:`qnnfab.overlay_map`) at AXI ``data_width``."""
    shell = overlay_shell(cfg, data_width)
    text = to_verilog(shell, overlay_name(cfg))
    return OverlayParts(shell_verilog=text, driver_files=driver_files(cfg, data_width, formats=shell.formats),
                        registers=tuple(overlay_map.REGISTERS), formats=shell.formats)


def write_overlay(cfg, board, clock_mhz, out_dir, data_width=64):
    """Write the PYNQ overlay folder for ``cfg`` on ``board`` (a platform class) at
    ``clock_mhz`` into ``out_dir``: the shell's Verilog (AXI ``data_width``), its
    IP Integrator view, the Vivado Tcl and ``build.sh``, the driver files and a
    README. Returns ``(BlockDesign, file names)``. Needs no Vivado."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = overlay_parts(cfg, data_width)
    project = accelerator_name(cfg)
    shell = overlay_name(cfg)
    ports = shell_ports(parts.shell_verilog, shell)
    bd = BlockDesign(project=project, board=board, clock_mhz=clock_mhz, shell_module=shell,
                     gmem_data_width=ports["m_axi_gmem_wdata"][1],
                     control_addr_width=ports["s_axi_control_awaddr"][1])
    (out / bd.sources[0]).write_text(parts.shell_verilog)
    files = [bd.sources[0]] + write_vivado_project(out, bd, parts.shell_verilog)
    for name, text in parts.driver_files.items():
        (out / name).write_text(text)
        files.append(name)
    if cfg.weights_mode == "runtime":
        save_image(cfg, out / RUNTIME_WEIGHTS_FILE)
        files.append(RUNTIME_WEIGHTS_FILE)
    (out / "README.md").write_text(overlay_readme(cfg, bd, parts))
    files.append("README.md")
    return bd, files


def _input_kind(fm):
    return {"bipolar": "1 bit (1 = +1, 0 = -1)", "uint": f"{fm.input_bits}-bit unsigned",
            "int": f"{fm.input_bits}-bit two's complement"}.get(fm.input_kind, fm.input_kind)


def overlay_readme(cfg, bd, parts):
    """README.md of the overlay folder: files, build, run, block design, formats, registers."""
    b = bd.board
    fm = parts.formats
    runtime = cfg.weights_mode == "runtime"
    copied = [f"| `{name}` | driver folder: copy it to the board with the bitstream |\n"
              for name in parts.driver_files]
    if runtime:
        copied.append(f"| `{RUNTIME_WEIGHTS_FILE}` | the network's weights image, loaded at run time |\n")
    to_copy = [f"{bd.project}.bit", f"{bd.project}.hwh", *parts.driver_files] + \
        ([RUNTIME_WEIGHTS_FILE] if runtime else [])
    runtime_weights = render(
        "overlay_README_runtime_weights.md", weights_file=RUNTIME_WEIGHTS_FILE,
        load_weights_bit=overlay_map.CTRL_LOAD_WEIGHTS.bit_length() - 1,
        wload_code=overlay_map.ERRORS["WLOAD"]) + "\n" if runtime else ""
    return render(
        "overlay_README.md", project=bd.project, board=b.board_name.upper(), network=cfg.name,
        n_layers=len(cfg.layers), topology_hash=f"{cfg.topology_hash():08x}", clock_mhz=f"{bd.clock_mhz:g}",
        identity_hash=f"{fm.identity_hash:08x}",
        identity_meaning=("runtime weights: the topology hash, so this bitstream runs any weights image of the "
                          "topology" if runtime else "constant weights: a hash of the topology and of these "
                          "weights and thresholds, so a bitstream of the same network with other weights is "
                          "refused too"),
        gmem_width=bd.gmem_data_width, shell_file=bd.sources[0], view_file=bd.sources[1],
        copied_file_rows="".join(copied), vivado_versions=VIVADO_VERSIONS, board_name=b.board_name,
        board_part=b.vivado_board_part, files_to_copy=", ".join(f"`{f}`" for f in to_copy),
        images_shape=", ".join(["N", *map(str, fm.input_shape)]), runtime_weights=runtime_weights,
        ps7_vlnv=IP_VLNV["ps7"], hp0_width=bd.hp0_data_width, reset_vlnv=IP_VLNV["reset"],
        ctrl_interconnect_vlnv=IP_VLNV["ctrl_interconnect"], mem_smartconnect_vlnv=IP_VLNV["mem_smartconnect"],
        shell_cell=SHELL_CELL, view_module=bd.view_module, control_base=f"{CONTROL_BASE:08X}",
        control_kib=bd.control_range // 1024, ddr_mib=b.ddr_bytes // 2**20,
        input_shape=" x ".join(str(d) for d in fm.input_shape) + padding_notes(cfg)[0], input_kind=_input_kind(fm),
        input_order="channel-last (NHWC) raster order" if len(fm.input_shape) == 3 else "index order",
        in_simd=fm.in_simd, in_words=fm.in_words, in_slot_bytes=fm.in_slot_bytes,
        in_frame_bytes=fm.in_frame_bytes, bus_bytes=fm.bus_bytes, n_scores=fm.n_scores, out_bits=fm.out_bits,
        out_sign=("two's complement" if fm.out_signed else "unsigned") + padding_notes(cfg)[1],
        out_elems=fm.out_elems,
        label_rule={"argmax": "the arg-max label, ties to the lowest index",
                    "highest_set_bit": "the label, the highest index whose output bit is 1 (0 when none "
                                       "is; label = \"highest_set_bit\")"}[fm.label_rule],
        out_words=fm.out_words, out_slot_bytes=fm.out_slot_bytes, out_record_bytes=fm.out_record_bytes,
        register_rows="\n".join(f"| 0x{r.offset:02X} | `{r.name}` | {r.access_text} | {r.doc} |"
                                for r in parts.registers))

"""Build plans for a board: the PYNQ overlay, the accelerator IP (AXI-Stream) and a self-test top.

``generate`` writes:

* ``overlay/`` (the default ``--top overlay``): the accelerator in its AXI
  shell (``<name>_overlay.v``), the Vivado block design around the Zynq PS
  (:mod:`qnnfab.boards.vivado`: ``block_design.tcl``, ``build.sh``), the Python
  driver and a README (word formats, register map, build and run): see
  :func:`write_overlay`.
* ``accel/<name>.v``: the network accelerator (:class:`qnnfab.rtl.dataflow.Dataflow`)
  with AXI-Stream style ports (``s_axis_*``, ``m_axis_*``, ``label``), to be
  instantiated in a Vivado block design next to the Zynq PS and an AXI DMA.
* ``plan/`` (``--top selftest``): Amaranth's Xilinx build plan for the board
  (Verilog, Tcl, constraints, ``build_top.sh``) of a *standalone self-test top*:
  ``--clock`` made by an MMCM from the board's 125 MHz oscillator, a frame
  generator (a 32-bit LFSR) feeding the accelerator
  back to back, the output always ready, the label of the last frame on the
  LEDs. It proves the design places, routes and meets
  timing on the part without the PS.
"""

from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

__all__ = ["SelfTestTop", "accelerator_name", "check_clock", "mmcm_settings", "write_build_plan",
           "write_accelerator", "write_overlay"]


def mmcm_settings(f_in_mhz, f_out_mhz):
    """The 7-series MMCM setting that makes ``f_out_mhz`` from ``f_in_mhz``, or the closest.

    Returns ``(DIVCLK_DIVIDE, CLKFBOUT_MULT_F, CLKOUT0_DIVIDE_F, achieved MHz)``
    within the -1 speed grade's limits (DS187: VCO 600-1200 MHz, phase detector
    10-450 MHz; UG472: multiplier 2-64 and output divider 2-128 in steps of
    1/8, or 1). Exact settings first, then the highest VCO (lowest jitter).
    """
    best = None
    for d in range(1, 107):
        pfd = f_in_mhz / d
        if pfd < 10:
            break
        if pfd > 450:
            continue
        for m8 in range(16, 513):
            vco = pfd * m8 / 8
            if not 600 <= vco <= 1200:
                continue
            o8 = round(vco * 8 / f_out_mhz)
            o8 = 8 if o8 < 12 else min(o8, 1024)   # divide by 1, or 2.000-128.000
            f = vco * 8 / o8
            key = (abs(f - f_out_mhz), -vco, d)
            if best is None or key < best[0]:
                best = (key, (d, m8 / 8, o8 / 8, f))
    return best[1]


#: FCLK_CLK0 range of the Zynq-7000 PS (DS187: PL clocks up to 250 MHz; 1000 MHz / (63 * 63) at least)
FCLK_MHZ = (0.26, 250.0)
#: highest global clock (BUFG) of the -1 speed grade (DS187)
BUFG_MAX_MHZ = 464.0


def check_clock(top, clock_mhz, board):
    """Raise :class:`ConfigError` (before anything is written) when the board cannot clock
    ``top`` ("overlay": FCLK_CLK0 of the PS; "selftest": an MMCM on the board's oscillator)
    at ``clock_mhz``."""
    from qnnfab.errors import ConfigError
    lo, hi = FCLK_MHZ
    if top == "overlay" and not lo <= clock_mhz <= hi:
        raise ConfigError("qnnfab generate", "--clock", f"{clock_mhz:g} MHz is outside the {lo:g}-{hi:g} MHz "
                          "the Zynq PS makes on FCLK_CLK0", "choose e.g. --clock 100")
    if top == "selftest":
        f_in = board().default_clk_frequency / 1e6
        achieved = mmcm_settings(f_in, clock_mhz)[3]
        if clock_mhz > BUFG_MAX_MHZ or abs(achieved - clock_mhz) > 1e-3 * clock_mhz:
            raise ConfigError("qnnfab generate", "--clock", f"an MMCM on the {f_in:g} MHz oscillator cannot make "
                              f"{clock_mhz:g} MHz for a global clock (closest {achieved:.6g} MHz, at most "
                              f"{BUFG_MAX_MHZ:g} MHz)", "choose e.g. --clock 100")


class SelfTestTop(Elaboratable):
    """Standalone board top: LFSR frames -> accelerator -> labels on the LEDs.

    On a platform, the accelerator runs at ``clock_mhz`` from an MMCM on the
    board's oscillator (Vivado derives that clock's constraint from the MMCM),
    held in reset until the MMCM locks. Without a platform, in the ``sync``
    domain as given.
    """

    def __init__(self, cfg, clock_mhz=None):
        self.cfg = cfg
        self.clock_mhz = clock_mhz

    def elaborate(self, platform):
        from amaranth.hdl import ClockDomain, Instance
        from amaranth.lib.cdc import ResetSynchronizer
        from qnnfab.rtl.dataflow import Dataflow

        m = Module()
        if platform is not None and self.clock_mhz is not None:
            f_in = platform.default_clk_frequency / 1e6
            d, mult, div, _ = mmcm_settings(f_in, self.clock_mhz)
            m.submodules.clk_in = clk_in = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
            feedback, clk_out, locked = Signal(), Signal(), Signal()
            m.submodules.mmcm = Instance(
                "MMCME2_BASE", p_CLKIN1_PERIOD=round(1000 / f_in, 3), p_DIVCLK_DIVIDE=d,
                p_CLKFBOUT_MULT_F=mult, p_CLKOUT0_DIVIDE_F=div,
                i_CLKIN1=clk_in.i, i_CLKFBIN=feedback, o_CLKFBOUT=feedback, o_CLKOUT0=clk_out,
                o_LOCKED=locked, i_RST=0, i_PWRDWN=0)
            m.domains.sync = sync = ClockDomain("sync")
            m.submodules.bufg = Instance("BUFG", i_I=clk_out, o_O=sync.clk)
            m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
        m.submodules.accel = accel = Dataflow(self.cfg)
        lfsr = Signal(32, init=1)
        with m.If(accel.s_axis_tready):
            fb = lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]
            m.d.sync += lfsr.eq((lfsr << 1) | fb)
        data = Signal(accel.in_width)
        reps = -(-accel.in_width // 32)
        m.d.comb += [
            data.eq(lfsr.replicate(reps)[:accel.in_width]),
            accel.s_axis_tdata.eq(data),
            accel.s_axis_tvalid.eq(1),
            accel.m_axis_tready.eq(1),
        ]
        label = Signal(4)
        with m.If(accel.label_valid):
            m.d.sync += label.eq(accel.label)
        if platform is not None:
            for k in range(4):
                m.submodules[f"led{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
                m.d.comb += led.o.eq(label[k])
        return m


def accelerator_name(cfg):
    """The Verilog module (and file) name of ``cfg``'s accelerator."""
    return "qnnfab_" + "".join(c if c.isalnum() else "_" for c in cfg.name)


def write_accelerator(cfg, out_dir):
    """Write the accelerator IP's Verilog (AXI-Stream ports) into ``out_dir``;
    return ``(module name, path)``."""
    from amaranth.back import verilog
    from qnnfab.rtl.dataflow import Dataflow

    name = accelerator_name(cfg)
    path = Path(out_dir) / f"{name}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(verilog.convert(Dataflow(cfg), name=name, emit_src=False))
    return name, path


def write_build_plan(cfg, platform_cls, out_dir, clock_mhz=100.0):
    """Write Amaranth's build plan (Vivado Tcl, XDC, Verilog, build script) of the
    self-test top at ``clock_mhz`` to ``out_dir``."""
    plat = platform_cls()
    plan = plat.build(SelfTestTop(cfg, clock_mhz), name="top", do_build=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan.extract(str(out))
    return sorted(p.name for p in out.iterdir())


# --------------------------------------------------------------------------- the overlay folder

@dataclass(frozen=True)
class OverlayParts:
    """What the overlay work provides for the folder (CONTRACTS section 2).

    ``shell_verilog``: Verilog text of module ``f"{accelerator_name(cfg)}_overlay"``;
    ``driver_file``/``driver_source``: the driver module's file name and text;
    ``register_map``: rows ``(offset, name, access, meaning)`` from the one
    register-map definition; ``stand_in``: True while these are not on main yet.
    """
    shell_verilog: str
    driver_file: str | None
    driver_source: str | None
    register_map: tuple
    stand_in: bool


def overlay_parts(cfg):
    """THE SEAM to the overlay shell, its driver and its register map.

    The AXI shell (``s_axi_control`` registers, ``m_axi_gmem`` DMA,
    ``interrupt``) and the driver are not on main yet. Until they are, this
    returns a stand-in: the bare accelerator's Verilog, no driver, no register
    map, and ``stand_in=True`` (the folder then says so and cannot be built).
    Replace the body with the overlay's functions; nothing else changes.
    """
    from amaranth.back import verilog
    from qnnfab.rtl.dataflow import Dataflow
    text = verilog.convert(Dataflow(cfg), name=f"{accelerator_name(cfg)}_overlay", emit_src=False)
    return OverlayParts(shell_verilog=text, driver_file=None, driver_source=None, register_map=(),
                        stand_in=True)


def write_overlay(cfg, board, clock_mhz, out_dir):
    """Write the PYNQ overlay folder for ``cfg`` on ``board`` (a platform class) at
    ``clock_mhz`` into ``out_dir``: shell Verilog, its IP Integrator view, the
    Vivado Tcl and ``build.sh``, the driver and a README. Returns
    ``(BlockDesign, file names, OverlayParts)``. Needs no Vivado."""
    from .vivado import BlockDesign, shell_ports, write_vivado_project
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = overlay_parts(cfg)
    project = accelerator_name(cfg)
    shell = f"{project}_overlay"
    ports = shell_ports(parts.shell_verilog, shell)
    gmem_width = ports.get("m_axi_gmem_wdata", ("output", 64))[1]
    addr_width = ports.get("s_axi_control_awaddr", ("input", 12))[1]
    bd = BlockDesign(project=project, board=board, clock_mhz=clock_mhz, shell_module=shell,
                     gmem_data_width=gmem_width, control_addr_width=addr_width)
    (out / bd.sources[0]).write_text(parts.shell_verilog)
    files = [bd.sources[0]]
    files += write_vivado_project(out, bd, None if parts.stand_in else parts.shell_verilog)
    if parts.driver_source is not None:
        (out / parts.driver_file).write_text(parts.driver_source)
        files.append(parts.driver_file)
    (out / "README.md").write_text(overlay_readme(cfg, bd, parts))
    files.append("README.md")
    return bd, files, parts


def _input_format(cfg):
    first = cfg.layers[0]
    kind = {"bipolar": "1 bit per element (1 = +1, 0 = -1)",
            "uint": f"{cfg.input_bits}-bit unsigned per element",
            "int": f"{cfg.input_bits}-bit two's complement per element"}.get(cfg.input_kind, cfg.input_kind)
    shape = " x ".join(str(d) for d in cfg.input_shape)
    order = "channel-last (NHWC) raster order" if len(cfg.input_shape) == 3 else "index order"
    return (f"{shape} elements, {kind}, in {order}; {first.simd} elements per input word "
            f"(element 0 in the least significant bits), {cfg.input_words()} words per frame")


def _output_format(cfg):
    last = cfg.layers[-1]
    return (f"{last.out} scores per frame (the last layer's raw accumulators, {last.pe} per output word, "
            f"score 0 in the least significant bits) and the arg-max label (ties to the lowest index)")


def overlay_readme(cfg, bd, parts):
    """README.md of the overlay folder: files, build, run, block design, formats, registers."""
    from .vivado import CONTROL_BASE, IP_VLNV, SHELL_CELL, VIVADO_VERSIONS
    b = bd.board
    driver = parts.driver_file
    module = driver[:-3] if driver else None
    lines = [f"# qnnfab overlay `{bd.project}` for {b.board_name.upper()}", "",
             f"Network `{cfg.name}` ({len(cfg.layers)} layers, topology hash "
             f"0x{cfg.topology_hash():08x}) in an AXI shell for the Zynq PS, "
             f"FCLK_CLK0 {bd.clock_mhz:g} MHz. Written by `qnnfab generate`; generate again rather "
             "than editing these files.", ""]
    if parts.stand_in:
        lines += ["**Not buildable yet**: the AXI shell and the driver are not part of this qnnfab "
                  f"version. `{bd.sources[0]}` holds the bare accelerator (AXI-Stream ports) under the "
                  "shell's name, and there is no driver; the Tcl and build script are complete "
                  "but expect the shell's ports.", ""]
    lines += ["| file | what it is |", "| --- | --- |",
              f"| `{bd.sources[0]}` | the accelerator in its AXI shell: AXI4-Lite registers "
              "(`s_axi_control`), AXI4 master to DDR (`m_axi_gmem`), `interrupt` |",
              f"| `{bd.sources[1]}` | the same ports with Vivado's interface attributes; the block "
              "design references this module |",
              "| `block_design.tcl` | Vivado project, block design, synthesis, implementation, bitstream |",
              "| `build.sh` | runs it: `vivado -mode batch -source block_design.tcl` |"]
    if driver:
        lines.append(f"| `{driver}` | the Python driver (numpy and `pynq` on the board) |")
    lines += [f"| `{bd.project}.bit`, `{bd.project}.hwh` | written by the build: bitstream and "
              "hardware handoff, side by side as `pynq.Overlay` needs them |",
              "| `timing_summary.rpt`, `utilization.rpt`, `vivado/` | written by the build |", "",
              f"## Build (Vivado {VIVADO_VERSIONS})", "",
              "```sh", "./build.sh", "```", "",
              f"Needs `vivado` on `PATH` and the {b.board_name} board files (board part "
              f"`{b.vivado_board_part}`): install them from Vivado's store, or set "
              "`QNNFAB_BOARD_FILES` to a folder that holds them. `QNNFAB_VIVADO_JOBS` sets the "
              "parallel runs (default 2). The script stops with a message when an IP version "
              f"is missing from the catalog, when the PS cannot make {bd.clock_mhz:g} MHz, or "
              "when timing is not met (setup or hold); only then does it copy the bitstream "
              "and the handoff here.", "",
              "## Run on the board", "",
              f"Copy `{bd.project}.bit`, `{bd.project}.hwh`"
              + (f" and `{driver}`" if driver else "") + " to the board (PYNQ image), then in Python:", "",
              "```python"]
    if module:
        lines += [f"from {module} import Accelerator",
                  f'acc = Accelerator("{bd.project}.bit")',
                  "labels = acc.classify(images)   # images: uint8/bool array, one frame per row"]
    else:
        lines.append("# the driver is not part of this folder yet (see above)")
    lines += ["```", "",
              "## Block design", "",
              "| cell | IP (VLNV) | role |", "| --- | --- | --- |",
              f"| `ps7` | `{IP_VLNV['ps7']}` | Zynq PS with the board preset; FCLK_CLK0 = "
              f"{bd.clock_mhz:g} MHz; M_AXI_GP0; S_AXI_HP0 ({bd.hp0_data_width}-bit); IRQ_F2P |",
              f"| `rst_fclk0` | `{IP_VLNV['reset']}` | resets synchronous to FCLK_CLK0 |",
              f"| `ctrl_interconnect` | `{IP_VLNV['ctrl_interconnect']}` | M_AXI_GP0 -> the shell's "
              "`s_axi_control` |",
              f"| `mem_smartconnect` | `{IP_VLNV['mem_smartconnect']}` | the shell's `m_axi_gmem` "
              f"({bd.gmem_data_width}-bit AXI4) -> S_AXI_HP0 (AXI3) |",
              f"| `{SHELL_CELL}` | module reference `{bd.view_module}` | the accelerator in its shell |", "",
              f"Addresses: the shell's registers at 0x{CONTROL_BASE:08X} (range "
              f"{bd.control_range // 1024} KiB) in the PS's GP0 window; the shell's master sees DDR "
              f"at 0x00000000 ({b.ddr_bytes // 2**20} MiB) through HP0. The interrupt drives "
              "IRQ_F2P[0] (PYNQ takes a single interrupt there without an interrupt controller).", "",
              "## Accelerator word formats", "",
              "The shell's DMA feeds the accelerator these words from the input buffer and writes "
              "its results to the output buffer; the driver packs images and unpacks scores.", "",
              f"* Input: {_input_format(cfg)}.",
              f"* Output: {_output_format(cfg)}.", ""]
    if parts.register_map:
        lines += ["## Register map", "",
                  f"Offsets from 0x{CONTROL_BASE:08X}; 32-bit registers.", "",
                  "| offset | name | access | meaning |", "| --- | --- | --- | --- |"]
        lines += [f"| 0x{off:03X} | `{name}` | {access} | {meaning} |"
                  for off, name, access, meaning in parts.register_map]
        lines.append("")
    lines += ["## What was checked without a board", "",
              "Checked by qnnfab's tests: the accelerator against the golden model on Verilator, "
              "and this Tcl's structure (cells and VLNVs, connections, address map, clock, board "
              "part) against the config. Only Vivado and a board show that Vivado accepts the "
              "Tcl, that the design closes timing at this clock, and that it runs from real DDR.", ""]
    return "\n".join(lines)

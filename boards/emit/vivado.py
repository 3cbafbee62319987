"""Vivado project for the PYNQ overlay: block design Tcl, ``build.sh`` and the IP Integrator view.

``qnnfab generate --board pynq-z1|pynq-z2`` writes, next to the overlay shell's
Verilog (``<name>_overlay``, ports: :func:`qnnfab.rtl.overlay.shell_ports`):

* ``<name>_overlay_bd.v``: the shell's ports unchanged, annotated with the
  ``X_INTERFACE_INFO`` / ``X_INTERFACE_PARAMETER`` attributes that Vivado's
  module reference flow needs to see ``ap_clk`` as the clock of both AXI
  interfaces, ``ap_rst_n`` as an active-low reset and ``interrupt`` as a
  level-high interrupt (UG994, "Inferring Control Signals in a RTL Module").
  The widths are read from the shell's Verilog, so the view cannot drift from it.
* ``block_design.tcl``: a project for the board part (board files), the block
  design ``top`` in FINN's ZynqBuild style: a ``processing_system7`` with the
  board preset, FCLK_CLK0 at ``--clock``, a ``proc_sys_reset``, M_AXI_GP0 ->
  ``axi_interconnect`` -> the shell's ``s_axi_control`` (at
  :data:`CONTROL_BASE`), the shell's ``m_axi_gmem`` -> ``smartconnect`` ->
  S_AXI_HP0 (AXI4 to AXI3, data width to the HP port's), ``interrupt`` ->
  IRQ_F2P[0] (PYNQ takes a single interrupt there without an AXI interrupt
  controller); then synthesis, implementation and ``write_bitstream``, with
  checks that stop the build (with a message) when an IP version is missing,
  the PS cannot make the requested clock, or timing is not met; finally
  ``<name>.bit`` and the ``<name>.hwh`` handoff side by side, as
  ``pynq.Overlay`` expects them.
* ``build.sh``: ``vivado -mode batch -source block_design.tcl``.

Every Vivado IP is named by its full VLNV (:data:`IP_VLNV`). These versions
are the ones Vivado 2022.1 to 2024.2 ship (processing_system7 5.5,
proc_sys_reset 5.0, axi_interconnect 2.1 and smartconnect 1.0 have not changed
version in those releases; PYNQ 3.0 builds its overlays with 2022.1, FINN with
2022.2). No Vivado runs here: the Tcl's structure is checked by
``tests/test_vivado.py``, its acceptance by Vivado only on a machine with Vivado.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from qnnfab.errors import QnnfabError

__all__ = ["IP_VLNV", "VIVADO_VERSIONS", "CONTROL_BASE", "SHELL_CELL", "BlockDesign",
           "block_design_tcl", "build_script", "shell_ports", "ipi_view_verilog", "write_vivado_project"]

#: Vivado releases the Tcl is written for (the IP versions below exist in all of them)
VIVADO_VERSIONS = "2022.1 - 2024.2"

#: Every IP of the block design, by full VLNV
IP_VLNV = {
    "ps7": "xilinx.com:ip:processing_system7:5.5",
    "reset": "xilinx.com:ip:proc_sys_reset:5.0",
    "ctrl_interconnect": "xilinx.com:ip:axi_interconnect:2.1",
    "mem_smartconnect": "xilinx.com:ip:smartconnect:1.0",
}

#: Address of the shell's register block in the PS's GP0 window (PYNQ's usual base)
CONTROL_BASE = 0x4000_0000

#: Block design cell of the shell: its name in the ``.hwh`` and in ``pynq.Overlay().ip_dict``
SHELL_CELL = "qnnfab"

#: Block design name (its wrapper is ``top_wrapper``, its handoff ``top.hwh``)
BD_NAME = "top"

# the shell's ports (qnnfab.rtl.overlay.shell_ports), by interface
CLOCK, RESET, INTERRUPT = "ap_clk", "ap_rst_n", "interrupt"
CONTROL_PREFIX, GMEM_PREFIX = "s_axi_control_", "m_axi_gmem_"
CONTROL_PORTS = ("awaddr awvalid awready wdata wstrb wvalid wready bresp bvalid bready "
                 "araddr arvalid arready rdata rresp rvalid rready").split()
GMEM_PORTS = ("awid awaddr awlen awsize awburst awlock awcache awprot awvalid awready "
              "wdata wstrb wlast wvalid wready bid bresp bvalid bready "
              "arid araddr arlen arsize arburst arlock arcache arprot arvalid arready "
              "rid rdata rresp rlast rvalid rready").split()


@dataclass(frozen=True)
class BlockDesign:
    """What the block design needs to know.

    ``project``: Vivado project name and base name of ``.bit``/``.hwh``;
    ``board``: a platform class of :data:`qnnfab.boards.targets.BOARDS`; ``clock_mhz``:
    FCLK_CLK0, the one clock of the PL design; ``shell_module``: the shell's
    Verilog module; ``gmem_data_width``: the shell's AXI4 master data width (32, 64 or 128);
    ``control_addr_width``: its AXI4-Lite address width (12 = 4 KiB).
    """
    project: str
    board: type
    clock_mhz: float
    shell_module: str
    gmem_data_width: int = 64
    control_addr_width: int = 12

    @property
    def view_module(self):
        """The module the block design references: the shell with interface attributes."""
        return f"{self.shell_module}_bd"

    @property
    def sources(self):
        """Verilog files next to the Tcl: the shell and its IP Integrator view."""
        return (f"{self.shell_module}.v", f"{self.view_module}.v")

    @property
    def control_range(self):
        """Bytes of the control window: the register block, at least the PS's 4 KiB minimum."""
        return max(2 ** self.control_addr_width, 4096)

    @property
    def hp0_data_width(self):
        """S_AXI_HP0 width: 32 or 64 (a 128-bit master is narrowed by the smartconnect)."""
        return 32 if self.gmem_data_width == 32 else 64


def _size(n):
    """Vivado's range notation: 4096 -> 4K, 512 MiB -> 512M."""
    for unit, scale in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def _mhz(f):
    return f"{f:.6g}"


def block_design_tcl(bd):
    """The Tcl script (text) that builds ``bd`` with ``vivado -mode batch -source``."""
    b = bd.board
    part = f"{b.device}{b.package}-{b.speed}"
    ps7, rst, ctrl, mem, shell = "ps7", "rst_fclk0", "ctrl_interconnect", "mem_smartconnect", SHELL_CELL
    bit, hwh = f"{bd.project}.bit", f"{bd.project}.hwh"
    vlnvs = " ".join(IP_VLNV.values())
    sources = " ".join(f"[file join $script_dir {s}]" for s in bd.sources)
    clk_hz = round(bd.clock_mhz * 1e6)
    ps7_config = {
        "PCW_FPGA0_PERIPHERAL_FREQMHZ": _mhz(bd.clock_mhz),
        "PCW_EN_CLK0_PORT": "1",
        "PCW_EN_RST0_PORT": "1",
        "PCW_USE_M_AXI_GP0": "1",
        "PCW_USE_S_AXI_HP0": "1",
        "PCW_S_AXI_HP0_DATA_WIDTH": str(bd.hp0_data_width),
        "PCW_USE_FABRIC_INTERRUPT": "1",
        "PCW_IRQ_F2P_INTR": "1",
    }
    ps7_dict = " ".join(f"CONFIG.{k} {{{v}}}" for k, v in ps7_config.items())
    clock_pins = [f"{ps7}/FCLK_CLK0", f"{ps7}/M_AXI_GP0_ACLK", f"{ps7}/S_AXI_HP0_ACLK",
                  f"{rst}/slowest_sync_clk", f"{ctrl}/ACLK", f"{ctrl}/S00_ACLK", f"{ctrl}/M00_ACLK",
                  f"{mem}/aclk", f"{shell}/{CLOCK}"]
    interconnect_resets = [f"{rst}/interconnect_aresetn", f"{ctrl}/ARESETN", f"{mem}/aresetn"]
    peripheral_resets = [f"{rst}/peripheral_aresetn", f"{ctrl}/S00_ARESETN", f"{ctrl}/M00_ARESETN",
                         f"{shell}/{RESET}"]

    def pins(names):
        return " ".join(f"[get_bd_pins {n}]" for n in names)

    return f"""\
# qnnfab PYNQ overlay '{bd.project}' for {b.board_name} ({part}), FCLK_CLK0 {_mhz(bd.clock_mhz)} MHz.
# Written by `qnnfab generate`; edit the network config and generate again rather than this file.
# For Vivado {VIVADO_VERSIONS}. Run it with ./build.sh (vivado -mode batch -source block_design.tcl);
# it writes {bit} and {hwh} next to itself, and timing/utilization reports.
# Environment: QNNFAB_BOARD_FILES = a folder of Vivado board files (when the {b.board_name} board
# files are not installed in Vivado), QNNFAB_VIVADO_JOBS = parallel runs (default 2).

set script_dir [file dirname [file normalize [info script]]]
set jobs 2
if {{[info exists ::env(QNNFAB_VIVADO_JOBS)]}} {{ set jobs $::env(QNNFAB_VIVADO_JOBS) }}
puts "qnnfab: Vivado [version -short], written for {VIVADO_VERSIONS}"

# ---------------------------------------------------------------- project and board part
if {{[info exists ::env(QNNFAB_BOARD_FILES)]}} {{
    set_param board.repoPaths [concat [get_param board.repoPaths] [list $::env(QNNFAB_BOARD_FILES)]]
}}
create_project -force {bd.project} [file join $script_dir vivado] -part {part}
if {{[llength [get_board_parts -quiet {b.vivado_board_part}]] == 0}} {{
    error "qnnfab: board part {b.vivado_board_part} not found: install the {b.board_name} board files (Vivado Store, Boards tab) or set QNNFAB_BOARD_FILES to a folder that holds them"
}}
set_property board_part {b.vivado_board_part} [current_project]
set missing {{}}
foreach vlnv {{{vlnvs}}} {{
    if {{[llength [get_ipdefs -all $vlnv]] == 0}} {{ lappend missing $vlnv }}
}}
if {{[llength $missing] > 0}} {{
    error "qnnfab: IP not in this Vivado's catalog: $missing (the script is written for Vivado {VIVADO_VERSIONS})"
}}
add_files -norecurse [list {sources}]
update_compile_order -fileset sources_1

# ---------------------------------------------------------------- block design
create_bd_design {BD_NAME}
create_bd_cell -type ip -vlnv {IP_VLNV["ps7"]} {ps7}
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 -config {{make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"}} [get_bd_cells {ps7}]
set_property -dict [list {ps7_dict}] [get_bd_cells {ps7}]
create_bd_cell -type ip -vlnv {IP_VLNV["reset"]} {rst}
create_bd_cell -type ip -vlnv {IP_VLNV["ctrl_interconnect"]} {ctrl}
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}}] [get_bd_cells {ctrl}]
create_bd_cell -type ip -vlnv {IP_VLNV["mem_smartconnect"]} {mem}
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}}] [get_bd_cells {mem}]
create_bd_cell -type module -reference {bd.view_module} {shell}

# one clock (FCLK_CLK0) and its synchronized resets for everything
connect_bd_net {pins(clock_pins)}
connect_bd_net [get_bd_pins {ps7}/FCLK_RESET0_N] [get_bd_pins {rst}/ext_reset_in]
connect_bd_net {pins(interconnect_resets)}
connect_bd_net {pins(peripheral_resets)}

# control: PS GP0 -> interconnect -> shell registers; data: shell master -> smartconnect -> HP0 (DDR)
connect_bd_intf_net [get_bd_intf_pins {ps7}/M_AXI_GP0] [get_bd_intf_pins {ctrl}/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins {ctrl}/M00_AXI] [get_bd_intf_pins {shell}/s_axi_control]
connect_bd_intf_net [get_bd_intf_pins {shell}/m_axi_gmem] [get_bd_intf_pins {mem}/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins {mem}/M00_AXI] [get_bd_intf_pins {ps7}/S_AXI_HP0]
connect_bd_net [get_bd_pins {shell}/{INTERRUPT}] [get_bd_pins {ps7}/IRQ_F2P]

# address map: the registers in the GP0 window, all of DDR for the shell's master
assign_bd_address -offset 0x{CONTROL_BASE:08X} -range {_size(bd.control_range)} -target_address_space [get_bd_addr_spaces {ps7}/Data] [get_bd_addr_segs {shell}/s_axi_control/*] -force
assign_bd_address -offset 0x00000000 -range {_size(b.ddr_bytes)} -target_address_space [get_bd_addr_spaces {shell}/m_axi_gmem] [get_bd_addr_segs {ps7}/S_AXI_HP0/HP0_DDR_LOWOCM] -force
validate_bd_design
set fclk0 [get_property CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ [get_bd_cells {ps7}]]
if {{abs($fclk0 - {_mhz(bd.clock_mhz)}) > {_mhz(bd.clock_mhz * 0.01)}}} {{
    error "qnnfab: the PS makes FCLK_CLK0 $fclk0 MHz, not the requested {_mhz(bd.clock_mhz)} MHz: generate again with a --clock its PLL divides to (1000 MHz / n: 100, 125, 142.857, 166.667, 200)"
}}
save_bd_design
make_wrapper -files [get_files {BD_NAME}.bd] -top -import
set_property top {BD_NAME}_wrapper [current_fileset]
update_compile_order -fileset sources_1

# ---------------------------------------------------------------- synthesis, implementation, bitstream
launch_runs impl_1 -to_step write_bitstream -jobs $jobs
wait_on_run impl_1
if {{[get_property PROGRESS [get_runs impl_1]] ne "100%"}} {{
    error "qnnfab: implementation did not finish: see [get_property DIRECTORY [get_runs impl_1]]/runme.log"
}}
open_run impl_1
report_timing_summary -file [file join $script_dir timing_summary.rpt]
report_utilization -file [file join $script_dir utilization.rpt]
set setup_slack [get_property SLACK [get_timing_paths -delay_type max]]
set hold_slack [get_property SLACK [get_timing_paths -delay_type min]]
if {{$setup_slack < 0 || $hold_slack < 0}} {{
    error "qnnfab: timing not met at {_mhz(bd.clock_mhz)} MHz (setup slack $setup_slack ns, hold slack $hold_slack ns; timing_summary.rpt): generate with a lower --clock or pipeline = 2 in the config"
}}
file copy -force [file join [get_property DIRECTORY [get_runs impl_1]] {BD_NAME}_wrapper.bit] [file join $script_dir {bit}]
set handoff [glob -nocomplain [file join $script_dir vivado {bd.project}.gen sources_1 bd {BD_NAME} hw_handoff {BD_NAME}.hwh] [file join $script_dir vivado {bd.project}.srcs sources_1 bd {BD_NAME} hw_handoff {BD_NAME}.hwh]]
if {{[llength $handoff] == 0}} {{
    error "qnnfab: no {BD_NAME}.hwh handoff under [file join $script_dir vivado]"
}}
file copy -force [lindex $handoff 0] [file join $script_dir {hwh}]
puts "qnnfab: wrote {bit} and {hwh} ({clk_hz} Hz, setup slack $setup_slack ns) in $script_dir"
"""


def build_script(bd):
    """``build.sh``: run the Tcl with Vivado in batch mode from the script's folder."""
    return f"""\
#!/bin/sh
# Build the qnnfab overlay '{bd.project}' for {bd.board.board_name} with Vivado {VIVADO_VERSIONS}:
# writes {bd.project}.bit and {bd.project}.hwh next to this script (project in ./vivado).
set -e
cd "$(dirname "$0")"
if ! command -v vivado >/dev/null 2>&1; then
    echo "build.sh: vivado not found on PATH: source <Vivado install>/settings64.sh first" >&2
    exit 2
fi
exec vivado -mode batch -nojournal -log vivado.log -source block_design.tcl
"""


_PORT_DECL = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s+)?(\w+)\s*;", re.M)


def shell_ports(verilog, module):
    """``{port: (direction, width)}`` of ``module`` in Verilog text (as Amaranth writes it)."""
    m = re.search(rf"^module\s+\\?{re.escape(module)}\s*\(", verilog, re.M)
    if m is None:
        raise QnnfabError(f"no module {module!r} in the overlay shell's Verilog")
    body = verilog[m.end():verilog.index("endmodule", m.end())]
    return {name: (d, int(hi) - int(lo) + 1 if hi else 1) for d, hi, lo, name in _PORT_DECL.findall(body)}


def _port_interface(name):
    """(interface attributes, logical name) of a contract port, or None if it is not one."""
    if name.startswith(CONTROL_PREFIX) and name[len(CONTROL_PREFIX):] in CONTROL_PORTS:
        return "s_axi_control", name[len(CONTROL_PREFIX):].upper()
    if name.startswith(GMEM_PREFIX) and name[len(GMEM_PREFIX):] in GMEM_PORTS:
        return "m_axi_gmem", name[len(GMEM_PREFIX):].upper()
    return None


def ipi_view_verilog(verilog, module, clock_mhz):
    """The IP Integrator view ``<module>_bd`` of the shell ``module`` (Verilog text).

    Same ports as the shell (read from ``verilog``), each annotated for the
    module reference flow, and an instance of the shell. Raises
    :class:`QnnfabError` when the shell lacks one of the shell ports
    (:func:`qnnfab.rtl.overlay.shell_ports`) or has an input outside them (it would be left unconnected in the block design).
    """
    ports = shell_ports(verilog, module)
    required = [CLOCK, RESET, INTERRUPT] + [CONTROL_PREFIX + p for p in CONTROL_PORTS] + \
        [GMEM_PREFIX + p for p in GMEM_PORTS]
    missing = [p for p in required if p not in ports]
    if missing:
        raise QnnfabError(f"the overlay shell {module} lacks the ports {', '.join(missing)} "
                          "(qnnfab.rtl.overlay.shell_ports lists them)")
    stray = [p for p, (d, _) in ports.items() if d != "output" and p not in required]
    if stray:
        raise QnnfabError(f"the overlay shell {module} has inputs outside the shell ports that the "
                          f"block design would leave unconnected: {', '.join(stray)}")
    params = {
        CLOCK: ("xilinx.com:signal:clock:1.0 ap_clk CLK",
                f"ASSOCIATED_BUSIF s_axi_control:m_axi_gmem, ASSOCIATED_RESET {RESET}, "
                f"FREQ_HZ {round(clock_mhz * 1e6)}, FREQ_TOLERANCE_HZ -1"),
        RESET: ("xilinx.com:signal:reset:1.0 ap_rst_n RST", "POLARITY ACTIVE_LOW"),
        INTERRUPT: ("xilinx.com:signal:interrupt:1.0 interrupt INTERRUPT", "SENSITIVITY LEVEL_HIGH"),
    }
    first_of = {
        "s_axi_control": (f"XIL_INTERFACENAME s_axi_control, PROTOCOL AXI4LITE, DATA_WIDTH "
                          f"{ports[CONTROL_PREFIX + 'wdata'][1]}, ADDR_WIDTH {ports[CONTROL_PREFIX + 'awaddr'][1]}"),
        "m_axi_gmem": (f"XIL_INTERFACENAME m_axi_gmem, PROTOCOL AXI4, DATA_WIDTH "
                       f"{ports[GMEM_PREFIX + 'wdata'][1]}, ADDR_WIDTH {ports[GMEM_PREFIX + 'awaddr'][1]}, "
                       f"ID_WIDTH {ports[GMEM_PREFIX + 'awid'][1]}"),
    }
    decls = []
    for name, (direction, width) in ports.items():
        attrs = []
        if name in params:
            info, param = params[name]
            attrs = [f'(* X_INTERFACE_INFO = "{info}" *)', f'(* X_INTERFACE_PARAMETER = "{param}" *)']
        elif (iface := _port_interface(name)) is not None:
            bus, logical = iface
            attrs = [f'(* X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 {bus} {logical}" *)']
            if bus in first_of:
                attrs.append(f'(* X_INTERFACE_PARAMETER = "{first_of.pop(bus)}" *)')
        rng = f"[{width - 1}:0] " if width > 1 else ""
        decls.append("".join(f"  {a}\n" for a in attrs) + f"  {direction} wire {rng}{name}")
    conns = ",\n".join(f"    .{p}({p})" for p in ports)
    return (f"// IP Integrator view of {module}: the same ports, with the interface attributes of\n"
            f"// Vivado's module reference flow (UG994). Written by qnnfab generate.\n"
            f"module {module}_bd (\n" + ",\n".join(decls) + "\n);\n"
            f"  {module} shell (\n{conns}\n  );\nendmodule\n")


def write_vivado_project(out_dir, bd, shell_verilog):
    """Write the IP Integrator view of ``shell_verilog`` (skipped when None),
    ``block_design.tcl`` and ``build.sh`` into ``out_dir``, the folder of the
    shell's Verilog (``bd.sources[0]``); return the file names written."""
    out = Path(out_dir)
    written = []
    if shell_verilog is not None:
        view = bd.sources[1]
        (out / view).write_text(ipi_view_verilog(shell_verilog, bd.shell_module, bd.clock_mhz))
        written.append(view)
    (out / "block_design.tcl").write_text(block_design_tcl(bd))
    sh = out / "build.sh"
    sh.write_text(build_script(bd))
    sh.chmod(0o755)
    return written + ["block_design.tcl", "build.sh"]

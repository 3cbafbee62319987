"""The Vivado project of the PYNQ overlay (qnnfab.boards.emit.vivado), checked without Vivado.

The Tcl is split into commands and words (Tcl's own rules: braces, quotes,
brackets, backslash-newline) and its structure compared with what the block
design must be, for both boards and two clocks: the board part, every cell and
its VLNV, the interface connections and nets, the address map, the clock. The
expected values are written here from the Zynq/PYNQ facts, not read from the
generator. When Python has Tk's Tcl interpreter, the script also runs there
with Vivado's commands recorded by stubs, so its own checks (clock the PS
makes, timing, handoff) are exercised. ``generate`` writes the folder on a
machine without Vivado.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

from qnnfab import netconfig
from qnnfab.boards.targets import BOARDS
from qnnfab.boards.emit.accelerator import accelerator_name
from qnnfab.boards.emit.vivado import BlockDesign, block_design_tcl, build_script, ipi_view_verilog, shell_ports
from qnnfab.cli import main
from qnnfab.errors import QnnfabError

ROOT = Path(__file__).resolve().parents[1]
LFC_SMALL = str(ROOT / "configs" / "lfc_small.toml")

BOARD_PARTS = {"pynq-z1": "www.digilentinc.com:pynq-z1:part0:1.0", "pynq-z2": "tul.com.tw:pynq-z2:part0:1.0"}
VLNV = re.compile(r"^[\w.-]+:[\w.-]+:[\w.-]+:\d+\.\d+$")


# --------------------------------------------------------------------------- Tcl words

def tcl_words(command):
    """Split one Tcl command into words; braces and quotes removed, [..] kept as text."""
    words, i, n = [], 0, len(command)
    while i < n:
        while i < n and command[i] in " \t":
            i += 1
        if i >= n:
            break
        if command[i] == "{":
            depth, j = 0, i
            while True:
                c = command[j]
                if c == "\\":
                    j += 2
                    continue
                depth += (c == "{") - (c == "}")
                j += 1
                if depth == 0:
                    break
            words.append(command[i + 1:j - 1])
            i = j
            continue
        j, word, quoted = i, [], command[i] == '"'
        if quoted:
            j += 1
        depth = 0
        while j < n:
            c = command[j]
            if c == "\\":
                word.append(command[j:j + 2])
                j += 2
                continue
            if c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
            elif depth == 0 and ((quoted and c == '"') or (not quoted and c in " \t")):
                break
            word.append(c)
            j += 1
        words.append("".join(word))
        i = j + 1 if quoted else j
    return words


def tcl_commands(text):
    """Top-level commands of a Tcl script as word lists (comments dropped)."""
    text = text.replace("\\\n", " ")
    cmds, cur, depth_b, depth_k, quoted = [], [], 0, 0, False
    for c in text:
        if c == "{" and not quoted:
            depth_b += 1
        elif c == "}" and not quoted:
            depth_b -= 1
        elif c == "[":
            depth_k += 1
        elif c == "]":
            depth_k -= 1
        elif c == '"' and depth_b == 0:
            quoted = not quoted
        if c in "\n;" and depth_b == 0 and depth_k == 0 and not quoted:
            cmds.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    cmds.append("".join(cur))
    assert depth_b == 0 and depth_k == 0 and not quoted, "unbalanced braces, brackets or quotes"
    return [tcl_words(c.strip()) for c in cmds if c.strip() and not c.strip().startswith("#")]


def bracket(word, command):
    """The arguments of ``[command a b]`` in ``word``."""
    w = tcl_words(word.strip()[1:-1]) if word.startswith("[") else None
    assert w and w[0] == command, f"expected [{command} ...], got {word!r}"
    return w[1:]


def option(words, name):
    return words[words.index(name) + 1]


class BlockDesignView:
    """The block design a Tcl script describes: cells, connections, properties, addresses."""

    def __init__(self, text):
        self.commands = tcl_commands(text)
        self.cells = {}            # name -> ("ip", vlnv) or ("module", reference)
        self.intf_nets = []        # frozensets of two interface pins
        self.nets = []             # sets of pins
        self.props = {}            # cell -> {CONFIG.X: value}
        self.addresses = []        # (space, segment, offset, range)
        self.order = {}            # first index of each command name
        for k, w in enumerate(self.commands):
            self.order.setdefault(w[0], k)
            if w[0] == "create_bd_cell":
                kind = option(w, "-type")
                self.cells[w[-1]] = (kind, option(w, "-vlnv") if kind == "ip" else option(w, "-reference"))
            elif w[0] == "connect_bd_intf_net":
                pins = [bracket(x, "get_bd_intf_pins")[0] for x in w[1:] if x.startswith("[")]
                self.intf_nets.append(frozenset(pins))
            elif w[0] == "connect_bd_net":
                self.nets.append({bracket(x, "get_bd_pins")[0] for x in w[1:] if x.startswith("[")})
            elif w[0] == "set_property" and w[1] == "-dict":
                items = bracket(w[2], "list")
                cell = bracket(w[3], "get_bd_cells")[0]
                self.props.setdefault(cell, {}).update(zip(items[::2], items[1::2]))
            elif w[0] == "assign_bd_address":
                segs = [x for x in w if x.startswith("[get_bd_addr_segs")]
                assert len(segs) == 1, w
                self.addresses.append((bracket(option(w, "-target_address_space"), "get_bd_addr_spaces")[0],
                                       bracket(segs[0], "get_bd_addr_segs")[0],
                                       int(option(w, "-offset"), 16), option(w, "-range")))

    def find(self, name):
        return [w for w in self.commands if w[0] == name]

    def net_of(self, pin):
        found = [n for n in self.nets if pin in n]
        assert len(found) == 1, f"{pin} is in {len(found)} nets"
        return found[0]


# --------------------------------------------------------------------------- structure

def _design(board="pynq-z2", clock=100.0, width=64):
    cfg = netconfig.load(LFC_SMALL)
    name = accelerator_name(cfg)
    return BlockDesign(project=name, board=BOARDS[board], clock_mhz=clock, shell_module=f"{name}_overlay",
                       gmem_data_width=width)


@pytest.mark.parametrize("board", ["pynq-z1", "pynq-z2"])
@pytest.mark.parametrize("clock", [100.0, 125.0])
def test_block_design_structure(board, clock):
    bd = _design(board, clock)
    v = BlockDesignView(block_design_tcl(bd))
    shell = "qnnfab"

    # project on the board's part and board files
    create = v.find("create_project")[0]
    assert option(create, "-part") == "xc7z020clg400-1"
    board_parts = [w[2] for w in v.find("set_property") if w[1] == "board_part"]
    assert board_parts == [BOARD_PARTS[board]]
    assert "qnnfab_lfc_small_overlay.v" in " ".join(v.find("add_files")[0])
    assert "qnnfab_lfc_small_overlay_bd.v" in " ".join(v.find("add_files")[0])

    # cells, each IP by its full VLNV
    assert v.cells == {
        "ps7": ("ip", "xilinx.com:ip:processing_system7:5.5"),
        "rst_fclk0": ("ip", "xilinx.com:ip:proc_sys_reset:5.0"),
        "ctrl_interconnect": ("ip", "xilinx.com:ip:axi_interconnect:2.1"),
        "mem_smartconnect": ("ip", "xilinx.com:ip:smartconnect:1.0"),
        shell: ("module", "qnnfab_lfc_small_overlay_bd"),
    }
    assert all(VLNV.match(ref) for kind, ref in v.cells.values() if kind == "ip")
    automation = v.find("apply_bd_automation")[0]
    assert option(automation, "-rule") == "xilinx.com:bd_rule:processing_system7"
    assert 'apply_board_preset "1"' in option(automation, "-config")

    # every pin and cell the script names belongs to a created cell
    for w in v.commands:
        for ref in re.findall(r"\[get_bd_(?:intf_)?pins ([\w/]+)\]|\[get_bd_cells ([\w/]+)\]", " ".join(w)):
            cell = (ref[0] or ref[1]).split("/")[0]
            assert cell in v.cells, f"{cell} named before/without create_bd_cell"

    # PS configuration: clock, GP0 master, 64-bit HP0, fabric interrupt
    ps = v.props["ps7"]
    assert float(ps["CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ"]) == clock
    assert ps["CONFIG.PCW_USE_M_AXI_GP0"] == "1"
    assert ps["CONFIG.PCW_USE_S_AXI_HP0"] == "1"
    assert ps["CONFIG.PCW_S_AXI_HP0_DATA_WIDTH"] == "64"
    assert ps["CONFIG.PCW_USE_FABRIC_INTERRUPT"] == "1" and ps["CONFIG.PCW_IRQ_F2P_INTR"] == "1"
    for ic in ("ctrl_interconnect", "mem_smartconnect"):
        assert v.props[ic]["CONFIG.NUM_SI"] == "1" and v.props[ic]["CONFIG.NUM_MI"] == "1"

    # interfaces: GP0 -> interconnect -> control registers; master -> smartconnect -> HP0
    assert sorted(v.intf_nets, key=sorted) == sorted([
        frozenset({"ps7/M_AXI_GP0", "ctrl_interconnect/S00_AXI"}),
        frozenset({"ctrl_interconnect/M00_AXI", f"{shell}/s_axi_control"}),
        frozenset({f"{shell}/m_axi_gmem", "mem_smartconnect/S00_AXI"}),
        frozenset({"mem_smartconnect/M00_AXI", "ps7/S_AXI_HP0"}),
    ], key=sorted)

    # nets: one clock everywhere, resets from the proc_sys_reset, the interrupt to IRQ_F2P
    assert v.net_of("ps7/FCLK_CLK0") == {
        "ps7/FCLK_CLK0", "ps7/M_AXI_GP0_ACLK", "ps7/S_AXI_HP0_ACLK", "rst_fclk0/slowest_sync_clk",
        "ctrl_interconnect/ACLK", "ctrl_interconnect/S00_ACLK", "ctrl_interconnect/M00_ACLK",
        "mem_smartconnect/aclk", f"{shell}/ap_clk"}
    assert v.net_of("rst_fclk0/ext_reset_in") == {"ps7/FCLK_RESET0_N", "rst_fclk0/ext_reset_in"}
    assert v.net_of(f"{shell}/ap_rst_n") >= {"rst_fclk0/peripheral_aresetn", f"{shell}/ap_rst_n"}
    assert v.net_of("mem_smartconnect/aresetn") >= {"rst_fclk0/interconnect_aresetn", "ctrl_interconnect/ARESETN"}
    for p in ("ctrl_interconnect/S00_ARESETN", "ctrl_interconnect/M00_ARESETN"):
        assert "rst_fclk0/peripheral_aresetn" in v.net_of(p)
    assert v.net_of(f"{shell}/interrupt") == {f"{shell}/interrupt", "ps7/IRQ_F2P"}

    # address map: 4 KiB of registers at 0x4000_0000 for the PS; all 512 MiB of DDR for the shell
    assert sorted(v.addresses) == sorted([
        ("ps7/Data", f"{shell}/s_axi_control/*", 0x4000_0000, "4K"),
        (f"{shell}/m_axi_gmem", "ps7/S_AXI_HP0/HP0_DDR_LOWOCM", 0, "512M"),
    ])

    # order: cells, then connections, addresses, validation, wrapper, runs, outputs
    o = v.order
    assert o["create_bd_design"] < o["create_bd_cell"] < o["connect_bd_net"] < o["assign_bd_address"] \
        < o["validate_bd_design"] < o["make_wrapper"] < o["launch_runs"] < o["wait_on_run"] < o["open_run"]
    copies = [w for w in v.commands if w[:3] == ["file", "copy", "-force"]]
    targets = [bracket(w[-1], "file")[-1] for w in copies]
    assert targets == ["qnnfab_lfc_small.bit", "qnnfab_lfc_small.hwh"]
    assert o["launch_runs"] < v.commands.index(copies[0])

    # the Tcl's own checks name the requested clock
    checks = " ".join(" ".join(w) for w in v.find("if"))
    assert f"abs($fclk0 - {clock:g})" in checks
    assert f"timing not met at {clock:g} MHz" in checks


@pytest.mark.parametrize("width, hp0", [(32, "32"), (64, "64"), (128, "64")])
def test_hp0_width_follows_the_shell_master(width, hp0):
    v = BlockDesignView(block_design_tcl(_design(width=width)))
    assert v.props["ps7"]["CONFIG.PCW_S_AXI_HP0_DATA_WIDTH"] == hp0


def test_clock_is_not_rounded():
    v = BlockDesignView(block_design_tcl(_design(clock=142.857)))
    assert v.props["ps7"]["CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ"] == "142.857"


def test_build_script_runs_the_tcl_in_batch_mode():
    sh = build_script(_design())
    assert sh.startswith("#!/bin/sh\n")
    assert re.search(r"^exec vivado -mode batch .*-source block_design\.tcl$", sh, re.M)
    assert 'cd "$(dirname "$0")"' in sh


# --------------------------------------------------------------------------- IP Integrator view

GMEM = ("awid:1 awaddr:32 awlen:8 awsize:3 awburst:2 awlock:1 awcache:4 awprot:3 awvalid:1 awready:1 "
        "wdata:64 wstrb:8 wlast:1 wvalid:1 wready:1 bid:1 bresp:2 bvalid:1 bready:1 "
        "arid:1 araddr:32 arlen:8 arsize:3 arburst:2 arlock:1 arcache:4 arprot:3 arvalid:1 arready:1 "
        "rid:1 rdata:64 rresp:2 rlast:1 rvalid:1 rready:1")
CONTROL = ("awaddr:12 awvalid:1 awready:1 wdata:32 wstrb:4 wvalid:1 wready:1 bresp:2 bvalid:1 bready:1 "
           "araddr:12 arvalid:1 arready:1 rdata:32 rresp:2 rvalid:1 rready:1")
# directions seen from the shell: a slave drives ready/resp/data-out, a master drives the rest
SLAVE_OUT = {"awready", "wready", "bresp", "bvalid", "arready", "rdata", "rresp", "rvalid"}
MASTER_IN = {"awready", "wready", "bid", "bresp", "bvalid", "arready", "rid", "rdata", "rresp", "rlast",
             "rvalid"}


def _fixture_shell(module, drop=(), extra=()):
    """A port-only module in Amaranth's Verilog style with the contract ports (outputs tied to 0)."""
    ports = [("ap_clk", "input", 1), ("ap_rst_n", "input", 1), ("interrupt", "output", 1)]
    for item in CONTROL.split():
        n, w = item.split(":")
        ports.append((f"s_axi_control_{n}", "output" if n in SLAVE_OUT else "input", int(w)))
    for item in GMEM.split():
        n, w = item.split(":")
        ports.append((f"m_axi_gmem_{n}", "input" if n in MASTER_IN else "output", int(w)))
    ports += list(extra)
    ports = [p for p in ports if p[0] not in drop]
    lines = [f"module {module}({', '.join(p[0] for p in ports)});"]
    for name, d, w in ports:
        rng = f"[{w - 1}:0] " if w > 1 else ""
        lines.append(f"  {d} {rng}{name};")
        lines.append(f"  wire {rng}{name};")
        if d == "output":
            lines.append(f"  assign {name} = {w}'h0;")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def test_shell_ports_reads_amaranth_style_declarations():
    ports = shell_ports(_fixture_shell("x_overlay"), "x_overlay")
    assert ports["m_axi_gmem_wdata"] == ("output", 64)
    assert ports["s_axi_control_awaddr"] == ("input", 12)
    assert ports["interrupt"] == ("output", 1)
    assert len(ports) == 3 + len(CONTROL.split()) + len(GMEM.split())


def _attrs_of(view, port):
    """The attribute texts written just before ``port``'s declaration in the view."""
    m = re.search(rf"((?:\s*\(\*[^*]*\*\)\n)*)\s*(?:input|output) wire (?:\[\d+:0\] )?{port}\b", view)
    assert m, port
    return m.group(1)


def test_ipi_view_annotates_clock_reset_interrupt_and_both_interfaces():
    shell = _fixture_shell("x_overlay")
    view = ipi_view_verilog(shell, "x_overlay", 125.0)
    clk = _attrs_of(view, "ap_clk")
    assert "xilinx.com:signal:clock:1.0" in clk
    assert "ASSOCIATED_BUSIF s_axi_control:m_axi_gmem" in clk and "ASSOCIATED_RESET ap_rst_n" in clk
    assert "FREQ_HZ 125000000" in clk
    assert "POLARITY ACTIVE_LOW" in _attrs_of(view, "ap_rst_n")
    assert "SENSITIVITY LEVEL_HIGH" in _attrs_of(view, "interrupt")
    assert "xilinx.com:interface:aximm:1.0 s_axi_control AWADDR" in _attrs_of(view, "s_axi_control_awaddr")
    assert "PROTOCOL AXI4LITE, DATA_WIDTH 32, ADDR_WIDTH 12" in view
    assert "xilinx.com:interface:aximm:1.0 m_axi_gmem RLAST" in _attrs_of(view, "m_axi_gmem_rlast")
    assert "PROTOCOL AXI4, DATA_WIDTH 64, ADDR_WIDTH 32, ID_WIDTH 1" in view
    assert re.search(r"input wire \[63:0\] m_axi_gmem_rdata\b", view)
    assert re.search(r"output wire \[7:0\] m_axi_gmem_awlen\b", view)
    # every port of the shell is wired through, and the view is valid Verilog
    assert view.count("    .") == len(shell_ports(shell, "x_overlay"))
    from qnnfab.sim.lint import lint
    problems, _ = lint(shell + view, "x_overlay_bd")
    # the contract's port name `interrupt` is a C++ word to Verilator: a style note, not a problem
    assert [p for p in problems if p[0] != "SYMRSVDWORD"] == []


def test_ipi_view_refuses_a_shell_off_the_contract():
    with pytest.raises(QnnfabError, match="m_axi_gmem_rlast"):
        ipi_view_verilog(_fixture_shell("x_overlay", drop=("m_axi_gmem_rlast",)), "x_overlay", 100.0)
    with pytest.raises(QnnfabError, match="debug_in"):
        ipi_view_verilog(_fixture_shell("x_overlay", extra=[("debug_in", "input", 1)]), "x_overlay", 100.0)
    with pytest.raises(QnnfabError, match="y_overlay"):
        ipi_view_verilog(_fixture_shell("x_overlay"), "y_overlay", 100.0)


# --------------------------------------------------------------------------- generate, without Vivado

def test_generate_writes_the_overlay_folder_without_vivado(tmp_path, capsys, monkeypatch):
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert shutil.which("vivado") is None
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--board", "pynq-z1", "--clock", "125", "--config", LFC_SMALL,
               "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    monkeypatch.setenv("PATH", path)   # Verilator's lint below needs perl
    ov = out / "overlay"
    assert sorted(p.name for p in ov.iterdir()) == sorted([
        "qnnfab_lfc_small_overlay.v", "qnnfab_lfc_small_overlay_bd.v", "block_design.tcl", "build.sh",
        "driver.py", "qnnfab_overlay_map.py", "qnnfab_packing.py", "qnnfab_weights_image.py", "network.json",
        "README.md"])
    # the shell under the contract's name, and its IP Integrator view with the same ports
    shell = (ov / "qnnfab_lfc_small_overlay.v").read_text()
    view = (ov / "qnnfab_lfc_small_overlay_bd.v").read_text()
    ports = shell_ports(shell, "qnnfab_lfc_small_overlay")
    assert ports["m_axi_gmem_rdata"] == ("input", 64) and ports["s_axi_control_awaddr"] == ("input", 12)
    assert re.search(r"^module qnnfab_lfc_small_overlay_bd \(", view, re.M)
    assert all(re.search(rf"\b{p}\b", view) for p in ports)
    assert "FREQ_HZ 125000000" in view
    # Verilator elaborates the view around the real shell: every port it connects exists, widths match
    from qnnfab.sim.lint import lint
    problems, _ = lint(shell + view, "qnnfab_lfc_small_overlay_bd")
    first_view_line = shell.count("\n") + 1
    in_view = [p for p in problems if p[0] != "SYMRSVDWORD" and
               (not (m := re.search(r"\.v:(\d+):", p[1])) or int(m.group(1)) >= first_view_line)]
    assert in_view == []
    v = BlockDesignView((ov / "block_design.tcl").read_text())
    assert float(v.props["ps7"]["CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ"]) == 125.0
    assert v.props["ps7"]["CONFIG.PCW_S_AXI_HP0_DATA_WIDTH"] == "64"
    assert [w[2] for w in v.find("set_property") if w[1] == "board_part"] == [BOARD_PARTS["pynq-z1"]]
    assert os.access(ov / "build.sh", os.X_OK)
    readme = (ov / "README.md").read_text()
    assert "./build.sh" in readme and 'Accelerator("qnnfab_lfc_small.bit")' in readme
    assert "0x40000000" in readme and "xilinx.com:ip:processing_system7:5.5" in readme
    # the word formats from the config: 64 bipolar inputs, 16 per word (4 words); 10 scores, 5 per word
    assert "16 elements per word" in readme and "4 words per frame" in readme
    assert "10 scores" in readme and "5 per word in 2 words" in readme
    # the register map from its one definition
    from qnnfab import overlay_map
    for r in overlay_map.REGISTERS:
        assert f"| 0x{r.offset:02X} | `{r.name}` |" in readme
    assert not (out / "plan").exists()


def test_generate_runtime_weights_puts_the_image_in_the_overlay_folder(tmp_path, capsys):
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--weights-mode", "runtime", "--config", LFC_SMALL, "--out", str(out)])
    assert rc == 0, capsys.readouterr().out
    ov = out / "overlay"
    image = (ov / "weights.bin").read_bytes()
    assert image == (out / "accel" / "weights.bin").read_bytes()
    assert image[:4] == b"QNWI"
    import json
    assert json.loads((ov / "network.json").read_text())["runtime_weights"] is True
    readme = (ov / "README.md").read_text()
    assert "`weights.bin`" in readme and "LOAD_WEIGHTS (bit 3)" in readme and "WEIGHTS_ADDR" in readme


def test_generate_data_width_reaches_the_shell_and_the_hp_port(tmp_path, capsys):
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--data-width", "32", "--config", LFC_SMALL, "--out", str(out)])
    assert rc == 0, capsys.readouterr().out
    ov = out / "overlay"
    assert shell_ports((ov / "qnnfab_lfc_small_overlay.v").read_text(),
                       "qnnfab_lfc_small_overlay")["m_axi_gmem_wdata"] == ("output", 32)
    v = BlockDesignView((ov / "block_design.tcl").read_text())
    assert v.props["ps7"]["CONFIG.PCW_S_AXI_HP0_DATA_WIDTH"] == "32"


@pytest.mark.parametrize("top, clock", [("overlay", "251"), ("overlay", "0.1"), ("selftest", "500"),
                                        ("selftest", "2")])
def test_generate_refuses_a_clock_the_board_cannot_make(tmp_path, capsys, top, clock):
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--top", top, "--clock", clock, "--config", LFC_SMALL, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--clock" in err[0] and f"{float(clock):g} MHz" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("top, clock", [("overlay", "250"), ("overlay", "142.857"), ("selftest", "464")])
def test_clock_check_accepts_the_limits(top, clock):
    from qnnfab.boards.targets.clock import check_clock
    check_clock(top, float(clock), BOARDS["pynq-z2"])


def _mmcm_mhz(f_in, d, mult, div):
    vco = f_in / d * mult
    assert 600 <= vco <= 1200 and 10 <= f_in / d <= 450      # DS187, -1 speed grade
    assert mult * 8 == int(mult * 8) and div * 8 == int(div * 8) and 2 <= mult <= 64
    assert div == 1 or 2 <= div <= 128
    return vco / div


def test_generate_selftest_top_runs_at_the_requested_clock(tmp_path, capsys):
    out = tmp_path / "gen"
    rc = main(["generate", "--no-report", "--top", "selftest", "--clock", "150", "--config", LFC_SMALL,
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().out
    assert (out / "plan" / "build_top.sh").exists()
    assert not (out / "overlay").exists()
    # the board's 125 MHz oscillator is constrained as such; the MMCM makes 150 MHz from it,
    # and the accelerator's clock is the MMCM's output (through a BUFG)
    xdc = (out / "plan" / "top.xdc").read_text()
    assert re.search(r"create_clock .*-period 8\.0 ", xdc)
    top = (out / "plan" / "top.v").read_text()
    m = re.search(r"MMCME2_BASE #\((.*?)\) mmcm \((.*?)\);", top, re.S)
    params = dict(re.findall(r"\.(\w+)\((?:32'd)?([\d.]+)\)", m.group(1)))
    assert float(params["CLKIN1_PERIOD"]) == 8.0
    f = _mmcm_mhz(125.0, int(params["DIVCLK_DIVIDE"]), float(params["CLKFBOUT_MULT_F"]),
                  float(params["CLKOUT0_DIVIDE_F"]))
    assert f == pytest.approx(150.0, abs=1e-9)
    assert "BUFG bufg" in top


@pytest.mark.parametrize("f_out", [10.0, 33.3, 100.0, 125.0, 142.857, 150.0, 200.0, 250.0])
def test_mmcm_settings_make_the_clock_within_the_limits(f_out):
    from qnnfab.boards.targets.clock import mmcm_settings
    d, mult, div, achieved = mmcm_settings(125.0, f_out)
    assert _mmcm_mhz(125.0, d, mult, div) == pytest.approx(achieved)
    assert achieved == pytest.approx(f_out, rel=1e-3)


# --------------------------------------------------------------------------- the Tcl's own checks, run

STUBS = r"""
set ::calls {}
set ::copies {}
proc unknown {args} { lappend ::calls $args; return "<[lindex $args 0]:[lindex $args end]>" }
proc version {args} { return 2022.2 }
proc get_board_parts {args} { return $::answer(board_parts) }
proc get_ipdefs {args} {
    set vlnv [lindex $args end]
    if {$vlnv in $::answer(missing_ips)} { return {} }
    return $vlnv
}
proc get_property {name obj} {
    if {[info exists ::answer($name,$obj)]} { return $::answer($name,$obj) }
    return $::answer($name)
}
rename glob _glob
proc glob {args} { return [list /vivado/project.gen/sources_1/bd/top/hw_handoff/top.hwh] }
rename file _file
proc file {sub args} {
    if {$sub eq "copy"} { lappend ::copies [lrange $args end-1 end]; return }
    return [_file $sub {*}$args]
}
"""


def _run_tcl(tmp_path, clock=100.0, **answers):
    """Run the generated Tcl in Tk's Tcl interpreter with Vivado's commands stubbed;
    return (copies made, error message or None)."""
    tkinter = pytest.importorskip("tkinter")
    tcl = tkinter.Tcl()
    tcl.eval(STUBS)
    ans = {"board_parts": BOARD_PARTS["pynq-z2"], "missing_ips": "",
           "CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ": f"{clock:.6f}", "PROGRESS": "100%", "SLACK": "0.25",
           "DIRECTORY": "/vivado/impl_1"}
    ans.update({k.replace("__", "."): v for k, v in answers.items()})
    for k, v in ans.items():
        tcl.call("set", f"::answer({k})", v)
    script = tmp_path / "block_design.tcl"
    script.write_text(block_design_tcl(_design(clock=clock)))
    tcl.eval(f"info script {{{script}}}")
    try:
        tcl.eval(script.read_text())
        err = None
    except tkinter.TclError as e:
        err = str(e)
    copies = [tuple(tcl.splitlist(c)) for c in tcl.splitlist(tcl.eval("set ::copies"))]
    return copies, err


def test_tcl_runs_to_the_bitstream_and_handoff(tmp_path):
    copies, err = _run_tcl(tmp_path, clock=125.0, CONFIG__PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ="125.000000")
    assert err is None
    assert copies == [("/vivado/impl_1/top_wrapper.bit", str(tmp_path / "qnnfab_lfc_small.bit")),
                      ("/vivado/project.gen/sources_1/bd/top/hw_handoff/top.hwh",
                       str(tmp_path / "qnnfab_lfc_small.hwh"))]


@pytest.mark.parametrize("answers, message", [
    ({"board_parts": ""}, "board part tul.com.tw:pynq-z2:part0:1.0 not found"),
    ({"missing_ips": "xilinx.com:ip:smartconnect:1.0"}, "xilinx.com:ip:smartconnect:1.0"),
    ({"CONFIG__PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ": "111.111115"}, "111.111115 MHz, not the requested 125 MHz"),
    ({"CONFIG__PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ": "123.5"}, "not the requested 125 MHz"),
    ({"PROGRESS": "60%"}, "implementation did not finish"),
    ({"SLACK": "-0.012"}, "timing not met at 125 MHz"),
    ({"SLACK,<get_timing_paths:min>": "-0.004"}, "hold slack -0.004 ns"),
    ({"SLACK,<get_timing_paths:max>": "-0.3"}, "setup slack -0.3 ns"),
])
def test_tcl_stops_before_copying_a_bitstream(tmp_path, answers, message):
    copies, err = _run_tcl(tmp_path, clock=125.0, **answers)
    assert err is not None and message in err
    assert copies == []


def test_tcl_accepts_the_ps_clock_within_one_percent(tmp_path):
    _, err = _run_tcl(tmp_path, clock=150.0, CONFIG__PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ="148.6")
    assert err is None

"""Build plans for a board: the PYNQ overlay, the accelerator IP (AXI-Stream) and a self-test top.

``generate`` writes:

* ``overlay/`` (the default ``--top overlay``): the accelerator in its AXI
  shell (``<name>_overlay.v``), the Vivado block design around the Zynq PS
  (:mod:`qnnfab.boards.vivado`: ``block_design.tcl``, ``build.sh``), the Python
  driver and a README (word formats, register map, build and run): see
  :func:`write_overlay`.
* ``accel/<name>.v``: the bare network accelerator
  (:class:`qnnfab.rtl.axis_accelerator.AxiStreamAccelerator`: AXI4-Stream
  ports ``s_axis_*``, ``m_axis_*``, ``aclk``, ``aresetn``, ``label``,
  ``frame_error``), and ``accel/README.md`` documenting its ports and word
  formats (:func:`accelerator_readme`).
* ``plan/`` (``--top selftest``): Amaranth's Xilinx build plan for the board
  (Verilog, Tcl, constraints, ``build_top.sh``) of a *standalone self-test top*:
  ``--clock`` made by an MMCM from the board's 125 MHz oscillator, a frame
  generator (a 32-bit LFSR, ``tlast`` on every frame's last word) feeding the
  accelerator back to back, the output always ready, the label of the last frame on the
  LEDs. It proves the design places, routes and meets
  timing on the part without the PS.
"""

import math
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import ClockSignal, Elaboratable, Module, Mux, ResetSignal, Signal
from amaranth.lib import io

__all__ = ["SelfTestTop", "accelerator_name", "accelerator_readme", "check_clock", "mmcm_settings",
           "write_build_plan", "write_accelerator", "write_overlay"]


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
        raise ConfigError("check_clock", "clock_mhz", f"{clock_mhz:g} MHz is outside the {lo:g}-{hi:g} MHz "
                          "the Zynq PS makes on FCLK_CLK0", "choose e.g. 100 MHz")
    if top == "selftest":
        f_in = board().default_clk_frequency / 1e6
        achieved = mmcm_settings(f_in, clock_mhz)[3]
        if clock_mhz > BUFG_MAX_MHZ or abs(achieved - clock_mhz) > 1e-3 * clock_mhz:
            raise ConfigError("check_clock", "clock_mhz", f"an MMCM on the {f_in:g} MHz oscillator cannot make "
                              f"{clock_mhz:g} MHz for a global clock (closest {achieved:.6g} MHz, at most "
                              f"{BUFG_MAX_MHZ:g} MHz)", "choose e.g. 100 MHz")


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
        from qnnfab.rtl.axis_accelerator import AxiStreamAccelerator

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
        m.submodules.accel = accel = AxiStreamAccelerator(self.cfg)
        # (the platform's own sync domain, without an MMCM, has no reset)
        m.d.comb += [accel.aclk.eq(ClockSignal()), accel.aresetn.eq(~ResetSignal(allow_reset_less=True))]
        lfsr = Signal(32, init=1)
        words = accel.format.in_words
        word = Signal(range(max(2, words)))
        with m.If(accel.s_axis_tready):
            fb = lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]
            m.d.sync += [lfsr.eq((lfsr << 1) | fb), word.eq(Mux(word == words - 1, 0, word + 1))]
        width = len(accel.s_axis_tdata)
        data = Signal(width)
        reps = -(-width // 32)
        m.d.comb += [
            data.eq(lfsr.replicate(reps)[:width]),
            accel.s_axis_tdata.eq(data),
            accel.s_axis_tvalid.eq(1),
            accel.s_axis_tlast.eq(word == words - 1),
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


def accelerator_readme(cfg, top):
    """The README written next to the accelerator's Verilog: ports and word formats
    of ``top`` (an :class:`~qnnfab.rtl.axis_accelerator.AxiStreamAccelerator` of ``cfg``)."""
    f = top.format
    name = accelerator_name(cfg)
    kind = cfg.input_kind
    enc = {"bipolar": "1 bit per element, 1 = +1, 0 = -1",
           "uint": f"unsigned {f.in_bits}-bit integers",
           "int": f"two's complement {f.in_bits}-bit integers"}[kind]
    shape = " x ".join(str(d) for d in cfg.input_shape)
    last = cfg.layers[-1]
    n_scores = f.out_elems * f.out_words
    ext = "sign-extended" if f.out_signed else "zero-extended"
    stype = f"{'int' if f.out_signed else 'uint'}{8 * f.score_bytes}" if f.score_bytes in (1, 2, 4, 8) else \
        f"{8 * f.score_bytes}-bit {'signed' if f.out_signed else 'unsigned'}"
    if last.out_kind == "acc":
        mw = math.prod(last.in_shape) if last.type == "fc" else last.kernel ** 2 * last.in_shape[2]
        what = (f"raw accumulators of the last layer '{last.name}', {f.out_bits} bits "
                + ("(two's complement: signed dot products)" if f.out_signed
                   else f"(unsigned XNOR popcounts P; the bipolar dot product is 2P - {mw})"))
    else:
        what = f"the last layer's ('{last.name}') {last.out_kind} activations, {f.out_bits}-bit unsigned"
    spare = 8 * f.in_bytes - f.in_elems * f.in_bits
    pad = f": the top {spare} bits are padding (ignored; send 0)" if spare else " (no padding)"
    return f"""# {name}: the bare accelerator of network '{cfg.name}'

`{name}.v` is one Verilog module generated by qnnfab from the network config.
It streams frames in and scores out over AXI4-Stream; everything is
synchronous to `aclk`.

## Ports

| port | dir | width | meaning |
| --- | --- | --- | --- |
| `aclk` | in | 1 | clock |
| `aresetn` | in | 1 | synchronous reset, active low |
| `s_axis_tdata` | in | {8 * f.in_bytes} | input word (below) |
| `s_axis_tvalid`, `s_axis_tready` | in, out | 1 | AXI4-Stream handshake |
| `s_axis_tlast` | in | 1 | must be high on the last word of every frame |
| `m_axis_tdata` | out | {8 * f.out_bytes} | output word: scores (below) |
| `m_axis_tvalid`, `m_axis_tready` | out, in | 1 | AXI4-Stream handshake |
| `m_axis_tlast` | out | 1 | high on the last word of every output frame |
| `label` | out | {len(top.label)} | arg-max of the frame's scores (lowest index on ties) |
| `label_valid` | out | 1 | one-cycle pulse: `label` is valid (the cycle after the frame's last output word transfers) |
| `frame_error` | out | 1 | high from the first badly framed input frame on, until reset |
| `frame_error_pulse` | out | 1 | one-cycle pulse per badly framed input frame |

## Input words

A frame is one input of shape {shape} (H x W x C, channel-last, raster
order: for each row, for each column, the channels), {kind}: {enc}.
It is sent as {f.in_words} words of {f.in_elems} elements each, element 0
at bit 0: element `j` of word `k` is element `k * {f.in_elems} + j` of the
flattened frame, at bits `[{f.in_bits} * j, {f.in_bits} * j + {f.in_bits})`.
`s_axis_tdata` is {8 * f.in_bytes} bits{pad}. Set `s_axis_tlast` on word {f.in_words - 1} of every frame.

Framing errors: a frame that the sender ends with `tlast` before its last
word is completed with zero words (its scores are meaningless); a frame whose
last word comes without `tlast` is computed, and the words after it are
discarded up to and including the next `tlast`. Either sets `frame_error`
and pulses `frame_error_pulse`; the next frame starts aligned. Every frame
ended with `tlast` yields exactly one output frame.

## Output words

{n_scores} scores per frame: {what}. They come as {f.out_words} words of
{f.out_elems} scores; score `k` is in word `k // {f.out_elems}`, field
`k % {f.out_elems}`. Each score has its own {f.score_bytes}-byte field
(field `p` at bits `[{8 * f.score_bytes} * p, {8 * f.score_bytes} * (p + 1))`), {ext},
so `m_axis_tdata` read as little-endian bytes is an array of {f.out_elems} `{stype}`.
`m_axis_tlast` is high on word {f.out_words - 1} of every frame.

## Throughput

One input word per cycle at most; the slowest layer takes
{max(c for _, c in top.model):,} cycles per frame (`qnnfab report` has the per-layer
figures). Output words are held while `m_axis_tready` is low; the
accelerator stalls rather than drops.
"""


def write_accelerator(cfg, out_dir):
    """Write the bare accelerator's Verilog (:class:`AxiStreamAccelerator`) and its
    README (ports and word formats) into ``out_dir``; return ``(module name, path)``."""
    from amaranth.back import verilog
    from qnnfab.rtl.axis_accelerator import AxiStreamAccelerator

    name = accelerator_name(cfg)
    top = AxiStreamAccelerator(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    readme = accelerator_readme(cfg, top)
    path = out / f"{name}.v"
    path.write_text(verilog.convert(top, name=name, emit_src=False))
    (out / "README.md").write_text(readme)
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
    """What the overlay shell provides for the folder (CONTRACTS section 2).

    ``shell_verilog``: Verilog text of module ``f"{accelerator_name(cfg)}_overlay"``;
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
    (:mod:`qnnfab.boards.overlay`, :mod:`qnnfab.overlay_map`) at AXI ``data_width``."""
    from amaranth.back import verilog
    from qnnfab import overlay_map
    from .overlay import driver_files, overlay_name, overlay_shell
    shell = overlay_shell(cfg, data_width)
    text = verilog.convert(shell, name=overlay_name(cfg), emit_src=False)
    return OverlayParts(shell_verilog=text, driver_files=driver_files(cfg, data_width, formats=shell.formats),
                        registers=tuple(overlay_map.REGISTERS), formats=shell.formats)


#: the weights image in the overlay folder of a ``weights_mode = "runtime"`` network
RUNTIME_WEIGHTS_FILE = "weights.bin"


def write_overlay(cfg, board, clock_mhz, out_dir, data_width=64):
    """Write the PYNQ overlay folder for ``cfg`` on ``board`` (a platform class) at
    ``clock_mhz`` into ``out_dir``: the shell's Verilog (AXI ``data_width``), its
    IP Integrator view, the Vivado Tcl and ``build.sh``, the driver files and a
    README. Returns ``(BlockDesign, file names)``. Needs no Vivado."""
    from .vivado import BlockDesign, shell_ports, write_vivado_project
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = overlay_parts(cfg, data_width)
    project = accelerator_name(cfg)
    shell = f"{project}_overlay"
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
        from qnnfab.plan import save_image
        save_image(cfg, out / RUNTIME_WEIGHTS_FILE)
        files.append(RUNTIME_WEIGHTS_FILE)
    (out / "README.md").write_text(overlay_readme(cfg, bd, parts))
    files.append("README.md")
    return bd, files


def _formats_lines(cfg, fm):
    """README lines on the accelerator's words and their DDR buffers (``fm``: overlay Formats)."""
    kind = {"bipolar": "1 bit (1 = +1, 0 = -1)", "uint": f"{fm.input_bits}-bit unsigned",
            "int": f"{fm.input_bits}-bit two's complement"}.get(fm.input_kind, fm.input_kind)
    shape = " x ".join(str(d) for d in fm.input_shape)
    order = "channel-last (NHWC) raster order" if len(fm.input_shape) == 3 else "index order"
    sign = "two's complement" if fm.out_signed else "unsigned"
    return [
        f"* Input frame: {shape} elements of {kind}, in {order}. The accelerator takes "
        f"{fm.in_simd} elements per word (element 0 in the least significant bits), {fm.in_words} "
        f"words per frame. In DDR each word sits in a {fm.in_slot_bytes}-byte little-endian slot "
        f"(zero-padded), and a frame takes {fm.in_frame_bytes} bytes (whole {fm.bus_bytes}-byte bus "
        "words); frames follow each other.",
        f"* Output record, one per frame: {fm.n_scores} scores (the last layer's raw accumulators, "
        f"{fm.out_bits}-bit {sign}), {fm.out_elems} per word in {fm.out_words} words of "
        f"{fm.out_slot_bytes}-byte slots (score 0 in the least significant bits), then one slot with "
        "the label word (bits 15:0 the arg-max label, ties to the lowest index; bits 31:16 the "
        f"frame's index in the run modulo 2^16); {fm.out_record_bytes} bytes per record.",
        "* The driver packs images into input frames and unpacks records into scores and labels "
        "(`pack_inputs`, `unpack_records` in `driver.py`); `network.json` holds these numbers.",
    ]


def overlay_readme(cfg, bd, parts):
    """README.md of the overlay folder: files, build, run, block design, formats, registers."""
    from qnnfab import overlay_map as om
    from .vivado import CONTROL_BASE, IP_VLNV, SHELL_CELL, VIVADO_VERSIONS
    b = bd.board
    fm = parts.formats
    runtime = cfg.weights_mode == "runtime"
    to_copy = [f"{bd.project}.bit", f"{bd.project}.hwh", *parts.driver_files] + \
        ([RUNTIME_WEIGHTS_FILE] if runtime else [])
    lines = [f"# qnnfab overlay `{bd.project}` for {b.board_name.upper()}", "",
             f"Network `{cfg.name}` ({len(cfg.layers)} layers, topology hash "
             f"0x{cfg.topology_hash():08x}) in an AXI shell for the Zynq PS, "
             f"FCLK_CLK0 {bd.clock_mhz:g} MHz, {bd.gmem_data_width}-bit AXI master. Written by "
             "`qnnfab generate`; generate again rather than editing these files.", "",
             "| file | what it is |", "| --- | --- |",
             f"| `{bd.sources[0]}` | the accelerator in its AXI shell: AXI4-Lite registers "
             "(`s_axi_control`), AXI4 master to DDR (`m_axi_gmem`), `interrupt` |",
             f"| `{bd.sources[1]}` | the same ports with Vivado's interface attributes; the block "
             "design references this module |",
             "| `block_design.tcl` | Vivado project, block design, synthesis, implementation, bitstream |",
             "| `build.sh` | runs it: `vivado -mode batch -source block_design.tcl` |"]
    lines += [f"| `{name}` | driver folder: copy it to the board with the bitstream |"
              for name in parts.driver_files]
    if runtime:
        lines.append(f"| `{RUNTIME_WEIGHTS_FILE}` | the network's weights image, loaded at run time |")
    lines += [f"| `{bd.project}.bit`, `{bd.project}.hwh` | written by the build: bitstream and "
              "hardware handoff, side by side as `pynq.Overlay` needs them |",
              "| `timing_summary.rpt`, `utilization.rpt`, `vivado/` | written by the build |", "",
              f"## Build (Vivado {VIVADO_VERSIONS})", "",
              "```sh", "./build.sh", "```", "",
              f"Needs `vivado` on `PATH` and the {b.board_name} board files (board part "
              f"`{b.vivado_board_part}`): install them from Vivado's store, or set "
              "`QNNFAB_BOARD_FILES` to a folder that holds them. `QNNFAB_VIVADO_JOBS` sets the "
              "parallel runs (default 2). The script stops with a message when an IP version "
              f"is missing from the catalog, when the PS cannot make {bd.clock_mhz:g} MHz (within 1%), "
              "or when timing is not met (setup or hold); only then does it copy the bitstream "
              "and the handoff here.", "",
              "## Run on the board", "",
              "Copy " + ", ".join(f"`{f}`" for f in to_copy) + " into one folder on the board "
              "(a PYNQ image, 2.7 or later: numpy and `pynq`, which lists RTL module references such as the "
              "shell in `Overlay.ip_dict`), then, in Python in that folder:", "",
              "```python",
              "from driver import Accelerator",
              f'acc = Accelerator("{bd.project}.bit")',
              f"labels = acc.classify(images)   # images: ({', '.join(['N', *map(str, fm.input_shape)])}) "
              "integer array",
              "```", "",
              "`acc.scores(images)` gives the scores. The driver checks the shell's identity "
              "registers (register map version, topology hash, buffer sizes) and refuses a "
              "bitstream built for another network.", ""]
    if runtime:
        lines += [f"Runtime weights: this bitstream holds no weights. Load `{RUNTIME_WEIGHTS_FILE}` (copy it "
                  "too; `qnnfab pack-weights` writes the image of any network of the same topology) through "
                  "the shell before classifying: put it in a `pynq.allocate` buffer, write the buffer's "
                  "address and the image's length in bytes to WEIGHTS_ADDR and WEIGHTS_LEN, write "
                  f"LOAD_WEIGHTS (bit {om.CTRL_LOAD_WEIGHTS.bit_length() - 1}) to CTRL, wait for DONE in STATUS "
                  f"and check that ERROR is 0 (code {om.ERRORS['WLOAD']}, WLOAD: the accelerator refused "
                  "the image, its reason in ERROR bits 15:8).", ""]
    lines += ["## Block design", "",
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
              "## Word formats", "",
              *_formats_lines(cfg, fm), "",
              "## Register map", "",
              f"32-bit registers at 0x{CONTROL_BASE:08X} + offset (from `qnnfab_overlay_map.py`, the "
              "one definition the shell, the driver and this README use). rw: held in the register "
              "file; ro: read from the shell, a write is a command to it (CTRL: START, SOFT_RESET, "
              "LOAD_WEIGHTS; STATUS: write 1 to clear DONE).", "",
              "| offset | name | access | meaning |", "| --- | --- | --- | --- |",
              *[f"| 0x{r.offset:02X} | `{r.name}` | {r.access} | {r.doc} |" for r in parts.registers], "",
              "## What was checked without a board", "",
              "Checked by qnnfab's tests: the accelerator against the golden model on Verilator; the "
              "shell, this driver and the accelerator together in co-simulation (`qnnfab sim overlay`: "
              "cocotbext-axi models of the PS's AXI4-Lite master and of DDR with random latencies); this "
              "Tcl's structure (cells and VLNVs, connections, address map, clock, board part) against the "
              "config. Only Vivado and a board show that Vivado accepts the Tcl, that the design closes "
              "timing at this clock, and that it runs from real DDR through the PS.", ""]
    return "\n".join(lines)

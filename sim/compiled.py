"""The compiled simulation engine: whole networks on a plain Verilator C++ testbench.

cocotb drives every cycle from Python (a few thousand cycles/s on a whole
network); this engine fills in a C++ testbench (``compiled_tb.cpp``, shipped
with this module) for the accelerator's stream ports, builds it with
Verilator once per design (in the one build cache:
:func:`qnnfab.sim.build.build_compiled`) and runs whole test sets at Verilator
speed. Python packs the frames (:func:`qnnfab.packing.pack_bytes`), the
testbench streams them and logs every output word with its cycle, and Python
compares every word with the golden model (:func:`check_network`).

What the testbench does each cycle (clock low, inputs driven, then one
rising edge): the source offers the next input word with probability
``valid_prob`` and holds it until taken; the sink is ready with probability
``ready_prob`` (both from a seeded splitmix64 stream). It checks the
accelerator's side of the stream rules: an offered output word stays valid
and unchanged until taken, ``valid`` does not depend on ``ready`` (both ready
values are probed in every cycle of a checked run), ``last`` marks exactly the
last word of every frame, and no word or label follows the last frame. A
broken rule or a timeout stops the run with the cycle and the rule in the
message.

A graph is simulated as one model with its stage inputs watched
(:func:`watched_accelerator`, a simulation-only wrapper: the accelerator's ports plus the
valid and ready of every stage input): a run in which no watched stream moves for
:meth:`NetworkBench.stall_limit` cycles stops with :class:`CompiledDeadlock`, one line
naming the stage inputs holding a word nobody takes ("deadlock: no progress for N cycles:
valid without ready ... on res_fifo1 input, ..."), and every run reports the most words each
skip FIFO held (``CompiledRun.fifo_occupancy``). A chain is simulated as one model per layer by
default (:class:`NetworkBench`, ``per_stage``; the harness: :func:`staged_models_source`);
the testbench is the same, only how the models settle and clock differs.

Files: ``inputs.bin`` holds ``in_bytes`` little-endian bytes per input word;
the testbench writes ``outputs.bin`` (per word: the cycle as a little-endian
uint64, then ``out_bytes`` bytes) and ``labels.bin`` (per frame: cycle,
label, both uint64).
"""

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from qnnfab.errors import QnnfabError
from qnnfab.packing import frame_labels, pack_bytes, unpack_bytes
from qnnfab.plan import JOINS
from qnnfab.golden.graph_network import graph_forward

from .build import Build, build_compiled, build_staged, known_stage_verilog, to_verilog
from .stage_identity import chain_description, chain_toplevel, chain_verilog

__all__ = ["StreamPorts", "CompiledRun", "SimulationMismatch", "CompiledDeadlock", "network_ports",
           "testbench_source", "whole_models_source", "staged_models_source", "stage_ports", "Watch",
           "watched_accelerator", "watch_source",
           "run_testbench", "NetworkBench", "check_network", "steady_cycles_per_frame", "Verification",
           "verify_network"]


class SimulationMismatch(QnnfabError, AssertionError):
    """The hardware broke a stream rule or disagreed with the golden model."""


class CompiledDeadlock(SimulationMismatch):
    """No watched stream of the design moved for the run's stall limit: the message names the
    streams holding a word nobody takes ("deadlock: no progress for N cycles: ...")."""


@dataclass(frozen=True)
class StreamPorts:
    """The Verilog ports of a one-input, one-output streaming accelerator."""
    clock: str              # clock port
    reset: str              # reset port
    reset_active: int       # level that holds the design in reset
    in_data: str
    in_valid: str
    in_ready: str
    in_width: int
    out_data: str
    out_valid: str
    out_ready: str
    out_width: int
    out_last: str | None    # frame marker on the output stream
    label: str | None
    label_valid: str | None
    in_last: str | None = None  # frame marker on the input stream (driven on each frame's last word)

    @property
    def in_bytes(self):
        return -(-self.in_width // 8)

    @property
    def out_bytes(self):
        return -(-self.out_width // 8)


def network_ports(top):
    """The :class:`StreamPorts` of an :class:`~qnnfab.rtl.axis_accelerator.AxiStreamAccelerator`
    (the exported top: ``aclk``, ``aresetn``, whole-byte ``tdata``)."""
    return StreamPorts("aclk", "aresetn", 0, "s_axis_tdata", "s_axis_tvalid", "s_axis_tready",
                       8 * top.format.in_bytes, "m_axis_tdata", "m_axis_tvalid", "m_axis_tready",
                       8 * top.format.out_bytes, "m_axis_tlast", "label", "label_valid", "s_axis_tlast")


# ---------------------------------------------------------------------------
# the C++ testbench: compiled_tb.cpp, shipped with this module

def testbench_source(ports, toplevel, in_words_per_frame, models=None, watch=None):
    """The C++ testbench for ``ports`` (a :class:`StreamPorts`): ``compiled_tb.cpp`` with its
    placeholders (``@IN_BYTES@``, ...) filled in. ``models``: the C++ that declares, settles and
    clocks the models (default :func:`whole_models_source`, one model ``V<toplevel>``); ``watch``:
    the :class:`Watch` of a :func:`watched_accelerator` (default: nothing watched inside)."""
    absent = "0"   # the port of a feature the design lacks: in an #if 0 block, never compiled
    values = {
        "TOP": toplevel, "CLK": ports.clock, "RESET": ports.reset, "RESET_ACTIVE": str(ports.reset_active),
        "IN_DATA": ports.in_data, "IN_VALID": ports.in_valid, "IN_READY": ports.in_ready,
        "IN_BYTES": str(ports.in_bytes), "IN_WIDE": str(int(ports.in_width > 64)),
        "IN_WORDS_PER_FRAME": str(in_words_per_frame),
        "HAS_IN_LAST": str(int(ports.in_last is not None)), "IN_LAST": ports.in_last or absent,
        "OUT_DATA": ports.out_data, "OUT_VALID": ports.out_valid, "OUT_READY": ports.out_ready,
        "OUT_BYTES": str(ports.out_bytes), "OUT_WIDE": str(int(ports.out_width > 64)),
        "HAS_OUT_LAST": str(int(ports.out_last is not None)), "OUT_LAST": ports.out_last or absent,
        "HAS_LABEL": str(int(ports.label is not None)), "LABEL": ports.label or absent,
        "LABEL_VALID": ports.label_valid or absent,
    }
    values["MODELS"] = whole_models_source(ports, toplevel) if models is None else models
    values["WATCH"] = watch_source(watch)
    template = files(__package__).joinpath("compiled_tb.cpp").read_text()
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], template)


def whole_models_source(ports, toplevel):
    """The testbench's models (see ``compiled_tb.cpp``) when the design is one Verilator model."""
    t, clk = f"V{toplevel}", ports.clock
    return f"""#include "{t}.h"
static {t}* top;
static void make_models() {{ top = new {t}; top->{clk} = 0; }}
static void settle(uint64_t) {{ top->eval(); }}
static void clock_edge() {{ top->{clk} = 1; top->eval(); top->{clk} = 0; }}
static void end_models() {{ top->final(); delete top; }}
"""


@dataclass(frozen=True)
class Watch:
    """What a :func:`watched_accelerator` brings out: on port ``port`` bit ``2k`` is the valid and
    ``2k + 1`` the ready of stream ``names[k]``, on ``moved`` whether any of them transfers this
    cycle; ``fifos`` maps each skip FIFO (a FIFO stage in front of a join: an add or concat) to the
    indices of the stream into it and the stream out of it (the join's input)."""
    port: str
    moved: str
    names: tuple
    fifos: dict

    @property
    def width(self):
        return 2 * len(self.names)


def watch_source(watch):
    """The testbench's watched handshakes (``@WATCH@`` of ``compiled_tb.cpp``) for ``watch``
    (a :class:`Watch`, or None: nothing watched)."""
    if watch is None or not watch.names:
        return ("static const int n_watch = 0;\nstatic const char* const watch_names[] = {\"\"};\n"
                "static bool watch_valid(int) { return false; }\nstatic bool watch_ready(int) { return false; }\n"
                "static bool watch_moved() { return false; }\n"
                "static const int n_pairs = 0;\nstatic const int occupancy_pairs[][2] = {{0, 0}};\n")
    port = _cxx(watch.port)
    # Verilator: up to 64 bits an integer, wider an array of 32-bit words
    bit = (f"(top->{port}[(b) / 32] >> ((b) % 32)) & 1" if watch.width > 64
           else f"((uint64_t)top->{port} >> (b)) & 1")
    names = ", ".join('"' + n.replace('"', "'") + '"' for n in watch.names)
    pairs = ", ".join(f"{{{a}, {b}}}" for a, b in watch.fifos.values()) or "{0, 0}"
    return (f"static const int n_watch = {len(watch.names)};\n"
            f"static const char* const watch_names[] = {{{names}}};\n"
            f"#define WATCH_BIT(b) ({bit})\n"
            "static bool watch_valid(int k) { return WATCH_BIT(2 * k); }\n"
            "static bool watch_ready(int k) { return WATCH_BIT(2 * k + 1); }\n"
            f"static bool watch_moved() {{ return top->{_cxx(watch.moved)}; }}\n"
            f"static const int n_pairs = {len(watch.fifos)};\n"
            f"static const int occupancy_pairs[][2] = {{{pairs}}};\n")


def watched_accelerator(accelerator):
    """A simulation-only wrapper of an :class:`~qnnfab.rtl.axis_accelerator.AxiStreamAccelerator`
    (not generated as hardware): the same ports, wired straight through, plus ``watch`` (out), the
    valid and ready of every stage input of its dataflow
    (:func:`~qnnfab.sim.branch_timing.dataflow_streams`), and ``watch_moved`` (out), high in a
    cycle in which any of them transfers. Returns ``(component, Watch)``. The
    watched signals are read, not driven: the accelerator's logic is the same."""
    from amaranth.hdl import Cat, Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from .branch_timing import dataflow_streams

    df = accelerator.dataflow
    streams = dataflow_streams(df)
    names = tuple(streams)
    index = {n: k for k, n in enumerate(names)}
    # each skip FIFO's input stream, and the join's input it feeds
    fifos = {src: (index[f"{src} input"], index[f"{s.name} input {'ab'[j]}"])
             for s in df.plan.stages if s.kind in JOINS for j, (src, _) in enumerate(s.reads)}
    watch = Watch("watch", "watch_moved", names, fifos)
    members = dict(accelerator.signature.members.items())

    class _Watched(wiring.Component):
        def __init__(self):
            super().__init__({**members, "watch": Out(watch.width), "watch_moved": Out(1)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.accelerator = accelerator
            for name, member in members.items():
                ours, theirs = getattr(self, name), getattr(accelerator, name)
                m.d.comb += theirs.eq(ours) if member.flow == In else ours.eq(theirs)
            m.d.comb += [self.watch.eq(Cat(*(Cat(s.valid, s.ready) for s in streams.values()))),
                         self.watch_moved.eq(Cat(*(s.valid & s.ready for s in streams.values())).any())]
            return m

    return _Watched(), watch


def _cxx(port):
    """The C++ member Verilator makes of the Verilog port ``port`` (it encodes ``__`` as ``___05F``)."""
    return port.replace("__", "___05F")


def stage_ports(verilog_text, toplevel):
    """The ports of the stage module ``toplevel`` in ``verilog_text``: ``(has clk, has rst)``.
    Refuses a stage whose ports are not one stream in (``i``), one out (``o``) and its clock and
    reset (the per-stage harness connects nothing else)."""
    m = re.search(rf"^module {re.escape(toplevel)}\((.*?)\);", verilog_text, re.M | re.S)
    if m is None:
        raise ValueError(f"no module {toplevel} in the stage's Verilog")
    names = {n.strip() for n in m.group(1).split(",")}
    stream_ports = {f"{s}__{p}" for s in "io" for p in ("valid", "ready", "payload")}
    if not stream_ports <= names or names - stream_ports - {"clk", "rst"}:
        raise ValueError(f"stage {toplevel} has ports {sorted(names)}: the per-stage harness connects a stream "
                         "i, a stream o, clk and rst only")
    return "clk" in names, "rst" in names


def staged_models_source(ports, shell_top, stages):
    """The testbench's models (see ``compiled_tb.cpp``) when the design is simulated as a shell
    ``V<shell_top>`` (the accelerator's ports and the logic outside the stages, with the stream
    ``stage_in`` to the first stage and ``stage_out`` from the last) and one model per stage,
    ``stages`` = ``[(toplevel, has clk, has rst)]`` in stream order, each with a stream ``i`` in
    and ``o`` out.

    What the harness assumes, and checks every settle: the valid and payload a model drives
    do not depend combinationally on a ready it receives (a stage's ``o.valid``/``o.payload``
    on its ``o.ready``; the shell's ``stage_in`` valid/payload and its ``stage_out`` ready on
    ``stage_in``'s ready); ready may depend on anything. Then one pass forward (each stage
    given its input stream's valid and payload, from the shell's ``stage_in`` through the
    stages back into the shell's ``stage_out``) and one pass backward (each stage given its
    output's ready, from the shell's ``stage_out`` to its ``stage_in``) reach the values the
    same design computes as one model. A model is evaluated only when an input it receives
    changed (without a clock edge its outputs are a function of its inputs and state; the
    shell, whose testbench inputs change, always). After the passes every connection is
    compared once more (each model's outputs as they are now against what its neighbour
    received); a difference means the assumption is broken and the run stops with the stage
    named (exit code 3). On the rising edge every model is clocked with the settled inputs
    (evaluated once more at clock low first when the settle did not, so that it sees the
    edge); each stage's reset (active high) follows the shell's reset port.
    """
    shell = f"V{shell_top}"
    n = len(stages)
    v, r, pl = _cxx("i__valid"), _cxx("i__ready"), _cxx("i__payload")
    ov, orr, op = _cxx("o__valid"), _cxx("o__ready"), _cxx("o__payload")
    siv, sir, sip = _cxx("stage_in__valid"), _cxx("stage_in__ready"), _cxx("stage_in__payload")
    sov, sor, sop = _cxx("stage_out__valid"), _cxx("stage_out__ready"), _cxx("stage_out__payload")
    clk = ports.clock
    lines = [f'#include "{shell}.h"', *(f'#include "V{t}.h"' for t, _, _ in stages),
             f"static {shell}* top;", *(f"static V{t}* s{k};" for k, (t, _, _) in enumerate(stages)),
             f"static bool evaluated[{n}];  // stage k evaluated since the last rising edge",
             "template <class T> static bool same(const T& a, const T& b) { return std::memcmp(&a, &b, sizeof(T)) == 0; }",
             "template <class T> static bool put(T& to, const T& from) {  // true when `to` changed",
             "    if (same(to, from)) return false;", "    to = from;", "    return true;", "}",
             "static void broken(uint64_t cycle, const char* who) {",
             '    std::fprintf(stderr, "cycle %llu: %s: a valid or payload changed when a ready did; the per-stage '
             'harness settles valid and payload forward, then ready backward, once (build the design as one model)\\n",',
             "                 (unsigned long long)cycle, who);",
             "    std::exit(3);", "}",
             "static void make_models() {", f"    top = new {shell};", f"    top->{clk} = 0;"]
    for k, (t, has_clk, _) in enumerate(stages):
        # evaluated once here, so that a model whose inputs never change still computes its outputs
        lines.append(f"    s{k} = new V{t};" + (f" s{k}->clk = 0;" if has_clk else "") + f" s{k}->eval();")
    lines += ["}", "static void settle(uint64_t cycle) {",
              f"    const CData rst = top->{ports.reset} == {ports.reset_active};",
              "    bool changed;",
              "    top->eval();"]
    src = ("top", siv, sip)
    for k, (t, _, has_rst) in enumerate(stages):
        lines.append(f"    changed = put(s{k}->{v}, {src[0]}->{src[1]}) | put(s{k}->{pl}, {src[0]}->{src[2]})"
                     f"{' | put(s%d->rst, rst)' % k if has_rst else ''};")
        lines.append(f"    if (changed) {{ s{k}->eval(); evaluated[{k}] = true; }}")
        src = (f"s{k}", ov, op)
    lines.append(f"    if (put(top->{sov}, s{n - 1}->{ov}) | put(top->{sop}, s{n - 1}->{op})) top->eval();")
    ready = ("top", sor)
    for k in reversed(range(n)):
        lines.append(f"    if (put(s{k}->{orr}, {ready[0]}->{ready[1]})) {{ s{k}->eval(); evaluated[{k}] = true; }}")
        ready = (f"s{k}", r)
    lines.append(f"    if (put(top->{sir}, s0->{r})) top->eval();")
    lines.append(f'    if (top->{siv} != s0->{v} || !same(top->{sip}, s0->{pl})) broken(cycle, "stage_in of {shell_top}");')
    for k, (t, _, _) in enumerate(stages):
        dst = (f"s{k + 1}", v, pl) if k + 1 < n else ("top", sov, sop)
        lines.append(f"    if (s{k}->{ov} != {dst[0]}->{dst[1]} || !same(s{k}->{op}, {dst[0]}->{dst[2]})) "
                     f'broken(cycle, "stage {t}");')
    lines.append(f'    if (top->{sor} != s{n - 1}->{orr}) broken(cycle, "stage_out ready of {shell_top}");')
    lines += ["}", "static void clock_edge() {", f"    top->{clk} = 1; top->eval(); top->{clk} = 0;"]
    for k, (_, has_clk, _) in enumerate(stages):
        if has_clk:
            lines.append(f"    if (!evaluated[{k}]) s{k}->eval();")
            lines.append(f"    s{k}->clk = 1; s{k}->eval(); s{k}->clk = 0; evaluated[{k}] = false;")
    lines += ["}", "static void end_models() {",
              "    top->final(); delete top;" + "".join(f" s{k}->final(); delete s{k};" for k in range(n)), "}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# build (cached) and run

@dataclass
class CompiledRun:
    """One run of the compiled testbench: every output word with its cycle, every label."""
    words: np.ndarray           # (n_out, out_bytes) uint8
    word_cycles: np.ndarray     # (n_out,) int64
    labels: np.ndarray          # (n_labels,) int64
    label_cycles: np.ndarray
    cycles: int                 # cycles simulated (reset excluded)
    sim_seconds: float
    build: Build
    fifo_occupancy: dict = None  # watched FIFO stage -> most words it held (into it minus out of it)

    @property
    def cycles_per_second(self):
        return self.cycles / self.sim_seconds if self.sim_seconds > 0 else float("inf")


def _threshold(p):
    if not 0.0 < p <= 1.0:
        raise ValueError(f"probability must be in (0, 1], not {p!r}")
    return 2**64 - 1 if p >= 1.0 else int(p * 2**64)


def run_testbench(build, ports, in_bytes_data, out_words_per_frame, *, seed=1, valid_prob=1.0,
                  ready_prob=1.0, check_handshake=None, max_cycles=None, stall_limit=0, watch=None):
    """Run ``build`` on packed input words; return a :class:`CompiledRun`.

    ``check_handshake`` (default: when anything is stalled) probes both ready
    values every cycle. Raises :class:`SimulationMismatch` when the testbench
    reports a broken stream rule or a timeout, :class:`CompiledDeadlock` when no
    watched stream (the ports, and the ``watch`` of a :func:`watched_accelerator`
    build) moved for ``stall_limit`` cycles (0: not watched).
    """
    n_in = len(in_bytes_data) // ports.in_bytes
    if check_handshake is None:
        check_handshake = valid_prob < 1.0 or ready_prob < 1.0
    if max_cycles is None:
        max_cycles = 10_000 + 50 * n_in * max(1, out_words_per_frame)
    with tempfile.TemporaryDirectory(prefix="qnnfab-compiled-") as d:
        d = Path(d)
        (d / "inputs.bin").write_bytes(in_bytes_data)
        cmd = [str(build.executable), str(d / "inputs.bin"), str(d / "outputs.bin"), str(d / "labels.bin"),
               str(out_words_per_frame), str(seed), str(_threshold(valid_prob)), str(_threshold(ready_prob)),
               "1" if check_handshake else "0", str(max_cycles), str(int(stall_limit))]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.monotonic() - t0
        if proc.returncode != 0:
            error = CompiledDeadlock if proc.returncode == 4 else SimulationMismatch
            raise error(f"compiled simulation stopped: {proc.stderr.strip() or proc.stdout.strip()} "
                        f"(seed {seed}; valid {valid_prob}, ready {ready_prob})")
        lines = proc.stdout.split("\n")
        cycles = int(lines[0].split()[1])
        held = {int(k): int(v) for _, k, v in (ln.split() for ln in lines[1:] if ln.startswith("occupancy "))}
        occupancy = {name: held[k] for k, name in enumerate(watch.fifos)} if watch is not None else None
        rec = np.dtype([("cycle", "<u8"), ("word", np.uint8, (ports.out_bytes,))])
        out = np.fromfile(d / "outputs.bin", dtype=rec)
        lab = np.fromfile(d / "labels.bin", dtype=[("cycle", "<u8"), ("label", "<u8")])
    return CompiledRun(out["word"], out["cycle"].astype(np.int64), lab["label"].astype(np.int64),
                       lab["cycle"].astype(np.int64), cycles, seconds, build, occupancy)


# ---------------------------------------------------------------------------
# whole networks

# whether NetworkBench builds a network as one model per stage (see NetworkBench)
PER_STAGE = True


class NetworkBench:
    """A network config's accelerator on the compiled engine.

    ``NetworkBench(cfg).run(frames, ...)`` packs ``frames`` (stored input
    values, shape (B,) + input_shape), streams them through the accelerator and
    returns the :class:`CompiledRun`; :meth:`scores` decodes its output words.
    The build happens on first use (cached across runs and processes). ``top``
    replaces the accelerator by another component with its ports (the tests
    pass deliberately broken ones); it is built as one model. A graph's skip FIFOs take the
    plan's depths (what ``generate`` builds) unless ``skip_depths`` names others (e.g. the
    characterised ones of :func:`~qnnfab.sim.branch_timing.graph_throughput_depths`, an add's;
    a concat's smallest depths come from ``bench/bench_skip_depths.py``'s bisection).

    ``per_stage`` (default :data:`PER_STAGE`; the accelerator of a chain only; a graph is built as one model): every
    layer with the width converter and FIFO in front of it
    (:func:`qnnfab.rtl.dataflow.layer_chain`) is its own Verilator model, built and cached on its own
    (:func:`qnnfab.sim.build.build_staged`), and the accelerator's own logic
    (framing, last, label, the AXI-Stream ports) a shell around them
    (``AxiStreamAccelerator(stages_outside=True)``); the harness
    (:func:`staged_models_source`) runs them cycle for cycle as the one-model
    build. A change to one layer rebuilds its model (and the next layer's, when the FIFO
    in front of that one is resized), the shell and the harness. A stage whose description
    (:func:`~qnnfab.sim.stage_identity.chain_description`: its plan stages, layer settings,
    weights, thresholds, the network's settings and the sources that write Verilog) has a
    built model is not elaborated: its Verilog is read from that model's cache entry
    (:func:`~qnnfab.sim.build.known_stage_verilog`); ``elaborated`` names the stages that were.
    """

    TOPLEVEL = "network"

    def __init__(self, cfg, *, pipeline=None, top=None, log=None, skip_depths=None, per_stage=None):
        from qnnfab.rtl.axis_accelerator import AxiStreamAccelerator
        from qnnfab.rtl.dataflow import chain_layers

        self.cfg = cfg
        self.per_stage = PER_STAGE if per_stage is None else per_stage
        if top is not None or cfg.is_graph:
            self.per_stage = False
        # a runtime-weights config runs with its weights as constants here (the same datapath);
        # loading them through wload is the weights_reload regression's job
        self.top = top if top is not None else AxiStreamAccelerator(cfg, pipeline=pipeline, weights_mode="const",
                                                                     skip_depths=skip_depths,
                                                                     stages_outside=self.per_stage)
        self.format = self.top.format
        self.ports = network_ports(self.top)
        self.in_words_per_frame = cfg.input_words()
        self.in_simd = self.format.in_elems
        self.in_bits = self.format.in_bits
        # a graph is watched inside: a deadlock names the stage inputs that stopped, and the
        # run reports the most words each FIFO held
        self.watch = None
        simulated = self.top
        if top is None and cfg.is_graph:
            simulated, self.watch = watched_accelerator(self.top)
        self._verilog = to_verilog(simulated, self.TOPLEVEL)
        self._stages, self._descriptions, self.elaborated = [], [], []
        models = None
        if self.per_stage:
            plan = self.top.dataflow.plan
            for layer in chain_layers(plan):
                t = chain_toplevel(layer)
                description = chain_description(plan, layer, t, pipeline)
                text = known_stage_verilog(description, t)
                if text is None:
                    text = chain_verilog(plan, layer, t, pipeline)
                    self.elaborated.append(t)
                self._stages.append((t, text))
                self._descriptions.append((description, text))
            models = staged_models_source(self.ports, self.TOPLEVEL,
                                          [(t, *stage_ports(v, t)) for t, v in self._stages])
        self._tb = testbench_source(self.ports, self.TOPLEVEL, self.in_words_per_frame, models, self.watch)
        self._log = log
        self._build = None

    @property
    def verilog_bytes(self):
        """Bytes of Verilog the simulator reads (the shell and every stage when per stage)."""
        return len(self._verilog) + sum(len(v) for _, v in self._stages)

    @property
    def build(self):
        if self._build is None:
            design = f"network-{self.cfg.name}"
            if self.per_stage:
                self._build = build_staged(self._verilog, self.TOPLEVEL, self._stages, self._tb, log=self._log,
                                           design=design, descriptions=self._stage_descriptions())
            else:
                self._build = build_compiled(self._verilog, self.TOPLEVEL, self._tb, log=self._log, design=design)
        return self._build

    def _stage_descriptions(self):
        """Each stage's description, None for a stage whose Verilog is not the text it describes
        (replaced after construction: the tests break stages on purpose)."""
        return [d if text is v else None for (d, text), (_, v) in zip(self._descriptions, self._stages)]

    def pack(self, frames):
        frames = np.asarray(frames)
        if frames.shape[1:] != tuple(self.cfg.input_shape):
            raise ValueError(f"frames of shape {frames.shape[1:]}, the network takes {self.cfg.input_shape}")
        frames = self.cfg.pad_frames(frames)
        return pack_bytes(frames.reshape(-1, self.in_simd), self.in_bits, self.ports.in_bytes).tobytes()

    def stall_limit(self, valid_prob=1.0, ready_prob=1.0):
        """Cycles without a transfer on any watched stream after which a run of a watched design
        stops as a deadlock (0: not watched): two frames of the bottleneck at the stalled rates
        (every stage takes an input word at least once a frame while the network runs)."""
        if self.watch is None:
            return 0
        _, (_, model), _ = self.cfg.throughput()
        return int(1000 + 2 * model / min(valid_prob, ready_prob))

    def run(self, frames, *, seed=1, valid_prob=1.0, ready_prob=1.0, check_handshake=None, max_cycles=None):
        n = np.asarray(frames).shape[0]
        _, (_, model), _ = self.cfg.throughput()
        # a generous bound: every frame at its bottleneck, its words at the stalled rates, plus the pipeline
        per_frame = model + (self.in_words_per_frame + self.format.out_words) / min(valid_prob, ready_prob)
        if max_cycles is None:
            max_cycles = int(20_000 + 4 * n * per_frame)
        return run_testbench(self.build, self.ports, self.pack(frames), self.format.out_words, seed=seed,
                             valid_prob=valid_prob, ready_prob=ready_prob, check_handshake=check_handshake,
                             max_cycles=max_cycles, stall_limit=self.stall_limit(valid_prob, ready_prob),
                             watch=self.watch)

    def scores(self, run):
        """The run's output words as the reported scores, shape (frames, classes)."""
        n = run.words.shape[0]
        f = self.format   # every score in its own whole-byte field, sign-extended when signed
        scores = unpack_bytes(run.words, f.out_elems, 8 * f.score_bytes, f.out_signed).reshape(n // f.out_words, -1)
        return scores[:, :f.classes]


def check_network(bench, frames, run, golden_scores=None):
    """Compare every output word and label of ``run`` with the golden model.

    Raises :class:`SimulationMismatch` naming the first mismatch (frame, word,
    expected, got). Returns the golden scores, shape (frames, outputs).
    """
    frames = np.asarray(frames)
    if golden_scores is None:
        golden_scores = graph_forward(bench.cfg, frames).reshape(frames.shape[0], -1)
    n_frames = frames.shape[0]
    per = bench.format.out_words
    if run.words.shape[0] != n_frames * per:
        raise SimulationMismatch(f"{run.words.shape[0]} output words for {n_frames} frames, "
                                 f"expected {n_frames * per}")
    got = bench.scores(run)
    bad = np.nonzero((got != golden_scores).any(axis=1))[0]
    if bad.size:
        f = int(bad[0])
        e = int(np.nonzero(got[f] != golden_scores[f])[0][0])
        word, lane = divmod(e, bench.format.out_elems)
        raise SimulationMismatch(
            f"frame {f}, word {word} (output {e}): expected {golden_scores[f].reshape(per, -1)[word].tolist()}, "
            f"got {got[f].reshape(per, -1)[word].tolist()}")
    rule = bench.cfg.label
    labels = frame_labels(golden_scores, rule)
    if run.labels.shape[0] != n_frames:
        raise SimulationMismatch(f"{run.labels.shape[0]} labels for {n_frames} frames")
    wrong = np.nonzero(run.labels != labels)[0]
    if wrong.size:
        f = int(wrong[0])
        raise SimulationMismatch(f"frame {f}: label {int(run.labels[f])}, golden label ({rule}) {int(labels[f])}")
    return golden_scores


def steady_cycles_per_frame(run, words_per_frame):
    """Steady-state cycles per frame: between the last words of frame ``skip``
    and of the last frame, skipping the first frames while the pipeline fills."""
    ends = run.word_cycles[words_per_frame - 1::words_per_frame]
    n = len(ends)
    if n < 2:
        return float("nan")
    skip = min(n // 4, 10)
    return float(ends[-1] - ends[skip]) / (n - 1 - skip)


@dataclass
class Verification:
    """What :func:`verify_network` found over a set of frames (labels under the config's label rule)."""
    frames: int
    labels: np.ndarray              # hardware labels (its label port), (frames,)
    golden_labels: np.ndarray
    frames_identical: int           # frames whose every output word equals golden
    first_mismatch: str | None      # the first differing word, or None
    cycles: int                     # of the unstalled run
    cycles_per_second: float
    cycles_per_frame: float         # steady state, unstalled
    stalled_frames: int             # frames also run under random gaps and backpressure
    build: Build
    scores: np.ndarray = None       # hardware scores of the unstalled run, (frames, outputs)
    golden_scores: np.ndarray = None

    @property
    def agreement(self):
        return float(np.mean(self.labels == self.golden_labels)) if self.frames else 1.0

    def accuracy(self, y):
        return float(np.mean(self.labels == np.asarray(y)))

    @property
    def identical(self):
        return self.first_mismatch is None


def verify_network(cfg, frames, *, seed=1, stalled_frames=None, pipeline=None, log=None):
    """Run ``frames`` through ``cfg``'s accelerator on the compiled engine and
    compare every output word with the golden model.

    The first ``stalled_frames`` frames (default a fifth, at least 4) run
    first under random input gaps and output backpressure with every stream
    rule checked (a broken rule raises :class:`SimulationMismatch`); then all
    frames run unstalled, which gives the throughput figures. Differences from
    the golden model are counted, not raised: see :class:`Verification`.
    """
    frames = np.asarray(frames)
    n = frames.shape[0]
    bench = NetworkBench(cfg, pipeline=pipeline, log=log)
    golden = graph_forward(cfg, frames).reshape(n, -1)
    if stalled_frames is None:
        stalled_frames = min(n, max(4, n // 5))
    if stalled_frames:
        part = frames[:stalled_frames]
        stalled = bench.run(part, seed=seed, valid_prob=0.7, ready_prob=0.5)
        check_network(bench, part, stalled, golden[:stalled_frames])
    run = bench.run(frames, seed=seed + 1)
    per = bench.format.out_words
    if run.words.shape[0] != n * per or run.labels.shape[0] != n:
        raise SimulationMismatch(f"{run.words.shape[0]} output words and {run.labels.shape[0]} labels "
                                 f"for {n} frames ({per} words each)")
    got = bench.scores(run)
    same = (got == golden).all(axis=1)
    first = None
    try:
        check_network(bench, frames, run, golden)
    except SimulationMismatch as e:
        first = str(e)
    return Verification(n, run.labels, frame_labels(golden, cfg.label), int(same.sum()), first, run.cycles,
                        run.cycles_per_second, steady_cycles_per_frame(run, per), stalled_frames, bench.build,
                        got, golden)

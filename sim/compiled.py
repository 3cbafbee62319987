"""The compiled simulation engine: whole networks on a plain Verilator C++ testbench.

cocotb drives every cycle from Python (a few thousand cycles/s on a whole
network); this engine writes a C++ testbench for the accelerator's stream
ports, builds it with Verilator once per design (cached like the cocotb
builds) and runs whole test sets at Verilator speed. Python packs the frames
(:func:`pack_words`), the testbench streams them and logs every output word
with its cycle, and Python compares every word with the golden model
(:func:`check_network`).

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

Files: ``inputs.bin`` holds ``in_bytes`` little-endian bytes per input word;
the testbench writes ``outputs.bin`` (per word: the cycle as a little-endian
uint64, then ``out_bytes`` bytes) and ``labels.bin`` (per frame: cycle,
label, both uint64).
"""

import fcntl
import hashlib
import math
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnnfab.cache import cache_dir
from qnnfab.errors import QnnfabError

from .build import _keep_runtime as keep_runtime
from .toolchain import setup_verilator, verilator_version

__all__ = ["StreamPorts", "CompiledBuild", "CompiledRun", "SimulationMismatch", "build_compiled",
           "network_ports", "pack_words", "unpack_words", "testbench_source", "run_testbench", "NetworkBench",
           "check_network", "steady_cycles_per_frame", "Verification", "verify_network"]

# The per-cycle code at -O2 (whole test sets run millions of cycles); the
# run-once code (constructors) at -O0, as in the cocotb builds.
MAKE_VARIABLES = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O2", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")
VERILATOR_ARGS = ("--cc", "--exe", "--no-timing", "--x-assign", "fast", "--x-initial", "fast",
                  "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC")


class SimulationMismatch(QnnfabError, AssertionError):
    """The hardware broke a stream rule or disagreed with the golden model."""


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
# word packing (vectorised: whole test sets are packed at once)

def pack_words(elems, bits, nbytes):
    """Rows of ``elems`` (last axis = the elements of one word, element 0 at
    the LSBs, ``bits`` each, two's complement) as ``nbytes`` little-endian
    bytes per word; returns ``bytes``."""
    e = np.asarray(elems, dtype=np.int64)
    rows = e.reshape(-1, e.shape[-1])
    n, k = rows.shape
    bitplanes = ((rows[:, :, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(n, k * bits)
    padded = np.zeros((n, nbytes * 8), np.uint8)
    padded[:, :k * bits] = bitplanes
    return np.packbits(padded, axis=1, bitorder="little").tobytes()


def unpack_words(raw, n_words, nbytes, elems, bits, signed):
    """Inverse of :func:`pack_words`: ``(n_words, elems)`` int64 values."""
    b = np.frombuffer(raw, np.uint8).reshape(n_words, nbytes)
    planes = np.unpackbits(b, axis=1, bitorder="little")[:, :elems * bits].reshape(n_words, elems, bits)
    vals = (planes.astype(np.int64) << np.arange(bits)).sum(-1)
    if signed:
        vals = np.where(vals >> (bits - 1), vals - (1 << bits), vals)
    return vals


# ---------------------------------------------------------------------------
# the C++ testbench

def _set_code(port, width):
    if width > 64:
        return (f"for (int k = 0; k < {math.ceil(width / 32)}; ++k) top->{port}[k] = le32(w + 4 * k, nb - 4 * k);")
    return f"top->{port} = le64(w, nb);"


def _get_code(port, width):
    if width > 64:
        return (f"for (int k = 0; k < {math.ceil(width / 32)}; ++k) put32(w + 4 * k, nb - 4 * k, "
                f"top->{port}[k]);")
    return f"put64(w, nb, (uint64_t)top->{port});"


_TB = r"""// Generated by qnnfab.sim.compiled: streaming testbench for @TOP@.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "V@TOP@.h"
#include "verilated.h"

static uint64_t rng_state;
static uint64_t next_rand() {  // splitmix64
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static bool chance(uint64_t threshold) { return threshold == UINT64_MAX || next_rand() < threshold; }
static uint64_t le64(const uint8_t* b, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n && i < 8; ++i) v |= (uint64_t)b[i] << (8 * i);
    return v;
}
static uint32_t le32(const uint8_t* b, int n) { return n <= 0 ? 0 : (uint32_t)le64(b, n < 4 ? n : 4); }
static void put64(uint8_t* b, int n, uint64_t v) { for (int i = 0; i < n && i < 8; ++i) b[i] = (uint8_t)(v >> (8 * i)); }
static void put32(uint8_t* b, int n, uint32_t v) { for (int i = 0; i < n && i < 4; ++i) b[i] = (uint8_t)(v >> (8 * i)); }

static V@TOP@* top;
static void set_input(const uint8_t* w) { const int nb = @IN_BYTES@; @SET_IN@ }
static void get_output(uint8_t* w) { const int nb = @OUT_BYTES@; std::memset(w, 0, nb); @GET_OUT@ }

static int fail(uint64_t cycle, const char* what) {
    std::fprintf(stderr, "cycle %llu: %s\n", (unsigned long long)cycle, what);
    return 3;
}

int main(int argc, char** argv) {
    if (argc != 10) {
        std::fprintf(stderr, "usage: %s inputs.bin outputs.bin labels.bin words_per_frame_out seed "
                     "valid_threshold ready_threshold check_handshake max_cycles\n", argv[0]);
        return 2;
    }
    FILE* fin = std::fopen(argv[1], "rb");
    if (!fin) { std::perror(argv[1]); return 2; }
    std::vector<uint8_t> in;
    uint8_t buf[65536];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, fin)) > 0) in.insert(in.end(), buf, buf + got);
    std::fclose(fin);
    const size_t in_words = in.size() / @IN_BYTES@;
    const uint64_t out_per_frame = std::strtoull(argv[4], nullptr, 10);
    rng_state = std::strtoull(argv[5], nullptr, 10);
    const uint64_t valid_thr = std::strtoull(argv[6], nullptr, 10);
    const uint64_t ready_thr = std::strtoull(argv[7], nullptr, 10);
    const bool check_hs = std::atoi(argv[8]) != 0;
    const uint64_t max_cycles = std::strtoull(argv[9], nullptr, 10);
    FILE* fout = std::fopen(argv[2], "wb");
    FILE* flab = std::fopen(argv[3], "wb");
    if (!fout || !flab) { std::perror("output"); return 2; }

    Verilated::randReset(0);
    top = new V@TOP@;
    top->@CLK@ = 0;
    top->@RESET@ = @RESET_ON@;
    top->@IN_VALID@ = 0;
    top->@OUT_READY@ = 0;
    for (int k = 0; k < 2; ++k) { top->eval(); top->@CLK@ = 1; top->eval(); top->@CLK@ = 0; }
    top->@RESET@ = !@RESET_ON@;
    top->eval();

    std::vector<uint8_t> word(@OUT_BYTES@), held(@OUT_BYTES@), probe(@OUT_BYTES@);
    size_t pos = 0;
    bool offering = false, holding = false;
    uint64_t out_words = 0, labels = 0;
    const uint64_t expected_out = (in_words / @IN_PER_FRAME@) * out_per_frame;
    uint64_t cycle = 0, tail = 0;
    int rc = 0;
    while (true) {
        // drive (clock low): a new input word, and this cycle's ready
        if (!offering && pos < in_words && chance(valid_thr)) {
            set_input(&in[pos * @IN_BYTES@]);
            @SET_IN_LAST@
            offering = true;
        }
        top->@IN_VALID@ = offering;
        const bool ready = out_words < expected_out && chance(ready_thr);
        if (check_hs) {  // valid and payload must not depend on ready
            top->@OUT_READY@ = !ready;
            top->eval();
            const bool v = top->@OUT_VALID@;
            if (v) get_output(probe.data());
            top->@OUT_READY@ = ready;
            top->eval();
            if (v != (bool)top->@OUT_VALID@) { rc = fail(cycle, "output valid depends on ready"); break; }
            if (v) {
                get_output(word.data());
                if (word != probe) { rc = fail(cycle, "output payload depends on ready"); break; }
            }
        } else {
            top->@OUT_READY@ = ready;
            top->eval();
        }
        // sample (the transfers of the coming rising edge)
        const bool in_fire = offering && top->@IN_READY@;
        const bool out_valid = top->@OUT_VALID@;
        if (holding) {
            if (!out_valid) { rc = fail(cycle, "output valid dropped before the offered word was taken"); break; }
            get_output(word.data());
            if (word != held) { rc = fail(cycle, "output payload changed while stalled"); break; }
        }
        if (out_valid) {
            if (out_words >= expected_out) { rc = fail(cycle, "an output word after the last frame's"); break; }
            get_output(word.data());
            if (ready) {
                @CHECK_LAST@
                uint64_t c = cycle;
                std::fwrite(&c, 8, 1, fout);
                std::fwrite(word.data(), 1, word.size(), fout);
                ++out_words;
                holding = false;
            } else {
                held = word;
                holding = true;
            }
        } else {
            holding = false;
        }
        @LABEL@
        // rising edge
        top->@CLK@ = 1;
        top->eval();
        top->@CLK@ = 0;
        if (in_fire) { offering = false; ++pos; }
        ++cycle;
        if (out_words >= expected_out && pos >= in_words) {
            if (++tail > 32) break;  // watch a few more cycles: nothing may follow
        }
        if (cycle >= max_cycles) { rc = fail(cycle, "timeout waiting for output words"); break; }
    }
    std::fclose(fout);
    std::fclose(flab);
    std::printf("cycles %llu out_words %llu labels %llu\n", (unsigned long long)cycle,
                (unsigned long long)out_words, (unsigned long long)labels);
    top->final();
    delete top;
    return rc;
}
"""

_CHECK_LAST = """if (((bool)top->{last}) != ((out_words + 1) % out_per_frame == 0)) {{
                    rc = fail(cycle, "output last is not on the last word of a frame"); break;
                }}"""

_LABEL = """if (top->{valid}) {{
            if (labels >= out_words / out_per_frame) {{ rc = fail(cycle, "a label before its frame's last word"); break; }}
            uint64_t c = cycle, l = (uint64_t)top->{label};
            std::fwrite(&c, 8, 1, flab);
            std::fwrite(&l, 8, 1, flab);
            ++labels;
        }}"""


def testbench_source(ports, toplevel, in_words_per_frame):
    """The C++ testbench for ``ports`` (a :class:`StreamPorts`)."""
    subst = {
        "@TOP@": toplevel, "@CLK@": ports.clock,
        "@SET_IN_LAST@": (f"top->{ports.in_last} = (pos + 1) % {in_words_per_frame} == 0;"
                          if ports.in_last else ""),
        "@IN_BYTES@": str(ports.in_bytes), "@OUT_BYTES@": str(ports.out_bytes),
        "@SET_IN@": _set_code(ports.in_data, ports.in_width),
        "@GET_OUT@": _get_code(ports.out_data, ports.out_width),
        "@RESET@": ports.reset, "@RESET_ON@": str(ports.reset_active),
        "@IN_VALID@": ports.in_valid, "@IN_READY@": ports.in_ready,
        "@OUT_VALID@": ports.out_valid, "@OUT_READY@": ports.out_ready,
        "@IN_PER_FRAME@": str(in_words_per_frame),
        "@CHECK_LAST@": _CHECK_LAST.format(last=ports.out_last) if ports.out_last else "",
        "@LABEL@": _LABEL.format(valid=ports.label_valid, label=ports.label) if ports.label else "",
    }
    text = _TB
    for k, v in subst.items():
        text = text.replace(k, v)
    return text


# ---------------------------------------------------------------------------
# build (cached) and run

@dataclass
class CompiledBuild:
    """A built testbench executable."""
    directory: Path
    executable: Path
    key: str
    cached: bool
    seconds: float


def _key(verilog_text, tb_text, toplevel):
    h = hashlib.sha256()
    for part in (verilog_text, tb_text, toplevel, verilator_version(), repr(VERILATOR_ARGS),
                 repr(MAKE_VARIABLES), os.environ.get("CXX", ""), "qnnfab-compiled-v1"):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _runtime_dir():
    """Cache of Verilator's design-independent runtime objects for these flags."""
    h = hashlib.sha256(repr((str(setup_verilator()), verilator_version(), VERILATOR_ARGS, MAKE_VARIABLES,
                             os.environ.get("CXX", ""))).encode()).hexdigest()[:16]
    return cache_dir() / "compiled-runtime" / h


def _seed_runtime(runtime, obj):
    """Copy cached runtime objects into a generated model folder (fresh times:
    make sees them newer than the generated makefile they depend on)."""
    if (runtime / "ok").exists():
        for f in runtime.iterdir():
            if f.name.startswith("verilated") and f.suffix in (".o", ".d"):
                shutil.copyfile(f, obj / f.name)


def build_compiled(verilog_text, toplevel, tb_text, *, log=None):
    """Build (or reuse) the Verilator executable of ``verilog_text`` + ``tb_text``.

    The build runs in a temporary folder next to the cache entry and is
    renamed into place when complete, so an interrupted build never leaves a
    half-built entry; a lock serialises concurrent builds of one design.
    """
    setup_verilator()
    key = _key(verilog_text, tb_text, toplevel)
    root = cache_dir() / "compiled"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{toplevel}-{key}"
    exe = final / "obj" / "Vtb"
    with open(root / f"{toplevel}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.exists():
            return CompiledBuild(final, exe, key, True, 0.0)
        if final.exists():  # an unreadable entry: rebuild it
            shutil.rmtree(final, ignore_errors=True)
        if log:
            log(f"building the compiled testbench of {toplevel} with Verilator")
        tmp = Path(tempfile.mkdtemp(prefix=f"{toplevel}-{key}.", dir=root))
        try:
            (tmp / f"{toplevel}.v").write_text(verilog_text)
            (tmp / "tb.cpp").write_text(tb_text)
            t0 = time.monotonic()
            jobs = str(min(2, os.cpu_count() or 1))
            runtime = _runtime_dir()
            steps = [["verilator", *VERILATOR_ARGS, "--top-module", toplevel, "--Mdir", "obj", "-o", "Vtb",
                      f"{toplevel}.v", "tb.cpp"],
                     ["make", "-C", "obj", "-f", f"V{toplevel}.mk", "-j", jobs, *MAKE_VARIABLES, "Vtb"]]
            log_text = ""
            for k, cmd in enumerate(steps):
                if k == 1:
                    _seed_runtime(runtime, tmp / "obj")
                proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
                log_text += proc.stdout + proc.stderr
                (tmp / "build.log").write_text(log_text)
                if proc.returncode != 0:
                    tail = "\n".join(log_text.splitlines()[-20:])
                    raise QnnfabError(f"Verilator build of the compiled testbench failed "
                                      f"(log: {tmp / 'build.log'}):\n{tail}")
            keep_runtime(runtime, tmp / "obj")
            seconds = time.monotonic() - t0
            (tmp / "build.seconds").write_text(f"{seconds:.1f}\n")
            tmp.rename(final)
        except BaseException as e:
            if not isinstance(e, QnnfabError):  # keep a failed build's log for the message
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        return CompiledBuild(final, exe, key, False, seconds)


@dataclass
class CompiledRun:
    """One run of the compiled testbench: every output word with its cycle, every label."""
    words: np.ndarray           # (n_out, out_bytes) uint8
    word_cycles: np.ndarray     # (n_out,) int64
    labels: np.ndarray          # (n_labels,) int64
    label_cycles: np.ndarray
    cycles: int                 # cycles simulated (reset excluded)
    sim_seconds: float
    build: CompiledBuild

    @property
    def cycles_per_second(self):
        return self.cycles / self.sim_seconds if self.sim_seconds > 0 else float("inf")


def _threshold(p):
    if not 0.0 < p <= 1.0:
        raise ValueError(f"probability must be in (0, 1], not {p!r}")
    return 2**64 - 1 if p >= 1.0 else int(p * 2**64)


def run_testbench(build, ports, in_bytes_data, out_words_per_frame, *, seed=1, valid_prob=1.0,
                  ready_prob=1.0, check_handshake=None, max_cycles=None):
    """Run ``build`` on packed input words; return a :class:`CompiledRun`.

    ``check_handshake`` (default: when anything is stalled) probes both ready
    values every cycle. Raises :class:`SimulationMismatch` when the testbench
    reports a broken stream rule or a timeout.
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
               "1" if check_handshake else "0", str(max_cycles)]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.monotonic() - t0
        if proc.returncode != 0:
            raise SimulationMismatch(f"compiled simulation stopped: {proc.stderr.strip() or proc.stdout.strip()} "
                                     f"(seed {seed}; valid {valid_prob}, ready {ready_prob})")
        cycles = int(proc.stdout.split()[1])
        rec = np.dtype([("cycle", "<u8"), ("word", np.uint8, (ports.out_bytes,))])
        out = np.fromfile(d / "outputs.bin", dtype=rec)
        lab = np.fromfile(d / "labels.bin", dtype=[("cycle", "<u8"), ("label", "<u8")])
    return CompiledRun(out["word"], out["cycle"].astype(np.int64), lab["label"].astype(np.int64),
                       lab["cycle"].astype(np.int64), cycles, seconds, build)


# ---------------------------------------------------------------------------
# whole networks

class NetworkBench:
    """A network config's accelerator on the compiled engine.

    ``NetworkBench(cfg).run(frames, ...)`` packs ``frames`` (stored input
    values, shape (B,) + input_shape), streams them through the accelerator and
    returns the :class:`CompiledRun`; :meth:`scores` decodes its output words.
    The build happens on first use (cached across runs and processes). ``top``
    replaces the accelerator by another component with its ports (the tests
    pass deliberately broken ones).
    """

    TOPLEVEL = "network"

    def __init__(self, cfg, *, pipeline=None, top=None, log=None):
        from qnnfab.rtl.axis_accelerator import AxiStreamAccelerator

        from .build import to_verilog
        self.cfg = cfg
        # a runtime-weights config runs with its weights as constants here (the same datapath);
        # loading them through wload is the weights_reload regression's job
        self.top = top if top is not None else AxiStreamAccelerator(cfg, pipeline=pipeline, weights_mode="const")
        self.format = self.top.format
        self.ports = network_ports(self.top)
        self.in_words_per_frame = cfg.input_words()
        self.in_simd = self.format.in_elems
        self.in_bits = self.format.in_bits
        self._verilog = to_verilog(self.top, self.TOPLEVEL)
        self._tb = testbench_source(self.ports, self.TOPLEVEL, self.in_words_per_frame)
        self._log = log
        self._build = None

    @property
    def build(self):
        if self._build is None:
            self._build = build_compiled(self._verilog, self.TOPLEVEL, self._tb, log=self._log)
        return self._build

    def pack(self, frames):
        frames = np.asarray(frames)
        if frames.shape[1:] != tuple(self.cfg.input_shape):
            raise ValueError(f"frames of shape {frames.shape[1:]}, the network takes {self.cfg.input_shape}")
        words = frames.reshape(-1, self.in_simd)
        return pack_words(words, self.in_bits, self.ports.in_bytes)

    def run(self, frames, *, seed=1, valid_prob=1.0, ready_prob=1.0, check_handshake=None):
        n = np.asarray(frames).shape[0]
        _, (_, model), _ = self.cfg.throughput()
        # a generous bound: every frame at its bottleneck, its words at the stalled rates, plus the pipeline
        per_frame = model + (self.in_words_per_frame + self.format.out_words) / min(valid_prob, ready_prob)
        max_cycles = int(20_000 + 4 * n * per_frame)
        return run_testbench(self.build, self.ports, self.pack(frames), self.format.out_words, seed=seed,
                             valid_prob=valid_prob, ready_prob=ready_prob, check_handshake=check_handshake,
                             max_cycles=max_cycles)

    def scores(self, run):
        """The run's output words as scores, shape (frames, outputs)."""
        n = run.words.shape[0]
        f = self.format   # every score in its own whole-byte field, sign-extended when signed
        vals = unpack_words(run.words.tobytes(), n, self.ports.out_bytes, f.out_elems, 8 * f.score_bytes,
                            f.out_signed)
        return vals.reshape(n // f.out_words, -1)


def check_network(bench, frames, run, golden_scores=None):
    """Compare every output word and label of ``run`` with the golden model.

    Raises :class:`SimulationMismatch` naming the first mismatch (frame, word,
    expected, got). Returns the golden scores, shape (frames, outputs).
    """
    frames = np.asarray(frames)
    if golden_scores is None:
        golden_scores = bench.cfg.golden().forward(frames).reshape(frames.shape[0], -1)
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
    labels = np.argmax(golden_scores, axis=1)
    if run.labels.shape[0] != n_frames:
        raise SimulationMismatch(f"{run.labels.shape[0]} labels for {n_frames} frames")
    wrong = np.nonzero(run.labels != labels)[0]
    if wrong.size:
        f = int(wrong[0])
        raise SimulationMismatch(f"frame {f}: label {int(run.labels[f])}, golden arg-max {int(labels[f])}")
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
    """What :func:`verify_network` found over a set of frames."""
    frames: int
    labels: np.ndarray              # hardware labels
    golden_labels: np.ndarray
    frames_identical: int           # frames whose every output word equals golden
    first_mismatch: str | None      # the first differing word, or None
    cycles: int                     # of the unstalled run
    cycles_per_second: float
    cycles_per_frame: float         # steady state, unstalled
    stalled_frames: int             # frames also run under random gaps and backpressure
    build: CompiledBuild

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
    golden = cfg.golden().forward(frames).reshape(n, -1)
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
    return Verification(n, run.labels, np.argmax(golden, axis=1), int(same.sum()), first, run.cycles,
                        run.cycles_per_second, steady_cycles_per_frame(run, per), stalled_frames, bench.build)

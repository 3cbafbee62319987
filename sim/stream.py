"""cocotb helpers for ``amaranth.lib.stream`` ports (used inside the simulator).

Amaranth names the ports of a stream member ``i`` as ``i__payload``,
``i__valid`` and ``i__ready``. :class:`StreamSource` drives such an input with
randomized valid gaps, :class:`StreamSink` takes an output with randomized
ready, and :func:`run_streams` clocks any number of both in one coroutine (one
trigger pair per cycle, which keeps Verilator runs fast).
:func:`run_stream_test` is the common shape of a one-input, one-output bench:
stream the input words through the design under random gaps and backpressure
and compare every output word with the golden one (:func:`check_words`).

Timing discipline: inputs change only just after the falling clock edge;
handshakes are sampled in the read-only phase before the next rising edge, so
``valid & ready`` seen there is exactly the transfer the rising edge performs.
The sink also checks the stream rule that an offered word stays valid and
unchanged until it is taken.

Four-state rule (it bites on Icarus; Verilator has no X): from the first cycle
the drivers clock, i.e. after reset, the DUT's ``valid`` and ``ready`` are
never X or Z, and its payload is never X or Z while ``valid`` is high
(:class:`UnknownValue` names the signal and the cycle).

Progress watchdog: :class:`ProgressWatchdog` fails a run at once when no
handshake completes on any stream or AXI channel the bench watches for
:func:`stall_limit` cycles in a row, naming the bench, the stalled channels
with their ``valid``/``ready`` and the last channel that moved.
:func:`run_streams` watches its sources and sinks with it; the AXI benches
watch the shell's AXI channels (:mod:`qnnfab.sim.axi_board`). The bound is
in cycles, never wall time.

Reset in flight: :func:`run_reset_in_flight` streams frames, asserts reset at a
random cycle in the middle of a frame, releases it and checks that fresh frames
come out exactly as the golden model says (nothing of the old frames leaks).
"""

import json
import os
import random

from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from .runner import METRICS_ENV, NAME_ENV, PARAMS_ENV, SEED_ENV

__all__ = ["bench_name", "bench_params", "bench_seed", "bench_random", "write_metrics", "start",
           "StreamSource", "StreamSink", "run_streams", "check_words", "run_stream_test", "Stalled", "Handshake", "ProgressWatchdog", "stall_limit",
           "DEFAULT_STALL_CYCLES", "STALL_FRAMES", "STALL_ENV", "StreamRun", "steady_cycles", "UnknownValue", "known",
           "pulse_reset", "reset_mid_stream", "run_reset_in_flight", "reset_point"]


class UnknownValue(AssertionError):
    """A stream signal of the DUT read X or Z where the stream rules need 0 or 1."""


def known(handle, name, cycle):
    """``int(handle.value)``; :class:`UnknownValue` when any bit is X or Z."""
    value = handle.value
    try:
        return int(value)
    except ValueError:
        raise UnknownValue(f"{name} is {value} (X/Z) at cycle {cycle} after reset") from None


def bench_name():
    """The name of the regression this bench runs for (``bench`` outside the runner)."""
    return os.environ.get(NAME_ENV, "bench")


def bench_params():
    """The parameter dict the regression passed to this bench."""
    return json.loads(os.environ.get(PARAMS_ENV, "{}"))


def bench_seed():
    return int(os.environ.get(SEED_ENV, "1"))


def bench_random(salt=0):
    """A :class:`random.Random` seeded from the regression seed (and ``salt``)."""
    return random.Random(bench_seed() * 1_000_003 + salt)


def write_metrics(**figures):
    """Report figures (cycle counts, ...) back to the regression runner."""
    path = os.environ.get(METRICS_ENV)
    if not path:
        return
    old = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    old.update(figures)
    with open(path, "w") as f:
        json.dump(old, f)


async def start(dut, reset_cycles=2):
    """Start a 10 ns clock on ``dut.clk`` and pulse ``dut.rst``."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(reset_cycles):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


STALL_ENV = "QNNFAB_STALL_CYCLES"
DEFAULT_STALL_CYCLES = 4000
STALL_FRAMES = 4


class Stalled(AssertionError):
    """A run made no progress: no watched handshake completed for the bound (see :class:`ProgressWatchdog`)."""


def stall_limit(frame_cycles=0):
    """Cycles without any watched handshake after which a run fails.

    The bench parameter ``stall_cycles`` when given, else ``$QNNFAB_STALL_CYCLES``,
    else the larger of :data:`DEFAULT_STALL_CYCLES` and :data:`STALL_FRAMES`
    times ``frame_cycles`` (the cycles the bench expects one frame to take,
    from its model; 0 when it has none)."""
    given = bench_params().get("stall_cycles", os.environ.get(STALL_ENV))
    if given is not None:
        return int(given)
    return max(DEFAULT_STALL_CYCLES, STALL_FRAMES * int(frame_cycles))


class Handshake:
    """One valid/ready pair a watchdog watches: ``stage`` names it in messages
    (e.g. ``"read DMA m_axi R"``); ``valid``/``ready`` are the handles, shown as
    ``valid_name``/``ready_name``."""

    def __init__(self, stage, valid_name, valid, ready_name, ready):
        self.stage, self.valid_name, self.valid, self.ready_name, self.ready = (
            stage, valid_name, valid, ready_name, ready)

    @classmethod
    def of(cls, dut, stage, valid_name, ready_name):
        """The pair of ports ``valid_name``/``ready_name`` of ``dut``."""
        return cls(stage, valid_name, getattr(dut, valid_name), ready_name, getattr(dut, ready_name))

    def state(self):
        """``(valid, ready)`` now, as ints (an X or Z reads as -1)."""
        def level(h):
            try:
                return int(h.value)
            except ValueError:
                return -1
        return level(self.valid), level(self.ready)

    def describe(self, valid, ready):
        return f"{self.stage} ({self.valid_name}={valid} {self.ready_name}={ready})"


class ProgressWatchdog:
    """Fails a run that makes no progress (the one definition every bench uses).

    ``handshakes``: the :class:`Handshake` pairs the bench watches; ``limit``:
    cycles (default :func:`stall_limit`); ``bench``: the name in messages
    (default :func:`bench_name`). Call :meth:`check` once per cycle in the
    read-only phase: a cycle with ``valid`` and ``ready`` high on any pair is
    progress; ``active=False`` (nothing is owed, e.g. the shell is idle) also
    restarts the count. After ``limit`` cycles in a row without either it
    raises :class:`Stalled`: "<bench>: no progress for N cycles (cycle C):
    valid without ready on <handshakes>; ready without valid on <handshakes>;
    last transfer on <handshake> at cycle L" (each handshake with both levels).
    """

    def __init__(self, handshakes, limit=None, bench=None):
        self.handshakes = list(handshakes)
        self.limit = stall_limit() if limit is None else int(limit)
        if self.limit < 1:
            raise ValueError(f"stall limit must be a positive number of cycles, not {self.limit!r}")
        self.bench = bench_name() if bench is None else bench
        self.quiet = 0
        self.last = None          # (stage, cycle) of the last transfer

    def check(self, cycle, active=True):
        states = [(h, *h.state()) for h in self.handshakes]
        moved = [h for h, v, r in states if v == 1 and r == 1]
        if moved or not active:
            self.quiet = 0
            if moved:
                self.last = (moved[0].stage, cycle)
            return
        self.quiet += 1
        if self.quiet >= self.limit:
            raise Stalled(self.message(cycle, states))

    def message(self, cycle, states):
        """Which handshakes stopped: valid held without ready, ready held without valid, or neither."""
        def listed(pick):
            return ", ".join(h.describe(v, r) for h, v, r in states if pick(v, r))
        parts = []
        if any(v == 1 and r != 1 for _, v, r in states):
            parts.append("valid without ready on " + listed(lambda v, r: v == 1 and r != 1))
        if any(r == 1 and v != 1 for _, v, r in states):
            parts.append("ready without valid on " + listed(lambda v, r: r == 1 and v != 1))
        what = "; ".join(parts) or "every watched valid and ready low (" + listed(lambda v, r: True) + ")"
        last = (f"last transfer on {self.last[0]} at cycle {self.last[1]}" if self.last
                else "no transfer since the watch began")
        return f"{self.bench}: no progress for {self.quiet} cycles (cycle {cycle}): {what}; {last}"


def _stream_names(prefix, axis):
    """(valid, ready, payload) port names: Amaranth's, or AXI-Stream ``<p>_tvalid``..."""
    if axis:
        return f"{prefix}_tvalid", f"{prefix}_tready", f"{prefix}_tdata"
    return f"{prefix}__valid", f"{prefix}__ready", f"{prefix}__payload"


def _stream_signals(dut, prefix, axis):
    """(valid, ready, payload) handles of a stream port (:func:`_stream_names`)."""
    return tuple(getattr(dut, n) for n in _stream_names(prefix, axis))


def _tlast(dut, prefix, axis):
    """The ``<prefix>_tlast`` handle of an AXI-Stream port, or None."""
    return getattr(dut, f"{prefix}_tlast", None) if axis else None


class StreamSource:
    """Drives ``<prefix>__valid/__payload`` from a queue of integers.

    ``valid_prob`` is the chance per cycle of offering the next word (1.0 =
    no gaps). Once offered, a word stays until it is taken. ``axis=True``
    uses AXI-Stream port names (``<prefix>_tvalid/_tready/_tdata``) and
    drives ``<prefix>_tlast`` when the design has it (from ``send``'s ``last``).
    """

    def __init__(self, dut, prefix, rng, valid_prob=1.0, axis=False):
        self.name = prefix
        self.valid, self.ready, self.payload = _stream_signals(dut, prefix, axis)
        vn, rn, _ = _stream_names(prefix, axis)
        self.handshake = Handshake(f"source {prefix}", vn, self.valid, rn, self.ready)
        self.last = _tlast(dut, prefix, axis)
        self.rng = rng
        self.valid_prob = valid_prob
        self.queue = []
        self.lasts = []
        self._pos = 0
        self.offering = False
        self.sent_cycles = []
        self.valid.value = 0

    def send(self, words, last=None):
        """Queue ``words``; ``last`` (one bool per word, default all 0) drives ``tlast``."""
        words = [int(w) for w in words]
        last = [0] * len(words) if last is None else [int(bool(x)) for x in last]
        if len(last) != len(words):
            raise ValueError(f"{len(last)} last flags for {len(words)} words")
        self.queue.extend(words)
        self.lasts.extend(last)

    @property
    def idle(self):
        return self._pos >= len(self.queue) and not self.offering

    def _drive(self):
        if not self.offering and self._pos < len(self.queue) and (
                self.valid_prob >= 1.0 or self.rng.random() < self.valid_prob):
            self.payload.value = self.queue[self._pos]
            if self.last is not None:
                self.last.value = self.lasts[self._pos]
            self._pos += 1
            self.offering = True
        self.valid.value = 1 if self.offering else 0

    def _sample(self, cycle):
        ready = known(self.ready, self.name + " ready", cycle)
        if self.offering and ready:
            self.offering = False
            self.sent_cycles.append(cycle)


class StreamSink:
    """Takes words from ``<prefix>__valid/__payload``, ready with ``ready_prob``.

    With ``axis=True`` and a ``<prefix>_tlast`` port, ``self.lasts`` holds the
    ``tlast`` of every word taken (and ``tlast`` must also hold while stalled)."""

    def __init__(self, dut, prefix, rng, ready_prob=1.0, name=None, axis=False):
        self.name = name or prefix
        self.valid, self.ready, self.payload = _stream_signals(dut, prefix, axis)
        vn, rn, _ = _stream_names(prefix, axis)
        self.handshake = Handshake(f"sink {self.name}", vn, self.valid, rn, self.ready)
        self.last = _tlast(dut, prefix, axis)
        self.rng = rng
        self.ready_prob = ready_prob
        self.words = []
        self.lasts = []
        self.cycles = []
        self._ready_now = 0
        self._held = None
        self.ready.value = 0

    def _drive(self):
        r = 1 if (self.ready_prob >= 1.0 or self.rng.random() < self.ready_prob) else 0
        self._ready_now = r
        self.ready.value = r

    def _sample(self, cycle):
        v = known(self.valid, self.name + " valid", cycle)
        if v:
            word = known(self.payload, self.name + " payload (valid high)", cycle)
            if self.last is not None:   # tlast must hold too
                word |= known(self.last, self.name + " tlast (valid high)", cycle) << len(self.payload)
        if self._held is not None:
            if not v:
                raise AssertionError(f"{self.name}: valid dropped at cycle {cycle} "
                                     "before the offered word was taken")
            if word != self._held:
                raise AssertionError(f"{self.name}: payload changed from {self._held:#x} to "
                                     f"{word:#x} at cycle {cycle} while stalled")
        if v:
            if self._ready_now:
                self.words.append(word & ((1 << len(self.payload)) - 1))
                if self.last is not None:
                    self.lasts.append(word >> len(self.payload))
                self.cycles.append(cycle)
                self._held = None
            else:
                self._held = word
        else:
            self._held = None


async def run_streams(dut, sources, sinks, expected, max_cycles, clk=None, monitors=(), until=None,
                      stall_cycles=None):
    """Clock sources and sinks until every sink has ``expected[i]`` words.

    ``monitors`` are callables ``f(cycle)`` run in the read-only phase of every
    cycle (to sample side-band outputs). ``until(cycle)``, when given, stops the
    run early as soon as it returns true (checked after the monitors). Returns
    the number of cycles run. Raises ``AssertionError`` (with the counts) when
    ``max_cycles`` pass first, and :class:`Stalled` (naming the stream whose
    handshake stopped) when no source or sink transfers a word for
    ``stall_cycles`` cycles in a row (default :func:`stall_limit`). Ends just
    after a falling edge with every source's ``valid`` and every sink's
    ``ready`` low.
    """
    clk = clk if clk is not None else dut.clk
    watchdog = ProgressWatchdog([x.handshake for x in (*sources, *sinks)], stall_cycles)
    cycle = 0
    while True:
        await FallingEdge(clk)
        for s in sources:
            s._drive()
        for k in sinks:
            k._drive()
        await ReadOnly()
        for s in sources:
            s._sample(cycle)
        for k in sinks:
            k._sample(cycle)
        for f in monitors:
            f(cycle)
        watchdog.check(cycle)
        cycle += 1
        if all(len(k.words) >= n for k, n in zip(sinks, expected)):
            break
        if until is not None and until(cycle):
            break
        if cycle >= max_cycles:
            got = ", ".join(f"{k.name}: {len(k.words)}/{n}" for k, n in zip(sinks, expected))
            raise AssertionError(f"timeout after {cycle} cycles waiting for outputs ({got})")
    await FallingEdge(clk)
    for s in sources:
        s.valid.value = 0
    for k in sinks:
        k.ready.value = 0
    if monitors:
        await ReadOnly()
        for f in monitors:
            f(cycle)
    return cycle


def _show(v, fmt):
    return format(v, fmt) if isinstance(v, int) else str(v)


def check_words(got, expected, decode=None, describe=None, fmt="#x"):
    """Compare output words with the golden ones, in order.

    ``decode(word)`` turns a received word into the value compared with
    ``expected[k]`` (default: the word itself); ``describe(k)`` adds context to
    the message. Raises ``AssertionError`` naming the first mismatching word
    index, the value got and the value expected (``fmt`` formats integers), or
    the counts when the number of words differs.
    """
    if len(got) != len(expected):
        raise AssertionError(f"{len(got)} output words, expected {len(expected)}")
    for k, (word, exp) in enumerate(zip(got, expected)):
        g = decode(word) if decode else word
        g = g.tolist() if hasattr(g, "tolist") else g
        exp = exp.tolist() if hasattr(exp, "tolist") else exp
        if g != exp:
            where = f" ({describe(k)})" if describe else ""
            raise AssertionError(f"word {k}{where}: got {_show(g, fmt)}, expected {_show(exp, fmt)}")


class StreamRun:
    """What :func:`run_stream_test` ran: ``cycles``, the ``source`` and the ``sink``."""

    def __init__(self, cycles, source, sink):
        self.cycles, self.source, self.sink = cycles, source, sink

    @property
    def latency(self):
        """Cycles from the first input transfer to the first output transfer."""
        return self.sink.cycles[0] - self.source.sent_cycles[0]

    @property
    def output_span(self):
        """Cycles from the first to the last output transfer, both included."""
        return self.sink.cycles[-1] - self.sink.cycles[0] + 1


def steady_cycles(sink, per, n):
    """Steady-state cycles per group of ``per`` output words over ``n`` groups (``n`` >= 2).

    Measured between the last words of the first and the last group; returns
    ``(cycles per group, [cycle of the last word of every group])``.
    """
    ends = [sink.cycles[(i + 1) * per - 1] for i in range(n)]
    return (ends[-1] - ends[0]) / (n - 1), ends


async def run_stream_test(dut, words, expected, rng, valid_prob=1.0, ready_prob=1.0, *, max_cycles,
                          decode=None, describe=None, fmt="#x", source="i", sink="o", stall_cycles=None):
    """Stream ``words`` into ``<source>`` and check ``<sink>`` against ``expected``.

    Starts the clock and resets the design first (:func:`start`). The source
    offers a word with ``valid_prob`` per cycle and the sink is ready with
    ``ready_prob`` (both drawn from ``rng``); the sink checks the hold-stable
    rule. Runs until ``len(expected)`` words came out (an
    ``AssertionError`` after ``max_cycles``, :class:`Stalled` after
    ``stall_cycles`` without a transfer), then compares them with
    :func:`check_words` (``decode``, ``describe``, ``fmt``). Returns a
    :class:`StreamRun`.
    """
    await start(dut)
    src = StreamSource(dut, source, rng, valid_prob)
    snk = StreamSink(dut, sink, rng, ready_prob)
    src.send(words)
    cycles = await run_streams(dut, [src], [snk], [len(expected)], max_cycles=max_cycles,
                               stall_cycles=stall_cycles)
    check_words(snk.words, expected, decode=decode, describe=describe, fmt=fmt)
    return StreamRun(cycles, src, snk)


async def pulse_reset(dut, cycles, clk=None, reset=None, active=1):
    """Assert ``dut.rst`` (or ``reset``, active at level ``active``) now (just after a
    falling edge of ``dut.clk`` or ``clk``) for ``cycles`` rising edges."""
    clk = clk if clk is not None else dut.clk
    reset = reset if reset is not None else dut.rst
    reset.value = active
    for _ in range(cycles):
        await FallingEdge(clk)
    reset.value = 1 - active


def reset_point(rng, frame_words, frames_before):
    """Input words to transfer before a reset in the middle of a frame.

    The reset falls inside frame ``frames_before`` (0-based; 1 or more leaves
    earlier frames' data in the design's memories), after at least one and
    before the last of its ``frame_words`` words. One-word frames cannot be
    cut: the reset then follows ``frames_before`` whole frames (while the
    design still works on them).
    """
    if frame_words <= 1:
        return frames_before
    return frames_before * frame_words + rng.randint(1, frame_words - 1)


async def reset_mid_stream(dut, sources, sinks, cut, rng, max_cycles, clk=None, reset=None, active=1,
                           stall_cycles=None):
    """Clock ``sources``/``sinks`` until ``sources[0]`` has sent ``cut`` words, 0-3 more
    random cycles, then drop every offer and assert reset for 1-3 cycles
    (``clk``, ``reset``, ``active`` as :func:`pulse_reset`; ``stall_cycles`` as
    :func:`run_streams`).

    Returns where the reset fell (words in, words out, cycle, reset length).
    """
    extra = rng.randint(0, 3)
    hit = []

    def at_cut(cycle):
        if len(sources[0].sent_cycles) >= cut and not hit:
            hit.append(cycle)
        return bool(hit) and cycle >= hit[0] + extra

    cycles = await run_streams(dut, sources, sinks, [10**12] * len(sinks), max_cycles, clk=clk, until=at_cut,
                               stall_cycles=stall_cycles)
    if not hit:  # pragma: no cover - run_streams times out first
        raise AssertionError(f"only {len(sources[0].sent_cycles)} of {cut} input words went in")
    length = rng.randint(1, 3)
    await pulse_reset(dut, length, clk, reset, active)
    return dict(words_in=len(sources[0].sent_cycles), words_out=[len(k.words) for k in sinks],
                cycle=cycles, reset_cycles=length)


async def run_reset_in_flight(dut, old_words, new_words, expected, rng, *, frame_words,
                              valid_prob=0.7, ready_prob=0.5, max_cycles, decode=None,
                              describe=None, fmt="#x", source="i", sink="o", axis=False,
                              frames_before=1, stall_cycles=None):
    """Reset in the middle of a frame, then check fresh frames against the golden model.

    Starts the clock and resets (:func:`start`), streams ``old_words`` (at
    least ``frames_before + 1`` frames of ``frame_words`` input words) under
    random gaps and backpressure until :func:`reset_point` words went in plus
    0-3 random cycles (earlier outputs partly drained, the design's memories
    holding old data), drops the word on offer and asserts reset for 1-3
    cycles. After the release, ``new_words`` are streamed and the output words
    must equal ``expected`` (with :func:`check_words`): a stale word from
    before the reset shows as a mismatch or a missing word. Returns a dict of the reset point (words in, words out, cycle,
    reset length) for the log.
    """
    await start(dut)
    src = StreamSource(dut, source, rng, valid_prob, axis=axis)
    snk = StreamSink(dut, sink, rng, ready_prob, axis=axis)
    src.send(old_words)
    cut = reset_point(rng, frame_words, frames_before)
    if cut >= len(old_words):
        raise ValueError(f"{len(old_words)} old words cannot be cut after {cut}")
    where = await reset_mid_stream(dut, [src], [snk], cut, rng, max_cycles, stall_cycles=stall_cycles)
    fresh_src = StreamSource(dut, source, rng, valid_prob, axis=axis)
    fresh_snk = StreamSink(dut, sink, rng, ready_prob, name=f"{sink} (after reset)", axis=axis)
    fresh_src.send(new_words)
    await run_streams(dut, [fresh_src], [fresh_snk], [len(expected)], max_cycles, stall_cycles=stall_cycles)
    check_words(fresh_snk.words, expected, decode=decode, describe=describe, fmt=fmt)
    return where

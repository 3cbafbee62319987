"""Stream source and sink for Amaranth's own simulator (``amaranth.sim``).

The counterpart of :mod:`qnnfab.sim.stream` (cocotb on Verilator) for the fast
unit tests: :class:`StreamSource` drives an ``amaranth.lib.stream`` input of a
design, :class:`StreamSink` takes one of its outputs, :func:`run_streams`
clocks any number of both in one testbench, and :func:`stream_through` is the
common one-input, one-output run.

The stream rules (``amaranth.lib.stream``): a transfer happens at the clock
edge of a cycle where ``valid & ready``; once ``valid`` is high it stays high,
with the payload unchanged, until the transfer; ``valid`` never depends on
``ready`` (``ready`` may depend on ``valid``).

The source keeps them: a word, once offered, stays offered and unchanged until
taken; ``valid_prob`` < 1 inserts seeded random gaps between words, and while
no word is offered the payload holds random bits (a design must not take a
word without ``valid``).

The sink checks the design's side of them every cycle, and raises
:class:`StreamRuleError` naming the cycle:

- ``valid`` and the payload do not depend on ``ready``: before the clock tick
  it sets ``ready`` to 0 and reads ``valid`` and the payload, then to 1 and
  reads them again (Amaranth settles the combinational logic on every
  ``ctx.get``), then drives its own ``ready``;
- an offered word that was not taken stays offered, unchanged, in the next cycle.

``ready_prob`` < 1 gives seeded random backpressure.

Payloads: a port's payload may be a flat ``unsigned(n)``/``signed(n)`` or a
``data.ArrayLayout``/``StructLayout`` view. The source takes an ``int`` (the
raw bits, element 0 at the LSBs, as :func:`qnnfab.packing.pack_words`
makes them; negative ints are two's complement) or a value of the port's
layout (a list for an ``ArrayLayout``, a dict for a ``StructLayout``). The sink
returns raw bits as non-negative ints (split them with
:func:`qnnfab.packing.unpack_fields`), the same before and after a port
moves from a flat shape to a layout with the same bit order.

Timing: cycles are counted from 0 at the start of the simulation (the
designs come out of reset in their initial state); ``sent_cycles`` and
``cycles`` are the cycles whose clock edge performed each transfer.
"""

import random as _random

from amaranth.hdl import Const, Instance, ShapeCastable, Value
from amaranth.sim import Simulator

__all__ = ["StreamRuleError", "StreamSource", "StreamSink", "StreamRun", "run_streams", "stream_through", "vendor_cells"]


class StreamRuleError(AssertionError):
    """A design broke a stream rule (the message names the port and the cycle)."""


def _raw_port(payload):
    """The payload as a plain Amaranth value (its raw bits) and its width."""
    bits = Value.cast(payload)
    return bits, len(bits)


def _show(v):
    return "-" if v is None else f"{v:#x}"


class StreamSource:
    """Drives a stream input (``port``: the design's ``In(stream.Signature(...))`` member).

    ``words``: the words to send (ints or layout values, module docstring); more
    can be queued with :meth:`send`. ``valid_prob``: chance per cycle of
    offering the next word (1.0 = back to back); draws come from ``rng``
    (a :class:`random.Random`; a fixed seed when None).
    ``sent_cycles``: cycle of every transfer.
    """

    def __init__(self, port, words=(), *, valid_prob=1.0, rng=None, name="i"):
        self.port, self.name = port, name
        self.valid_prob = valid_prob
        self.rng = rng if rng is not None else _random.Random(0)
        self._bits, self._width = _raw_port(port.payload)
        self._shape = port.payload.shape() if isinstance(port.payload.shape(), ShapeCastable) else None
        self.queue = []
        self._pos = 0
        self.offering = False
        self.sent_cycles = []
        self.send(words)

    def raw(self, word):
        """The raw payload bits of ``word`` (an int, or a value of the port's layout)."""
        if isinstance(word, int) or hasattr(word, "__index__"):
            return int(word) & ((1 << self._width) - 1)
        if self._shape is None:
            raise TypeError(f"{self.name}: the payload is a flat {self._bits.shape()}; "
                            f"pass words as ints (pack elements with qnnfab.packing.pack_words), got {word!r}")
        return Const.cast(self._shape.const(word)).value & ((1 << self._width) - 1)

    def send(self, words):
        self.queue.extend(self.raw(w) for w in words)

    @property
    def idle(self):
        """Every queued word has been transferred."""
        return self._pos >= len(self.queue) and not self.offering

    def _drive(self, ctx):
        if not self.offering and self._pos < len(self.queue) and (
                self.valid_prob >= 1.0 or self.rng.random() < self.valid_prob):
            ctx.set(self._bits, self.queue[self._pos])
            self._pos += 1
            self.offering = True
        elif not self.offering:
            ctx.set(self._bits, self.rng.getrandbits(self._width))
        ctx.set(self.port.valid, self.offering)

    def _sample(self, ctx, cycle):
        if self.offering and ctx.get(self.port.ready):
            self.offering = False
            self.sent_cycles.append(cycle)


class StreamSink:
    """Takes a stream output (``port``: the design's ``Out(stream.Signature(...))`` member)
    and checks the design's side of the stream rules (module docstring).

    ``ready_prob``: chance per cycle of being ready (1.0 = always), drawn
    from ``rng``. ``words``: raw payload bits of every transfer, in order;
    ``cycles``: the cycle of each.
    """

    def __init__(self, port, *, ready_prob=1.0, rng=None, name="o"):
        self.port, self.name = port, name
        self.ready_prob = ready_prob
        self.rng = rng if rng is not None else _random.Random(1)
        self._bits, self._width = _raw_port(port.payload)
        self._mask = (1 << self._width) - 1
        self.words, self.cycles = [], []
        self._held = None          # payload offered but not taken in the previous cycle
        self._take = None

    def _look(self, ctx, ready):
        ctx.set(self.port.ready, ready)
        valid = ctx.get(self.port.valid)
        return valid, (ctx.get(self._bits) & self._mask) if valid else None

    def _drive(self, ctx, cycle):
        ready = int(self.ready_prob >= 1.0 or self.rng.random() < self.ready_prob)
        # look with the other ready level first, so that ready ends at the level driven this cycle
        look = {1 - ready: self._look(ctx, 1 - ready)}
        look[ready] = self._look(ctx, ready)
        (v0, p0), (v1, p1) = look[0], look[1]
        if (v0, p0) != (v1, p1):
            raise StreamRuleError(
                f"{self.name}: valid/payload depend on ready in cycle {cycle}: with ready = 0 "
                f"valid {v0} payload {_show(p0)}, with ready = 1 valid {v1} payload {_show(p1)}")
        if self._held is not None and p0 != self._held:
            raise StreamRuleError(
                f"{self.name}: word {len(self.words)} ({self._held:#x}) was offered and not taken in "
                f"cycle {cycle - 1}, but in cycle {cycle} "
                + ("valid dropped" if not v0 else f"the payload changed to {p0:#x}"))
        self._take = p0 if ready else None
        self._held = p0 if not ready else None

    def _sample(self, cycle):
        if self._take is not None:
            self.words.append(self._take)
            self.cycles.append(cycle)


def vendor_cells(sim):
    """The ``Instance`` cells (e.g. the ``LUT6_2``/``CARRY4`` of ``popcount = "compressor"`` built
    with ``primitives=True``) in the design of ``sim`` (an ``amaranth.sim.Simulator``): Amaranth's
    simulator does not simulate them, so their outputs stay 0."""
    return sorted({f.type for f in sim._design.fragments if isinstance(f, Instance)})


def run_streams(dut, sources, sinks, counts, *, max_cycles, extra_cycles=0, drivers=(), monitors=(),
                timing_only=False):
    """Simulate ``dut`` (clock domain ``sync``) with its sources and sinks.

    Runs until every sink has ``counts[k]`` words, then ``extra_cycles`` more
    (words that come out then are kept: callers check there are none too
    many). Every cycle, ``drivers`` (callables ``f(ctx, cycle)``) run first,
    to set side-band inputs (or queue words on a source with ``send``); then
    the sources and sinks; then ``monitors`` (``f(ctx, cycle)``, after the
    cycle's transfers are known, before the clock tick) to sample side-band
    outputs. Raises ``AssertionError`` (with the counts) when ``max_cycles``
    pass first. Returns the cycles run.

    A design with :func:`vendor_cells` is refused (``ValueError``: its data would be wrong,
    silently) unless ``timing_only``: the caller reads only when words move, which the
    cells do not decide.
    """
    done = {"cycles": 0}

    async def bench(ctx):
        cycle, end = 0, None
        while end is None or cycle < end:
            if end is None and cycle >= max_cycles:
                got = ", ".join(f"{k.name}: {len(k.words)}/{n}" for k, n in zip(sinks, counts))
                pending = ", ".join(f"{s.name}: {len(s.sent_cycles)}/{len(s.queue)} sent" for s in sources)
                raise AssertionError(f"timeout after {cycle} cycles waiting for outputs ({got}; {pending})")
            for f in drivers:
                f(ctx, cycle)
            for s in sources:
                s._drive(ctx)
            for k in sinks:
                k._drive(ctx, cycle)
            for s in sources:
                s._sample(ctx, cycle)
            for k in sinks:
                k._sample(cycle)
            for f in monitors:
                f(ctx, cycle)
            await ctx.tick()
            cycle += 1
            if end is None and all(len(k.words) >= n for k, n in zip(sinks, counts)):
                end = cycle + extra_cycles
        done["cycles"] = cycle

    sim = Simulator(dut)
    cells = [] if timing_only else vendor_cells(sim)
    if cells:
        raise ValueError(f"Amaranth's simulator does not simulate the vendor cells {', '.join(cells)} of this "
                         "design: build its components with primitives=False (their Amaranth model)")
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return done["cycles"]


class StreamRun:
    """What :func:`stream_through` ran: ``words`` (raw output bits), ``in_cycles``,
    ``out_cycles`` (transfer cycles), ``cycles`` (simulated), ``source``, ``sink``."""

    def __init__(self, cycles, source, sink):
        self.cycles, self.source, self.sink = cycles, source, sink
        self.words, self.in_cycles, self.out_cycles = sink.words, source.sent_cycles, sink.cycles

    @property
    def latency(self):
        """Cycles from the first input transfer to the first output transfer."""
        return self.out_cycles[0] - self.in_cycles[0]


def stream_through(dut, words, n_out, valid_prob=1.0, ready_prob=1.0, seed=0, *, source="i", sink="o",
                   max_cycles=None, extra_cycles=8):
    """Send ``words`` into ``dut.<source>`` and take ``n_out`` words from ``dut.<sink>``.

    Random gaps (``valid_prob``) and backpressure (``ready_prob``) are drawn
    from ``random.Random(seed)``; the sink checks the stream rules. After the
    ``n_out``-th word it runs ``extra_cycles`` more and fails if any further
    word comes out. ``max_cycles`` defaults to a bound far above any
    legitimate run. Returns a :class:`StreamRun`.
    """
    rng = _random.Random(seed)
    src = StreamSource(getattr(dut, source), words, valid_prob=valid_prob, rng=rng, name=source)
    snk = StreamSink(getattr(dut, sink), ready_prob=ready_prob, rng=rng, name=sink)
    if max_cycles is None:
        max_cycles = int(8 * (len(src.queue) + n_out) / max(0.05, valid_prob * ready_prob)) + 2000
    cycles = run_streams(dut, [src], [snk], [n_out], max_cycles=max_cycles, extra_cycles=extra_cycles)
    if len(snk.words) != n_out:
        raise AssertionError(f"{sink}: {len(snk.words) - n_out} word(s) after the {n_out} expected: "
                             f"{[hex(w) for w in snk.words[n_out:n_out + 4]]}")
    return StreamRun(cycles, src, snk)

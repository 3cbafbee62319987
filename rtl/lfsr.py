"""Leap-forward Fibonacci LFSR: the random source of stochastic rounding.

Form (bit-exact with :mod:`qnnfab.golden.lfsr`): Fibonacci LFSR, XOR feedback,
shifting toward the MSB. With an ``width``-bit state and taps numbered 1..n
(tap t reads state bit t-1), one *step* is::

    fb        = XOR over taps t of state[t - 1]
    new_state = ((state << 1) | fb) & (2**n - 1)

One enabled clock cycle advances ``steps_per_cycle`` steps; the k-step update
is unrolled combinationally (every new bit is the XOR of a fixed set of old
bits, computed here over GF(2)), so a D-bit random word sliced from the LSBs
shares no shifted bits with the previous word when ``steps_per_cycle >= D``.

Lanes: ``lanes`` independent registers with the same polynomial; lane i is
seeded with the base seed advanced ``i * ((2**n - 1) // lanes)`` steps (the
golden :func:`qnnfab.golden.lfsr.lane_seeds` convention), which spaces the
lanes evenly around the sequence so their words are decorrelated.
"""

from amaranth.hdl import Module, Cat, unsigned
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError, check_int
from qnnfab.golden.lfsr import MAXIMAL_TAPS

__all__ = ["LFSR", "lfsr_taps", "step_masks", "jump_state", "lane_seed_values", "lfsr_update"]


def lfsr_taps(width, taps=None, where="LFSR"):
    """Validated ``(width, taps)``; ``taps`` defaults to the shared maximal-length table."""
    if not isinstance(width, int) or width not in MAXIMAL_TAPS and taps is None:
        raise ConfigError(where, "width", f"no maximal-length taps tabulated for width {width!r}",
                          f"use a width in {min(MAXIMAL_TAPS)}..{max(MAXIMAL_TAPS)} or pass taps")
    if taps is None:
        taps = MAXIMAL_TAPS[width]
    taps = tuple(sorted({int(t) for t in taps}, reverse=True))
    if not taps or taps[0] != width or taps[-1] < 1:
        raise ConfigError(where, "taps", f"taps {taps} must lie in 1..{width} and include {width}",
                          f"include the top bit {width}")
    return width, taps


def step_masks(width, taps, k):
    """GF(2) form of k steps: list of ``width`` ints, bit j of entry b set when
    new bit b depends on old bit j (symbolic unrolling of the one-step rule)."""
    bits = [1 << j for j in range(width)]  # bit b of the state as a mask of old bits
    for _ in range(k):
        fb = 0
        for t in taps:
            fb ^= bits[t - 1]
        bits = [fb] + bits[:-1]
    return bits


def _apply(masks, state):
    out = 0
    for b, msk in enumerate(masks):
        out |= ((state & msk).bit_count() & 1) << b
    return out


def _compose(f, g):
    """Masks of f after g (both lists of per-bit masks)."""
    out = []
    for msk in f:
        acc = 0
        j = 0
        while msk:
            if msk & 1:
                acc ^= g[j]
            msk >>= 1
            j += 1
        out.append(acc)
    return out


def jump_state(state, width, taps, k):
    """``state`` advanced ``k`` steps (square-and-multiply over GF(2))."""
    result = [1 << j for j in range(width)]
    base = step_masks(width, taps, 1)
    while k:
        if k & 1:
            result = _compose(result, base)
        k >>= 1
        if k:
            base = _compose(base, base)
    return _apply(result, state)


def lane_seed_values(width, taps, seed, lanes):
    """Seeds of ``lanes`` lanes: lane i = ``seed`` advanced i * ((2^n - 1) // lanes) steps."""
    spacing = ((1 << width) - 1) // lanes
    if spacing == 0:
        raise ConfigError("LFSR", "lanes", f"{lanes} lanes exceed the {(1 << width) - 1} states "
                          f"of a {width}-bit LFSR", "use a wider LFSR")
    seeds, s = [], seed
    for _ in range(lanes):
        seeds.append(s)
        s = jump_state(s, width, taps, spacing)
    return seeds


def lfsr_update(state, width, taps, k):
    """Amaranth expression of ``state`` (a ``width``-bit value) advanced ``k`` steps."""
    masks = step_masks(width, taps, k)
    out = []
    for msk in masks:
        terms = [state[j] for j in range(width) if (msk >> j) & 1]
        x = terms[0]
        for t in terms[1:]:
            x = x ^ t
        out.append(x)
    return Cat(*out)


class LFSR(wiring.Component):
    """One or more leap-forward Fibonacci XOR LFSRs (form in the module docstring).

    Parameters
    ----------
    width : int
        State width n (3..32 with the shared maximal-length taps, or pass ``taps``).
    seed : int
        Base seed, 1..2^n - 1 (0 is the lock-up state and is rejected).
    steps_per_cycle : int
        Steps per enabled cycle (>= 1); use >= D when slicing D-bit words.
    lanes : int
        Number of independent registers (decorrelated outputs), seeded as in
        :func:`qnnfab.golden.lfsr.lane_seeds`.
    taps : tuple of int or None
        Tap bit numbers 1..n; default ``MAXIMAL_TAPS[width]``.

    Ports
    -----
    en : In(1)
        Advance every lane ``steps_per_cycle`` steps at the next clock edge.
    state : Out(ArrayLayout(unsigned(width), lanes))
        The registers. After reset lane i holds its seed; after c enabled
        cycles it holds the seed advanced ``c * steps_per_cycle`` steps. A
        D-bit random word is ``state[i][:D]``.

    Timing
    ------
    The state is registered: ``en`` in cycle c changes ``state`` in cycle c + 1.
    """

    def __init__(self, width, seed=1, steps_per_cycle=1, lanes=1, taps=None):
        self.width, self.taps = lfsr_taps(width, taps)
        mask = (1 << self.width) - 1
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 < seed <= mask:
            raise ConfigError("LFSR", "seed", f"must be in 1..{mask} (0 locks up an XOR LFSR), not {seed!r}",
                              f"use a nonzero seed that fits in {self.width} bits")
        check_int("LFSR", "steps_per_cycle", steps_per_cycle, 1, "use the number of random bits taken per cycle")
        check_int("LFSR", "lanes", lanes, 1, "use one lane per independent random word")
        self.seed = seed
        self.steps_per_cycle = steps_per_cycle
        self.lanes = lanes
        self.seeds = lane_seed_values(self.width, self.taps, seed, lanes)
        super().__init__({
            "en": In(1),
            "state": Out(data.ArrayLayout(unsigned(self.width), lanes), init=self.seeds),
        })

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            for i in range(self.lanes):
                m.d.sync += self.state[i].eq(
                    lfsr_update(self.state[i], self.width, self.taps, self.steps_per_cycle))
        return m

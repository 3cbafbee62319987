"""Linear-feedback shift registers: the random source of stochastic rounding.

Form (copy this exactly in RTL): Fibonacci LFSR, XOR feedback, shifting
toward the MSB. With an n-bit state and a tap list of bit numbers 1..n (tap
t reads state bit t-1, bit 0 = LSB), one *step* is::

    fb        = XOR over taps t of ((state >> (t - 1)) & 1)
    new_state = ((state << 1) | fb) & (2**n - 1)

The all-zeros state locks up (it maps to itself), so seed 0 is rejected; with
the taps of :data:`MAXIMAL_TAPS` every nonzero seed runs through all 2^n - 1
nonzero states (period proven by tests: brute force for n <= 20, algebraically
for all n).

Timing: the register holds the seed after reset; at hardware cycle c the
state is the seed advanced ``c * steps_per_cycle`` steps (leap-forward: one
cycle computes ``steps_per_cycle`` steps combinationally). A random word of
D bits at cycle c is ``state_c & (2**D - 1)`` (the D LSBs), taken from an
LFSR wider than D; the word at cycle 0 comes from the seed itself.

Lanes: independent rounding lanes (PEs, columns) use the same polynomial with
different seeds: lane i's seed is the base seed advanced
``i * ((2**n - 1) // lanes)`` steps (:func:`lane_seeds`), which spaces the lanes
evenly around the sequence. The generator computes these constants in Python;
the RTL only stores them as reset values.
"""

import functools

import numpy as np

from ._util import ConfigError

__all__ = ["MAXIMAL_TAPS", "LFSR", "lane_seeds", "lfsr_words", "is_maximal", "step_state"]

#: Maximal-length taps (bit numbers 1..n) for widths 3..32. 8..32 from
#: Xilinx XAPP052 (Alfke, 1996); 3..7 chosen here; all verified primitive by tests.
MAXIMAL_TAPS = {
    3: (3, 2), 4: (4, 3), 5: (5, 3), 6: (6, 5), 7: (7, 6),
    8: (8, 6, 5, 4), 9: (9, 5), 10: (10, 7), 11: (11, 9), 12: (12, 6, 4, 1),
    13: (13, 4, 3, 1), 14: (14, 5, 3, 1), 15: (15, 14), 16: (16, 15, 13, 4),
    17: (17, 14), 18: (18, 11), 19: (19, 6, 2, 1), 20: (20, 17), 21: (21, 19),
    22: (22, 21), 23: (23, 18), 24: (24, 23, 22, 17), 25: (25, 22),
    26: (26, 6, 2, 1), 27: (27, 5, 2, 1), 28: (28, 25), 29: (29, 27),
    30: (30, 6, 4, 1), 31: (31, 28), 32: (32, 22, 2, 1),
}


def _check_width_taps(width, taps, where):
    if not isinstance(width, (int, np.integer)) or width < 2 or width > 64:
        raise ConfigError(where, "width", f"must be an int in 2..64, got {width!r}",
                          "use a width from MAXIMAL_TAPS (3..32) or pass taps")
    width = int(width)
    if taps is None:
        if width not in MAXIMAL_TAPS:
            raise ConfigError(where, "taps", f"no maximal taps tabulated for width {width}",
                              "use a width in 3..32 or pass taps explicitly")
        taps = MAXIMAL_TAPS[width]
    taps = tuple(sorted({int(t) for t in taps}, reverse=True))
    if not taps or taps[0] != width or taps[-1] < 1:
        raise ConfigError(where, "taps", f"taps {taps} must lie in 1..{width} and include {width}",
                          f"include the top bit {width}")
    return width, taps


def _tap_mask(taps):
    m = 0
    for t in taps:
        m |= 1 << (t - 1)
    return m


def step_state(state, width, tap_mask):
    """One step of the Fibonacci LFSR on a Python int (see module docstring)."""
    fb = (state & tap_mask).bit_count() & 1
    return ((state << 1) | fb) & ((1 << width) - 1)


# --- linear algebra over GF(2): a linear map on n-bit states is the list of the images of the unit vectors

def _apply(cols, s):
    r = 0
    j = 0
    while s:
        if s & 1:
            r ^= cols[j]
        s >>= 1
        j += 1
    return r


def _compose(f, g):
    """f after g."""
    return [_apply(f, c) for c in g]


def _one_step_map(width, tap_mask):
    return [step_state(1 << j, width, tap_mask) for j in range(width)]


def _map_power(cols, k, width):
    result = [1 << j for j in range(width)]
    base = cols
    while k:
        if k & 1:
            result = _compose(base, result)
        k >>= 1
        if k:
            base = _compose(base, base)
    return result


def _prime_factors(m):
    fs = []
    p = 2
    while p * p <= m:
        if m % p == 0:
            fs.append(p)
            while m % p == 0:
                m //= p
        p += 1 if p == 2 else 2
    if m > 1:
        fs.append(m)
    return fs


def is_maximal(width, taps=None):
    """True iff the LFSR of this width/taps has period 2^n - 1 (algebraic proof over GF(2)).

    Checks A^(2^n-1) = I and A^((2^n-1)/p) != I for every prime p dividing
    2^n - 1, where A is the one-step transition matrix.
    """
    width, taps = _check_width_taps(width, taps, "is_maximal")
    a = _one_step_map(width, _tap_mask(taps))
    ident = [1 << j for j in range(width)]
    order = (1 << width) - 1
    if _map_power(a, order, width) != ident:
        return False
    return all(_map_power(a, order // p, width) != ident for p in _prime_factors(order))


class LFSR:
    """Fibonacci XOR LFSR model (form and timing in the module docstring).

    ``LFSR(width, seed=1, taps=None)``: ``taps`` defaults to
    ``MAXIMAL_TAPS[width]``; ``seed`` must be in 1..2^width - 1 (0 locks up and
    raises ConfigError). ``state`` is the current register value (int).
    """

    def __init__(self, width, seed=1, taps=None):
        self.width, self.taps = _check_width_taps(width, taps, "LFSR")
        self.mask = (1 << self.width) - 1
        self.tap_mask = _tap_mask(self.taps)
        if not isinstance(seed, (int, np.integer)):
            raise ConfigError("LFSR", "seed", f"must be an int, got {seed!r}")
        seed = int(seed)
        if seed == 0:
            raise ConfigError("LFSR", "seed", "0 is the lock-up state of an XOR LFSR",
                              f"use a nonzero seed in 1..{self.mask}")
        if not 0 < seed <= self.mask:
            raise ConfigError("LFSR", "seed", f"{seed} does not fit in {self.width} bits",
                              f"use a seed in 1..{self.mask}")
        self.seed = seed
        self.state = seed

    def __repr__(self):
        return f"LFSR(width={self.width}, seed={self.seed:#x}, taps={self.taps}, state={self.state:#x})"

    def step(self, k=1):
        """Advance ``k`` single steps (one leap-forward cycle of k steps); return the new state."""
        k = int(k)
        if k < 0:
            raise ConfigError("LFSR.step", "k", f"must be >= 0, got {k}")
        s, w, tm = self.state, self.width, self.tap_mask
        if k > 4 * w * w:
            s = _apply(_map_power(_one_step_map(w, tm), k, w), s)
        else:
            mask = self.mask
            for _ in range(k):
                s = ((s << 1) | ((s & tm).bit_count() & 1)) & mask
        self.state = s
        return s

    def jump(self, k):
        """Advance ``k`` steps in O(n^2 log k) (same result as ``step(k)``); return the new state."""
        return self.step(k)

    def sequence(self, cycles, steps_per_cycle=1):
        """States seen at cycles 0..cycles-1: uint64 array (cycles,).

        Element 0 is the current state; each following element is advanced
        ``steps_per_cycle`` steps. Afterwards the LFSR holds the state of cycle
        ``cycles`` (so two calls concatenate seamlessly).
        """
        cycles, k = int(cycles), int(steps_per_cycle)
        if cycles < 0 or k < 1:
            raise ConfigError("LFSR.sequence", "cycles/steps_per_cycle",
                              f"need cycles >= 0 and steps_per_cycle >= 1, got {cycles}, {k}")
        out = np.empty(cycles, np.uint64)
        s, mask, tm = self.state, self.mask, self.tap_mask
        if k > 4 * self.width:
            cols = _map_power(_one_step_map(self.width, tm), k, self.width)
            for c in range(cycles):
                out[c] = s
                s = _apply(cols, s)
        else:
            for c in range(cycles):
                out[c] = s
                for _ in range(k):
                    s = ((s << 1) | ((s & tm).bit_count() & 1)) & mask
        self.state = s
        return out

    def words(self, cycles, bits, steps_per_cycle=None):
        """Random words ``state & (2**bits - 1)`` for cycles 0..cycles-1 (uint64 array).

        ``steps_per_cycle`` defaults to ``bits`` (leap-forward by the word
        width, so consecutive words share no shifted bits). ``bits`` must be
        < width (slice from a wider LFSR; all n bits would never be 0, which
        biases rounding).
        """
        bits = int(bits)
        if not 0 <= bits < self.width:
            raise ConfigError("LFSR.words", "bits", f"must be in 0..{self.width - 1} (less than the LFSR width), "
                              f"got {bits}", "use a wider LFSR than the number of random bits")
        k = bits if steps_per_cycle is None else steps_per_cycle
        return self.sequence(cycles, max(1, int(k))) & np.uint64((1 << bits) - 1)

    def period(self, limit=None):
        """Brute-force period from the current state (None if it exceeds ``limit``)."""
        start = self.state
        s, mask, tm = start, self.mask, self.tap_mask
        limit = (1 << self.width) if limit is None else int(limit)
        for i in range(1, limit + 1):
            s = ((s << 1) | ((s & tm).bit_count() & 1)) & mask
            if s == start:
                return i
        return None


def lane_seeds(width, base_seed, lanes, taps=None):
    """Seeds of ``lanes`` LFSR lanes: lane i = base_seed advanced i * ((2^n - 1) // lanes) steps.

    Returns a list of Python ints (lane 0 = base_seed).
    """
    return list(_lane_seeds(width, base_seed, lanes, None if taps is None else tuple(taps)))


@functools.lru_cache(maxsize=256)
def _lane_seeds(width, base_seed, lanes, taps):
    lanes = int(lanes)
    if lanes < 1:
        raise ConfigError("lane_seeds", "lanes", f"must be >= 1, got {lanes}")
    lf = LFSR(width, base_seed, taps)
    spacing = ((1 << lf.width) - 1) // lanes
    if spacing == 0:
        raise ConfigError("lane_seeds", "lanes", f"{lanes} lanes exceed the {lf.mask} states of a {lf.width}-bit LFSR",
                          "use a wider LFSR")
    cols = _map_power(_one_step_map(lf.width, lf.tap_mask), spacing, lf.width)
    seeds, s = [], lf.state
    for _ in range(lanes):
        seeds.append(s)
        s = _apply(cols, s)
    return tuple(seeds)


def _apply_many(cols, states):
    """The GF(2) linear map ``cols`` applied to every state of a uint64 array (vectorized :func:`_apply`)."""
    out = np.zeros_like(states)
    one = np.uint64(1)
    for j, c in enumerate(cols):
        if c:
            out ^= ((states >> np.uint64(j)) & one) * np.uint64(c)
    return out


@functools.lru_cache(maxsize=64)
def _cycle_jumps(width, taps, k):
    """Maps of 2^m cycles (k steps each), m = 0..63: the jumps of the vectorized generator."""
    jumps = [_map_power(_one_step_map(width, _tap_mask(taps)), k, width)]
    for _ in range(63):
        jumps.append(_compose(jumps[-1], jumps[-1]))
    return jumps


def lfsr_words(cycles, bits, width, base_seed=1, lanes=1, steps_per_cycle=None, taps=None, start=0):
    """Random words for ``lanes`` rounding lanes: uint64 array (cycles, lanes).

    Lane i is an independent ``width``-bit LFSR seeded with
    ``lane_seeds(width, base_seed, lanes)[i]``; word[c, i] = its state at cycle
    ``start + c`` masked to ``bits`` LSBs; each cycle advances
    ``steps_per_cycle`` steps (default ``bits``). Feed column i to the rounding
    stage of lane i. ``start`` skips the words of earlier cycles (a stream that
    continues where an earlier call of ``start`` cycles stopped).

    Vectorized: the states of cycles [0, 2^m) are doubled to [0, 2^(m+1)) by
    one application of the 2^m-cycle jump matrix to all of them at once; the
    result equals :meth:`LFSR.words` cycle by cycle (tested).
    """
    cycles, start = int(cycles), int(start)
    if cycles < 0 or not 0 <= start < 2**63:
        raise ConfigError("lfsr_words", "cycles/start", f"must be >= 0 (start < 2^63), got {cycles}, {start}")
    bits = int(bits)
    width, taps = _check_width_taps(width, taps, "lfsr_words")
    if not 0 <= bits < width:
        raise ConfigError("lfsr_words", "bits", f"must be in 0..{width - 1} (less than the LFSR width), "
                          f"got {bits}", "use a wider LFSR than the number of random bits")
    k = max(1, int(bits if steps_per_cycle is None else steps_per_cycle))
    jumps = _cycle_jumps(width, taps, k)
    states = np.array(lane_seeds(width, base_seed, lanes, taps), np.uint64)[None, :]
    m = 0
    while start >> m:
        if (start >> m) & 1:
            states = _apply_many(jumps[m], states)
        m += 1
    m = 0
    while states.shape[0] < cycles:
        states = np.concatenate([states, _apply_many(jumps[m], states)])
        m += 1
    return states[:cycles] & np.uint64((1 << bits) - 1)

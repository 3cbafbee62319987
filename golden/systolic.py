"""Output-stationary systolic array model (values, output order, stochastic rounding lanes).

Array: R x C processing elements (PEs). A tile computes
``C_tile = A_tile (R x K) . B_tile (K x C)``; larger products are folded into
``ceil(M/R) * ceil(N/C)`` tiles, row tiles outer, column tiles inner, edge
tiles zero-padded (padded results are not emitted).

Values: A holds codes of ``a_fmt``, B codes of ``b_fmt`` (fixed point, see
fixedpoint.py). Each PE accumulates exact products (F = Fa + Fb fraction bits)
in a wide accumulator of ``acc_width`` bits (default: wide enough that
overflow is impossible, ``a.width + b.width + ceil(log2 K)``). The output
rounding stage (one per column) drops ``D = Fa + Fb - Fout`` bits with
round-to-nearest (+2^(D-1)), truncation, or stochastic rounding (+ D LFSR
bits), then saturates to ``out_fmt`` (see fixedpoint.shift_round).

Output order: the array emits one row of a tile per output word, tiles in
issue order (row tiles outer, column tiles inner), rows in order; results of
zero-padded rows are not emitted. ``emit_index[m, n]`` is the index of the
output word (a row of C results, padded columns included) that carries
result (m, n). When
each result leaves is the hardware's timing contract, stated and modelled
once, in :mod:`qnnfab.golden.systolic_timing`.

Stochastic rounding: column j has its own LFSR lane
(``lfsr.lfsr_words(..., lanes=C)``, lane seeds from ``lane_seeds``). A lane
advances ``steps_per_cycle`` steps each time its column emits a result (it is
enabled by the output valid, so stalls do not change the stream): output
word k (``emit_index`` k) is rounded with every lane's k-th random word, the
first with the seed states. ``lfsr_start`` = n models a product that follows
n earlier output words of the same array since reset (its lanes continue
where they stopped): word k then uses the lanes' words n + k.
"""

import math
from dataclasses import dataclass

import numpy as np

from ._util import ConfigError, as_int_array, check_range
from .fixedpoint import FixedFormat, shift_round
from .lfsr import lfsr_words

__all__ = ["SystolicResult", "systolic_matmul"]


@dataclass
class SystolicResult:
    """Outputs of :func:`systolic_matmul`; all arrays (M, N) int64.

    ``values``: rounded, saturated output codes (``out_fmt``); ``acc``: the
    wide accumulators; ``emit_index``: index of the output word carrying each
    result; ``random``: the random word each result was
    rounded with (0 unless stochastic); ``tiles``: number of tiles;
    ``drop_bits``: D; ``acc_width``: accumulator width used.
    """

    values: np.ndarray
    acc: np.ndarray
    emit_index: np.ndarray
    random: np.ndarray
    tiles: int
    drop_bits: int
    acc_width: int

    @property
    def words(self):
        """Output words of the product: ``ceil(N / C)`` per row (what the LFSR lanes advance by)."""
        return int(self.emit_index.max()) + 1 if self.emit_index.size else 0


def systolic_matmul(a, b, a_fmt, b_fmt, out_fmt, rows, cols, rounding="nearest", acc_width=None,
                    lfsr_width=24, lfsr_seed=1, steps_per_cycle=None, random_bits=None, lfsr_start=0):
    """Model an R x C output-stationary array computing ``a @ b`` (order and rounding in the module docstring).

    ``a``: (M, K) integer codes of ``a_fmt``; ``b``: (K, N) codes of ``b_fmt``;
    ``rows``, ``cols``: R, C of the array. ``rounding``: "nearest",
    "truncate" or "stochastic". Stochastic bits come from ``cols`` LFSR lanes
    (``lfsr_width`` bits > D, base seed ``lfsr_seed``, ``steps_per_cycle``
    default D, the lanes starting ``lfsr_start`` output words after reset),
    or from ``random_bits`` (M, N) when given. Returns a
    :class:`SystolicResult`.
    """
    where = "systolic_matmul"
    for nm, f in (("a_fmt", a_fmt), ("b_fmt", b_fmt), ("out_fmt", out_fmt)):
        if not isinstance(f, FixedFormat):
            raise ConfigError(where, nm, f"must be a FixedFormat, got {f!r}")
    a = as_int_array(a, where, "a").astype(np.int64)
    b = as_int_array(b, where, "b").astype(np.int64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or a.shape[1] < 1:
        raise ConfigError(where, "a/b", f"need a (M, K) and b (K, N) with K >= 1, got {a.shape} and {b.shape}")
    check_range(a, a_fmt.min_code, a_fmt.max_code, where, "a", f"codes of {a_fmt}")
    check_range(b, b_fmt.min_code, b_fmt.max_code, where, "b", f"codes of {b_fmt}")
    R, C = int(rows), int(cols)
    if R < 1 or C < 1:
        raise ConfigError(where, "rows/cols", f"array must be at least 1x1, got {R}x{C}")
    M, K = a.shape
    N = b.shape[1]
    d = a_fmt.F + b_fmt.F - out_fmt.F
    if d < 0:
        raise ConfigError(where, "out_fmt", f"has more fraction bits ({out_fmt.F}) than the product "
                          f"({a_fmt.F + b_fmt.F})", "use out_fmt.F <= a_fmt.F + b_fmt.F")
    need = a_fmt.width + b_fmt.width + max(0, math.ceil(math.log2(K)))
    if acc_width is None:
        acc_width = need
    acc_width = int(acc_width)
    bound = K * max(abs(a_fmt.min_code), a_fmt.max_code) * max(abs(b_fmt.min_code), b_fmt.max_code)
    if bound > (1 << (acc_width - 1)) - 1 or acc_width > 62:
        raise ConfigError(where, "acc_width", f"{acc_width} bits can overflow (|sum| up to {bound})",
                          f"use acc_width >= {need} (at most 62)")
    if bound < 2**53:
        acc = np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)
    else:
        acc = np.matmul(a, b)
    tr, tc = -(-M // R), -(-N // C)
    ii = np.arange(M)[:, None]
    jj = np.arange(N)[None, :]
    # output word of (m, n): earlier row tiles sent tc * R words; within row tile ti, each
    # earlier column tile sent its rows (R, or fewer in the last row tile, cut to M)
    emit_index = np.broadcast_to((ii // R) * (tc * R) + (jj // C) * np.minimum(R, M - (ii // R) * R) + ii % R,
                                 (M, N)).copy()
    rnd = np.zeros((M, N), np.int64)
    if rounding == "stochastic":
        if random_bits is not None:
            rnd = as_int_array(random_bits, where, "random_bits").astype(np.int64)
            if rnd.shape != (M, N):
                raise ConfigError(where, "random_bits", f"must be (M, N) = ({M}, {N}), got {rnd.shape}")
        else:
            if lfsr_width <= d:
                raise ConfigError(where, "lfsr_width", f"must exceed the {d} dropped bits", "use a wider LFSR")
            # lane j serves array column j; output word k uses every lane's word k
            per_lane = M * tc  # output words: every column tile sends all M rows
            words = lfsr_words(per_lane, d, lfsr_width, lfsr_seed, C, steps_per_cycle,
                               start=lfsr_start)  # (emits, lanes)
            rnd = words[emit_index, jj % C].astype(np.int64)
        values = shift_round(acc, d, "stochastic", rnd, out_fmt.width)
    elif rounding in ("nearest", "truncate"):
        values = shift_round(acc, d, rounding, None, out_fmt.width)
    else:
        raise ConfigError(where, "rounding", f"must be 'nearest', 'truncate' or 'stochastic', got {rounding!r}")
    return SystolicResult(values=values, acc=acc, emit_index=emit_index, random=rnd, tiles=tr * tc,
                          drop_bits=d, acc_width=acc_width)

"""Output-stationary systolic array model (values and output timing).

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

Timing (cycle 0 = the cycle the first skewed operands of the first tile enter
the array, after ``input_latency`` register stages): row i of A enters
skewed by i cycles and moves right one PE per cycle, column j of B enters
skewed by j and moves down one PE per cycle, so PE(i, j) performs step s
(A[i, s] * B[s, j]) of tile t at cycle ``start_t + input_latency + s + i + j``.
Its result is registered at the end of step K-1 and passes through the
column-j rounding stage (``round_latency`` register stages), so it *leaves
the array* (valid at the output of column j) at::

    out_cycle = start_t + input_latency + K + i + j + round_latency - 1

(default input_latency = 0, round_latency = 1: K + i + j). The results of
column j leave in row order, one per cycle, so one rounding stage per column
suffices. Tiles are issued back to back every ``tile_period`` cycles
(default ``max(K, R)``: a PE starts the next tile as it hands its result to the
output; the column stage needs R cycles per tile); ``start_t = t * tile_period``.

Stochastic rounding: column j has its own LFSR lane
(``lfsr.lfsr_words(..., lanes=C)``, lane seeds from ``lane_seeds``). A lane
advances ``steps_per_cycle`` steps each time its column emits a result (it is
enabled by the output valid, so stalls do not change the stream); the first
result of the column uses the lane's seed state.
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
    wide accumulators; ``out_cycle``: cycle each result leaves the array;
    ``random``: the random word each result was rounded with (0 unless
    stochastic); ``tiles``: number of tiles; ``total_cycles``: last out_cycle + 1;
    ``drop_bits``: D; ``acc_width``: accumulator width used.
    """

    values: np.ndarray
    acc: np.ndarray
    out_cycle: np.ndarray
    random: np.ndarray
    tiles: int
    total_cycles: int
    drop_bits: int
    acc_width: int


def systolic_matmul(a, b, a_fmt, b_fmt, out_fmt, rows, cols, rounding="nearest", acc_width=None,
                    input_latency=0, round_latency=1, tile_period=None,
                    lfsr_width=24, lfsr_seed=1, steps_per_cycle=None, random_bits=None):
    """Model an R x C output-stationary array computing ``a @ b`` (timing and rounding in the module docstring).

    ``a``: (M, K) integer codes of ``a_fmt``; ``b``: (K, N) codes of ``b_fmt``;
    ``rows``, ``cols``: R, C of the array. ``rounding``: "nearest",
    "truncate" or "stochastic". Stochastic bits come from ``cols`` LFSR lanes
    (``lfsr_width`` bits > D, base seed ``lfsr_seed``, ``steps_per_cycle``
    default D), or from ``random_bits`` (M, N) when given. Returns a
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
    period = max(K, R) if tile_period is None else int(tile_period)
    if period < max(K, R):
        raise ConfigError(where, "tile_period", f"{period} < max(K, R) = {max(K, R)} makes tiles collide",
                          "use tile_period >= max(K, R)")
    ii = np.arange(M)[:, None]
    jj = np.arange(N)[None, :]
    tile = (ii // R) * tc + (jj // C)
    out_cycle = tile * period + int(input_latency) + K + (ii % R) + (jj % C) + int(round_latency) - 1
    rnd = np.zeros((M, N), np.int64)
    if rounding == "stochastic":
        if random_bits is not None:
            rnd = as_int_array(random_bits, where, "random_bits").astype(np.int64)
            if rnd.shape != (M, N):
                raise ConfigError(where, "random_bits", f"must be (M, N) = ({M}, {N}), got {rnd.shape}")
        else:
            if lfsr_width <= d:
                raise ConfigError(where, "lfsr_width", f"must exceed the {d} dropped bits", "use a wider LFSR")
            # lane j serves array column j: the k-th result the column emits (in out_cycle order,
            # i.e. tiles in issue order, rows in order; zero-padded rows emit nothing) uses word k
            per_lane = M * tc  # every column tile sends all M rows through each lane
            words = lfsr_words(per_lane, d, lfsr_width, lfsr_seed, C, steps_per_cycle)  # (emits, lanes)
            for j in range(min(C, N)):
                colsel = np.arange(j, N, C)
                oc = out_cycle[:, colsel]
                ranks = np.empty(oc.size, np.int64)
                ranks[np.argsort(oc.ravel(), kind="stable")] = np.arange(oc.size)
                rnd[:, colsel] = words[ranks.reshape(oc.shape), j].astype(np.int64)
        values = shift_round(acc, d, "stochastic", rnd, out_fmt.width)
    elif rounding in ("nearest", "truncate"):
        values = shift_round(acc, d, rounding, None, out_fmt.width)
    else:
        raise ConfigError(where, "rounding", f"must be 'nearest', 'truncate' or 'stochastic', got {rounding!r}")
    return SystolicResult(values=values, acc=acc, out_cycle=out_cycle, random=rnd, tiles=tr * tc,
                          total_cycles=int(out_cycle.max()) + 1, drop_bits=d, acc_width=acc_width)

"""Cycle timing of the output-stationary systolic array (stated contract).

The timing contract of ``qnnfab.rtl.systolic.SystolicArray`` (R x C PEs):

* Input: a tile is a stream of K k-steps (one A word and one B word each,
  the last marked). A step offered on both inputs is accepted in the same
  cycle, except that the *last* step of a tile is accepted only when at
  least C + 1 cycles have passed since the previous tile's last step.
* Compute: PE(i, j) does k step s in cycle ``t_s + 1 + i + j`` (t_s = the
  cycle the step was accepted): one input register and the skew.
* Output: row i of a tile whose last step was accepted in cycle L is ready
  for the output path in cycle ``L + C + 2 + i`` (PE(i, C-1) finishes at
  L + i + C, plus one capture cycle); the output path takes one ready row per
  cycle, rows in order (tile by tile, row 0 first), and the word appears on
  the output one cycle after it is taken: at ``max(L + C + 3 + i, previous
  word + 1)`` when the output is never stalled.
* A row stays in the drain buffer until taken; if the next tile would finish
  row i first the whole array holds (outside this model: :func:`output_cycles`
  raises).

Cycles are counted from any origin shared by the inputs and outputs (the
bench counts clock cycles from the end of reset). NumPy only.
"""

import numpy as np

from ._util import ConfigError

__all__ = ["LATENCY_EXTRA", "input_cycles", "output_cycles", "tile_cycles", "utilisation"]

#: a single tile with K steps takes K + R + C - 2 + LATENCY_EXTRA cycles from
#: its first input transfer to (and including) its last output word
LATENCY_EXTRA = 4


def _check_rc(rows, cols, where):
    if int(rows) < 1 or int(cols) < 1:
        raise ConfigError(where, "rows/cols", f"must be >= 1, got {rows}, {cols}")
    return int(rows), int(cols)


def input_cycles(tile_ks, cols, start=0):
    """Acceptance cycle of every k step when both inputs offer continuously from
    cycle ``start``: list (one int64 array per tile, K_t entries)."""
    cols = int(cols)
    out, c, last = [], int(start) - 1, None
    for k in tile_ks:
        k = int(k)
        if k < 1:
            raise ConfigError("input_cycles", "tile_ks", f"every tile needs K >= 1, got {k}")
        cyc = np.arange(c + 1, c + 1 + k, dtype=np.int64)
        if last is not None and cyc[-1] < last + cols + 1:
            cyc[-1] = last + cols + 1
        c = last = int(cyc[-1])
        out.append(cyc)
    return out


def output_cycles(last_cycles, rows, cols):
    """Cycle of each output word (tile t, row i) when the output is never stalled.

    ``last_cycles``: acceptance cycle of each tile's last step (increasing).
    Returns int64 array (T, rows). Raises ConfigError when a tile would finish
    a row before the previous tile's row left (the array stalls there and this
    model does not apply: use longer tiles, K >= max(R, C + 1)).
    """
    rows, cols = _check_rc(rows, cols, "output_cycles")
    last = [int(x) for x in last_cycles]
    out = np.empty((len(last), rows), np.int64)
    prev = None
    for t, lc in enumerate(last):
        if t and lc < last[t - 1] + cols + 1:
            raise ConfigError("output_cycles", "last_cycles", f"tile {t} ends {lc - last[t - 1]} cycles after "
                              f"the previous one; the array needs >= {cols + 1}")
        for i in range(rows):
            taken = lc + cols + 2 + i if prev is None else max(lc + cols + 2 + i, prev + 1)
            if t + 1 < len(last) and taken >= last[t + 1] + 2 + i:
                raise ConfigError("output_cycles", "last_cycles", f"tile {t + 1} reaches row {i} before tile "
                                  f"{t}'s row {i} leaves: the array stalls (outside the model)",
                                  "use tiles with K >= max(R, C + 1)")
            out[t, i] = taken + 1
            prev = taken
    return out


def tile_cycles(k, rows, cols):
    """Cycles from the first input of one isolated tile to its last output word, inclusive."""
    rows, cols = _check_rc(rows, cols, "tile_cycles")
    return int(k) + rows + cols - 2 + LATENCY_EXTRA


def utilisation(tile_ks, rows, cols):
    """PE utilisation over a stream of tiles offered back to back: sum(K) / (cycles from
    the first input to the last output word, inclusive)."""
    cyc = input_cycles(tile_ks, cols)
    outs = output_cycles([c[-1] for c in cyc], rows, cols)
    total = int(outs[-1, -1]) - int(cyc[0][0]) + 1
    return float(sum(int(k) for k in tile_ks)) / total

"""The GEMM engine's results: the systolic array on zero-padded operands, tiles in block order.

The engine (:mod:`qnnfab.rtl.gemm`) pads A to whole row tiles and B to whole
column tiles and runs every tile through the array, padded rows included, so
the rounding lanes advance over padded rows as well; the results of the
padded rows and columns are dropped by the driver. Tiles run in blocks of
``block_tiles`` row tiles (the last block the rest): per block every column
tile, per column tile the block's row tiles. Output word n (row i of the
n // R-th tile in that order, i = n % R) is rounded with the lanes' n-th
random words. NumPy only.
"""

import numpy as np

from .lfsr import lfsr_words
from .systolic import systolic_matmul

__all__ = ["gemm_padded"]


def gemm_padded(a, b, a_fmt, b_fmt, out_fmt, rows, cols, rounding, lfsr_width, lfsr_seed, steps_per_cycle=None,
                block_tiles=1):
    """``(M, N)`` rounded codes of ``a @ b`` as the R x C engine computes them
    with BLOCK_TILES = ``block_tiles`` (other arguments as
    :func:`qnnfab.golden.systolic.systolic_matmul`)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    (M, K), N = a.shape, b.shape[1]
    tr, tc = -(-M // rows), -(-N // cols)
    ap = np.zeros((tr * rows, K), np.int64)
    ap[:M] = a
    bp = np.zeros((K, tc * cols), np.int64)
    bp[:, :N] = b
    random_bits = None
    if rounding == "stochastic":
        # tile_seq[i, j]: position of tile (i, j) in the engine's order
        tile_seq = np.zeros((tr, tc), np.int64)
        seq = 0
        for first in range(0, tr, block_tiles):
            last = min(first + block_tiles, tr)
            for j in range(tc):
                tile_seq[first:last, j] = seq + np.arange(last - first)
                seq += last - first
        mm = np.arange(tr * rows)[:, None]
        nn = np.arange(tc * cols)[None, :]
        word = tile_seq[mm // rows, nn // cols] * rows + mm % rows
        drop = a_fmt.F + b_fmt.F - out_fmt.F
        lanes = lfsr_words(tr * tc * rows, drop, lfsr_width, lfsr_seed, cols, steps_per_cycle)
        random_bits = lanes[word, nn % cols].astype(np.int64)
    res = systolic_matmul(ap, bp, a_fmt, b_fmt, out_fmt, rows, cols, rounding=rounding, lfsr_width=lfsr_width,
                          lfsr_seed=lfsr_seed, steps_per_cycle=steps_per_cycle, random_bits=random_bits)
    return res.values[:M, :N]

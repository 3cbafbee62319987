"""The GEMM engine's results: the systolic array on zero-padded operands.

The engine (:mod:`qnnfab.rtl.gemm`) pads A to whole row tiles and B to whole
column tiles and runs every tile through the array, padded rows included, so
the rounding lanes advance over padded rows as well; the results of the
padded rows and columns are dropped by the driver. NumPy only.
"""

import numpy as np

from .systolic import systolic_matmul

__all__ = ["gemm_padded"]


def gemm_padded(a, b, a_fmt, b_fmt, out_fmt, rows, cols, rounding, lfsr_width, lfsr_seed, steps_per_cycle=None):
    """``(M, N)`` rounded codes of ``a @ b`` as the R x C engine computes them
    (arguments as :func:`qnnfab.golden.systolic.systolic_matmul`)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    (M, K), N = a.shape, b.shape[1]
    mp, np_ = -(-M // rows) * rows, -(-N // cols) * cols
    ap = np.zeros((mp, K), np.int64)
    ap[:M] = a
    bp = np.zeros((K, np_), np.int64)
    bp[:, :N] = b
    res = systolic_matmul(ap, bp, a_fmt, b_fmt, out_fmt, rows, cols, rounding=rounding, lfsr_width=lfsr_width,
                          lfsr_seed=lfsr_seed, steps_per_cycle=steps_per_cycle)
    return res.values[:M, :N]

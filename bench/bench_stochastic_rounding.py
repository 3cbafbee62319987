"""Stochastic rounding statistics and a small training experiment (golden model).

Run: ``.venv/bin/python bench/bench_stochastic_rounding.py [--n 1000000]``

1. Bias over N random dot products: A (M x K) and B (K x 1000) of random
   (1, 7) codes, K = 16, through the golden systolic model
   (``qnnfab.golden.systolic.systolic_matmul``, 8 x 8 array, LFSR lanes per
   column) to (6, 6) outputs (D = 8 dropped bits, no saturation). Prints the
   mean rounding error in output ulps with its standard error for stochastic,
   round-to-nearest and truncation, and the expected bias of each.
2. Accumulation: 4000 increments of mean 1/1000 (below half an ulp of the
   (4, 8) accumulator) added one at a time, rounded after every addition.
3. Training: least-squares regression by SGD with the weights stored in
   (4, 8) fixed point, every update rounded (stochastic bits from an LFSR as in
   hardware: ``quantize(..., random_bits=lfsr_words(...))``), against float32.
"""

import argparse
import sys

import numpy as np

from qnnfab.golden.fixedpoint import FixedFormat, quantize, to_float
from qnnfab.golden.lfsr import lfsr_words
from qnnfab.golden.systolic import systolic_matmul

MODES = ("stochastic", "nearest", "truncate")


def bias_table(n, seed=1):
    rng = np.random.default_rng(seed)
    fa = fb = FixedFormat(1, 7)
    fc = FixedFormat(6, 6)
    K, N = 16, 1000
    M = max(8, -(-n // N) // 8 * 8)
    a = rng.integers(fa.min_code, fa.max_code + 1, (M, K))
    b = rng.integers(fb.min_code, fb.max_code + 1, (K, N))
    d = fa.F + fb.F - fc.F
    print(f"1. rounding bias over {M * N:,} dot products (K={K}, A, B in (1, 7), output (6, 6), D={d}); "
          f"errors in output ulps (2^-{fc.F})")
    print(f"   {'mode':<11} {'mean err':>11} {'std err':>10} {'z':>8} {'expected bias':>14}")
    expected = {"stochastic": 0.0, "nearest": 2.0 ** -(d + 1), "truncate": -(0.5 - 2.0 ** -(d + 1))}
    for mode in MODES:
        res = systolic_matmul(a, b, fa, fb, fc, 8, 8, rounding=mode, lfsr_width=24, lfsr_seed=0xACE1)
        err = res.values.astype(np.float64) - res.acc.astype(np.float64) / 2.0 ** d  # in output ulps
        mean, se = err.mean(), err.std(ddof=1) / np.sqrt(err.size)
        verdict = "within 3 SE of 0" if abs(mean) <= 3 * se else "biased"
        print(f"   {mode:<11} {mean:>+11.6f} {se:>10.6f} {mean / se:>+8.1f} {expected[mode]:>+14.6f}  {verdict}")


def _rounder(mode, shape, steps, d=12, seed=0x2F1):
    """Return f(x, t) rounding real x to FMT with ``mode``; stochastic uses LFSR words."""
    words = lfsr_words(steps, d, 24, seed, lanes=int(np.prod(shape))).astype(np.int64) if mode == "stochastic" else None

    def rnd(x, fmt, t):
        if mode == "stochastic":
            return quantize(x, fmt, "stochastic", random_bits=words[t].reshape(shape), random_width=d)
        return quantize(x, fmt, mode)
    return rnd


def accumulation(steps=4000, seed=2):
    fmt = FixedFormat(4, 8)
    rng = np.random.default_rng(seed)
    inc = rng.uniform(0.0, 0.002, steps)  # mean 0.001 < eps/2 = 0.00195
    exact = np.cumsum(inc.astype(np.float32))[-1]
    print(f"2. accumulating {steps} increments of mean 0.001 in (4, 8) (eps = {fmt.eps:.5f}): float32 sum {exact:.4f}")
    for mode in MODES:
        rnd = _rounder(mode, (1,), steps)
        q = np.zeros(1, np.int64)
        for t in range(steps):
            q = rnd(to_float(q, fmt) + inc[t], fmt, t)
        print(f"   {mode:<11} sum {to_float(q, fmt)[0]:8.4f}")


def training(epochs=30, seed=3):
    fmt = FixedFormat(4, 8)
    rng = np.random.default_rng(seed)
    n, dim, lr, batch = 512, 8, 0.01, 16
    x = rng.normal(size=(n, dim)).astype(np.float32)
    w_true = rng.uniform(-1, 1, dim).astype(np.float32)
    y = x @ w_true + 0.01 * rng.normal(size=n).astype(np.float32)
    steps = epochs * (n // batch)
    print(f"3. SGD least squares ({n} x {dim}, lr {lr}, batch {batch}); weights in (4, 8) fixed point, "
          f"every update rounded; loss = mean squared error")
    curves = {}
    for mode in ("float32",) + MODES:
        w = np.zeros(dim, np.float32)
        q = np.zeros(dim, np.int64)
        rnd = None if mode == "float32" else _rounder(mode, (dim,), steps)
        curve, t = [], 0
        for ep in range(epochs):
            order = np.random.default_rng(ep).permutation(n)
            for s in range(0, n, batch):
                idx = order[s:s + batch]
                wf = w if mode == "float32" else to_float(q, fmt).astype(np.float32)
                g = 2 * x[idx].T @ (x[idx] @ wf - y[idx]) / batch
                if mode == "float32":
                    w = wf - lr * g
                else:
                    q = rnd(wf - lr * g, fmt, t)
                t += 1
            wf = w if mode == "float32" else to_float(q, fmt).astype(np.float32)
            curve.append(float(np.mean((x @ wf - y) ** 2)))
        curves[mode] = curve
    marks = [0, 2, 5, 10, 20, epochs - 1]
    print("   " + f"{'epoch':<11}" + "".join(f"{m + 1:>10}" for m in marks))
    for mode, c in curves.items():
        print("   " + f"{mode:<11}" + "".join(f"{c[m]:>10.5f}" for m in marks))
    return curves


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="number of dot products")
    args = ap.parse_args(argv)
    bias_table(args.n)
    accumulation()
    training()
    return 0


if __name__ == "__main__":
    sys.exit(main())

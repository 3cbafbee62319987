"""Throughput of the golden kernels (printed, never asserted): packed XNOR-popcount, im2col, LFSR words.

    .venv/bin/python bench/bench_golden_kernels.py
"""

import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

from qnnfab.golden import LFSR, im2col, pack_bits, stochastic_round, xnor_popcount_matmul  # noqa: E402


def cpu_best(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best


def main():
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; times are process CPU seconds")
    for b, m, n in [(1000, 1024, 1024), (78400, 64, 576), (1000, 10, 1024)]:
        x = pack_bits(rng.integers(0, 2, (b, n), dtype=np.uint8))
        w = pack_bits(rng.integers(0, 2, (m, n), dtype=np.uint8))
        t = cpu_best(lambda: xnor_popcount_matmul(w, x, n=n))
        xf = rng.choice(np.float32([-1, 1]), (b, n))
        wf = rng.choice(np.float32([-1, 1]), (m, n))
        tf = cpu_best(lambda: xf @ wf.T)
        print(f"xnor_popcount_matmul B={b:6d} M={m:5d} N={n:5d}: {b * m * n / t / 1e9:6.1f} G binary MAC/s "
              f"({t * 1e3:7.1f} ms); float32 sgemm {b * m * n / tf / 1e9:6.1f} G MAC/s ({tf * 1e3:7.1f} ms)")
    img = rng.integers(0, 2, (100, 30, 30, 64), dtype=np.uint8)
    t = cpu_best(lambda: im2col(img, 3))
    print(f"im2col 100x30x30x64 k3: {100 * 28 * 28 / t / 1e6:6.2f} M windows/s ({t * 1e3:.1f} ms)")
    t = cpu_best(lambda: LFSR(24, 1).words(100000, 8), 1)
    print(f"LFSR(24).words(8 bits, leap 8): {100000 / t / 1e6:6.2f} M words/s")
    acc = rng.integers(-(2**30), 2**30, 1_000_000)
    r = rng.integers(0, 2**12, 1_000_000)
    t = cpu_best(lambda: stochastic_round(acc, 12, r, 16))
    print(f"stochastic_round: {1e6 / t / 1e6:6.1f} M values/s")


if __name__ == "__main__":
    main()

"""Golden-model throughput: LFC (batch 1000) and CNV forward passes on one core.

Prints frames/s of the bit-exact golden forward pass and of a straightforward
float32 NumPy implementation of the same network (float_forward), measured in
the same run, and their ratio. Never fails on time.

    .venv/bin/python bench/bench_golden_network.py [--lfc-batch 1000] [--cnv-batch 200] [--repeat 3]
"""

import os

# one core: pin BLAS to a single thread before NumPy loads it
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from qnnfab.golden import binarize_input, cnv_input_codes, float_forward, make_network  # noqa: E402


def best_time(fn, repeat):
    """Best wall time and best process CPU time over ``repeat`` runs (CPU time is robust to a busy machine)."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def bench(name, x, repeat, threads):
    net = make_network(name, seed=0)
    net.forward(x[:4])  # warm caches (packed weights)
    float_forward(net, x[:4])
    tg, cg, yg = best_time(lambda: net.forward(x, threads=threads), repeat)
    tf, cf, yf = best_time(lambda: float_forward(net, x), repeat)
    b = x.shape[0]
    same = np.array_equal(yg, yf)
    print(f"{name:4s} batch {b:5d}: golden {b / tg:9.0f} frames/s wall, {b / cg:9.0f} frames/s per CPU-second | "
          f"float32 numpy {b / tf:9.0f} wall, {b / cf:9.0f} per CPU-s | golden/float32 = {tf / tg:4.2f}x wall, "
          f"{cf / cg:4.2f}x CPU | outputs equal: {same}")
    return b / tg, b / cg


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfc-batch", type=int, default=1000)
    ap.add_argument("--cnv-batch", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="golden forward threads (1 = the one-core figure)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}, BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}, golden threads "
          f"{args.threads}, best of {args.repeat}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    lfc = bench("LFC", binarize_input(rng.random((args.lfc_batch, 784))), args.repeat, args.threads)
    cnv = bench("CNV", cnv_input_codes(rng.integers(0, 256, (args.cnv_batch, 32, 32, 3))), args.repeat,
                args.threads)
    print(f"targets: LFC >= 20000 frames/s -> {lfc[0]:.0f} wall / {lfc[1]:.0f} per CPU-s; "
          f"CNV >= 200 frames/s -> {cnv[0]:.0f} wall / {cnv[1]:.0f} per CPU-s")


if __name__ == "__main__":
    main()

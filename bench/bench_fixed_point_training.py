"""Low-precision training on the systolic array's arithmetic (Gupta et al., ICML 2015): test error per epoch.

The digits MLP (float architecture: Dense-ReLU, softmax, SGD;
qnnfab.train.fixed_point) trained in float32 and in <WL, FL> fixed point at
WL 16, FL in {8, 10, 12, 14}, with round-to-nearest and with stochastic
rounding; every product of training goes through the golden 8x8 systolic
array (its LFSR rounding lanes for stochastic). Prints per run the final
and best test error, the epoch where the test error stops improving
(last epoch that set a new best by more than 0.5 points), and the fraction
of weights that still change in the last epoch (nearest rounding drops every
update below half an ulp: the stall); writes the test error per epoch as a
PNG (one panel per FL, the seed's figure on our data).

    .venv/bin/python bench/bench_fixed_point_training.py [--epochs 30] [--lr 0.01] [--hidden 64] [--png FILE]

Reference (REFERENCES.md, Gupta et al.): round-to-nearest stalls at short FL
(updates smaller than half an ulp round to zero); stochastic rounding at
WL 16 tracks float32.
"""

import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from qnnfab.train.datasets import load_digits  # noqa: E402
from qnnfab.train.fixed_point import ArraySpec, train_fixed_point  # noqa: E402

FLS = (8, 10, 12, 14)
WL = 16


def stall_epoch(err, margin=0.005):
    """Last epoch (1-based) that improved the best test error by more than ``margin``."""
    best, last = float("inf"), 1
    for e, v in enumerate(err, 1):
        if v < best - margin:
            best, last = v, e
    return last


def plot(runs, fls, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(fls), figsize=(4 * len(fls), 3.4), sharey=True)
    base = runs[None]
    for ax, fl in zip(np.atleast_1d(axes), fls):
        ep = base.history["epoch"]
        ax.plot(ep, 100 * np.array(base.history["test_err"]), "k-", label="float32")
        for rnd, style in (("nearest", "r--"), ("stochastic", "b-")):
            r = runs[(fl, rnd)]
            ax.plot(ep, 100 * np.array(r.history["test_err"]), style, label=f"WL {WL}, FL {fl}, {rnd}")
        ax.set_title(f"<{WL},{fl}>")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("test error (%)")
    fig.suptitle("digits MLP trained on the systolic array's fixed-point arithmetic")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--hidden", default="64", help="fully connected sizes, e.g. 64 or 128,64")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fl", default=",".join(map(str, FLS)), help="fraction bits to sweep at WL 16")
    ap.add_argument("--png", default="out/bench/fixed_point_training.png", help="where the figure goes (README: docs/)")
    args = ap.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    fls = tuple(int(f) for f in args.fl.split(","))
    ds = load_digits()
    spec = ArraySpec()
    print(f"dataset: {ds}; MLP {ds.features}-{'-'.join(map(str, hidden))}-{ds.classes}, SGD lr {args.lr:g}, batch "
          f"{args.batch}, {args.epochs} epochs, seed {args.seed}; products on the golden {spec.rows}x{spec.cols} "
          f"systolic array ({spec.lfsr_width}-bit LFSR lanes)")
    runs = {}
    common = dict(hidden=hidden, epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, array=spec)
    runs[None] = train_fixed_point(ds, fixed_point=None, **common)
    for fl in fls:
        for rnd in ("nearest", "stochastic"):
            t0 = time.perf_counter()
            runs[(fl, rnd)] = r = train_fixed_point(ds, fixed_point=(WL, fl), rounding=rnd, **common)
            print(f"  <{WL},{fl}> {rnd:<10} test error {100 * r.history['test_err'][-1]:6.2f}%  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(f"{'format':<12} {'rounding':<11} {'final err %':>11} {'best err %':>10} {'stalls at':>9} "
          f"{'w changed, last epoch':>21}")
    order = [(None, "float32")] + [((fl, rnd), rnd) for fl in fls for rnd in ("nearest", "stochastic")]
    for key, rnd in order:
        r = runs[key]
        err = r.history["test_err"]
        fmt = "float32" if key is None else f"<{WL},{key[0]}>"
        changed = "-" if key is None else f"{100 * r.history['changed'][-1]:.1f}%"
        print(f"{fmt:<12} {rnd:<11} {100 * err[-1]:11.2f} {100 * min(err):10.2f} {stall_epoch(err):9d} "
              f"{changed:>21}")
    print(f"\ntest error per epoch: {plot(runs, fls, Path(args.png))}")


if __name__ == "__main__":
    main()

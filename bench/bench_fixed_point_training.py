"""Low-precision training on the systolic array's arithmetic (Gupta et al., ICML 2015): test error per epoch.

Two float-architecture networks on the digits (qnnfab.train.fixed_point,
softmax, SGD): the MLP (Dense-ReLU) and the small conv net (3x3 Conv-ReLU,
2x2 max pool, Dense-ReLU), each trained in float32 and in <WL, FL> fixed
point at WL 16, FL in {8, 10, 12, 14}, with round-to-nearest and with
stochastic rounding; every product of training (the conv net's as im2col
products: forward, weight gradient, input gradient) goes through the golden
8x8 systolic array (its LFSR rounding lanes for stochastic). Prints per run
the final and best test error, the epoch where the test error stops
improving (last epoch that set a new best by more than 0.5 points), and the
fraction of weights that still change in the last epoch (nearest rounding
drops every update below half an ulp: the stall); writes the test error per
epoch as one PNG per network (one panel per FL, the seed's figure on our
data): ``--png`` for the MLP, the same name with ``_conv`` for the conv net.

    .venv/bin/python bench/bench_fixed_point_training.py [--nets mlp,conv] [--epochs 30] [--lr 0.01]
        [--hidden 64] [--conv-hidden c8,p2,32] [--fl 8,10,12,14] [--png FILE]

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
NETS = ("mlp", "conv")


def stall_epoch(err, margin=0.005):
    """Last epoch (1-based) that improved the best test error by more than ``margin``."""
    best, last = float("inf"), 1
    for e, v in enumerate(err, 1):
        if v < best - margin:
            best, last = v, e
    return last


def plot(runs, fls, path, title):
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
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    return path


def sweep(ds, name, hidden, fls, args, spec, png):
    """float32, then every FL with nearest and stochastic rounding: prints the table, writes the figure."""
    runs = {}
    common = dict(hidden=hidden, epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, array=spec)
    runs[None] = base = train_fixed_point(ds, fixed_point=None, **common)
    layers = base.arch.split(",")
    arch = "-".join([str(ds.features)] + layers) if all(t.isdigit() for t in layers) else " ".join(layers)
    print(f"{name} {arch} (float32 {base.seconds:.0f} s)", flush=True)
    for fl in fls:
        for rnd in ("nearest", "stochastic"):
            t0 = time.perf_counter()
            runs[(fl, rnd)] = r = train_fixed_point(ds, fixed_point=(WL, fl), rounding=rnd, **common)
            print(f"  <{WL},{fl}> {rnd:<10} test error {100 * r.history['test_err'][-1]:6.2f}%  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(f"{name}: {'format':<12} {'rounding':<11} {'final err %':>11} {'best err %':>10} {'stalls at':>9} "
          f"{'w changed, last epoch':>21}")
    order = [(None, "float32")] + [((fl, rnd), rnd) for fl in fls for rnd in ("nearest", "stochastic")]
    for key, rnd in order:
        r = runs[key]
        err = r.history["test_err"]
        fmt = "float32" if key is None else f"<{WL},{key[0]}>"
        changed = "-" if key is None else f"{100 * r.history['changed'][-1]:.1f}%"
        print(f"{name}: {fmt:<12} {rnd:<11} {100 * err[-1]:11.2f} {100 * min(err):10.2f} {stall_epoch(err):9d} "
              f"{changed:>21}")
    title = f"digits {name} {arch} trained on the systolic array's fixed-point arithmetic"
    print(f"\n{name} test error per epoch: {plot(runs, fls, png, title)}\n", flush=True)
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default=",".join(NETS), help="networks to train: mlp, conv or both (default)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--hidden", default="64", help="the MLP's fully connected sizes, e.g. 64 or 128,64")
    ap.add_argument("--conv-hidden", default="c8,p2,32", help="the conv net's layers (qnnfab train --hidden)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fl", default=",".join(map(str, FLS)), help="fraction bits to sweep at WL 16")
    ap.add_argument("--png", default="out/bench/fixed_point_training.png",
                    help="the MLP's figure; the conv net's adds _conv to the name (README: docs/)")
    args = ap.parse_args()
    nets = [n.strip() for n in args.nets.split(",")]
    if not nets or any(n not in NETS for n in nets):
        ap.error(f"--nets: {args.nets!r}: name mlp and/or conv, comma-separated")
    fls = tuple(int(f) for f in args.fl.split(","))
    ds = load_digits()
    spec = ArraySpec()
    print(f"dataset: {ds}; SGD lr {args.lr:g}, batch {args.batch}, {args.epochs} epochs, seed {args.seed}; "
          f"products on the golden {spec.rows}x{spec.cols} systolic array ({spec.lfsr_width}-bit LFSR lanes)\n")
    png = Path(args.png)
    if "mlp" in nets:
        sweep(ds, "MLP", args.hidden, fls, args, spec, png)
    if "conv" in nets:
        sweep(ds, "conv net", args.conv_hidden, fls, args, spec, png.with_name(png.stem + "_conv" + png.suffix))


if __name__ == "__main__":
    main()

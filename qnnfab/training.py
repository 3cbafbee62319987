"""``qnnfab train``: train the float baseline and the binarized schemes, export, compare.

Runs :func:`qnnfab.train.trainer.train` for each scheme with a progress line
per epoch, exports every binarized network (``.npz`` + ``.toml`` that
``qnnfab generate`` / ``qnnfab sim --config`` accept), runs the exported
integer network through the golden model and checks that its predictions
equal the trained network's own (they must: the export is exact), then
prints the table and writes a PNG of the training curves.
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnnfab.errors import QnnfabError
from qnnfab.golden.network import network_of

__all__ = ["SchemeResult", "run_training", "plot_curves", "format_table", "describe_arch"]

SCHEME_ORDER = ("float", "ste", "stochastic", "progressive")
SCHEME_LABEL = {"float": "float (same size)", "ste": "STE (BinaryNet)",
                "stochastic": "stochastic binarization", "progressive": "progressive (Lammie 2020)",
                "ternary": "ternary (TWN)", "xnor": "XNOR-Net", "dorefa": "DoReFa-Net", "hwgq": "HWGQ",
                "syq": "SYQ", "ttq": "TTQ (trained ternary)"}


@dataclass
class SchemeResult:
    scheme: str
    result: object            # qnnfab.train.trainer.TrainResult
    test_acc: float
    integer_acc: float | None = None
    agreement: float | None = None
    toml_path: Path | None = None


def _bar(done, total, width=24):
    n = int(width * done / total)
    return "[" + "#" * n + "." * (width - n) + "]"


def run_training(dataset, schemes=SCHEME_ORDER, *, hidden=(256, 256), epochs=30, batch=32, seed=0,
                 out_dir="out/train", stream=None, act_bits=1, lr=None, weight_bits=None):
    """Train every scheme; export the binarized ones into ``out_dir``; return the results.

    ``hidden``: layer sizes and "c<n>" / "c<n>k<k>" / "p<k>" entries (or one
    comma-separated string), see :func:`qnnfab.train.trainer.parse_hidden`;
    ``act_bits``: hidden activation bits of the binarized schemes; ``lr``:
    Adam learning rate of every binarized scheme (default: the trainer's per
    scheme default; the float baseline always uses its own); ``weight_bits``:
    the weight bits of the schemes that have a choice (DoReFa, SYQ, TTQ;
    default: each scheme's own, :data:`qnnfab.train.trainer.WEIGHT_BITS`).
    """
    from qnnfab import netconfig
    from qnnfab.train import trainer as T
    from qnnfab.train.export import export

    stream = sys.stdout if stream is None else stream   # looked up per call (tests capture it)
    results = []
    for scheme in schemes:
        t0 = time.monotonic()

        tty = hasattr(stream, "isatty") and stream.isatty()

        def progress(epoch, loss, train_acc, test_acc, scheme=scheme, tty=tty):
            line = (f"  {scheme:<12} {_bar(epoch, epochs)} epoch {epoch:3d}/{epochs} "
                    f"loss {loss:6.3f}  train {100 * train_acc:6.2f}%  test {100 * test_acc:6.2f}%  "
                    f"({time.monotonic() - t0:4.0f} s)")
            if tty:  # one self-updating line on a terminal
                stream.write("\r" + line)
            elif epoch == 1 or epoch == epochs or epoch % max(1, epochs // 5) == 0:
                stream.write(line + "\n")  # a few lines in logs
            stream.flush()

        r = T.train(dataset, scheme, hidden=hidden, epochs=epochs, batch=batch, seed=seed, progress=progress,
                    act_bits=act_bits, lr=None if scheme == "float" else lr,
                    weight_bits=weight_bits if scheme in T.WEIGHT_BITS else None)
        if tty:
            stream.write("\n")
        sr = SchemeResult(scheme, r, r.test_acc)
        if r.binarized:
            name = f"{dataset.name}-{scheme}".replace("_", "-")
            toml_path, _ = export(r, out_dir, name)
            golden = network_of(netconfig.load(toml_path))
            pred = golden.forward(dataset.x_test.reshape((-1,) + golden.input_shape)).argmax(1)
            sr.integer_acc = float(np.mean(pred == dataset.y_test))
            sr.agreement = float(np.mean(pred == T.predict(r, dataset.x_test)))
            sr.toml_path = toml_path
            if sr.agreement != 1.0:
                raise QnnfabError(f"export of scheme {scheme}: the integer network disagrees with the "
                                  f"trained network on {100 * (1 - sr.agreement):.2f}% of the test images")
        results.append(sr)
    return results


def describe_arch(dataset, hidden, act_bits=1, where="qnnfab train --hidden"):
    """The architecture as text: "MLP 64-256-256-10" or "conv net 8x8x1 c16 c32 p2 128 10" (+ act_bits);
    a ``hidden`` that does not fit the images is a ConfigError naming ``where``."""
    from qnnfab.train import trainer as T
    entries = T.parse_hidden(hidden)
    T._geometry(entries, dataset.input_shape, dataset.features, dataset.classes, where)
    if all(spec[0] == "fc" for _, spec in entries):
        s = f"MLP {dataset.features}-{'-'.join(t for t, _ in entries)}-{dataset.classes}"
    else:
        shape = "x".join(map(str, dataset.input_shape))
        s = f"conv net {shape} {' '.join(t for t, _ in entries)} {dataset.classes}"
    return s + (f", {act_bits}-bit hidden activations" if act_bits > 1 else "")


def format_table(results):
    base = next((r.test_acc for r in results if r.scheme == "float"), None)
    lines = [f"{'scheme':<28} {'test acc':>9} {'vs float':>9} {'exported integer net (golden)':>30} "
             f"{'agreement':>10}"]
    for r in results:
        vs = "" if base is None or r.scheme == "float" else f"{100 * (r.test_acc - base):+8.2f}"
        ia = "" if r.integer_acc is None else f"{100 * r.integer_acc:.2f}%"
        ag = "" if r.agreement is None else f"{100 * r.agreement:.2f}%"
        lines.append(f"{SCHEME_LABEL.get(r.scheme, r.scheme):<28} {100 * r.test_acc:8.2f}% {vs:>9} "
                     f"{ia:>30} {ag:>10}")
    return "\n".join(lines)


def plot_curves(results, path):
    """Training curves (test accuracy and loss per epoch) of every scheme, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in results:
        h = r.result.history
        label = SCHEME_LABEL.get(r.scheme, r.scheme)
        a.plot(h["epoch"], [100 * v for v in h["test_acc"]], label=label)
        b.plot(h["epoch"], h["loss"], label=label)
    a.set_xlabel("epoch")
    a.set_ylabel("test accuracy (%)")
    a.set_title("test accuracy")
    a.grid(alpha=0.3)
    b.set_xlabel("epoch")
    b.set_ylabel("training loss")
    b.set_title("loss")
    b.grid(alpha=0.3)
    a.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

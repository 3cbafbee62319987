"""BNN-PYNQ's pretrained LFC W1A1 in qnnfab: accuracy on the 10,000 MNIST test images.

Imports ``bnn/params/mnist/lfcW1A1`` and ``bnn/src/network/lfcW1A1/hw/config.h``
of a BNN-PYNQ checkout through :mod:`qnnfab.interop.bnn_pynq`, binarizes the
MNIST test pixels as BNN-PYNQ does (bit 1 iff p >= 128) and prints, beside
BNN-PYNQ's board-measured 98.40%:

* the accuracy of a direct NumPy evaluation of the imported matrices (popcount,
  ``>=`` the imported thresholds, label = highest set output bit, 0 when none);
* the accuracy of qnnfab's golden model on the imported config
  (:func:`qnnfab.golden.network.network_of`), when qnnfab's netconfig knows the
  config fields the import writes (``input_pad``, ``label``, ``classes``).

    .venv/bin/python bench/bench_bnn_pynq.py BNN_PYNQ MNIST

``BNN_PYNQ``: a BNN-PYNQ work tree or bare git directory (github Xilinx/BNN-PYNQ).
``MNIST``: a folder or bare git directory holding ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte`` (optionally ``.gz``), e.g. github kelas/mnist.
"""

import argparse
import gzip
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.interop.bnn_pynq import read_network

PARAMS = "bnn/params/mnist/lfcW1A1"
CONFIG_H = "bnn/src/network/lfcW1A1/hw/config.h"
BOARD_ACCURACY = 0.9840


def _is_bare_git(path):
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def _materialize(source, paths, into):
    """``source`` as a folder holding ``paths``: itself for a work tree, else ``git archive`` into ``into``."""
    source = Path(source)
    if not _is_bare_git(source):
        return source
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "--git-dir", str(source), "archive", "HEAD", *paths],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "x", "-C", str(into)], input=archive, check=True)
    return into


def _read_idx(folder, stem):
    for name in (stem, stem + ".gz"):
        path = folder / name
        if path.is_file():
            data = path.read_bytes()
            return gzip.decompress(data) if name.endswith(".gz") else data
    raise SystemExit(f"bench_bnn_pynq: no {stem}[.gz] in {folder}")


def load_mnist_test(source, scratch):
    """(pixels uint8 (10000, 784), labels uint8 (10000,)) of the MNIST test set."""
    source = Path(source)
    if _is_bare_git(source):
        names = subprocess.run(["git", "--git-dir", str(source), "ls-tree", "--name-only", "HEAD"],
                               check=True, capture_output=True, text=True).stdout.split()
        source = _materialize(source, [n for n in names if n.startswith("t10k-")], scratch / "mnist")
    images = _read_idx(source, "t10k-images-idx3-ubyte")
    labels = _read_idx(source, "t10k-labels-idx1-ubyte")
    return (np.frombuffer(images, np.uint8, offset=16).reshape(-1, 784),
            np.frombuffer(labels, np.uint8, offset=8))


def highest_set_bit(bits):
    """BNN-PYNQ's LFC read-out of (B, N) output bits: index of the highest set bit, 0 when none."""
    bits = np.asarray(bits)
    n = bits.shape[1]
    return np.where(bits.any(axis=1), n - 1 - np.argmax(bits[:, ::-1], axis=1), 0)


def numpy_forward(arrays, x):
    """Output bits of the imported W1A1 network on input bits ``x`` (B, MW0): popcount >= thresholds."""
    x = x.astype(np.int64)
    for i in range(len(arrays) // 2):
        w = arrays[f"fc{i}/weights"].astype(np.int64)
        popcount = x @ w.T + (1 - x) @ (1 - w).T
        x = (popcount >= arrays[f"fc{i}/thresholds"][:, 0]).astype(np.int64)
    return x


def golden_labels(text, arrays, x, scratch):
    """Labels of qnnfab's golden model on the imported config (bipolar outputs stored as bits), or
    (None, reason) when netconfig does not load it."""
    from qnnfab import netconfig
    from qnnfab.golden.network import network_of
    np.savez(scratch / "lfc-w1a1.npz", **arrays)
    try:
        cfg = netconfig.loads(text, base_dir=scratch, source="lfc-w1a1 (imported)")
    except ConfigError as e:
        return None, f"netconfig refuses the imported config: {e}"
    net = network_of(cfg)
    # the golden network reads either the unpadded bits or the padded ones, as netconfig defines it
    out = net.forward(x[:, :net.input_shape[0]])
    return highest_set_bit(out), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bnn_pynq", help="BNN-PYNQ work tree or bare git directory")
    ap.add_argument("mnist", help="folder or bare git directory with the MNIST t10k idx files")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        root = _materialize(args.bnn_pynq, [PARAMS, CONFIG_H], scratch / "bnn-pynq")
        text, arrays = read_network(root / PARAMS, root / CONFIG_H, name="lfc-w1a1")
        pixels, labels = load_mnist_test(args.mnist, scratch)
        mw = arrays["fc0/weights"].shape[1]
        x = np.zeros((len(pixels), mw), dtype=np.uint8)
        x[:, :784] = pixels >= 128                      # padding bits are 0
        ref = highest_set_bit(numpy_forward(arrays, x))
        print(f"LFC W1A1, {len(labels)} MNIST test images")
        print(f"  BNN-PYNQ on the board (its notebook): {BOARD_ACCURACY:.2%}")
        print(f"  NumPy on the imported matrices     : {np.mean(ref == labels):.2%}")
        golden, why = golden_labels(text, arrays, x, scratch)
        if golden is None:
            print(f"  qnnfab golden model                : not run ({why})")
            return 1
        print(f"  qnnfab golden model                : {np.mean(golden == labels):.2%} "
              f"(labels equal to NumPy's: {np.array_equal(golden, ref)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

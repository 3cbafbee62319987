"""BNN-PYNQ's pretrained LFC W1A1 and W1A2 in qnnfab: accuracy on the 10,000 MNIST test images.

Imports ``bnn/params/mnist/<network>`` and ``bnn/src/network/<network>/hw/config.h``
of a BNN-PYNQ checkout through :mod:`qnnfab.interop.bnn_pynq`, binarizes the
MNIST test pixels as BNN-PYNQ does (bit 1 iff p >= 128) and prints, beside
BNN-PYNQ's board-measured accuracy (its LFC-QNN_MNIST notebook: W1A1 98.40%,
W1A2 98.49%):

* the accuracy of a direct NumPy evaluation of the imported matrices with
  qnnfab's arithmetic (popcount for bit inputs, sum(w * c) for count inputs,
  count of thresholds with acc >= T; label = highest set output bit, 0 when none);
* the accuracy of qnnfab's golden model on the imported config
  (:func:`qnnfab.golden.network.network_of`), when qnnfab's netconfig knows the
  config fields the import writes (``input_pad``, ``label``, ``classes``).

    .venv/bin/python bench/bench_bnn_pynq.py BNN_PYNQ MNIST [--network lfcW1A1 lfcW1A2]

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
from qnnfab.packing import frame_labels
from qnnfab.interop.bnn_pynq import read_network

PARAMS = "bnn/params/mnist/{}"
CONFIG_H = "bnn/src/network/{}/hw/config.h"
#: BNN-PYNQ's notebooks/LFC-QNN_MNIST.ipynb, on the board
BOARD_ACCURACY = {"lfcW1A1": 0.9840, "lfcW1A2": 0.9849}


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
    """Outputs of the imported network on input bits ``x`` (B, MW0), in qnnfab's arithmetic: the
    accumulator is the XNOR popcount for bit inputs, sum(w * c) (w = -1/+1) for count inputs; the
    output is the number of thresholds with acc >= T."""
    x, bit_input = x.astype(np.int64), True
    for i in range(len(arrays) // 2):
        w = arrays[f"fc{i}/weights"].astype(np.int64)
        t = arrays[f"fc{i}/thresholds"]
        acc = x @ w.T + (1 - x) @ (1 - w).T if bit_input else x @ (2 * w - 1).T
        x = (acc[:, :, None] >= t[None]).sum(axis=2)
        bit_input = t.shape[1] == 1
    return x


def golden_labels(text, arrays, x, scratch):
    """Labels of qnnfab's golden model on the imported config (bipolar outputs stored as bits), or
    (None, reason) when netconfig does not load it."""
    from qnnfab import netconfig
    from qnnfab.golden.network import network_of
    np.savez(scratch / "imported.npz", **arrays)
    try:
        cfg = netconfig.loads(text, base_dir=scratch, source="imported BNN-PYNQ network")
    except ConfigError as e:
        return None, f"netconfig refuses the imported config: {e}"
    net = network_of(cfg)
    # the golden network reads the user's unpadded frames (the config's input_pad adds the padding)
    out = net.forward(x[:, :net.input_shape[0]])
    return frame_labels(out, cfg.label), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bnn_pynq", help="BNN-PYNQ work tree or bare git directory")
    ap.add_argument("mnist", help="folder or bare git directory with the MNIST t10k idx files")
    ap.add_argument("--network", nargs="+", default=sorted(BOARD_ACCURACY), choices=sorted(BOARD_ACCURACY))
    args = ap.parse_args()
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        pixels, labels = load_mnist_test(args.mnist, scratch)
        for network in args.network:
            params, config_h = PARAMS.format(network), CONFIG_H.format(network)
            root = _materialize(args.bnn_pynq, [params, config_h], scratch / "bnn-pynq")
            text, arrays = read_network(root / params, root / config_h, name=network, weights_file="imported.npz")
            mw = arrays["fc0/weights"].shape[1]
            x = np.zeros((len(pixels), mw), dtype=np.uint8)
            x[:, :784] = pixels >= 128                      # padding bits are 0
            ref = highest_set_bit(numpy_forward(arrays, x))
            print(f"{network}, {len(labels)} MNIST test images")
            print(f"  BNN-PYNQ on the board (its notebook): {BOARD_ACCURACY[network]:.2%}")
            print(f"  NumPy on the imported matrices     : {np.mean(ref == labels):.2%}")
            golden, why = golden_labels(text, arrays, x, scratch)
            if golden is None:
                print(f"  qnnfab golden model                : not run ({why})")
                status = 1
                continue
            print(f"  qnnfab golden model                : {np.mean(golden == labels):.2%} "
                  f"(labels equal to NumPy's: {np.array_equal(golden, ref)})")
    return status


if __name__ == "__main__":
    sys.exit(main())

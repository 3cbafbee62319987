"""Frames for whole-network simulation from a user's ``.npz`` file.

The file holds ``x`` (or ``x_test``): frames of *stored* input values as the
network's first layer reads them (integer bits 0/1 for bipolar inputs, k-bit
codes for uint/int inputs), shape exactly ``(B,) + input_shape`` (images in
NHWC order, channels last; no reshaping of other layouts); and optionally
``y`` (or ``y_test``): one integer label per frame in [0, outputs). ``qnnfab demo``
writes such a file (``test_images.npz``) for the digits test set.

Standard data set files (MNIST idx, CIFAR-10 binary and Python batches) and
folders of PNG/JPEG images are read by :func:`qnnfab.train.formats.read_dataset`
and checked the same way; their raw 8-bit pixels become the network's input
codes through the network's :class:`~qnnfab.interop.qonnx_import.InputCodes`
when given (``qnnfab import`` writes them beside the config; ``qnnfab verify
--input-codes``), else they are taken as the codes.
"""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.kinds import DataKind
from qnnfab.npzfile import check_labels
from qnnfab.train.formats import detect_format, npz_frames, read_dataset, read_images

__all__ = ["load_frames"]


def _check_layout(where, name, got, shape):
    """Frames of array shape ``got`` must be ``(B,) + shape`` (for a 1-D ``shape`` that is also
    ``(B, features)``); anything else, even with the right element count, is refused naming the layout."""
    if got[1:] == shape:
        return
    want = "(B, " + ", ".join(str(d) for d in shape) + ")"
    problem = f"frames of shape {got[1:]} (array {got}); this network takes {want}"
    if len(shape) == 3:
        h, w, c = shape
        problem += " in NHWC order (channels last)"
        if got[1:] == (c, h, w):
            raise ConfigError(where, name, problem, f"transpose them, e.g. {name}.transpose(0, 2, 3, 1)")
    if math.prod(got[1:]) == math.prod(shape) and len(got) == 2 and len(shape) == 3:
        fix = (f"if each row holds one image in NHWC order, reshape them: {name}.reshape((-1, "
               + ", ".join(str(d) for d in shape) + "))")
    else:
        fix = f"store frames of shape {want}"
    raise ConfigError(where, name, problem, fix)


def _range_fix(kind, hi_value):
    """What to do with inputs outside the network's codes: bipolar networks read one bit per input
    (threshold 8-bit pixels), narrower uint networks the top bits of a pixel."""
    save = "and store them with numpy.savez(FILE.npz, x=codes, y=labels)"
    if kind.kind == "bipolar":
        half = (int(hi_value) + 1) // 2
        return f"threshold the pixels to bits first, e.g. codes = (x >= {half}).astype(np.uint8), {save}"
    if kind.kind == "uint" and 0 < kind.bits < 8 and hi_value <= 255:
        return f"keep the top {kind.bits} bits of the 8-bit pixels, e.g. codes = x >> {8 - kind.bits}, {save}"
    return "convert the inputs to the network's input codes"


def load_frames(path, cfg, *, field="data", codes=None):
    """``(frames, labels or None)`` from ``path`` for network ``cfg``, checked
    against its input shape and kind; every problem is a :class:`ConfigError`
    (one about the file itself names ``field``: a command passes its option).

    ``path`` is an ``.npz`` (see the module docstring) or any file
    :func:`qnnfab.train.formats.read_dataset` reads (MNIST idx, CIFAR-10
    batches): their raw uint8 pixel codes (B, H, W, C) are taken as they are,
    flattened in NHWC order for a network with a 1-D input; or a folder of
    images (:func:`qnnfab.train.formats.read_images`), each checked against the
    input shape as it is read. ``codes``: an
    :class:`~qnnfab.interop.qonnx_import.InputCodes` turning those raw pixels
    into the input codes, whose kind must be the network's input kind (refused
    with an ``.npz``, which holds codes)."""
    p = Path(path)
    where = str(path)
    shape = tuple(cfg.input_shape)
    fmt = detect_format(p, where, field)
    kind = DataKind.of(cfg.input_kind, cfg.input_bits, where)
    if codes is not None:
        if fmt in (None, "npz"):
            raise ConfigError(where, "--input-codes", "an .npz holds frames that are already input codes; "
                              "input codes convert the raw pixels of images, MNIST or CIFAR-10 files",
                              "leave out --input-codes for an .npz")
        if codes.data_kind != kind:
            raise ConfigError(where, "--input-codes", f"the codes are {codes.data_kind.name} but the network "
                              f"reads {kind.name} inputs", "pass the input codes file written for this network")
    if fmt in (None, "npz"):   # None: npz_frames says what the file is
        xname, x, yname, y = npz_frames(p, where, field)
    else:
        if fmt == "images":
            x, y = read_images(p, shape=shape, where=where, field=field)
        else:
            x, y = read_dataset(p, where=where, field=field)
        xname, yname = "images", "labels"
        if len(shape) == 1 and x.shape[1:] != shape and math.prod(x.shape[1:]) == shape[0]:
            x = x.reshape(len(x), -1)
        if codes is not None:
            _check_layout(where, xname, x.shape, shape)
            x = replace(codes, layout="NC" if len(shape) == 1 else "NHWC").to_codes(x)   # readers give NHWC
    if x.ndim < 2:
        raise ConfigError(where, xname, f"must hold frames, shape (B,) + input_shape, got an array of shape {x.shape}",
                          "store one row per frame, e.g. x of shape (B, features)")
    if x.shape[0] == 0:
        raise ConfigError(where, xname, "holds no frames", "store at least one frame")
    lo, hi = kind.stored_range
    what = "bits (0 = -1, 1 = +1)" if kind.kind == "bipolar" else f"{kind.name} codes"
    if not np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.bool_):
        whole = (np.issubdtype(x.dtype, np.floating) and bool(np.all(np.isfinite(x)))
                 and bool(np.all(x == np.round(x))))
        fix = (f"the values are whole numbers: store {xname}.astype(np.int64)" if whole
               else f"quantize the inputs to the network's input codes ({what} in [{lo}, {hi}]) first")
        raise ConfigError(where, xname, f"must hold integer input codes, got dtype {x.dtype}", fix)
    _check_layout(where, xname, x.shape, tuple(cfg.input_shape))
    xmin, xmax = x.min(), x.max()            # in the file's own dtype: a uint64 never shows wrapped
    if xmin < lo or xmax > hi:
        raise ConfigError(where, xname, f"values span [{xmin}, {xmax}], the network reads {what} in "
                          f"[{lo}, {hi}]", _range_fix(kind, xmax))
    x = x.astype(np.int64)
    if y is not None:
        y = check_labels(where, yname, y, x.shape[0], classes=cfg.classes)
    return x, y

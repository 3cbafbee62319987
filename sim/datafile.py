"""Frames for whole-network simulation from a user's ``.npz`` file.

The file holds ``x`` (or ``x_test``): frames of *stored* input values as the
network's first layer reads them (bits 0/1 for bipolar inputs, k-bit codes
for uint/int inputs), shape ``(B,) + input_shape`` or ``(B, features)``; and
optionally ``y`` (or ``y_test``): one integer label per frame. ``qnnfab demo``
writes such a file (``test_images.npz``) for the digits test set.
"""

from pathlib import Path

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.kinds import DataKind
from qnnfab.npzfile import read_npz

__all__ = ["load_frames"]


def _pick(store, names):
    for n in names:
        if n in store:
            return n, store[n]
    return None, None


def load_frames(path, cfg, *, field="data"):
    """``(frames, labels or None)`` from ``path`` for network ``cfg``, checked
    against its input shape and kind; every problem is a :class:`ConfigError`
    (one about the file itself names ``field``: a command passes its option)."""
    p = Path(path)
    where = str(path)
    store = read_npz(p, where, field, "write it with numpy.savez(path, x=frames, y=labels)")
    xname, x = _pick(store, ("x", "x_test"))
    if x is None:
        raise ConfigError(where, "x", f"no frames: the file has {sorted(store)}", "store the frames as x (or x_test)")
    if x.ndim < 2:
        raise ConfigError(where, xname, f"must hold frames, shape (B,) + input_shape, got an array of shape {x.shape}",
                          "store one row per frame, e.g. x of shape (B, features)")
    if x.shape[0] == 0:
        raise ConfigError(where, xname, "holds no frames", "store at least one frame")
    if not np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.bool_):
        raise ConfigError(where, xname, f"must hold integer input codes, got dtype {x.dtype}",
                          "quantize the inputs to the network's input codes first")
    shape = tuple(cfg.input_shape)
    size = int(np.prod(shape))
    if x.shape[1:] != shape:
        if int(np.prod(x.shape[1:])) != size:
            raise ConfigError(where, xname, f"frames of shape {x.shape[1:]}, network '{cfg.name}' takes {shape}",
                              "reshape the frames to the network's input_shape")
        x = x.reshape((x.shape[0],) + shape)
    x = x.astype(np.int64)
    kind = DataKind.of(cfg.input_kind, cfg.input_bits, where)
    lo, hi = kind.stored_range
    what = "bits (0 = -1, 1 = +1)" if kind.kind == "bipolar" else f"{kind.name} codes"
    if x.min() < lo or x.max() > hi:
        raise ConfigError(where, xname, f"values span [{x.min()}, {x.max()}], the network reads {what} in "
                          f"[{lo}, {hi}]", "convert the inputs to the network's input codes")
    yname, y = _pick(store, ("y", "y_test"))
    if y is not None:
        if not np.issubdtype(y.dtype, np.integer):
            raise ConfigError(where, yname, f"labels must be integers, got dtype {y.dtype}",
                              "store class indices 0, 1, ... (e.g. with numpy.unique(y, return_inverse=True))")
        y = np.asarray(y).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise ConfigError(where, yname, f"has {y.shape[0]} labels for {x.shape[0]} frames",
                              "give one label per frame")
        y = y.astype(np.int64)
    return x, y

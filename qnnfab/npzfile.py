"""One reader of the user's ``.npz`` files (weights, data sets, frames).

:func:`read_npz` returns the arrays of an ``.npz`` or raises one
:class:`ConfigError` saying what the file is instead: missing, a folder, not a
NumPy file (text, TOML, ...), a single ``.npy`` array, or holding object
arrays (pickled data, never loaded), or truncated or damaged (a bad zip, a bad
checksum, an array cut short).
"""

import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from qnnfab.errors import ConfigError

__all__ = ["read_npz", "check_labels"]


def read_npz(path, where, field, fix):
    """``{name: array}`` of the ``.npz`` at ``path``; problems are ConfigError(where, field, ..., fix)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(where, field, f"file {p} does not exist", fix)
    if not p.is_file():
        raise ConfigError(where, field, f"{p} is not a file", fix)
    try:
        with open(p, "rb") as f:
            magic = f.read(6)
        if magic == b"\x93NUMPY":
            raise ConfigError(where, field, f"{p} holds a single array (.npy), not an .npz of named arrays", fix)
        if not magic.startswith(b"PK"):
            raise ConfigError(where, field, f"{p} is not a readable .npz (not a NumPy file)", fix)
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ConfigError:
        raise
    except ValueError as e:
        if "pickle" in str(e) or "object" in str(e):
            raise ConfigError(where, field, f"{p} holds object arrays (pickled data, not loaded)",
                              "store numeric arrays only") from None
        raise ConfigError(where, field, f"{p} is not a readable .npz ({e})", fix) from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, SyntaxError, MemoryError,
            tokenize.TokenError) as e:   # SyntaxError, TokenError: a damaged array header
        raise ConfigError(where, field, f"{p} is truncated or damaged ({type(e).__name__}: {e})",
                          f"write it again (a copy cut short or damaged cannot be read); {fix}") from None


def check_labels(where, name, y, n_frames, classes=None):
    """``y`` as (n_frames,) int64 class indices, or one ConfigError(where, name, ...): labels must be a
    1-D integer array (not float, bool or str; one-hot rows are named as such), one per frame, each in
    ``[0, classes)`` when ``classes`` is given (else >= 0). Values are printed in their own dtype
    (a uint64 label never shows as a wrapped negative number)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[0] == n_frames and y.shape[1] > 1:
        raise ConfigError(where, name, f"has shape {y.shape}: one row per frame, so one-hot labels, not class "
                          "indices", "one-hot: use labels.argmax(1)")
    if y.ndim != 1:
        raise ConfigError(where, name, f"has shape {y.shape}: labels are one class index per frame, shape "
                          f"({n_frames},)", "store a 1-D array of integer class indices")
    if y.shape[0] != n_frames:
        raise ConfigError(where, name, f"has {y.shape[0]} labels for {n_frames} frames", "give one label per frame")
    if not np.issubdtype(y.dtype, np.integer):
        fix = "store integer class indices"
        if np.issubdtype(y.dtype, np.floating) and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            fix = f"the values are whole numbers: store {name}.astype(np.int64)"
        raise ConfigError(where, name, f"must hold integer class indices, got dtype {y.dtype}", fix)
    if y.size:
        lo, hi = y.min(), y.max()
        if lo < 0:
            raise ConfigError(where, name, f"has label {lo}: labels are class indices >= 0",
                              "number the classes 0, 1, 2, ...")
        if classes is not None and hi >= classes:
            raise ConfigError(where, name, f"has label {hi}: the network has {classes} outputs, classes "
                              f"0..{classes - 1}", "use labels in that range, or a network with more outputs")
    return y.astype(np.int64)

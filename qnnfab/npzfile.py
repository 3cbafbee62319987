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

__all__ = ["read_npz"]


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

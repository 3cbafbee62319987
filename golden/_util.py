"""Small validation helpers shared by the golden models (private)."""

import numpy as np

from qnnfab.errors import ConfigError
from qnnfab.kinds import check_range

__all__ = ["as_int_array", "check_range", "as_pair", "ConfigError"]


def as_int_array(x, where, field):
    """Return ``x`` as an integer ndarray; raise ConfigError for floats with fractions."""
    a = np.asarray(x)
    if a.dtype == np.bool_:
        return a.astype(np.int64)
    if np.issubdtype(a.dtype, np.integer):
        return a
    if np.issubdtype(a.dtype, np.floating):
        if a.size and not np.all(np.isfinite(a)):
            raise ConfigError(where, field, "contains NaN or infinity", "pass finite integer values")
        if a.size and not np.all(a == np.round(a)):
            raise ConfigError(where, field, f"must hold integers, got dtype {a.dtype} with fractional values",
                              "quantize first (see qnnfab.golden.fixedpoint)")
        return a.astype(np.int64)
    raise ConfigError(where, field, f"must be an integer array, got dtype {a.dtype}", "pass an integer ndarray")



def as_pair(v, where, field, minimum=1):
    """Turn an int or a 2-sequence into a pair of ints >= minimum."""
    if isinstance(v, (int, np.integer)):
        p = (int(v), int(v))
    else:
        try:
            p = tuple(int(e) for e in v)
        except TypeError:
            raise ConfigError(where, field, f"must be an int or a pair of ints, got {v!r}") from None
        if len(p) != 2:
            raise ConfigError(where, field, f"must be an int or a pair of ints, got {v!r}", "pass (rows, cols)")
    if min(p) < minimum:
        raise ConfigError(where, field, f"must be >= {minimum}, got {v!r}", f"use a value >= {minimum}")
    return p

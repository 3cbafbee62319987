"""Where qnnfab caches Verilator builds, Yosys results and regression runs."""

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(sub=None):
    """``$QNNFAB_CACHE`` (default ``$XDG_CACHE_HOME/qnnfab`` or ``~/.cache/qnnfab``), or
    its sub-folder ``sub``; created when missing."""
    root = os.environ.get("QNNFAB_CACHE")
    p = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qnnfab"
    p = p.resolve()
    if sub:
        p = p / sub
    p.mkdir(parents=True, exist_ok=True)
    return p

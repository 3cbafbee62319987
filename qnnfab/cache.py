"""Where qnnfab caches Verilator builds, Yosys results and regression runs."""

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cache_dir", "atomic_write_text", "atomic_paths", "entry_lock", "read_entry"]


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


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder and a
    rename: readers see the old file or the whole new one, never a part (a crash,
    a full disk or Ctrl-C leaves at most a stray ``.tmp`` file, never a truncated entry)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def atomic_paths(*paths):
    """Temporary paths beside ``paths`` (same suffixes) for the block to write; when it ends,
    each is renamed onto its path (a reader sees the old file or the whole new one);
    when it raises, they are removed and the paths are untouched."""
    tmps = []
    try:
        for path in map(Path, paths):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
            os.close(fd)
            tmps.append(Path(tmp))
        yield tmps
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            try:
                tmp.unlink()
            except OSError:
                pass


@contextmanager
def entry_lock(path):
    """Hold the lock of cache entry ``path`` (``fcntl.flock`` on ``<path>.lock``, released
    when the process ends however it ends) for the block; yields True when another
    process held it first (it was making the entry: read it again before making it)."""
    with open(Path(f"{path}.lock"), "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            fcntl.flock(f, fcntl.LOCK_EX)
            waited = True
        try:
            yield waited
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_entry(path, parse, warn=None):
    """``parse(text of path)``, or None when the entry is missing or unreadable (a miss:
    the caller rebuilds it). An unreadable entry is removed, with a warning."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:   # ValueError: not UTF-8
        text, err = None, e
    if text is not None:
        try:
            return parse(text)
        except Exception as e:  # any parse failure means a damaged entry
            err = e
    if warn is None:
        import sys

        def warn(msg):
            print(f"qnnfab: warning: {msg}", file=sys.stderr, flush=True)
    warn(f"unreadable cache entry {path} ({type(err).__name__}: {err}); rebuilding it")
    try:
        path.unlink()
    except OSError:
        pass
    return None

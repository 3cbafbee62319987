"""Where qnnfab caches Verilator builds, Yosys results and regression runs."""

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cache_dir", "check_cache_dir", "atomic_write_text", "atomic_paths", "entry_lock", "read_entry"]


def _root():
    """The cache folder and what chose it: ``$QNNFAB_CACHE``, else ``$XDG_CACHE_HOME/qnnfab``
    or ``~/.cache/qnnfab``."""
    root = os.environ.get("QNNFAB_CACHE")
    if root:
        return Path(root), "QNNFAB_CACHE"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qnnfab", "the cache folder"


def check_cache_dir(where):
    """Raise ConfigError unless the cache folder is a folder qnnfab can write; a missing
    one is created (when that fails, the error says why)."""
    from qnnfab.errors import ConfigError
    root, field = _root()
    fix = ("point QNNFAB_CACHE at a writable folder (or unset it for ~/.cache/qnnfab)" if field == "QNNFAB_CACHE"
           else "set QNNFAB_CACHE to a writable folder")
    p = root.absolute()
    while not p.exists() and not p.is_symlink() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        what = "is a file" if p == root.absolute() else f"lies below the file {p}"
        raise ConfigError(where, field, f"{root} {what}, not a folder", fix)
    if not os.access(p, os.W_OK | os.X_OK):
        what = "is" if p == root.absolute() else f"would be created in {p}, which is"
        raise ConfigError(where, field, f"{root} {what} not writable", fix)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(where, field, f"cannot create {root} ({e.strerror or e})", fix) from None


def cache_dir(sub=None):
    """``$QNNFAB_CACHE`` (default ``$XDG_CACHE_HOME/qnnfab`` or ``~/.cache/qnnfab``), or
    its sub-folder ``sub``; created when missing."""
    p = _root()[0].resolve()
    if sub:
        p = p / sub
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from qnnfab.errors import ConfigError
        raise ConfigError("cache", str(p), f"cannot create the folder ({e.strerror or e})",
                          "point QNNFAB_CACHE at a writable folder") from None
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

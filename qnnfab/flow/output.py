"""Output folders of the flow: checked before any long work, written atomically.

A run writes into a temporary sibling of its output folder (``.NAME.qnnfab-XXXX``)
and renames it into place when every step has finished, so a failed or
interrupted run leaves nothing half-written, and two runs into the same new
folder cannot mix their files (the second rename finds the folder taken).

A folder a run of ``qnnfab generate`` wrote holds its manifest (:data:`MANIFEST`):
every file the run wrote, by path relative to the folder, with its sha256.
``--force`` replaces only those files; any other file in the folder (one the
user put there) is kept, byte for byte, at its place.
"""

import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from qnnfab.errors import ConfigError

__all__ = ["MANIFEST", "OLD_MARK", "OutputFolder", "check_out_file", "probe_writable", "read_manifest"]

#: the manifest of the files a run of qnnfab generate wrote (``--force`` replaces only those):
#: JSON ``{"written_by": "qnnfab generate", "files": {relative path: sha256 hex}}``
MANIFEST = ".qnnfab-manifest.json"
#: the mark of folders written before the manifest: their content is unknown, ``--force`` refuses them
OLD_MARK = ".qnnfab-generated"
_WRITTEN_BY = "qnnfab generate"


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder):
    """Relative POSIX paths of the files (and symbolic links) below ``folder``, sorted."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_symlink() or not p.is_dir())


def write_manifest(folder):
    """List every file below ``folder`` with its sha256 in ``folder``/:data:`MANIFEST`."""
    folder = Path(folder)
    files = {rel: _sha256(folder / rel) for rel in _files(folder) if rel != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"written_by": _WRITTEN_BY, "files": files}, indent=1) + "\n")


def read_manifest(folder):
    """``{relative path: sha256}`` of ``folder``'s manifest, or None when it has none or it is
    not one qnnfab wrote (paths must stay inside the folder)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
        files = data["files"]
        ok = (data.get("written_by") == _WRITTEN_BY and isinstance(files, dict)
              and all(isinstance(k, str) and isinstance(v, str) and k and not k.startswith("/")
                      and ".." not in k.split("/") for k, v in files.items()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return files if ok else None


def probe_writable(folder, where, option, shown):
    """Create and delete a file in ``folder`` (os.access says yes to root even on /proc)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ConfigError(where, option, f"cannot write in {shown} ({e.strerror})",
                          "choose a folder you can write to") from None


def check_out_file(where, option, path, suffix):
    """An output file: ``suffix`` extension, an existing writable folder, not a directory itself."""
    p = Path(path)
    if p.suffix.lower() != suffix:
        stem = p.stem if p.stem and not p.stem.startswith(".") else "out"
        raise ConfigError(where, option, f"{path!r} does not end in {suffix}", f"name the file e.g. {stem}{suffix}")
    if p.is_dir():
        raise ConfigError(where, option, f"{path} is a directory", f"name a file in it, e.g. {p / ('out' + suffix)}")
    parent = p.parent
    if not parent.is_dir():
        raise ConfigError(where, option, f"the folder {parent} does not exist", f"create it first (mkdir -p {parent})")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(where, option, f"{path} is not writable", "choose another file")
    probe_writable(parent, where, option, parent)
    return p


class OutputFolder:
    """An output folder the user named with option ``option`` of command ``where``,
    checked when constructed (before any long work).

    ``staged=False``: the folder is created now and steps write in it directly
    (commands whose files join others in a shared folder: train, import, demo).
    ``staged=True``: it must be missing or empty, unless ``force`` and an earlier
    run listed its files in a manifest (:data:`MANIFEST`): then those files are
    replaced and every other file is kept; or ``replace`` (a folder the caller
    owns, as demo's ``hw/``): then its whole content is replaced. ``reads``: the
    files the run reads (config, weights); ``force`` refuses when one of them is
    among the files it would replace, or when a listed file was changed since
    (its sha256 differs). Only missing parents are created now; :meth:`staging`
    gives the temporary sibling the steps write into and renames it into place.
    Folders created here are removed again by :meth:`undo` when a later check
    fails, so a failing command leaves nothing behind.
    """

    def __init__(self, where, option, path, *, staged=False, force=False, replace=False, reads=()):
        if not str(path).strip():
            raise ConfigError(where, option, "is an empty path", "name a folder, e.g. out/net")
        self.where, self.option = where, option
        self.path = p = Path(path)
        if p.exists() and not p.is_dir():
            raise ConfigError(where, option, f"{path} exists and is not a folder",
                              "name a new or existing folder")
        anc = p
        while not anc.exists():
            anc = anc.parent
        if not anc.is_dir():
            raise ConfigError(where, option, f"{anc} is not a folder", "name a folder path")
        self.created = []
        self.staged = staged
        self.replace = replace and p.is_dir()
        self.listed = None      # {relative path: sha256} of the files --force replaces
        if p.is_dir() and staged and not replace and any(p.iterdir()):
            if not force:
                raise ConfigError(where, option, f"{path} is not empty (an earlier run's files would mix with "
                                  "this one's)", "name a new or empty folder, or add --force to replace the "
                                  "files that qnnfab generate wrote there")
            self.listed = self._check_force(reads)
            self.replace = True
        self._create(p.parent if staged else p)
        try:
            if p.exists():
                probe_writable(p, where, option, p)
            if staged:
                self._probe_parent()
        except ConfigError:
            self.undo()
            raise

    def _check_force(self, reads):
        """The manifest of the folder ``--force`` may replace files of, checked."""
        where, option, p = self.where, self.option, self.path
        listed = read_manifest(p)
        if listed is None:
            if (p / MANIFEST).exists() or (p / OLD_MARK).exists():
                raise ConfigError(where, option, f"{p} was written by qnnfab generate without a readable list "
                                  f"of its files ({MANIFEST}): which files in it are yours is unknown, so "
                                  "--force replaces nothing there", "move the files you want to keep out of "
                                  "it and empty it yourself, or name a new folder")
            raise ConfigError(where, option, f"{p} is not empty and was not written by qnnfab generate "
                              f"(no {MANIFEST} in it); --force replaces only files such a run wrote",
                              "name a new or empty folder")
        inputs = {Path(r).resolve() for r in reads if r}
        for rel in sorted(listed):
            f = p / rel
            if f.resolve() in inputs and f.exists():
                raise ConfigError(where, option, f"{f} is read by this run and is one of the files --force "
                                  "would replace", f"copy it out of {p} and pass the copy")
            if f.is_file() and not f.is_symlink() and _sha256(f) != listed[rel]:
                raise ConfigError(where, option, f"{f} was changed since qnnfab generate wrote it (--force "
                                  "would replace it)", f"move it out of {p}, or delete it if the change can go")
        return listed

    def _probe_parent(self):
        """The staging folder is a sibling: the parent must take a new folder."""
        try:
            Path(tempfile.mkdtemp(prefix=f".{self.path.name}.qnnfab-probe-", dir=self.path.parent)).rmdir()
        except OSError as e:
            raise ConfigError(self.where, self.option, f"cannot create {self.path} ({e.strerror})",
                              "choose a folder you can write to") from None

    def _create(self, folder):
        missing = []
        q = folder
        while not q.exists():
            missing.append(q)
            q = q.parent
        try:
            for d in reversed(missing):
                d.mkdir()
                self.created.append(d)
        except OSError as e:
            self.undo()
            raise ConfigError(self.where, self.option, f"cannot create {self.path} ({e.strerror})",
                              "choose a folder you can write to") from None

    def undo(self):
        """Remove the folders the checks created (a later check failed)."""
        for d in reversed(self.created):
            try:
                d.rmdir()
            except OSError:
                pass
        self.created = []

    @contextmanager
    def staging(self):
        """The temporary sibling folder to write into; when the block ends, its manifest
        is written, the files of the folder that no earlier manifest lists (the user's)
        are moved into it at their places, and it is renamed into place in one step
        (readers see the old folder or the whole new one). When the block or any of
        this raises, the user's files are moved back and the sibling is removed (with
        :meth:`undo`); were a move back to fail, the sibling is left and named."""
        stage = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.qnnfab-", dir=self.path.parent))
        kept = []
        try:
            yield stage
            write_manifest(stage)
            kept = self._keep_user_files(stage)
            self._rename_into_place(stage)
        except BaseException:
            if self._put_back(stage, kept):
                shutil.rmtree(stage, ignore_errors=True)
            self.undo()
            raise
        if kept:
            print(f"qnnfab: kept {len(kept)} file{'s' * (len(kept) > 1)} qnnfab did not write: "
                  f"{', '.join(kept)}", file=sys.stderr, flush=True)

    def _keep_user_files(self, stage):
        """Move the files of the folder that its manifest does not list, or whose content
        changed since, into ``stage`` at the same relative paths; return their paths."""
        if self.listed is None:
            return []
        p, moved = self.path, []
        try:
            for rel in _files(p):
                f = p / rel
                if rel in (MANIFEST, OLD_MARK) or (rel in self.listed and f.is_file() and not f.is_symlink()
                                                    and _sha256(f) == self.listed[rel]):
                    continue
                dest = stage / rel
                try:
                    if os.path.lexists(dest):
                        raise FileExistsError
                    dest.parent.mkdir(parents=True, exist_ok=True)
                except OSError:
                    raise ConfigError(self.where, self.option, f"{f} is not a file qnnfab wrote, and this run "
                                      "writes a file at its place", f"move it out of {p} and run again") from None
                os.rename(f, dest)
                moved.append(rel)
        except BaseException:
            self._put_back(stage, moved)
            raise
        return moved

    def _put_back(self, stage, moved):
        """Move the user's files ``moved`` back from ``stage`` into the folder; True when all went back."""
        ok = True
        for rel in moved:
            try:
                if not os.path.lexists(stage / rel):
                    continue
                (self.path / rel).parent.mkdir(parents=True, exist_ok=True)
                if os.path.lexists(self.path / rel):
                    raise FileExistsError
                os.rename(stage / rel, self.path / rel)
            except OSError:
                ok = False
        if not ok:
            print(f"qnnfab: warning: your files are in {stage} (moving them back into {self.path} failed)",
                  file=sys.stderr, flush=True)
        moved.clear()
        return ok

    def _rename_into_place(self, stage):
        """Swap ``stage`` in for the folder with SIGINT and SIGTERM held back (they arrive
        after the swap), so an interrupt never leaves the folder moved aside."""
        p = self.path
        with _signals_held():
            old = None
            if self.replace and p.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{p.name}.qnnfab-old-", dir=p.parent))
                os.replace(p, old / p.name)
            try:
                os.rename(stage, p)       # onto a missing or empty folder only
            except OSError:
                if old is not None:
                    os.replace(old / p.name, p)
                    old.rmdir()
                raise ConfigError(self.where, self.option, f"{p} was written by another run meanwhile",
                                  "run again into a new or empty folder") from None
            if old is not None:
                shutil.rmtree(old)    # the earlier run's files only: the user's moved into stage
            os.chmod(p, 0o777 & ~_umask())


@contextmanager
def _signals_held():
    """Hold back SIGINT and SIGTERM in the block (delivered when it ends)."""
    held = {signal.SIGINT, signal.SIGTERM}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask

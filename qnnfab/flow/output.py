"""Output folders of the flow: checked before any long work, written atomically.

A run writes into a temporary sibling of its output folder (``.NAME.qnnfab-XXXX``)
and renames it into place when every step has finished, so a failed or
interrupted run leaves nothing half-written, and two runs into the same new
folder cannot mix their files (the second rename finds the folder taken).
"""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from qnnfab.errors import ConfigError

__all__ = ["MARK", "OutputFolder", "check_out_file", "probe_writable"]

#: the file that marks a folder a run of qnnfab generate wrote (``--force`` replaces only those)
MARK = ".qnnfab-generated"
MARK_TEXT = "written by qnnfab generate; --force replaces this folder's content\n"


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
    run marked it (:data:`MARK`), or ``replace`` (a folder the caller owns, as
    demo's ``hw/``); then its whole content is replaced. Only its missing parents
    are created now; :meth:`staging` gives the temporary sibling the steps write
    into and renames it into place. Folders created here are removed again by
    :meth:`undo` when a later check fails, so a failing command leaves nothing behind.
    """

    def __init__(self, where, option, path, *, staged=False, force=False, replace=False):
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
        if p.is_dir() and staged and not replace and any(p.iterdir()):
            if not force:
                raise ConfigError(where, option, f"{path} is not empty (an earlier run's files would mix with "
                                  "this one's)", "name a new or empty folder, or add --force to replace a folder "
                                  "that qnnfab generate wrote")
            if not (p / MARK).exists():
                raise ConfigError(where, option, f"{path} is not empty and was not written by qnnfab generate "
                                  f"(no {MARK} in it); --force replaces only such folders",
                                  "name a new or empty folder")
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
        """The temporary sibling folder to write into, marked with :data:`MARK`; renamed
        into place when the block ends, removed (with :meth:`undo`) when it raises."""
        stage = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.qnnfab-", dir=self.path.parent))
        try:
            yield stage
            (stage / MARK).write_text(MARK_TEXT)
            self._rename_into_place(stage)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            self.undo()
            raise

    def _rename_into_place(self, stage):
        p = self.path
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
            shutil.rmtree(old)
        os.chmod(p, 0o777 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask

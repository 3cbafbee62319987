"""What the benches share: the repository root, config lookup by name, an older revision's code."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def find_config(name, bench):
    """The config file ``name`` as given, relative to the repository or its configs/ (``.toml`` optional).

    Exits with one line naming ``bench`` and the places tried when there is none."""
    p = Path(name)
    for cand in (p, ROOT / p, ROOT / "configs" / p, ROOT / "configs" / f"{p}.toml"):
        if cand.is_file():
            return cand.resolve()
    raise SystemExit(f"{bench}: no config file {name!r} (tried ., {ROOT}, {ROOT / 'configs'})")


def archive_revision(ref, into):
    """``git archive`` of ``ref`` in ``into``/src, its packages mapped as pyproject.toml maps them
    in ``into``/pkg (the PYTHONPATH of a run on that code); returns ``into``/pkg."""
    src, pkg = into / "src", into / "pkg"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    shutil.copytree(src / "qnnfab", pkg / "qnnfab")
    for top in ("rtl", "golden", "train", "sim", "boards", "interop"):
        (pkg / "qnnfab" / top).symlink_to(src / top)
    return pkg

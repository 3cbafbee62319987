"""What the benches share: the repository root and config lookup by name."""

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

"""The shipped network configs that regression cases name (``{"config": "lfc_small.toml"}``).

They live in the ``configs/`` folder of a qnnfab checkout, beside the package
folders (an editable install runs from there); an installed wheel has none,
and a case must then give its config as an absolute path.
"""

from pathlib import Path

from qnnfab.errors import ConfigError

__all__ = ["shipped_configs", "config_path"]


def shipped_configs():
    """The ``configs/`` folder of the checkout this package runs from; a :class:`ConfigError` if there is none."""
    root = Path(__file__).resolve().parent.parent
    if not ((root / "configs").is_dir() and (root / "pyproject.toml").is_file()):
        raise ConfigError("qnnfab.sim", "config", f"names a shipped config, and {root} is not a qnnfab checkout "
                          "with a configs/ folder", "run from a checkout (pip install -e .) or give the "
                          "config's absolute path")
    return root / "configs"


def config_path(name):
    """``name`` if it is absolute, else that file in :func:`shipped_configs`."""
    p = Path(name)
    return p if p.is_absolute() else shipped_configs() / p

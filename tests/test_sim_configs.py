"""Shipped configs named by regression cases (qnnfab.sim.configs): found in a checkout, a clear error elsewhere."""

from pathlib import Path

import pytest

from qnnfab.errors import ConfigError
from qnnfab.sim import configs

ROOT = Path(__file__).resolve().parents[1]


def test_a_shipped_config_name_is_found_in_the_checkout():
    assert configs.config_path("lfc_small.toml") == ROOT / "configs" / "lfc_small.toml"
    assert configs.config_path(str(ROOT / "x.toml")) == ROOT / "x.toml"


def test_outside_a_checkout_a_shipped_name_fails_with_the_fix(tmp_path, monkeypatch):
    (tmp_path / "qnnfab" / "sim").mkdir(parents=True)
    monkeypatch.setattr(configs, "__file__", str(tmp_path / "qnnfab" / "sim" / "configs.py"))
    with pytest.raises(ConfigError, match="not a qnnfab checkout.*absolute path"):
        configs.config_path("lfc_small.toml")
    assert configs.config_path(str(tmp_path / "net.toml")) == tmp_path / "net.toml"

"""Targets: the boards qnnfab generates for, their devices' capacities and clocks.

``BOARDS`` maps a board name (as used by ``qnnfab generate --board``) to its
Amaranth platform class; each platform class carries ``capacity`` (a
:class:`~qnnfab.boards.targets.device.Device`). Adding a board is one small
platform file like :mod:`~qnnfab.boards.targets.pynq` plus an entry here.
"""

from qnnfab.errors import ConfigError

from .clock import check_clock, mmcm_settings
from .device import XC7Z020, Device, check_fits, describe_overflows, overflows
from .pynq import PynqZ1Platform, PynqZ2Platform

__all__ = ["BOARDS", "get_board", "Device", "XC7Z020", "check_fits", "overflows", "describe_overflows",
           "check_clock", "mmcm_settings"]

BOARDS = {
    "pynq-z1": PynqZ1Platform,
    "pynq-z2": PynqZ2Platform,
}


def get_board(name):
    """The platform class of board ``name``; a clear error lists the known ones."""
    try:
        return BOARDS[name.lower()]
    except KeyError:
        raise ConfigError("get_board", "name", f"unknown board {name!r}",
                          f"choose one of: {', '.join(BOARDS)}") from None

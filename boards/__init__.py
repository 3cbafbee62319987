"""Boards, device capacities and resource reports.

``BOARDS`` maps a board name (as used by ``qnnfab generate --board``) to its
Amaranth platform class; each platform class carries ``capacity`` (a
:class:`~qnnfab.boards.device.Device`).
"""

from qnnfab.errors import ConfigError

from .device import XC7Z020, Device, check_fits
from .pynq import PynqZ1Platform, PynqZ2Platform

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


__all__ = ["BOARDS", "get_board", "Device", "XC7Z020", "check_fits"]

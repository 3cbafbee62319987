"""Errors raised by qnnfab.

Every configuration problem is reported as a :class:`ConfigError` whose
message names the layer (or module) and the field, and says how to fix it.
The command line prints these as one line, without a traceback.
"""


class QnnfabError(Exception):
    """Base class of every error qnnfab raises on purpose."""


class ConfigError(QnnfabError, ValueError):
    """A parameter, shape or configuration value is invalid.

    ``where`` names the layer or module, ``field`` the offending parameter,
    ``fix`` says what to do about it.
    """

    def __init__(self, where, field, problem, fix=None):
        self.where = where
        self.field = field
        self.problem = problem
        self.fix = fix
        msg = f"{where}: {field}: {problem}"
        if fix:
            msg += f" (fix: {fix})"
        super().__init__(msg)


def check_int(where, field, value, minimum=1, fix=None):
    """Return ``value`` if it is an ``int`` >= ``minimum``, else raise :class:`ConfigError`.

    A ``bool`` is not an integer here. The problem reads "must be a positive
    integer, not 0" (minimum 1), "must be a non-negative integer, not -1"
    (minimum 0) or "must be an integer >= 2, not 1".
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
        raise ConfigError(where, field, f"must be {what}, not {value!r}", fix or f"use {field} >= {minimum}")
    return value

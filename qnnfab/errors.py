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

"""The ``qnnfab`` commands: one module per command builds its sub-parser (``add_parser``),
checks its arguments, calls the flow (:mod:`qnnfab.flow`) and prints (``run``)."""

from . import boards, demo, explore, export, fold, generate, import_, pack_weights, report, sim, train, verify

#: the commands in the order of ``qnnfab --help``
COMMANDS = (sim, verify, boards, generate, report, fold, explore, import_, export, demo, pack_weights, train)

__all__ = ["COMMANDS"]

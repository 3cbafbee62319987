"""The ``qnnfab`` command line.

Every sub-command has ``--help`` with an example. Errors that qnnfab raises on
purpose (bad configuration, missing tools, failed regressions) are printed as
one clear line (plus the regression report) and give exit status 1 or 2,
without a Python traceback. Ctrl-C (SIGINT) and SIGTERM stop a command the same
way, removing its staging and temporary folders: one line, exit status 130 or 143.
"""

import argparse
import os
import signal
import sys
import threading
import warnings

# One BLAS thread unless the user chose otherwise: the trainer's and the golden
# model's matrices are small, and on a loaded 2-core machine OpenBLAS's thread
# pool made training 10-20x slower. Must be set before NumPy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from amaranth.hdl import UnusedElaboratable  # noqa: E402

import qnnfab  # noqa: E402
from qnnfab.commands import COMMANDS  # noqa: E402
from qnnfab.errors import QnnfabError  # noqa: E402

EPILOG_MAIN = """examples:
  qnnfab sim --list                 list the cocotb regressions
  qnnfab sim --config configs/cnv_small.toml --frames 1000   a whole network at Verilator speed
  qnnfab verify --config X.toml --data test.npz              a data set through the hardware
  qnnfab sim xnor_popcount          run one regression on Verilator
  qnnfab sim                        run them all
  qnnfab sim --simulator icarus     run them all on Icarus (four-state: X checks)
  qnnfab demo                       the end-to-end demo
  qnnfab boards                     supported boards
  qnnfab generate --board pynq-z2 --config configs/lfc_small.toml --out out/lfc
  qnnfab report --config configs/cnv_small.toml --png cnv.png
  qnnfab fold --config configs/lfc_w1a1.toml --fastest --out lfc_fast.toml
  qnnfab pack-weights --config configs/lfc_small.toml --out lfc_small.bin
"""


class _Parser(argparse.ArgumentParser):
    """argparse with qnnfab's one-line errors (exit 2), naming the command's --help."""

    def error(self, message):
        self.exit(2, f"qnnfab: error: {self.prog}: {message} (fix: see `{self.prog} --help`)\n")


def build_parser():
    p = _Parser(
        prog="qnnfab",
        description="Open hardware generator for quantized neural networks.",
        epilog=EPILOG_MAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version",
                   version=f"qnnfab {qnnfab.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    p.commands = sub.choices   # {name: sub-parser}
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: every clean-up that Ctrl-C runs runs for it too."""


def _terminate(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)     # a second SIGTERM must not cut the clean-up short
    raise Terminated


def parse(parser, argv):
    """``parser.parse_args(argv)``, an unknown option reported by the sub-command's parser
    (so its error points at ``qnnfab <command> --help``)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = parser.commands.get(getattr(args, "command", None), parser)
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv=None):
    parser = build_parser()
    args = parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        return args.func(args)
    except QnnfabError as e:
        print(f"qnnfab: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:          # the reader of our output went away (``qnnfab sim --list | head``)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit
        return 128 + int(signal.SIGPIPE)
    except KeyboardInterrupt as e:
        # components built but never elaborated (an interrupted report) would warn at exit
        warnings.simplefilter("ignore", UnusedElaboratable)
        if isinstance(e, Terminated):
            print("qnnfab: terminated", file=sys.stderr)
            return 128 + int(signal.SIGTERM)
        print("qnnfab: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

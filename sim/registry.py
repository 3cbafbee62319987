"""The named cocotb regressions that ``qnnfab sim`` and pytest run.

Each module in :mod:`qnnfab.sim.benches` defines one regression:

* ``NAME``: the short name (``qnnfab sim NAME``),
* ``CASES``: a list of parameter dicts (the spread of configurations),
* ``design(params)``: returns the Amaranth component to simulate,
* cocotb tests (``@cocotb.test()``) that read the parameters with
  :func:`qnnfab.sim.stream.bench_params` and check the design against
  :mod:`qnnfab.golden`,
* optionally ``summarize(result)``: a one-line summary of its figures.

:func:`run_case` runs one case; :func:`regressions` lists them all.
"""

import importlib
import pkgutil
from dataclasses import dataclass

from qnnfab.errors import ConfigError

from .runner import run_bench

__all__ = ["Regression", "regressions", "get", "run_case", "case_id"]


@dataclass
class Regression:
    name: str
    module: str
    cases: list
    design: object
    summarize: object = None
    doc: str = ""


def case_id(params):
    """A short, stable, human-readable id of a parameter dict."""
    return "-".join(f"{k}{v}" for k, v in params.items()) or "default"


def regressions():
    """All regressions, by name (discovered from ``qnnfab.sim.benches``)."""
    from . import benches
    found = {}
    for info in pkgutil.iter_modules(benches.__path__):
        if not info.name.endswith("_tb"):
            continue
        modname = f"{benches.__name__}.{info.name}"
        mod = importlib.import_module(modname)
        doc = (mod.__doc__ or "").strip().splitlines()
        found[mod.NAME] = Regression(mod.NAME, modname, list(mod.CASES), mod.design,
                                     getattr(mod, "summarize", None), doc[0] if doc else "")
    return dict(sorted(found.items()))


def get(name):
    regs = regressions()
    if name not in regs:
        raise ConfigError("regression", "name", f"no regression named {name!r}",
                          f"choose one of: {', '.join(regs)}")
    return regs[name]


def run_case(name, params, seed=None, log=None, simulator=None):
    """Run regression ``name`` on one parameter dict (on ``simulator``, default
    ``$SIM`` else Verilator); return a BenchResult."""
    reg = get(name)
    component = reg.design(params)
    return run_bench(name, component, reg.module, params, seed, toplevel=name, log=log, simulator=simulator)

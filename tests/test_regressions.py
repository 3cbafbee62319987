"""Every registered cocotb regression, every case, on Verilator and on Icarus.

Cases are collected from :mod:`qnnfab.sim.registry`, so a new bench module in
``sim/benches/`` is picked up here without editing this file. A failing case
fails with the seed, the parameters and a waveform path in its message.

Verilator (``$SIM``, default verilator) runs every case as registered. Icarus,
the four-state simulator, runs every module case too (its builds take a
fraction of a second) and the whole network with fewer frames
(:data:`ICARUS_NETWORK_FRAMES`): the X checks and the reset-in-flight case are
the same, only the steady-state measurement is shorter. ``SIM=icarus qnnfab
sim`` runs the full set. Without Icarus those cases are skipped, with the
reason in pytest's summary.
"""

import pytest

from qnnfab.sim import registry
from qnnfab.sim.toolchain import icarus_available

CASES = [(name, params) for name, reg in registry.regressions().items() for params in reg.cases]

# frames per whole-network case on Icarus in pytest (the registered cases use 40-100)
ICARUS_NETWORK_FRAMES = 8


def _icarus_params(name, params):
    if name == "network":
        return {**params, "frames": min(params["frames"], ICARUS_NETWORK_FRAMES)}
    if name == "overlay" and "frames" in params:
        return {**params, "frames": [min(f, ICARUS_NETWORK_FRAMES) for f in params["frames"]]}
    return params


ICARUS_CASES = [(name, _icarus_params(name, params)) for name, params in CASES]

needs_icarus = pytest.mark.skipif(
    not icarus_available(),
    reason="Icarus Verilog is not installed: the four-state (X) regressions did not run "
           "(fix: apt-get install iverilog)")


@pytest.mark.cocotb
@pytest.mark.parametrize("name,params", CASES,
                         ids=[f"{n}[{registry.case_id(p)}]" for n, p in CASES])
def test_regression(name, params):
    result = registry.run_case(name, params)
    assert result.tests >= 1, f"{name}: no cocotb test ran"


@pytest.mark.cocotb
@needs_icarus
@pytest.mark.parametrize("name,params", ICARUS_CASES,
                         ids=[f"{n}[{registry.case_id(p)}]" for n, p in ICARUS_CASES])
def test_regression_on_icarus(name, params):
    result = registry.run_case(name, params, simulator="icarus")
    assert result.simulator == "icarus"
    assert result.tests >= 1, f"{name}: no cocotb test ran"

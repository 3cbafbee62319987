"""Every registered cocotb regression, every case, on Verilator (or SIM=icarus).

Cases are collected from :mod:`qnnfab.sim.registry`, so a new bench module in
``sim/benches/`` is picked up here without editing this file. A failing case
fails with the seed, the parameters and a waveform path in its message.
"""

import pytest

from qnnfab.sim import registry

CASES = [(name, params) for name, reg in registry.regressions().items() for params in reg.cases]


@pytest.mark.cocotb
@pytest.mark.parametrize("name,params", CASES,
                         ids=[f"{n}[{registry.case_id(p)}]" for n, p in CASES])
def test_regression(name, params):
    result = registry.run_case(name, params)
    assert result.tests >= 1, f"{name}: no cocotb test ran"

"""Run a cocotb test module against a cached build of an Amaranth component.

:func:`run_bench` is what every regression calls: it converts the component
to Verilog, builds it (or reuses the cached build), runs the cocotb test
module in the simulator with the bench parameters and the seed passed through
the environment, and raises :class:`RegressionFailure` (naming the seed and a
waveform path) when any cocotb test fails.
"""

import json
import os
import random
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from qnnfab.errors import QnnfabError

from .build import build, cache_dir, to_verilog

__all__ = ["run_bench", "RegressionFailure", "BenchResult", "NAME_ENV", "PARAMS_ENV", "SEED_ENV", "METRICS_ENV"]

NAME_ENV = "QNNFAB_BENCH_NAME"
PARAMS_ENV = "QNNFAB_BENCH_PARAMS"
SEED_ENV = "QNNFAB_BENCH_SEED"
METRICS_ENV = "QNNFAB_BENCH_METRICS"


class RegressionFailure(QnnfabError, AssertionError):
    """A cocotb regression failed; the message names the seed and the waveform."""


@dataclass
class BenchResult:
    name: str
    params: dict
    seed: int
    build_cached: bool
    build_seconds: float
    sim_seconds: float
    tests: int
    metrics: dict = field(default_factory=dict)
    simulator: str = "verilator"


def _read_results(path):
    """Return (number of tests, [(test name, failure message)])."""
    if not path.exists():
        return 0, [("<simulator>", "no results file: the simulator crashed before the tests ran")]
    tree = ET.parse(path)
    tests, failures = 0, []
    for case in tree.iter("testcase"):
        tests += 1
        for tag in ("failure", "error"):
            for f in case.iter(tag):
                msg = f.get("message") or (f.text or "").strip()
                failures.append((case.get("name"), msg))
    return tests, failures


def _sim_test(bld, module, toplevel, env, seed, test_dir, waves):
    from cocotb_tools.runner import get_runner

    runner = get_runner(bld.simulator)
    results = test_dir / "results.xml"
    log_file = test_dir / "sim.log"
    try:
        runner.test(
            test_module=module,
            hdl_toplevel=toplevel,
            hdl_toplevel_lang="verilog",
            build_dir=bld.directory,
            test_dir=test_dir,
            extra_env=env,
            seed=seed,
            waves=waves,
            results_xml=str(results),
            log_file=log_file,
        )
    except SystemExit:
        pass  # failures are read from the results file below
    return _read_results(results), log_file


def _tail(path, lines=25):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def run_bench(name, component, module, params, seed=None, *, toplevel=None, log=None,
              keep=False, simulator=None):
    """Simulate ``component`` with the cocotb test module ``module``.

    ``params`` (JSON-serialisable dict) reaches the bench through
    ``$QNNFAB_BENCH_PARAMS``, ``name`` through ``$QNNFAB_BENCH_NAME``, the seed through ``$QNNFAB_BENCH_SEED`` and cocotb's
    own ``COCOTB_RANDOM_SEED``. A bench may write figures (cycle counts, ...)
    to the JSON file named by ``$QNNFAB_BENCH_METRICS``; they are returned in
    :class:`BenchResult`.metrics. ``simulator``: ``"verilator"`` or
    ``"icarus"`` (default: ``$SIM``, else Verilator).
    """
    if seed is None:
        env_seed = os.environ.get("QNNFAB_SEED")
        seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1, 2**31)
    toplevel = toplevel or name
    verilog_text = to_verilog(component, toplevel)
    bld = build(verilog_text, toplevel, log=log, simulator=simulator)

    runs = cache_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    test_dir = runs / f"{name}-{bld.key[:8]}-s{seed}-p{os.getpid()}-{time.time_ns() % 10**9}"
    test_dir.mkdir(parents=True)
    metrics_path = test_dir / "metrics.json"
    env = {
        NAME_ENV: name,
        PARAMS_ENV: json.dumps(params, sort_keys=True),
        SEED_ENV: str(seed),
        METRICS_ENV: str(metrics_path),
        # the source tree of qnnfab must be importable inside the simulator
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    t0 = time.monotonic()
    (tests, failures), log_file = _sim_test(bld, module, toplevel, env, seed, test_dir, False)
    sim_seconds = time.monotonic() - t0
    if failures or tests == 0:
        # re-run the same seed with a waveform for the user (a tracing build)
        wave_dir = test_dir / "waves"
        wave_dir.mkdir()
        try:
            wbld = build(verilog_text, toplevel, waves=True, log=log, simulator=bld.simulator)
            _sim_test(wbld, module, toplevel, env, seed, wave_dir, True)
        except Exception as e:  # the failure report matters more than the waveform
            (wave_dir / "error.txt").write_text(f"waveform re-run failed: {e!r}\n")
        waves = sorted(wave_dir.glob("*.vcd")) + sorted(wave_dir.glob("*.fst"))
        wave_txt = str(waves[0]) if waves else f"(none written; see {wave_dir})"
        lines = [f"regression {name} FAILED on {bld.simulator} with seed {seed} (reproduce: QNNFAB_SEED={seed}"
                 f"{' SIM=icarus' if bld.simulator == 'icarus' else ''})",
                 f"  params: {json.dumps(params, sort_keys=True)}",
                 f"  waveform: {wave_txt}",
                 f"  log: {log_file}"]
        if tests == 0 and not failures:
            failures = [("<simulator>", "no cocotb test ran")]
        for tname, msg in failures:
            lines.append(f"  {tname}: {msg}")
        tail = _tail(log_file)
        if tail:
            lines.append("  --- end of simulator log ---")
            lines.extend("  " + t for t in tail.splitlines())
        raise RegressionFailure("\n".join(lines))
    metrics = {}
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
    if not keep:
        shutil.rmtree(test_dir, ignore_errors=True)
    return BenchResult(name, params, seed, bld.cached, bld.seconds, sim_seconds, tests, metrics, bld.simulator)

"""The harness itself: caching, failure reporting, registry, command line."""

import pytest

from qnnfab.errors import ConfigError
from qnnfab.rtl.xnor_popcount import XnorPopcount
from qnnfab.sim import registry
from qnnfab.sim.runner import RegressionFailure, run_bench


class _OffByOnePopcount(XnorPopcount):
    """A deliberately broken design: its count is wrong whenever bit 0 of w is 1."""

    def elaborate(self, platform):
        from amaranth.hdl import Module, Signal
        m = Module()
        m.submodules.ok = inner = XnorPopcount(self.simd, self.pipeline)
        m.d.comb += [
            inner.i.valid.eq(self.i.valid), inner.i.payload.eq(self.i.payload),
            self.i.ready.eq(inner.i.ready),
            self.o.valid.eq(inner.o.valid), inner.o.ready.eq(self.o.ready),
        ]
        flag = Signal()
        # remember bit 0 of w alongside the pipeline
        with m.If(inner.i.ready):
            m.d.sync += flag.eq(self.i.payload.w[0])
        m.d.comb += self.o.payload.eq(inner.o.payload + flag)
        return m


@pytest.mark.cocotb
def test_a_wrong_design_fails_with_seed_and_waveform():
    params = {"simd": 8, "pipeline": 0}
    reg = registry.get("xnor_popcount")
    with pytest.raises(RegressionFailure) as info:
        run_bench("xnor_popcount_broken", _OffByOnePopcount(8, 0), reg.module, params, seed=1234)
    msg = str(info.value)
    assert "seed 1234" in msg and "QNNFAB_SEED=1234" in msg
    assert "waveform:" in msg and ".vcd" in msg
    assert "expected" in msg


class _DeadInputPopcount(XnorPopcount):
    """A deliberately broken design: its input is never ready and its output never valid."""

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        m.submodules.ok = inner = XnorPopcount(self.simd, self.pipeline)
        m.d.comb += [inner.i.payload.eq(self.i.payload), self.o.payload.eq(inner.o.payload),
                     self.i.ready.eq(0), self.o.valid.eq(0)]
        return m


@pytest.mark.cocotb
def test_a_stream_that_stops_fails_on_the_watchdog_naming_the_stream():
    params = {"simd": 8, "pipeline": 0, "stall_cycles": 150}
    reg = registry.get("xnor_popcount")
    with pytest.raises(RegressionFailure) as info:
        run_bench("xnor_popcount_dead", _DeadInputPopcount(8, 0), reg.module, params, seed=1234)
    msg = str(info.value)
    assert "xnor_popcount_dead: no progress for 150 cycles" in msg
    assert "valid without ready on source i (i__valid=1 i__ready=0)" in msg
    assert "no transfer since the watch began" in msg


def _deaf_read_dma_shell(cfg):
    """A deliberately broken overlay shell: its read DMA ignores read data (RREADY stuck low)."""
    from qnnfab.rtl.overlay import OverlayShell

    class DeafReadDmaShell(OverlayShell):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.comb += self.m_axi_gmem_rready.eq(0)     # the last assignment wins
            return m
    return DeafReadDmaShell(cfg, 64)


@pytest.mark.cocotb
def test_an_overlay_whose_dma_ignores_read_data_fails_on_the_watchdog_not_the_driver_timeout():
    """Without the watchdog the driver waits 10 s of simulated time (a billion cycles)."""
    reg = registry.get("overlay")
    params = {"config": "fc-kbit", "frames": [1], "width": 64, "batch_size": 8, "pause": 0.0}
    from qnnfab.sim.benches.overlay_tb import load_config
    with pytest.raises(RegressionFailure) as info:
        run_bench("overlay_deaf_read", _deaf_read_dma_shell(load_config(params)), reg.module, params, seed=77)
    msg = str(info.value)
    assert "overlay_deaf_read: no progress for 4000 cycles" in msg
    assert "valid without ready on read DMA m_axi R (m_axi_gmem_rvalid=1 m_axi_gmem_rready=0)" in msg
    assert "no DONE after" not in msg


def test_watchdog_counts_quiet_cycles_and_restarts_on_a_transfer_or_when_idle():
    from types import SimpleNamespace
    from qnnfab.sim.stream import Handshake, ProgressWatchdog, Stalled
    v, r = SimpleNamespace(value=1), SimpleNamespace(value=0)
    dog = ProgressWatchdog([Handshake("read DMA m_axi R", "rvalid", v, "rready", r)], limit=3, bench="overlay")
    dog.check(0)
    dog.check(1)
    dog.check(2, active=False)            # nothing owed: the count restarts
    r.value = 1
    dog.check(3)                          # a transfer
    r.value = 0
    dog.check(4)
    dog.check(5)
    with pytest.raises(Stalled, match=r"^overlay: no progress for 3 cycles \(cycle 6\): valid without ready on "
                                      r"read DMA m_axi R \(rvalid=1 rready=0\); last transfer on read DMA m_axi R "
                                      r"at cycle 3$"):
        dog.check(6)
    with pytest.raises(ValueError, match="positive number of cycles"):
        ProgressWatchdog([], limit=0, bench="x")


@pytest.mark.cocotb
def test_same_design_is_built_once():
    params = {"simd": 5, "pipeline": 1}
    first = registry.run_case("xnor_popcount", params, seed=1)
    second = registry.run_case("xnor_popcount", params, seed=2)
    assert second.build_cached
    assert first.metrics["words_per_cycle"] == 1.0


def test_unknown_regression_is_a_clear_error():
    with pytest.raises(ConfigError, match="no regression named 'nope'.*xnor_popcount"):
        registry.get("nope")


def test_every_regression_has_cases_and_a_design():
    regs = registry.regressions()
    assert "xnor_popcount" in regs
    for name, reg in regs.items():
        assert reg.cases, f"{name} has no cases"
        for params in reg.cases:
            assert reg.design(params) is not None


def test_cli_lists_regressions(capsys):
    from qnnfab.cli import main
    assert main(["sim", "--list"]) == 0
    assert "xnor_popcount" in capsys.readouterr().out


def test_cli_reports_unknown_name_in_one_line(capsys):
    from qnnfab.cli import main
    assert main(["sim", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qnnfab: error:") and err.count("\n") == 1


def test_check_words_names_the_first_mismatch_and_counts():
    import numpy as np
    from qnnfab.sim.stream import check_words
    check_words([1, 2, 3], np.array([1, 2, 3]))
    with pytest.raises(AssertionError, match=r"^word 1 \(image 0\): got 0x5, expected 0x2$"):
        check_words([1, 5, 7], [1, 2, 3], describe=lambda k: f"image {k // 4}")
    with pytest.raises(AssertionError, match="2 output words, expected 3"):
        check_words([1, 2], [1, 2, 3])
    # decoded words against rows of an array, decimal
    with pytest.raises(AssertionError, match=r"word 0: got \[1, 2\], expected \[1, 3\]"):
        check_words([0x21], np.array([[1, 3]]), decode=lambda w: [w & 15, w >> 4], fmt="d")


def test_steady_cycles_between_group_ends():
    from types import SimpleNamespace
    from qnnfab.sim.stream import steady_cycles
    sink = SimpleNamespace(cycles=[3, 4, 10, 11, 17, 18])
    assert steady_cycles(sink, 2, 3) == (7.0, [4, 11, 18])


needs_icarus = pytest.mark.skipif(
    not __import__("qnnfab.sim.toolchain", fromlist=["x"]).icarus_available(),
    reason="Icarus Verilog is not installed (fix: apt-get install iverilog)")


@pytest.mark.cocotb
@needs_icarus
def test_icarus_build_is_cached_and_keyed_apart_from_verilator():
    params = {"simd": 5, "pipeline": 1}
    first = registry.run_case("xnor_popcount", params, seed=1, simulator="icarus")
    second = registry.run_case("xnor_popcount", params, seed=2, simulator="icarus")
    assert first.simulator == second.simulator == "icarus"
    assert second.build_cached
    assert first.metrics["words_per_cycle"] == 1.0


@pytest.mark.cocotb
@needs_icarus
def test_x_on_a_handshake_fails_the_regression(monkeypatch):
    """Compiled under cocotb's default -g2012, Icarus never starts the
    ``always @*`` blocks of Amaranth's Verilog: the max-pool's input ready reads
    X after reset. The stream drivers must stop on it, naming the signal (this
    is what the -g2005 of every Icarus build prevents)."""
    from qnnfab.sim import build
    monkeypatch.setattr(build, "ICARUS_ARGS", ())
    reg = registry.get("maxpool")
    params = reg.cases[0]
    with pytest.raises(RegressionFailure) as info:
        run_bench("maxpool", reg.design(params), reg.module, params, seed=7, simulator="icarus")
    msg = str(info.value)
    assert "on icarus" in msg and "SIM=icarus" in msg
    assert "i ready is" in msg and "(X/Z)" in msg


def test_known_names_x_and_z_and_passes_resolved_values():
    from types import SimpleNamespace
    from cocotb.types import LogicArray
    from qnnfab.sim.stream import UnknownValue, known
    assert known(SimpleNamespace(value=LogicArray("0101")), "o payload", 3) == 5
    for bad in ("01X1", "Z000"):
        with pytest.raises(UnknownValue, match=rf"^o valid is {bad} \(X/Z\) at cycle 9 after reset$"):
            known(SimpleNamespace(value=LogicArray(bad)), "o valid", 9)


def test_reset_point_falls_inside_the_chosen_frame():
    import random
    from qnnfab.sim.stream import reset_point
    rng = random.Random(5)
    cuts = {reset_point(rng, 6, 2) for _ in range(200)}
    assert cuts == set(range(13, 18))          # frame 2 is words 12..17: after 1 to 5 of them
    assert reset_point(rng, 1, 4) == 4         # one-word frames: after whole frames


def test_cli_simulator_choice_is_checked_before_any_build(capsys, monkeypatch):
    from qnnfab.cli import main
    from qnnfab.sim import toolchain
    assert main(["sim", "--simulator", "questa", "xnor_popcount"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--simulator" in err and "verilator, icarus" in err
    monkeypatch.setattr(toolchain, "icarus_available", lambda: False)
    assert main(["sim", "--simulator", "icarus", "xnor_popcount"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install iverilog" in err
    monkeypatch.setenv("SIM", "icarus")
    assert main(["sim", "xnor_popcount"]) == 2
    assert "SIM" in capsys.readouterr().err


def test_a_build_enters_the_cache_only_when_complete(tmp_path, monkeypatch, capsys):
    from qnnfab.sim.build import cached_build
    monkeypatch.setenv("QNNFAB_CACHE", str(tmp_path))
    builds = tmp_path / "builds"

    def model(text):
        def build_into(d):
            (d / "model").write_text(text)
        return build_into

    def interrupted(d):
        (d / "model").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_build("top", "k1", interrupted)
    assert sorted(p.name for p in builds.iterdir()) == ["top-k1.lock"]     # no entry, no leftovers
    entry, cached, _ = cached_build("top", "k1", model("whole"))
    assert not cached and entry == builds / "top-k1" and (entry / "model").read_text() == "whole"
    assert cached_build("top", "k1", lambda d: 1 / 0) == (entry, True, 0.0)    # reused, not rebuilt
    # an entry that can no longer run (its simulator libraries gone) is rebuilt in its place
    again, cached, _ = cached_build("top", "k1", model("new"), usable=lambda e: False)
    assert not cached and again == entry and (entry / "model").read_text() == "new"
    assert "rebuilding it" in capsys.readouterr().err
    assert sorted(p.name for p in builds.iterdir()) == ["top-k1", "top-k1.lock"]

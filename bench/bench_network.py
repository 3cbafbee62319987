"""Whole-network figures: Verilator throughput vs the cycle model, and Yosys resources.

For every config it
* runs the whole-network cocotb regression (``qnnfab.sim.registry.run_case``
  "network": every frame compared with the golden forward pass, then a run
  without gaps or backpressure that measures the steady-state cycles between
  the last output words of consecutive frames),
* synthesizes every layer with Yosys ``synth_xilinx -family xc7``
  (``qnnfab.boards.estimate.report.network_report``, cached by Verilog hash),

and prints one table: model cycles/frame (bottleneck layer), measured
steady-state cycles/frame, frames/s at the clock (model and measured),
Verilator speed (simulated frames/s and cycles/s), build time, LUT (logic +
LUT-RAM), FF, BRAM36, DSP; plus BNN-PYNQ's published LFC/CNV W1A1 rows on the
PYNQ-Z1 (xc7z020, 100 MHz) for comparison with the full-size configs.

Usage::

    .venv/bin/python bench/bench_network.py                       # lfc_small, cnv_small (minutes)
    .venv/bin/python bench/bench_network.py --configs configs/lfc_w1a1.toml \\
        configs/lfc_w1a1_fast.toml --frames 20                    # full size (long builds)
    .venv/bin/python bench/bench_network.py --configs configs/cnv_w1a1.toml --skip-sim

The full-size Verilator builds and Yosys runs take many minutes each (cached
afterwards). Figures are printed, never asserted (the regression itself fails
when an output differs from golden or the steady state is > 2% off the model).
"""

import argparse
import sys
import time

from common import find_config  # bench/ is the script's folder

DEFAULT_CONFIGS = ["configs/lfc_small.toml", "configs/cnv_small.toml"]

# BNN-PYNQ (Umuroglu et al., FINN, FPGA'17, and the BNN-PYNQ repository's
# published figures), PYNQ-Z1 at 100 MHz.
REFERENCES = {
    "lfc": dict(name="BNN-PYNQ LFC W1A1", model=512, fps=118_883, lut=28_360, bram36=110, dsp=4),
    "cnv": dict(name="BNN-PYNQ CNV W1A1", model=32_768, fps=3_050, lut=26_072, bram36=124, dsp=24),
}


def resolve(name):
    return find_config(name, "bench_network")


def simulate(path, frames, seed):
    """Run the network regression; return a dict of figures (or an error string)."""
    from qnnfab.errors import QnnfabError
    from qnnfab.sim.registry import run_case
    t0 = time.monotonic()
    try:
        res = run_case("network", {"config": str(path), "frames": frames}, seed=seed)
    except QnnfabError as e:
        return {"error": str(e).splitlines()[0], "wall": time.monotonic() - t0}
    m = dict(res.metrics)
    m.update(build_cached=res.build_cached, build_seconds=res.build_seconds,
             sim_seconds=res.sim_seconds, seed=res.seed, wall=time.monotonic() - t0)
    return m


def synthesize(cfg, jobs, f_clk, verbose):
    from qnnfab.boards.estimate.report import network_report
    from qnnfab.errors import QnnfabError
    t0 = time.monotonic()
    try:
        rep = network_report(cfg, jobs=jobs, f_clk=f_clk,
                             progress=(lambda msg: print(msg, flush=True)) if verbose else None)
    except QnnfabError as e:
        return None, f"{str(e).splitlines()[0]}", time.monotonic() - t0
    return rep, None, time.monotonic() - t0


def _fmt(v, spec="{:,.0f}", missing="-"):
    return missing if v is None else spec.format(v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="default configs: " + " ".join(DEFAULT_CONFIGS))
    ap.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, metavar="TOML",
                    help="network configs (paths, or names under configs/)")
    ap.add_argument("--frames", type=int, default=100,
                    help="frames per regression test (default 100; use ~20 for the full-size configs)")
    ap.add_argument("--seed", type=int, default=1, help="regression seed (default 1)")
    ap.add_argument("--clock", type=float, default=100.0, metavar="MHZ",
                    help="clock for the frames/s columns (default 100 MHz, as BNN-PYNQ)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs (default 2; max 2 here)")
    ap.add_argument("--skip-sim", action="store_true", help="no Verilator regression")
    ap.add_argument("--skip-report", action="store_true", help="no Yosys synthesis")
    ap.add_argument("--quiet", action="store_true", help="no per-stage Yosys progress lines")
    args = ap.parse_args(argv)
    f_clk = args.clock * 1e6

    from qnnfab import netconfig

    rows, families = [], []
    for c in args.configs:
        path = resolve(c)
        cfg = netconfig.load(path)
        _, (bneck, model), fps_model = cfg.throughput(f_clk)
        fam = next((k for k in REFERENCES if cfg.name.lower().startswith(k)), None)
        if fam and fam not in families:
            families.append(fam)
        row = dict(config=path.name, name=cfg.name, model=model, bottleneck=bneck, fps_model=fps_model)
        if not args.skip_sim:
            print(f"[sim] {path.name}: {args.frames} frames, seed {args.seed} ...", flush=True)
            m = simulate(path, args.frames, args.seed)
            row["sim"] = m
            if "error" in m:
                print(f"[sim] {path.name}: FAILED after {m['wall']:.0f} s: {m['error']}", flush=True)
            else:
                build = "cached build" if m["build_cached"] else f"built in {m['build_seconds']:.0f} s"
                print(f"[sim] {path.name}: {m['cycles_per_frame']:.1f} cycles/frame vs model {m['model_cycles']} "
                      f"({100 * (m['cycles_per_frame'] / m['model_cycles'] - 1):+.2f}%), first-frame latency "
                      f"{m['first_frame_latency']} cycles; {build}, simulated in {m['sim_seconds']:.0f} s",
                      flush=True)
        if not args.skip_report:
            print(f"[yosys] {path.name}: synthesizing {len(cfg.layers)} layers ...", flush=True)
            rep, err, dt = synthesize(cfg, args.jobs, f_clk, not args.quiet)
            row["report"], row["report_error"], row["report_seconds"] = rep, err, dt
            if err:
                print(f"[yosys] {path.name}: FAILED after {dt:.0f} s: {err}", flush=True)
            else:
                from qnnfab.boards.estimate.report import format_report
                print(format_report(rep), flush=True)
                print(f"[yosys] {path.name}: {dt:.0f} s", flush=True)
        rows.append(row)

    # ---- the table --------------------------------------------------------
    mhz = f"{args.clock:g} MHz"
    head = (f"{'network':<18} {'model cyc':>9} {'meas cyc':>9} {'diff':>7} {'fps model':>10} "
            f"{'fps meas':>10} {'sim fr/s':>8} {'sim cyc/s':>10} {'build s':>8} "
            f"{'LUT':>8} {'LUTRAM':>7} {'LUT tot':>8} {'FF':>8} {'BRAM36':>7} {'DSP':>4}")
    print()
    print(f"whole-network figures (frames/s at {mhz}; cycles per frame in steady state; "
          f"LUT = logic LUTs, LUTRAM = LUTs as RAM/SRL, LUT tot = both; Yosys synth_xilinx -family xc7)")
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r.get("sim") or {}
        meas = m.get("cycles_per_frame")
        diff = None if meas is None else 100 * (meas / r["model"] - 1)
        fps_meas = None if meas is None else f_clk / meas
        build = None
        if m and "error" not in m:
            build = "cached" if m["build_cached"] else f"{m['build_seconds']:.0f}"
        rep = r.get("report")
        t = rep.total if rep is not None else None
        print(f"{r['name']:<18} {r['model']:>9,} {_fmt(meas, '{:,.1f}'):>9} {_fmt(diff, '{:+.2f}%'):>7} "
              f"{r['fps_model']:>10,.0f} {_fmt(fps_meas):>10} "
              f"{_fmt(m.get('sim_frames_per_s'), '{:,.1f}'):>8} {_fmt(m.get('sim_cycles_per_s')):>10} "
              f"{build or '-':>8} "
              f"{_fmt(t and t.lut):>8} {_fmt(t and t.lutram):>7} {_fmt(t and t.lut + t.lutram):>8} {_fmt(t and t.ff):>8} "
              f"{_fmt(t and t.bram36, '{:g}'):>7} {_fmt(t and t.dsp):>4}")
        if m.get("error"):
            print(f"  sim FAILED: {m['error']}")
        if r.get("report_error"):
            print(f"  yosys FAILED: {r['report_error']}")
    for fam in families:
        ref = REFERENCES[fam]
        print(f"{ref['name']:<18} {ref['model']:>9,} {'-':>9} {'':>7} {f_clk / ref['model']:>10,.0f} "
              f"{ref['fps']:>10,} {'':>8} {'':>10} {'':>8} {'':>8} {'':>7} {ref['lut']:>8,} {'-':>8} "
              f"{ref['bram36']:>7} {ref['dsp']:>4}")
    if families:
        print("BNN-PYNQ rows: PYNQ-Z1 (xc7z020), Vivado, total LUTs (logic + memory) under 'LUT tot'; "
              "'fps meas' is the published rate measured at 100 MHz. Compare them with the full-size "
              "configs (lfc_w1a1, cnv_w1a1), not the reduced *_small ones.")
    failed = any("error" in (r.get("sim") or {}) or r.get("report_error") for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

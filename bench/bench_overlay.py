"""The PYNQ overlay shell: DMA overhead in co-simulation and the shell's resources.

For each network it runs, at batch ``--frames`` (100) and a 64-bit bus:

* the bare accelerator (the ``network`` regression, unstalled run): its
  steady-state cycles per frame;
* the whole shell driven by the board's Python driver in co-simulation
  (the ``overlay`` regression, ``measure`` case: cocotbext-axi's AxiRam with
  no pauses as DDR): the steady-state cycles between the last W beats of
  consecutive output records (least-squares slope: records leave in
  16-beat bursts), the whole run's CYCLES register per frame
  (pipeline fill and DMA latency included), and the AXI beats per cycle on
  the read and write sides over the run;

then synthesizes the shell with Yosys (xc7) beside the accelerator alone:
the shell's own cost is the difference.

Networks: ``lfc_small``; ``digits-mlp`` (the demo's digits MLP 64-256-256-10
on 5-bit pixels with the demo's folding, random weights); ``dma-bound`` (one
FC layer that takes a full 64-bit input word every cycle: the read DMA at
its full rate).

Usage::

    .venv/bin/python bench/bench_overlay.py [--frames 100] [--skip-synth]

Figures are printed, never asserted (the regressions fail on any output
that differs from the golden model).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ["lfc_small.toml", "digits-mlp", "dma-bound"]


def config_file(name, tmp):
    from qnnfab.sim.benches import overlay_tb
    if name in overlay_tb.NAMED_CONFIGS:
        p = Path(tmp) / f"{name}.toml"
        p.write_text(overlay_tb.NAMED_CONFIGS[name])
        return p
    return ROOT / "configs" / name


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-synth", action="store_true")
    args = ap.parse_args(argv)

    from qnnfab.sim.benches import overlay_tb
    from qnnfab.sim.registry import run_case

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-overlay-") as tmp:
        for name in NETWORKS:
            path = config_file(name, tmp)
            cfg = overlay_tb.load_config({"config": str(path)})
            model = max(cfg.layer_cycles(L) for L in cfg.layers)
            t0 = time.monotonic()
            bare = run_case("network", {"config": str(path), "frames": args.frames}, seed=args.seed).metrics
            shell = run_case("overlay", {"config": str(path), "frames": [args.frames], "width": 64,
                                         "measure": True, "pause": 0.0}, seed=args.seed).metrics
            fm = overlay_tb.formats({"config": str(path), "width": 64})
            rows.append((cfg.name, model, bare, shell, fm, time.monotonic() - t0))
            print(f"  {cfg.name}: simulated in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

    print(f"Overlay shell in co-simulation, {args.frames} frames per batch, 64-bit AXI, DDR = cocotbext-axi "
          "AxiRam without pauses, the Python driver through cocotb bridge/resume")
    print(f"{'network':12} {'model':>6} {'bare c/f':>9} {'shell c/f':>10} {'vs bare':>8} {'run c/f':>8} "
          f"{'in B/fr':>8} {'out B/fr':>9} {'read beats/cyc':>15} {'write beats/cyc':>16}")
    for name, model, bare, shell, fm, _ in rows:
        ratio = shell["shell_cycles_per_frame"] / bare["cycles_per_frame"] - 1
        print(f"{name:12} {model:>6} {bare['cycles_per_frame']:>9.1f} {shell['shell_cycles_per_frame']:>10.1f} "
              f"{100 * ratio:>+7.2f}% {shell['run_cycles'] / shell['frames']:>8.1f} {fm.in_frame_bytes:>8} "
              f"{fm.out_record_bytes:>9} {shell['read_beats_per_cycle']:>15.3f} {shell['write_beats_per_cycle']:>16.3f}")
    print("  model = bottleneck layer's cycles/frame; bare/shell c/f = steady state, first 10 frames skipped "
          "(bare: between the last output words of frames; shell: least-squares slope of the last W beat of "
          "each output record, which leave in 16-beat bursts);\n"
          "  run c/f = CYCLES register / frames (START to DONE: pipeline fill and DMA latency included); "
          "beats/cycle = AXI data beats over the cycles from the first to the last beat of the run")

    if args.skip_synth:
        return 0
    from qnnfab.boards.estimate.yosys import synth_xc7
    from qnnfab.rtl.dataflow import Dataflow
    from qnnfab.rtl.overlay import OverlayShell
    print()
    print("Yosys synth_xilinx -family xc7 (no routing): shell = overlay - accelerator")
    print(f"{'network':12} {'part':12} {'LUT':>7} {'LUTRAM':>7} {'FF':>7} {'BRAM36':>7} {'DSP':>4}")
    with tempfile.TemporaryDirectory(prefix="bench-overlay-") as tmp:
        for name in NETWORKS:
            cfg = overlay_tb.load_config({"config": str(config_file(name, tmp))})
            acc = synth_xc7(Dataflow(cfg), top="accel", timing=False)
            ovl = synth_xc7(OverlayShell(cfg, 64), top="overlay", timing=False)
            for part, r in (("accelerator", acc), ("overlay", ovl)):
                print(f"{cfg.name:12} {part:12} {r.lut:>7} {r.lutram:>7} {r.ff:>7} {r.bram36:>7.1f} {r.dsp:>4}")
            print(f"{cfg.name:12} {'shell':12} {ovl.lut - acc.lut:>7} {ovl.lutram - acc.lutram:>7} "
                  f"{ovl.ff - acc.ff:>7} {ovl.bram36 - acc.bram36:>7.1f} {ovl.dsp - acc.dsp:>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

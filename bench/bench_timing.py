"""Logic delay (Yosys ``sta``, cell delays only) of datapaths, and the cost of STA.

Default: XnorPopcount(SIMD) and a small MVTU (PE=4, weights in memory) at SIMD
32/64, unpipelined vs pipelined (the MVTU also at pipeline "max"): LUT, FF,
CARRY4, logic delay and the optimistic Fmax bound 1e3 / logic_ns (no routing, no clock-to-out/setup), via
``qnnfab.boards.estimate.yosys.synth_xc7`` (cached).

``--stage CONFIG LAYER``: the STA cost on one real stage. Writes the stage's
Verilog and runs the exact ``synth_xc7`` script (SCRIPT + STA_SCRIPT) once with
``yosys -t`` (time-stamped log), then prints the time of synthesis (up to
``stat``) and of the STA part (netlist copy, cell library, ``sta``), plus the
critical path. No cache is used.

    .venv/bin/python bench/bench_timing.py
    .venv/bin/python bench/bench_timing.py --stage configs/lfc_w1a1.toml fc0
"""

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def datapaths():
    import numpy as np
    from qnnfab.boards.estimate.yosys import synth_xc7
    from qnnfab.rtl.mvtu import MVTU
    from qnnfab.rtl.xnor_popcount import XnorPopcount

    def mvtu(simd, pipe):
        rng = np.random.default_rng(0)
        mw, mh, pe = 4 * simd, 16, 4
        w = rng.integers(0, 2, (mh, mw))
        t = np.sort(rng.integers(0, mw + 1, (mh, 1)), axis=1)
        return MVTU(w, t, pe=pe, simd=simd, weight_kind="bipolar", act_kind="bipolar", pipeline=pipe)

    rows = []
    for simd in (32, 64):
        for pipe in (0, 1, 2, 3):
            rows.append((f"XnorPopcount({simd}, {pipe})", lambda s=simd, p=pipe: XnorPopcount(s, p),
                         "xnor_popcount"))
        for pipe in (0, 1, 2, "max"):
            rows.append((f"MVTU pe4 simd{simd} pipe{pipe}", lambda s=simd, p=pipe: mvtu(s, p), "mvtu"))
    print(f"{'design':<28} {'LUT':>6} {'FF':>6} {'CARRY4':>6} {'logic ns':>8} {'Fmax bound':>10}")
    for label, make, top in rows:
        t0 = time.monotonic()
        r = synth_xc7(make(), top=top)
        ns = r.logic_ns
        fmax = f"{1e3 / ns:>6.0f} MHz" if ns else f"{'-':>10}"
        print(f"{label:<28} {r.lut:>6} {r.ff:>6} {r.carry4:>6} "
              f"{(f'{ns:.2f}' if ns is not None else '-'):>8} {fmax}   ({time.monotonic() - t0:.0f} s)",
              flush=True)


def stage_cost(config, layer):
    from amaranth.back import verilog
    from qnnfab import netconfig
    from qnnfab.boards.estimate.yosys import SCRIPT, STA_BUFG, STA_SCRIPT, _RUN_YOSYS, parse_sta, sta_path, yosys_safe_names
    from qnnfab.plan import plan_of
    from qnnfab.rtl.dataflow import stage_components

    cfg = netconfig.load(config)
    comp = next(c for _, n, c in stage_components(plan_of(cfg)) if n == layer)
    top = layer.replace("-", "_")
    t0 = time.monotonic()
    text = yosys_safe_names(verilog.convert(comp, name=top, emit_src=False))
    print(f"{config} {layer}: Verilog {len(text) / 1e6:.1f} MB in {time.monotonic() - t0:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="qnnfab-sta-") as tmp:
        (Path(tmp) / "design.v").write_text(text)
        (Path(tmp) / "sta_bufg.v").write_text(STA_BUFG)
        script = (SCRIPT + STA_SCRIPT).format(src="design.v", top=top, stat="stat.json", sta="sta.txt",
                                              bufg="sta_bufg.v")
        cmd = [sys.executable, "-c", _RUN_YOSYS, "-q", "-t", "-l", "yosys.log", "-p", script]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.monotonic() - t0
        log = (Path(tmp) / "yosys.log").read_text(errors="replace")
        sta = (Path(tmp) / "sta.txt").read_text(errors="replace") if (Path(tmp) / "sta.txt").exists() else ""
    stamps = [(float(m.group(1)), m.group(2)) for m in re.finditer(r"^\[([0-9.]+)\] (.*)$", log, re.M)]

    def first(pat):
        return next((t for t, msg in stamps if re.search(pat, msg)), None)
    # STA starts with the top-level "N. Executing RTLIL backend" (write_rtlil of the netlist)
    t_lib = first(r"^\d+\. Executing RTLIL backend")
    t_end = stamps[-1][0] if stamps else None
    print(f"yosys exit {proc.returncode}, wall {wall:.0f} s")
    if t_lib is not None and t_end is not None:
        print(f"  synthesis + stat: {t_lib:.1f} s; netlist copy + cell library + sta: {t_end - t_lib:.1f} s "
              f"({100 * (t_end - t_lib) / max(t_end, 1e-9):.1f}% of the run)")
    print(f"  logic_ps = {parse_sta(sta)}")
    if parse_sta(sta) is None:
        print("  sta output (no arrival):\n" + "\n".join("    " + x for x in sta.splitlines()[:40]))
    # the cell hops of the critical path (the net-name lines in between left out)
    print("\n".join("    " + x for x in sta_path(sta) if not x.startswith("           ")))
    if proc.returncode:
        print(proc.stderr[-2000:])


def main(argv):
    import warnings
    warnings.filterwarnings("ignore", message=".*created but never used")
    if argv[:1] == ["--stage"]:
        stage_cost(argv[1], argv[2])
    else:
        datapaths()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

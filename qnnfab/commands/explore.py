"""``qnnfab explore``: the measured Pareto front of cycles/frame against LUT and BRAM."""

import argparse
import csv
import io
import os
from pathlib import Path

from qnnfab import netconfig
from qnnfab.boards.targets import get_board
from qnnfab.boards.estimate.measured import (Budget, Composer, apply, explore, layer_candidates, layer_table,
                                             prune_candidates, settings_of)
from qnnfab.errors import ConfigError
from qnnfab.flow import steps
from qnnfab.flow.output import OutputFolder

from .common import as_option, board_args, check_clock_jobs, number
from .fold import check_pool_args, pool_of, prune_of, search_args, search_budget

COLUMNS = ("config", "cycles", "frames_per_s", "lut", "bram36", "dsp", "ff", "logic_ns", "folding")


def _folding(settings):
    """``conv0 27x16 block`` per layer: SIMD x PE and the weight memory style when not auto."""
    parts = []
    for name, s in settings.items():
        style = s.get("weight_memory", "auto")
        pipe = s.get("pipeline", 0)
        parts.append(f"{name} {s['simd']}x{s['pe']}" + ("" if style == "auto" else f" {style}")
                     + ("" if not pipe else f" pipe={pipe}"))
    return "; ".join(parts)


def table_text(rows, f_clk):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for r in rows:
        ns = "" if r["logic_ps"] is None else f"{r['logic_ps'] / 1000:.2f}"
        w.writerow([r["config"], r["cycles"], round(f_clk / r["cycles"]), r["lut"], f"{r['bram36']:g}", r["dsp"],
                    r["ff"], ns, _folding(r["settings"])])
    return buf.getvalue()


def layer_table_text(table):
    """A measured layer table (:func:`~qnnfab.boards.estimate.measured.layer_table`) as CSV."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(("simd", "pe", "weight_memory", "pipeline", "cycles", "lut", "lutram", "ff", "bram36", "dsp",
                "logic_ns"))
    for cand, cycles, r in table:
        w.writerow((cand["simd"], cand["pe"], cand.get("weight_memory", ""), cand.get("pipeline", ""), cycles, r.lut,
                    r.lutram, r.ff, f"{r.bram36:g}", r.dsp, "" if r.logic_ps is None else f"{r.logic_ns:.2f}"))
    return buf.getvalue()


def plot_front(rows, front, marks, device, path, title):
    """A PNG: cycles/frame against LUT and against BRAM36, every measured point, the front, the marks."""
    import matplotlib   # here: heavy, and only the PNG needs it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, key, cap, label in ((axes[0], "lut", device.lut, "LUT (logic + LUT-RAM)"),
                                (axes[1], "bram36", device.bram36, "BRAM36")):
        ax.scatter([r["cycles"] for r in rows], [r[key] for r in rows], s=12, color="tab:gray",
                   label="measured foldings")
        ax.plot([r["cycles"] for r in front], [r[key] for r in front], "o-", color="tab:blue", label="Pareto front")
        for name, r in marks:
            ax.scatter([r["cycles"]], [r[key]], marker="*", s=160, color="tab:red", zorder=5)
            ax.annotate(name, (r["cycles"], r[key]), textcoords="offset points", xytext=(6, 6), fontsize=8)
        ax.axhline(cap, color="tab:red", linestyle=":", linewidth=1, label=f"{device.part}")
        ax.set_xscale("log")
        ax.set_xlabel("cycles per frame (bottleneck)")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(title + "  (red stars: hand-written configs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args):
    where = "qnnfab explore"
    check_clock_jobs(args, where)
    budget = search_budget(args, where)
    if args.lut is None:
        budget = Budget(lut=1.0, bram36=budget.bram36, dsp=budget.dsp, ff=budget.ff, margin=budget.margin,
                        logic_ps=budget.logic_ps)
    check_pool_args(args, where)
    number(where, "--prune", args.prune, minimum=0, fix="a percentage, e.g. --prune 15")
    if args.meet_clock:
        raise ConfigError(where, "--meet-clock", "applies to qnnfab fold --measured only",
                          "drop it (the table lists every point's logic delay)")
    with as_option(where, "--board"):
        board = get_board(args.board)
    cfg = steps.load(args.config)
    names = [L.name for L in cfg.layers]
    for name in args.layer or []:
        if name not in names:
            raise ConfigError(where, "--layer", f"{cfg.name} has no layer {name!r}", f"one of {', '.join(names)}")
    marks = [(f"{Path(args.config).stem} (--config)", steps.load(args.config))]
    for m in args.mark or []:
        marks.append((f"{Path(m).stem} (--mark)", steps.load(m)))
    out = OutputFolder(where, "--out", args.out, staged=True, reads=[args.config, *(args.mark or [])])
    f_clk = args.clock * 1e6
    device = board.capacity
    try:
        with pool_of(args) as pool:
            rows, front = explore(cfg, device, pool, budget=budget, f_clk=f_clk, prune=prune_of(args))
            comp = Composer(pool, f_clk)
            marked = []
            for name, mcfg in marks:
                rep = comp.report(mcfg)
                t = rep.total
                marked.append((name, {"config": name, "cycles": rep.bottleneck_cycles,
                                      "lut": t.lut + t.lutram, "bram36": t.bram36, "dsp": t.dsp, "ff": t.ff,
                                      "logic_ps": t.logic_ps, "settings": settings_of(mcfg)}))
            tables = {}
            for name in args.layer or []:
                cands = prune_candidates(cfg, name, layer_candidates(cfg, name), device, budget)
                print(f"layer {name}: {len(cands)} candidate settings within the budget by the cost model; measuring")
                tables[name] = layer_table(cfg, name, cands, pool, f_clk)
            print(f"syntheses: {pool.synthesized} run, {pool.cached} cached")
    except BaseException:
        out.undo()   # the folders the checks created
        raise
    ref = cfg.weights_ref
    with out.staging() as stage:
        (stage / "configs").mkdir()
        for r in front:
            r["config"] = f"configs/{cfg.name}-{r['cycles']}-{rows.index(r) + 1}.toml"
            apply(cfg, r["settings"])
            wref = ref if ref == "random" else os.path.relpath(ref, (out.path / "configs").resolve())
            t = r["report"].total
            head = (f"# qnnfab explore: Pareto point {r['cycles']:,} cycles/frame, measured {t.lut + t.lutram:,} "
                    f"LUT, {t.bram36:g} BRAM36, {t.dsp} DSP, {t.ff:,} FF (Yosys, per stage as qnnfab report)\n")
            (stage / r["config"]).write_text(head + netconfig.dumps(cfg, wref))
        for r in rows:
            r.setdefault("config", "")
        table = table_text(front + [m for _, m in marked], f_clk)
        (stage / "pareto.csv").write_text(table)
        (stage / "measured.csv").write_text(table_text(rows, f_clk))
        for name, table in tables.items():
            (stage / f"layer-{name}.csv").write_text(layer_table_text(table))
            print(layer_table_text(table), end="")
        plot_front(rows, front, marked, device, stage / "pareto.png",
                   f"{cfg.name} on {device.part}: measured cycles/frame against resources")
    print(f"{'cycles/frame':>12} {'frames/s':>10} {'LUT':>8} {'BRAM36':>7} {'FF':>8}  config")
    for r in front + [m for _, m in marked]:
        print(f"{r['cycles']:>12,} {f_clk / r['cycles']:>10,.0f} {r['lut']:>8,} {r['bram36']:>7g} {r['ff']:>8,}  "
              f"{r['config']}")
    print(f"{len(rows)} foldings measured, {len(front)} on the Pareto front; wrote {out.path}/ (configs/, "
          "pareto.csv, measured.csv, pareto.png)")
    return 0


def add_parser(sub):
    e = sub.add_parser(
        "explore", help="measured Pareto front of cycles/frame against LUT and BRAM, one config per point",
        description="Measure every folding on the auto-folder's path (the cost model proposing and pruning, "
                    "each stage synthesized with Yosys as qnnfab report does, cached, as Dask tasks) and keep "
                    "the Pareto front of cycles per frame against LUT (logic + LUT-RAM) and BRAM36 among those "
                    "within the budget (default the whole device). Writes DIR/configs/<name>-<cycles>-<k>.toml per "
                    "point (k: its place on the path), DIR/layer-<name>.csv per --layer, DIR/pareto.csv (the front and the hand-written configs), DIR/measured.csv (every "
                    "point) and DIR/pareto.png (the config itself and every --mark config drawn as stars).",
        epilog="example:\n  qnnfab explore --config configs/lfc_small.toml --board pynq-z2 --out out/lfc_pareto\n"
               "  qnnfab explore --config configs/cnv_w1a1.toml --mark configs/cnv_w1a1_fast.toml "
               "--out out/cnv_pareto",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    board_args(e, report=False)
    search_args(e)
    e.add_argument("--layer", action="append", metavar="NAME",
                   help="also measure this layer's table: every SIMD/PE step, weight memory style and pipeline "
                        "the cost model puts within the budget, its own stage synthesized once each, the other "
                        "layers as in the config (DIR/layer-NAME.csv; repeatable)")
    e.add_argument("--mark", action="append", metavar="FILE.toml",
                   help="a hand-written config of the same network to measure and mark on the plot (repeatable)")
    e.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder for the results")
    e.set_defaults(func=run)

"""Accuracy against hardware cost: DoReFa networks over a grid of bits x widths, folded to one throughput, Yosys-measured.

For every bit width b (weights and activations both b bits: b = 1 is
BinaryNet's +-1 weights and sign activations, b >= 2 DoReFa's k-bit weights,
stored as odd (b + 1)-bit integers, and unsigned b-bit activations) and every
width factor (the hidden sizes times the factor) the bench trains the MLP on
the data set (``qnnfab.train.trainer.train``, scheme "dorefa"), exports it
(the integer network reproduces every prediction: checked), folds it for the
common throughput target with qnnfab's folding model
(``qnnfab.boards.estimate.fold.auto_fold``, as ``qnnfab fold --fps``) and
measures LUT (logic + LUT-RAM), BRAM36 and DSP of every layer with Yosys
(``qnnfab.boards.estimate.report.network_report``, as ``qnnfab report``;
cached). It prints the table, marks the Pareto front of test accuracy against
LUTs and plots it (one marker per bit width).

    .venv/bin/python bench/bench_pareto.py                               # the digits, 1/2/4/8 bits x 0.5/1/2
    .venv/bin/python bench/bench_pareto.py --bits 1,2,4 --widths 1,2,4 --hidden 64,64 --fps 200000
    .venv/bin/python bench/bench_pareto.py --data mnist/train-images-idx3-ubyte.gz --epochs 5

The folding target is in frames/s at ``--clock`` MHz; one network that cannot
reach it on the board is reported as out of reach and left out of the plot.
"""

import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from qnnfab import netconfig  # noqa: E402
from qnnfab.boards.estimate.fold import auto_fold  # noqa: E402
from qnnfab.boards.estimate.report import network_report  # noqa: E402
from qnnfab.boards.targets import get_board  # noqa: E402
from qnnfab.errors import ConfigError  # noqa: E402
from qnnfab.golden.network import network_of  # noqa: E402
from qnnfab.train import trainer as T  # noqa: E402
from qnnfab.train.datasets import load_digits, load_file  # noqa: E402
from qnnfab.train.export import export  # noqa: E402


def pareto_front(points):
    """Indices of the points (lut, acc) no other point beats: none has lut <= and acc >= with one strict."""
    front = []
    for i, (lut, acc) in enumerate(points):
        if not any((l2 <= lut and a2 >= acc) and (l2 < lut or a2 > acc) for j, (l2, a2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot(rows, front, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {1: "o", 2: "s", 4: "^", 8: "D"}
    for b in sorted({r["bits"] for r in rows}):
        pts = [r for r in rows if r["bits"] == b]
        ax.scatter([r["lut"] for r in pts], [100 * r["acc"] for r in pts], marker=markers.get(b, "x"), s=50,
                   label=f"{b}-bit weights and activations")
        for r in pts:
            ax.annotate(f"x{r['width']:g}", (r["lut"], 100 * r["acc"]), fontsize=7, xytext=(4, -3),
                        textcoords="offset points")
    f = [rows[i] for i in front]
    ax.plot([r["lut"] for r in f], [100 * r["acc"] for r in f], "k--", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("LUT (logic + LUT-RAM), Yosys synth_xilinx")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", default="1,2,4,8", help="weight = activation bits (comma-separated)")
    ap.add_argument("--widths", default="0.5,1,2", help="factors of the hidden sizes (comma-separated)")
    ap.add_argument("--hidden", default="64,64", help="hidden sizes at width 1 (fully connected)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--fps", type=float, default=200_000, help="common throughput target, frames/s (default 200,000)")
    ap.add_argument("--clock", type=float, default=100.0, help="MHz (default 100)")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs")
    ap.add_argument("--data", default=None, help="a data file instead of the digits (e.g. MNIST train-images-idx3-ubyte.gz)")
    ap.add_argument("--plot", default="docs/pareto.png")
    ap.add_argument("--out", default=None, help="export folder (default: a temporary one)")
    args = ap.parse_args()
    bits = [int(b) for b in args.bits.split(",")]
    widths = [float(w) for w in args.widths.split(",")]
    base = [int(h) for h in args.hidden.split(",")]
    ds = load_digits() if args.data is None else load_file(args.data)
    board = get_board(args.board)
    out_dir = args.out or tempfile.mkdtemp(prefix="qnnfab_pareto_")
    print(f"dataset: {ds}; MLP hidden {base} x {widths}, bits {bits}, scheme dorefa (1-bit: +-1 weights, sign "
          f"activations), {args.epochs} epochs; folded to {args.fps:,.0f} frames/s at {args.clock:g} MHz on "
          f"{board.capacity.part}; Yosys per layer (cached)", flush=True)
    rows = []
    t0 = time.perf_counter()
    for b in bits:
        for w in widths:
            hidden = tuple(max(2, round(h * w)) for h in base)
            r = T.train(ds, "dorefa", hidden=hidden, epochs=args.epochs, seed=0, act_bits=b, weight_bits=b)
            toml_path, _ = export(r, out_dir, f"{ds.name}-dorefa-w{b}a{b}-x{w:g}".replace(".", "p"))
            cfg = netconfig.load(toml_path)
            pred = network_of(cfg).forward(ds.x_test.reshape((-1,) + cfg.input_shape)).argmax(1)
            if not np.array_equal(pred, T.predict(r, ds.x_test)):
                raise SystemExit(f"export of {toml_path} disagrees with the trained network")
            try:
                auto_fold(cfg, board.capacity, target_fps=args.fps, f_clk=args.clock * 1e6)
            except ConfigError as e:
                print(f"  {b}-bit x{w:g} {hidden}: {e}", flush=True)
                continue
            rep = network_report(cfg, jobs=args.jobs, f_clk=args.clock * 1e6, progress=None, timing=False)
            t = rep.total
            rows.append(dict(bits=b, width=w, hidden=hidden, acc=r.test_acc, lut=t.lut + t.lutram, lutram=t.lutram,
                             bram=t.bram36, dsp=t.dsp, cycles=rep.bottleneck_cycles,
                             fold=[(L.simd, L.pe) for L in cfg.layers]))
            print(f"  {b}-bit x{w:g} {hidden}: test {100 * r.test_acc:.2f}%, {t.lut + t.lutram:,} LUT, "
                  f"{t.bram36:g} BRAM36, {t.dsp} DSP, {rep.bottleneck_cycles} cycles/frame "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    front = pareto_front([(r["lut"], r["acc"]) for r in rows])
    print()
    print("| bits (w = a) | width | hidden | test accuracy | LUT (of them LUT-RAM) | BRAM36 | DSP | cycles/frame "
          "| (SIMD, PE) per layer | Pareto |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        print(f"| {r['bits']} | x{r['width']:g} | {'-'.join(map(str, r['hidden']))} | {100 * r['acc']:.2f}% | "
              f"{r['lut']:,} ({r['lutram']:,}) | {r['bram']:g} | {r['dsp']} | {r['cycles']:,} | {r['fold']} | "
              f"{'yes' if i in front else ''} |")
    on = sorted({rows[i]["bits"] for i in front})
    print(f"\nPareto front: {len(front)} of {len(rows)} networks, bit widths {on}; total {time.perf_counter() - t0:.0f} s")
    if rows:
        plot(rows, front, args.plot, f"{ds.name}: DoReFa MLPs at {args.fps:,.0f} frames/s ({args.clock:g} MHz), "
                                     f"{args.epochs} epochs")
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()

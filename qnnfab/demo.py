"""``qnnfab demo``: the main job of the README.

For now (until the whole-network flow lands) it runs the end-to-end check of
the toolchain on the first verified module, the XNOR-popcount unit:

1. generate its Verilog into ``out/demo/``,
2. lint it with ``verilator --lint-only -Wall``,
3. run its cocotb regression on Verilator against ``qnnfab.golden`` for every
   configured SIMD width, with random gaps and backpressure,
4. synthesize it with Yosys ``synth_xilinx -family xc7`` and report LUTs,

and prints what it checked.
"""

import time
from pathlib import Path

from qnnfab.errors import QnnfabError


def run(out="out/demo", seed=None):
    from qnnfab.boards.yosys import synth_xc7
    from qnnfab.rtl.xnor_popcount import XnorPopcount
    from qnnfab.sim import registry
    from qnnfab.sim.build import to_verilog
    from qnnfab.sim.lint import lint

    t_all = time.monotonic()
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    reg = registry.get("xnor_popcount")
    print("qnnfab demo: end-to-end check of the toolchain on the XNOR-popcount unit")
    print(f"[1/4] Verilog -> {outdir}/")
    for p in reg.cases:
        name = f"xnor_popcount_simd{p['simd']}"
        (outdir / f"{name}.v").write_text(to_verilog(reg.design(p), name))
    print(f"      {len(reg.cases)} files written")
    print("[2/4] verilator --lint-only -Wall")
    for p in reg.cases:
        problems, benign = lint(to_verilog(reg.design(p), "xnor_popcount"), "xnor_popcount")
        if problems:
            raise QnnfabError(f"lint of xnor_popcount {p}: " +
                              "; ".join(f"{c}: {m}" for c, m in problems))
        print(f"      simd={p['simd']:<4} no problems ({len(benign)} Amaranth-idiom warnings)")
    print("[3/4] cocotb regression on Verilator against qnnfab.golden")
    for p in reg.cases:
        t0 = time.monotonic()
        r = registry.run_case("xnor_popcount", p, seed=seed)
        m = r.metrics
        how = "cached build" if r.build_cached else f"built in {r.build_seconds:.0f} s"
        print(f"      simd={p['simd']:<4} pipeline={p['pipeline']} ok: {r.tests} tests, seed {r.seed}, "
              f"latency {m.get('latency')} cycles, {m.get('words_per_cycle', 0):.2f} words/cycle "
              f"({time.monotonic() - t0:.1f} s, {how})", flush=True)
    print("[4/4] Yosys synth_xilinx -family xc7")
    for p in reg.cases:
        res = synth_xc7(XnorPopcount(p["simd"], p["pipeline"]), top="xnor_popcount")
        print(f"      simd={p['simd']:<4} {res.lut:5d} LUT ({res.lut / p['simd']:.2f}/lane) "
              f"{res.ff:5d} FF  {res.dsp} DSP", flush=True)
    print(f"qnnfab demo: all checks passed in {time.monotonic() - t_all:.0f} s")
    return 0

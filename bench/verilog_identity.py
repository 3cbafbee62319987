"""Hash every piece of Verilog qnnfab generates, to prove a refactor changed none.

For every shipped config (``configs/*.toml``) it runs ``qnnfab generate
--no-report`` for the overlay top (64- and 128-bit AXI), the self-test top and
runtime weights, and the GEMM overlay at two sizes; for every case of every
cocotb regression it converts the case's design. It prints one line
``sha256  name`` per Verilog text and, with ``--save FILE``, writes them as
JSON; with ``--compare FILE`` it exits 1 naming every text that differs.

    .venv/bin/python bench/verilog_identity.py --save before.json        # on the old tree
    .venv/bin/python bench/verilog_identity.py --compare before.json     # on the new one

Only the command line and :mod:`qnnfab.sim.registry` are used, so the script
runs unchanged on both trees. Other generated files (READMEs, Tcl, driver)
are hashed too and listed apart: a change there is reported, not an error.
"""

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sha(text):
    """sha256 of ``text`` without the source locations Amaranth's build plans write into
    ``(* src = "file:line" *)`` attributes (they move with any edit of the Python), so
    two checkouts and two revisions compare by design alone."""
    data = text if isinstance(text, bytes) else text.encode()
    return hashlib.sha256(re.sub(rb'\(\* src = "[^"]*" \*\)', b"", data)).hexdigest()


def _generate_runs(configs):
    for cfg in configs:
        yield f"{cfg.stem}/overlay64", ["--config", str(cfg)]
        yield f"{cfg.stem}/overlay128", ["--config", str(cfg), "--data-width", "128"]
        yield f"{cfg.stem}/selftest", ["--config", str(cfg), "--top", "selftest"]
        yield f"{cfg.stem}/runtime", ["--config", str(cfg), "--weights-mode", "runtime"]
    yield "gemm4x4", ["--gemm", "4x4"]
    yield "gemm8x2", ["--gemm", "8x2", "--data-width", "128"]


def generated(configs, skip):
    """``{name: sha}`` of every file the generate runs write."""
    hashes = {}
    for label, args in _generate_runs(configs):
        if any(s in label for s in skip):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            cmd = [sys.executable, "-m", "qnnfab", "generate", "--no-report", "--allow-overflow",
                   "--out", str(out)] + args
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode:
                hashes[f"{label}: exit {run.returncode}"] = _sha(run.stderr.strip().splitlines()[-1:][0]
                                                                if run.stderr.strip() else "")
                print(f"{label}: exit {run.returncode}: {run.stderr.strip()[-300:]}", file=sys.stderr)
                continue
            for path in sorted(out.rglob("*")):
                if path.is_file() and path.name not in (".qnnfab-generated", ".qnnfab-manifest.json"):
                    hashes[f"{label}/{path.relative_to(out)}"] = _sha(path.read_bytes())
        print(f"  generated {label}", file=sys.stderr)
    return hashes


def regression_cases(skip):
    """``{regression/case: sha}`` of every regression case's design Verilog."""
    from qnnfab.sim.build import to_verilog
    from qnnfab.sim.registry import case_id, regressions
    hashes = {}
    for name, reg in regressions().items():
        if any(s in name for s in skip):
            continue
        for params in reg.cases:
            hashes[f"sim/{name}/{case_id(params)}"] = _sha(to_verilog(reg.design(params), name))
        print(f"  regression {name}: {len(reg.cases)} cases", file=sys.stderr)
    return hashes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", type=Path)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--configs", nargs="*", type=Path,
                    help="configs to generate (default: configs/*.toml)")
    ap.add_argument("--skip", nargs="*", default=[], help="skip runs or regressions whose name contains one of these")
    args = ap.parse_args()
    configs = args.configs if args.configs is not None else sorted((ROOT / "configs").glob("*.toml"))
    hashes = {**regression_cases(args.skip), **generated(configs, args.skip)}
    for name, sha in hashes.items():
        print(f"{sha}  {name}")
    if args.save:
        args.save.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        changed = [n for n in sorted(set(before) | set(hashes)) if before.get(n) != hashes.get(n)]
        verilog = [n for n in changed if n.endswith(".v") or n.startswith("sim/")]
        other = [n for n in changed if n not in verilog]
        for n in other:
            print(f"changed (not Verilog): {n}")
        for n in verilog:
            print(f"CHANGED VERILOG: {n}")
        print(f"{len(hashes)} texts, {len(verilog)} Verilog texts differ, {len(other)} other files differ")
        return 1 if verilog else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

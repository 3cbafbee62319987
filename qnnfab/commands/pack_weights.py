"""``qnnfab pack-weights``: the weights image of a config (for ``weights_mode = "runtime"``)."""

import argparse

from qnnfab.flow import check_out_file, steps
from qnnfab.plan import save_image
from qnnfab.weights_image import WORD_BITS, read_header


def run(args):
    out = check_out_file("qnnfab pack-weights", "--out", args.out, ".bin")
    cfg = steps.load(args.config)
    n = save_image(cfg, out)
    _, _, thash, body = read_header(out.read_bytes()[:16])
    print(f"weights image of '{cfg.name}': {out} ({n:,} bytes: 2 header + {body:,} body words of "
          f"{WORD_BITS} bits), topology hash {thash:#010x}; load it into a weights_mode = \"runtime\" "
          f"accelerator of this topology")
    return 0


def add_parser(sub):
    w = sub.add_parser(
        "pack-weights", help="write the weights image of a config (for weights_mode = \"runtime\")",
        description="Pack the config's weights and thresholds into a weights image: two header words "
                    "(magic, layout version, topology hash, length) and every layer's memories "
                    "(layout: qnnfab/weights_image.py), for the wload port of a runtime-weights "
                    "accelerator of the same topology.",
        epilog="example:\n  qnnfab pack-weights --config configs/lfc_small.toml --out lfc_small.bin",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("--config", required=True, metavar="FILE", help="network config (TOML) with its weights")
    w.add_argument("--out", required=True, metavar="FILE", help="where to write the image (.bin)")
    w.set_defaults(func=run)

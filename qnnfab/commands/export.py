"""``qnnfab export``: a network as a QONNX model."""

import argparse

from qnnfab.flow import check_out_file, steps
from qnnfab.interop.qonnx_export import require_onnx, save_qonnx


def run(args):
    where = "qnnfab export"
    path = check_out_file(where, "--out", args.out, ".onnx")
    cfg = steps.load(args.config)
    require_onnx()
    save_qonnx(cfg, path)
    print(f"QONNX model of network '{cfg.name}': {path} (qonnx.core.onnx_exec.execute_onnx runs it; "
          "input: values, NCHW or (N, F), batch 1)")
    return 0


def add_parser(sub):
    ex = sub.add_parser(
        "export", help="a qnnfab network as a QONNX model (for FINN, qonnx, netron)",
        description="Write the network as a QONNX model in FINN's streamlined form: MatMul/Conv with integer "
                    "weights (datatype annotations), MultiThreshold activations, MaxPool; execute_onnx runs it "
                    "to the golden model's outputs. Needs qnnfab[onnx].",
        epilog="example:\n  qnnfab export --config configs/cnv_small.toml --out cnv_small.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("--config", required=True, metavar="FILE", help="network config (TOML)")
    ex.add_argument("--out", required=True, metavar="FILE.onnx", help="the QONNX model to write")
    ex.set_defaults(func=run)

"""``qnnfab import``: a QONNX model, or a BNN-PYNQ network's parameters folder -> qnnfab config,
weights and input codes."""

import argparse
import os

import numpy as np
from pathlib import Path

from qnnfab import netconfig
from qnnfab.boards.targets import get_board
from qnnfab.boards.estimate.fold import auto_fold
from qnnfab.errors import ConfigError
from qnnfab.flow import OutputFolder
from qnnfab.interop.qonnx_export import require_onnx
from qnnfab.cache import atomic_paths
from qnnfab.interop.bnn_pynq import input_codes, read_network
from qnnfab.interop.qonnx_import import import_qonnx, imported_files, write_imported

from .common import as_option, number


def read_model(where, model):
    """The ``onnx.ModelProto`` in file ``model``: one that is not ONNX (bytes protobuf cannot
    parse) or holds no graph (an empty file parses as an empty model) is a ConfigError."""
    import onnx
    from google.protobuf.message import DecodeError
    fix = "pass a QONNX model (.onnx) as Brevitas or FINN export it"
    try:
        proto = onnx.load(str(model))
    except (DecodeError, ValueError, OSError, RuntimeError) as e:
        raise ConfigError(where, "MODEL", f"{model} is not an ONNX model ({type(e).__name__}: {e})", fix) from None
    if not proto.graph.node and not proto.graph.input and not proto.graph.output:
        raise ConfigError(where, "MODEL", f"{model} holds no graph ({model.stat().st_size} bytes; not an ONNX model)",
                          fix)
    return proto


def bnn_pynq_config_h(params):
    """The ``hw/config.h`` of BNN-PYNQ params folder ``params`` in a BNN-PYNQ checkout
    (``bnn/params/<dataset>/<network>`` -> ``bnn/src/network/<network>/hw/config.h``)."""
    return params.parents[2] / "src" / "network" / params.name / "hw" / "config.h" if len(params.parents) > 2 \
        else params / "config.h"


def _check_out(where, args, name):
    if not args.force:
        existing = [f for f in imported_files(args.out, name) if os.path.lexists(f)]
        if existing:
            raise ConfigError(where, "--out", f"{existing[0]} exists (this import would replace "
                              f"{' and '.join(f.name for f in existing)})",
                              "name another --out or --name, or add --force to replace them")


def run_bnn_pynq(args, where, params):
    """Import BNN-PYNQ's network in params folder ``params`` (its folding kept)."""
    config_h = Path(args.config_h) if args.config_h else bnn_pynq_config_h(params)
    if not config_h.is_file():
        raise ConfigError(where, "--config-h", f"{config_h} does not exist", "pass the network's "
                          "bnn/src/network/<network>/hw/config.h of the BNN-PYNQ checkout")
    name = args.name or netconfig.safe_name(params.name, "imported")
    netconfig.check_name(where, "--name", name, "network")
    if args.fps is not None:
        raise ConfigError(where, "--fps", "does not apply to a BNN-PYNQ network (its folding is kept)",
                          "leave --fps out, then qnnfab fold --config NAME.toml --fps N")
    _check_out(where, args, name)
    text, arrays = read_network(params, config_h, name=name)
    host_codes = input_codes(config_h)
    out = OutputFolder(where, "--out", args.out)
    toml, npz, codes = imported_files(out.path, name)
    try:
        with atomic_paths(toml, npz, codes) as (tmp_toml, tmp_npz, tmp_codes):
            with open(tmp_npz, "wb") as f:
                np.savez(f, **arrays)
            tmp_toml.write_text(text)
            tmp_codes.write_text(host_codes.to_json() + "\n")
        cfg = netconfig.load(toml)
    except BaseException:
        out.undo()
        raise
    print(f"imported BNN-PYNQ {params} ({config_h}): {len(cfg.layers)} layers -> {toml} (+ {name}.npz)")
    for L in cfg.layers:
        print(f"  {L.name:<8} {L.type:<8} {L.in_shape} -> {L.out_shape}, act {L.act}, PE {L.pe} SIMD {L.simd}")
    shape = "x".join(str(d) for d in cfg.input_shape)
    pad = f" padded by {cfg.input_pad}" if cfg.input_pad else ""
    print(f"folding: BNN-PYNQ's, {max(c for _, c in cfg.throughput()[0]):,} cycles/frame; input: "
          f"{shape} {cfg.input_kind}{cfg.input_bits or ''}{pad}; label: {cfg.label}")
    how = ("bit 1 for a pixel >= 128, as BNN-PYNQ's MNIST host" if host_codes.kind == "bipolar" else
           "pixel p -> ap_fixed<8,1> 2p/255 - 1 as an int8 code, as BNN-PYNQ's CIFAR-10 host")
    print(f"input codes: {how} ({codes.name}); on pixel data (a data set file, a folder of images): "
          f"qnnfab verify --config {toml} --input-codes {codes} --data DATA")
    return 0


def run(args):
    where = "qnnfab import"
    model = Path(args.model)
    if model.is_dir():
        return run_bnn_pynq(args, where, model)
    if not model.is_file():
        raise ConfigError(where, "MODEL", f"{model} is not a file", "pass a QONNX model (.onnx) or a BNN-PYNQ "
                          "params folder (bnn/params/<dataset>/<network>)")
    if args.config_h:
        raise ConfigError(where, "--config-h", "applies to a BNN-PYNQ params folder only", "leave it out")
    name = args.name or netconfig.safe_name(model.stem, "imported")
    netconfig.check_name(where, "--name", name, "network")
    with as_option(where, "--board"):
        board = get_board(args.board)
    number(where, "--fps", args.fps, above=0)
    _check_out(where, args, name)
    require_onnx()
    proto = read_model(where, model)
    out = OutputFolder(where, "--out", args.out)
    try:
        imp = import_qonnx(proto, name=name)
        if imp.cfg.is_graph and args.fps is not None:
            raise ConfigError(where, "--fps", "does not apply to a graph config (fold takes chains only so far)",
                              "leave --fps out")
        fold = None if imp.cfg.is_graph else auto_fold(imp.cfg, board.capacity, target_fps=args.fps, lut_budget=0.5,
                                                       fps_name=(where, "--fps"))
    except BaseException:
        out.undo()
        raise
    toml = write_imported(imp, out.path)
    cfg = netconfig.load(toml)
    print(f"imported {model}: {len(cfg.layers)} layers -> {toml} (+ {name}.npz)")
    for L in cfg.layers:
        extra = ("" if L.type in ("maxpool", "concat") else f", act {L.act}" if L.type in netconfig.SUM_TYPES
                 else f", {L.weight_kind}{L.weight_bits or ''} weights, act {L.act}")
        reads = f" (reads {', '.join(L.inputs)})" if L.inputs else ""
        print(f"  {L.name:<8} {L.type:<8} {L.in_shape} -> {L.out_shape}{extra}, PE {L.pe} SIMD {L.simd}{reads}")
    if fold is None:
        print("folding: PE = SIMD = 1 (a graph config: its golden model and QONNX export run it; fold and the "
              "hardware commands take chains only so far)")
    else:
        print(f"folding: {fold.reason}; bottleneck {fold.bottleneck[0]}, {fold.bottleneck[1]:,} cycles/frame")
    codes = imp.input_codes
    how = ("the graph input holds them already" if codes.scale is None else
           f"the model's input quantizer: {codes.rounding.lower()}(x / {codes.scale:g}), clipped")
    print(f"input codes the hardware reads: {codes.kind} ({how}); in Python: "
          f"InputCodes.from_json(open('{out.path / (name + '.input_codes.json')}').read()).to_codes(x) "
          "(from qnnfab.interop.qonnx_import)")
    for note in imp.notes:
        print(f"note: {note}")
    return 0


def add_parser(sub):
    im = sub.add_parser(
        "import", help="a QONNX model (Brevitas export or FINN-streamlined) -> qnnfab config + weights",
        description="Read a QONNX model and write a qnnfab config (TOML), its weights (.npz) and the input "
                    "codes the hardware reads (.input_codes.json). Brevitas-style graphs (Quant/BipolarQuant on "
                    "weights and activations, MatMul/Gemm/Conv, BatchNormalization, Mul/Add scales and biases, "
                    "Relu before unsigned k-bit activations, MaxPool, Pad, Flatten/Reshape/Transpose; residual "
                    "graphs: a tensor read by several nodes, Add of two branches, GlobalAveragePool, Concat) and "
                    "streamlined graphs (integer weights + MultiThreshold) fold into integer weights and "
                    "thresholds exactly; anything else is refused naming the node. Needs qnnfab[onnx].",
        epilog="examples:\n  qnnfab import model.onnx --out out/imported\n"
               "  qnnfab import model.onnx --out out/imported --name digits --fps 100000\n"
               "  qnnfab import model.onnx --out out/imported --force   (replace an earlier import of it)\n"
               "  qnnfab sim --config out/imported/digits.toml --frames 100\n"
               "  qnnfab import BNN-PYNQ/bnn/params/mnist/lfcW1A1 --out out/bnn   (BNN-PYNQ's LFC)\n"
               "  qnnfab import BNN-PYNQ/bnn/params/cifar10/cnvW1A1 --out out/bnn  (BNN-PYNQ's CNV)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    im.add_argument("model", metavar="MODEL.onnx", help="the QONNX model, or a BNN-PYNQ network's params folder "
                    "(bnn/params/mnist/lfcW1A1 of a BNN-PYNQ checkout: LFC W1A1 and W1A2, CNV W1A1, W1A2 and W2A2; their "
                    "folding kept)")
    im.add_argument("--config-h", default=None, metavar="FILE",
                    help="a BNN-PYNQ network's hw/config.h (default: found in the checkout next to the params)")
    im.add_argument("--out", required=True, metavar="DIR", help="folder for the config, weights and input codes")
    im.add_argument("--name", default=None, help="network name (default: the model file's name)")
    im.add_argument("--force", action="store_true",
                    help="replace NAME.toml, NAME.npz and NAME.input_codes.json in --out when they exist "
                         "(nothing else there is touched)")
    im.add_argument("--board", default="pynq-z2", help="board whose budget bounds the default folding (default pynq-z2)")
    im.add_argument("--fps", type=float, default=None,
                    help="fold for this frame rate at 100 MHz (default: the fastest within half the board's LUTs)")
    im.set_defaults(func=run)

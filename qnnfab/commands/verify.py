"""``qnnfab verify``: a data set through the hardware (compiled engine) against the golden model."""

import argparse
from pathlib import Path

from qnnfab.cache import check_cache_dir
from qnnfab.errors import ConfigError
from qnnfab.flow import Run, check_out_file, flows, steps
from qnnfab.interop.qonnx_import import InputCodes
from qnnfab.sim.datafile import load_frames

from .common import check_seed


def simulate(cfg, frames, labels, seed, command="qnnfab verify", out=None):
    """``frames`` through the compiled engine, the summary printed (its lines named by ``command``):
    exit 1 on any difference from golden. ``out``: a checked ``.npz`` path for the per-frame arrays
    (:func:`qnnfab.flow.steps.write_verify_arrays`)."""
    return flows.run(flows.verify, Run(cfg=cfg, frames=frames, labels=labels, seed=seed, command=command,
                                       out=out)).exit_code


def check_out(where, path, force):
    """The ``--out`` file, checked before any long work: a writable ``.npz`` path, new unless ``force``."""
    if path is None:
        if force:
            raise ConfigError(where, "--force", "replaces the --out file, but no --out is given",
                              "add --out FILE.npz, or leave --force out")
        return None
    out = check_out_file(where, "--out", path, ".npz")
    if out.exists() and not force:
        raise ConfigError(where, "--out", f"{path} exists", "add --force to replace it, or name another file")
    return out


def read_input_codes(where, path):
    """The :class:`InputCodes` in the ``--input-codes`` JSON file ``path`` (None for no file)."""
    if path is None:
        return None
    fix = "pass the NAME.input_codes.json that qnnfab import wrote beside the config"
    try:
        return InputCodes.from_json(Path(path).read_text())
    except OSError as e:
        raise ConfigError(where, "--input-codes", f"{path} cannot be read ({e.strerror})", fix) from None
    except (ValueError, TypeError) as e:
        raise ConfigError(where, "--input-codes", f"{path} is not an input codes file ({e})", fix) from None


def run(args):
    where = "qnnfab verify"
    out = check_out(where, args.out, args.force)
    check_cache_dir(where)
    if args.limit is not None and args.limit < 1:
        raise ConfigError(where, "--limit", f"must be >= 1, got {args.limit}", "e.g. --limit 100, or leave it out")
    check_seed(where, args.seed, 1)
    codes = read_input_codes(where, args.input_codes)
    cfg = steps.load(args.config)
    frames, labels = load_frames(args.data, cfg, field="--data", codes=codes)
    if codes is not None:
        print(f"input codes: {args.input_codes} applied to the pixels of {args.data}")
    if args.limit is not None:
        frames = frames[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    return simulate(cfg, frames, labels, args.seed, out=out)


def add_parser(sub):
    v = sub.add_parser(
        "verify", help="run a whole data set through the hardware (compiled engine) against the golden model",
        description="Stream every frame of a data set through the network's accelerator on the compiled "
                    "Verilator engine (a fifth of them also under random gaps and backpressure), compare "
                    "every output word and label with the golden model and print accuracy, agreement and cycles/frame. "
                    "Labels follow the config's label rule ([network] label). With --out, also write the "
                    "per-frame scores and labels of hardware and golden model to an .npz. "
                    "Exit 1 when any word differs.",
        epilog="examples:\n  qnnfab verify --config out/demo/train/digits-ste.toml --data out/demo/test_images.npz\n"
               "  qnnfab verify --config mnist.toml --data mnist/t10k-images-idx3-ubyte.gz\n"
               "  qnnfab verify --config out/bnn/cnvW1A1.toml --input-codes out/bnn/cnvW1A1.input_codes.json "
               "--data cifar10/test_batch.bin\n"
               "data: an .npz with x (or x_test): frames of stored input values, shape (B,) + the network's "
               "input_shape exactly (images NHWC, channels last), integers in the input kind's range, and optionally "
               "y (or y_test): integer class indices, one per frame;\n"
               "or a standard data set file, its raw uint8 pixels taken as the input codes (flattened NHWC for a 1-D "
               "input): an MNIST idx images file (...-images-idx3-ubyte[.gz], labels read from the "
               "...-labels-idx1-ubyte[.gz] beside it), a CIFAR-10 binary batch (data_batch_N.bin, test_batch.bin) "
               "or Python batch (data_batch_N, test_batch), or a folder of PNG/JPEG images (one subfolder per class, "
               "classes in sorted name order, or the images with a labels.txt of '<file> <class>' lines; the "
               "size must be the network's: images are never resized). With --input-codes the pixels become "
               "the network's input codes as that file says; without, a bipolar network needs an .npz of bits\n"
               "--out FILE.npz holds scores and labels (hardware: the unstalled run's output words and label "
               "port), golden_scores and golden_labels, y (the data's labels, when it has them) and label_rule",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("--config", required=True, metavar="FILE", help="network config (TOML)")
    v.add_argument("--data", required=True, metavar="FILE",
                   help="frames and labels: an .npz (x / x_test, y / y_test), an MNIST idx images file, a "
                        "CIFAR-10 batch or a folder of images (see below)")
    v.add_argument("--input-codes", default=None, metavar="FILE.json",
                   help="turn the raw 8-bit pixels of a data set file or image folder into the network's input "
                        "codes as this file says (NAME.input_codes.json, written by qnnfab import: BNN-PYNQ's "
                        "preprocessing for its networks); not applied to an .npz, which holds codes")
    v.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N frames")
    v.add_argument("--seed", type=int, default=1, help="seed of the random gaps and backpressure (default 1)")
    v.add_argument("--out", default=None, metavar="FILE.npz",
                   help="write per-frame hardware and golden scores and labels (and the data's labels) here; "
                        "checked before the simulation, written atomically")
    v.add_argument("--force", action="store_true", help="replace an existing --out file")
    v.set_defaults(func=run)

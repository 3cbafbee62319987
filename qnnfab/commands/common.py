"""What several commands share: argument checks (each runs before any long work and
before anything is written) and the option groups of several sub-parsers."""

import math
import sys
from contextlib import contextmanager

from qnnfab import netconfig
from qnnfab.boards.targets.clock import BUFG_MAX_MHZ
from qnnfab.errors import ConfigError
from qnnfab.train.fixed_point import LR_FRAC, parse_fixed_point
from qnnfab.train.trainer import SCHEMES, WEIGHT_BITS, parse_hidden

__all__ = ["number", "as_option", "check_clock_jobs", "check_seed", "board_args", "arch_args",
           "check_train_args", "warn"]


def number(where, option, value, *, minimum=None, above=None, integer=False, fix=None):
    """Raise ConfigError unless ``value`` is a finite number (> ``above`` / >= ``minimum``)."""
    if value is None:
        return value
    ok = math.isfinite(value) and (above is None or value > above) and (minimum is None or value >= minimum)
    if not ok:
        rule = f"> {above:g}" if above is not None else f">= {minimum:g}" if minimum is not None else "finite"
        raise ConfigError(where, option, f"must be a {'whole' if integer else 'finite'} number {rule}, "
                          f"got {value!r}", fix or f"pass {option} <number {rule}>")
    return value


@contextmanager
def as_option(where, option):
    """Re-raise a ConfigError of the call inside as one about ``option`` of command ``where``:
    for a call whose every error is about the argument that option gave (a board name, a clock)."""
    try:
        yield
    except ConfigError as e:
        raise ConfigError(where, option, e.problem, e.fix) from None


def check_seed(where, seed, example):
    if seed is not None and not 0 <= seed < 2**31:
        raise ConfigError(where, "--seed", f"must be in [0, 2^31), got {seed}", f"e.g. --seed {example}")


def check_clock_jobs(args, where):
    number(where, "--clock", args.clock, above=0, fix="pass the clock in MHz, e.g. --clock 100")
    if args.clock > BUFG_MAX_MHZ:
        raise ConfigError(where, "--clock", f"{args.clock:g} MHz is above the {BUFG_MAX_MHZ:g} MHz a global clock "
                          "(BUFG) of the -1 speed grade carries", "pass the clock in MHz, e.g. --clock 100 "
                          "(qnnfab report prints the design's Fmax bound)")
    if getattr(args, "jobs", None) is not None and args.jobs < 1:
        raise ConfigError(where, "--jobs", f"must be >= 1, got {args.jobs}", "e.g. --jobs 2")


def board_args(sp, report=True, config_required=True):
    """--config, --board, --clock (and --jobs, --weights-mode of the commands that run Yosys)."""
    sp.add_argument("--config", required=config_required, metavar="FILE", help="network config (TOML)")
    sp.add_argument("--board", default="pynq-z2", help="target board (default pynq-z2; see `qnnfab boards`)")
    sp.add_argument("--clock", type=float, default=100.0, metavar="MHZ",
                    help="clock in MHz (> 0) of the frames/s figures (default 100, as BNN-PYNQ's figures; "
                         "the board's oscillator is 125 MHz, see the README)")
    if report:
        sp.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs (>= 1, default 2)")
        sp.add_argument("--weights-mode", choices=("const", "runtime"), default=None,
                        help="const: weights are constants of the hardware; runtime: RAMs loaded "
                             "with a weights image through the wload port (default: the config's "
                             "weights_mode, else const)")


def arch_args(p):
    """--hidden and --act-bits: the trained network's architecture (train and demo)."""
    p.add_argument("--hidden", default="256,256",
                   help="hidden layers, comma-separated: n = fully connected, c<n> / c<n>k<k> = 3x3 / kxk "
                        "convolution with n channels, p<k> = k x k max pool (default 256,256; "
                        "e.g. c64,p2,256)")
    p.add_argument("--act-bits", type=int, default=1,
                   help="hidden activation bits of the binarized networks, 1..16 as a config's act: 1 = bipolar "
                        "(sign), k >= 2 = unsigned k-bit, act = \"uint<k>\" (default 1; the float baseline uses relu)")


DEFAULT_SCHEMES = "float,ste,stochastic,progressive"   # qnnfab train without --schemes


def check_train_args(args, where="qnnfab train"):
    """Every training argument, before the first epoch: the schemes, the numbers, the
    architecture (and its size once exported); returns (schemes, hidden)."""
    fixed = getattr(args, "fixed_point", None)
    if getattr(args, "rounding", None) is not None and fixed is None:
        raise ConfigError(where, "--rounding", "applies to --fixed-point training only",
                          "add --fixed-point WL,FL (e.g. 16,14), or drop --rounding")
    if fixed is not None:
        parse_fixed_point(fixed, where, "--fixed-point")
        lr = getattr(args, "lr", None)
        if lr is not None and math.isfinite(lr) and 0 < lr and round(lr * (1 << LR_FRAC)) < 1:
            raise ConfigError(where, "--lr", f"{lr:g} rounds to 0 in the {LR_FRAC}-bit fixed-point learning rate",
                              f"use --lr >= 2^-{LR_FRAC} (e.g. 0.01)")
        if getattr(args, "schemes", None) is not None:
            raise ConfigError(where, "--schemes", "does not apply to --fixed-point training (it trains the "
                              "float architecture in fixed point)", "drop --schemes, or drop --fixed-point")
    if getattr(args, "schemes", "") is None:
        args.schemes = DEFAULT_SCHEMES
    schemes = [s.strip() for s in args.schemes.split(",")] if hasattr(args, "schemes") else []
    if hasattr(args, "schemes"):
        bad = [s for s in schemes if s not in SCHEMES]
        if not args.schemes.strip() or bad:
            raise ConfigError(where, "--schemes", f"unknown scheme {bad[0]!r}" if bad and bad[0] else
                              f"{args.schemes!r} names no scheme", f"comma-separated, among {', '.join(SCHEMES)}")
        dup = sorted({s for s in schemes if schemes.count(s) > 1})
        if dup:
            raise ConfigError(where, "--schemes", f"{dup[0]!r} is named twice", "name each scheme once")
    for opt, v in (("--epochs", args.epochs), ("--batch", getattr(args, "batch", 1))):
        if v < 1:
            raise ConfigError(where, opt, f"must be >= 1, got {v}", f"e.g. {opt} 30" if opt == "--epochs" else
                              f"e.g. {opt} 32")
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed < 2**31:
        raise ConfigError(where, "--seed", f"must be in [0, 2^31), got {seed}", "e.g. --seed 0")
    number(where, "--lr", getattr(args, "lr", None), above=0, fix="e.g. --lr 0.1")
    top = netconfig.LIMITS["data_bits"]
    if not 1 <= args.act_bits <= top:
        raise ConfigError(where, "--act-bits", f"must be 1..{top} (as act = \"uint<n>\" in a config), "
                          f"got {args.act_bits}", "e.g. --act-bits 2")
    if getattr(args, "pixel_bits", None) is not None:
        if getattr(args, "data", None) is None:
            raise ConfigError(where, "--pixel-bits", "applies to --data only (the shipped digits have 5-bit "
                              "pixels)", "add --data FILE.npz, or drop --pixel-bits")
        if not 1 <= args.pixel_bits <= top:
            raise ConfigError(where, "--pixel-bits", f"must be 1..{top}, got {args.pixel_bits}", "e.g. --pixel-bits 8")
    weight_bits = getattr(args, "weight_bits", None)
    if weight_bits is not None:
        if fixed is not None or not any(s in WEIGHT_BITS for s in schemes):
            raise ConfigError(where, "--weight-bits", f"applies to the schemes {', '.join(WEIGHT_BITS)} only",
                              "add one of them to --schemes, or drop --weight-bits")
        for s in schemes:
            if s in WEIGHT_BITS and not WEIGHT_BITS[s][1] <= weight_bits <= WEIGHT_BITS[s][2]:
                raise ConfigError(where, "--weight-bits", f"must be {WEIGHT_BITS[s][1]}..{WEIGHT_BITS[s][2]} for "
                                  f"{s}, got {weight_bits}", f"e.g. --weight-bits {WEIGHT_BITS[s][0]} (train {s} in a run of its own)")
    with as_option(where, "--hidden"):
        entries = parse_hidden(args.hidden)
    if fixed is not None:
        return [], tuple(t for t, _ in entries)
    for text, spec in entries:
        if spec[0] != "pool":
            n = spec[1] * ((1 << args.act_bits) - 1)
            if n > netconfig.LIMITS["thresholds_per_layer"]:
                raise ConfigError(where, "--hidden", f"{text} with {args.act_bits}-bit activations needs {n:,} "
                                  f"thresholds, above the limit of {netconfig.LIMITS['thresholds_per_layer']:,}",
                                  "use fewer units or fewer --act-bits")
    return schemes, tuple(t for t, _ in entries)


def warn(text):
    print(f"qnnfab: warning: {text}", file=sys.stderr, flush=True)

"""Export of a trained binarized network: integer weights, thresholds and a network config.

Export: ``<name>.npz`` with ``<layer>/weights`` (bits, 1 = +1; "ternary":
the values -1/0/+1; fc (MH, MW), conv OIHW) and ``<layer>/thresholds``
((MH, 1) for bipolar, (MH, 2^k - 1) sorted ascending for "uint<k>"
activations; int64; first layer and layers reading k-bit levels in the
dot-product domain with acc_range +-n (2^bits - 1), layers reading bipolar
activations in the popcount domain (ternary weights: the dot-product
domain, acc_range +-n); rows with gamma < 0 have their weight bits inverted
(ternary: their weights negated) (acc <= T <=> -acc >= -T in the dot
domain, P' = n - P in the popcount domain,
:func:`qnnfab.golden.fold_flips_into_weights`) and their thresholds
transformed and re-sorted; gamma == 0 rows are constants (all thresholds at
the accumulator's minimum or above its maximum)), plus ``<name>.toml`` in the
:mod:`qnnfab.netconfig` format: layers "conv<i>" (type "conv", kernel k),
"pool<i>" (type "maxpool", kernel k, stride k) and "fc<i>" (``i`` the layer's
index), input_shape [H, W, C] when the network starts with a convolution
else [F], input_kind "uint", input_bits = pixel_bits, hidden act "bipolar"
or "uint<k>", last layer act "acc", weight_kind "bipolar" ("ternary" for
the ternary scheme and ternary SYQ, "int" with weight_bits for DoReFa at 2+
bits and TTQ: :attr:`TrainResult.weight_kind`). The scaled schemes'
per-channel scales (:meth:`TrainResult.row_scale`) fold into each channel's
thresholds, a negative scale negating the row (:func:`bn_fold_layer`). Default folding
(:func:`default_folding`): MLPs as before ((8, 16) first layer, (32, 16)
hidden, (32, 10) last, largest divisors); conv nets: conv simd = largest
divisor of the input channels <= 8, pe = largest divisor of the output
channels <= 8, and every fc layer after them the smallest simd * pe (simd
dividing the channels of the flattened map) that keeps it within the
slowest convolution's cycles per frame, so the fc layers cost few LUTs (a
digits conv net stays a few thousand LUTs and builds on Verilator in under
a minute).

The files are written through :mod:`qnnfab.netconfig` (:func:`~qnnfab.netconfig.dumps`,
:func:`~qnnfab.netconfig.save_weights`); folding and cycles come from :mod:`qnnfab.folding`.
"""

import math
from pathlib import Path

import numpy as np

from qnnfab import netconfig
from qnnfab.errors import ConfigError
from qnnfab.folding import conv_cycles, divisors, fc_cycles, largest_divisor
from qnnfab.golden.threshold import bn_to_thresholds, fold_flips_into_weights
from qnnfab.kinds import DataKind, accumulator_range

from .codebooks import level_offsets
from .trainer import CONV_FOLD, TrainResult

__all__ = ["export", "integer_layers", "default_folding", "bn_fold_layer"]


def bn_fold_layer(wbits, gamma, beta, mean, var, eps, in_kind, in_bits=None, scale=1.0, out_bits=1,
                  w_kind="bipolar", offsets=None, w_bits=None):
    """Fold one binarized layer's BN + activation into (weight bits, (MH, N) int64 thresholds) for acc >= T.

    ``wbits`` (MH, MW) weight bits (1 = +1; conv: the (ky, kx, c) matrix);
    ``w_kind`` "ternary" / "int" (``w_bits`` wide): ``wbits`` are the values
    instead, the accumulator is always the integer dot product (also for
    "bipolar" inputs: d = sum w x, x = +-1, acc_range +-MW * max|w|) and
    flipped rows are negated.
    ``scale``: a number or one per row (MH,) (per-channel weight scales);
    a row with a negative scale is the row with positive scale and negated
    gamma and mean (exactly: IEEE products and differences are symmetric
    in sign), so its weights come out negated; a row with scale 0 is the
    constant ``gamma (0 - mean) / sigma + beta_j >= 0``.
    ``offsets``: the stage offsets c_j of a level activation (default
    (j - 0.5) / m, :func:`qnnfab.train.codebooks.level_offsets`).
    ``in_kind`` "uint": the accumulator is the integer dot product d of
    ``in_bits``-bit unsigned inputs and the BN input is ``scale * d``;
    "bipolar": the accumulator is the XNOR popcount P (d = 2P - MW).
    ``out_bits`` 1: sign, N = 1; k >= 2: N = m = 2^k - 1 thresholds, stage j
    folds ``gamma * (x - mean) / sigma + (beta - (j - 0.5) / m) >= 0``; each
    row sorted ascending (output = number of thresholds acc >= to). Rows with
    gamma < 0 get inverted weight bits (all stages flip together).
    """
    if w_kind not in ("bipolar", "ternary", "int"):
        raise ConfigError("bn_fold_layer", "w_kind", f"must be 'bipolar', 'ternary' or 'int', got {w_kind!r}")
    if in_kind not in ("uint", "bipolar"):
        raise ConfigError("bn_fold_layer", "in_kind", f"must be 'uint' or 'bipolar', got {in_kind!r}")
    mh, mw = wbits.shape
    acc_range = accumulator_range(mw, DataKind.of(w_kind, w_bits, "bn_fold_layer"),
                                  DataKind.of(in_kind, in_bits, "bn_fold_layer"))
    sigma = np.sqrt(np.asarray(var, np.float64) + eps)
    beta = np.broadcast_to(np.asarray(beta, np.float64), (mh,))
    gamma = np.broadcast_to(np.asarray(gamma, np.float64), (mh,))
    mean = np.broadcast_to(np.asarray(mean, np.float64), (mh,))
    scale = np.asarray(scale, np.float64)
    neg, zero = scale < 0, scale == 0
    const_y = gamma * (0.0 - mean) / sigma if zero.any() else None       # the BN output of a scale-0 row
    if scale.ndim:
        gamma, mean = np.where(neg, -gamma, gamma), np.where(neg, -mean, mean)
        gamma = np.where(zero, 0.0, gamma)
        scale = np.where(zero, 1.0, np.abs(scale))
    elif neg or zero:
        raise ConfigError("bn_fold_layer", "scale", f"a single scale must be > 0, got {float(scale)}",
                          "pass one scale per row to fold signs")
    m = (1 << int(out_bits)) - 1
    if offsets is None:
        offsets = [None] if out_bits == 1 else level_offsets(m)     # None: sign (bipolar output), beta itself
    cols, w_out = [], None
    for c in offsets:
        b = beta if c is None else beta - c
        if const_y is not None:
            b = np.where(zero, const_y + b, b)
        if in_kind == "bipolar" and w_kind == "bipolar":
            folded = bn_to_thresholds(gamma, b, mean, sigma, domain="popcount", n=mw, scale=scale)
        else:
            folded = bn_to_thresholds(gamma, b, mean, sigma, domain="dot", scale=scale, acc_range=acc_range)
        w_out, t = fold_flips_into_weights(wbits, folded, w_kind, w_bits)
        cols.append(np.asarray(t, np.int64).reshape(mh))
    t = np.sort(np.stack(cols, axis=1), axis=1)
    return w_out.astype(np.int64), t.astype(np.int64)


def integer_layers(result):
    """The exported integer network, one entry per layer: (weight bits (MH, MW) int64 (conv: (ky, kx, c)
    columns; ternary scheme: the values -1/0/+1), thresholds (MH, N) int64 or None for the last layer);
    None for max pools."""
    if not result.binarized:
        raise ConfigError("export", "scheme", "the float baseline has no integer form",
                          "export a quantized scheme (every scheme but float)")
    out = []
    out_bits = result.act_bits if result.kbit else 1
    offsets = result.act_offsets if result.kbit else None
    wk, wb = result.weight_kind, result.weight_width
    for i, L in enumerate(result.layers):
        if L.kind == "pool":
            out.append(None)
            continue
        codes, wscale = result.weight_code(i)
        wbits = DataKind.of(wk, wb, "export").stored(codes)
        if L.gamma is None:
            out.append((wbits, None))
            continue
        if i == 0:
            in_kind, in_bits = "uint", result.pixel_bits
        else:
            in_kind, in_bits = ("uint", result.act_bits) if result.kbit else ("bipolar", None)
        out.append(bn_fold_layer(wbits, L.gamma, L.beta, L.mean, L.var, result.eps, in_kind, in_bits,
                                 result.row_scale(i, wscale), out_bits, w_kind=wk, offsets=offsets, w_bits=wb))
    return out


def _balanced_fc_folding(L, budget, target):
    """Smallest simd * pe (simd dividing the channels of a flattened map) within the targets whose
    cycles (out / pe) * (in / simd) stay within ``budget``; the largest folding if none does."""
    n_in = math.prod(L.in_shape)
    ch = L.in_shape[2] if len(L.in_shape) == 3 else n_in
    out = L.w.shape[0]
    cands = [(s, p) for s in divisors(ch) if s <= target[0] for p in divisors(out) if p <= target[1]]
    ok = [(s * p, -s, s, p) for s, p in cands if fc_cycles(out, n_in, p, s) <= budget]
    if ok:
        _, _, s, p = min(ok)
        return s, p
    return largest_divisor(ch, target[0]), largest_divisor(out, target[1])


def default_folding(sizes, first=(8, 16), hidden=(32, 16), last=(32, 10), conv=CONV_FOLD):
    """(simd, pe) per conv/fc layer: the largest divisors of the sizes not above the targets (simd, pe).

    ``sizes``: MLP sizes (F, H1, ..., classes), or a :class:`TrainResult`.
    Conv nets: conv simd = largest divisor of the input channels <= conv[0],
    pe = largest divisor of the output channels <= conv[1]; each fc layer
    after them gets the smallest simd * pe (within the hidden / last targets,
    simd dividing the channels of a flattened feature map) that keeps it
    within the slowest convolution's cycles per frame (rate balancing: a
    faster fc only costs LUTs). Pools take no entry (they run at the
    previous layer's PE).
    """
    if isinstance(sizes, TrainResult):
        comp = [L for L in sizes.layers if L.kind != "pool"]
        if not any(L.kind == "conv" for L in comp):
            return default_folding(sizes.sizes, first, hidden, last, conv)
        fold = [(largest_divisor(L.in_shape[2], conv[0]), largest_divisor(L.w.shape[0], conv[1]))
                for L in comp if L.kind == "conv"]
        budget = max(conv_cycles(L.in_shape, L.out_shape, L.kernel, pe, simd) for L, (simd, pe) in zip(comp, fold))
        for j, L in enumerate(comp[len(fold):]):
            tgt = last if j == len(comp) - len(fold) - 1 else hidden
            fold.append(_balanced_fc_folding(L, budget, tgt))
        return fold
    fold = []
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        tgt = first if i == 0 else (last if i == n_layers - 1 else hidden)
        fold.append((largest_divisor(sizes[i], tgt[0]), largest_divisor(sizes[i + 1], tgt[1])))
    return fold


def export(result, out_dir, name=None, folding=None):
    """Write ``<name>.npz`` and ``<name>.toml`` (qnnfab.netconfig format) into ``out_dir``.

    ``folding``: optional list of (simd, pe), one per conv/fc layer (pools
    run at the previous layer's PE; default :func:`default_folding`).
    Returns (toml_path, npz_path). Conv nets take input frames (B, H, W, C).
    """
    name = name or f"{result.dataset or 'net'}-{result.scheme}"
    if not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError("export", "name", f"{name!r} is not a plain file name", "use letters, digits, - _ .")
    layers = integer_layers(result)
    n_comp = sum(e is not None for e in layers)
    folding = folding or default_folding(result)
    if len(folding) != n_comp:
        raise ConfigError("export", "folding", f"has {len(folding)} entries for {n_comp} conv/fc layers",
                          "give one (simd, pe) per conv/fc layer")
    act = f"uint{result.act_bits}" if result.kbit else "bipolar"
    specs, fold_it, prev_pe = [], iter(folding), None
    for i, (L, e) in enumerate(zip(result.layers, layers)):
        if e is None:
            specs.append(netconfig.LayerSpec(f"pool{i}", "maxpool", kernel=L.kernel, stride=L.kernel,
                                             simd=prev_pe, pe=prev_pe))   # a pool never comes first
            continue
        w, t = e
        simd, pe = next(fold_it)
        if L.kind == "conv":
            k, c = L.kernel, L.in_shape[2]
            w = w.reshape(w.shape[0], k, k, c).transpose(0, 3, 1, 2)       # (ky, kx, c) columns -> OIHW
        specs.append(netconfig.LayerSpec(f"{L.kind}{i}", L.kind, out=w.shape[0], act="acc" if t is None else act,
                                         weight_kind=result.weight_kind, weight_bits=result.weight_width,
                                         pe=pe, simd=simd,
                                         kernel=L.kernel if L.kind == "conv" else 1,
                                         weights=np.ascontiguousarray(w), thresholds=t))
        prev_pe = pe
    cfg = netconfig.NetConfig(name, tuple(result.input_shape), "uint", result.pixel_bits, specs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    npz_path, toml_path = out / f"{name}.npz", out / f"{name}.toml"
    netconfig.save_weights(npz_path, cfg)
    toml_path.write_text(f"# exported by qnnfab.train.export\n# scheme = {result.scheme}, arch = {result.arch}, "
                         f"test accuracy = {result.test_acc:.4f}\n\n" + netconfig.dumps(cfg, npz_path.name))
    return toml_path, npz_path

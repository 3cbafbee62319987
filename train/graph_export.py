"""Export of a trained residual graph (:mod:`qnnfab.train.graph_trainer`) to a graph config and weights.

Every node becomes one layer of the same name in a :mod:`qnnfab.netconfig` graph config
(``input`` written only where a layer reads other than the layer above it):

* conv: type "conv" (kernel, stride, pad, pad_value 0), OIHW weights ("bipolar" bits 1 = +1, or
  "ternary" values), act "uint<k>" with the thresholds of its BN on the integer dot product
  (:func:`qnnfab.train.export.bn_fold_layer` at the node's :meth:`~qnnfab.train.graph_trainer.GraphModel.bn_scale`;
  rows with gamma < 0 have their weights negated);
* add: type "add", ``input = [a, b]``, act "uint<k>", thresholds on the sum of the two stored
  levels (:func:`sum_thresholds`);
* global_avgpool: thresholds on each channel's sum over H x W (:func:`sum_thresholds` at scale
  ``1 / (m H W)``: the division by H * W folded into them);
* fc: act "acc", the integer dot product (the scores' argmax).

The golden model of the config (:func:`qnnfab.golden.graph_network.graph_forward`) then outputs the
trained network's integer scores exactly. Folding: conv simd = largest divisor of the input channels
<= 8, pe = largest divisor of the output channels <= 8 (:data:`qnnfab.train.trainer.CONV_FOLD`); an add
or a global pool takes its first input's pe as simd; the fc the same rule as a conv.
"""

from pathlib import Path

import numpy as np

from qnnfab import netconfig
from qnnfab.cache import atomic_paths
from qnnfab.errors import ConfigError
from qnnfab.folding import largest_divisor
from qnnfab.golden.threshold import bn_to_thresholds
from qnnfab.kinds import DataKind
from qnnfab.netconfig import NETWORK_INPUT

from .export import bn_fold_layer
from .trainer import CONV_FOLD

__all__ = ["sum_thresholds", "graph_config", "export_paths", "export_graph"]


def sum_thresholds(gamma, beta, mean, var, eps, scale, acc_range, offsets, where="sum_thresholds"):
    """(C, len(offsets)) int64 thresholds, sorted per row, on an integer sum ``d`` in ``acc_range``
    whose BN input is ``d * scale``: stage j counts iff ``gamma (d scale - mean) / sigma + (beta - c_j) >= 0``
    (sigma = sqrt(var + eps)). A sum has no weights to negate, so every gamma must be >= 0 (0: a
    constant stage, its threshold at the range's low end or above its high end)."""
    gamma = np.asarray(gamma, np.float64)
    if np.any(gamma < 0):
        bad = int(np.nonzero(gamma < 0)[0][0])
        raise ConfigError(where, "gamma", f"channel {bad} has gamma {gamma[bad]} < 0: a sum's thresholds count "
                          "upwards only (no weights to negate)", "train with gamma >= 0 (the graph trainer keeps it)")
    sigma = np.sqrt(np.asarray(var, np.float64) + eps)
    cols = [bn_to_thresholds(gamma, np.asarray(beta, np.float64) - c, mean, sigma, "dot", scale=scale,
                             acc_range=acc_range).thresholds for c in offsets]
    return np.sort(np.stack(cols, axis=1), axis=1).astype(np.int64)


def graph_config(model, name=None):
    """The :class:`qnnfab.netconfig.NetConfig` (layers with weights and thresholds) of the trained
    :class:`~qnnfab.train.graph_trainer.GraphModel` ``model``."""
    name = name or f"{model.dataset or 'net'}-resnet-{model.scheme}"
    m, act = model.levels, f"uint{model.act_bits}"
    wk = model.weight_kind
    specs, pe_of, prev = [], {}, NETWORK_INPUT
    for n in model.nodes:
        inputs = () if tuple(n.inputs) == (prev,) else tuple(n.inputs)
        where = f"export node '{n.name}'"
        if n.kind in ("conv", "fc"):
            c_in = n.in_shape[2]
            simd, pe = largest_divisor(c_in, CONV_FOLD[0]), largest_divisor(n.out, CONV_FOLD[1])
            codes = model.weight_codes(n)
            wbits = DataKind.of(wk, None, where).stored(codes)
            if n.kind == "fc":
                w, t = wbits.astype(np.int64), None
            else:
                in_bits = model.pixel_bits if n.inputs[0] == NETWORK_INPUT else model.act_bits
                w, t = bn_fold_layer(wbits, n.gamma, n.beta, n.mean, n.var, model.eps, "uint", in_bits,
                                     model.bn_scale(n), model.act_bits, w_kind=wk, offsets=model.offsets)
                w = w.reshape(n.out, n.kernel, n.kernel, c_in).transpose(0, 3, 1, 2)    # (ky, kx, c) -> OIHW
            spec = netconfig.LayerSpec(n.name, n.kind, inputs=inputs, out=n.out, act=act if t is not None else "acc",
                                       weight_kind=wk, pe=pe, simd=simd,
                                       kernel=n.kernel if n.kind == "conv" else 1,
                                       stride=n.stride if n.kind == "conv" else 1,
                                       pad=n.pad if n.kind == "conv" else 0,
                                       weights=np.ascontiguousarray(w), thresholds=t)
        else:
            h, w_, _ = n.in_shape
            hi = 2 * m if n.kind == "add" else m * h * w_
            t = sum_thresholds(n.gamma, n.beta, n.mean, n.var, model.eps, model.bn_scale(n), (0, hi),
                               model.offsets, where)
            pe = pe_of[n.inputs[0]]
            spec = netconfig.LayerSpec(n.name, n.kind, inputs=inputs, act=act, simd=pe, pe=pe, thresholds=t)
        pe_of[n.name] = spec.pe
        specs.append(spec)
        prev = n.name
    return netconfig.NetConfig(name, tuple(model.input_shape), "uint", model.pixel_bits, specs)


def export_paths(out_dir, name):
    """``(npz path, toml path)`` of an export named ``name`` into ``out_dir``; refuses a name
    that is not a plain file name, and paths that exist (an export never overwrites a file),
    so a caller can check before it trains."""
    if not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError("export", "name", f"{name!r} is not a plain file name", "use letters, digits, - _ .")
    out = Path(out_dir)
    paths = out / f"{name}.npz", out / f"{name}.toml"
    for p in paths:
        if p.exists():
            raise ConfigError("export", "out_dir", f"{p} exists", "export into a new folder or under another name")
    return paths


def export_graph(model, out_dir, name=None):
    """Write ``<name>.npz`` and ``<name>.toml`` (a graph config) into ``out_dir``, each atomically;
    returns (toml_path, npz_path). Refuses to overwrite an existing file (:func:`export_paths`)."""
    cfg = graph_config(model, name)
    npz_path, toml_path = export_paths(out_dir, cfg.name)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    acc = f"{model.test_acc:.4f}"
    with atomic_paths(npz_path, toml_path) as (tmp_npz, tmp_toml):
        netconfig.save_weights(tmp_npz, cfg)
        tmp_toml.write_text(f"# exported by qnnfab.train.graph_export\n# scheme = {model.scheme}, act_bits = "
                            f"{model.act_bits}, test accuracy = {acc}\n\n" + netconfig.dumps(cfg, npz_path.name))
    return toml_path, npz_path

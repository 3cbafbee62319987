"""Bit-exact forward pass of a graph-shaped network config (residual blocks, global pooling).

A :class:`qnnfab.netconfig.NetConfig` is a graph when a layer names the layers it
reads (``input``) or is an "add" or "global_avgpool" layer
(:attr:`~qnnfab.netconfig.NetConfig.is_graph`). Layers run in file order (a
layer reads only layers above it); each keeps its stored output under its
name, the network's input under ``"input"``:

* fc, conv, maxpool: as :func:`qnnfab.golden.network.network_of` runs them (one
  layer and its activation);
* add: :func:`~qnnfab.golden.graph.elementwise_add` of its two inputs' stored
  integers, then :func:`~qnnfab.golden.threshold.multithreshold`;
* global_avgpool: :func:`~qnnfab.golden.graph.global_sum_pool`, then
  multithreshold on the sums; output (B, 1, 1, C);
* concat: :func:`~qnnfab.golden.graph.concat_channels` of its two inputs.

A chain config runs to what ``network_of(cfg).forward`` gives.
"""

from types import SimpleNamespace

import numpy as np

from qnnfab.netconfig import NETWORK_INPUT
from qnnfab.packing import pad_frames

from ._util import ConfigError
from .graph import concat_channels, elementwise_add, global_sum_pool
from .network import network_of
from .threshold import multithreshold

__all__ = ["graph_forward"]


def _layer_network(cfg, L):
    """The golden :class:`~qnnfab.golden.network.Network` of fc/conv/maxpool layer ``L`` alone."""
    one = SimpleNamespace(layers=[L], input_shape=L.in_shape, input_kind=L.in_kind,
                          input_bits=None if L.in_kind == "bipolar" else L.in_bits, name=f"{cfg.name}/{L.name}",
                          input_pad=0)
    return network_of(one)


def graph_forward(cfg, frames, return_all=False):
    """Stored input frames (B,) + ``cfg.input_shape`` -> the last layer's stored outputs (B,) +
    its ``out_shape`` (bipolar as bits, the rest as int64); with ``return_all`` also a dict of
    every layer's outputs by name."""
    x = np.asarray(frames)
    if x.shape[1:] != tuple(cfg.input_shape):
        raise ConfigError(f"network '{cfg.name}'", "frames", f"have shape {x.shape[1:]} per frame, the network "
                          f"takes {tuple(cfg.input_shape)}", "pass frames of the config's input_shape")
    outputs = {NETWORK_INPUT: pad_frames(x, cfg.input_pad) if cfg.input_pad else x}
    prev = NETWORK_INPUT
    for L in cfg.layers:
        sources = [outputs[name] for name in (L.inputs or (prev,))]
        if L.type == "add":
            y = multithreshold(elementwise_add(*sources), L.thresholds)
        elif L.type == "concat":
            y = concat_channels(*sources)
        elif L.type == "global_avgpool":
            y = multithreshold(global_sum_pool(sources[0]), L.thresholds)[:, None, None, :]
        else:
            y = _layer_network(cfg, L).forward(sources[0])
        outputs[L.name] = y
        prev = L.name
    return (outputs[prev], outputs) if return_all else outputs[prev]

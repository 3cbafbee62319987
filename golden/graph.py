"""Golden models of the operations of graph-shaped networks (residual blocks, global pooling).

NumPy only. Feature maps are channel last, (..., H, W, C); every function
takes and returns stored integers (int64), never reshapes an input to fit.

* :func:`elementwise_add`: the sum of two equally shaped integer tensors (the
  join of a residual block; the requantization after it is
  :func:`qnnfab.golden.threshold.multithreshold` on the sum);
* :func:`global_sum_pool`: the sum over the H x W positions of every channel
  (global average pooling = this sum followed by thresholds that fold the
  division by H*W: ``avg >= t`` iff ``sum >= t * H * W``);
* :func:`concat_channels`: the channel concatenation of equally sized maps.
"""

import numpy as np

from ._util import ConfigError, as_int_array

__all__ = ["elementwise_add", "global_sum_pool", "concat_channels"]


def elementwise_add(a, b):
    """``a + b`` of two integer arrays of one shape, as int64 (no broadcasting)."""
    x = as_int_array(a, "elementwise_add", "a").astype(np.int64)
    y = as_int_array(b, "elementwise_add", "b").astype(np.int64)
    if x.shape != y.shape:
        raise ConfigError("elementwise_add", "b", f"has shape {y.shape}, a has {x.shape}",
                          "add two branches that end in the same shape (a 1x1 convolution on the shortcut)")
    return x + y


def global_sum_pool(x):
    """(..., H, W, C) integers -> (..., C) int64: the sum over every H x W position."""
    a = as_int_array(x, "global_sum_pool", "x")
    if a.ndim < 3:
        raise ConfigError("global_sum_pool", "x", f"must be (..., H, W, C), got shape {a.shape}",
                          "pass feature maps channel last")
    return a.astype(np.int64).sum(axis=(-3, -2))


def concat_channels(*maps):
    """(..., H, W, C_k) integer maps with equal leading shapes -> (..., H, W, sum C_k) int64,
    the channels of the first map first."""
    arrs = [as_int_array(m, "concat_channels", f"maps[{k}]").astype(np.int64) for k, m in enumerate(maps)]
    if len(arrs) < 2:
        raise ConfigError("concat_channels", "maps", f"needs at least two maps, got {len(arrs)}",
                          "pass the maps to concatenate")
    for k, a in enumerate(arrs[1:], 1):
        if a.ndim != arrs[0].ndim or a.shape[:-1] != arrs[0].shape[:-1]:
            raise ConfigError("concat_channels", f"maps[{k}]", f"has shape {a.shape}, maps[0] has {arrs[0].shape}",
                              "concatenate maps of the same height and width")
    return np.concatenate(arrs, axis=-1)

"""Random networks and inputs for the golden tests (a helper module, not a test file)."""

import numpy as np
from hypothesis import strategies as st

from qnnfab.golden import FC, Conv, MaxPool, Threshold
from qnnfab.kinds import DataKind


def random_input(net, b, rng):
    lo, hi = DataKind.of(net.input_kind, net.input_bits).stored_range
    return rng.integers(lo, hi + 1, (b,) + net.input_shape)


@st.composite
def random_net(draw):
    """Random conv/pool/threshold/FC stack; returns (layers, input_shape, input_kind, input_bits)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    in_kind, in_bits = draw(st.sampled_from([("bipolar", None), ("uint", 2), ("int", 8)]))
    kind, bits = in_kind, in_bits
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    c = draw(st.sampled_from([1, 3, 64, 70, 100]))
    in_shape = shape = (h, w, c)
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, 3))
        pad = draw(st.integers(0, 1))
        if shape[0] + 2 * pad < k or shape[1] + 2 * pad < k:
            k = 1
        stride = draw(st.integers(1, 3))  # stride > kernel included
        oc = draw(st.sampled_from([1, 5, 65, 100]))
        wk, wb = draw(st.sampled_from([("bipolar", None), ("bipolar", None), ("ternary", None), ("int", 3)]))
        lo, hi = DataKind.of(wk, wb).stored_range
        n = k * k * shape[2]
        wts = rng.integers(lo, hi + 1, (oc, n))
        pv = int(draw(st.sampled_from([0, 1]))) if kind == "bipolar" else int(draw(st.sampled_from([0, 1])))
        layers.append(Conv(wts, k, stride, pad, pv, wk, wb))
        shape = ((shape[0] + 2 * pad - k) // stride + 1, (shape[1] + 2 * pad - k) // stride + 1, oc)
        nt = draw(st.sampled_from([1, 3]))
        spread = max(1, int(np.sqrt(n)) * (1 if kind == "bipolar" else 2))
        t = np.sort(rng.integers(-spread, spread + 1, (oc, nt)), axis=1)
        if wk == "bipolar" and kind == "bipolar":
            t = t + n // 2  # popcount domain
        layers.append(Threshold(t, "bipolar" if nt == 1 else "uint"))
        kind, bits = ("bipolar", None) if nt == 1 else ("uint", 2)
        if draw(st.booleans()) and min(shape[:2]) >= 2:
            stride = draw(st.sampled_from([None, 1, 3]))
            layers.append(MaxPool(2, stride))
            s = 2 if stride is None else stride
            shape = ((shape[0] - 2) // s + 1, (shape[1] - 2) // s + 1, shape[2])
    n = shape[0] * shape[1] * shape[2]
    wk, wb = draw(st.sampled_from([("bipolar", None), ("ternary", None)]))
    lo, hi = DataKind.of(wk, wb).stored_range
    layers.append(FC(rng.integers(lo, hi + 1, (draw(st.integers(1, 70)), n)), wk, wb))
    return layers, in_shape, in_kind, in_bits

"""Products of a real fixed-point training run on the Verilator-built systolic array.

A short fixed-point training run (qnnfab.train.fixed_point: both layers, two
epochs, forward, back-propagation and weight-gradient products and the
evaluation passes) records every product it sends to the golden array model;
the cocotb ``systolic`` bench (its ``products_from_file`` test) streams all of
them, in order, from reset through the RTL array built with the same
geometry, formats, LFSR width and seed: every output word must equal the
golden value the training used. One small array per rounding (2 x 3, so that
column tiles are zero-padded at the edge). A short run of a small conv net
follows on the same array without a reset (its lanes continue where the MLP
run stopped): its convolution products -- forward over im2col windows,
weight gradient, input gradient of the second convolution -- are streamed
after the MLP's in the same simulation (every K within the array's k_max of
64, so the build is the MLP test's).
"""

import numpy as np
import pytest

from qnnfab.sim import registry
from qnnfab.sim.benches import systolic_tb
from qnnfab.train import fixed_point as FP
from qnnfab.train.datasets import load_digits

WL, FL = 16, 14
ROWS, COLS = 2, 3   # R divides every M of the run (batch 16, 8 and 10 units, 32 / 16 evaluation rows)


@pytest.mark.cocotb
@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_training_products_bit_exact_on_verilator(rounding, tmp_path):
    ds = load_digits().subset(32, 16)
    probe = systolic_tb.design({"R": ROWS, "C": COLS, "a": [WL - FL, FL], "b": [WL - FL, FL], "c": [WL - FL, FL],
                                "mode": rounding, "K": ds.features})
    spec = FP.ArraySpec(rows=ROWS, cols=COLS, lfsr_width=probe.lfsr_width or 24, lfsr_seed=probe.seed)
    rec = []
    r = FP.train_fixed_point(ds, hidden=(8,), epochs=2, batch=16, lr=0.1, seed=5, fixed_point=(WL, FL),
                             rounding=rounding, array=spec, record=rec)
    shapes = {(p["a"].shape, p["b"].shape) for p in rec}
    # both layers' forward, both weight gradients, the back-propagated product, evaluation passes
    assert {((16, 64), (64, 8)), ((16, 8), (8, 10)), ((10, 16), (16, 8)), ((8, 16), (16, 64)),
            ((16, 10), (10, 8)), ((32, 64), (64, 8))} <= shapes
    assert len(rec) == 2 * (2 * 5 + 4) and r.array_words == sum(
        p["a"].shape[0] * -(-p["b"].shape[1] // COLS) for p in rec)
    # the conv net c2k5,c2 -> 10 on 4 + 2 images, batch 2: K = 25 (conv 1), 18 (conv 2, its input gradient),
    # 2 x 16 positions (conv 1 weight gradient); every M even
    conv_ds = ds.subset(4, 2)
    conv_spec = FP.ArraySpec(rows=ROWS, cols=COLS, lfsr_width=spec.lfsr_width, lfsr_seed=spec.lfsr_seed,
                             start_word=r.array_words)
    n_mlp = len(rec)
    c = FP.train_fixed_point(conv_ds, hidden=("c2k5", "c2"), epochs=1, batch=2, lr=0.1, seed=5,
                             fixed_point=(WL, FL), rounding=rounding, array=conv_spec, record=rec)
    conv_shapes = {(p["a"].shape, p["b"].shape) for p in rec[n_mlp:]}
    assert {((32, 25), (25, 2)), ((2, 32), (32, 25)), ((32, 18), (18, 2)), ((8, 18), (18, 2))} <= conv_shapes
    assert rec[n_mlp]["lfsr_start"] == r.array_words and len(rec) == n_mlp + 2 * 8 + 2 * 3
    path = tmp_path / "products.npz"
    arrays = {"count": len(rec)}
    for i, p in enumerate(rec):
        arrays |= {f"a{i}": p["a"], f"b{i}": p["b"], f"values{i}": p["values"]}
    np.savez(path, **arrays)
    params = {"R": ROWS, "C": COLS, "a": [WL - FL, FL], "b": [WL - FL, FL], "c": [WL - FL, FL], "mode": rounding,
              "K": ds.features, "products": str(path.resolve())}
    res = registry.run_case("systolic", params, seed=1, log=print)
    assert res.metrics["products"] == len(rec)
    assert res.metrics["words"] == r.array_words + c.array_words

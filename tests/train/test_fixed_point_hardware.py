"""Products of a real fixed-point training run on the Verilator-built systolic array.

A short fixed-point training run (qnnfab.train.fixed_point: both layers, two
epochs, forward, back-propagation and weight-gradient products and the
evaluation passes) records every product it sends to the golden array model;
the cocotb ``systolic`` bench (its ``products_from_file`` test) streams all of
them, in order, from reset through the RTL array built with the same
geometry, formats, LFSR width and seed: every output word must equal the
golden value the training used. One small array per rounding (2 x 3, so that
column tiles are zero-padded at the edge).
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
    path = tmp_path / "products.npz"
    arrays = {"count": len(rec)}
    for i, p in enumerate(rec):
        arrays |= {f"a{i}": p["a"], f"b{i}": p["b"], f"values{i}": p["values"]}
    np.savez(path, **arrays)
    params = {"R": ROWS, "C": COLS, "a": [WL - FL, FL], "b": [WL - FL, FL], "c": [WL - FL, FL], "mode": rounding,
              "K": ds.features, "products": str(path.resolve())}
    res = registry.run_case("systolic", params, seed=1, log=print)
    assert res.metrics["products"] == len(rec)
    assert res.metrics["words"] == r.array_words

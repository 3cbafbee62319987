"""Trained networks, exported and run whole on Verilator: a convolutional BNN with 2-bit activations, a ternary MLP,
and one network of every scaled scheme (XNOR-Net, DoReFa, HWGQ, SYQ, TTQ).

Trains a tiny conv net (8x8x1 -> c8 -> p2 -> 16 -> 10, act_bits=2) on a slice
of the shipped digits, exports it (qnnfab.train.export), and streams
real test images through the generated accelerator: every output word must
equal the golden model (the bench checks it) and the hardware labels must
equal the trained network's own predictions.
"""

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.train import trainer as T
from qnnfab.train.export import export
from qnnfab.train.datasets import load_digits
from qnnfab.sim import registry


@pytest.mark.cocotb
def test_trained_conv_kbit_network_on_verilator(tmp_path):
    ds = load_digits().subset(600, 40)
    r = T.train(ds, "ste", hidden="c8,p2,16", epochs=3, batch=32, seed=0, act_bits=2)
    assert r.test_acc > 0.5
    toml_path, _ = export(r, tmp_path, "digits-conv-a2")
    cfg = netconfig.load(toml_path)
    assert [L.type for L in cfg.layers] == ["conv", "maxpool", "fc", "fc"]
    assert [L.act for L in cfg.layers if L.type != "maxpool"] == ["uint2", "uint2", "acc"]
    x = ds.x_test.reshape((-1,) + cfg.input_shape)
    inputs = tmp_path / "test_images.npz"
    np.savez(inputs, x=x, y=ds.y_test)
    want = T.predict(r, ds.x_test)
    res = registry.run_case("network", {"config": str(toml_path.resolve()), "frames": len(x),
                                        "inputs": str(inputs.resolve())}, seed=1, log=print)
    assert res.tests == 4                       # the four cocotb tests of the network bench ran and passed
    assert np.array_equal(np.array(res.metrics["labels"]), want)


@pytest.mark.cocotb
def test_trained_ternary_mlp_on_verilator(tmp_path):
    # ternary weights x bipolar activations: the signed dot product, not the XNOR popcount
    ds = load_digits().subset(600, 40)
    r = T.train(ds, "ternary", hidden=(32,), epochs=3, batch=32, seed=0)
    toml_path, _ = export(r, tmp_path, "digits-ternary")
    cfg = netconfig.load(toml_path)
    assert [L.weight_kind for L in cfg.layers] == ["ternary", "ternary"]
    assert any((L.weights == 0).any() for L in cfg.layers)
    inputs = tmp_path / "test_images.npz"
    np.savez(inputs, x=ds.x_test, y=ds.y_test)
    res = registry.run_case("network", {"config": str(toml_path.resolve()), "frames": len(ds.y_test),
                                        "inputs": str(inputs.resolve())}, seed=2, log=print)
    assert res.tests == 4
    assert np.array_equal(np.array(res.metrics["labels"]), T.predict(r, ds.x_test))


SCALED = [("xnor", "c4,p2,16", {}), ("dorefa", (16,), dict(act_bits=2)), ("hwgq", (16,), dict(act_bits=2)),
          ("syq", (16,), dict(weight_bits=2)), ("ttq", (16,), dict(weight_bits=3))]


@pytest.mark.cocotb
@pytest.mark.parametrize("scheme,hidden,kw", SCALED, ids=[s for s, _, _ in SCALED])
def test_trained_scaled_scheme_on_verilator(tmp_path, scheme, hidden, kw):
    # per-channel scales folded into thresholds (XNOR-Net in the popcount domain, SYQ ternary), int weights
    # (DoReFa odd codes, TTQ's Wp : Wn), HWGQ levels: the hardware's labels are the trained network's
    ds = load_digits().subset(400, 24)
    r = T.train(ds, scheme, hidden=hidden, epochs=2, batch=32, seed=0, **kw)
    toml_path, _ = export(r, tmp_path, f"digits-{scheme}")
    cfg = netconfig.load(toml_path)
    assert {L.weight_kind for L in cfg.layers if L.type != "maxpool"} == {r.weight_kind}
    x = ds.x_test.reshape((-1,) + cfg.input_shape)
    inputs = tmp_path / "test_images.npz"
    np.savez(inputs, x=x, y=ds.y_test)
    res = registry.run_case("network", {"config": str(toml_path.resolve()), "frames": len(x),
                                        "inputs": str(inputs.resolve())}, seed=3, log=print)
    assert res.tests == 4
    assert np.array_equal(np.array(res.metrics["labels"]), T.predict(r, ds.x_test))

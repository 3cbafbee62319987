"""Graph-shaped configs: a layer names the layers it reads; add and global average pooling; their
golden model against the golden primitives, and their QONNX export run by qonnx."""

from pathlib import Path

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.errors import ConfigError
from qnnfab.golden import binary_weight_matvec, conv_weights_to_matrix, im2col, multithreshold
from qnnfab.golden.graph import elementwise_add, global_sum_pool
from qnnfab.golden.graph_network import graph_forward
from qnnfab.golden.network import network_of

ROOT = Path(__file__).resolve().parent.parent

RESIDUAL = """
[network]
name = "res-tiny"
input_shape = [6, 6, 2]
input_kind = "uint"
input_bits = 2
seed = 3

[[layer]]
name = "stem"
type = "conv"
out = 4
act = "uint2"
pad = 1
pe = 2
simd = 2

[[layer]]
name = "c1"
type = "conv"
out = 4
act = "uint2"
pad = 1
pe = 2
simd = 4

[[layer]]
name = "c2"
type = "conv"
out = 4
act = "uint2"
pad = 1
pe = 4
simd = 4

[[layer]]
name = "res"
type = "add"
input = ["c2", "stem"]
act = "uint2"

[[layer]]
name = "gap"
type = "global_avgpool"
act = "uint2"
simd = 2

[[layer]]
name = "fc"
type = "fc"
out = 3
act = "acc"
simd = 4
pe = 3
"""


def _conv(x, L):
    """A 3x3 "same" convolution of binary weights over uint2 maps, thresholded (golden primitives)."""
    cols = im2col(x, L.kernel, L.stride, L.pad, L.pad_value)
    acc = binary_weight_matvec(conv_weights_to_matrix(L.weights), cols.reshape(-1, cols.shape[-1]), "uint", 2)
    return multithreshold(acc, L.thresholds).reshape(cols.shape[:3] + (-1,))


def test_a_residual_config_loads_with_its_shapes():
    cfg = netconfig.loads(RESIDUAL)
    L = {s.name: s for s in cfg.layers}
    assert cfg.is_graph
    assert L["res"].inputs == ("c2", "stem") and L["c1"].inputs == ()
    assert L["res"].out_shape == (6, 6, 4) and L["res"].simd == 4          # default: the first input's pe
    assert L["gap"].out_shape == (1, 1, 4) and L["gap"].in_shape == (6, 6, 4)
    assert L["res"].thresholds.shape == (4, 3) and L["gap"].thresholds.shape == (4, 3)
    assert L["fc"].in_shape == (1, 1, 4)


def test_golden_graph_equals_the_primitives_composed_by_hand():
    cfg = netconfig.loads(RESIDUAL)
    L = {s.name: s for s in cfg.layers}
    x = cfg.random_inputs(5, 7)
    stem = _conv(x, L["stem"])
    c2 = _conv(_conv(stem, L["c1"]), L["c2"])
    res = multithreshold(elementwise_add(c2, stem), L["res"].thresholds)
    gap = multithreshold(global_sum_pool(res), L["gap"].thresholds)
    scores = binary_weight_matvec(L["fc"].weights, gap, "uint", 2)
    out, every = graph_forward(cfg, x, return_all=True)
    np.testing.assert_array_equal(every["res"], res)
    np.testing.assert_array_equal(every["gap"], gap[:, None, None, :])
    np.testing.assert_array_equal(out, scores)
    assert len(set(map(tuple, out))) > 1          # the frames do not all score alike


@pytest.mark.parametrize("config", ["lfc_small", "cnv_small"])
def test_a_chain_runs_as_the_chain_golden_model(config):
    cfg = netconfig.load(ROOT / "configs" / f"{config}.toml")
    assert not cfg.is_graph
    x = cfg.random_inputs(4, 2)
    np.testing.assert_array_equal(graph_forward(cfg, x), network_of(cfg).forward(x))


def test_dump_and_weights_file_round_trip(tmp_path):
    cfg = netconfig.loads(RESIDUAL)
    netconfig.save_weights(tmp_path / "w.npz", cfg)
    text = netconfig.dumps(cfg, weights_ref="w.npz")
    assert 'input = ["c2", "stem"]' in text and text.count("input = ") == 1
    back = netconfig.loads(text, tmp_path)
    assert back.topology_hash() == cfg.topology_hash()
    x = cfg.random_inputs(3, 1)
    np.testing.assert_array_equal(graph_forward(back, x), graph_forward(cfg, x))


def test_naming_the_previous_layer_is_still_a_chain_and_naming_another_makes_a_graph():
    chain = RESIDUAL.split('[[layer]]\nname = "res"')[0]
    same = chain.replace('name = "c1"\n', 'name = "c1"\ninput = "stem"\n')
    first = chain.replace('name = "stem"\n', 'name = "stem"\ninput = "input"\n')
    a, b, c = netconfig.loads(chain), netconfig.loads(same), netconfig.loads(first)
    assert not a.is_graph and not b.is_graph and not c.is_graph
    assert a.topology_hash() == b.topology_hash() == c.topology_hash()
    assert "input = " not in netconfig.dumps(b)
    skip = chain + '\n[[layer]]\nname = "res"\ntype = "add"\ninput = ["c2", "stem"]\nact = "uint2"\n'
    assert netconfig.loads(skip).is_graph
    with pytest.raises(ConfigError, match="'c1'.*no layer reads"):
        netconfig.loads(chain.replace('name = "c2"\n', 'name = "c2"\ninput = "stem"\n'))   # c1 ends nowhere


@pytest.mark.parametrize("edit,field,problem", [
    (('input = ["c2", "stem"]', 'input = ["c2", "later"]'), "input", "not an earlier layer"),
    (('input = ["c2", "stem"]', 'input = "c2"'), "input", "reads 2 layer"),
    (('input = ["c2", "stem"]', 'input = ["c2", "c2", "stem"]'), "input", "list of one or two"),
    (('input = ["c2", "stem"]', 'input = ["c2", "input"]'), "input", "shapes and kinds must be equal"),
    (('name = "gap"\ntype = "global_avgpool"\nact = "uint2"', 'name = "gap"\ntype = "global_avgpool"\nact = "acc"'),
     "act", "requantizes"),
    (('name = "gap"\ntype = "global_avgpool"\nact = "uint2"\nsimd = 2',
      'name = "gap"\ntype = "global_avgpool"\nact = "uint2"\nsimd = 3'), "simd", "does not divide"),
])
def test_graph_mistakes_are_refused_naming_the_layer_and_field(edit, field, problem):
    with pytest.raises(ConfigError) as e:
        netconfig.loads(RESIDUAL.replace(*edit))
    assert e.value.field == field and problem in e.value.problem and e.value.fix


def test_an_add_of_bipolar_maps_is_refused():
    stem = 'name = "stem"\ntype = "conv"\nout = 4\nact = '
    text = RESIDUAL.replace('act = "uint2"\npad = 1\npe = 4', 'act = "bipolar"\npad = 1\npe = 4').replace(
        stem + '"uint2"', stem + '"bipolar"')
    with pytest.raises(ConfigError, match="res.*type: add of bipolar maps"):
        netconfig.loads(text)


def test_the_chain_golden_model_refuses_a_graph():
    cfg = netconfig.loads(RESIDUAL)
    with pytest.raises(ConfigError, match="graph_forward"):
        network_of(cfg)


def test_qonnx_export_of_the_graph_runs_to_golden():
    pytest.importorskip("qonnx", reason="QONNX tests need the onnx extra: pip install 'qnnfab[onnx]'")
    from qnnfab.interop.qonnx_export import execute, export_qonnx, input_values, stored_outputs
    cfg = netconfig.loads(RESIDUAL)
    model = export_qonnx(cfg)
    ops = [n.op_type for n in model.graph.node]
    assert "Add" in ops and "GlobalAveragePool" in ops
    x = cfg.random_inputs(6, 4)
    np.testing.assert_array_equal(stored_outputs(cfg, execute(model, input_values(cfg, x))), graph_forward(cfg, x))


def test_qonnx_global_pool_thresholds_decide_ties_like_golden():
    """Sums exactly on a threshold and one below: the average's float thresholds must not blur them."""
    pytest.importorskip("qonnx", reason="QONNX tests need the onnx extra: pip install 'qnnfab[onnx]'")
    from qnnfab.interop.qonnx_export import execute, export_qonnx, input_values, stored_outputs
    text = """
[network]
name = "gap-ties"
input_shape = [3, 5, 2]
input_kind = "uint"
input_bits = 3

[[layer]]
name = "gap"
type = "global_avgpool"
act = "uint2"
simd = 1
"""
    cfg = netconfig.loads(text)
    x = np.random.default_rng(0).integers(0, 8, size=(40, 3, 5, 2))
    sums = global_sum_pool(x)
    # per channel: frame 0's sum (a tie: counts), frame 1's sum + 1 (one below: does not), frame 2's
    cfg.layers[0].thresholds = np.sort(np.stack([sums[0], sums[1] + 1, sums[2]], axis=1), axis=1)
    got = stored_outputs(cfg, execute(export_qonnx(cfg), input_values(cfg, x)))
    expected = multithreshold(sums, cfg.layers[0].thresholds)
    np.testing.assert_array_equal(graph_forward(cfg, x)[:, 0, 0, :], expected)
    np.testing.assert_array_equal(got, graph_forward(cfg, x))


CONCAT = RESIDUAL.replace('name = "res"\ntype = "add"\ninput = ["c2", "stem"]\nact = "uint2"',
                          'name = "res"\ntype = "concat"\ninput = ["c2", "stem"]\nsimd = 2')


def test_a_concat_joins_the_channels_like_golden_and_qonnx():
    cfg = netconfig.loads(CONCAT)
    L = {s.name: s for s in cfg.layers}
    assert L["res"].out_shape == (6, 6, 8) and L["res"].out_kind == "uint" and L["res"].thresholds is None
    assert L["gap"].thresholds.shape == (8, 3) and L["fc"].in_shape == (1, 1, 8)
    x = cfg.random_inputs(4, 3)
    stem = _conv(x, L["stem"])
    c2 = _conv(_conv(stem, L["c1"]), L["c2"])
    out, every = graph_forward(cfg, x, return_all=True)
    np.testing.assert_array_equal(every["res"], np.concatenate([c2, stem], axis=-1))
    back = netconfig.loads(netconfig.dumps(cfg))
    assert back.topology_hash() == cfg.topology_hash() and back.layers[3].in_shapes == ((6, 6, 4), (6, 6, 4))
    pytest.importorskip("qonnx", reason="QONNX tests need the onnx extra: pip install 'qnnfab[onnx]'")
    from qnnfab.interop.qonnx_export import execute, export_qonnx, input_values, stored_outputs
    model = export_qonnx(cfg)
    assert "Concat" in [n.op_type for n in model.graph.node]
    np.testing.assert_array_equal(stored_outputs(cfg, execute(model, input_values(cfg, x))), out)


@pytest.mark.parametrize("edit,problem", [
    (('input = ["c2", "stem"]\nsimd = 2', 'input = ["c2", "gap0"]\nsimd = 2'), "not an earlier layer"),
    (('input = ["c2", "stem"]\nsimd = 2', 'input = ["c2", "stem"]\nsimd = 3'), "does not divide"),
    (('input = ["c2", "stem"]\nsimd = 2', 'input = "c2"\nsimd = 2'), "reads 2 layer"),
])
def test_concat_mistakes_are_refused(edit, problem):
    with pytest.raises(ConfigError) as e:
        netconfig.loads(CONCAT.replace(*edit))
    assert problem in e.value.problem


@pytest.mark.parametrize("field,fix", [('act = "uint2"', "remove act (set it on the layers the concat reads)"),
                                       ("pe = 4", "remove pe (set simd)")])
def test_a_concat_refuses_act_and_pe_at_load_with_exit_2_in_one_line(tmp_path, capsys, field, fix):
    """A concat passes its inputs' values and its pe is its simd: an act or pe on it would be ignored."""
    from qnnfab.cli import main

    path = tmp_path / "cat.toml"
    path.write_text(CONCAT.replace('input = ["c2", "stem"]\nsimd = 2', f'input = ["c2", "stem"]\nsimd = 2\n{field}'))
    assert main(["generate", "--config", str(path), "--no-report", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    key = field.split()[0]
    assert "\n" not in err and f"layer 3 'res': {key}: " in err and fix in err
    assert not (tmp_path / "out").exists()


def test_a_concat_of_maps_of_other_sizes_is_refused():
    text = CONCAT.replace('name = "c2"\ntype = "conv"\nout = 4\nact = "uint2"\npad = 1',
                          'name = "c2"\ntype = "conv"\nout = 4\nact = "uint2"\npad = 0')
    with pytest.raises(ConfigError, match="heights, widths and kinds"):
        netconfig.loads(text)

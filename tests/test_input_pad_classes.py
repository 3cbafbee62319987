"""[network] input_pad and a last layer's classes: padded input frames and padding output rows
(qnnfab/netconfig.py), through the golden model, the plan, the compiled engine and the driver."""

import numpy as np
import pytest

from qnnfab import netconfig, overlay_map
from qnnfab.errors import ConfigError
from qnnfab.golden.network import network_of
from qnnfab.plan import plan_of

# 12 bipolar inputs + 4 padding bits = 16 = 2 words of SIMD 8; the last layer's 8 rows are
# 6 outputs + 2 padding rows, so PE 4 divides them
TINY = """
[network]
name = "tiny-pad"
input_shape = [12]
input_pad = 4
seed = 3

[[layer]]
name = "fc0"
type = "fc"
out = 8
pe = 4
simd = 8

[[layer]]
name = "fc1"
type = "fc"
out = 8
classes = 6
act = "acc"
pe = 4
simd = 4
"""


@pytest.fixture(scope="module")
def tiny():
    return netconfig.loads(TINY)


def _xnor_popcount(x, w):
    """(B, N) bits x (M, N) bits -> (B, M) matching positions (the bipolar x bipolar accumulator)."""
    return (x[:, None, :] == w[None, :, :]).sum(-1)


def _reference(cfg, x):
    """The tiny network by hand: frames padded with 4 zero bits, then the two layers, then the first
    6 scores."""
    fc0, fc1 = cfg.layers
    xp = np.concatenate([x, np.zeros((len(x), 4), x.dtype)], axis=1)
    h = (_xnor_popcount(xp, fc0.weights) >= fc0.thresholds[:, 0]).astype(np.int64)
    return _xnor_popcount(h, fc1.weights)[:, :6]


def test_the_config_reads_padded_shapes(tiny):
    assert tiny.input_pad == 4 and tiny.input_shape == (12,)
    assert tiny.layers[0].in_shape == (16,) and tiny.layers[0].weights.shape == (8, 16)
    assert tiny.layers[1].classes == 6 and tiny.classes == 6
    assert tiny.input_words() == 2
    assert tiny.random_inputs(3).shape == (3, 12)


def test_golden_equals_the_hand_padded_network(tiny):
    x = tiny.random_inputs(64, seed=5)
    got = network_of(tiny).forward(x)
    assert got.shape == (64, 6)
    assert np.array_equal(got, _reference(tiny, x))
    assert np.array_equal(network_of(tiny).forward(x, method="reference"), got)


def test_the_plan_counts_the_padding(tiny):
    plan = plan_of(tiny)
    fm = plan.word_format
    assert (fm.in_elems, fm.in_words, fm.in_pad) == (8, 2, 4)
    assert (fm.out_elems, fm.out_words, fm.classes) == (4, 2, 6)
    x = tiny.random_inputs(5, seed=1)
    words = fm.pack_frames(x)
    assert len(words) == 10
    for f in range(5):     # the second word of a frame: inputs 8..11, then 4 zero bits
        assert words[2 * f + 1] == sum(int(b) << k for k, b in enumerate(x[f, 8:]))
    # 8 scores per frame on the stream, the first 6 reported
    scores = np.arange(16).reshape(2, 8)
    out_words = [sum(int(s) << (8 * k) for k, s in enumerate(row[j * 4:(j + 1) * 4]))
                 for row in scores for j in range(2)]
    assert np.array_equal(fm.unpack_scores(out_words), scores[:, :6])


def test_the_driver_pads_inputs_and_drops_padding_scores(tiny):
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "qnnfab_test_driver", Path(__file__).resolve().parent.parent / "boards" / "onboard" / "driver.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    fm = overlay_map.Formats.from_dict(plan_of(tiny).overlay_formats(64).to_dict())
    assert (fm.input_pad, fm.in_elems, fm.in_words, fm.classes, fm.n_scores) == (4, 16, 2, 6, 8)
    x = tiny.random_inputs(3, seed=2)
    packed = driver.pack_inputs(fm, x)
    words = plan_of(tiny).word_format.pack_frames(x)
    for f in range(3):
        for j in range(2):
            assert packed[f, j * fm.in_slot_bytes] == words[2 * f + j]
    # output records as the shell writes them: 2 words of 4 scores of out_bits bits, then the label word
    assert fm.out_bits == 4
    records = np.zeros((2, fm.out_record_bytes), np.uint8)
    for f in range(2):
        for j in range(2):
            word = sum((f + 4 * j + k) << (4 * k) for k in range(4))   # score i = f + i
            records[f, j * fm.out_slot_bytes:j * fm.out_slot_bytes + 2] = [word & 0xFF, word >> 8]
    scores, _, _ = driver.unpack_records(fm, records)
    assert np.array_equal(scores, [[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]])


def test_the_config_round_trips_and_keeps_other_hashes(tiny):
    text = netconfig.dumps(tiny)
    assert "input_pad = 4" in text and "classes = 6" in text
    again = netconfig.loads(text)
    assert again.input_pad == 4 and again.layers[1].classes == 6
    assert again.topology_hash() == tiny.topology_hash()
    plain = netconfig.loads(TINY.replace("input_pad = 4", "").replace("[12]", "[16]").replace("classes = 6", ""))
    assert "input_pad" not in netconfig.dumps(plain) and "classes" not in netconfig.dumps(plain)
    assert plain.topology_hash() != tiny.topology_hash()
    # classes = out is the default: the same config and hash as without it
    same = netconfig.loads(TINY.replace("classes = 6", "classes = 8"))
    assert same.layers[1].classes is None
    assert same.topology_hash() == netconfig.loads(TINY.replace("classes = 6", "")).topology_hash()


@pytest.mark.parametrize("change, field", [
    (("input_shape = [12]", "input_shape = [4, 4, 1]"), "input_pad"),
    (("input_pad = 4", "input_pad = -1"), "input_pad"),
    (("classes = 6", "classes = 9"), "classes"),
    (("classes = 6", "classes = 0"), "classes"),
    (("simd = 8", "simd = 8\nclasses = 4"), "classes"),
    (("input_pad = 4", "input_pad = 3"), "simd"),
])
def test_bad_padding_is_one_config_error(change, field):
    text = TINY.replace(*change)
    if "[4, 4, 1]" in text:     # an image input: the first layer a conv, which input_pad cannot feed
        text = text.replace('type = "fc"\nout = 8\npe = 4\nsimd = 8', 'type = "conv"\nout = 8\npe = 4\nsimd = 1')
    with pytest.raises(ConfigError) as e:
        netconfig.loads(text)
    assert f"'{field}'" in str(e.value) or f" {field}" in str(e.value)
    assert "\n" not in str(e.value)


def test_the_compiled_accelerator_equals_golden_with_labels(tiny):
    from qnnfab.sim.compiled import verify_network
    x = tiny.random_inputs(40, seed=7)
    res = verify_network(tiny, x, stalled_frames=8)
    assert res.first_mismatch is None and res.frames_identical == 40
    expected = _reference(tiny, x)
    assert np.array_equal(res.golden_labels, np.argmax(expected, axis=1))
    assert np.array_equal(res.labels, res.golden_labels)
    # the padding rows would win some frames: the labels depend on ignoring them
    full = network_of(netconfig.loads(TINY.replace("classes = 6", ""))).forward(x)
    assert (np.argmax(full, axis=1) != res.golden_labels).any()


def test_the_accelerator_readme_names_the_padding(tiny):
    from qnnfab.boards.emit.accelerator import accelerator_readme
    from qnnfab.rtl.axis_accelerator import AxiStreamAccelerator
    text = accelerator_readme(tiny, AxiStreamAccelerator(tiny))
    assert "followed by 4 padding elements of stored value 0" in text
    assert "only the first 6 are the network's outputs, the other 2 are padding rows" in text


def test_uint_inputs_pad_with_zero():
    """2-bit uint inputs (6 + 2 padding zeros, SIMD 4), int weights, raw scores: the padding adds
    nothing to the dot products, whatever the padding columns' weights."""
    from qnnfab.kinds import DataKind
    cfg = netconfig.loads("""
[network]
input_shape = [6]
input_kind = "uint"
input_bits = 2
input_pad = 2
seed = 4

[[layer]]
type = "fc"
out = 4
classes = 3
act = "acc"
weight_kind = "int"
weight_bits = 3
pe = 2
simd = 4
""")
    w = DataKind.of("int", 3).values(cfg.layers[0].weights)
    assert w.shape == (4, 8) and np.any(w[:, 6:] != 0)
    x = cfg.random_inputs(32, seed=9)
    expected = (x @ w[:, :6].T)[:, :3]
    assert np.array_equal(network_of(cfg).forward(x), expected)
    words = plan_of(cfg).word_format.pack_frames(x[:1])
    assert words[1] == x[0, 4] | x[0, 5] << 2          # the second word: inputs 4, 5, then two zeros

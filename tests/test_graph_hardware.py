"""Hardware of graph configs: the plan of a residual network (forks, joins, skip FIFO depths), the
Dataflow that wires it, run on Amaranth's simulator and the compiled engine against the golden
graph model; a skip FIFO below its computed depth deadlocks or loses throughput."""

import re
from pathlib import Path

import numpy as np
import pytest

from qnnfab import netconfig
from qnnfab.errors import ConfigError
from qnnfab.golden.graph_network import graph_forward
from qnnfab.plan import plan_of
from qnnfab.rtl.dataflow import Dataflow
from qnnfab.sim.branch_timing import StreamDeadlock, graph_skip_depths, run_dataflow

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "resnet_tiny.toml"

# a stem, one 3x3 "same" convolution on the long path, an identity shortcut, global pooling
MINI = """
[network]
name = "res-mini"
input_shape = [4, 4, 2]
input_kind = "uint"
input_bits = 2
seed = 3

[[layer]]
name = "stem"
type = "conv"
out = 2
act = "uint2"
pad = 1
pe = 2
simd = 2

[[layer]]
name = "c1"
type = "conv"
out = 2
act = "uint2"
pad = 1
pe = 2
simd = 2

[[layer]]
name = "res"
type = "add"
input = ["c1", "stem"]
act = "uint2"

[[layer]]
name = "gap"
type = "global_avgpool"
act = "uint2"

[[layer]]
name = "fc"
type = "fc"
out = 3
act = "acc"
simd = 2
pe = 3
"""


def _stages(plan):
    return {s.name: s for s in plan.stages}


def _same_conv_need(size, convs, words_per_pixel):
    """Fork words the long path of ``convs`` 3x3 "same" convolutions (stride 1) over a ``size`` x
    ``size`` map must take before each of its output pixels, outputs in raster order: the last
    input pixel of the receptive field, (y + convs, x + convs) clipped to the map."""
    need, most = [], 0
    for y in range(size):
        for x in range(size):
            last = min(size - 1, y + convs) * size + min(size - 1, x + convs) + 1
            most = max(most, last)
            need.append(most * words_per_pixel)
    return need


def test_the_plan_of_a_residual_network_names_what_every_stage_reads():
    plan = plan_of(netconfig.load(TINY))
    s = _stages(plan)
    assert s["stem_fork"].kind == "fork" and s["stem_fork"].fanout == 2 and s["stem_fork"].reads == (("stem", 0),)
    assert s["b1"].kind == "add" and s["b1"].reads == (("b1_fifo0", 0), ("b1_fifo1", 0))
    assert s["b1_fifo1"].reads == (("stem_fork", 1),)            # the identity shortcut: a FIFO alone
    assert s["b1c1_dwc"].reads == (("stem_fork", 0),)             # stem's 2 lanes to b1c1's 4
    assert s["b2sc_dwc"].reads == (("b1_fork", 1),) and s["b2sc"].layer.kernel == 1
    assert s["b2_fifo1"].reads == (("b2_dwc1", 0),)
    assert s["gap"].kind == "global_avgpool" and s["gap"].o.words == 2
    assert plan.stages[-1].name == "fc" and plan.output.words == 5
    names = [st.name for st in plan.stages]
    for st in plan.stages:                                         # a topological order
        assert all(src == "" or names.index(src) < names.index(st.name) for src, _ in st.reads), st.name


def test_the_identity_shortcut_depth_is_the_receptive_field_bound():
    """Fork word per join word (both 2 lanes of 4 channels: 2 words a pixel): while the join waits
    for long word k, the FIFO (depth D, and its output register) and the fork's register hold
    words k .. k + D + 1, so D = max_k(need[k] - k) - 2."""
    s = _stages(plan_of(netconfig.load(TINY)))
    need = np.array([_same_conv_need(8, 2, 2)[k // 2] for k in range(128)])
    assert s["b1_fifo1"].min_depth == int((need - np.arange(128)).max()) - 2 == 36
    assert s["b1_fifo0"].min_depth == 2          # the long path never waits for the shortcut


def test_a_shortcut_convolution_bounds_its_depth_by_both_paths():
    """b2 over b1's 8x8 map (2 fork words a pixel): a 1x1 stride-2 shortcut against a 3x3 stride-2
    then a 3x3 stride-1 "same" path, joined 4x4 at 2 words a pixel. While the join waits for long
    word k, the shortcut's FIFO holds words k .. k + D, for which the fork gave it short[k + D]
    words, and the fork holds one more: D is the least with long[k] <= short[k + D] + 1."""
    s = _stages(plan_of(netconfig.load(TINY)))
    long, short, most = [], [], 0
    for m in range(32):
        oy, ox = divmod(m // 2, 4)
        y1, x1 = min(3, oy + 1), min(3, ox + 1)                  # b2c1's pixel the stride-1 conv needs
        most = max(most, (min(7, 2 * y1 + 1) * 8 + min(7, 2 * x1 + 1) + 1) * 2)
        long.append(most)
        short.append(((2 * oy) * 8 + 2 * ox + 1) * 2)
    short += [128 + w for w in short]                             # the next frame's words
    least = max(next(j for j in range(64) if short[j] + 1 >= long[k]) - k for k in range(32))
    assert s["b2_fifo1"].min_depth == least


def test_a_graph_runs_identical_to_golden_on_amaranth_and_one_word_less_deadlocks_naming_the_fifo():
    cfg = netconfig.loads(MINI)
    x = cfg.random_inputs(3, 1)
    golden = graph_forward(cfg, x).reshape(3, -1)
    depth = _stages(plan_of(cfg))["res_fifo1"].min_depth
    assert depth == 4                            # pixel (1, 1) of a 4x4 map, 1 word a pixel: 6 - 0 - 2
    scores, _ = run_dataflow(Dataflow(cfg), x)
    np.testing.assert_array_equal(scores, golden)
    with pytest.raises(StreamDeadlock, match=r"holding a word nobody takes: .*res_fifo1 input"):
        run_dataflow(Dataflow(cfg, skip_depths={"res_fifo1": depth - 1}), x)


def test_an_add_of_one_layer_with_itself_forks_it_and_runs_identical_to_golden():
    cfg = netconfig.loads(MINI.replace('input = ["c1", "stem"]', 'input = ["c1", "c1"]'))
    s = _stages(plan_of(cfg))
    assert s["c1_fork"].fanout == 2
    assert sorted(r for f in ("res_fifo0", "res_fifo1") for r in s[f].reads) == [("c1_fork", 0), ("c1_fork", 1)]
    x = cfg.random_inputs(2, 4)
    scores, _ = run_dataflow(Dataflow(cfg), x)
    np.testing.assert_array_equal(scores, graph_forward(cfg, x).reshape(2, -1))


# MINI with a concat in place of the add: c1's 4 channels (2 words a pixel), then the stem's 2 (1 word)
CONCAT = MINI.replace('name = "c1"\ntype = "conv"\nout = 2', 'name = "c1"\ntype = "conv"\nout = 4').replace(
    'name = "res"\ntype = "add"\ninput = ["c1", "stem"]\nact = "uint2"',
    'name = "res"\ntype = "concat"\ninput = ["c1", "stem"]\nsimd = 2')
CONCAT_TINY = ROOT / "configs" / "concat_tiny.toml"


def _concat_identity_depth(identity_first):
    """The least depth of the identity path's FIFO (the stem, 1 word a pixel) in front of CONCAT's
    concat, by hand: while the concat waits for c1's words of pixel p it has taken the stem's words of
    pixels < p (c1 first) or <= p (stem first); the FIFO holds the words after those (its memory and
    output register: D + 1) and the fork one more, and c1's pixel p needs need[p] stem words."""
    need = _same_conv_need(4, 1, 1)
    return max(n - (p + identity_first) for p, n in enumerate(need)) - 2


def _concat_identity_never_binding_depth(identity_first):
    """The never-binding depth of the stem's FIFO in front of CONCAT's concat, by hand: the least D
    with (fork words the c1 path may hold while c1's word k waits) <= (stem words the concat has taken
    before k, t) + D + 2 (the FIFO holds stem words t .. t + D, the fork's register the next), at
    c1's word 11 (pixel 5's second). While it waits res_fifo0 (depth 2) holds c1's words 11 .. 13, so
    c1's word 14 waits; c1 holds 6 output words in its pipeline (4 + 2 output bits) and 6 windows after
    theirs (the MVTU's other input buffer, its FIFO of depth 2 and output register, the window's two
    registers): window (14 + 6) // 2 + 6 = 16, the next frame's first, whose line buffer has taken
    3 rows of 4 pixels and its input register one more: 16 + 13 stem words. c1_fifo (depth 8, the
    chain's rule) holds 29 .. 37: 38 fork words. The concat has taken the stem's words of pixels
    0 .. 4 (c1 first) or 0 .. 5 (stem first)."""
    long_path = 16 + 3 * 4 + 1 + 8 + 1
    return long_path - (5 + identity_first) - 2


def test_the_plan_of_a_concat_reads_each_input_at_its_own_words_and_sizes_both_fifos():
    cfg = netconfig.loads(CONCAT)
    s = _stages(plan_of(cfg))
    cat = s["res"]
    assert cat.kind == "concat" and cat.reads == (("res_fifo0", 0), ("res_fifo1", 0))
    assert [(cat.input_link(p).elems, cat.input_link(p).words) for p in (0, 1)] == [(2, 32), (2, 16)]
    assert (cat.o.elems, cat.o.words, cat.cycles) == (2, 48, 48)     # 16 pixels of 3 words, a word a cycle
    assert (s["res_fifo0"].i.words, s["res_fifo1"].i.words) == (32, 16)
    assert s["res_fifo1"].reads == (("stem_fork", 1),) and s["res_fifo0"].reads == (("c1", 0),)
    assert s["res_fifo1"].min_depth == _concat_identity_depth(False) == 4
    assert s["res_fifo0"].min_depth == 2             # c1 never waits for the stem
    swapped = _stages(plan_of(netconfig.loads(CONCAT.replace('["c1", "stem"]', '["stem", "c1"]'))))
    assert swapped["res_fifo0"].min_depth == _concat_identity_depth(True) == 3
    assert swapped["res"].input_link(0).words == 16
    # the never-binding depth of the identity path by default
    assert s["c1_fifo"].fifo_depth == swapped["c1_fifo"].fifo_depth == 8
    assert s["res_fifo1"].fifo_depth == _concat_identity_never_binding_depth(False) == 31
    assert swapped["res_fifo0"].fifo_depth == _concat_identity_never_binding_depth(True) == 30


@pytest.mark.parametrize("order", ['["c1", "stem"]', '["stem", "c1"]'])
def test_a_concat_runs_identical_to_golden_on_amaranth_and_one_word_below_its_fifo_bound_deadlocks_naming_it(order):
    cfg = netconfig.loads(CONCAT.replace('["c1", "stem"]', order))
    x = cfg.random_inputs(3, 1)
    golden = graph_forward(cfg, x).reshape(3, -1)
    scores, _ = run_dataflow(Dataflow(cfg), x)
    np.testing.assert_array_equal(scores, golden)
    fifo = "res_fifo1" if order.startswith('["c1"') else "res_fifo0"
    depth = _stages(plan_of(cfg))[fifo].min_depth
    with pytest.raises(StreamDeadlock, match=rf"holding a word nobody takes: .*{fifo} input"):
        run_dataflow(Dataflow(cfg, skip_depths={fifo: depth - 1}), x)


def test_on_amaranth_a_concat_fifo_at_its_deadlock_bound_loses_throughput_and_one_word_more_keeps_the_bottleneck():
    """Stem first: at the plan's least depth (3) the concat runs, slower than c1's 288 cycles/frame (the
    fork waits on the full FIFO while c1 still has a window to fill): 351 (Amaranth's simulator is
    deterministic; README); 4 words keep the 288, and so does the plan's default (never-binding) depth,
    30: every frame identical to golden."""
    cfg = netconfig.loads(CONCAT.replace('["c1", "stem"]', '["stem", "c1"]'))
    bottleneck = max(cfg.layer_cycles(L) for L in cfg.layers)
    assert bottleneck == 16 * 9 * 2 == 288                # c1: 16 pixels, 9 window words, 2 folds of PE 2
    x = cfg.random_inputs(4, 2)
    golden = graph_forward(cfg, x).reshape(4, -1)
    fifo = _stages(plan_of(cfg))["res_fifo0"]
    least = fifo.min_depth
    assert (least, fifo.fifo_depth) == (3, 30)
    per = {}
    for depth in (None, least + 1, least):
        scores, cycles = run_dataflow(Dataflow(cfg, skip_depths={} if depth is None else {"res_fifo0": depth}), x)
        np.testing.assert_array_equal(scores, golden)
        per[depth] = cycles[-1] - cycles[-2]
    assert per[None] == per[least + 1] == bottleneck < per[least] == 351


def test_the_compiled_engine_runs_concat_tiny_at_the_bottleneck_identical_to_golden_under_stalls():
    """configs/concat_tiny.toml (an inception-like and a DenseNet-like concat) on the compiled engine
    at the plan's depths: every word and label equal to golden, steady state = the stem's 1,152
    cycles/frame, and again with random gaps on the input and backpressure on the output."""
    from qnnfab.sim.compiled import NetworkBench, check_network, steady_cycles_per_frame

    cfg = netconfig.load(CONCAT_TINY)
    bottleneck = max(cfg.layer_cycles(L) for L in cfg.layers)
    assert bottleneck == 64 * 9 * 2 == 1152               # the stem: 64 pixels, 9 window words, 2 folds
    x = cfg.random_inputs(8, 3)
    bench = NetworkBench(cfg)
    run = bench.run(x)
    check_network(bench, x, run)
    assert steady_cycles_per_frame(run, bench.format.out_words) == bottleneck
    assert set(run.fifo_occupancy) == {"mix_fifo0", "mix_fifo1", "dense_fifo0", "dense_fifo1"}
    stalled = bench.run(x[:4], seed=5, valid_prob=0.6, ready_prob=0.5)
    check_network(bench, x[:4], stalled)


def test_concat_tiny_sizes_the_dense_identity_fifo_from_two_frames_of_the_grow_path_by_hand():
    """dense joins grow's 4 channels (a) and down's (b, the identity: down_fork -> dense_dwc1 -> dense_fifo1),
    1 word a pixel each, 4 x 4 pixels; the fork (down) sends 2 words a pixel. At dense's a word 2: while
    it waits (word 1 taken) the concat has taken b's word of pixel 0, t = 1. dense_fifo0 (depth 2) holds
    a words 2 .. 4, so dense_dwc0's word 5 waits, holding grow's words to word 6's (12, 13) and its input
    register one more: 15 taken, grow's word 15 waits. grow (as c1 of CONCAT: 6 words in its pipeline, 6
    windows after theirs) reaches window (15 + 6) // 2 + 6 = 16, the next frame's first: 3 line-buffer
    rows of 4 pixels and its input register, 16 + 13 = 29 words taken. grow_fifo (depth 2) holds 29 .. 31,
    so grow_dwc's word 32 (two frames on) waits, holding fork words to those of its word 33 and its input
    register one more: 64 + 5 = 69 fork words. The b FIFO holds b words 1 .. 1 + D, b word m from fork
    words 2m, 2m + 1, and the fork's register one more: 2 (1 + D + 1) + 1 >= 69, D = 32."""
    s = _stages(plan_of(netconfig.load(CONCAT_TINY)))
    assert s["grow_dwc"].reads == (("down_fork", 0),) and s["dense_fifo0"].reads == (("dense_dwc0", 0),)
    assert (s["grow_fifo"].fifo_depth, s["dense_fifo0"].fifo_depth) == (2, 2)
    assert s["dense_fifo1"].reads == (("dense_dwc1", 0),) and s["dense_dwc1"].reads == (("down_fork", 1),)
    assert s["dense_fifo1"].fifo_depth == (69 - 1) // 2 - 2 == 32


def test_a_concat_whose_inputs_do_not_branch_from_one_layer_is_refused_in_one_line(tmp_path, capsys):
    from qnnfab.cli import main

    # res (an add of c1 and the stem) and the stem again: the paths meet in the add, not in a fork
    gap = MINI.index('[[layer]]\nname = "gap"')
    text = (MINI[:gap] + '[[layer]]\nname = "cat"\ntype = "concat"\ninput = ["res", "stem"]\nsimd = 2\n\n'
            + MINI[gap:])
    cfg = netconfig.loads(text)
    assert [L.type for L in cfg.layers] == ["conv", "conv", "add", "concat", "global_avgpool", "fc"]
    with pytest.raises(ConfigError, match="do not branch from one layer"):
        plan_of(cfg)
    path = tmp_path / "cat.toml"
    path.write_text(text)
    assert main(["generate", "--config", str(path), "--no-report", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "layer 3 'cat'" in err and "do not branch from one layer" in err
    assert not (tmp_path / "out").exists()


def test_runtime_weights_of_concat_tiny_are_its_convolutions_and_pools_thresholds_only():
    plan = plan_of(netconfig.load(CONCAT_TINY), "runtime")
    owners = []
    for g in plan.groups:
        if g.layer not in owners:
            owners.append(g.layer)
    assert owners == [f"layer {k} {n!r}" + (" (mvtu)" if n not in ("gap", "fc") else "")
                      for k, n in ((0, "stem"), (1, "i3"), (2, "i1"), (4, "down"), (5, "grow"), (7, "gap"), (8, "fc"))]


@pytest.fixture(scope="module")
def tiny_depths():
    return graph_skip_depths(netconfig.load(TINY))


def test_characterised_depths_of_the_identity_shortcut(tiny_depths):
    d = tiny_depths["b1_fifo1"]
    assert set(tiny_depths) == {"b1_fifo1"}       # b2's shortcut computes: its plan depth stands
    # the starved run measures the long path's need: the same bound as the plan's geometry
    assert d.deadlock == _stages(plan_of(netconfig.load(TINY)))["b1_fifo1"].min_depth
    assert d.deadlock <= d.throughput <= d.schedule


def test_the_compiled_engine_runs_a_residual_network_at_the_bottleneck_and_one_word_less_is_slower(tiny_depths):
    from qnnfab.sim.compiled import NetworkBench, check_network, steady_cycles_per_frame

    cfg = netconfig.load(TINY)
    x = cfg.random_inputs(24, 3)
    bench = NetworkBench(cfg, skip_depths={"b1_fifo1": tiny_depths["b1_fifo1"].throughput})
    assert _stages(bench.top.dataflow.plan)["b1_fifo1"].fifo_depth == tiny_depths["b1_fifo1"].throughput
    run = bench.run(x)
    check_network(bench, x, run)
    bottleneck = max(cfg.layer_cycles(L) for L in cfg.layers)
    assert steady_cycles_per_frame(run, bench.format.out_words) == bottleneck == 1152
    stalled = bench.run(x[:6], seed=5, valid_prob=0.6, ready_prob=0.5)
    check_network(bench, x[:6], stalled)
    less = NetworkBench(cfg, skip_depths={"b1_fifo1": tiny_depths["b1_fifo1"].throughput - 1})
    slow = less.run(x)
    check_network(less, x, slow)
    assert steady_cycles_per_frame(slow, less.format.out_words) > bottleneck
    computed = NetworkBench(cfg)                 # by default the plan's never-binding depths
    assert _stages(computed.top.dataflow.plan)["b1_fifo1"].fifo_depth > tiny_depths["b1_fifo1"].throughput
    run = computed.run(x)
    check_network(computed, x, run)
    assert steady_cycles_per_frame(run, computed.format.out_words) == bottleneck


def test_generate_writes_the_overlay_of_a_graph_and_its_runtime_weights_image(tmp_path, capsys):
    import json

    from qnnfab.cli import main

    out = tmp_path / "out"
    rc = main(["generate", "--config", str(TINY), "--no-report", "--out", str(out)])
    capsys.readouterr()
    assert rc == 0
    overlay = out / "overlay"
    for name in ("qnnfab_resnet_tiny_overlay.v", "block_design.tcl", "build.sh", "driver.py",
                 "qnnfab_overlay_map.py", "qnnfab_packing.py", "qnnfab_weights_image.py", "README.md"):
        assert (overlay / name).is_file(), name
    fm = json.loads((overlay / "network.json").read_text())
    # the config's input (8x8x3, 8-bit, the stem's simd 3) and its classifier fc (10 scores, pe 2)
    assert (fm["input_shape"], fm["input_kind"], fm["input_bits"], fm["in_simd"]) == ([8, 8, 3], "uint", 8, 3)
    assert (fm["out_elems"], fm["out_words"], fm["runtime_weights"]) == (2, 5, False)
    assert "module qnnfab_resnet_tiny_overlay(" in (overlay / "qnnfab_resnet_tiny_overlay.v").read_text()
    rc = main(["generate", "--config", str(TINY), "--no-report", "--weights-mode", "runtime",
               "--out", str(tmp_path / "rt")])
    capsys.readouterr()
    assert rc == 0
    fm = json.loads((tmp_path / "rt" / "overlay" / "network.json").read_text())
    assert fm["runtime_weights"] is True and fm["topology_hash"] == netconfig.load(TINY).topology_hash()
    rc = main(["pack-weights", "--config", str(TINY), "--out", str(tmp_path / "w.bin")])
    capsys.readouterr()
    assert rc == 0
    image = (tmp_path / "w.bin").read_bytes()
    assert (tmp_path / "rt" / "accel" / "weights.bin").read_bytes() == image
    # the header: magic "QNWI", version 1, the config's topology hash and the file's body length
    words = [int.from_bytes(image[k:k + 8], "little") for k in range(0, len(image), 8)]
    assert words[:2] == [0x49574E51 | (1 << 32), netconfig.load(TINY).topology_hash() | ((len(words) - 2) << 32)]
    # the groups, in layer order: a conv's weights and its 2 threshold stages (uint2: 3 thresholds), an add's
    # and the global pool's 2 threshold stages, the classifier's weights alone (acc)
    want = []
    for k, name in enumerate(("stem", "b1c1", "b1c2", "b1", "b2c1", "b2c2", "b2sc", "b2", "gap", "fc")):
        where = f"layer {k} {name!r}" + (" (mvtu)" if name not in ("b1", "b2", "gap", "fc") else "")
        want += [(where, "weights")] if name not in ("b1", "b2", "gap") else []
        want += [(where, "thresholds0"), (where, "thresholds1")] if name != "fc" else []
    plan = plan_of(netconfig.load(TINY), "runtime")
    assert [(g.layer, g.memory) for g in plan.groups] == want
    # consistency: the body is the plan's groups, nothing else
    assert len(words) == 2 + sum(g.words for g in plan.groups)


def test_fold_on_the_cost_model_folds_a_graph_and_the_folded_plan_builds(tmp_path):
    from qnnfab.cli import main

    out = tmp_path / "folded.toml"
    assert main(["fold", "--config", str(TINY), "--fastest", "--out", str(out)]) == 0
    cfg = netconfig.load(out)
    plan = plan_of(cfg)
    assert plan.slowest[1] < 1152                 # faster than the config as written
    adds = [s for s in plan.stages if s.kind == "add"]
    assert all(s.i.elems == s.layer.simd for s in adds)
    assert Dataflow(cfg).plan.stages == plan.stages


def test_fold_keeps_a_concats_simd_dividing_both_inputs_and_stops_at_its_word_a_cycle(tmp_path):
    """concat_tiny folded for speed: mix joins 4 and 2 channels, so its simd is at most 2 and it passes
    64 pixels x 3 words a frame, one a cycle: 192 cycles/frame, the bottleneck once every other layer is
    faster (`qnnfab sim` of this folding: 192.0 cycles/frame, every frame identical, README)."""
    from qnnfab.cli import main

    out = tmp_path / "folded.toml"
    assert main(["fold", "--config", str(CONCAT_TINY), "--fastest", "--out", str(out)]) == 0
    cfg = netconfig.load(out)
    plan = plan_of(cfg)
    s = _stages(plan)
    assert s["mix"].layer.simd == 2 and s["mix"].cycles == 64 * 3 == 192
    assert plan.slowest == ("mix", 192)
    for cat in (s["mix"], s["dense"]):
        assert all(shape[2] % cat.layer.simd == 0 for shape in cat.layer.in_shapes)
    from qnnfab.boards.estimate.fold import folding_steps
    # mix joins 4 and 2 channels, dense 4 and 4; a concat's pe is its simd (as the config loader sets it)
    assert [folding_steps(s[n].layer) for n in ("mix", "dense")] == [[(1, 1), (2, 2)], [(1, 1), (2, 2), (4, 4)]]
    assert Dataflow(cfg).plan.stages == plan.stages


@pytest.mark.parametrize("name", ["resnet_tiny", "resnet8_w2a2", "concat_tiny"])
def test_shipped_graph_configs_run_on_the_golden_model_with_sorted_thresholds(name):
    cfg = netconfig.load(ROOT / "configs" / f"{name}.toml")
    assert cfg.is_graph and cfg.layers[-1].out_shape == (10,)
    for L in cfg.layers:
        if L.thresholds is not None:
            assert np.all(np.diff(L.thresholds, axis=1) >= 0), L.name
    y = graph_forward(cfg, cfg.random_inputs(2, 0))
    assert y.shape == (2, 10)


def test_a_characterisation_over_its_cycle_limit_leaves_the_plan_depth():
    cfg = netconfig.load(TINY)
    # the long path of b1: 3 frames at 1,152 cycles, 64 quiet cycles for each of the fork's 128 words
    assert graph_skip_depths(cfg, limit=3 * 1152 + 64 * 128 - 1) == {}
    big = netconfig.load(ROOT / "configs" / "resnet8_w2a2.toml")
    assert graph_skip_depths(big) == {}          # 32x32 blocks: hours on Amaranth's simulator


def _taken_while_output_waits(plan, stage, k, rng):
    """Input words ``stage`` (built as the plan builds it) takes, input always offered, when its output
    word k is never taken (its output taken up to word k - 1)."""
    from qnnfab.rtl.dataflow import stage_component
    from qnnfab.sim.amaranth_stream import StreamSink, StreamSource, run_streams

    comp = stage_component(plan, stage)
    words = [rng.getrandbits(stage.i.width) for _ in range(2 * stage.i.words)]
    src, out = StreamSource(comp.i, words, name="i"), StreamSink(comp.o, name="o")

    def stop_after_k(ctx, cycle):
        if len(out.words) >= k:
            out.ready_prob = 0.0
    run_streams(comp, [src], [out], [k], max_cycles=50 * stage.i.words, extra_cycles=4 * stage.i.words,
                drivers=[stop_after_k])
    assert len(out.words) == k
    return len(src.sent_cycles)


def test_stage_capacities_bound_what_each_stage_takes_while_an_output_word_waits():
    """The capacities behind the never-binding skip depth are upper bounds of the real stages: a 3x3
    "same" convolution, a 3x3 stride-2 one, a 1x1 stride-2 one and a width converter of resnet_tiny,
    their output stopped at word k (first, inside and last word of a frame) with the input always
    offered. The figure is no lower than the need (the stage must take that much for word k)."""
    import random

    from qnnfab.fifo_sizing import chain_need
    from qnnfab.plan import _stage_need, stage_capacity

    plan = plan_of(netconfig.load(TINY))
    s = _stages(plan)
    rng = random.Random(4)
    for name in ("b1c1", "b2c1", "b2sc", "b2c1_dwc"):
        stage = s[name]
        cap, _ = stage_capacity(stage)
        need = chain_need(_stage_need(stage))
        for k in (0, stage.o.words // 2 + 1, stage.o.words - 1):
            taken = _taken_while_output_waits(plan, stage, k, rng)
            assert need[k] <= taken <= cap[k], (name, k, taken, cap[k])


def test_the_never_binding_skip_depth_is_the_plan_default_and_covers_the_characterised_one(tiny_depths):
    """resnet_tiny's identity shortcut: the plan's default depth is the never-binding one, at least the
    characterised least throughput-keeping depth (it counts all the long path can hold, not only
    what the bottleneck needs); an add's fifo_depth or skip_depths override it."""
    from qnnfab.plan import join_throughput_depths

    plan = plan_of(netconfig.load(TINY))
    s = _stages(plan)
    computed = join_throughput_depths(plan)
    assert set(computed) == {"b1_fifo1", "b2_fifo1"}
    assert s["b1_fifo1"].fifo_depth == computed["b1_fifo1"] >= tiny_depths["b1_fifo1"].throughput
    assert s["b2_fifo1"].fifo_depth == computed["b2_fifo1"]
    assert _stages(plan_of(netconfig.load(TINY), skip_depths={"b1_fifo1": 40}))["b1_fifo1"].fifo_depth == 40
    text = TINY.read_text().replace('name = "b1"\ntype = "add"', 'name = "b1"\ntype = "add"\nfifo_depth = 50')
    set_in_config = _stages(plan_of(netconfig.loads(text)))
    assert set_in_config["b1_fifo1"].fifo_depth == 50 and set_in_config["b1_fifo0"].fifo_depth == 50
    assert set_in_config["b2_fifo1"].fifo_depth == computed["b2_fifo1"]


def test_a_graph_is_never_split_into_per_stage_models():
    """The per-stage harness chains stage models output to input: a graph's Dataflow refuses
    stages_outside, and NetworkBench builds a graph as one model whatever it is asked."""
    from qnnfab.sim.compiled import NetworkBench

    cfg = netconfig.load(TINY)
    with pytest.raises(ValueError, match="chain"):
        Dataflow(cfg, stages_outside=True)
    assert NetworkBench(cfg, per_stage=True).per_stage is False


def test_compiled_engine_a_skip_fifo_below_the_smallest_found_loses_throughput_or_deadlocks_naming_the_stage():
    """MINI on the compiled engine (one model of the graph, its stage inputs watched). At the plan's
    computed depth it keeps the bottleneck's 144 cycles/frame and reports the most words res_fifo1
    held; at that many + 1 the run is the same cycle for cycle (the FIFO never refuses a word). The
    smallest depth keeping 144 (bench/bench_skip_depths.py's bisection: 5) keeps it, one word less
    loses throughput, and one word below the deadlock bound (4, by hand above) deadlocks: the engine
    stops the run and names, in one line, the FIFO input holding a word nobody takes."""
    from qnnfab.sim.compiled import CompiledDeadlock, NetworkBench, check_network, steady_cycles_per_frame

    cfg = netconfig.loads(MINI)
    x = cfg.random_inputs(8, 2)
    bottleneck = max(cfg.layer_cycles(L) for L in cfg.layers)
    assert bottleneck == 4 * 4 * 9 == 144          # the stem: 16 pixels, 9 window words each (pe = simd = 2 = ch)

    def run(depths):
        bench = NetworkBench(cfg, skip_depths=depths)
        r = bench.run(x)
        check_network(bench, x, r)
        return r, steady_cycles_per_frame(r, bench.format.out_words)

    computed = _stages(plan_of(cfg))["res_fifo1"].fifo_depth
    at_computed, per = run({})
    assert per == bottleneck
    held = at_computed.fifo_occupancy["res_fifo1"]
    assert 4 < held and held + 1 < computed       # so the next run is a different hardware
    at_held, _ = run({"res_fifo1": held + 1})
    np.testing.assert_array_equal(at_held.word_cycles, at_computed.word_cycles)
    # the least depths from the long path characterised alone on Amaranth's simulator
    characterised = graph_skip_depths(cfg)["res_fifo1"]
    assert characterised.deadlock == _stages(plan_of(cfg))["res_fifo1"].min_depth
    smallest = characterised.throughput
    assert run({"res_fifo1": smallest})[1] == bottleneck
    assert run({"res_fifo1": smallest - 1})[1] > bottleneck
    assert computed >= smallest
    with pytest.raises(CompiledDeadlock) as e:
        NetworkBench(cfg, skip_depths={"res_fifo1": characterised.deadlock - 1}).run(x)
    message = str(e.value)
    assert "\n" not in message
    assert re.search(r"deadlock: no progress for \d+ cycles: valid without ready \(holding a word nobody takes\) "
                     r"on [^;]*\bres_fifo1 input\b", message), message
    assert "c1 input" not in message.split(";")[0]  # the long path is starved, not stopped

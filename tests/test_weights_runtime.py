"""Runtime weights: the image layout, the packer, the loader and runtime-mode hardware (Amaranth's simulator).

The cycle-accurate regression of record is ``qnnfab sim weights_reload``
(cocotb on Verilator, every error code); these are the fast checks.
"""

from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.sim import Simulator

from qnnfab import netconfig
from qnnfab.cli import main
from qnnfab.errors import ConfigError
from qnnfab import weights_image as wi
from qnnfab.packing import unpack_fields
from qnnfab.plan import pack_image, plan_of
from qnnfab.rtl.dataflow import Dataflow
from qnnfab.sim.benches.network_tb import input_words
from qnnfab.sim.benches.weights_reload_tb import NETS, network
from qnnfab.golden.graph_network import graph_forward

ROOT = Path(__file__).resolve().parent.parent
LFC_SMALL = ROOT / "configs" / "lfc_small.toml"


def _verilog(cfg, mode):
    return verilog.convert(Dataflow(cfg, weights_mode=mode), name="top", emit_src=False)


def test_runtime_verilog_does_not_depend_on_the_weights_and_const_does():
    a, b = network({"net": "kbit"}, "A"), network({"net": "kbit"}, "B")
    assert not np.array_equal(a.layers[0].weights, b.layers[0].weights)
    assert _verilog(a, "runtime") == _verilog(b, "runtime")
    assert _verilog(a, "const") != _verilog(b, "const")


def _unpack_body(words, groups):
    """Independent reader of the documented layout: per group, PE lists of logical words."""
    pos = wi.HEADER_WORDS
    out = []
    for g in groups:
        per_pe = [[None] * g.depth for _ in range(g.pe)]
        for a in range(g.stored_depth):
            row = 0
            for k in range(g.row_words):            # most significant word first
                row = (row << 64) | words[pos]
                pos += 1
            for p in range(g.pe):
                for j in range(g.pack):
                    i = a * g.pack + j
                    bits = (row >> (p * g.pack * g.width + j * g.width)) & ((1 << g.width) - 1)
                    if i < g.depth:
                        per_pe[p][i] = bits
                    else:
                        assert bits == 0, "padding must be zero"
        out.append(per_pe)
    assert pos == len(words)
    return out


@pytest.mark.parametrize("net", ["kbit", "conv"])
def test_image_holds_every_weight_where_the_layout_says(net):
    cfg = network({"net": net}, "A")
    plan = plan_of(cfg, "runtime")
    words = plan.image_words()
    groups = plan.groups
    assert words[0] == wi.MAGIC | (wi.VERSION << 32)
    assert words[1] == cfg.topology_hash() | ((len(words) - 2) << 32)
    body = _unpack_body(words, groups)
    k = 0
    for L in cfg.layers:
        if L.type == "maxpool":
            continue
        g, mem = groups[k], body[k]
        assert g.memory == "weights"
        w = L.weights if L.type == "fc" else L.weights.transpose(0, 2, 3, 1).reshape(L.out, -1)
        mh, mw = w.shape
        sf, bits = mw // L.simd, g.width // L.simd
        for r in range(mh):                      # row r: PE r % PE, fold r // PE (ARCHITECTURE.md)
            for c in range(mw):
                word = mem[r % L.pe][(r // L.pe) * sf + c // L.simd]
                e = (word >> ((c % L.simd) * bits)) & ((1 << bits) - 1)
                assert e == int(w[r, c]) & ((1 << bits) - 1), (L.name, r, c)
        # threshold stage 0 of a 1-threshold (bipolar) layer holds T[r, 0]; stages follow
        stages = L.n_thresholds.bit_length() if L.act != "acc" else 0
        if stages == 1:
            t, tg = body[k + 1], groups[k + 1]
            for r in range(mh):
                v = t[r % L.pe][r // L.pe]
                if tg.signed and v >> (tg.width - 1):
                    v -= 1 << tg.width
                assert v == L.thresholds[r, 0], (L.name, r)
        k += 1 + stages
    assert k == len(groups)


def test_every_group_fills_more_than_half_of_its_words():
    for net in NETS:
        for g in plan_of(network({"net": net}, "A"), "runtime").groups:
            assert g.pack & (g.pack - 1) == 0
            used = g.pe * g.width * g.depth
            assert used * 2 > g.words * 64 or g.row_bits < 64, g


def _load_then_frames(cfg_loaded, cfg_build, image, frames=2):
    """Amaranth simulation: load ``image`` (or each image of a list in turn) into ``cfg_build``'s runtime
    hardware, stream frames; ``(each load's error, None where no load finished; outputs, golden outputs of
    cfg_loaded)``."""
    top = Dataflow(cfg_build, weights_mode="runtime")
    x = cfg_loaded.random_inputs(frames, 1)
    words = input_words(cfg_loaded, x)
    outs, errors = [], []
    images = image if isinstance(image[0], list) else [image]

    async def bench(ctx):
        for image in images:
            error = None
            for k, w in enumerate(image):
                ctx.set(top.wload.payload, {"data": w, "last": int(k == len(image) - 1)})
                ctx.set(top.wload.valid, 1)
                await ctx.tick()
                assert ctx.get(top.wload.ready)
                if ctx.get(top.wload_done):
                    error = ctx.get(top.wload_error)
            ctx.set(top.wload.valid, 0)
            for _ in range(2):
                await ctx.tick()
                if ctx.get(top.wload_done):
                    error = ctx.get(top.wload_error)
            errors.append(error)
        pos = 0
        ctx.set(top.o.ready, 1)
        for _ in range(20000):
            ctx.set(top.i.valid, int(pos < len(words)))
            if pos < len(words):
                ctx.set(Value.cast(top.i.payload), words[pos])
            fire = pos < len(words) and ctx.get(top.i.ready)
            if ctx.get(top.o.valid):
                outs.append(ctx.get(Value.cast(top.o.payload.data)))
            await ctx.tick()
            pos += int(bool(fire))
            if len(outs) >= frames * top.out_words:
                break

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    got = [e for w in outs for e in unpack_fields(w, [top.out_bits] * top.out_elems, signed=top.out_signed)]
    return errors, got, graph_forward(cfg_loaded, x).reshape(-1).tolist()


def test_kbit_network_loaded_at_run_time_matches_golden():
    """Groups of different row lengths (1 and 2 words) and signed multi-stage thresholds."""
    a, b = network({"net": "kbit"}, "A"), network({"net": "kbit"}, "B")
    errors, got, want = _load_then_frames(b, a, plan_of(b, "runtime").image_words())
    assert errors == [wi.WloadError.OK]
    assert got == want


def _signed(v, g):
    return v - (1 << g.width) if g.signed and v >> (g.width - 1) else v


def test_graph_image_holds_every_stage_where_the_layout_says():
    """The residual graph: groups in layer order, an add's and the global pool's thresholds (no weights)
    in their binary-search stages, at the width of their sum's range (widths from first principles)."""
    cfg = network({"net": "graph"}, "A")
    plan = plan_of(cfg, "runtime")
    words = plan.image_words()
    assert words[1] == cfg.topology_hash() | ((len(words) - 2) << 32)
    # every layer with 3 thresholds (uint2) has stages 0, 1; conv/fc weights first; fc has no thresholds
    want = []
    for k, L in enumerate(cfg.layers):
        where = f"layer {k} {L.name!r}" + (" (mvtu)" if L.type == "conv" else "")
        want += [(where, "weights")] if L.type in ("conv", "fc") else []
        want += [(where, "thresholds0"), (where, "thresholds1")] if L.type != "fc" else []
    assert [(g.layer, g.memory) for g in plan.groups] == want
    body = dict(zip([(g.layer, g.memory) for g in plan.groups], zip(plan.groups, _unpack_body(words, plan.groups))))
    by_name = {L.name: (k, L) for k, L in enumerate(cfg.layers)}
    # add of two uint2 streams: sums 0..6 in unsigned(3), values 0..7; a threshold holds 0..8: 4 bits.
    # global pool of uint2 over 2x2 pixels: sums 0..12 in unsigned(4), 0..15; thresholds 0..16: 5 bits
    for name, width, channels, pe in (("res1", 4, 2, 2), ("res2", 4, 4, 2), ("gap", 5, 4, 2)):
        k, L = by_name[name]
        t = np.clip(L.thresholds, 0, 1 << (width - 1))   # clamped to [0, the largest sum of the shape + 1]
        assert L.thresholds.shape == (channels, 3)
        g0, s0 = body[(f"layer {k} {name!r}", "thresholds0")]
        g1, s1 = body[(f"layer {k} {name!r}", "thresholds1")]
        assert (g0.pe, g0.width, g0.depth, g0.signed) == (pe, width, channels // pe, False)
        assert (g1.pe, g1.width, g1.depth) == (pe, width, 2 * channels // pe)
        for c in range(channels):                # channel c: PE c % pe, fold c // pe
            p, f = c % pe, c // pe
            assert _signed(s0[p][f], g0) == t[c, 1], (name, c)          # stage 0: the middle threshold
            assert _signed(s1[p][2 * f], g1) == t[c, 0], (name, c)      # stage 1, count < 2: the first
            assert _signed(s1[p][2 * f + 1], g1) == t[c, 2], (name, c)  # count >= 2: the last
    # a conv's weights in the graph as in a chain: row r on PE r % PE, fold r // PE
    k, L = by_name["sc2"]
    g, mem = body[(f"layer {k} 'sc2' (mvtu)", "weights")]
    w = L.weights.transpose(0, 2, 3, 1).reshape(L.out, -1)
    for r in range(w.shape[0]):
        for c in range(w.shape[1]):
            word = mem[r % L.pe][(r // L.pe) * (w.shape[1] // L.simd) + c // L.simd]
            assert (word >> (c % L.simd)) & 1 == w[r, c], (r, c)


def test_concat_graph_image_has_no_group_for_a_concat_and_every_other_layer_in_order():
    """A concat passes values unchanged: no memory of its own in the image; the layers around it keep
    theirs in config order (conv: weights, then the two threshold stages of uint2; pool: thresholds)."""
    cfg = network({"net": "concat"}, "A")
    plan = plan_of(cfg, "runtime")
    assert [L.type for L in cfg.layers].count("concat") == 2
    want = []
    for k, L in enumerate(cfg.layers):
        where = f"layer {k} {L.name!r}" + (" (mvtu)" if L.type == "conv" else "")
        want += [(where, "weights")] if L.type in ("conv", "fc") else []
        want += [(where, "thresholds0"), (where, "thresholds1")] if L.type in ("conv", "global_avgpool") else []
    assert [(g.layer, g.memory) for g in plan.groups] == want
    words = plan.image_words()
    assert len(words) == 2 + sum(g.words for g in plan.groups)


def test_graph_loaded_at_run_time_matches_golden_and_reloads_the_add_and_pool_thresholds():
    """A graph's runtime hardware loads A, then an image differing from A in the adds' and the global
    pool's thresholds only: the outputs follow the new thresholds (golden of that network, not A's)."""
    import copy

    a, b = network({"net": "graph"}, "A"), network({"net": "graph"}, "B")
    c = copy.deepcopy(a)
    for la, lb in zip(c.layers, b.layers):
        if la.type in ("add", "global_avgpool"):
            assert not np.array_equal(la.thresholds, lb.thresholds)
            la.thresholds = lb.thresholds
    images = [plan_of(a, "runtime").image_words(), plan_of(c, "runtime").image_words()]
    errors, got, want = _load_then_frames(c, a, images, frames=3)
    assert errors == [wi.WloadError.OK, wi.WloadError.OK]
    assert got == want
    x = c.random_inputs(3, 1)                    # the frames the helper streams
    assert graph_forward(c, x).reshape(-1).tolist() == want
    assert not np.array_equal(graph_forward(a, x), graph_forward(c, x)), \
        "the adds' and the pool's thresholds of B change nothing on these frames"


SIGNED_GRAPH = """
[network]
name = "signed-sum"
input_shape = [2, 2, 2]
input_kind = "int"
input_bits = 3
weights = "random"
seed = {seed}

[[layer]]
name = "gap"
type = "global_avgpool"
act = "uint2"

[[layer]]
name = "c0"
type = "conv"
kernel = 1
out = 2
act = "uint2"
pe = 2
simd = 2

[[layer]]
name = "c1"
type = "conv"
kernel = 1
out = 2
act = "uint2"
pe = 2
simd = 2

[[layer]]
name = "r"
type = "add"
input = ["c1", "c0"]
act = "bipolar"

[[layer]]
name = "fc"
type = "fc"
out = 2
act = "acc"
pe = 2
simd = 2
"""


def test_graph_with_a_signed_sum_and_a_bipolar_add_loads_at_run_time():
    """Edges of the graph stages' threshold groups: a global pool of int3 network inputs (a signed sum:
    signed threshold groups) and an add with one threshold (bipolar out: one stage); widths from first
    principles, contents where the layout says, and the loaded hardware matches the golden model."""
    a, b = (netconfig.loads(SIGNED_GRAPH.format(seed=s), ROOT / "configs") for s in (11, 12))
    plan = plan_of(b, "runtime")
    # gap: 4 pixels of int3 sum to [-16, 12], held by signed(5): [-16, 15]; a runtime threshold holds
    # [-16, 16]: signed 6 bits. r: uint2 + uint2 in [0, 6], unsigned(3): [0, 7]; thresholds [0, 8]: unsigned
    # 4 bits; N = 1: one stage
    got = {(g.layer, g.memory): (g.pe, g.width, g.depth, g.signed) for g in plan.groups
           if g.layer in ("layer 0 'gap'", "layer 3 'r'")}
    assert got == {("layer 0 'gap'", "thresholds0"): (2, 6, 1, True),
                   ("layer 0 'gap'", "thresholds1"): (2, 6, 2, True),
                   ("layer 3 'r'", "thresholds0"): (2, 4, 1, False)}
    words = plan.image_words()
    body = dict(zip([(g.layer, g.memory) for g in plan.groups], zip(plan.groups, _unpack_body(words, plan.groups))))
    t = np.clip(b.layers[0].thresholds, -16, 16)
    assert (t < 0).any(), "no negative threshold: the signed read is not exercised"
    (g0, s0), (g1, s1) = body[("layer 0 'gap'", "thresholds0")], body[("layer 0 'gap'", "thresholds1")]
    for c in range(2):                           # channel c on PE c, fold 0
        assert _signed(s0[c][0], g0) == t[c, 1]
        assert [_signed(s1[c][k], g1) for k in (0, 1)] == [t[c, 0], t[c, 2]]
    g, s = body[("layer 3 'r'", "thresholds0")]
    assert [s[c][0] for c in range(2)] == np.clip(b.layers[3].thresholds, 0, 8)[:, 0].tolist()
    errors, got, want = _load_then_frames(b, a, words, frames=3)
    assert errors == [wi.WloadError.OK]
    assert got == want


def test_image_of_another_topology_is_refused_by_the_hardware():
    a = network({"net": "kbit"}, "A")
    other = netconfig.loads(NETS["kbit"].replace("pe = 4\n", "pe = 8\n", 1), ROOT / "configs")
    assert other.topology_hash() != a.topology_hash()
    errors, _, _ = _load_then_frames(a, a, plan_of(other, "runtime").image_words(), frames=1)
    assert errors == [wi.WloadError.WRONG_NETWORK]


def test_error_codes_are_distinct_and_fit_the_port():
    codes = [e.value for e in wi.WloadError]
    assert len(set(codes)) == len(codes) and wi.WloadError.OK == 0
    assert max(codes) < 1 << wi.ERROR_BITS


def test_check_image_names_what_is_wrong():
    cfg = netconfig.load(LFC_SMALL)
    data = pack_image(cfg)
    n = wi.check_image(data, cfg.topology_hash())
    assert len(data) == 8 * (n + wi.HEADER_WORDS)
    with pytest.raises(ConfigError, match="another network"):
        wi.check_image(data, cfg.topology_hash() ^ 1)
    with pytest.raises(ConfigError, match="truncated"):
        wi.check_image(data[:-8], cfg.topology_hash())
    with pytest.raises(ConfigError, match="not a qnnfab weights image"):
        wi.check_image(b"\0" * 16 + data[16:], cfg.topology_hash())
    with pytest.raises(ConfigError, match="header"):
        wi.check_image(data[:9], cfg.topology_hash())


def test_weights_mode_in_the_config(tmp_path):
    text = LFC_SMALL.read_text().replace("[network]", '[network]\nweights_mode = "runtime"')
    cfg = netconfig.loads(text, ROOT / "configs")
    assert cfg.weights_mode == "runtime"
    assert netconfig.loads(netconfig.dumps(cfg), ROOT / "configs").weights_mode == "runtime"
    assert netconfig.load(LFC_SMALL).weights_mode == "const"
    with pytest.raises(ConfigError, match="weights_mode"):
        netconfig.loads(text.replace('"runtime"', '"ram"'), ROOT / "configs")


def test_pack_weights_command(tmp_path, capsys):
    out = tmp_path / "w.bin"
    assert main(["pack-weights", "--config", str(LFC_SMALL), "--out", str(out)]) == 0
    cfg = netconfig.load(LFC_SMALL)
    assert out.read_bytes() == pack_image(cfg)
    assert f"{cfg.topology_hash():#010x}" in capsys.readouterr().out
    rc = main(["pack-weights", "--config", str(LFC_SMALL), "--out", str(tmp_path / "no" / "w.bin")])
    assert rc == 2
    assert "--out" in capsys.readouterr().err


def test_driver_checks_the_image_header_on_a_board_without_qnnfab(tmp_path):
    import subprocess
    import sys
    from qnnfab.boards.emit.overlay import driver_files
    cfg = netconfig.load(LFC_SMALL)
    for fname, body in driver_files(cfg).items():
        (tmp_path / fname).write_text(body)
    data = pack_image(cfg)
    (tmp_path / "good.bin").write_bytes(data)
    bad = bytearray(data)
    bad[9] ^= 0x40                                   # a bit of the topology hash
    (tmp_path / "other.bin").write_bytes(bytes(bad))
    code = ("import sys; sys.modules['qnnfab'] = None\n"
            "import json, driver\n"
            "fm = driver.om.Formats.from_dict(json.load(open('network.json')))\n"
            "print(driver.wi.check_image(open('good.bin', 'rb').read(), fm.topology_hash))\n"
            "try:\n"
            "    driver.wi.check_image(open('other.bin', 'rb').read(), fm.topology_hash)\n"
            "except ValueError as e:\n"
            "    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(len(data) // 8 - wi.HEADER_WORDS)
    assert lines[1].startswith("refused:") and "another network" in lines[1]

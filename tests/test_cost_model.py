"""The resource cost model (qnnfab.boards.estimate.cost) against Yosys figures measured on today's RTL.

The figures below were measured with ``qnnfab report`` / ``bench/bench_cost_model.py``
(Yosys synth_xilinx -family xc7; LUT = logic + LUT-RAM, each layer with the
FIFO and width converter in front of it). No Yosys runs here: the test pins
the model to those points so a change of the RTL or of the model that moves
them beyond 15% is seen. The small configs' points and lfc_w1a1_fast's were
used to calibrate some constants; lfc_w1a1's were not.
"""

from pathlib import Path

import pytest

from qnnfab import netconfig
from qnnfab.boards.estimate.cost import (estimate, estimate_layer, estimate_layers, lut_rom_lut, ram_mapping,
                                rom_mapping, weight_memory_mapping, width_converter_lut)

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.15

# (config, layer): (Yosys LUT incl. LUT-RAM, Yosys BRAM36)
MEASURED = {
    ("lfc_small", "fc0"): (579, 0), ("lfc_small", "fc1"): (648, 0),
    ("lfc_small", "fc2"): (583, 0), ("lfc_small", "fc_out"): (165, 0),
    ("cnv_small", "conv0"): (1291, 0), ("cnv_small", "conv1"): (894, 0),     # KR-row line buffers
    ("cnv_small", "pool0"): (140, 0), ("cnv_small", "conv2"): (827, 0),
    ("cnv_small", "fc0"): (2786, 0), ("cnv_small", "fc_out"): (181, 0),
    ("lfc_w1a1", "fc0"): (3624, 32), ("lfc_w1a1", "fc1"): (4175, 32),
    ("lfc_w1a1", "fc2"): (3722, 32), ("lfc_w1a1", "fc_out"): (1236, 0),
    # (windows with KR line-buffer rows, qnnfab.folding.window_buffer_rows)
    ("cnv_w1a1", "conv0"): (1443, 0.5), ("cnv_w1a1", "conv1"): (4492, 0.5),
    ("cnv_w1a1", "pool0"): (183, 0.5), ("cnv_w1a1", "conv2"): (5817, 0.5),
    ("cnv_w1a1", "conv3"): (1357, 9), ("cnv_w1a1", "pool1"): (153, 0.5),
    ("cnv_w1a1", "conv4"): (865, 11), ("cnv_w1a1", "conv5"): (466, 17),
    ("cnv_w1a1", "fc0"): (147, 4), ("cnv_w1a1", "fc1"): (233, 7.5), ("cnv_w1a1", "fc_out"): (583, 0),
    # cnv_w1a1_fast at 3,600 cycles/frame, pipeline "max" (several kernel positions per word in conv0-conv2)
    ("cnv_w1a1_fast", "conv0"): (5849, 4.5), ("cnv_w1a1_fast", "conv1"): (12324, 9),
    ("cnv_w1a1_fast", "pool0"): (160, 0.5), ("cnv_w1a1_fast", "conv2"): (8724, 3),
    ("cnv_w1a1_fast", "conv3"): (13564, 0), ("cnv_w1a1_fast", "pool1"): (220, 0.5),
    ("cnv_w1a1_fast", "conv4"): (2394, 16), ("cnv_w1a1_fast", "conv5"): (1786, 18),
    ("cnv_w1a1_fast", "fc0"): (283, 4), ("cnv_w1a1_fast", "fc1"): (460, 8),
    ("cnv_w1a1_fast", "fc_out"): (495, 0),
    # at pipeline "max", fc0/fc2 weights in block RAM, fc1's in LUT ROMs (synthesized one at a time)
    ("lfc_w1a1_fast", "fc0"): (6705, 64), ("lfc_w1a1_fast", "fc1"): (23264, 0),
    ("lfc_w1a1_fast", "fc2"): (6858, 64), ("lfc_w1a1_fast", "fc_out"): (1312, 0),
    # channel concatenations with their FIFOs and width converters (`qnnfab report --config
    # configs/concat_tiny.toml`: mix 40 LUT + 12 LUT-RAM, dense 89 + 16)
    ("concat_tiny", "mix"): (52, 0), ("concat_tiny", "dense"): (105, 0),
}


# Known miss: cnv_w1a1 fc1 (PE 1, SIMD 8, 32,768 x 8-bit weights): Yosys uses 7.5
# RAMB36 (the model's cheapest single shape: 8) and about 70 LUT more than the
# model (233 against 161); which block-RAM layout it chose is not modelled.
KNOWN_LUT_MISSES = {("cnv_w1a1", "fc1")}


def _rows(name):
    return dict(estimate_layers(netconfig.load(ROOT / "configs" / f"{name}.toml")))


@pytest.mark.parametrize("name", sorted({n for n, _ in MEASURED}))
def test_every_layer_within_15_percent_of_yosys(name):
    rows = _rows(name)
    for (cfg, layer), (lut, bram) in MEASURED.items():
        if cfg != name:
            continue
        r = rows[layer]
        within = abs((r.lut + r.lutram) / lut - 1) <= TOLERANCE
        assert within != ((cfg, layer) in KNOWN_LUT_MISSES), (layer, r, lut)
        assert r.bram36 == pytest.approx(bram, rel=TOLERANCE, abs=0), (layer, r, bram)


# resnet_tiny's adds and global pool with runtime thresholds, Yosys FF (README: `qnnfab report --config
# configs/resnet_tiny.toml --weights-mode runtime`)
RUNTIME_SUM_STAGE_FF = {"b1": 127, "b2": 247, "gap": 480}


def test_runtime_thresholds_of_adds_and_pools_are_priced_as_the_flip_flops_yosys_builds():
    cfg = netconfig.load(ROOT / "configs" / "resnet_tiny.toml")
    const = {L.name: estimate_layer(L) for L in cfg.layers}
    runtime = {L.name: estimate_layer(L, runtime=True) for L in cfg.layers}
    for name, ff in RUNTIME_SUM_STAGE_FF.items():
        assert runtime[name].ff == pytest.approx(ff, rel=TOLERANCE), name
        assert runtime[name].lut > const[name].lut, name
    # b1: 2 lanes, 3 thresholds on a sum of two uint2 (0..6, unsigned(3)), at run time any of 0..8: 4 bits;
    # stage 0 holds one a fold, stage 1 two, over 4 / 2 = 2 folds: 6 a lane, 48 bits, each stored and read out
    assert runtime["b1"].ff - const["b1"].ff == 2 * 48


def test_total_is_the_sum_of_the_layers():
    cfg = netconfig.load(ROOT / "configs" / "cnv_w1a1.toml")
    rows = estimate_layers(cfg)
    t = estimate(cfg)
    assert t.lut == sum(r.lut for _, r in rows) and t.bram36 == sum(r.bram36 for _, r in rows)


@pytest.mark.parametrize("depth, width, mapping", [
    # Yosys memory_libmap: a ROM is logic when bits/64 <= the cheapest block RAM
    # cost (129 per RAMB18, 257 per RAMB36), as measured:
    (208, 64, ("logic", 256)),    # lfc_w1a1_fast fc0: 13 kbit -> logic (a ROM alone: 256 LUT6)
    (256, 64, ("logic", 256)),    # lfc_w1a1_fast fc1/fc2 (16 kbit: 256 <= 257)
    (416, 64, ("bram", 1.0)),     # lfc_w1a1 fc0: 32 PEs -> 32 RAMB36
    (512, 32, ("bram", 0.5)),     # lfc_w1a1 fc1: 64 PEs -> 64 RAMB18
    (2304, 32, ("bram", 2.5)),    # cnv_w1a1 conv4: 4 PEs -> 20 RAMB18 (+1 line buffer)
    (64, 64, ("logic", 64)),      # a 64 x 64 ROM alone: 64 LUT6
    (16, 64, ("logic", 64)),
])
def test_rom_mapping_follows_yosys(depth, width, mapping):
    assert rom_mapping(depth, width) == mapping


@pytest.mark.parametrize("depth, width, mapping", [
    (3, 16, ("lutram", 12)),      # a depth-2 StreamFIFO of 16 bits: 3 RAM32M
    (8, 16, ("lutram", 12)),      # lfc_small fc0's input double buffer
    (48, 16, ("lutram", 24)),     # 48 x 16 line buffer: 6 RAM64M
])
def test_ram_mapping_follows_yosys(depth, width, mapping):
    assert ram_mapping(depth, width) == mapping


def test_weight_memory_styles_map_as_the_rtl_builds_them():
    # "block": the cheapest block-RAM shape whatever the size (208 x 64: one RAMB36 in 512 x 72)
    assert weight_memory_mapping(208, 64, "block") == ("bram", 1.0)
    assert weight_memory_mapping(256, 64, "auto") == ("logic", 256)        # Yosys' own choice
    assert weight_memory_mapping(256, 64, "block", runtime=True) == ("bram", 1.0)
    # const "distributed": a LUT ROM, per bit one LUT6 per 64 words; a 1024-word
    # column adds one LUT6 selecting among its four 256-word quarters (MUXF7/F8 inside them)
    assert weight_memory_mapping(256, 64, "distributed") == ("lutrom", lut_rom_lut(256, 64))
    assert lut_rom_lut(256, 64) == pytest.approx(64 * 4 * 1.14)
    assert lut_rom_lut(64, 1) == pytest.approx(1.14) and lut_rom_lut(1024, 1) == pytest.approx(17 * 1.14)
    # runtime "distributed": LUT-RAM, 64 x 3 per RAM64M (4 LUT) and a read multiplexer
    # between the 64-word banks: 256 x 6 -> 4 banks x 2 cells x 4 LUT + 6 x 1
    assert weight_memory_mapping(256, 6, "distributed", runtime=True) == ("lutram", 32 + 6)


def test_width_converter_grows_with_its_buffer():
    assert width_converter_lut(1, 4, 1) < width_converter_lut(16, 32, 1) < width_converter_lut(32, 128, 1)
    assert width_converter_lut(16, 32, 2) > width_converter_lut(16, 32, 1)


def test_lfc_w1a1_fast_fits_with_its_memory_styles():
    # fc0 and fc2 in block RAM (one RAMB36 per PE: 64 x 2), fc1 in LUT ROMs
    from qnnfab.boards.targets import XC7Z020
    cfg = netconfig.load(ROOT / "configs" / "lfc_w1a1_fast.toml")
    rows = dict(estimate_layers(cfg))
    assert rows["fc0"].bram36 == rows["fc2"].bram36 == 64 and rows["fc1"].bram36 == 0
    t = estimate(cfg)
    assert t.lut + t.lutram <= XC7Z020.lut and t.bram36 <= XC7Z020.bram36
    # the same folding with every weight memory left to Yosys: its shallow ROMs become logic
    for L in cfg.layers:
        L.weight_memory = "auto"
    t = estimate(cfg)
    assert t.bram36 == 0 and t.lut + t.lutram > 2.5 * XC7Z020.lut


def test_accumulator_reset_is_priced_below_mux_and_within_tolerance_of_yosys():
    """lfc_w1a1_fast with accumulator = "reset": fc0 measured by `qnnfab report` at 6,104 LUT (6,705 with "mux")."""
    text = (ROOT / "configs" / "lfc_w1a1_fast.toml").read_text()
    reset = text.replace('pipeline = "max"\n', 'pipeline = "max"\naccumulator = "reset"\n', 1)
    assert reset != text
    mux_rows = _rows("lfc_w1a1_fast")
    reset_rows = dict(estimate_layers(netconfig.loads(reset, source=str(ROOT / "configs" / "x.toml"))))
    for name in ("fc0", "fc1", "fc2", "fc_out"):
        assert reset_rows[name].lut < mux_rows[name].lut, name
    model = reset_rows["fc0"].lut + reset_rows["fc0"].lutram
    assert abs(model - 6104) <= TOLERANCE * 6104, model


@pytest.mark.parametrize("simd", [1, 7, 32, 64])
def test_compressor_lanes_cost_the_lut6_2_cells_the_rtl_instantiates(simd):
    import re

    from qnnfab.boards.estimate.cost import compressor_lane_lut
    from qnnfab.rtl.compressor_popcount import CompressorPopcount
    from qnnfab.sim.build import to_verilog
    cells = len(re.findall(r"^  LUT6_2 #", to_verilog(CompressorPopcount(simd), "top"), re.M))
    assert compressor_lane_lut(simd) * simd == pytest.approx(cells)


def test_the_popcount_option_changes_only_the_binary_layers_estimate():
    text = (ROOT / "configs" / "cnv_small.toml").read_text()
    plain = netconfig.loads(text)
    compressor = netconfig.loads(text.replace("[network]\n", '[network]\npopcount = "compressor"\n'))
    before, after = estimate_layers(plain), estimate_layers(compressor)
    for L, b, a in zip(plain.layers, before, after):
        binary = L.type in ("fc", "conv") and L.weight_kind == "bipolar" and L.in_kind == "bipolar"
        assert (a[1].lut < b[1].lut) if binary else (a[1].lut == b[1].lut), L.name

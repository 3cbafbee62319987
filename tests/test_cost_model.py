"""The resource cost model (qnnfab.boards.cost) against Yosys figures measured on today's RTL.

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
from qnnfab.boards.cost import estimate, estimate_layers, ram_mapping, rom_mapping

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.15

# (config, layer): (Yosys LUT incl. LUT-RAM, Yosys BRAM36)
MEASURED = {
    ("lfc_small", "fc0"): (579, 0), ("lfc_small", "fc1"): (648, 0),
    ("lfc_small", "fc2"): (583, 0), ("lfc_small", "fc_out"): (165, 0),
    ("cnv_small", "conv0"): (1242, 0), ("cnv_small", "conv1"): (851, 0),
    ("cnv_small", "pool0"): (126, 0), ("cnv_small", "conv2"): (838, 0),
    ("cnv_small", "fc0"): (2786, 0), ("cnv_small", "fc_out"): (181, 0),
    ("lfc_w1a1", "fc0"): (3624, 32), ("lfc_w1a1", "fc1"): (4175, 32),
    ("lfc_w1a1", "fc2"): (3722, 32), ("lfc_w1a1", "fc_out"): (1236, 0),
    # `qnnfab report --config configs/lfc_w1a1_fast.toml` as issue 16 quotes it (LUT column)
    ("lfc_w1a1_fast", "fc0"): (49040, 0), ("lfc_w1a1_fast", "fc1"): (57721, 0),
    ("lfc_w1a1_fast", "fc2"): (57824, 0),
}


def _rows(name):
    return dict(estimate_layers(netconfig.load(ROOT / "configs" / f"{name}.toml")))


@pytest.mark.parametrize("name", sorted({n for n, _ in MEASURED}))
def test_every_layer_within_15_percent_of_yosys(name):
    rows = _rows(name)
    for (cfg, layer), (lut, bram) in MEASURED.items():
        if cfg != name:
            continue
        r = rows[layer]
        assert abs((r.lut + r.lutram) / lut - 1) <= TOLERANCE, (layer, r, lut)
        assert r.bram36 == pytest.approx(bram, rel=TOLERANCE, abs=0), (layer, r, bram)


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


def test_fast_lfc_weights_in_logic_do_not_fit_the_xc7z020():
    # lfc_w1a1_fast (PE = SIMD = 64): every weight ROM is shallow, so Yosys makes
    # them logic; the model must see the overflow (Yosys: over 160k LUT)
    from qnnfab.boards import XC7Z020
    cfg = netconfig.load(ROOT / "configs" / "lfc_w1a1_fast.toml")
    t = estimate(cfg)
    assert t.bram36 == 0
    assert t.lut + t.lutram > 2.5 * XC7Z020.lut

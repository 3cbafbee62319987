"""Resource cost model of the dataflow stages, calibrated on Yosys ``synth_xilinx -family xc7``.

One definition of what a layer costs, used by the auto-folder
(:mod:`qnnfab.boards.estimate.fold`), the fit check of ``qnnfab generate`` before any
Yosys run, and ``bench/bench_cost_model.py`` (which prints it beside Yosys).
Each stage is counted the way the RTL builds it and the way Yosys maps it:

* **Memories** follow Yosys' own choice (``memory_libmap`` in ``synth_xilinx``):
  a read-only memory (weights, thresholds) costs ``bits / 64`` as logic
  (``-logic-cost-rom 0.015625``) against 129 per RAMB18 and 257 per RAMB36 in
  their simple-dual-port shapes (512 x 36 .. 16K x 1, 512 x 72 .. 32K x 1), and
  becomes whichever is cheaper. So a ROM fills block RAM only when it would use
  about half of it or more: a 208 x 64 weight memory (13 kbit) becomes logic.
  A ROM in logic costs ``ceil(depth / 64)`` LUT6 per output bit alone (measured:
  64 x 64 -> 64 LUT, 208 x 64 -> 256), but inside an MVTU, where ABC merges it
  with the XNORs and the popcount, it costs far more:
  :data:`ROM_BIT_LUT_IN_MVTU` LUTs per bit of the weight word, by depth.
  Writable memories (input double buffers, line buffers, FIFOs) go to LUT-RAM
  (RAM32M: 32 x 6, RAM64M: 64 x 3, 4 LUTs each; 128 deep: 2 banks) or, when
  that costs more than block RAM (8 per LUT-RAM cell against 129 per RAMB18),
  to block RAM. A block-RAM memory deeper than one block adds its output
  multiplexer (a LUT per bit per 4 banks).
* **Datapath**: a bipolar x bipolar lane (XNOR + share of the popcount tree)
  :data:`BINARY_LANE_LUT` (``bench/bench_xnor_popcount.py`` measures 1.44);
  other lanes :data:`BIT_LANE_LUT` per activation bit times weight bit;
  at ``pipeline = "max"`` times :data:`PIPELINED_BINARY_LANE` /
  :data:`PIPELINED_BIT_LANE`.
* **Per PE**: accumulator (adder + clear multiplexer) and one comparator per
  threshold stage, :data:`ACC_BIT_LUT` per accumulator bit each; with
  ``accumulator = "reset"`` :data:`RESET_SAVED_ACC_BIT_LUT` less per bit (no
  clear multiplexer: the adder bits above a word's dot product need no LUT).
* **Fixed** control per stage (counters, handshakes), measured.

Figures are estimates: ``qnnfab report`` measures the design with Yosys, and
``bench/bench_cost_model.py`` prints both with the error per layer.
"""

import math

from qnnfab.folding import layer_cycles, window_buffer_rows
from qnnfab.kinds import DataKind, accumulator_range, range_bits
from qnnfab.netconfig import PIPELINE_MAX, sum_range
from qnnfab.plan import plan_of, sum_threshold_memories
from qnnfab.rtl.compressor_popcount import compressor_levels
from qnnfab.rtl.sliding_window import BLOCK_RAM_COPY_BITS

from .yosys import Resources

__all__ = ["estimate_layer", "estimate_layers", "estimate", "rom_mapping", "ram_mapping", "rom_bit_lut_in_mvtu",
           "weight_memory_mapping", "lut_rom_lut", "compressor_lane_lut"]

BINARY_LANE_LUT = 1.44      # XNOR + popcount share per bipolar lane
BIT_LANE_LUT = 2.0          # per activation bit x weight bit of a k-bit lane (cnv conv0: 8-bit pixels)
# the lane figures above at pipeline = "max" (a register after every adder level:
# ABC maps the short stages into fewer LUTs), fitted on cnv_w1a1_fast and
# lfc_w1a1_fast: k-bit lanes (conv0) 0.70x, binary lanes 0.84x (conv1, SIMD 576)
# to 0.94x (SIMD 64-192)
PIPELINED_BINARY_LANE = 0.92
PIPELINED_BIT_LANE = 0.75
ACC_BIT_LUT = 1.0           # per PE and accumulator bit (adder, clear, threshold compare)
EXTRA_STAGE_ACC_BIT_LUT = 0.5  # per further threshold-search stage (k-bit activations)
# accumulator = "reset": LUTs saved per PE and accumulator bit. Fitted on lfc_w1a1_fast's fc0 by
# `qnnfab report` (PE = SIMD = 64, 10-bit accumulators, one threshold, pipeline "max": 6,705 -> 6,104 LUT,
# 0.94 per bit; ABC also maps the threshold compare behind the accumulator smaller); the datapath alone
# saves less (bench/bench_mvtu.py, PE = SIMD = 32, 11 bits, no thresholds: 46 -> 42 LUT per PE, 0.36)
RESET_SAVED_ACC_BIT_LUT = 0.9
# LUTs per stored bit of a PE's weight word (SIMD * weight bits) when the weight
# ROM is logic inside an MVTU, by ROM depth NF*SF, for 256 ROM columns sharing
# the address (PE * SIMD * weight bits). ABC merges ROM, XNOR and popcount, far
# above the ceil(depth/64) LUT6 of the same ROM alone. Measured with Yosys on
# today's RTL: depth 16, 64, 208, 256: MVTUs with PE=4, SIMD=64 (716, 1,743,
# 3,943, 4,663 LUT); 32: lfc_small fc0/fc1; 256 also cnv_small fc0 (128 columns).
# Linear between points, proportional to the depth below 16 and above 256.
# Below 16 words the ROM merges into the XNOR LUTs it feeds (cnv_w1a1_fast conv1:
# 9 words, about 0.1 LUT per bit), hence the point (8, 0).
ROM_BIT_LUT_IN_MVTU = ((8, 0.0), (16, 1.0), (32, 2.04), (64, 5.1), (208, 13.7), (256, 17.0))
# More columns on one address share more of the decoding: the cost per bit
# scales as (columns / 256) ** -ROM_SHARING_EXPONENT, fitted on lfc_w1a1_fast
# (4,096 columns: fc0 49,040 LUT at depth 208, fc1 57,721 at 256; 0.745x the
# 256-column figures at both depths) and cnv_small fc0 (128 columns, 1.07x).
ROM_SHARING_EXPONENT = 0.106
# With few columns the sharing stops mattering: a deep single-column ROM costs
# about 1.33x the 256-column figure per bit (cnv_w1a1's fc_out, 5 x 1024 x 1 bit,
# and cnv_w1a1_fast's, 5120 x 1 bit; the plain ROM's LUT6 times 1.3), not the
# exponent's 1.5-1.8x.
ROM_SHARING_MAX = 1.33
# A LUT ROM's LUTs (const weight_memory = "distributed") relative to the plain ROM
# alone, measured: 4 PE x 256 x 64 bits, MVTU 1,661 LUT against 491 with the
# weights in block RAM (1,170 for 1,024 LUT6 of ROM).
LUT_ROM_IN_MVTU = 1.14
THRESHOLD_ROM_BIT_LUT = 0.5  # per threshold bit and further 64 words (cnv_w1a1 fc0, conv5: NF = 512)
MVTU_FIXED_LUT = 40         # counters, double-buffer and output handshake
RAW_MVTU_FIXED_LUT = 10     # the same without a threshold stage
WINDOW_FIXED_LUT = 140      # sliding-window address generation
# max pool: line-buffer addressing, window and output counters (a fixed part),
# more with the line buffer in block RAM (its synchronous read: enable and
# address hold logic), one comparator per lane bit; fitted on the pools of
# cnv_small (LUT-RAM: 106 LUT), cnv_w1a1 and cnv_w1a1_fast (block RAM, 2 to 32
# lanes: 129 to 147 LUT)
POOL_FIXED_LUT = 85
POOL_BRAM_LUT = 40
POOL_LANE_BIT_LUT = 0.7
FIFO_FIXED_LUT = 8      # a depth-2 FIFO (stream handshakes, level)
FIFO_DEPTH_LUT = 3      # per doubling of the depth beyond 2 (pointers and level compare)
FORK_OUTPUT_LUT = 2     # a stream fork, per output (its outstanding bit and the input ready)
# a channel concatenation (rtl/channel_concat.py): its output register's input multiplexer, one LUT a bit,
# and its handshake, turn and word count; Yosys on 6 foldings (2 to 8 words a pixel, 4 to 32 bits a word):
# LUT = bits + 5 .. 8, FF = bits + 2 + the count's bits
CONCAT_BIT_LUT = 1
CONCAT_FIXED_LUT = 6
SUM_STAGE_FIXED_LUT = 10   # an add's or global pool's handshake and counters (not calibrated on Yosys)
# per stored bit of an add's or global pool's one-word runtime threshold RAMs (flip-flops): their write enables
# and word selects; fitted on resnet_tiny's b1, b2, gap (Yosys, runtime minus const: 18, 39, 81 LUT on 48, 96,
# 168 bits; FF 90, 181, 331, the model's 96, 192, 336)
RUNTIME_SUM_THRESHOLD_BIT_LUT = 0.45
# width converter (rtl/width_converter.py): a buffer of in + out elements, each
# bit a shift / hold / write multiplexer, and its element count (compare and add)
WIDTH_CONVERTER_BIT_LUT = 0.9
WIDTH_CONVERTER_COUNT_LUT = 11.5   # per bit of the element count
WIDTH_CONVERTER_FIXED_LUT = -20    # fitted intercept (12 converters of cnv_w1a1 and cnv_w1a1_fast)


def width_converter_lut(in_elems, out_elems, bits):
    """LUTs of a width converter between ``in_elems`` and ``out_elems`` elements of ``bits``."""
    cap = in_elems + out_elems
    return max(5.0, WIDTH_CONVERTER_BIT_LUT * cap * bits + WIDTH_CONVERTER_COUNT_LUT * math.log2(cap)
               + WIDTH_CONVERTER_FIXED_LUT)
WINDOW_LANE_LUT = 16        # per kernel position of a word (SIMD = m * C): address and written checks
                            # (bench_sliding_window: CNV conv0 at m = 9, 297 LUT)

# Yosys memory_libmap costs (techlibs/xilinx/brams_xc4v.txt, lutrams_xc5v.txt, synth_xilinx)
_ROM_LOGIC_COST_PER_BIT = 1 / 64
_RAMB18 = (129, [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)])
_RAMB36 = (257, [(32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72)])
_LUTRAM_CELL_COST = 8


def _bram(depth, width):
    """(cost, RAMB36 equivalents, banks in depth) of the cheapest block-RAM shape for depth x width."""
    best = None
    for (cost, shapes), tile in ((_RAMB18, 0.5), (_RAMB36, 1.0)):
        for d, w in shapes:
            banks = math.ceil(depth / d)
            n = math.ceil(width / w) * banks
            if best is None or n * cost < best[0]:
                best = (n * cost, n * tile, banks)
    return best


def memory_bram36(depth, width):
    """RAMB36 equivalents of a depth x width block-RAM memory as Yosys maps it."""
    return _bram(depth, width)[1]


def bram_read_mux_lut(depth, width):
    """LUTs of the output multiplexer of a block-RAM memory deeper than one block
    (banks in depth; a LUT6 selects among 4): 0 for a single bank."""
    banks = _bram(depth, width)[2]
    return 0 if banks == 1 else width * math.ceil(banks / 4)


def rom_mapping(depth, width):
    """How Yosys maps a read-only depth x width memory: ``("logic", LUT6 of the plain ROM)``
    or ``("bram", RAMB36 equivalents)``."""
    cost, n36, _ = _bram(depth, width)
    if depth * width * _ROM_LOGIC_COST_PER_BIT <= cost:
        return "logic", width * math.ceil(depth / 64)
    return "bram", n36


def rom_bit_lut_in_mvtu(depth, columns=256):
    """LUTs per weight-word bit of a logic weight ROM of ``depth`` words inside an
    MVTU whose ROMs have ``columns`` bits in all (PE * SIMD * weight bits)."""
    return _rom_bit_lut_256(depth) * min(ROM_SHARING_MAX, (columns / 256) ** -ROM_SHARING_EXPONENT)


def _rom_bit_lut_256(depth):
    pts = ROM_BIT_LUT_IN_MVTU
    if depth <= pts[0][0]:
        return pts[0][1]
    for (d0, g0), (d1, g1) in zip(pts, pts[1:]):
        if depth <= d1:
            return g0 + (g1 - g0) * (depth - d0) / (d1 - d0)
    d1, g1 = pts[-1]
    return g1 * depth / d1  # as the plain ROM's LUT6 count (not measured above 256)


def lut_rom_lut(depth, width):
    """LUTs of a LUT ROM (``weight_memory = "distributed"`` with const weights,
    :func:`qnnfab.rtl.loadable_memory._lut_rom`): per bit, one LUT6 per 64 words
    (MUXF7/F8 join four of them) and a LUT per further 4:1 selection, times
    :data:`LUT_ROM_IN_MVTU` (ABC's mapping beside the XNORs it feeds)."""
    luts = math.ceil(depth / 64)
    blocks = math.ceil(depth / 256)
    while blocks > 1:  # 4:1 LUT multiplexers between 256-word blocks
        luts += math.ceil(blocks / 4)
        blocks = math.ceil(blocks / 4)
    return width * luts * LUT_ROM_IN_MVTU


def weight_memory_mapping(depth, width, style="auto", runtime=False):
    """How one PE weight memory of depth x width is built for ``style``
    (``qnnfab.netconfig.MEMORY_STYLES``): ``("bram", RAMB36)``, ``("lutram", LUTs)``,
    ``("lutrom", LUTs)`` (const "distributed") or ``("logic", LUT6)`` (Yosys' ROM in
    logic, priced inside the MVTU by :func:`rom_bit_lut_in_mvtu`)."""
    if style == "block":
        return "bram", _bram(depth, width)[1]
    if style == "distributed":
        if runtime:
            return "lutram", 4 * _lutram_cells(depth, width) + lutram_read_mux_lut(depth, width)
        return "lutrom", lut_rom_lut(depth, width)
    return (ram_mapping if runtime else rom_mapping)(depth, width)


def lutram_read_mux_lut(depth, width):
    """LUTs of the read multiplexer of a LUT-RAM deeper than one 64-word cell (a LUT6 selects among 4)."""
    banks = math.ceil(depth / 64)
    return 0 if banks == 1 else width * math.ceil((banks - 1) / 3)


def _lutram_cells(depth, width):
    if depth <= 32:
        return math.ceil(width / 6)
    if depth <= 64:
        return math.ceil(width / 3)
    return math.ceil(depth / 64) * math.ceil(width / 3)


def ram_mapping(depth, width):
    """How Yosys maps a writable depth x width memory (one write, one read port):
    ``("lutram", LUTs)`` or ``("bram", RAMB36 equivalents)``."""
    cells = _lutram_cells(depth, width)
    cost, n36, _ = _bram(depth, width)
    if cells * _LUTRAM_CELL_COST <= cost:
        return "lutram", 4 * cells
    return "bram", n36


def _add_mem(res, kind, amount, logic_factor=1.0):
    if kind == "bram":
        res.bram36 += amount
    elif kind == "lutram":
        res.lutram += amount
    else:
        res.lut += amount * logic_factor


def _bits(lo, hi):
    """Bits of an accumulator reaching [lo, hi], as the model counts them."""
    return max(abs(lo), hi + 1).bit_length() + (1 if lo < 0 else 0)


def compressor_lane_lut(simd):
    """LUTs per lane of the compressor-tree popcount over ``simd`` lanes (its LUT6_2 cells;
    the CARRY4s are not LUTs)."""
    return compressor_levels(simd)[1] / simd


def _mvtu(L, mh, mw, res, runtime):
    pe, simd = L.pe, L.simd
    nf, sf = mh // pe, mw // simd
    wk = DataKind.of(L.weight_kind, L.weight_bits)
    xk = DataKind.of(L.in_kind, L.in_bits if L.in_kind != "bipolar" else None)
    binary = wk.kind == "bipolar" and xk.kind == "bipolar"
    abits, wbits = xk.width, wk.width
    acc_bits = _bits(*accumulator_range(mw, wk, xk))
    lanes = pe * simd
    if binary and getattr(L, "popcount", "adder-tree") == "compressor":
        lane_lut = compressor_lane_lut(simd)
    else:
        lane_lut = BINARY_LANE_LUT if binary else BIT_LANE_LUT * abits * wbits
        if getattr(L, "pipeline", 0) == PIPELINE_MAX:
            lane_lut *= PIPELINED_BINARY_LANE if binary else PIPELINED_BIT_LANE
    res.lut += lanes * lane_lut
    stages = L.n_thresholds.bit_length()
    res.lut += pe * acc_bits * (ACC_BIT_LUT + EXTRA_STAGE_ACC_BIT_LUT * max(0, stages - 1))
    if getattr(L, "accumulator", "mux") == "reset":
        res.lut -= pe * acc_bits * RESET_SAVED_ACC_BIT_LUT
    res.lut += MVTU_FIXED_LUT if stages else RAW_MVTU_FIXED_LUT
    res.ff += pe * acc_bits * (2 + stages) + pe * max(stages, 1) + (simd * abits if binary else lanes * abits)
    depth, width = nf * sf, simd * wbits
    kind, amount = weight_memory_mapping(depth, width, getattr(L, "weight_memory", "auto"), runtime)
    if kind == "logic":
        res.lut += pe * width * rom_bit_lut_in_mvtu(depth, pe * width)
        res.ff += pe * width
    elif kind == "lutrom":
        res.lut += pe * amount
        res.ff += (nf * sf - 1).bit_length()  # the registered address (shared by the PEs)
    else:
        _add_mem(res, kind, pe * amount)
        if kind == "bram":
            res.lut += pe * bram_read_mux_lut(depth, width)
    # threshold memories, one per PE and search stage: the first (NF words) is
    # absorbed into the per-PE figure above up to one LUT6 (64 words) per bit;
    # a deeper one adds its further LUT6, about half of them (thresholds of a
    # layer cluster around MW/2: their top bits are constant)
    if stages and not runtime and rom_mapping(nf, acc_bits)[0] == "logic":
        res.lut += pe * acc_bits * (math.ceil(nf / 64) - 1) * THRESHOLD_ROM_BIT_LUT
    for s in range(1, stages):
        kind, amount = (ram_mapping if runtime else rom_mapping)(nf << s, acc_bits)
        _add_mem(res, kind, pe * amount)
    kind, amount = ram_mapping(2 * sf, simd * abits)  # input double buffer
    _add_mem(res, kind, amount)


def _fifo(width, depth, res):
    # SyncFIFOBuffered(depth + 1) keeps depth words in its memory, one in a register
    kind, amount = ram_mapping(depth, width)
    _add_mem(res, kind, amount)
    res.lut += FIFO_FIXED_LUT + FIFO_DEPTH_LUT * math.log2(max(depth, 2) / 2)
    res.ff += width + 12


def _link(stage, res):
    """Add the cost of a plan's width converter or FIFO ``stage`` to ``res``."""
    bits = stage.i.elem.bits
    if stage.kind == "fork":     # one held word, an outstanding bit per output
        res.lut += FORK_OUTPUT_LUT * stage.fanout
        res.ff += stage.i.width + stage.fanout
    elif stage.kind == "width":
        res.lut += width_converter_lut(stage.i.elems, stage.o.elems, bits)
        res.ff += (stage.i.elems + stage.o.elems) * bits + 8
    else:
        _fifo(stage.i.width, stage.fifo_depth, res)


def estimate_layer(L, runtime=False, links=()):
    """Estimated :class:`Resources` of layer ``L`` at its current PE/SIMD, with the
    ``links`` in front of it (the width converter and FIFO stages of its
    :class:`~qnnfab.plan.Plan` that feed it).
    ``runtime``: ``weights_mode = "runtime"``, weights and thresholds in RAMs (an MVTU's
    mapped by the RAM rule, an add's or global pool's in flip-flops: :func:`_sum_stage`;
    the weight loader is not modelled)."""
    res = Resources()
    bits = L.in_bits
    for stage in links:
        _link(stage, res)
    if L.type in ("add", "global_avgpool"):
        _sum_stage(L, res, runtime)
    elif L.type == "concat":
        bits = L.simd * L.in_bits
        res.lut += CONCAT_FIXED_LUT + CONCAT_BIT_LUT * bits
        words = max(L.in_shapes[0][2] // L.simd, L.in_shapes[1][2] // L.simd, 2)     # its word count's range
        res.ff += bits + 2 + (words - 1).bit_length()
    elif L.type == "maxpool":
        h, w, c = L.in_shape
        rows = window_buffer_rows(h, w, L.kernel, L.stride, 0)
        kind, amount = ram_mapping(max(2, rows * w * c // L.simd), L.simd * bits)
        _add_mem(res, kind, amount)
        res.lut += POOL_FIXED_LUT + POOL_LANE_BIT_LUT * L.simd * bits + (POOL_BRAM_LUT if kind == "bram" else 0)
        res.ff += 40 + 2 * L.simd * bits
    elif L.type == "fc":
        _mvtu(L, L.out, math.prod(L.in_shape), res, runtime)
    else:
        h, w, c = L.in_shape
        k = L.kernel
        in_simd, positions = L.in_simd, max(1, L.simd // c)
        # line buffer, one copy per kernel position of an output word
        rows = window_buffer_rows(h, w, k, L.stride, L.pad)
        depth, width = max(2, rows * w * (c // in_simd)), in_simd * bits
        kind, amount = ram_mapping(depth, width)
        if positions > 1 and depth * width >= BLOCK_RAM_COPY_BITS:
            kind, amount = "bram", _bram(depth, width)[1]
        _add_mem(res, kind, amount * positions)
        if positions > 1:   # per position lane: its checks, and its padding multiplexer when padded
            res.lut += positions * (WINDOW_LANE_LUT + (c * bits if L.pad else 0))
        res.lut += WINDOW_FIXED_LUT
        res.ff += 100 + L.simd * bits
        if positions == 1:
            _fifo(L.simd * bits, 2, res)  # window -> MVTU
        _mvtu(L, L.out, k * k * c, res, runtime)
    return Resources(lut=round(res.lut), ff=round(res.ff), bram36=float(res.bram36), lutram=round(res.lutram))


def _sum_stage(L, res, runtime):
    """An add's or global pool's adders and threshold compare (``simd`` lanes), and a global pool's
    line of partial sums (C sums, flip-flops). Runtime thresholds: a threshold RAM of one stored word
    (packed) is flip-flops, as Yosys builds it (each stored bit, each bit of the registered read word,
    their write enables and word selects in LUTs); a deeper one is mapped by the RAM rule."""
    sum_bits = range_bits(*sum_range(L))[0]
    stages = L.n_thresholds.bit_length()
    res.lut += L.simd * sum_bits * (1 + ACC_BIT_LUT + EXTRA_STAGE_ACC_BIT_LUT * max(0, stages - 1))
    res.lut += SUM_STAGE_FIXED_LUT
    res.ff += L.simd * sum_bits * (1 + stages) + 16
    if L.type == "global_avgpool":
        res.ff += L.in_shape[2] * sum_bits
    if runtime:
        for g in sum_threshold_memories(L.name, L, runtime).groups:
            res.ff += g.pe * g.stored_width      # the registered read words
            if g.stored_depth == 1:
                res.ff += g.pe * g.stored_width
                res.lut += RUNTIME_SUM_THRESHOLD_BIT_LUT * g.pe * g.stored_width
            else:
                kind, amount = ram_mapping(g.stored_depth, g.stored_width)
                _add_mem(res, kind, g.pe * amount)


def _cycles(L):
    return layer_cycles(L)


def estimate_layers(cfg):
    """``[(layer name, Resources)]``: :func:`estimate_layer` of every layer with the links
    in front of it, as :func:`qnnfab.plan.plan_of` lays them out."""
    plan = plan_of(cfg)
    rows, links = [], []
    for stage in plan.stages:
        if stage.kind in ("width", "fifo", "fork"):
            links.append(stage)
            continue
        rows.append((stage.name, estimate_layer(stage.layer, plan.runtime, links)))
        links = []
    return rows


def estimate(cfg):
    """Estimated :class:`Resources` of the whole dataflow of ``cfg``."""
    total = Resources()
    for _, r in estimate_layers(cfg):
        total = total + r
    return total

"""Mutation check of the RTL: do the tests catch a plausible one-line bug in every component?

:data:`MUTATIONS` lists one-line bugs (a comparison flipped, an off-by-one, a
dropped carry, valid depending on ready, a missing reset, a wrong bit slice)
in every file of ``rtl/``, each with the cheapest tests expected to catch it.
For each entry the script copies the repository once per worker into a
scratch folder, replaces the entry's line in the copy, runs the selected
tests there (``pytest -x -q -p no:cacheprovider``) and classifies the mutant:

* ``killed``: the tests fail (``killed*``: the mutated module did not even
  import, or pytest stopped on an error or the time limit; still a catch);
* ``survived``: the tests pass: a bug the tests miss;
* ``unexercised``: the tests pass but never imported the mutated module;
* ``stale``: the original line is not in the file exactly once, or the
  selection collects no test: fix the entry.

The working tree it runs from is never modified: the copy lives in a
temporary folder, removed at the end (also on Ctrl-C). The copy's tests
import the copy's code, not the editable install: a ``sitecustomize`` on
``PYTHONPATH`` puts a finder in front of every other that maps ``qnnfab``,
``qnnfab.rtl``, ... to the copy's folders (``pyproject.toml``'s
``package-dir``), also inside the cocotb simulator, which inherits
``PYTHONPATH``; a pytest plugin records where every ``qnnfab`` module came
from and a result is only trusted when all of them lie in the copy.
Verilator and Icarus builds go to the usual cache (``$QNNFAB_CACHE``), keyed
by the Verilog text: only mutated designs are rebuilt.

Entries marked ``pending`` wait for a test being written elsewhere: they
survive until it is merged.

    .venv/bin/python bench/bench_mutations.py                 # every mutation, one at a time
    .venv/bin/python bench/bench_mutations.py --only axi --jobs 2
    .venv/bin/python bench/bench_mutations.py --list

Exit status: 0 when every mutant is killed, 1 when any survived, was
unexercised or is stale.
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# files of rtl/ that hold no component (nothing to mutate)
NOT_COMPONENTS = ("__init__.py",)


@dataclass(frozen=True)
class Mutation:
    """One one-line bug: ``original`` (a whole line of ``file``, present exactly once)
    becomes ``mutated``; ``tests`` are pytest arguments (node ids, ``-k``) of the
    cheapest tests expected to catch it; ``pending`` names the missing test when
    it is being written elsewhere."""
    id: str
    component: str
    file: str
    original: str
    mutated: str
    bug: str
    tests: str
    pending: str = ""


def _icarus(case):
    """The node id of one regression case on Icarus (its build takes a fraction of a second)."""
    return shlex.quote(f"tests/test_regressions.py::test_regression_on_icarus[{case}]")


M = Mutation
MUTATIONS = [
    # ---- AXI DMAs (BurstRequests, shared by both, lives in axi_read_dma.py)
    M("read_dma.rready_after_stop", "axi_read_dma", "rtl/axi_read_dma.py",
      "            self.m_rready.eq(fifo.w_rdy | stopped),",
      "            self.m_rready.eq(Mux(stopped, self.o.ready, fifo.w_rdy)),",
      "after a stop RREADY waits for the stalled output (the drain hangs)",
      "tests/test_rtl_axi_dma.py::test_read_dma_drains_after_a_stop_while_its_output_is_stalled"),
    M("read_dma.beat_after_error", "axi_read_dma", "rtl/axi_read_dma.py",
      "            fifo.w_en.eq(beat_in & ~stopped & ~self.m_rresp[1]),",
      "            fifo.w_en.eq(beat_in & ~stopped),",
      "the beat carrying an error response is passed on",
      "tests/test_rtl_axi_dma.py -k nothing_after"),
    M("read_dma.start_keeps_error", "axi_read_dma", "rtl/axi_read_dma.py",
      "            m.d.sync += error.eq(0)",
      "            m.d.sync += error.eq(error)",
      "start does not clear the previous run's error (missing reset)",
      "tests/test_rtl_axi_dma.py -k start_clears"),
    M("read_dma.arlen_off_by_one", "axi_read_dma", "rtl/axi_read_dma.py",
      "                self.valid.eq(1), self.addr.eq(self.cur), self.len.eq(self.length - 1),",
      "                self.valid.eq(1), self.addr.eq(self.cur), self.len.eq(self.length),",
      "ARLEN/AWLEN is the burst's beats, not beats - 1 (off by one)",
      "tests/test_rtl_axi_dma.py"),
    M("read_dma.burst_crosses_block", "axi_read_dma", "rtl/axi_read_dma.py",
      "        to_block_end.eq(MAX_BURST - beat),",
      "        to_block_end.eq(MAX_BURST),",
      "a burst may cross its 16-beat block (and 4 KiB)",
      "tests/test_rtl_axi_dma.py " + _icarus("gemm[R3-C5-a[4, 8]-b[4, 8]-c[3, 3]-k_max32-panels2-a_chunk7-width32-pause0.5-products3-satTrue]")),
    M("write_dma.start_keeps_error", "axi_write_dma", "rtl/axi_write_dma.py",
      "            m.d.sync += error.eq(0)",
      "            m.d.sync += error.eq(error)",
      "start does not clear the previous run's error (missing reset)",
      "tests/test_rtl_axi_dma.py -k start_clears"),
    M("write_dma.wlast_off_by_one", "axi_write_dma", "rtl/axi_write_dma.py",
      "            self.m_wlast.eq(w_left == 1),",
      "            self.m_wlast.eq(w_left == 0),",
      "WLAST on the wrong beat (off by one)",
      "tests/test_rtl_axi_dma.py"),
    M("write_dma.burst_needs_one_more", "axi_write_dma", "rtl/axi_write_dma.py",
      "        req.issue_when(~stopped & (avail >= req.length) & (bursts < MAX_BURSTS_IN_FLIGHT) & lengths.w_rdy)",
      "        req.issue_when(~stopped & (avail > req.length) & (bursts < MAX_BURSTS_IN_FLIGHT) & lengths.w_rdy)",
      "a burst waits for one beat more than it needs (the last never goes)",
      "tests/test_rtl_axi_dma.py"),
    # ---- AXI4-Lite register file
    M("axil.aw_taken_while_b_waits", "axil_registers", "rtl/axil_registers.py",
      "            self.s_awready.eq(~aw_held & ~bvalid),",
      "            self.s_awready.eq(~aw_held),",
      "AW is taken while the write response waits for BREADY",
      "tests/test_rtl_axil_registers.py"),
    M("axil.strobes_ignored", "axil_registers", "rtl/axil_registers.py",
      "                    m.d.sync += reg.eq((reg & ~mask) | (w_data & mask))",
      "                    m.d.sync += reg.eq(w_data & mask)",
      "a partial write clears the bytes its strobes leave alone",
      "tests/test_rtl_axil_registers_strobes.py"),
    M("axil.word_address_slice", "axil_registers", "rtl/axil_registers.py",
      "        word = aw_addr[2:]",
      "        word = aw_addr[1:]",
      "the write's word address is sliced from bit 1 (wrong bit slice)",
      "tests/test_rtl_axil_registers.py"),
    M("axil.ar_taken_while_r_waits", "axil_registers", "rtl/axil_registers.py",
      "            self.s_arready.eq(~rvalid),",
      "            self.s_arready.eq(1),",
      "AR is taken while the read response waits (its data is overwritten)",
      "tests/test_rtl_axil_registers.py"),
    # ---- overlay shell
    M("overlay.irq_ignores_enable", "overlay", "rtl/overlay.py",
      "            self.interrupt.eq(ctl.irq_enable & ctl.done),",
      "            self.interrupt.eq(ctl.done),",
      "the interrupt ignores IRQ_ENABLE",
      "tests/test_regressions.py::test_regression[overlay[configlfc_small.toml-bad_useTrue-width64-pause0.3]]"),
    M("overlay.weight_beats_round_down", "overlay", "rtl/overlay.py",
      "                rd.beats.eq((regs.WEIGHTS_LEN + (bus_bytes - 1)) >> shift),",
      "                rd.beats.eq(regs.WEIGHTS_LEN >> shift),",
      "the weights image's length in bus beats rounds down instead of up",
      "tests/test_regressions.py::test_regression[overlay[configfc-kbit-odd-runtimeTrue-odd_imageTrue-frames[3]-width128-batch_size4-pause0.3]]"),
    M("overlay.soft_reset_sets_done", "overlay", "rtl/overlay.py",
      "                m.d.sync += done.eq(~soft)",
      "                m.d.sync += done.eq(1)",
      "SOFT_RESET ends with DONE set",
      _icarus("overlay[configlfc_small.toml-bad_useTrue-width64-pause0.3]")),
    # ---- frame checker, unpacker, record packer
    M("frame_checker.drop_ignores_valid", "frame_checker", "rtl/frame_checker.py",
      "                with m.If(self.i.valid & self.i.payload.last):",
      "                with m.If(self.i.payload.last):",
      "a long frame's drop ends on a `last` that is not valid",
      "tests/test_rtl_frame_checker.py"),
    M("frame_checker.short_when_final", "frame_checker", "rtl/frame_checker.py",
      "                    with m.If(~final & self.i.payload.last):",
      "                    with m.If(self.i.payload.last):",
      "a correctly ended frame counts as short",
      "tests/test_rtl_frame_checker.py"),
    M("frame_unpacker.frame_end_mid_word", "frame_unpacker", "rtl/frame_unpacker.py",
      "                self.i.ready.eq(self.o.ready & (last_slot | last_word)),",
      "                self.i.ready.eq(self.o.ready & last_slot),",
      "a frame ending inside a bus word does not release it (padding slots become words)",
      "tests/test_overlay.py -k unpacker"),
    M("frame_unpacker.gather_count", "frame_unpacker", "rtl/frame_unpacker.py",
      "                m.d.sync += count.eq(Mux(full, 1, count + 1))",
      "                m.d.sync += count.eq(count + 1)",
      "gathering: a bus word taken as the output is taken is counted on top",
      "tests/test_overlay.py -k unpacker"),
    M("record_packer.index_stuck", "record_packer", "rtl/record_packer.py",
      "                m.d.sync += [waiting_label.eq(0), index.eq(index + 1)]",
      "                m.d.sync += [waiting_label.eq(0)]",
      "the frame index in the label slot never advances",
      "tests/test_overlay.py -k packer"),
    M("record_packer.record_not_padded", "record_packer", "rtl/record_packer.py",
      "                with m.If(slot_end | (pos == per_beat - 1)):",
      "                with m.If(pos == per_beat - 1):",
      "a record's last bus word is not closed (records run together)",
      "tests/test_overlay.py -k packer"),
    # ---- runtime weights
    M("weight_loader.busy_ignored", "weight_loader", "rtl/weight_loader.py",
      "                    with m.If(self.busy):",
      "                    with m.If(False):",
      "an image offered while a frame is in flight is loaded",
      "tests/test_rtl_weight_loader.py"),
    M("weight_loader.row_kept_at_group_end", "weight_loader", "rtl/weight_loader.py",
      "                            m.d.sync += [row.eq(0), g.eq(g + 1)]",
      "                            m.d.sync += g.eq(g + 1)",
      "the row address is not reset at the next memory group (missing reset)",
      "tests/test_weights_runtime.py -k loaded_at_run_time"),
    M("weight_words.last_off_by_one", "weight_words", "rtl/weight_words.py",
      "        m.d.comb += [last.eq(count == self.words - 1), self.o.payload.last.eq(last)]",
      "        m.d.comb += [last.eq(count == self.words), self.o.payload.last.eq(last)]",
      "`last` one word late (off by one)",
      "tests/test_overlay.py -k weight_words"),
    M("weight_words.halves_swapped", "weight_words", "rtl/weight_words.py",
      "                    m.d.sync += [buf.eq(low | (self.i.payload << 32)), full.eq(1), have_low.eq(0)]",
      "                    m.d.sync += [buf.eq(self.i.payload | (low << 32)), full.eq(1), have_low.eq(0)]",
      "32-bit bus: the two halves of an image word are swapped",
      "tests/test_overlay.py -k weight_words"),
    M("weights_image.row_word_order", "weights_image", "qnnfab/plan.py",
      "                    body += reversed(unpack_fields(row, [WORD_BITS] * group.row_words))",
      "                    body += unpack_fields(row, [WORD_BITS] * group.row_words)",
      "a row's image words least significant first (the loader takes the most significant first)",
      "tests/test_weights_runtime.py -k \"holds_every_weight or loaded_at_run_time\""),
    M("loadable_memory.lut_rom_ignores_enable", "loadable_memory", "rtl/loadable_memory.py",
      "            with m.If(self.enable):",
      "            with m.If(True):",
      "the LUT ROM's address register moves while the datapath is stalled",
      "tests/test_rtl_mvtu.py -k weight_memory_styles_compute"),
    M("loadable_memory.word_select_unregistered", "loadable_memory", "rtl/loadable_memory.py",
      "            m.d.sync += sel.eq(addr[:k])",
      "            m.d.comb += sel.eq(addr[:k])",
      "a packed RAM's word select is not registered with its read (a cycle early)",
      "tests/test_weights_runtime.py -k loaded_at_run_time"),
    M("weight_layout.stage_index_off_by_one", "weight_layout", "qnnfab/weight_layout.py",
      "            idx = (q << (n - s)) + (1 << (n - s - 1)) - 1   # (2^s,)",
      "            idx = (q << (n - s)) + (1 << (n - s - 1))   # (2^s,)",
      "a threshold stage table holds the entry after the midpoint (off by one)",
      "tests/test_rtl_mvtu.py -k threshold_stage_tables"),
    # ---- streams
    M("sliding_window.reads_unwritten_word", "sliding_window", "rtl/sliding_window.py",
      "        m.d.comb += written.eq((wy_eff > iy) | ((wy_eff == iy) & ((w.x > ix) | ((w.x == ix) & (w.c > r.c)))))",
      "        m.d.comb += written.eq((wy_eff > iy) | ((wy_eff == iy) & ((w.x > ix) | ((w.x == ix) & (w.c >= r.c)))))",
      "a word is read in the cycle it is being written (comparison off by one)",
      "tests/test_rtl_sliding_window.py -k im2col_stream_matches"),
    M("sliding_window.overwrites_needed_pixel", "sliding_window", "rtl/sliding_window.py",
      "        m.d.comb += room.eq((wy_eff < fy_lim) | ((wy_eff == fy_lim) & (wx < fx)))",
      "        m.d.comb += room.eq((wy_eff < fy_lim) | ((wy_eff == fy_lim) & (wx <= fx)))",
      "the writer overwrites the oldest pixel still needed (comparison off by one)",
      "tests/test_rtl_sliding_window.py -k \"matches_golden\""),
    M("sliding_window.lanes_read_unwritten_pixel", "sliding_window", "rtl/sliding_window.py",
      "            m.d.comb += written.eq((wy_eff > iy) | ((wy_eff == iy) & (wx > ix)))",
      "            m.d.comb += written.eq((wy_eff > iy) | ((wy_eff == iy) & (wx >= ix)))",
      "several positions per word: a pixel is read as it is being written",
      "tests/test_rtl_sliding_window.py -k several_kernel_positions"),
    M("sliding_window.k_rows_refill_stall", "sliding_window", "rtl/sliding_window.py",
      "        self.buffer_rows = window_buffer_rows(height, width, kernel, stride, pad)",
      "        self.buffer_rows = min(kernel, height)",
      "the line buffer keeps K rows: the next image's first window waits at every image boundary",
      "tests/test_rtl_sliding_window.py -k no_refill_stall"),
    M("width_converter.ready_one_short", "width_converter", "rtl/width_converter.py",
      "        m.d.comb += self.i.ready.eq(after + ie <= cap)",
      "        m.d.comb += self.i.ready.eq(after + ie < cap)",
      "an input word that exactly fills the buffer is refused",
      "tests/test_rtl_width_converter.py -k documented_buffer"),
    M("width_converter.valid_one_late", "width_converter", "rtl/width_converter.py",
      "            self.o.valid.eq(count >= oe),",
      "            self.o.valid.eq(count > oe),",
      "an output word waits for one element more than it needs",
      "tests/test_rtl_width_converter.py"),
    M("stream_fifo.one_word_short", "stream_fifo", "rtl/stream_fifo.py",
      "        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.width, depth=self.depth + 1)",
      "        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.width, depth=self.depth)",
      "the FIFO holds one word fewer than documented",
      "tests/test_rtl_stream_fifo.py"),
    M("stream_fifo.valid_on_ready", "stream_fifo", "rtl/stream_fifo.py",
      "            self.o.valid.eq(fifo.r_rdy),",
      "            self.o.valid.eq(fifo.r_rdy & self.o.ready),",
      "o.valid depends on o.ready",
      "tests/test_rtl_stream_fifo.py"),
    M("lanes.signedness_dropped", "lanes", "rtl/lanes.py",
      "    return data.ArrayLayout(Shape.cast(shape), n)",
      "    return data.ArrayLayout(Shape(Shape.cast(shape).width), n)",
      "stream lanes of signed elements become unsigned",
      "tests/test_rtl_threshold.py"),
    # ---- arithmetic
    M("popcount.full_adder_carry", "dot_product", "rtl/dot_product.py",
      "                cols.setdefault(e + 1, []).append((a & b) | (a & c) | (b & c))",
      "                cols.setdefault(e + 1, []).append((a & b) | (b & c))",
      "a full adder's carry drops the a & c term (dropped carry)",
      "tests/test_rtl_xnor_popcount.py -k counts_equal_bits"),
    M("popcount.half_adder_carry", "dot_product", "rtl/dot_product.py",
      "                cols.setdefault(e + 1, []).append(a & b)",
      "                cols.setdefault(e + 1, []).append(a | b)",
      "a half adder's carry is a | b",
      "tests/test_rtl_xnor_popcount.py -k counts_equal_bits"),
    M("dot_product.ternary_sign", "dot_product", "rtl/dot_product.py",
      "                m.d.comb += t.eq(Mux(we[0], Mux(we[1] ^ xe[0], 1, -1), 0))",
      "                m.d.comb += t.eq(Mux(we[0], Mux(we[1] ^ xe[0], -1, 1), 0))",
      "ternary x bipolar lane products have the wrong sign",
      _icarus("mvtu[mh32-mw64-pe8-simd16-wkternary-wb2-akbipolar-ab1-out7-vectors2-pipeline2]")),
    M("dot_product.sum_too_narrow", "dot_product", "rtl/dot_product.py",
      "                s = Signal(range_shape(alo + blo, ahi + bhi), name=f\"{name}_l{lvl}_{i // 2}\")",
      "                s = Signal(range_shape(alo + blo, ahi), name=f\"{name}_l{lvl}_{i // 2}\")",
      "an adder-tree sum is sized for one operand's range (overflows)",
      "tests/test_rtl_mvtu.py -k rows_match_golden"),
    M("compressor_popcount.lane_init_bit", "compressor_popcount", "rtl/compressor_popcount.py",
      "LANE_INIT = lut6_2_init(_lane_sum, _lane_carry)",
      "LANE_INIT = lut6_2_init(_lane_sum, _lane_carry) ^ (1 << 7)",
      "one INIT bit of the lane LUTs flipped (a carry out of one agree/disagree pair)",
      "tests/test_rtl_compressor_popcount.py -k counts_equal_bits"),
    M("compressor_popcount.ternary_init_bit", "compressor_popcount", "rtl/compressor_popcount.py",
      "TERNARY_INIT = lut6_2_init(lambda _, x, y, z, w: x ^ y ^ z ^ w, lambda _, x, y, z, w: _maj(x, y, z))",
      "TERNARY_INIT = lut6_2_init(lambda _, x, y, z, w: x ^ y ^ z ^ w, lambda _, x, y, z, w: _maj(x, y, z)) ^ (1 << 38)",
      "one INIT bit of the ternary-adder LUTs flipped (a carry-chain select)",
      "tests/test_rtl_compressor_popcount.py -k counts_equal_bits"),
    M("compressor_popcount.dropped_carry", "compressor_popcount", "rtl/compressor_popcount.py",
      "        put(e + k, carry)",
      "        pass",
      "a chain's carry out is dropped",
      "tests/test_rtl_compressor_popcount.py -k counts_equal_bits"),
    M("compressor_popcount.lane_carry_weight", "compressor_popcount", "rtl/compressor_popcount.py",
      "                heap[1].append(o5)",
      "                heap[0].append(o5)",
      "a lane LUT's carry counted with weight 1",
      "tests/test_rtl_compressor_popcount.py -k counts_equal_bits"),
    M("compressor_popcount.carry_model_di", "compressor_popcount", "rtl/compressor_popcount.py",
      "                c = Mux(s[i], c, di[i])",
      "                c = Mux(s[i], c, 0)",
      "the CARRY4 model ignores DI (the model is not the cell)",
      "tests/test_rtl_compressor_popcount.py -k equivalence"),
    M("compressor_popcount.primitive_init", "compressor_popcount", "rtl/compressor_popcount.py",
      "                \"LUT6_2\", p_INIT=Const(init, 64),",
      "                \"LUT6_2\", p_INIT=Const(init ^ 1, 64),",
      "the instantiated LUT6_2 gets another INIT than the model (an INIT bit flipped)",
      "tests/test_rtl_compressor_popcount.py -k equivalence"),
    M("xnor_popcount.ready_while_stalled", "xnor_popcount", "rtl/xnor_popcount.py",
      "        m.d.comb += self.i.ready.eq(advance)",
      "        m.d.comb += self.i.ready.eq(1)",
      "input words are taken while the output stalls (lost)",
      "tests/test_rtl_xnor_popcount.py -k counts_equal_bits"),
    M("xnor_popcount.adder_tree_width", "xnor_popcount", "rtl/xnor_popcount.py",
      "    out = Signal(popcount_width(len(bits)), name=f\"{name}_sum\")",
      "    out = Signal(popcount_width(len(bits) - 1), name=f\"{name}_sum\")",
      "the adder tree's sum is one count too narrow",
      "tests/test_rtl_adder_tree_full_count.py"),
    M("mvtu.reads_unwritten_word", "mvtu", "rtl/mvtu.py",
      "            avail.eq(rfull | ((wbank == rbank) & (windex > sf))),",
      "            avail.eq(rfull | ((wbank == rbank) & (windex >= sf))),",
      "fold 0 reads an input word in the cycle it is written",
      "tests/test_rtl_mvtu.py -k rows_match_golden"),
    M("mvtu.accumulator_not_cleared", "mvtu", "rtl/mvtu.py",
      "                m.d.comb += nxt.eq(Mux(first, 0, acc) + dots[p])",
      "                m.d.comb += nxt.eq(acc + dots[p])",
      "the accumulator is not cleared at a row's first word (missing reset)",
      "tests/test_rtl_mvtu.py -k \"rows_match_golden and mux\""),
    M("mvtu.reset_accumulator_not_zeroed", "mvtu", "rtl/mvtu.py",
      "                    m.d.sync += acc.eq(0)",
      "                    m.d.sync += acc.eq(nxt)",
      "accumulator = \"reset\": the register is not zeroed after a row's last word (rows add up)",
      "tests/test_rtl_mvtu.py -k \"rows_match_golden and reset\""),
    M("mvtu.reset_accumulator_zeroed_on_first", "mvtu", "rtl/mvtu.py",
      "                with m.If(advance & valid & last):",
      "                with m.If(advance & valid & first):",
      "accumulator = \"reset\": zeroed after a row's first word instead of its last",
      "tests/test_rtl_mvtu.py -k \"rows_match_golden and reset\""),
    M("mvtu.reset_accumulator_adds_zero", "mvtu", "rtl/mvtu.py",
      "                m.d.comb += nxt.eq(acc + dots[p])",
      "                m.d.comb += nxt.eq(Mux(last, 0, acc) + dots[p])",
      "accumulator = \"reset\": a row's last word drops the sum of the words before it",
      "tests/test_rtl_mvtu.py -k \"rows_match_golden and reset\""),
    M("dot_product_unit.output_truncated", "dot_product_unit", "rtl/dot_product_unit.py",
      "        m.d.comb += self.dot.eq(v)",
      "        m.d.comb += self.dot.eq(v[:-1])",
      "a PE's dot product loses its top bit on the way out of the unit",
      "tests/test_rtl_mvtu.py -k rows_match_golden"),
    M("dot_product_unit.registers_ignore_stall", "dot_product_unit", "rtl/dot_product_unit.py",
      "                                         x_kind=self.x_kind, stages=self.stages, enable=self.enable, name=\"dp\")",
      "                                         x_kind=self.x_kind, stages=self.stages, enable=1, name=\"dp\")",
      "a PE's pipeline registers advance while the output is stalled",
      "tests/test_rtl_mvtu.py -k rows_match_golden"),
    M("dot_product_unit.compressor_registers_ignore_stall", "dot_product_unit", "rtl/dot_product_unit.py",
      "            v, lo, hi, lat = compressor_popcount(m, self.w, self.x, self.simd, self.stages, self.enable, name=\"dp\",",
      "            v, lo, hi, lat = compressor_popcount(m, self.w, self.x, self.simd, self.stages, 1, name=\"dp\",",
      "popcount = \"compressor\": a PE's compressor-tree registers advance while the output is stalled",
      "tests/test_rtl_mvtu.py -k compressor_popcount_rows_match_golden"),
    M("dot_product_unit.compressor_never_built", "dot_product_unit", "rtl/dot_product_unit.py",
      "        self.compressor = binary and popcount == \"compressor\"",
      "        self.compressor = False",
      "popcount = \"compressor\" is ignored: the PEs keep the adder tree",
      "tests/test_rtl_mvtu.py -k lut6_2_and_carry4"),
    M("dot_product_unit.compressor_on_kbit_lanes", "dot_product_unit", "rtl/dot_product_unit.py",
      "        self.compressor = binary and popcount == \"compressor\"",
      "        self.compressor = popcount == \"compressor\"",
      "popcount = \"compressor\" replaces a k-bit layer's dot product by a popcount of its packed bits",
      "tests/test_rtl_mvtu.py -k lut6_2_and_carry4"),
    M("mvtu.popcount_not_passed", "mvtu", "rtl/mvtu.py",
      "                                  stages=self.pipeline, popcount=self.popcount, primitives=self.primitives)",
      "                                  stages=self.pipeline, primitives=self.primitives)",
      "the MVTU does not pass its popcount style to its PEs",
      "tests/test_rtl_mvtu.py -k lut6_2_and_carry4"),
    M("threshold.tie_fails", "threshold", "rtl/threshold.py",
      "            m.d.comb += bit.eq(r_acc[p] >= tdata)",
      "            m.d.comb += bit.eq(r_acc[p] > tdata)",
      "an accumulator equal to a threshold does not pass it",
      "tests/test_rtl_threshold.py"),
    M("threshold.fold_moves_on_bubbles", "threshold", "rtl/threshold.py",
      "        with m.If(self.i.valid & advance):",
      "        with m.If(advance):",
      "the channel fold advances on cycles without an input word",
      "tests/test_rtl_threshold.py"),
    M("threshold.clamp_to_reachable", "threshold", "rtl/threshold.py",
      "    return np.clip(t, lo, hi + 1), int(t.shape[1]).bit_length(), hi + 1",
      "    return np.clip(t, lo, hi), int(t.shape[1]).bit_length(), hi + 1",
      "a threshold above every accumulator is clamped to the largest one (which then passes it)",
      "tests/test_rtl_threshold.py tests/test_rtl_mvtu.py -k \"counts_thresholds or rows_match_golden\""),
    M("selftest_top.tlast_late", "selftest_top", "rtl/selftest_top.py",
      "            accel.s_axis_tlast.eq(word == words - 1),",
      "            accel.s_axis_tlast.eq(word == words),",
      "the self-test top marks the word after each frame's last (every frame a framing error)",
      "tests/test_rtl_selftest_top.py"),
    M("maxpool.min_not_max", "maxpool", "rtl/maxpool.py",
      "            folded = Cat(*[Mux(x[j] > head[j], x[j], head[j]) for j in range(self.simd)])",
      "            folded = Cat(*[Mux(x[j] < head[j], x[j], head[j]) for j in range(self.simd)])",
      "uint pooling takes the minimum (comparison flipped)",
      "tests/test_rtl_maxpool.py -k matches_golden"),
    M("maxpool.valid_drops_unread", "maxpool", "rtl/maxpool.py",
      "        with m.If(self.o.ready):",
      "        with m.If(self.o.valid):",
      "an output word is withdrawn after one cycle whether taken or not",
      "tests/test_rtl_maxpool.py -k matches_golden"),
    # ---- graph streams: fork, element-wise add, global pooling
    M("stream_fork.valid_on_ready", "stream_fork", "rtl/stream_fork.py",
      "            m.d.comb += [self.o[k].valid.eq(outstanding[k]), self.o[k].payload.eq(held)]",
      "            m.d.comb += [self.o[k].valid.eq(outstanding[k] & self.o[k].ready), self.o[k].payload.eq(held)]",
      "an output's valid depends on its ready",
      "tests/test_rtl_stream_fork.py"),
    M("stream_fork.any_output_free", "stream_fork", "rtl/stream_fork.py",
      "            all_free = all_free & f",
      "            all_free = all_free | f",
      "the input is taken when any output is free (words lost on a stalled output)",
      "tests/test_rtl_stream_fork.py"),
    M("stream_fork.withdrawn_untaken", "stream_fork", "rtl/stream_fork.py",
      "            with m.If(self.o[k].ready):",
      "            with m.If(self.o[k].valid):",
      "a word is withdrawn from an output after one cycle whether taken or not",
      "tests/test_rtl_stream_fork.py"),
    M("elementwise_add.takes_one_side", "elementwise_add", "rtl/elementwise_add.py",
      "        m.d.comb += [self.a.ready.eq(advance & self.b.valid), self.b.ready.eq(advance & self.a.valid)]",
      "        m.d.comb += [self.a.ready.eq(advance), self.b.ready.eq(advance & self.a.valid)]",
      "input a is taken without a word of b (the branches fall out of step)",
      "tests/test_rtl_elementwise_add.py"),
    M("elementwise_add.subtracts", "elementwise_add", "rtl/elementwise_add.py",
      "            m.d.sync += [self.o.payload[j].eq(self.a.payload[j] + self.b.payload[j]) for j in range(self.n)]",
      "            m.d.sync += [self.o.payload[j].eq(self.a.payload[j] - self.b.payload[j]) for j in range(self.n)]",
      "the join subtracts instead of adding",
      "tests/test_rtl_elementwise_add.py"),
    M("elementwise_add.width_of_one_operand", "elementwise_add", "rtl/elementwise_add.py",
      "    return range_shape(alo + blo, ahi + bhi)",
      "    return range_shape(min(alo, blo), max(ahi, bhi))",
      "the sum is as wide as the wider operand (it overflows)",
      "tests/test_rtl_elementwise_add.py -k golden"),
    M("threshold.runtime_keeps_built_thresholds", "threshold", "rtl/threshold.py",
      "                                         self.threshold_shape, self.folds, load=self.load if self.runtime else None,",
      "                                         self.threshold_shape, self.folds, load=None,",
      "a runtime threshold unit (a graph's add or pool) keeps the thresholds it was built with, ignoring the image",
      "tests/test_weights_runtime.py -k graph_loaded"),
    M("threshold.load_port_unconnected", "threshold", "rtl/threshold.py",
      "        wiring.connect(m, wiring.flipped(outer.load), threshold.load)",
      "        pass",
      "a runtime add's and pool's load port is not wired to their threshold RAMs: they are never written",
      "tests/test_weights_runtime.py -k graph_loaded"),
    M("elementwise_add.threshold_load_unconnected", "elementwise_add", "rtl/elementwise_add.py",
      "        connect_threshold_load(m, self, self.threshold)",
      "        pass",
      "a runtime add's threshold RAMs are never written (its load port goes nowhere)",
      "tests/test_weights_runtime.py -k graph_loaded"),
    M("global_pool.threshold_load_unconnected", "global_pool", "rtl/global_pool.py",
      "        connect_threshold_load(m, self, self.threshold)",
      "        pass",
      "a runtime global pool's threshold RAMs are never written (its load port goes nowhere)",
      "tests/test_weights_runtime.py -k graph_loaded"),
    M("global_pool.no_restart", "global_pool", "rtl/global_pool.py",
      "        first = pixel == 0",
      "        first = pixel == 1",
      "an image's sums start from the previous image's (the restart is on the wrong pixel)",
      "tests/test_rtl_global_pool.py -k golden"),
    M("global_pool.emits_a_pixel_early", "global_pool", "rtl/global_pool.py",
      "            with m.If(pixel == self.pixels - 1):",
      "            with m.If(pixel == self.pixels - 2):",
      "the sums are offered one pixel before the image ends (off by one)",
      "tests/test_rtl_global_pool.py -k golden"),
    M("global_pool.width_one_pixel_short", "global_pool", "rtl/global_pool.py",
      "        self.sum_shape = range_shape(lo * pixels, hi * pixels)",
      "        self.sum_shape = range_shape(lo * (pixels - 1), hi * (pixels - 1))",
      "the sum's width holds pixels - 1 terms (off by one: it overflows)",
      "tests/test_rtl_global_pool.py -k golden"),
    M("global_pool.withdrawn_untaken", "global_pool", "rtl/global_pool.py",
      "        with m.If(self.o.ready):",
      "        with m.If(self.o.valid):",
      "a sum is withdrawn after one cycle whether taken or not",
      "tests/test_rtl_global_pool.py -k golden"),
    M("residual_block.skip_one_word_short", "residual_block", "rtl/residual_block.py",
      "        self.skip = StreamFIFO(in_layout, skip_depth)",
      "        self.skip = StreamFIFO(in_layout, max(2, skip_depth - 1))",
      "the skip FIFO is one word shallower than asked (the computed depth no longer holds)",
      "tests/test_fifo_sizing.py -k \"keeps_the_branch_schedule or deadlocks\""),
    M("channel_concat.b_counts_a_words", "channel_concat", "rtl/channel_concat.py",
      "        last = Mux(b_turn, word == self.b_words - 1, word == self.a_words - 1)",
      "        last = Mux(b_turn, word == self.a_words - 1, word == self.a_words - 1)",
      "the second map's part of a pixel is as long as the first's",
      "tests/test_rtl_channel_concat.py"),
    M("channel_concat.takes_out_of_turn", "channel_concat", "rtl/channel_concat.py",
      "        m.d.comb += [self.a.ready.eq(advance & ~b_turn), self.b.ready.eq(advance & b_turn)]",
      "        m.d.comb += [self.a.ready.eq(advance), self.b.ready.eq(advance & b_turn)]",
      "the first input is taken while it is the second's turn (its words are dropped)",
      "tests/test_rtl_channel_concat.py"),
    M("channel_concat.valid_on_ready", "channel_concat", "rtl/channel_concat.py",
      "        with m.If(self.o.ready):",
      "        with m.If(self.o.valid):",
      "an output word is withdrawn after one cycle whether taken or not",
      "tests/test_rtl_channel_concat.py"),
    M("conv.im2col_order", "conv", "rtl/conv.py",
      "        matrix = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(ofm, k * k * ifm)",
      "        matrix = np.ascontiguousarray(w.transpose(0, 1, 2, 3)).reshape(ofm, k * k * ifm)",
      "weight columns in (c, ky, kx) order instead of the window's (ky, kx, c)",
      "tests/test_rtl_conv.py -k matches_golden"),
    M("conv.fifo_choice", "conv", "rtl/conv.py",
      "            fifo_depth = 0 if isinstance(simd, int) and simd > ifm else 2",
      "            fifo_depth = 0 if isinstance(simd, int) and simd >= ifm else 2",
      "no window FIFO for words of exactly one pixel (comparison off by one)",
      "tests/test_rtl_conv.py -k window_fifo"),
    M("lfsr.ignores_enable", "lfsr", "rtl/lfsr.py",
      "        with m.If(self.en):",
      "        with m.If(True):",
      "the LFSR advances without `en`",
      "tests/test_rtl_lfsr.py -k random_enable"),
    M("lfsr.lane_spacing", "lfsr", "rtl/lfsr.py",
      "    spacing = ((1 << width) - 1) // lanes",
      "    spacing = (1 << width) // lanes",
      "lane seeds spaced by 2^n / lanes instead of (2^n - 1) / lanes",
      "tests/test_rtl_lfsr.py"),
    M("stochastic_round.nearest_half", "stochastic_round", "rtl/stochastic_round.py",
      "        m.d.comb += s.eq(value + (1 << (d - 1)))",
      "        m.d.comb += s.eq(value + (1 << d))",
      "round to nearest adds a whole LSB instead of half",
      "tests/test_rtl_stochastic_round.py -k matches_golden"),
    M("stochastic_round.no_low_saturation", "stochastic_round", "rtl/stochastic_round.py",
      "    m.d.comb += out.eq(Mux(q > hi, hi, Mux(q < lo, lo, q)))",
      "    m.d.comb += out.eq(Mux(q > hi, hi, q))",
      "negative overflow wraps instead of saturating",
      "tests/test_rtl_stochastic_round.py -k matches_golden"),
    M("stochastic_round.lfsr_on_bubbles", "stochastic_round", "rtl/stochastic_round.py",
      "            m.d.comb += lfsr.en.eq(self.i.valid & advance)",
      "            m.d.comb += lfsr.en.eq(advance)",
      "the random bits advance on cycles without an input value",
      "tests/test_rtl_stochastic_round.py -k matches_golden"),
    M("systolic.accumulator_not_cleared", "systolic", "rtl/systolic.py",
      "                        m.d.sync += acc[i][j].eq(Mux(fst, 0, acc[i][j]) + a_in[i][j] * b_in[i][j])",
      "                        m.d.sync += acc[i][j].eq(acc[i][j] + a_in[i][j] * b_in[i][j])",
      "a PE's accumulator is not cleared at a tile's first step (missing reset)",
      "tests/test_rtl_systolic.py -k unstalled"),
    M("systolic.drain_ignores_ready", "systolic", "rtl/systolic.py",
      "        m.d.comb += [can_out.eq(~self.o.valid | self.o.ready), drain.eq(row_ready & can_out)]",
      "        m.d.comb += [can_out.eq(~self.o.valid | self.o.ready), drain.eq(row_ready)]",
      "a row drains into an output register still waiting for ready",
      "tests/test_rtl_systolic.py -k backpressure"),
    # ---- GEMM shell
    M("gemm.tile_never_ends", "gemm", "rtl/gemm.py",
      "            m.d.sync += [f_valid.eq(1), f_last.eq(k_rd == k_reg - 1)]",
      "            m.d.sync += [f_valid.eq(1), f_last.eq(k_rd == k_reg)]",
      "the feeder marks a tile's last step one late (never: k_rd wraps before)",
      _icarus("gemm[R3-C5-a[4, 8]-b[4, 8]-c[3, 3]-k_max32-panels2-a_chunk7-width32-pause0.5-products3-satTrue]")),
    M("gemm.panel_read_while_loading", "gemm", "rtl/gemm.py",
      "            a_here.eq((buf.a_full != 0) | ((buf.a_count != 0) & (buf.la_panel > f_i))),",
      "            a_here.eq((buf.a_full != 0) | ((buf.a_count != 0) & (buf.la_panel >= f_i))),",
      "the feeder reads an A panel that is still loading",
      _icarus("gemm[R3-C5-a[4, 8]-b[4, 8]-c[3, 3]-k_max32-panels2-a_chunk7-width32-pause0.5-products3-satTrue]") + " "
      + _icarus("gemm[R2-C5-a[1, 7]-b[1, 7]-c[2, 6]-k_max16-panels4-width32-pause0.2-products3-satTrue]")),
    M("gemm.serial_product_shift", "gemm", "rtl/gemm.py",
      "        m.d.sync += [mcand.eq(mcand << 1), mplier.eq(mplier >> 1)]",
      "        m.d.sync += [mcand.eq(mcand << 1), mplier.eq(mplier >> 2)]",
      "the shift-and-add product skips every other multiplier bit",
      _icarus("gemm[R3-C5-a[4, 8]-b[4, 8]-c[3, 3]-k_max32-panels2-a_chunk7-width32-pause0.5-products3-satTrue]")),
    # ---- network tops
    M("dataflow.argmax_last_on_ties", "dataflow", "rtl/dataflow.py",
      "            wins = self._if_score(word, p, cand_v[p] > wv)",
      "            wins = self._if_score(word, p, cand_v[p] >= wv)",
      "the arg-max index picks the last of equal scores in a word",
      "tests/test_dataflow.py -k argmax"),
    M("dataflow.argmax_keeps_last_frame", "dataflow", "rtl/dataflow.py",
      "        better = first | self._if_score(word, 0, wv > best)",
      "        better = self._if_score(word, 0, wv > best)",
      "the arg-max keeps the previous frame's best (missing reset)",
      "tests/test_dataflow.py -k argmax"),
    M("dataflow.graph_reads_first_fork_output", "dataflow", "rtl/dataflow.py",
      "                        wiring.connect(m, output_ports(by_name[source])[port], i)",
      "                        wiring.connect(m, output_ports(by_name[source])[0], i)",
      "every reader of a fork is wired to its first output (the others never drain)",
      "tests/test_graph_hardware.py -k amaranth"),
    M("dataflow.global_pool_one_pixel_short", "dataflow", "rtl/dataflow.py",
      "        return GlobalAveragePool(h * w, c, s.i.elems, _shape(s.i.elem), L.thresholds, runtime=plan.runtime,",
      "        return GlobalAveragePool(h * w - 1, c, s.i.elems, _shape(s.i.elem), L.thresholds, runtime=plan.runtime,",
      "the global pool of a graph sums one pixel fewer than the map holds",
      "tests/test_graph_hardware.py -k amaranth"),
    M("dataflow.residual_add_thresholds_shifted", "dataflow", "rtl/dataflow.py",
      "        return ResidualAdd(_shape(s.i.elem), _shape(s.i.elem), L.thresholds, pe=s.i.elems, runtime=plan.runtime,",
      "        return ResidualAdd(_shape(s.i.elem), _shape(s.i.elem), L.thresholds + 1, pe=s.i.elems, runtime=plan.runtime,",
      "a graph's add requantizes with every threshold one too high",
      "tests/test_graph_hardware.py -k amaranth"),
    M("dataflow.concat_words_swapped", "dataflow", "rtl/dataflow.py",
      "        return ChannelConcat(s.pixel_words(0), s.pixel_words(1), _shape(s.i.elem), s.i.elems)",
      "        return ChannelConcat(s.pixel_words(1), s.pixel_words(0), _shape(s.i.elem), s.i.elems)",
      "a graph's concat takes as many words a pixel of its first input as its second has",
      "tests/test_graph_hardware.py -k \"concat and amaranth\""),
    M("dataflow.concat_inputs_swapped", "dataflow", "rtl/dataflow.py",
      "    return [comp.a, comp.b] if isinstance(comp, (ResidualAdd, ChannelConcat)) else [comp.i]",
      "    return [comp.a, comp.b] if isinstance(comp, ResidualAdd) else [comp.b, comp.a] if isinstance(comp, ChannelConcat) else [comp.i]",
      "a graph's concat is wired with its inputs swapped (the second map's channels first)",
      "tests/test_graph_hardware.py -k \"concat and amaranth\""),
    M("highest_set_bit.keeps_last_frame", "highest_set_bit", "rtl/highest_set_bit.py",
      "        kept = Mux(word == 0, 0, best_idx)",
      "        kept = best_idx",
      "a frame with no set bit keeps the previous frame's label (missing reset)",
      "tests/test_rtl_highest_set_bit.py"),
    M("highest_set_bit.lowest_lane_wins", "highest_set_bit", "rtl/highest_set_bit.py",
      "        for p in range(pe):",
      "        for p in reversed(range(pe)):",
      "the lowest set bit of a word wins instead of the highest",
      "tests/test_rtl_highest_set_bit.py"),
    M("dataflow.load_during_frame", "dataflow", "rtl/dataflow.py",
      "            ld.busy.eq(in_flight != 0),",
      "            ld.busy.eq(0),",
      "a weights image is loaded while a frame is in flight",
      _icarus("weights_reload[netkbit]")),
    M("dataflow.last_stage_ignores_backpressure", "dataflow", "rtl/dataflow.py",
      "            last_o.ready.eq(self.o.ready),",
      "            last_o.ready.eq(1),",
      "the last stage is told ready while the output is stalled (words are lost)",
      "tests/test_sim_staged.py -k cycle_for_cycle"),
    M("dataflow.stage_chain_unchained", "dataflow", "rtl/dataflow.py",
      "        _chain(m, [comp for _, comp in self.parts])",
      "        _chain(m, [comp for _, comp in self.parts][:1])",
      "a per-layer model leaves its FIFO's output unconnected to the layer",
      "tests/test_sim_staged.py -k cycle_for_cycle"),
    M("dataflow.layer_chain_other_layers", "dataflow", "rtl/dataflow.py",
      "    return StageChain([(s.name, stage_component(plan, s, pipeline)) for s in plan.stages if s.layer.name == layer])",
      "    return StageChain([(s.name, stage_component(plan, s, pipeline)) for s in plan.stages if s.layer.name != layer])",
      "a per-layer model is made of the other layers' stages",
      "tests/test_sim_staged.py -k description"),
    M("stage_identity.thresholds_unhashed", "stage_identity", "sim/stage_identity.py",
      "        parts += [array_hash(L.weights), array_hash(L.thresholds)]",
      "        parts += [array_hash(L.weights)]",
      "a stage's key misses its thresholds: a stage with other thresholds is served the old Verilog",
      "tests/test_sim_staged.py -k description"),
    M("compiled.replaced_stage_remembered", "compiled", "sim/compiled.py",
      "        return [d if text is v else None for (d, text), (_, v) in zip(self._descriptions, self._stages)]",
      "        return [d for d, _ in self._descriptions]",
      "a stage replaced after construction is remembered as the Verilog its key describes",
      "tests/test_sim_staged.py -k valid_depends"),
    M("axis_accelerator.reset_polarity", "axis_accelerator", "rtl/axis_accelerator.py",
      "        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]",
      "        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(self.aresetn)]",
      "aresetn taken as active high",
      _icarus("network[configlfc_small.toml-frames8]")),
    M("axis_accelerator.long_frame_unreported", "axis_accelerator", "rtl/axis_accelerator.py",
      "            self.frame_error_pulse.eq(fc.short | fc.long),",
      "            self.frame_error_pulse.eq(fc.short),",
      "a long input frame raises no frame_error_pulse",
      _icarus("network[configlfc_small.toml-frames8]")),
]
del M


# ---------------------------------------------------------------- checking the list

def line_count(mutation, root=ROOT):
    """How many whole lines of the mutation's file equal its original line (1 when usable)."""
    path = Path(root) / mutation.file
    if not path.is_file():
        return 0
    return path.read_text().splitlines().count(mutation.original)


def apply(text, mutation):
    """``text`` with the mutation's line replaced (exactly one occurrence, else ValueError)."""
    lines = text.splitlines(keepends=True)
    hits = [k for k, ln in enumerate(lines) if ln.rstrip("\r\n") == mutation.original]
    if len(hits) != 1:
        raise ValueError(f"{mutation.id}: the original line occurs {len(hits)} times in {mutation.file}")
    k = hits[0]
    end = lines[k][len(mutation.original):]
    lines[k] = mutation.mutated + end
    return "".join(lines)


def module_name(file):
    """The import name of a repository file under the package-dir mapping (rtl/x.py -> qnnfab.rtl.x)."""
    for pkg, folder in sorted(_package_dirs(ROOT).items(), key=lambda kv: -len(kv[1])):
        rel = Path(file).with_suffix("")
        if rel.parent == Path(folder):
            return f"{pkg}.{rel.name}" if rel.name != "__init__" else pkg
    raise ValueError(f"{file} is in no package of pyproject.toml")


def _package_dirs(root):
    """{package: folder relative to ``root``} from pyproject.toml's setuptools section."""
    tool = tomllib.loads((Path(root) / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = dict(tool.get("package-dir", {}))
    for pkg in tool.get("packages", []):
        if pkg not in dirs:
            parent, _, leaf = pkg.rpartition(".")
            dirs[pkg] = f"{dirs[parent]}/{leaf}" if parent in dirs else pkg.replace(".", "/")
    return dirs


# ---------------------------------------------------------------- scratch copies

_SITECUSTOMIZE = '''\
# written by bench/bench_mutations.py: import qnnfab from the scratch copy, not the editable install
import importlib.util
import sys

_DIRS = {dirs!r}


class _ScratchCopyFinder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        folder = _DIRS.get(name)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(name, folder + "/__init__.py",
                                                      submodule_search_locations=[folder])

    @classmethod
    def invalidate_caches(cls):
        pass


sys.meta_path.insert(0, _ScratchCopyFinder)
'''

_PROBE = '''\
# written by bench/bench_mutations.py: where every qnnfab module of the test run came from
import json
import os
import sys


def pytest_sessionfinish(session, exitstatus):
    files = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())
             if n == "qnnfab" or n.startswith("qnnfab.")}
    with open(os.environ["QNNFAB_MUTANT_PROBE"], "w") as f:
        json.dump({"files": files, "collected": session.testscollected}, f)
'''

PROBE_PLUGIN = "qnnfab_mutant_probe"


def _repo_files(root):
    """Tracked and untracked, not ignored files of the working tree (what a copy needs)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=root, capture_output=True, check=True).stdout.decode()
    for rel in sorted(set(p for p in out.split("\0") if p)):
        if "__pycache__" in rel or rel.endswith(".pyc"):
            continue
        if (Path(root) / rel).is_file():
            yield rel


class Scratch:
    """One copy of the repository with its import shim; mutates one file at a time."""

    def __init__(self, base, k, files):
        self.dir = Path(base) / f"w{k}"
        self.repo = self.dir / "repo"
        self.shim = self.dir / "shim"
        for rel in files:
            dst = self.repo / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / rel, dst)
        self.shim.mkdir(parents=True)
        dirs = {pkg: str(self.repo / folder) for pkg, folder in _package_dirs(self.repo).items()}
        (self.shim / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(dirs=dirs))
        (self.shim / f"{PROBE_PLUGIN}.py").write_text(_PROBE)
        self.probe = self.dir / "probe.json"

    def env(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.shim)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env["PYTHONDONTWRITEBYTECODE"] = "1"      # no stale .pyc of a mutated file, ever
        env["QNNFAB_MUTANT_PROBE"] = str(self.probe)
        return env

    def inside(self, path):
        try:
            Path(path).resolve().relative_to(self.repo.resolve())
            return True
        except (TypeError, ValueError):
            return False

    def check_imports(self, module):
        """Import ``module`` in the copy's environment: (ok, file or error text)."""
        code = f"import importlib; print(importlib.import_module({module!r}).__file__)"
        r = subprocess.run([sys.executable, "-c", code], cwd=self.repo, env=self.env(),
                           capture_output=True, text=True)
        if r.returncode:
            return False, (r.stderr.strip().splitlines() or ["?"])[-1]
        return True, r.stdout.strip()


# ---------------------------------------------------------------- running

@dataclass
class Result:
    mutation: Mutation
    status: str          # killed, survived, unexercised, stale
    note: str
    seconds: float


_running = set()             # process groups of running pytest processes (for Ctrl-C)
_running_lock = threading.Lock()


def _run_tests(scratch, mutation, timeout):
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", PROBE_PLUGIN,
           *shlex.split(mutation.tests)]
    if scratch.probe.exists():
        scratch.probe.unlink()
    proc = subprocess.Popen(cmd, cwd=scratch.repo, env=scratch.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    with _running_lock:
        _running.add(proc.pid)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out
    finally:
        with _running_lock:
            _running.discard(proc.pid)


def _tail(out, n=3):
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def run_one(scratch, mutation, timeout):
    t0 = time.monotonic()
    path = scratch.repo / mutation.file
    pristine = (ROOT / mutation.file).read_text()
    if path.read_text() != pristine:
        raise RuntimeError(f"scratch copy of {mutation.file} is not the working tree's (a restore failed)")
    try:
        mutated = apply(pristine, mutation)
    except ValueError as e:
        return Result(mutation, "stale", str(e), 0.0)
    module = module_name(mutation.file)
    try:
        path.write_text(mutated)
        ok, where = scratch.check_imports(module)
        if not ok:
            return Result(mutation, "killed*", f"does not import: {where}", time.monotonic() - t0)
        if not scratch.inside(where):
            raise RuntimeError(f"{module} imported from {where}, not from the scratch copy {scratch.repo}: "
                               "the import shim failed, no result can be trusted")
        rc, out = _run_tests(scratch, mutation, timeout)
    finally:
        path.write_text(pristine)
    dt = time.monotonic() - t0
    if rc is None:
        return Result(mutation, "killed*", f"no result after {timeout:.0f} s (a hang?)", dt)
    probe = json.loads(scratch.probe.read_text()) if scratch.probe.exists() else None
    if probe is not None:
        outside = {n: f for n, f in probe["files"].items() if f and not scratch.inside(f)}
        if outside:
            raise RuntimeError(f"the tests of {mutation.id} imported qnnfab modules from outside the "
                               f"scratch copy: {outside}; no result can be trusted")
    if rc in (4, 5) or (probe is not None and probe["collected"] == 0):
        return Result(mutation, "stale", f"the selection runs no test ({_tail(out, 1)})", dt)
    if rc == 1:
        return Result(mutation, "killed", _tail(out, 1), dt)
    if rc != 0:
        return Result(mutation, "killed*", f"pytest exit {rc}: {_tail(out)}", dt)
    if probe is None or module not in probe["files"]:
        return Result(mutation, "unexercised", f"the tests pass without importing {module}", dt)
    return Result(mutation, "survived", _tail(out, 1), dt)


def _line(r, k, n):
    extra = f"  [pending: {r.mutation.pending}]" if r.mutation.pending and r.status == "survived" else ""
    return f"[{k:>{len(str(n))}}/{n}] {r.status:<11} {r.seconds:7.1f} s  {r.mutation.id}: {r.note}{extra}"


def print_list(mutations):
    for mu in mutations:
        n = line_count(mu)
        state = "" if n == 1 else f"  STALE: the original line occurs {n} times"
        pend = f"  (pending: {mu.pending})" if mu.pending else ""
        print(f"{mu.id}  [{mu.component}, {mu.file}]{state}{pend}\n    bug:   {mu.bug}\n"
              f"    -{mu.original.strip()}\n    +{mu.mutated.strip()}\n    tests: {mu.tests}")


def summary(results):
    print("\n" + f"{'mutation':<44} {'component':<17} {'result':<12} {'seconds':>8}")
    for r in results:
        pend = "  (pending)" if r.mutation.pending else ""
        print(f"{r.mutation.id:<44} {r.mutation.component:<17} {r.status:<12} {r.seconds:8.1f}{pend}")
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    killed = counts.get("killed", 0) + counts.get("killed*", 0)
    print(f"\n{len(results)} mutations: {killed} killed ({counts.get('killed*', 0)} of them by an import "
          f"error, a pytest error or the time limit), {counts.get('survived', 0)} survived, "
          f"{counts.get('unexercised', 0)} unexercised, {counts.get('stale', 0)} stale")
    for r in results:
        if r.status in ("survived", "unexercised", "stale"):
            pend = f" (pending: {r.mutation.pending})" if r.mutation.pending else ""
            print(f"  {r.status}: {r.mutation.id} ({r.mutation.file}): {r.mutation.bug}{pend}")
    return 0 if all(r.status in ("killed", "killed*") for r in results) else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="SUBSTRING", help="run the mutations whose id, component or file contains it")
    ap.add_argument("--list", action="store_true", help="print the list (and stale entries) and exit")
    ap.add_argument("--jobs", type=int, default=1, help="mutations run at once, each in its own copy (default 1)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds one mutation's tests may take before it counts as killed (a hang; default 3600)")
    args = ap.parse_args(argv)
    chosen = [mu for mu in MUTATIONS if not args.only or any(args.only in s for s in (mu.id, mu.component, mu.file))]
    if not chosen:
        raise SystemExit(f"bench_mutations: no mutation matches --only {args.only!r}")
    if args.list:
        print_list(chosen)
        return 0 if all(line_count(mu) == 1 for mu in chosen) else 1
    if args.jobs < 1:
        raise SystemExit("bench_mutations: --jobs must be at least 1")

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)      # also when started in the background (SIGINT ignored)
    base = Path(tempfile.mkdtemp(prefix="qnnfab-mutants-"))
    results = []
    try:
        files = list(_repo_files(ROOT))
        jobs = min(args.jobs, len(chosen))
        scratches = [Scratch(base, k, files) for k in range(jobs)]
        for s in scratches:      # the shim must work before any result is trusted
            ok, where = s.check_imports("qnnfab.rtl")
            if not ok or not s.inside(where):
                raise SystemExit(f"bench_mutations: qnnfab.rtl imports from {where!r}, not from the scratch "
                                 f"copy {s.repo}")
        print(f"{len(chosen)} mutations, {jobs} at a time, scratch copies in {base}", flush=True)
        free = list(scratches)
        free_lock = threading.Lock()

        def task(mu):
            with free_lock:
                s = free.pop()
            try:
                return run_one(s, mu, args.timeout)
            finally:
                with free_lock:
                    free.append(s)

        done = 0
        by_id = {}
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            # entries waiting for a test written elsewhere run last: the rest report first
            futures = [pool.submit(task, mu) for mu in sorted(chosen, key=lambda mu: bool(mu.pending))]
            try:
                for fut in as_completed(futures):
                    r = fut.result()
                    done += 1
                    by_id[r.mutation.id] = r
                    print(_line(r, done, len(chosen)), flush=True)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                with _running_lock:
                    for pid in list(_running):
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                raise
        results = [by_id[mu.id] for mu in chosen]
    except KeyboardInterrupt:
        print("\nbench_mutations: interrupted; the working tree was never modified", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())

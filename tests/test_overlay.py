"""The overlay's pieces on Amaranth's simulator: the buffer formats the driver
writes and reads against the shell's unpacker and packer, the register map
and the generated files (the AXI4-Lite register file and the DMAs have their
own files, test_rtl_axil_registers.py and test_rtl_axi_dma.py). The whole
shell with the driver runs in the ``overlay`` cocotb regression."""

import json
import random

import numpy as np
import pytest

from qnnfab import overlay_map as om
from qnnfab.boards.onboard.driver import pack_inputs, unpack_records
from qnnfab.rtl.frame_unpacker import FrameUnpacker
from qnnfab.rtl.record_packer import RecordPacker
from qnnfab.sim.amaranth_stream import StreamSink, StreamSource, run_streams, stream_through


def formats(**kw):
    base = dict(name="t", input_shape=[12], input_kind="bipolar", input_bits=1, in_simd=4, out_elems=2,
                out_bits=7, out_signed=True, out_words=3, topology_hash=0x1234, bus_bytes=8,
                runtime_weights=False)
    base.update(kw)
    return om.Formats(**base)


def element_words(fm, images):
    """The accelerator's input words, from the definition: SIMD elements per
    word, element 0 at the LSBs, ``input_bits`` two's complement bits each."""
    mask = (1 << fm.input_bits) - 1
    words = []
    for img in images.reshape(images.shape[0], -1):
        for k in range(0, img.size, fm.in_simd):
            words.append(sum((int(v) & mask) << (j * fm.input_bits) for j, v in enumerate(img[k:k + fm.in_simd])))
    return words


@pytest.mark.parametrize("kw", [
    dict(input_kind="bipolar", input_bits=1, in_simd=4, input_shape=[12], bus_bytes=8),    # 4-bit words in bytes
    dict(input_kind="uint", input_bits=5, in_simd=3, input_shape=[4, 3, 3], bus_bytes=4),  # 15 bits in 2 bytes
    dict(input_kind="int", input_bits=8, in_simd=3, input_shape=[2, 2, 6], bus_bytes=8),   # 24 bits in 4 bytes
    dict(input_kind="int", input_bits=8, in_simd=8, input_shape=[16], bus_bytes=8),        # slot = bus word
    dict(input_kind="uint", input_bits=4, in_simd=24, input_shape=[48], bus_bytes=4),      # 96 bits over 4 words
], ids=["bipolar-4", "uint5x3-bus32", "int8x3", "slot-is-bus", "slot-spans-4-bus-words"])
def test_unpacker_turns_the_drivers_input_buffer_into_the_networks_input_words(kw):
    fm = formats(**kw)
    rng = np.random.default_rng(1)
    lo, hi = (0, 2) if fm.input_kind == "bipolar" else (
        (0, 1 << fm.input_bits) if fm.input_kind == "uint" else (-(1 << fm.input_bits - 1), 1 << fm.input_bits - 1))
    images = rng.integers(lo, hi, size=(5,) + fm.input_shape)
    buf = pack_inputs(fm, images)
    assert buf.shape == (5, fm.in_frame_bytes)
    beats = [int.from_bytes(bytes(buf.reshape(-1)[k:k + fm.bus_bytes]), "little")
             for k in range(0, buf.size, fm.bus_bytes)]
    want = element_words(fm, images)
    dut = FrameUnpacker(8 * fm.bus_bytes, fm.in_word_bits, 8 * fm.in_slot_bytes, fm.in_words)
    result = stream_through(dut, beats, len(want), 0.7, 0.6, seed=2)
    assert len(result.in_cycles) == len(beats), f"{len(result.in_cycles)} of {len(beats)} bus words taken"
    assert result.words == want


@pytest.mark.parametrize("kw", [
    dict(out_elems=2, out_bits=7, out_signed=True, out_words=3, bus_bytes=8),     # 14-bit words, 2 slots per beat
    dict(out_elems=5, out_bits=7, out_signed=False, out_words=2, bus_bytes=8),    # lfc_small: 35 bits in 8 bytes
    dict(out_elems=3, out_bits=9, out_signed=True, out_words=1, bus_bytes=16),    # padding inside one beat
    dict(out_elems=10, out_bits=9, out_signed=True, out_words=1, bus_bytes=4),    # 90 bits over 4 bus words
], ids=["two-per-beat", "lfc-small", "bus128", "slot-spans-4-bus-words"])
def test_packer_records_read_back_by_the_driver_as_the_scores_and_labels_fed_in(kw):
    fm = formats(**kw)
    rng = np.random.default_rng(3)
    frames = 6
    lo, hi = (-(1 << fm.out_bits - 1), 1 << fm.out_bits - 1) if fm.out_signed else (0, 1 << fm.out_bits)
    scores = rng.integers(lo, hi, size=(frames, fm.n_scores))
    labels = rng.integers(0, fm.n_scores, size=frames)
    mask = (1 << fm.out_bits) - 1
    words = [[sum((int(v) & mask) << (j * fm.out_bits) for j, v in enumerate(row[w * fm.out_elems:(w + 1) * fm.out_elems]))
              for w in range(fm.out_words)] for row in scores]
    dut = RecordPacker(8 * fm.bus_bytes, fm.out_word_bits, 8 * fm.out_slot_bytes, 8)
    n_beats = frames * fm.out_record_beats
    pyrng = random.Random(4)
    src = StreamSource(dut.scores, [{"data": words[f][w], "last": int(w == fm.out_words - 1)}
                                    for f in range(frames) for w in range(fm.out_words)],
                       valid_prob=0.8, rng=pyrng, name="scores")
    snk = StreamSink(dut.o, ready_prob=0.6, rng=pyrng, name="o")
    done = []

    def label(ctx, cycle):   # as Dataflow: the frame's label the cycle after its last word transferred
        sent = len(src.sent_cycles)
        due = sent and src.sent_cycles[-1] == cycle - 1 and sent % fm.out_words == 0
        ctx.set(dut.label_valid, bool(due))
        ctx.set(dut.label, int(labels[sent // fm.out_words - 1]) if due else pyrng.getrandbits(8))

    run_streams(dut, [src], [snk], [n_beats], max_cycles=40 * n_beats + 100, extra_cycles=8, drivers=[label],
                monitors=[lambda ctx, cycle: done.append(ctx.get(dut.record_done))])
    beats = snk.words
    assert len(beats) == n_beats, f"{len(beats)} bus words came out, expected {n_beats}"
    assert sum(done) == frames
    raw = b"".join(b.to_bytes(fm.bus_bytes, "little") for b in beats)
    records = np.frombuffer(raw, np.uint8).reshape(frames, fm.out_record_bytes)
    got_scores, got_labels, index = unpack_records(fm, records)
    assert np.array_equal(got_scores, scores)
    assert np.array_equal(got_labels, labels)
    assert np.array_equal(index, np.arange(frames))
    pad = records[:, fm.out_items * fm.out_slot_bytes:]
    assert not pad.any(), "record padding is not zero"


def test_formats_round_trip_and_register_map_is_consistent():
    fm = formats()
    assert om.Formats.from_dict(json.loads(json.dumps(fm.to_dict()))) == fm
    assert fm.in_slot_bytes == 1 and fm.in_frame_bytes == 8          # 3 words of 4 bits, one bus word
    assert fm.out_slot_bytes == 4 and fm.out_record_bytes == 16       # 3 score words + label, 4 bytes each
    offsets = [r.offset for r in om.REGISTERS]
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 and o < om.BLOCK_BYTES for o in offsets)
    assert len(set(om.ERRORS.values())) == len(om.ERRORS)
    assert om.slot_bytes(24) == 4 and om.slot_bytes(35) == 8 and om.slot_bytes(3, minimum=4) == 4


def test_label_rule_reaches_network_json_and_the_driver_only_when_not_the_default():
    from pathlib import Path
    from qnnfab import netconfig
    from qnnfab.boards.onboard.driver import Accelerator
    from qnnfab.plan import plan_of
    text = (Path(__file__).resolve().parents[1] / "configs" / "lfc_small.toml").read_text()
    plain = plan_of(netconfig.loads(text)).overlay_formats(64)
    assert plain.label_rule == "argmax" and "label_rule" not in plain.to_dict()   # network.json unchanged
    one_bit = netconfig.loads(text.replace('act = "acc"', 'act = "bipolar"').replace(
        "[network]\n", '[network]\nlabel = "highest_set_bit"\n'))
    fm = plan_of(one_bit).overlay_formats(64)
    again = om.Formats.from_dict(json.loads(json.dumps(fm.to_dict())))
    assert again.label_rule == "highest_set_bit" and again == fm
    acc = Accelerator.__new__(Accelerator)          # the label rule needs no board
    acc.formats = again
    bits = np.array([[0, 1, 0, 1, 0, 0, 0, 0, 0, 0], [0] * 10, [1] * 10])
    assert acc.label_rule == "highest_set_bit" and acc.labels_of(bits).tolist() == [3, 0, 9]


def test_generated_driver_folder_runs_without_qnnfab(tmp_path):
    """driver.py next to its map and network.json imports with numpy only."""
    import subprocess
    import sys
    from qnnfab import netconfig
    from qnnfab.boards.emit.overlay import driver_files, overlay_verilog
    from pathlib import Path
    cfg = netconfig.load(Path(__file__).resolve().parents[1] / "configs" / "lfc_small.toml")
    name, text = overlay_verilog(cfg)
    assert name == "qnnfab_lfc_small_overlay" and f"module {name}(" in text
    for port in ("ap_clk", "ap_rst_n", "interrupt", "s_axi_control_awaddr", "m_axi_gmem_arlen", "m_axi_gmem_wstrb"):
        assert port in text
    for fname, body in driver_files(cfg).items():
        (tmp_path / fname).write_text(body)
    from qnnfab import packing
    assert (tmp_path / "qnnfab_packing.py").read_text() == Path(packing.__file__).read_text()
    code = ("import sys; sys.modules['qnnfab'] = None\n"
            "import numpy as np, driver, qnnfab_packing, qnnfab_weights_image\n"
            "assert driver.packing is qnnfab_packing, driver.packing\n"
            "assert qnnfab_weights_image.pack_fields is qnnfab_packing.pack_fields\n"
            "fm = driver.om.Formats.from_dict(__import__('json').load(open('network.json')))\n"
            "b = driver.pack_inputs(fm, np.ones((2, 64), np.uint8))\n"
            "print(fm.name, b.shape, b[0, :8].tolist())\n"
            "print(qnnfab_packing.__file__)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "lfc-small" and "[255, 255, 255, 255, 255, 255, 255, 255]" in out.stdout
    assert Path(out.stdout.splitlines()[1]) == tmp_path / "qnnfab_packing.py"   # the copy, not qnnfab's


@pytest.mark.parametrize("bus_bits", [32, 64, 128])
@pytest.mark.parametrize("words", [1, 5])
def test_weight_words_cuts_the_image_into_64_bit_words_with_last_on_the_final_one(bus_bits, words):
    from qnnfab.rtl.weight_words import WeightWords
    rng = random.Random(bus_bits * 10 + words)
    image = [rng.getrandbits(64) for _ in range(words)]
    raw = b"".join(w.to_bytes(8, "little") for w in image)
    bus_bytes = bus_bits // 8
    raw += bytes(-len(raw) % bus_bytes)
    beats = [int.from_bytes(raw[k:k + bus_bytes], "little") for k in range(0, len(raw), bus_bytes)]
    dut = WeightWords(bus_bits)
    src = StreamSource(dut.i, [], valid_prob=0.7, rng=rng, name="i")
    snk = StreamSink(dut.o, ready_prob=0.6, rng=rng, name="o")
    starts = [0]                                 # two loads: the count restarts with start

    def load(ctx, cycle):                        # a start cycle, then the image's bus words
        ctx.set(dut.words, words)
        ctx.set(dut.start, cycle == starts[-1])
        if cycle == starts[-1] + 1:
            src.send(beats)
        elif len(starts) == 1 and cycle > 1 and src.idle and len(snk.words) == words:
            starts.append(cycle + 1)

    run_streams(dut, [src], [snk], [2 * words], max_cycles=40 * len(beats) + 100, extra_cycles=8, drivers=[load])
    assert len(src.sent_cycles) == 2 * len(beats), f"{len(src.sent_cycles)} of 2 x {len(beats)} bus words taken"
    out = [(w & (2**64 - 1), w >> 64) for w in snk.words]
    got = [out[:words], out[words:]]
    want = [(w, int(j == words - 1)) for j, w in enumerate(image)]
    assert got == [want, want]


def test_driver_looks_for_the_shell_under_the_block_designs_cell_name():
    """The driver (no qnnfab on the board) keeps its own copy of the cell name."""
    from qnnfab.boards.onboard import driver
    from qnnfab.boards.emit.vivado import SHELL_CELL
    assert driver.SHELL_CELL == SHELL_CELL

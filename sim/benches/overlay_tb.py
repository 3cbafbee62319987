"""The overlay shell + accelerator driven by the board's Python driver, with cocotbext-axi as the board.

The PS is an ``AxiLiteMaster`` on ``s_axi_control``, DDR an ``AxiRam`` on
``m_axi_gmem`` with random pauses on its five channels; the blocking driver
(:class:`qnnfab.boards.onboard.driver.Accelerator`) runs in a thread through
``cocotb.task.bridge``/``resume`` (:class:`CosimBackend`) and waits on the
interrupt. Every frame's scores and label are compared with the golden model;
all of DDR outside the output records of a run is compared with a host
shadow copy after every run (random guard bytes everywhere else).

Case parameters: ``config``, ``frames`` (batch sizes run in turn),
``width`` (AXI data bits), ``batch_size`` (driver chunk), ``pause``
(probability of a pause per channel and cycle), ``bad_use`` (the error and
recovery cases instead), ``measure`` (one unstalled batch, figures only),
``runtime`` (a runtime-weights build: the driver loads networks A, B, A and
bad images instead; with ``odd_image`` the image must end in the middle of a
bus word). Every case runs under the board's progress watchdog
(:class:`~qnnfab.sim.axi_board.ShellWatch`): a run whose AXI channels stop
fails at once, naming the channel.
"""

import cocotb
import numpy as np
from cocotb.task import bridge
from cocotb.triggers import ClockCycles, RisingEdge, ReadOnly

from qnnfab import netconfig
from qnnfab import overlay_map as om
from qnnfab import weights_image as wi
from qnnfab.packing import frame_labels
from qnnfab.plan import plan_of
from qnnfab.sim.axi_board import Board, CosimBackend
from qnnfab.sim.configs import config_path
from qnnfab.sim.stream import bench_params, bench_random, write_metrics
from qnnfab.golden.graph_network import graph_forward

from .weights_reload_tb import NETS

# the residual graph of the weights_reload regression (its adds' and global pool's thresholds are in the image)
RESIDUAL_GRAPH = NETS["graph"]
# its graph of channel concatenations (two concats, one with a branch straight from the fork)
CONCAT_GRAPH = NETS["concat"]

NAME = "overlay"
KBIT_FC = """
[network]
name = "fc-kbit"
input_shape = [24]
input_kind = "uint"
input_bits = 4
weights = "random"
seed = 5

[[layer]]
name = "fc0"
type = "fc"
out = 16
act = "uint2"
weight_kind = "int"
weight_bits = 2
pe = 4
simd = 6

[[layer]]
name = "fc_out"
type = "fc"
out = 6
act = "acc"
weight_kind = "int"
weight_bits = 3
pe = 3
simd = 4
"""
# the demo's network (qnnfab demo: digits MLP 64-256-256-10 on 5-bit pixels,
# default folding) with random weights, and a network whose input stream
# needs a full 64-bit bus word every cycle (the read DMA at full rate)
DIGITS_MLP = """
[network]
name = "digits-mlp"
input_shape = [64]
input_kind = "uint"
input_bits = 5
weights = "random"
seed = 7
""" + "".join(f"""
[[layer]]
name = "{n}"
type = "fc"
out = {o}
act = "{a}"
pe = {pe}
simd = {simd}
""" for n, o, a, pe, simd in (("fc0", 256, "bipolar", 16, 8), ("fc1", 256, "bipolar", 16, 32),
                              ("fc_out", 10, "acc", 10, 32)))
DMA_BOUND = """
[network]
name = "dma-bound"
input_shape = [1024]
input_kind = "bipolar"
weights = "random"
seed = 8

[[layer]]
name = "fc_out"
type = "fc"
out = 8
act = "acc"
pe = 8
simd = 64
"""
# fc-kbit with fc0 of 12 outputs on SIMD 8: its runtime weights image is 27
# 64-bit words, so on a 128-bit bus it ends in the middle of a bus word
KBIT_FC_ODD_IMAGE = KBIT_FC.replace('name = "fc-kbit"', 'name = "fc-kbit-odd"').replace(
    "out = 16", "out = 12").replace("simd = 6", "simd = 8")
NAMED_CONFIGS = {"fc-kbit": KBIT_FC, "fc-kbit-odd": KBIT_FC_ODD_IMAGE, "digits-mlp": DIGITS_MLP,
                 "dma-bound": DMA_BOUND, "res-small": RESIDUAL_GRAPH,
                 "concat-small": CONCAT_GRAPH}
CASES = [
    {"config": "lfc_small.toml", "frames": [1, 7, 100], "width": 64, "batch_size": 64, "pause": 0.3},
    {"config": "cnv_small.toml", "frames": [7], "width": 64, "batch_size": 4, "pause": 0.3},
    {"config": "resnet_tiny.toml", "frames": [1, 7], "width": 64, "batch_size": 4, "pause": 0.3},
    {"config": "fc-kbit", "frames": [1, 7], "width": 32, "batch_size": 8, "pause": 0.5},
    {"config": "fc-kbit", "frames": [7], "width": 128, "batch_size": 8, "pause": 0.2},
    {"config": "lfc_small.toml", "bad_use": True, "width": 64, "pause": 0.3},
    {"config": "fc-kbit", "runtime": True, "frames": [7], "width": 64, "batch_size": 8, "pause": 0.3},
    {"config": "fc-kbit-odd", "runtime": True, "odd_image": True, "frames": [3], "width": 128, "batch_size": 4,
     "pause": 0.3},
    {"config": "res-small", "runtime": True, "frames": [3], "width": 64, "batch_size": 4, "pause": 0.3},
    {"config": "concat-small", "runtime": True, "frames": [3], "width": 64, "batch_size": 4, "pause": 0.3},
]



def load_config(params, seed=None):
    """The case's network; with ``runtime``, in weights_mode runtime (``seed``: other random weights)."""
    if params["config"] in NAMED_CONFIGS:
        # (random weights: no folder to find them in)
        text, source, base = NAMED_CONFIGS[params["config"]], f"overlay_tb {params['config']}", "."
    else:
        p = config_path(params["config"])
        if not params.get("runtime"):
            return netconfig.load(p)
        text, source, base = p.read_text(), str(p), p.parent
    if params.get("runtime"):
        text = text.replace("[network]\n", '[network]\nweights_mode = "runtime"\n', 1)
        if seed is not None:
            text = "\n".join(f"seed = {seed}" if ln.startswith("seed =") else ln for ln in text.splitlines())
    return netconfig.loads(text, base, source=source)


def design(params):
    from qnnfab.rtl.overlay import OverlayShell
    return OverlayShell(load_config(params), params.get("width", 64))


def formats(params):
    """The shell's buffer formats (from the network's plan)."""
    return plan_of(load_config(params)).overlay_formats(params.get("width", 64))


def frame_cycles(params):
    """Cycles of one frame's trip through every stage of the accelerator (its model)."""
    return sum(c for _, c in plan_of(load_config(params)).model)


def summarize(result):
    m = result.metrics
    if "shell_cycles_per_frame" not in m:
        return f"{m.get('frames_checked', 0)} frames equal to golden" + (
            f"; {m['bad_use_cases']} bad-use cases ended in their status" if "bad_use_cases" in m else "")
    return (f"{m['frames']} frames: shell {m['shell_cycles_per_frame']:.1f} cycles/frame steady state, "
            f"run {m['run_cycles']} cycles; read {m['read_beats_per_cycle']:.3f} beats/cycle, "
            f"write {m['write_beats_per_cycle']:.3f}")


# ---------------------------------------------------------------------------

def network_images(cfg, n, rng):
    """Random images in the driver's input types: bool (bipolar), uint8, int8."""
    x = cfg.random_inputs(n, rng.getrandbits(32))
    if cfg.input_kind == "bipolar":
        return x.astype(bool)
    return x.astype(np.uint8 if cfg.input_kind == "uint" else np.int8)


def input_images(cfg, n, rng):
    """``params["inputs"]`` (an .npz with ``x`` of shape (B,) + input_shape)
    when given, else random images."""
    if not P.get("inputs"):
        return network_images(cfg, n, rng)
    x = np.load(P["inputs"])["x"][:n]
    if x.shape[1:] != cfg.input_shape:
        raise AssertionError(f"inputs {P['inputs']}: images of shape {x.shape[1:]}, the network takes "
                             f"{cfg.input_shape}")
    return x.astype(np.uint8) if cfg.input_kind == "uint" else x.astype(network_images(cfg, 1, rng).dtype)


def golden(cfg, images):
    """Scores and labels of the golden model (chains and graphs alike)."""
    scores = graph_forward(cfg, images.astype(np.int64)).reshape(images.shape[0], -1)
    return scores, frame_labels(scores, cfg.label)


def compare(n, got_scores, got_labels, want_scores, want_labels, what):
    for f in range(n):
        if not np.array_equal(got_scores[f], want_scores[f]):
            raise AssertionError(f"{what}: frame {f} scores {got_scores[f].tolist()}, golden "
                                 f"{want_scores[f].tolist()}")
        if got_labels[f] != want_labels[f]:
            raise AssertionError(f"{what}: frame {f} label {got_labels[f]}, golden {want_labels[f]}")


def make_accelerator(board, shell_formats, batch_size):
    from qnnfab.boards.onboard.driver import Accelerator
    return Accelerator(network=shell_formats.to_dict(), backend=CosimBackend(board), batch_size=batch_size)


P = bench_params()


async def _setup(salt):
    dut = cocotb.top
    rng = bench_random(salt)
    board = Board(dut, rng, P.get("pause", 0.0), frame_cycles=frame_cycles(P))
    await board.reset()
    return board, rng, load_config(P), formats(P)


if not P.get("bad_use") and not P.get("measure") and not P.get("runtime"):
    @cocotb.test()
    async def driver_scores_and_labels_equal_golden_under_random_axi_pauses(dut):
        board, rng, cfg, fm = await _setup(1)
        acc = await bridge(make_accelerator)(board, fm, P["batch_size"])
        checked = 0
        for n in P["frames"]:
            images = input_images(cfg, n, rng)
            scores, labels = await bridge(acc.run)(images)
            cycles_of_last = acc.last_cycles
            k = min(n, acc.batch_size)
            out = acc.out_buf.device_address
            problem = board.check_ddr([(out, out + k * fm.out_record_bytes)])
            assert problem is None, f"batch of {n}: {problem}"
            want_scores, want_labels = golden(cfg, images)
            compare(n, scores, labels, want_scores, want_labels, f"batch of {n}")
            last = n - (n - 1) // acc.batch_size * acc.batch_size
            frames_done = await board.axil.read_dword(om.OFFSET["FRAMES_DONE"])
            assert frames_done == last, f"FRAMES_DONE {frames_done} after a last chunk of {last} frames"
            checked += n
            labels_of_last = labels.tolist()
        # the other entry points on the last images
        assert np.array_equal(await bridge(acc.classify)(images), want_labels)
        assert np.array_equal(await bridge(acc.scores)(images[0]), want_scores[:1])
        board.check_ddr([(out, out + acc.batch_size * fm.out_record_bytes)])
        write_metrics(frames_checked=checked, labels=labels_of_last, cycles=cycles_of_last)


# ---------------------------------------------------------------------------
# bad use: every case ends in its status, idle, DDR untouched; then a good run

async def read_reg(board, name):
    return await board.axil.read_dword(om.OFFSET[name])


async def write_reg(board, name, value):
    await board.axil.write_dword(om.OFFSET[name], value)


async def wait_idle(board, max_cycles=50_000):
    """Poll STATUS until BUSY clears; a hang fails after ``max_cycles``."""
    for _ in range(max_cycles // 100):
        status = await read_reg(board, "STATUS")
        if not status & om.STATUS_BUSY:
            return status
        await ClockCycles(board.dut.ap_clk, 100)
    raise AssertionError(f"shell still busy after {max_cycles} cycles (STATUS 0x{status:x}): it hangs")


async def expect_end(board, what, code, allowed=(), done=True, irq=True):
    """The command ended idle with STATUS (DONE unless ``done`` is false) and ERROR ``code``,
    ``interrupt`` high exactly when DONE and IRQ_ENABLE (``irq``) are set and low once DONE is
    cleared; DDR unchanged outside ``allowed``."""
    status = await wait_idle(board)
    error = await read_reg(board, "ERROR")
    want_status = (om.STATUS_DONE if done else 0) | (om.STATUS_ERROR if code else 0)
    assert status == want_status and error == code, (
        f"{what}: STATUS 0x{status:x} ERROR {error} ({om.ERROR_NAMES.get(error)}), expected "
        f"STATUS 0x{want_status:x} ERROR {code} ({om.ERROR_NAMES[code]})")
    await ReadOnly()
    level = int(board.dut.interrupt.value)
    assert level == int(done and irq), (f"{what}: interrupt {level} with DONE {int(done)} and IRQ_ENABLE "
                                        f"{'set' if irq else 'clear'}")
    await RisingEdge(board.dut.ap_clk)
    await write_reg(board, "STATUS", om.STATUS_DONE)
    assert not (await read_reg(board, "STATUS")) & om.STATUS_DONE, f"{what}: DONE not cleared by W1C"
    await ReadOnly()
    assert int(board.dut.interrupt.value) == 0, f"{what}: interrupt still high after DONE was cleared"
    await RisingEdge(board.dut.ap_clk)
    problem = board.check_ddr(allowed)
    assert problem is None, f"{what}: {problem}"


async def start_run(board, in_addr, out_addr, frames, irq=True):
    await write_reg(board, "IN_ADDR", in_addr)
    await write_reg(board, "OUT_ADDR", out_addr)
    await write_reg(board, "FRAMES", frames)
    await write_reg(board, "CTRL", (om.CTRL_IRQ_ENABLE if irq else 0) | om.CTRL_START)


def interrupt_highs(board):
    """Start recording the cycles (``board.cycle``) with ``interrupt`` high; returns (list, task)."""
    highs = []

    async def sample():
        while True:
            await RisingEdge(board.dut.ap_clk)
            await ReadOnly()
            if int(board.dut.interrupt.value):
                highs.append(board.cycle)
    return highs, cocotb.start_soon(sample())


if P.get("bad_use"):
    @cocotb.test()
    async def bad_use_ends_in_its_error_code_and_the_shell_recovers(dut):
        board, rng, cfg, fm = await _setup(2)
        board.watch()
        acc = await bridge(make_accelerator)(board, fm, 64)
        E = om.ERRORS
        n = 40
        images = network_images(cfg, n, rng)
        want_scores, want_labels = golden(cfg, images)
        await bridge(pack_into)(acc, images)
        ina, outa = acc.in_buf.device_address, acc.out_buf.device_address
        out_all = [(outa, outa + n * fm.out_record_bytes)]
        cases = 0

        async def good_run(what):
            scores, labels = await bridge(acc.run)(images[:7])
            compare(7, scores, labels, want_scores, want_labels, f"good run after {what}")
            problem = board.check_ddr([(outa, outa + 7 * fm.out_record_bytes)])
            assert problem is None, f"good run after {what}: {problem}"
            await bridge(pack_into)(acc, images)

        # argument checks: nothing moves on the bus
        for what, (i, o, f), code in [
            ("zero frames", (ina, outa, 0), E["ZERO_FRAMES"]),
            ("input address 0", (0, outa, n), E["IN_ADDR"]),
            ("unaligned input address", (ina + fm.bus_bytes // 2, outa, n), E["IN_ADDR"]),
            ("output address 0", (ina, 0, n), E["OUT_ADDR"]),
            ("unaligned output address", (ina, outa + 4, n), E["OUT_ADDR"]),
        ]:
            await start_run(board, i, o, f)
            await expect_end(board, what, code)
            cases += 1
        await write_reg(board, "CTRL", om.CTRL_IRQ_ENABLE | om.CTRL_LOAD_WEIGHTS)
        await expect_end(board, "load weights without a wload port", E["WEIGHTS_UNSUPPORTED"])
        cases += 1
        await good_run("argument errors")

        # without IRQ_ENABLE a command still ends in DONE, and the interrupt stays low throughout
        from qnnfab.boards.onboard.driver import unpack_records
        k = 7
        highs, sampler = interrupt_highs(board)
        await start_run(board, ina, outa, 0, irq=False)
        await expect_end(board, "zero frames without IRQ_ENABLE", E["ZERO_FRAMES"], irq=False)
        await start_run(board, ina, outa, k, irq=False)
        await expect_end(board, "run without IRQ_ENABLE", E["OK"], [(outa, outa + k * fm.out_record_bytes)],
                         irq=False)
        sampler.cancel()
        assert not highs, f"interrupt high at cycles {highs[:5]} of commands started without IRQ_ENABLE"
        raw = np.frombuffer(bytes(board.mem.data[outa:outa + k * fm.out_record_bytes]), np.uint8)
        s, lab, _ = unpack_records(fm, raw.reshape(k, fm.out_record_bytes))
        compare(k, s, lab, want_scores, want_labels, "run without IRQ_ENABLE")
        cases += 2

        # buffers at odd bus-aligned addresses that straddle 4 KiB boundaries
        from qnnfab.boards.onboard.driver import pack_inputs
        k = 20
        in_odd = board.carve(3 * 4096) + 4096 - 3 * fm.bus_bytes
        out_odd = board.carve(3 * 4096) + 4096 - 5 * fm.bus_bytes
        board.host_write(in_odd, pack_inputs(fm, images[:k]).tobytes())
        await start_run(board, in_odd, out_odd, k)
        await expect_end(board, "run across 4 KiB boundaries", E["OK"], [(out_odd, out_odd + k * fm.out_record_bytes)])
        raw = np.frombuffer(bytes(board.mem.data[out_odd:out_odd + k * fm.out_record_bytes]), np.uint8)
        s, lab, idx = unpack_records(fm, raw.reshape(k, fm.out_record_bytes))
        compare(k, s, lab, want_scores, want_labels, "run across 4 KiB boundaries")
        assert np.array_equal(idx, np.arange(k)), f"frame indices {idx.tolist()}"
        cases += 1

        # START during a run aborts it
        await start_run(board, ina, outa, n)
        await ClockCycles(dut.ap_clk, 300)
        assert (await read_reg(board, "STATUS")) & om.STATUS_BUSY, "run of 40 frames already over"
        await write_reg(board, "CTRL", om.CTRL_IRQ_ENABLE | om.CTRL_START)
        aborted_at = board.cycle
        await expect_end(board, "start while busy", E["START_WHILE_BUSY"], out_all)
        for kind in ("ar", "aw"):
            late = board.bursts_after(kind, aborted_at)
            assert not late, f"start while busy: {kind} bursts requested after the abort: cycles {late}"
        cases += 1
        await good_run("start while busy")

        # error responses on read and write, in the middle of the buffers
        for side, decerr in (("READ", False), ("READ", True), ("WRITE", False), ("WRITE", True)):
            board.decerr = decerr
            if side == "READ":
                lo = ina + (n // 2) * fm.in_frame_bytes
                board.mem.read_faults = [(lo, lo + 1)]
            else:
                lo = outa + (n // 2) * fm.out_record_bytes
                board.mem.write_faults = [(lo, lo + 1)]
            await start_run(board, ina, outa, n)
            name = f"{side}_{'DECERR' if decerr else 'SLVERR'}"
            await expect_end(board, f"{name} response", E[name], out_all)
            resp = "r" if side == "READ" else "b"
            assert board.error_at[resp], f"{name}: no error response seen on the bus"
            for kind in ("ar", "aw"):
                late = board.bursts_after(kind, board.error_at[resp][0])
                assert not late, f"{name}: {kind} bursts requested after the error response: cycles {late}"
            board.error_at = {"r": [], "b": []}
            board.mem.read_faults, board.mem.write_faults, board.decerr = [], [], False
            cases += 1
            await good_run(name)

        # soft reset in the middle of a run, and while DDR stops answering writes
        await start_run(board, ina, outa, n)
        await ClockCycles(dut.ap_clk, 300)
        await write_reg(board, "CTRL", om.CTRL_SOFT_RESET)
        aborted_at = board.cycle
        await expect_end(board, "soft reset during a run", E["OK"], out_all, done=False)
        for kind in ("ar", "aw"):
            late = board.bursts_after(kind, aborted_at)
            assert not late, f"soft reset: {kind} bursts requested after it: cycles {late}"
        cases += 1
        await good_run("soft reset")
        board.ram.write_if.b_channel.set_pause_generator(iter(lambda: True, None))
        await start_run(board, ina, outa, n)
        await ClockCycles(dut.ap_clk, 600)
        await write_reg(board, "CTRL", om.CTRL_SOFT_RESET)
        aborted_at = board.cycle
        await ClockCycles(dut.ap_clk, 400)
        assert (await read_reg(board, "STATUS")) & om.STATUS_BUSY, "no write response came, yet the shell is idle"
        board.set_pause(P.get("pause", 0.0))
        await expect_end(board, "soft reset while write responses stall", E["OK"], out_all, done=False)
        for kind in ("ar", "aw"):
            late = board.bursts_after(kind, aborted_at)
            assert not late, f"soft reset under stalled writes: {kind} bursts requested after it: cycles {late}"
        cases += 1
        await good_run("soft reset under stalled writes")

        # the driver's own checks
        from qnnfab.boards.onboard.driver import OverlayError
        for field, value, words, what in [
                ("topology_hash", fm.topology_hash ^ 1, "another network", "for another topology"),
                ("identity_hash", fm.identity_hash ^ 1, "other weights and thresholds",
                 "of the same topology with other weights")]:
            other = om.Formats.from_dict({**fm.to_dict(), field: value})
            try:
                await bridge(make_accelerator)(board, other, 4)
            except OverlayError as e:
                assert words in str(e), e
            else:
                raise AssertionError(f"a driver {what} accepted the bitstream")
        for bad, exc, words in [
            (images[:, :-1], ValueError, "shape"),
            (images.astype(np.float32), TypeError, "integer"),
            (np.full(images.shape, 2, np.uint8), ValueError, "values"),
        ]:
            try:
                await bridge(acc.run)(bad)
            except exc as e:
                assert words in str(e), e
            else:
                raise AssertionError(f"driver accepted bad images ({words})")
        write_metrics(bad_use_cases=cases, frames_checked=7 * 9)


if P.get("runtime"):
    @cocotb.test()
    async def driver_loads_weights_a_b_a_and_bad_images_are_refused(dut):
        from qnnfab.boards.onboard.driver import OverlayError
        from qnnfab.plan import pack_image
        board, rng, cfg_a, fm = await _setup(4)
        cfg_b = load_config(P, seed=991)
        assert cfg_b.topology_hash() == cfg_a.topology_hash()
        acc = await bridge(make_accelerator)(board, fm, P["batch_size"])
        n = P["frames"][0]
        images = network_images(cfg_a, n, rng)
        img_a, img_b = pack_image(cfg_a), pack_image(cfg_b)
        if P.get("odd_image"):
            assert len(img_a) % fm.bus_bytes, (f"odd_image: the image of {len(img_a)} bytes fills whole "
                                               f"{fm.bus_bytes}-byte bus words: pick another network")
        assert not np.array_equal(golden(cfg_a, images)[0], golden(cfg_b, images)[0])
        for what, cfg, img in (("A", cfg_a, img_a), ("B", cfg_b, img_b), ("A again", cfg_a, img_a)):
            loaded = await bridge(acc.load_weights)(img)
            assert loaded == len(img)
            scores, labels = await bridge(acc.run)(images)
            compare(n, scores, labels, *golden(cfg, images), f"after loading {what}")

        async def refused_by_driver(data, words):
            try:
                await bridge(acc.load_weights)(data)
            except OverlayError as e:
                assert words in str(e), str(e)
                return
            raise AssertionError(f"the driver loaded a bad image ({words})")
        other = bytearray(img_b)
        other[8] ^= 1                                    # topology hash
        await refused_by_driver(bytes(other), "another network")
        await refused_by_driver(img_b[:-8], "truncated")
        # the hardware refuses it too (registers written directly, past the driver's check)
        addr = board.carve(len(other))
        board.host_write(addr, bytes(other))
        await write_reg(board, "WEIGHTS_ADDR", addr)
        await write_reg(board, "WEIGHTS_LEN", len(other))
        await write_reg(board, "CTRL", om.CTRL_IRQ_ENABLE | om.CTRL_LOAD_WEIGHTS)
        status = await wait_idle(board)
        error = await read_reg(board, "ERROR")
        want = om.ERRORS["WLOAD"] | (wi.WloadError.WRONG_NETWORK << 8)
        assert status & om.STATUS_ERROR and error == want, f"STATUS 0x{status:x} ERROR 0x{error:x}, want 0x{want:x}"
        await write_reg(board, "STATUS", om.STATUS_DONE)
        scores, labels = await bridge(acc.run)(images)   # a refused header leaves the weights of A
        compare(n, scores, labels, *golden(cfg_a, images), "after a refused image")

        # WEIGHTS_LEN short of the header's length (whole and half image words, whole and half bus
        # words, the header's first word alone): WLOAD with TRUNCATED, never a hang
        addr = board.carve(len(img_b) + fm.bus_bytes)
        board.host_write(addr, img_b)
        want = om.ERRORS["WLOAD"] | (wi.WloadError.TRUNCATED << 8)
        for length in (len(img_b) - 8, len(img_b) - 16, len(img_b) - 12, 8):
            await write_reg(board, "WEIGHTS_ADDR", addr)
            await write_reg(board, "WEIGHTS_LEN", length)
            await write_reg(board, "CTRL", om.CTRL_IRQ_ENABLE | om.CTRL_LOAD_WEIGHTS)
            status = await wait_idle(board)
            error = await read_reg(board, "ERROR")
            assert status == om.STATUS_DONE | om.STATUS_ERROR and error == want, (
                f"image of {len(img_b)} bytes cut to WEIGHTS_LEN {length}: STATUS 0x{status:x} ERROR 0x{error:x}, "
                f"want STATUS 0x{om.STATUS_DONE | om.STATUS_ERROR:x} ERROR 0x{want:x} (WLOAD, TRUNCATED)")
            await write_reg(board, "STATUS", om.STATUS_DONE)
        assert await bridge(acc.load_weights)(img_b) == len(img_b)
        scores, labels = await bridge(acc.run)(images)
        compare(n, scores, labels, *golden(cfg_b, images), "after truncated images and a load of B")
        write_metrics(frames_checked=5 * n, loads=4)


def pack_into(acc, images):
    """Put ``images`` into the driver's input buffer (for register-level runs)."""
    from qnnfab.boards.onboard.driver import pack_inputs
    pack_inputs(acc.formats, images, out=acc.in_buf[:images.shape[0]])
    acc.in_buf.flush()


# ---------------------------------------------------------------------------
# figures: one unstalled batch, AXI beats and the record completion times

if P.get("measure"):
    @cocotb.test()
    async def shell_throughput_unstalled(dut):
        board, rng, cfg, fm = await _setup(3)
        n = P["frames"][0]
        acc = await bridge(make_accelerator)(board, fm, n)
        images = network_images(cfg, n, rng)
        stats = {"r": 0, "w": 0, "cycle": 0, "w_done": [], "first": None, "last": None}

        async def monitor():
            while True:
                await RisingEdge(dut.ap_clk)
                await ReadOnly()
                stats["cycle"] += 1
                r = int(dut.m_axi_gmem_rvalid.value) and int(dut.m_axi_gmem_rready.value)
                w = int(dut.m_axi_gmem_wvalid.value) and int(dut.m_axi_gmem_wready.value)
                if r or w:
                    stats["first"] = stats["first"] or stats["cycle"]
                    stats["last"] = stats["cycle"]
                stats["r"] += r
                if w:
                    stats["w"] += 1
                    if stats["w"] % fm.out_record_beats == 0:
                        stats["w_done"].append(stats["cycle"])
        mon = cocotb.start_soon(monitor())
        scores, labels = await bridge(acc.run)(images)
        mon.cancel()
        want_scores, want_labels = golden(cfg, images)
        compare(n, scores, labels, want_scores, want_labels, "unstalled batch")
        t = np.array(stats["w_done"], float)
        skip = min(10, n // 4)
        span = stats["last"] - stats["first"] + 1
        # records leave in 16-beat bursts, so their completion times jitter by
        # up to a burst: the steady rate is the least-squares slope over the run
        slope = float(np.polyfit(np.arange(skip, n), t[skip:], 1)[0])
        write_metrics(frames=n, run_cycles=acc.last_cycles,
                      shell_cycles_per_frame=slope,
                      read_beats=stats["r"], write_beats=stats["w"],
                      read_beats_per_cycle=stats["r"] / span, write_beats_per_cycle=stats["w"] / span,
                      frames_checked=n)

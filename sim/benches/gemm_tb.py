"""The GEMM engine (systolic array behind the AXI shell) driven by its Python driver, cocotbext-axi as the board.

The PS is an ``AxiLiteMaster``, DDR an ``AxiRam`` with random pauses on its
five channels (:mod:`qnnfab.sim.axi_board`); the driver
(:class:`qnnfab.boards.onboard.driver.Gemm`) runs in a thread. Every output element
of every product equals the golden array model on the zero-padded operands
(:func:`qnnfab.golden.gemm.gemm_padded`), and DDR outside the output tiles
is unchanged after every run; each run reads and writes exactly the bus
words the layout needs (every A panel once, every B panel once per block).

Case parameters: ``R``, ``C``, formats ``a``, ``b``, ``c`` as [I, F],
``k_max``, ``panels`` (p, A panels per block), ``a_chunk`` (A words per
read-DMA run, default the engine's), ``width`` (AXI data bits),
``pause`` (probability of a pause per channel and cycle), ``products``
(number of random (M, K, N) products, each run with both roundings, after
the fixed edge sizes, which run with BLOCK_TILES = p), ``sat`` (the output
format is narrow: results must saturate both ways), ``bad_use`` (the error
and recovery cases instead), ``measure`` ((M, K, N) of one product run
without pauses, figures only), ``ram_bytes`` (DDR size, default
:data:`qnnfab.sim.axi_board.RAM_BYTES`).
"""

import cocotb
import numpy as np
from cocotb.task import bridge

from qnnfab import overlay_map as om
from qnnfab.golden.fixedpoint import FixedFormat
from qnnfab.golden.gemm import gemm_padded
from qnnfab.sim.axi_board import Board, CosimBackend
from qnnfab.sim.stream import bench_params, bench_random, write_metrics

NAME = "gemm"
# word widths: case 0 one bus word per A, B and output word; case 1 two bus
# words per A and B word; case 2 two per B and output word. Blocks: p = 3, 2, 4
# (so edge sizes give one row tile, p row tiles exactly, partial last blocks);
# A panels in chunks of 16 and 7 words (several DMA runs per panel, a partial last chunk)
CASES = [
    {"R": 4, "C": 4, "a": [2, 14], "b": [2, 14], "c": [4, 12], "k_max": 64, "panels": 3, "a_chunk": 16,
     "width": 64, "pause": 0.3, "products": 4, "sat": False},
    {"R": 3, "C": 5, "a": [4, 8], "b": [4, 8], "c": [3, 3], "k_max": 32, "panels": 2, "a_chunk": 7, "width": 32,
     "pause": 0.5, "products": 3, "sat": True},
    {"R": 2, "C": 5, "a": [1, 7], "b": [1, 7], "c": [2, 6], "k_max": 16, "panels": 4, "width": 32,
     "pause": 0.2, "products": 3, "sat": True},
    {"R": 4, "C": 4, "a": [2, 14], "b": [2, 14], "c": [4, 12], "k_max": 64, "panels": 2, "width": 64,
     "pause": 0.3, "bad_use": True},
]
SEED = 0x2B1D
LFSR_WIDTH = 20


def design(params):
    from qnnfab.rtl.gemm import GemmShell
    p = params
    return GemmShell(p["R"], p["C"], tuple(p["a"]), tuple(p["b"]), tuple(p["c"]), k_max=p["k_max"],
                     panels=p["panels"], data_width=p["width"], seed=SEED, lfsr_width=LFSR_WIDTH,
                     **({"a_chunk": p["a_chunk"]} if "a_chunk" in p else {}))


def summarize(result):
    m = result.metrics
    if "utilisation" in m:
        return (f"{m['M']}x{m['K']}x{m['N']} on {m['R']}x{m['C']}: {m['cycles']} cycles, "
                f"utilisation {m['utilisation']:.3f} MACs/cycle/PE")
    if "bad_use_cases" in m:
        return f"{m['bad_use_cases']} bad-use cases ended in their status, products after them equal to golden"
    return f"{m.get('products_checked', 0)} products (both roundings) equal to golden"


P = bench_params()


def _formats():
    """What the engine of this case and its driver agree on (:class:`~qnnfab.overlay_map.GemmFormats`)."""
    return om.GemmFormats(rows=P["R"], cols=P["C"], a_fmt=P["a"], b_fmt=P["b"], c_fmt=P["c"], k_max=P["k_max"],
                          panels=P["panels"], seed=SEED, bus_bytes=P["width"] // 8)


def operands(rng, M, K, N, fm, extremes):
    """Random codes of the engine's A and B formats; with ``extremes``, row 0 of A
    at the minimum and columns 0 and 1 of B at the minimum and maximum (the
    largest positive and negative sums)."""
    def codes(shape, w):
        lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
        x = np.array([[rng.randint(lo, hi) for _ in range(shape[1])] for _ in range(shape[0])], np.int64)
        return x, lo, hi
    a, lo_a, _ = codes((M, K), fm.a_width)
    b, lo_b, hi_b = codes((K, N), fm.b_width)
    if extremes:
        a[0, :] = lo_a
        b[:, 0] = lo_b
        if N > 1:
            b[:, 1] = hi_b
    return a, b


def golden(a, b, fm, rounding, block_tiles):
    """The array's products; its LFSR advances D = F_a + F_b - F_c steps per rounded value."""
    steps = fm.a_fmt[1] + fm.b_fmt[1] - fm.c_fmt[1]
    return gemm_padded(a, b, FixedFormat(*fm.a_fmt), FixedFormat(*fm.b_fmt), FixedFormat(*fm.c_fmt),
                       fm.rows, fm.cols, rounding, LFSR_WIDTH, fm.seed, steps,
                       block_tiles=block_tiles)


def sizes(rng, R, C, k_max, p, n_random):
    """Edge sizes (1x1x1 and others of one row tile, smaller than the array, one
    more than the array, K at its maximum, p row tiles exactly with one column
    tile, M not a multiple of p R with the last block of one row tile or of
    p - 1) then ``n_random`` random (M, K, N) of up to 2p + 1 row tiles."""
    fixed = [(1, 1, 1), (max(1, R - 1), 3, max(1, C - 1)), (R + 1, k_max, C + 1), (2 * R, 1, 2 * C),
             (p * R, 5, C), (p * R + 1, 4, 2 * C + 1), (2 * p * R - 1, 2, max(1, C - 1))]
    rand = [(rng.randint(1, (2 * p + 1) * R), rng.randint(1, k_max), rng.randint(1, 3 * C))
            for _ in range(n_random)]
    return [(M, K, N, p) for M, K, N in fixed] + [(M, K, N, None) for M, K, N in rand]


async def _setup(salt, pause):
    dut = cocotb.top
    rng = bench_random(salt)
    board = Board(dut, rng, pause, **({"ram_bytes": P["ram_bytes"]} if "ram_bytes" in P else {}),
                  registers=om.GEMM_OFFSET)
    await board.reset()
    return board, rng


def _make_driver(board, fm):
    from qnnfab.boards.onboard.driver import Gemm
    # a run that does not end within 2 ms of simulated time (200k cycles) fails
    return Gemm(engine=fm.to_dict(), backend=CosimBackend(board), timeout=P.get("timeout", 2e-3))


def ddr_beats(fm, M, K, N, q):
    """(read, write) bus words of one product, from the layout: every A panel
    once, every B panel once per block of ``q`` row tiles, every output tile once."""
    tr, tc = -(-M // fm.rows), -(-N // fm.cols)
    blocks = -(-tr // q)
    return (tr * K * fm.a_word_beats + blocks * tc * K * fm.b_word_beats, tr * tc * fm.rows * fm.c_word_beats)


async def check_product(board, drv, fm, a, b, rounding, what, block_tiles=None):
    before = dict(board.beats)
    got = await bridge(drv.gemm)(a, b, None, rounding, block_tiles)
    q = drv.last_block_tiles
    want = golden(a, b, fm, rounding, q)
    out = drv._buffers["c"]
    problem = board.check_ddr([(out.device_address, out.device_address + out.nbytes)])
    assert problem is None, f"{what}: {problem}"
    moved = (board.beats["ar"] - before["ar"], board.beats["aw"] - before["aw"])
    (M, K), N = a.shape, b.shape[1]
    expected = ddr_beats(drv.formats, M, K, N, q)
    assert moved == expected, (f"{what}, BLOCK_TILES {q}: DDR read/write {moved[0]}/{moved[1]} bus words, "
                               f"the layout needs {expected[0]}/{expected[1]}")
    bad = np.argwhere(got != want)
    if bad.size:
        i, j = bad[0]
        raise AssertionError(f"{what} ({rounding}, BLOCK_TILES {drv.last_block_tiles}): {len(bad)} elements "
                             f"differ, first C[{i}, {j}] = {got[i, j]}, golden {want[i, j]}")
    return want


if not P.get("bad_use") and not P.get("measure"):
    @cocotb.test()
    async def driver_products_equal_golden_under_random_axi_pauses(dut):
        board, rng = await _setup(1, P["pause"])
        fm = _formats()
        drv = await bridge(_make_driver)(board, fm)
        checked = 0
        lo, hi = -(1 << (fm.c_width - 1)), (1 << (fm.c_width - 1)) - 1
        saturated = set()
        for M, K, N, q in sizes(rng, fm.rows, fm.cols, fm.k_max, fm.panels, P["products"]):
            a, b = operands(rng, M, K, N, fm, extremes=P["sat"])
            for rounding in ("stochastic", "nearest"):
                want = await check_product(board, drv, fm, a, b, rounding, f"{M}x{K}x{N}", q)
                saturated |= {"lo"} if (want == lo).any() else set()
                saturated |= {"hi"} if (want == hi).any() else set()
                checked += 1
        if P["sat"]:
            assert saturated == {"lo", "hi"}, f"case must saturate both ways, saw {saturated or 'none'}"
        write_metrics(products_checked=checked, cycles=drv.last_cycles)


if P.get("measure"):
    @cocotb.test()
    async def utilisation_of_one_product(dut):
        board, rng = await _setup(2, 0.0)
        fm = _formats()
        drv = await bridge(_make_driver)(board, fm)
        M, K, N = P["measure"]
        a, b = operands(rng, M, K, N, fm, extremes=False)
        await check_product(board, drv, fm, a, b, "stochastic", f"{M}x{K}x{N}")
        cycles = drv.last_cycles
        write_metrics(M=M, K=K, N=N, R=fm.rows, C=fm.cols, panels=fm.panels, block_tiles=drv.last_block_tiles,
                      cycles=cycles, utilisation=M * K * N / (cycles * fm.rows * fm.cols))


# ---------------------------------------------------------------------------
# bad use: every case ends in its status with DDR untouched; then a good run

if P.get("bad_use"):
    @cocotb.test()
    async def bad_use_ends_in_its_error_code_and_the_engine_recovers(dut):
        board, rng = await _setup(3, P["pause"])
        fm = _formats()
        drv = await bridge(_make_driver)(board, fm)
        a, b = operands(rng, fm.rows + 1, 5, fm.cols + 2, fm, extremes=False)
        await check_product(board, drv, fm, a, b, "stochastic", "first run")
        good = {k: await board.axil.read_dword(om.GEMM_OFFSET[k]) for k in
                ("A_ADDR", "B_ADDR", "C_ADDR", "ROW_TILES", "COL_TILES", "K", "BLOCK_TILES")}
        bus = fm.bus_bytes
        bad_cases = [
            ("K = 0", {"K": 0}, "GEMM_SIZE"),
            ("K > K_MAX", {"K": fm.k_max + 1}, "GEMM_SIZE"),
            ("ROW_TILES = 0", {"ROW_TILES": 0}, "GEMM_SIZE"),
            ("COL_TILES > 65535", {"COL_TILES": om.MAX_TILES + 1}, "GEMM_SIZE"),
            ("BLOCK_TILES = 0", {"BLOCK_TILES": 0}, "GEMM_SIZE"),
            ("BLOCK_TILES > PANELS", {"BLOCK_TILES": fm.panels + 1}, "GEMM_SIZE"),
            ("A_ADDR = 0", {"A_ADDR": 0}, "IN_ADDR"),
            ("B_ADDR misaligned", {"B_ADDR": good["B_ADDR"] + bus // 2}, "IN_ADDR"),
            ("C_ADDR misaligned", {"C_ADDR": good["C_ADDR"] + 4}, "OUT_ADDR"),
        ]
        for what, regs, code in bad_cases:
            for k, v in {**good, **regs}.items():
                await board.axil.write_dword(om.GEMM_OFFSET[k], v)
            await board.axil.write_dword(om.GEMM_OFFSET["STATUS"], om.STATUS_DONE)
            await board.axil.write_dword(om.GEMM_OFFSET["CTRL"], om.CTRL_START)
            for _ in range(20):
                status = await board.axil.read_dword(om.GEMM_OFFSET["STATUS"])
                if status & om.STATUS_DONE:
                    break
            error = await board.axil.read_dword(om.GEMM_OFFSET["ERROR"])
            assert status == om.STATUS_DONE | om.STATUS_ERROR, f"{what}: STATUS 0x{status:X}"
            assert error == om.ERRORS[code], f"{what}: ERROR {om.ERROR_NAMES.get(error, error)}, expected {code}"
            assert board.check_ddr() is None, f"{what}: {board.check_ddr()}"
        # a run aborted by SOFT_RESET mid-way, then by START while busy
        for k, v in good.items():
            await board.axil.write_dword(om.GEMM_OFFSET[k], v)
        c_lo = good["C_ADDR"]
        c_hi = c_lo + drv._buffers["c"].nbytes
        for what, cmd, done, code in (("soft reset", om.CTRL_SOFT_RESET, 0, 0),
                                      ("start while busy", om.CTRL_START, om.STATUS_DONE,
                                       om.ERRORS["START_WHILE_BUSY"])):
            await board.axil.write_dword(om.GEMM_OFFSET["CTRL"], om.CTRL_START)
            for _ in range(rng.randint(2, 8)):
                await board.axil.read_dword(om.GEMM_OFFSET["STATUS"])
            assert (await board.axil.read_dword(om.GEMM_OFFSET["STATUS"])) & om.STATUS_BUSY, f"{what}: ended early"
            await board.axil.write_dword(om.GEMM_OFFSET["CTRL"], cmd)
            for _ in range(200):
                status = await board.axil.read_dword(om.GEMM_OFFSET["STATUS"])
                if not status & om.STATUS_BUSY:
                    break
            error = await board.axil.read_dword(om.GEMM_OFFSET["ERROR"])
            assert status & (om.STATUS_BUSY | om.STATUS_DONE) == done, f"{what}: STATUS 0x{status:X}"
            assert error == code, f"{what}: ERROR {error}, expected {code}"
            problem = board.check_ddr([(c_lo, c_hi)])
            assert problem is None, f"{what}: {problem}"
        # the engine computes correctly after all of it
        a, b = operands(rng, 2 * fm.rows + 1, 9, fm.cols, fm, extremes=True)
        for rounding in ("stochastic", "nearest"):
            await check_product(board, drv, fm, a, b, rounding, "run after bad use")
        write_metrics(bad_use_cases=len(bad_cases) + 2)

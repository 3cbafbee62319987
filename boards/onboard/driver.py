"""Python driver of a qnnfab overlay: images in, labels and scores out.

Runs on a PYNQ board with only numpy and ``pynq``; ``qnnfab generate`` copies
this file next to the bitstream, with ``qnnfab_overlay_map.py`` (the register
map), ``qnnfab_packing.py`` (the word-packing convention),
``qnnfab_weights_image.py`` (the weights image header) and ``network.json``
(the network's buffer formats). The same class runs
in co-simulation (``qnnfab sim overlay``) with another backend.

Example (on the board, in the overlay folder)::

    from driver import Accelerator
    acc = Accelerator("overlay.bit")
    labels = acc.classify(images)       # images: (N,) + input shape, uint8/bool

The driver reaches the hardware only through a backend object with five
methods (:class:`PynqBackend` is the board's, a thin layer over ``pynq``):
``read(offset)`` / ``write(offset, value)`` (32-bit registers of the
shell), ``allocate(shape, dtype)`` (a physically contiguous numpy array with
``.device_address``, ``.flush()``, ``.invalidate()``), and ``wait()`` (pause
between two polls of STATUS; returns the seconds it waited).
"""

import json
import os
import time

import numpy as np

try:
    from qnnfab import overlay_map as om
except ImportError:          # on the board: the copy written next to this file
    import qnnfab_overlay_map as om
try:
    from qnnfab import packing
except ImportError:          # on the board: the copy written next to this file
    import qnnfab_packing as packing
try:
    from qnnfab import weights_image as wi
except ImportError:          # on the board: the copy written next to this file
    import qnnfab_weights_image as wi

__all__ = ["Accelerator", "Gemm", "OverlayError", "PynqBackend", "pack_inputs", "unpack_records"]

HERE = os.path.dirname(os.path.abspath(__file__))
SHELL_CELL = "qnnfab"        # the shell's cell name in qnnfab's block design (boards/emit/vivado.py)


class OverlayError(RuntimeError):
    """The overlay reported an error, or is not the one this driver expects."""


class PynqBackend:
    """The board: ``pynq.Overlay(bitfile)``, the shell's registers through
    ``pynq.MMIO``, buffers from ``pynq.allocate``, polling with short sleeps."""

    def __init__(self, bitfile, ip_name=None, poll_seconds=50e-6):
        import pynq
        self.pynq = pynq
        self.overlay = pynq.Overlay(bitfile)
        ip_dict = self.overlay.ip_dict
        if ip_name is None and SHELL_CELL in ip_dict:
            ip_name = SHELL_CELL
        if ip_name is not None:
            ips = {k: v for k, v in ip_dict.items() if k == ip_name}
        else:   # a module reference's type names the shell module: xilinx.com:module_ref:<name>_overlay_bd:1.0
            ips = {k: v for k, v in ip_dict.items() if "_overlay" in v.get("type", "")}
        if len(ips) != 1:
            raise OverlayError(f"{bitfile}: expected one qnnfab shell in the design, found "
                               f"{sorted(ips) or 'none'} (pass ip_name= one of {sorted(self.overlay.ip_dict)})")
        ip = next(iter(ips.values()))
        self.mmio = pynq.MMIO(ip["phys_addr"], ip.get("addr_range", om.BLOCK_BYTES))
        self.poll_seconds = poll_seconds

    def read(self, offset):
        return self.mmio.read(offset)

    def write(self, offset, value):
        self.mmio.write(offset, value)

    def allocate(self, shape, dtype):
        return self.pynq.allocate(shape, dtype=dtype)

    def wait(self):
        time.sleep(self.poll_seconds)
        return self.poll_seconds


def _element_range(fm):
    if fm.input_kind == "bipolar":
        return 0, 1
    if fm.input_kind == "uint":
        return 0, (1 << fm.input_bits) - 1
    half = 1 << (fm.input_bits - 1)
    return -half, half - 1


def pack_inputs(fm, images, out=None):
    """Images (N,) + input shape -> the input buffer's bytes, (N, in_frame_bytes) uint8.

    Element values are the network's stored input values: bits (0 = -1,
    1 = +1) for a bipolar input, k-bit codes for uint, two's complement k-bit
    values for int; each frame gets the ``fm.input_pad`` padding elements
    (stored 0) at its end. ``out``: an array to fill (the DMA buffer)."""
    n = images.shape[0]
    frames = packing.pad_frames(images, fm.input_pad)
    slots = packing.pack_bytes(frames.reshape(n, fm.in_words, fm.in_simd), fm.input_bits, fm.in_slot_bytes)
    packed = slots.reshape(n, fm.in_words * fm.in_slot_bytes)
    if out is None:
        out = np.zeros((n, fm.in_frame_bytes), np.uint8)
    else:
        out[:, packed.shape[1]:] = 0
    out[:, :packed.shape[1]] = packed
    return out


def unpack_records(fm, records):
    """Output records (N, out_record_bytes) uint8 -> (scores (N, classes) int64,
    labels (N,) int64, frame indices (N,) int64 from the label words); the
    scores of the last layer's padding rows are dropped."""
    n = records.shape[0]
    slots = records[:, :fm.out_items * fm.out_slot_bytes].reshape(n, fm.out_items, fm.out_slot_bytes)
    scores = packing.unpack_bytes(slots[:, :fm.out_words], fm.out_elems, fm.out_bits, fm.out_signed)
    scores = scores.reshape(n, fm.n_scores)[:, :fm.classes]
    label_word = slots[:, fm.out_words, :4].copy().view("<u4").reshape(n).astype(np.int64)
    return scores, label_word & 0xFFFF, label_word >> 16


def _formats(given, kind, file_name):
    """``given`` as a ``kind`` (it, or its dict), else the ``file_name`` written next to this file."""
    if given is None:
        with open(os.path.join(HERE, file_name)) as f:
            given = json.load(f)
    return given if isinstance(given, kind) else kind.from_dict(given)


def _backend(backend, bitfile, who):
    """``backend``, else the board with ``bitfile`` loaded (``who`` names the class in the error)."""
    if backend is not None:
        return backend
    if bitfile is None:
        raise ValueError(f"{who}: give the bitstream (e.g. {who}('overlay.bit'))")
    return PynqBackend(bitfile)


class Accelerator:
    """A qnnfab network on the board (or in co-simulation).

    ``Accelerator(bitfile)`` loads the bitstream with pynq; ``network``
    (default: ``network.json`` next to this file) describes the buffer
    formats; ``backend`` replaces the board (co-simulation). The shell's
    identity registers must match ``network`` or the constructor raises
    :class:`OverlayError`.

    Buffers for ``batch_size`` frames are allocated once and reused; a
    larger batch runs in chunks.
    """

    def __init__(self, bitfile=None, *, network=None, backend=None, batch_size=1024, timeout=10.0):
        self.formats = _formats(network, om.Formats, "network.json")
        backend = _backend(backend, bitfile, "Accelerator")
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
        self.backend = backend
        self.batch_size = batch_size
        self.timeout = timeout
        self.last_cycles = None
        self._check_identity()
        fm = self.formats
        self.in_buf = backend.allocate((batch_size, fm.in_frame_bytes), np.uint8)
        self.out_buf = backend.allocate((batch_size, fm.out_record_bytes), np.uint8)

    # ---- registers ------------------------------------------------------
    def read(self, name):
        return self.backend.read(om.OFFSET[name])

    def write(self, name, value):
        self.backend.write(om.OFFSET[name], value)

    def _check_identity(self):
        fm = self.formats
        got = {name: self.read(name) for name in ("IDENTITY", "TOPOLOGY", "FEATURES", "IN_FRAME_BYTES",
                                                  "OUT_RECORD_BYTES")}
        want = {"IDENTITY": om.IDENTITY, "TOPOLOGY": fm.topology_hash, "FEATURES": fm.features(),
                "IN_FRAME_BYTES": fm.in_frame_bytes, "OUT_RECORD_BYTES": fm.out_record_bytes}
        if got["IDENTITY"] != want["IDENTITY"]:
            raise OverlayError(f"no qnnfab shell of register map version {om.MAP_VERSION} here: IDENTITY reads "
                               f"0x{got['IDENTITY']:08X}, expected 0x{want['IDENTITY']:08X}")
        bad = [f"{k} 0x{got[k]:X} (expected 0x{want[k]:X})" for k in want if got[k] != want[k]]
        if bad:
            raise OverlayError(f"the bitstream was built for another network than '{fm.name}': "
                               + ", ".join(bad) + " (use the driver folder generated with this bitstream)")
        identity = self.read("IDENTITY_HASH")
        if identity != fm.identity_hash:
            raise OverlayError(f"the bitstream has the topology of '{fm.name}' but other weights and thresholds "
                               f"built in: IDENTITY_HASH 0x{identity:08X} (expected 0x{fm.identity_hash:08X}) (use the "
                               "driver folder generated with this bitstream, or generate the bitstream again from "
                               "these weights)")

    # ---- images ---------------------------------------------------------
    def check_images(self, images):
        """``images`` as an (N,) + input shape integer array; clear errors otherwise."""
        fm = self.formats
        images = np.asarray(images)
        if images.dtype == bool:
            images = images.astype(np.uint8)
        if not np.issubdtype(images.dtype, np.integer):
            raise TypeError(f"images must be integer or bool arrays (the network's {fm.input_kind} "
                            f"{fm.input_bits}-bit input values), not {images.dtype}")
        if images.shape == fm.input_shape:
            images = images[None]
        if images.ndim != len(fm.input_shape) + 1 or images.shape[1:] != fm.input_shape:
            raise ValueError(f"images must have shape (N,) + {fm.input_shape} (or {fm.input_shape} "
                             f"for one image), not {images.shape}")
        lo, hi = _element_range(fm)
        if images.size and (images.min() < lo or images.max() > hi):
            raise ValueError(f"image values must lie in [{lo}, {hi}] ({fm.input_kind} input of "
                             f"{fm.input_bits} bits), found [{images.min()}, {images.max()}]")
        return images

    # ---- running ----------------------------------------------------------
    def run(self, images):
        """Run ``images``; return ``(scores (N, classes), labels (N,))``, int64."""
        images = self.check_images(images)
        fm = self.formats
        n = images.shape[0]
        scores = np.zeros((n, fm.classes), np.int64)
        labels = np.zeros(n, np.int64)
        for lo in range(0, n, self.batch_size):
            hi = min(n, lo + self.batch_size)
            scores[lo:hi], labels[lo:hi] = self._run_chunk(images[lo:hi])
        return scores, labels

    @property
    def label_rule(self):
        """How the hardware's labels follow from the scores: "argmax" or "highest_set_bit"
        (``network.json``'s ``label_rule``, the config's ``label``)."""
        return self.formats.label_rule

    def labels_of(self, scores):
        """The labels of ``scores`` (N, n_scores) under :attr:`label_rule`, computed on the host:
        what the hardware's label words hold (``frame_labels`` of ``qnnfab_packing.py``)."""
        return packing.frame_labels(scores, self.label_rule)

    def classify(self, images):
        """The label of every image under :attr:`label_rule` (from the hardware's label words),
        (N,) int64."""
        return self.run(images)[1]

    def scores(self, images):
        """The reported scores of every image, (N, classes) int64."""
        return self.run(images)[0]

    def _run_chunk(self, images):
        fm = self.formats
        k = images.shape[0]
        pack_inputs(fm, images, out=self.in_buf[:k])
        self.in_buf.flush()
        self.write("IN_ADDR", self.in_buf.device_address)
        self.write("OUT_ADDR", self.out_buf.device_address)
        self.write("FRAMES", k)
        self.write("STATUS", om.STATUS_DONE)
        self.write("CTRL", om.CTRL_IRQ_ENABLE | om.CTRL_START)
        status = self._wait_done()
        error = self.read("ERROR")
        self.last_cycles = self.read("CYCLES")
        self.write("STATUS", om.STATUS_DONE)
        if status & om.STATUS_ERROR:
            raise OverlayError(f"run of {k} frames ended with error {om.ERROR_NAMES.get(error & 0xFF, error)} "
                               f"(ERROR 0x{error:X})")
        self.out_buf.invalidate()
        scores, labels, index = unpack_records(fm, self.out_buf[:k])
        if not np.array_equal(index, np.arange(k) & 0xFFFF):
            bad = int(np.nonzero(index != (np.arange(k) & 0xFFFF))[0][0])
            raise OverlayError(f"output record {bad} carries frame index {index[bad]}: the output buffer "
                               "was not written in order")
        return scores, labels

    def _wait_done(self):
        waited = 0.0
        while True:
            status = self.read("STATUS")
            if status & om.STATUS_DONE and not status & om.STATUS_BUSY:
                return status
            if waited > self.timeout:
                raise OverlayError(f"no DONE after {self.timeout} s (STATUS 0x{status:X}, "
                                   f"FRAMES_DONE {self.read('FRAMES_DONE')}); write CTRL.SOFT_RESET to recover")
            waited += self.backend.wait()

    # ---- runtime weights ---------------------------------------------------
    def load_weights(self, weights, config=None):
        """Load a weights image into a runtime-weights overlay (no frame may be running).

        ``weights``: the image (bytes, a uint8 array, or the path of a ``.bin``
        from ``qnnfab pack-weights``), or the path of an ``.npz`` of weights
        and thresholds together with ``config`` (the network's TOML): packing
        an ``.npz`` needs qnnfab installed. The header is checked here first
        (another network's image, a truncated file: :class:`OverlayError`
        without touching the hardware); the shell streams the image from DDR
        into the accelerator and reports the hardware's check
        (``WloadError``). Returns the number of image bytes loaded.
        """
        fm = self.formats
        if not self.read("FEATURES") & om.FEATURE_RUNTIME_WEIGHTS:
            raise OverlayError(f"this bitstream of '{fm.name}' has its weights built in (weights_mode = "
                               "\"const\"): generate it with --weights-mode runtime to load weights")
        data = self._weights_bytes(weights, config)
        try:
            wi.check_image(data, fm.topology_hash)
        except ValueError as e:   # qnnfab's ConfigError is a ValueError too
            raise OverlayError(f"weights image refused: {e}") from None
        body = wi.read_header(data)[3]
        n = 8 * (wi.HEADER_WORDS + body)
        buf = self.backend.allocate((n + fm.bus_bytes,), np.uint8)
        try:
            buf[:n] = np.frombuffer(data[:n], np.uint8)
            buf[n:] = 0
            buf.flush()
            self.write("WEIGHTS_ADDR", buf.device_address)
            self.write("WEIGHTS_LEN", n)
            self.write("STATUS", om.STATUS_DONE)
            self.write("CTRL", om.CTRL_IRQ_ENABLE | om.CTRL_LOAD_WEIGHTS)
            status = self._wait_done()
            error = self.read("ERROR")
            self.write("STATUS", om.STATUS_DONE)
        finally:
            free = getattr(buf, "freebuffer", None)
            if free is not None:
                free()
        if status & om.STATUS_ERROR:
            code, werr = error & 0xFF, (error >> 8) & 0xFF
            detail = ""
            if code == om.ERRORS.get("WLOAD"):
                detail = f": the accelerator reports {wi.WloadError(werr).name if werr < 8 else werr}"
            raise OverlayError(f"loading weights ended with error {om.ERROR_NAMES.get(code, code)}{detail} "
                               f"(ERROR 0x{error:X}); the weights are undefined until a load succeeds")
        return n

    @staticmethod
    def _weights_bytes(weights, config):
        if isinstance(weights, (bytes, bytearray, memoryview)):
            return bytes(weights)
        if isinstance(weights, np.ndarray):
            return weights.astype(np.uint8, copy=False).tobytes()
        path = os.fspath(weights)
        if path.endswith(".npz"):
            if config is None:
                raise ValueError("load_weights: an .npz needs config= (the network's TOML) to be packed")
            try:
                from qnnfab import netconfig
                from qnnfab.plan import pack_image
            except ImportError:
                raise OverlayError("packing an .npz needs qnnfab; run `qnnfab pack-weights --config "
                                   f"{config} --out weights.bin` on a PC and load the .bin") from None
            text = open(config).read()
            npz = os.path.abspath(path)
            lines = [f'weights = "{npz}"' if ln.strip().startswith("weights") and "=" in ln
                     and ln.split("=")[0].strip() == "weights" else ln for ln in text.splitlines()]
            cfg = netconfig.loads("\n".join(lines) + "\n", os.path.dirname(os.path.abspath(config)), config)
            return pack_image(cfg)
        with open(path, "rb") as f:
            return f.read()

    def soft_reset(self):
        """Abort whatever runs and return the shell to idle."""
        self.write("CTRL", om.CTRL_SOFT_RESET)

    def close(self):
        for buf in (self.in_buf, self.out_buf):
            free = getattr(buf, "freebuffer", None)
            if free is not None:
                free()


# ---------------------------------------------------------------------------
# the GEMM engine (qnnfab generate --gemm RxC): gemm(A, B) on matrices in DDR

class Gemm:
    """The systolic GEMM engine on the board (or in co-simulation).

    ``Gemm(bitfile)`` loads the bitstream; ``engine`` (default ``gemm.json``
    next to this file) is its :class:`GemmFormats` (array size, fixed-point
    formats, K_MAX, bus width); ``backend`` replaces the board. The identity
    registers must match ``engine`` or the constructor raises OverlayError.
    """

    def __init__(self, bitfile=None, *, engine=None, backend=None, timeout=10.0):
        self.formats = _formats(engine, om.GemmFormats, "gemm.json")
        backend = _backend(backend, bitfile, "Gemm")
        self.backend, self.timeout = backend, timeout
        self.last_cycles = None
        self.last_block_tiles = None
        self._buffers = {}
        want = self.formats.identity()
        got = {k: self.read(k) for k in want}
        bad = [f"{k} 0x{got[k]:X} (expected 0x{want[k]:X})" for k in want if got[k] != want[k]]
        if bad:
            raise OverlayError("the bitstream is not the GEMM engine of this driver folder: " + ", ".join(bad))

    def read(self, name):
        return self.backend.read(om.GEMM_OFFSET[name])

    def write(self, name, value):
        self.backend.write(om.GEMM_OFFSET[name], value)

    def _buffer(self, role, nbytes):
        buf = self._buffers.get(role)
        if buf is None or buf.shape[0] < nbytes:
            if buf is not None and getattr(buf, "freebuffer", None) is not None:
                buf.freebuffer()
            buf = self._buffers[role] = self.backend.allocate((nbytes,), np.uint8)
        return buf

    def _check(self, x, fmt, name):
        x = np.asarray(x)
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer) or 0 in x.shape:
            raise ValueError(f"{name} must be a non-empty 2-D integer array of fixed-point codes, "
                             f"not {x.dtype} {x.shape}")
        w = sum(fmt)
        lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
        if x.min() < lo or x.max() > hi:
            raise ValueError(f"{name} codes must lie in [{lo}, {hi}] (format I={fmt[0]}, F={fmt[1]}), "
                             f"found [{x.min()}, {x.max()}]")
        return x.astype(np.int64)

    def gemm(self, a, b, fmt=None, rounding="stochastic", block_tiles=None):
        """``round(a @ b)``: (M, N) int64 codes of the output format.

        ``a`` (M, K), ``b`` (K, N): integer codes of the engine's A and B
        formats; ``fmt``: None or the formats ``(a_fmt, b_fmt, c_fmt)`` as
        (I, F) pairs, which must be the engine's; ``rounding``: "stochastic"
        or "nearest"; ``block_tiles``: row tiles per block (1 .. PANELS;
        None: :func:`qnnfab_overlay_map.gemm_block_tiles`, the fewest
        estimated cycles). Stochastic rounding depends on the tile order,
        hence on ``block_tiles`` (``self.last_block_tiles``)."""
        fm = self.formats
        if fmt is not None and tuple(tuple(f) for f in fmt) != (fm.a_fmt, fm.b_fmt, fm.c_fmt):
            raise ValueError(f"fmt {fmt!r}: this engine computes with a_fmt {fm.a_fmt}, b_fmt {fm.b_fmt}, "
                             f"c_fmt {fm.c_fmt} (generate another engine for other formats)")
        if rounding not in om.ROUNDINGS:
            raise ValueError(f"rounding must be one of {sorted(om.ROUNDINGS)}, not {rounding!r}")
        a = self._check(a, fm.a_fmt, "a")
        b = self._check(b, fm.b_fmt, "b")
        (M, K), (K2, N) = a.shape, b.shape
        if K != K2:
            raise ValueError(f"a is {M}x{K} and b is {K2}x{N}: inner dimensions differ")
        if K > fm.k_max:
            raise ValueError(f"K = {K} exceeds the engine's K_MAX {fm.k_max}")
        R, C, bb = fm.rows, fm.cols, fm.bus_bytes
        tr, tc = -(-M // R), -(-N // C)
        if max(tr, tc) > om.MAX_TILES:
            raise ValueError(f"{M}x{N} needs {tr}x{tc} tiles; at most {om.MAX_TILES} per side")
        ap = np.zeros((tr * R, K), np.int64)
        ap[:M] = a
        bp = np.zeros((K, tc * C), np.int64)
        bp[:, :N] = b
        q = om.gemm_block_tiles(fm, tr, tc) if block_tiles is None else int(block_tiles)
        if not 1 <= q <= fm.panels:
            raise ValueError(f"block_tiles must lie in 1 .. {fm.panels} (the engine's PANELS), not {block_tiles!r}")
        a_words = ap.reshape(tr, R, K).transpose(0, 2, 1)            # (tr, K, R): panel t, word k
        b_words = bp.reshape(K, tc, C).transpose(1, 0, 2)            # (tc, K, C)
        a_raw = packing.pack_bytes(a_words, fm.a_width, fm.a_word_beats * bb).reshape(-1)
        b_raw = packing.pack_bytes(b_words, fm.b_width, fm.b_word_beats * bb).reshape(-1)
        c_bytes = tr * tc * R * fm.c_word_beats * bb
        bufs = {}
        for role, raw in (("a", a_raw), ("b", b_raw)):
            buf = bufs[role] = self._buffer(role, raw.size)
            buf[:raw.size] = raw
            buf.flush()
        out = self._buffer("c", c_bytes)
        self.write("A_ADDR", bufs["a"].device_address)
        self.write("B_ADDR", bufs["b"].device_address)
        self.write("C_ADDR", out.device_address)
        self.write("ROW_TILES", tr)
        self.write("COL_TILES", tc)
        self.write("K", K)
        self.write("ROUNDING", om.ROUNDINGS[rounding])
        self.write("BLOCK_TILES", q)
        self.last_block_tiles = q
        self.write("STATUS", om.STATUS_DONE)
        self.write("CTRL", om.CTRL_IRQ_ENABLE | om.CTRL_START)
        waited = 0.0
        while True:
            status = self.read("STATUS")
            if status & om.STATUS_DONE and not status & om.STATUS_BUSY:
                break
            if waited > self.timeout:
                raise OverlayError(f"no DONE after {self.timeout} s (STATUS 0x{status:X}, TILES_DONE "
                                   f"{self.read('TILES_DONE')}); write CTRL.SOFT_RESET to recover")
            waited += self.backend.wait()
        error = self.read("ERROR")
        self.last_cycles = self.read("CYCLES")
        self.write("STATUS", om.STATUS_DONE)
        if status & om.STATUS_ERROR:
            raise OverlayError(f"gemm {M}x{K}x{N} ended with error {om.ERROR_NAMES.get(error & 0xFF, error)}")
        out.invalidate()
        tiles = packing.unpack_bytes(out[:c_bytes].reshape(tr * tc, R, fm.c_word_beats * bb), C, fm.c_width,
                                     signed=True)
        order = np.array(om.gemm_tile_order(tr, tc, q)).reshape(tr * tc, 2)
        grid = np.zeros((tr, tc, R, C), np.int64)
        grid[order[:, 0], order[:, 1]] = tiles
        return grid.transpose(0, 2, 1, 3).reshape(tr * R, tc * C)[:M, :N]

    def close(self):
        for buf in self._buffers.values():
            free = getattr(buf, "freebuffer", None)
            if free is not None:
                free()

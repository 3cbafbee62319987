"""The overlay's register map, error codes and DDR buffer formats: ONE definition.

Used by the shell RTL (:mod:`qnnfab.rtl.overlay`), the Python driver
(:mod:`qnnfab.boards.onboard.driver`), the co-simulation and the generators of the
Vivado Tcl and the README. Pure Python without imports from qnnfab: the
generated overlay folder carries a verbatim copy of this file
(``qnnfab_overlay_map.py``) next to the driver, so the board needs neither
qnnfab nor Amaranth.

Registers (AXI4-Lite, 32-bit, byte offsets in a 4 KiB block)
-------------------------------------------------------------
======== ============ ====== ===============================================
offset   name         access meaning
======== ============ ====== ===============================================
0x00     CTRL         W/R    bit 0 START, bit 1 SOFT_RESET, bit 3 LOAD_WEIGHTS
                             (write 1: a one-cycle command; read as 0);
                             bit 2 IRQ_ENABLE (kept, read back)
0x04     STATUS       R/W1C  bit 0 BUSY, bit 1 DONE (a run or command ended,
                             sticky; write 1 to clear it and the interrupt),
                             bit 2 ERROR (ERROR register is not 0)
0x08     ERROR        R      bits 7:0 error code (``ERRORS``) of the last
                             run/command, bits 15:8 the accelerator's
                             ``wload_error`` when the code is WLOAD
0x0C     FRAMES_DONE  R      frames whose output record went to the write DMA
0x10     IN_ADDR      RW     input buffer (bus aligned, not 0)
0x14     OUT_ADDR     RW     output buffer (bus aligned, not 0)
0x18     FRAMES       RW     frames to run (1 .. 2^32-1)
0x1C     CYCLES       R      clock cycles of the last run, START to DONE
0x20     WEIGHTS_ADDR RW     weights image in DDR (bus aligned, not 0)
0x24     WEIGHTS_LEN  RW     weights image length in bytes (not 0)
0x40     IDENTITY     R      ``IDENTITY`` (magic "QNF" and the map version)
0x44     TOPOLOGY     R      ``NetConfig.topology_hash()`` of the network
0x48     FEATURES     R      bits 7:0 bus bytes, bit 8 runtime weights
0x4C     IN_FRAME_BYTES  R   bytes per input frame in DDR
0x50     OUT_RECORD_BYTES R  bytes per output record in DDR
0x54     IDENTITY_HASH  R    the design's identity (``Plan.identity_hash``):
                             the topology hash for runtime weights; for
                             constant weights a hash of it and the weights
                             and thresholds built in
======== ============ ====== ===============================================

The interrupt output is ``IRQ_ENABLE & DONE`` (level, active high).

Buffer formats in DDR (little endian, ``bus`` = AXI data width in bytes)
-------------------------------------------------------------------------
Input: frame after frame, each ``in_frame_bytes`` long. A frame is the
network's input words (the first layer's SIMD elements each, element 0 at
the LSBs, NHWC raster order) in slots of ``in_slot_bytes`` (the word's width
rounded up to a power-of-two number of bytes, zero-padded), then zero
padding to a whole number of bus words.

Output: one record per frame, ``out_record_bytes`` long: the score words
(the last layer's PE scores each, ``out_bits`` two's complement bits per
score when ``out_signed``, score 0 at the LSBs) in slots of
``out_slot_bytes`` (power of two, at least 4), then one slot with the label
word (bits 15:0 the label under the network's ``label_rule``, bits 31:16 the frame's index in the run
modulo 2^16), then zero padding to a whole number of bus words.
"""

__all__ = ["REGISTERS", "Register", "CTRL_START", "CTRL_SOFT_RESET", "CTRL_IRQ_ENABLE",
           "CTRL_LOAD_WEIGHTS", "STATUS_BUSY", "STATUS_DONE", "STATUS_ERROR", "ERRORS", "ERROR_NAMES",
           "IDENTITY", "MAP_VERSION", "MAX_BURST", "BLOCK_BYTES", "Formats", "slot_bytes",
           "GEMM_IDENTITY", "GEMM_REGISTERS", "GEMM_OFFSET", "ROUNDINGS", "MAX_TILES", "GemmFormats",
           "gemm_tile_order", "gemm_block_tiles"]

MAP_VERSION = 2                                  # 2: IDENTITY_HASH (0x54)
IDENTITY = (0x514E46 << 8) | MAP_VERSION          # "QNF" + version
BLOCK_BYTES = 4096                                # the AXI4-Lite address space (12 bits)

# AXI4 master bursts: at most 16 beats (the AXI3 limit of the Zynq-7000 HP
# ports: longer AXI4 bursts would be split by the interconnect anyway, and 16
# keeps the DMA FIFOs small), each inside one aligned block of 16 beats, so no
# burst crosses a 4 KiB boundary at any bus width up to 256 bytes.
MAX_BURST = 16


class Register:
    """One 32-bit register: ``name``, byte ``offset``, ``access`` "rw" (held in
    the register file) or "ro" (read from the shell; a write is a command the
    shell sees as a strobe), ``write``: what a write to an "ro" register does
    (None: nothing)."""

    def __init__(self, name, offset, access, doc, write=None):
        self.name, self.offset, self.access, self.doc, self.write = name, offset, access, doc, write

    @property
    def access_text(self):
        """The access as the overlay README's table shows it: "rw", "ro" or "ro; write: command"."""
        return self.access if self.write is None else f"{self.access}; write: {self.write}"

    def __repr__(self):
        return f"Register({self.name!r}, 0x{self.offset:02X}, {self.access!r})"


REGISTERS = [
    Register("CTRL", 0x00, "ro", "commands START/SOFT_RESET/LOAD_WEIGHTS, IRQ_ENABLE", write="command"),
    Register("STATUS", 0x04, "ro", "BUSY, DONE (write 1 to clear), ERROR", write="1 clears DONE"),
    Register("ERROR", 0x08, "ro", "error code of the last run or command"),
    Register("FRAMES_DONE", 0x0C, "ro", "frames whose output record went to the write DMA"),
    Register("IN_ADDR", 0x10, "rw", "input buffer address"),
    Register("OUT_ADDR", 0x14, "rw", "output buffer address"),
    Register("FRAMES", 0x18, "rw", "frames to run"),
    Register("CYCLES", 0x1C, "ro", "clock cycles of the last run"),
    Register("WEIGHTS_ADDR", 0x20, "rw", "weights image address"),
    Register("WEIGHTS_LEN", 0x24, "rw", "weights image length in bytes"),
    Register("IDENTITY", 0x40, "ro", "magic and register map version"),
    Register("TOPOLOGY", 0x44, "ro", "topology hash of the network"),
    Register("FEATURES", 0x48, "ro", "bus bytes, runtime weights"),
    Register("IN_FRAME_BYTES", 0x4C, "ro", "bytes per input frame"),
    Register("OUT_RECORD_BYTES", 0x50, "ro", "bytes per output record"),
    Register("IDENTITY_HASH", 0x54, "ro", "identity: topology hash, and the weights when constant"),
]
OFFSET = {r.name: r.offset for r in REGISTERS}

CTRL_START = 1 << 0
CTRL_SOFT_RESET = 1 << 1
CTRL_IRQ_ENABLE = 1 << 2
CTRL_LOAD_WEIGHTS = 1 << 3
STATUS_BUSY = 1 << 0
STATUS_DONE = 1 << 1
STATUS_ERROR = 1 << 2
FEATURE_RUNTIME_WEIGHTS = 1 << 8

# Error codes (ERROR bits 7:0). Every bad use ends in DONE with one of them
# and the shell back in idle; a soft reset ends with DONE clear and code 0.
ERRORS = {
    "OK": 0,
    "ZERO_FRAMES": 1,          # START with FRAMES = 0
    "START_WHILE_BUSY": 2,     # START during a run: the run is aborted
    "IN_ADDR": 3,              # IN_ADDR is 0 or not bus aligned
    "OUT_ADDR": 4,             # OUT_ADDR is 0 or not bus aligned
    "READ_SLVERR": 5,          # a read burst answered SLVERR: the run is aborted
    "READ_DECERR": 6,          # ... DECERR
    "WRITE_SLVERR": 7,         # a write burst answered SLVERR: the run is aborted
    "WRITE_DECERR": 8,         # ... DECERR
    "WEIGHTS_UNSUPPORTED": 9,  # LOAD_WEIGHTS on a bitstream with constant weights
    "WEIGHTS_ADDR": 10,        # WEIGHTS_ADDR is 0 or not bus aligned
    "WEIGHTS_LEN": 11,         # WEIGHTS_LEN is 0
    "WLOAD": 12,               # the accelerator rejected the weights image (ERROR bits 15:8)
    "GEMM_SIZE": 13,           # GEMM: ROW_TILES, COL_TILES, K or BLOCK_TILES is 0, K > K_MAX,
                               # or BLOCK_TILES > PANELS
}
ERROR_NAMES = {v: k for k, v in ERRORS.items()}


DEFAULT_LABEL_RULE = "argmax"     # qnnfab.packing.LABEL_RULES[0]


def slot_bytes(bits, minimum=1):
    """Bytes of a slot holding a ``bits``-wide word: a power of two >= ``minimum``."""
    n = max(minimum, -(-bits // 8))
    return 1 << (n - 1).bit_length()


class Formats:
    """What the shell and the driver agree on for one network and bus width.

    Built by the generator from the network config and kept as JSON next to
    the driver (:meth:`to_dict` / :meth:`from_dict`). Fields: ``name``,
    ``input_shape``, ``input_kind`` ("bipolar", "uint", "int"), ``input_bits``
    (bits per input element), ``in_simd`` (elements per input word),
    ``out_elems`` (scores per output word), ``out_bits``, ``out_signed``,
    ``out_words`` (per frame), ``topology_hash``, ``bus_bytes``,
    ``runtime_weights``, ``identity_hash`` (the plan's; optional, default
    ``topology_hash``), ``label_rule`` (how the label word's label follows
    from the scores, the config's ``label``: "argmax" or "highest_set_bit",
    see ``frame_labels`` in ``qnnfab_packing.py``; optional, default
    "argmax", written only when not the default), ``input_pad`` (padding elements, stored 0, after
    every frame's input elements; optional, default 0: the input records
    hold ``in_words`` words including them), ``classes`` (the reported
    scores, the first of ``n_scores``; optional, default all).
    """

    FIELDS = ("name", "input_shape", "input_kind", "input_bits", "in_simd", "out_elems", "out_bits",
              "out_signed", "out_words", "topology_hash", "bus_bytes", "runtime_weights")

    def __init__(self, **kw):
        missing = [f for f in self.FIELDS if f not in kw]
        if missing:
            raise TypeError(f"Formats: missing fields {missing}")
        for f in self.FIELDS:
            setattr(self, f, kw[f])
        self.identity_hash = kw.get("identity_hash", self.topology_hash)
        self.label_rule = kw.get("label_rule", DEFAULT_LABEL_RULE)
        self.input_pad = kw.get("input_pad", 0)
        self.input_shape = tuple(self.input_shape)
        if self.bus_bytes not in (4, 8, 16):
            raise ValueError(f"bus_bytes must be 4, 8 or 16, not {self.bus_bytes!r}")
        n_in = 1
        for s in self.input_shape:
            n_in *= s
        self.in_elems = n_in + self.input_pad
        self.in_words = self.in_elems // self.in_simd
        self.in_word_bits = self.in_simd * self.input_bits
        self.in_slot_bytes = slot_bytes(self.in_word_bits)
        self.in_frame_beats = -(-self.in_words * self.in_slot_bytes // self.bus_bytes)
        self.in_frame_bytes = self.in_frame_beats * self.bus_bytes
        self.n_scores = self.out_words * self.out_elems
        self.classes = kw.get("classes") or self.n_scores
        self.out_word_bits = self.out_elems * self.out_bits
        self.out_slot_bytes = slot_bytes(self.out_word_bits, minimum=4)
        self.out_items = self.out_words + 1
        self.out_record_beats = -(-self.out_items * self.out_slot_bytes // self.bus_bytes)
        self.out_record_bytes = self.out_record_beats * self.bus_bytes

    def to_dict(self):
        d = {f: getattr(self, f) for f in self.FIELDS}
        d["identity_hash"] = self.identity_hash
        if self.label_rule != DEFAULT_LABEL_RULE:
            d["label_rule"] = self.label_rule
        d["input_shape"] = list(self.input_shape)
        if self.input_pad:
            d["input_pad"] = self.input_pad
        if self.classes != self.n_scores:
            d["classes"] = self.classes
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**{f: d[f] for f in cls.FIELDS + ("identity_hash", "label_rule", "input_pad", "classes") if f in d})

    def features(self):
        """The FEATURES register value."""
        return self.bus_bytes | (FEATURE_RUNTIME_WEIGHTS if self.runtime_weights else 0)

    def __eq__(self, other):
        return isinstance(other, Formats) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"Formats({self.to_dict()!r})"


# ---------------------------------------------------------------------------
# The GEMM engine (qnnfab.rtl.gemm) behind the same shell: CTRL, STATUS,
# ERROR, CYCLES and IDENTITY at the offsets and with the meaning above
# (CTRL without LOAD_WEIGHTS); its own operands and identity words.
#
# ======== ============ ====== ===============================================
# 0x0C     TILES_DONE   R      output tiles whose rows went to the write DMA
# 0x10     A_ADDR       RW     A panels (bus aligned, not 0)
# 0x14     B_ADDR       RW     B panels (bus aligned, not 0)
# 0x18     C_ADDR       RW     output tiles (bus aligned, not 0)
# 0x20     ROW_TILES    RW     ceil(M / R) (1 .. 65535)
# 0x24     COL_TILES    RW     ceil(N / C) (1 .. 65535)
# 0x28     K            RW     inner dimension (1 .. K_MAX)
# 0x2C     ROUNDING     RW     bit 0: 1 stochastic, 0 round to nearest
# 0x30     BLOCK_TILES  RW     row tiles per block (1 .. PANELS): A panels kept
#                              in BRAM while every B panel streams past them
# 0x40     IDENTITY     R      ``GEMM_IDENTITY``
# 0x44     ARRAY        R      bits 7:0 R, 15:8 C, 31:16 bus bytes
# 0x48     K_MAX        R      largest K (the A panel memory's depth)
# 0x4C     FORMATS      R      bytes 0..3: I_a, F_a, I_b, F_b
# 0x50     OUT_FORMAT   R      byte 0: I_c, byte 1: F_c, bits 31:16 LFSR seed
# 0x54     PANELS       R      p: A panels per block the BRAM holds (twice:
#                              one block computes while the next one loads)
# ======== ============ ====== ===============================================
#
# Buffers (little endian): A is ROW_TILES panels, panel t = rows tR..tR+R-1 of A
# (zero rows past M) as K words, word k = (A[tR, k], ..., A[tR+R-1, k]),
# element 0 at the LSBs, each word in ``a_word_beats`` whole bus words.
# B is COL_TILES panels, panel t = columns tC..tC+C-1 (zero columns past N)
# as K words, word k = (B[k, tC], ..., B[k, tC+C-1]) in ``b_word_beats`` bus
# words each. C is ROW_TILES * COL_TILES tiles in the engine's compute order
# (``gemm_tile_order``: blocks of BLOCK_TILES row tiles, the last block
# holding the rest; within a block column tiles outer, the block's row tiles
# inner), each R words (row i = (C[tR+i, tC], ..., C[tR+i, tC+C-1])) in
# ``c_word_beats`` bus words each; the rows and columns past M, N are the
# results of the zero padding. Rounding of the whole run is that of the
# systolic array on the padded operands, tiles in that order, its LFSR lanes
# started from the seed at every START.
#
# The engine reads each A panel once and each B panel once per block: from
# DDR it reads ROW_TILES A panels and ceil(ROW_TILES / BLOCK_TILES) *
# COL_TILES B panels, while the array computes ROW_TILES * COL_TILES tiles
# of K steps.

GEMM_IDENTITY = (0x514E47 << 8) | MAP_VERSION     # "QNG" + version
GEMM_REGISTERS = [r for r in REGISTERS if r.name in ("CTRL", "STATUS", "ERROR", "CYCLES")] + [
    Register("TILES_DONE", 0x0C, "ro", "output tiles whose rows went to the write DMA"),
    Register("A_ADDR", 0x10, "rw", "A panels address"),
    Register("B_ADDR", 0x14, "rw", "B panels address"),
    Register("C_ADDR", 0x18, "rw", "output tiles address"),
    Register("ROW_TILES", 0x20, "rw", "row tiles ceil(M / R)"),
    Register("COL_TILES", 0x24, "rw", "column tiles ceil(N / C)"),
    Register("K", 0x28, "rw", "inner dimension"),
    Register("ROUNDING", 0x2C, "rw", "1 stochastic, 0 nearest"),
    Register("BLOCK_TILES", 0x30, "rw", "row tiles per block (A panels kept in BRAM)"),
    Register("IDENTITY", 0x40, "ro", "magic and register map version"),
    Register("ARRAY", 0x44, "ro", "R, C, bus bytes"),
    Register("K_MAX", 0x48, "ro", "largest K"),
    Register("FORMATS", 0x4C, "ro", "I_a, F_a, I_b, F_b"),
    Register("OUT_FORMAT", 0x50, "ro", "I_c, F_c, LFSR seed"),
    Register("PANELS", 0x54, "ro", "A panels per block"),
]
GEMM_OFFSET = {r.name: r.offset for r in GEMM_REGISTERS}
ROUNDINGS = {"nearest": 0, "stochastic": 1}
MAX_TILES = 0xFFFF


def _beats(bits, bus_bytes):
    return -(-bits // (8 * bus_bytes))


class GemmFormats:
    """What the GEMM engine and its driver agree on: array ``rows`` x ``cols``,
    fixed-point formats ``a_fmt``, ``b_fmt``, ``c_fmt`` as [I, F], ``k_max``,
    ``panels`` (p, A panels per block), ``seed`` (LFSR), ``bus_bytes``;
    derived: ``a_word_beats``, ``b_word_beats``, ``c_word_beats`` (bus words
    per A, B, output word)."""

    FIELDS = ("rows", "cols", "a_fmt", "b_fmt", "c_fmt", "k_max", "panels", "seed", "bus_bytes")

    def __init__(self, **kw):
        missing = [f for f in self.FIELDS if f not in kw]
        if missing:
            raise TypeError(f"GemmFormats: missing fields {missing}")
        for f in self.FIELDS:
            setattr(self, f, kw[f])
        self.a_fmt, self.b_fmt, self.c_fmt = (tuple(x) for x in (self.a_fmt, self.b_fmt, self.c_fmt))
        self.a_width, self.b_width, self.c_width = (sum(x) for x in (self.a_fmt, self.b_fmt, self.c_fmt))
        self.a_word_beats = _beats(self.rows * self.a_width, self.bus_bytes)
        self.b_word_beats = _beats(self.cols * self.b_width, self.bus_bytes)
        self.c_word_beats = _beats(self.cols * self.c_width, self.bus_bytes)

    def to_dict(self):
        d = {f: getattr(self, f) for f in self.FIELDS}
        for f in ("a_fmt", "b_fmt", "c_fmt"):
            d[f] = list(d[f])
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**{f: d[f] for f in cls.FIELDS})

    def identity(self):
        """``{register: value}`` of the engine's identity registers."""
        return {
            "IDENTITY": GEMM_IDENTITY,
            "ARRAY": self.rows | (self.cols << 8) | (self.bus_bytes << 16),
            "K_MAX": self.k_max,
            "FORMATS": self.a_fmt[0] | (self.a_fmt[1] << 8) | (self.b_fmt[0] << 16) | (self.b_fmt[1] << 24),
            "OUT_FORMAT": self.c_fmt[0] | (self.c_fmt[1] << 8) | ((self.seed & 0xFFFF) << 16),
            "PANELS": self.panels,
        }

    def __eq__(self, other):
        return isinstance(other, GemmFormats) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"GemmFormats({self.to_dict()!r})"


def gemm_tile_order(row_tiles, col_tiles, block_tiles):
    """The engine's output tiles in compute (and DDR) order: a list of
    (row tile, column tile). Blocks of ``block_tiles`` row tiles (the last
    block the rest); per block every column tile, per column tile the
    block's row tiles."""
    order = []
    for first in range(0, row_tiles, block_tiles):
        rows = range(first, min(first + block_tiles, row_tiles))
        order += [(i, j) for j in range(col_tiles) for i in rows]
    return order


def gemm_block_tiles(fm, row_tiles, col_tiles):
    """The BLOCK_TILES (1 .. ``fm.panels``) the driver chooses for a product
    of ``row_tiles`` x ``col_tiles`` tiles: the fewest estimated cycles,
    counting per block the larger of the array's time (its tiles) and the
    DDR's (its B panels and the next block's A panels, in bus words per K),
    plus the first block's A panels (nothing overlaps them). A schedule
    choice only: any value in range gives the same results for that order."""
    def estimate(q):
        sizes = [min(q, row_tiles - f) for f in range(0, row_tiles, q)]
        total = fm.a_word_beats * sizes[0]
        for b, qb in enumerate(sizes):
            nxt = sizes[b + 1] if b + 1 < len(sizes) else 0
            total += max(qb * col_tiles, fm.b_word_beats * col_tiles + fm.a_word_beats * nxt)
        return total
    return min(range(fm.panels, 0, -1), key=estimate)

"""The weights image: the one definition of how runtime weights are laid out.

A network built with ``weights_mode = "runtime"`` keeps the weights and
thresholds of every fc/conv layer, and the thresholds of a graph's add and
global_avgpool layers, in RAMs without initial contents; they are
filled through the accelerator's ``wload`` port with a *weights image*. The
packer (:meth:`qnnfab.plan.Plan.image_words`, ``qnnfab pack-weights``), the loader hardware
(:class:`qnnfab.rtl.weight_loader.WeightLoader`), the memories of
:class:`~qnnfab.rtl.mvtu.MVTU` and of :class:`~qnnfab.rtl.threshold.Threshold` (an add's and a
global pool's thresholds) and the drivers all use the definitions below.

Image = 64-bit words, little-endian (byte 8k is the LSB of word k)::

    word 0   MAGIC (bits 0-31) | VERSION (bits 32-47) | 0 (bits 48-63)
    word 1   NetConfig.topology_hash() (bits 0-31) | body words (bits 32-63)
    word 2.. the body: every memory group in order (below), row by row

Memory groups, in layer order (the config's; a graph's stages are planned in
it): an fc/conv layer's weight memories, then its threshold stage memories
0 .. n-1; an add or global_avgpool layer's threshold stage memories 0 .. n-1
(thresholds on the sum, PE = the layer's lanes); max pools have none
(layouts: :mod:`qnnfab.weight_layout`). A group is the PE memories of one
kind, each ``width`` bits x ``depth`` logical words. In runtime mode each PE
memory stores ``pack`` consecutive logical words per physical word (``pack``
= the smallest power of two with ``PE * width * pack >= 64``, no more than
the depth needs), so narrow memories fill at close to 64 bits per cycle::

    physical word a of PE p  =  logical words a*pack .. a*pack + pack-1,
                                word a*pack + j at bits [j*width, (j+1)*width)
    row a of the group       =  physical words of PE 0, 1, .. PE-1 at
                                bits [p*pack*width, (p+1)*pack*width)

Row ``a`` goes into the image as ``row_words = ceil(row_bits / 64)``
consecutive words, most significant first (bits [64k, 64k+64), zero-padded,
for k = row_words-1 down to 0), rows in order a = 0 .. stored_depth-1. The
loader shifts the words of a row through a register and writes the row
(the last word at the LSBs) into every PE memory of the group in the cycle
its last word arrives: one image word per cycle.
Logical words beyond ``depth`` in the last row are zero. Values are stored in
``width``-bit two's complement (signed thresholds).

Errors (``wload_error`` with ``wload_done``; :class:`WloadError`): the one
list of codes, shared by the hardware, the drivers and the tests.

This file imports from qnnfab only :mod:`qnnfab.packing` (the bits of a row,
element 0 at the LSBs), with a fallback: the overlay's driver folder carries
verbatim copies of both (``qnnfab_weights_image.py``, ``qnnfab_packing.py``)
for the header check on a board without qnnfab.
"""

from dataclasses import dataclass
from enum import IntEnum

try:
    from qnnfab.packing import pack_fields, unpack_fields
except ImportError:      # the driver's copy on a board
    from qnnfab_packing import pack_fields, unpack_fields


def _error(where, field, problem, fix):
    try:
        from qnnfab.errors import ConfigError
    except ImportError:      # the driver's copy on a board
        return ValueError(f"{where}: {field}: {problem} (fix: {fix})")
    return ConfigError(where, field, problem, fix)

__all__ = ["MAGIC", "VERSION", "WORD_BITS", "HEADER_WORDS", "WloadError", "ERROR_BITS", "MemoryGroup",
           "header_words", "group_rows", "read_header", "check_image"]

MAGIC = 0x49574E51          # b"QNWI" as a little-endian 32-bit word
VERSION = 1
WORD_BITS = 64
HEADER_WORDS = 2


class WloadError(IntEnum):
    """``wload_error`` codes (valid in the cycle ``wload_done`` pulses)."""
    OK = 0
    BAD_HEADER = 1      # word 0 is not MAGIC | VERSION, or the body length differs from this network's
    WRONG_NETWORK = 2   # the topology hash is not this accelerator's (an image of another network)
    TRUNCATED = 3       # ``last`` came before the end of the body (weights partly written)
    TOO_LONG = 4        # no ``last`` on the final body word; the excess up to ``last`` was discarded
    BUSY = 5            # a frame was in flight: the whole image was discarded, weights unchanged


ERROR_BITS = max(e.value for e in WloadError).bit_length()


@dataclass(frozen=True)
class MemoryGroup:
    """The PE memories of one kind in one layer (see the module docstring)."""
    layer: str
    memory: str         # "weights" or "thresholds<s>"
    pe: int
    width: int          # bits of one logical word
    depth: int          # logical words per PE memory
    signed: bool = False

    @property
    def pack(self):
        p = 1
        while self.pe * self.width * p < WORD_BITS and p < self.depth:
            p *= 2
        return p

    @property
    def stored_width(self):
        return self.width * self.pack

    @property
    def stored_depth(self):
        return -(-self.depth // self.pack)

    @property
    def row_bits(self):
        return self.pe * self.stored_width

    @property
    def row_words(self):
        return -(-self.row_bits // WORD_BITS)

    @property
    def words(self):
        """Image words of this group."""
        return self.stored_depth * self.row_words


def header_words(topology_hash, body_words):
    """The two header words of an image."""
    return [MAGIC | (VERSION << 32), (topology_hash & 0xFFFF_FFFF) | (body_words << 32)]


def group_rows(group, contents):
    """Rows of ``group`` (ints of ``row_bits`` bits) from ``contents``: PE lists of ``depth`` logical words."""
    k = group.pack
    rows = []
    for a in range(group.stored_depth):
        fields = [contents[p][i] if i < group.depth else 0 for p in range(group.pe) for i in range(a * k, a * k + k)]
        rows.append(pack_fields(fields, [group.width] * len(fields)))
    return rows


def read_header(data):
    """``(magic, version, topology_hash, body_words)`` of an image (bytes)."""
    if len(data) < 8 * HEADER_WORDS:
        raise _error("weights image", "header", f"is {len(data)} bytes, shorter than the "
                     f"{8 * HEADER_WORDS}-byte header", "pack the image with `qnnfab pack-weights`")
    w0 = int.from_bytes(data[0:8], "little")
    w1 = int.from_bytes(data[8:16], "little")
    return w0 & 0xFFFF_FFFF, (w0 >> 32) & 0xFFFF, w1 & 0xFFFF_FFFF, w1 >> 32


def check_image(data, topology_hash, body_words=None):
    """Raise ConfigError unless ``data`` is a complete image for ``topology_hash``; return its body words."""
    magic, version, thash, n = read_header(data)
    fix = "pack the image with `qnnfab pack-weights --config <the accelerator's config>`"
    if magic != MAGIC or version != VERSION:
        raise _error("weights image", "header", f"magic {magic:#010x} version {version} is not a "
                     f"qnnfab weights image (magic {MAGIC:#010x} version {VERSION})", fix)
    if thash != topology_hash:
        raise _error("weights image", "topology hash", f"{thash:#010x} is another network's; this "
                     f"accelerator is {topology_hash:#010x}", fix)
    if body_words is not None and n != body_words:
        raise _error("weights image", "length", f"the header says {n} body words, this accelerator "
                     f"takes {body_words}", fix)
    need = 8 * (HEADER_WORDS + n)
    if len(data) < need:
        raise _error("weights image", "length", f"is {len(data)} bytes, the header announces {need}",
                     "the file is truncated: pack it again")
    return n


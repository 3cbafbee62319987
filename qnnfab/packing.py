"""The one word-packing convention: elements into words, element 0 at the least significant bits.

Every stream word, memory word, DDR buffer and weights-image row of the
project lays its elements out this way (Amaranth lays out ``data.ArrayLayout``
and ``data.StructLayout`` payloads the same way): field ``k`` of widths
``w_0, w_1, ...`` occupies bits ``[w_0 + ... + w_(k-1), w_0 + ... + w_k)``
of the word, each value stored modulo ``2**w_k`` (two's complement for a
negative one). Unpacking reads a field back unsigned, or sign-extended when
``signed``.

A word is a Python ``int`` of any width, or a row of ``nbytes``
little-endian bytes (byte ``j`` holds bits ``[8j, 8j + 8)``, the bits above
the last element zero): the form of the simulators' files and of the
board's DMA buffers.

* :func:`pack_fields` / :func:`unpack_fields`: one word of fields of any
  widths (Python ints, no limit on a field's width).
* :func:`pack_bytes` / :func:`unpack_bytes`: whole arrays at once (NumPy),
  the last axis the elements of one word, all ``bits`` wide
  (1 <= ``bits`` <= 63).
* :func:`pack_words` / :func:`unpack_words`: the same as Python ints.
* :func:`frame_labels`: the label of each frame's scores under a label rule
  (:data:`LABEL_RULES`), the rule the hardware's label port and the board's
  label word follow.

Depends on NumPy and the standard library only: the generated driver folder
carries a verbatim copy (``qnnfab_packing.py``) for a board without qnnfab.
"""

import numpy as np

__all__ = ["pack_fields", "unpack_fields", "pack_bytes", "unpack_bytes", "pack_words", "unpack_words",
           "LABEL_RULES", "frame_labels", "pad_frames"]

# How a frame's label follows from its scores (the last layer's outputs):
# "argmax": the index of the largest score, the lowest index among equal ones (numpy.argmax);
# "highest_set_bit": for one-bit outputs (one bit per class), the highest index whose output is 1,
# 0 when none is (the host rule of BNN-PYNQ's LFC).
LABEL_RULES = ("argmax", "highest_set_bit")

MAX_ELEMENT_BITS = 63       # the widest element the array packers hold in int64


def pack_fields(values, widths):
    """One word (int) of ``values``, field ``k`` ``widths[k]`` bits wide, field 0 at the LSBs."""
    word, shift = 0, 0
    for v, w in zip(values, widths):
        word |= (int(v) & ((1 << w) - 1)) << shift
        shift += w
    return word


def unpack_fields(word, widths, signed=False):
    """The fields of ``word`` (a list of ints; inverse of :func:`pack_fields`); ``signed`` sign-extends each."""
    word = int(word)
    out = []
    for w in widths:
        v = word & ((1 << w) - 1)
        if signed and v >> (w - 1):
            v -= 1 << w
        out.append(v)
        word >>= w
    return out


def _check_bits(bits):
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_ELEMENT_BITS:
        raise ValueError(f"element width must be an integer 1..{MAX_ELEMENT_BITS}, not {bits!r}")
    return int(bits)


def pack_bytes(elems, bits, nbytes):
    """Array ``elems`` (..., K) -> (..., ``nbytes``) uint8: each row of the last axis one word of K
    ``bits``-bit elements, element 0 at the LSBs, little-endian, zero above the last element."""
    bits = _check_bits(bits)
    e = np.asarray(elems)
    if e.ndim == 0:
        raise ValueError("pack_bytes needs an array with the elements of a word on its last axis")
    k = e.shape[-1]
    if k * bits > 8 * nbytes:
        raise ValueError(f"{k} elements of {bits} bits do not fit in {nbytes} bytes")
    # bit planes in the narrowest type that holds the element's bits (wrapping keeps them)
    dtype = np.uint8 if bits <= 8 else np.int64
    u = e.astype(dtype)
    planes = ((u[..., None] >> np.arange(bits, dtype=dtype)) & 1).astype(np.uint8)
    planes = planes.reshape(e.shape[:-1] + (k * bits,))
    pad = 8 * nbytes - k * bits
    if pad:
        planes = np.concatenate([planes, np.zeros(e.shape[:-1] + (pad,), np.uint8)], axis=-1)
    return np.packbits(planes, axis=-1, bitorder="little")


def unpack_bytes(raw, count, bits, signed=False):
    """Bytes (..., word bytes) uint8 -> (..., ``count``) int64: the first ``count`` elements of
    each word (inverse of :func:`pack_bytes`); ``signed`` sign-extends them."""
    bits = _check_bits(bits)
    b = np.asarray(raw, np.uint8)
    if count * bits > 8 * b.shape[-1]:
        raise ValueError(f"{count} elements of {bits} bits do not fit in words of {b.shape[-1]} bytes")
    planes = np.unpackbits(b, axis=-1, count=count * bits, bitorder="little")
    planes = planes.reshape(b.shape[:-1] + (count, bits)).astype(np.int64)
    v = (planes << np.arange(bits)).sum(axis=-1)
    if signed:      # move the sign bit to bit 63 and back
        v = (v << (64 - bits)) >> (64 - bits)
    return v


def pack_words(elems, bits):
    """Array ``elems`` (..., K) -> list of ints, one word per row of the last axis (leading axes flattened)."""
    e = np.asarray(elems)
    nbytes = -(-e.shape[-1] * bits // 8)
    rows = pack_bytes(e.reshape(-1, e.shape[-1]), bits, nbytes)
    return [int.from_bytes(r.tobytes(), "little") for r in rows]


def unpack_words(words, count, bits, signed=False):
    """Ints ``words`` -> (len(words), ``count``) int64: the first ``count`` elements of each (inverse of
    :func:`pack_words`)."""
    nbytes = -(-count * bits // 8)
    words = [int(w) & ((1 << (8 * nbytes)) - 1) for w in words]
    raw = np.frombuffer(b"".join(w.to_bytes(nbytes, "little") for w in words), np.uint8)
    return unpack_bytes(raw.reshape(len(words), nbytes), count, bits, signed)


def frame_labels(scores, rule="argmax"):
    """The label of every frame of ``scores`` (frames, outputs) under ``rule`` (one of
    :data:`LABEL_RULES`), as (frames,) int64. "highest_set_bit" reads a score of 1 as a set bit."""
    scores = np.asarray(scores)
    scores = scores.reshape(scores.shape[0], -1)
    if rule == "argmax":
        return scores.argmax(axis=1).astype(np.int64)
    if rule == "highest_set_bit":
        is_set = scores == 1
        last = scores.shape[1] - 1 - is_set[:, ::-1].argmax(axis=1)
        return np.where(is_set.any(axis=1), last, 0).astype(np.int64)
    raise ValueError(f"unknown label rule {rule!r}, expected one of {LABEL_RULES}")


def pad_frames(frames, input_pad):
    """Frames (B, ...) flattened to (B, elements + ``input_pad``), the padding elements stored 0: the
    accelerator's input frame (``[network] input_pad``, qnnfab/netconfig.py)."""
    flat = np.asarray(frames).reshape(len(frames), -1)
    if not input_pad:
        return flat
    return np.concatenate([flat, np.zeros((len(flat), input_pad), flat.dtype)], axis=1)

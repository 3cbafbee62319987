"""Packing stream words: fields and elements into integers and back (element 0 at the LSBs).

The one packing convention of every stream in the project (Amaranth lays
out ``data.ArrayLayout`` and ``data.StructLayout`` payloads the same way),
shared by the cocotb benches (:mod:`qnnfab.sim.stream`) and the
Amaranth-simulator tests (:mod:`qnnfab.sim.amaranth_stream`).
"""

import numpy as np

__all__ = ["pack_fields", "pack_rows", "unpack_fields"]


def pack_fields(values, widths):
    """Pack integers into one word, first field at the least significant bits."""
    word, shift = 0, 0
    for v, w in zip(values, widths):
        word |= (int(v) & ((1 << w) - 1)) << shift
        shift += w
    return word


def pack_rows(elems, bits):
    """One word per row of ``elems`` (its last axis), ``bits`` per element, element 0 at the LSBs."""
    e = np.asarray(elems)
    rows = e.reshape(-1, e.shape[-1])
    return [pack_fields(row, [bits] * len(row)) for row in rows]


def unpack_fields(word, widths, signed=False):
    """Inverse of :func:`pack_fields`; ``signed`` sign-extends every field."""
    out = []
    for w in widths:
        v = word & ((1 << w) - 1)
        if signed and v >> (w - 1):
            v -= 1 << w
        out.append(v)
        word >>= w
    return out

"""The one packing convention (qnnfab.packing): element 0 at the LSBs, two's complement fields,
little-endian bytes; every packer agrees with the field-by-field definition."""

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

from qnnfab.packing import pack_bytes, pack_fields, pack_words, unpack_bytes, unpack_fields, unpack_words

ROOT = Path(__file__).resolve().parent.parent


def test_fields_go_from_the_lsbs_up_in_twos_complement():
    assert pack_fields([1, 2, 3], [4, 4, 4]) == 0x321
    assert pack_fields([-1, 1], [3, 1]) == 0b1111         # -1 in 3 bits is 0b111
    assert pack_fields([5, 0, 1], [3, 7, 1]) == 5 | (1 << 10)
    assert pack_fields([1 << 70, 1], [71, 1]) == (1 << 70) | (1 << 71)  # fields of any width
    assert unpack_fields(0x3F1, [4, 4, 4], signed=True) == [1, -1, 3]
    assert unpack_fields(0x3F1, [4, 4, 4]) == [1, 15, 3]


def test_bytes_put_element_zero_at_the_lsbs_and_pad_with_zeros():
    # two 3-bit elements per 1-byte word: 0b101_011 and 0b000_111
    assert pack_bytes([[3, 5], [7, 0]], 3, 1).tolist() == [[0b101011], [0b000111]]
    # signed elements are two's complement in their field, the bytes above them zero
    assert pack_bytes([[-1, 1]], 4, 2).tolist() == [[0x1F, 0x00]]
    assert pack_bytes(np.array([[1, -1, 5]]), 4, 8).tolist() == [[0xF1, 0x05, 0, 0, 0, 0, 0, 0]]
    assert unpack_bytes(np.array([[0xF1, 0x05]], np.uint8), 3, 4, signed=True).tolist() == [[1, -1, 5]]
    assert pack_words([[1, 2, 3]], 4) == [0x321]
    assert pack_words(np.array([[[1, 0, 3], [2, 2, 0]]]), 2) == [0b110001, 0b001010]


@pytest.mark.parametrize("bits,elems,signed", [(1, 64, False), (1, 70, True), (3, 5, False), (8, 9, True),
                                               (11, 16, True), (17, 7, True), (40, 3, False), (63, 2, True)])
def test_every_packer_agrees_with_the_fields_and_inverts(bits, elems, signed):
    rng = np.random.default_rng(bits * 100 + elems)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1))) if signed else (0, 1 << bits)
    vals = rng.integers(lo, hi, size=(2, 3, elems), dtype=np.int64)
    vals[0, 0], vals[0, 1] = lo, hi - 1
    rows = vals.reshape(-1, elems).tolist()
    want = [pack_fields(r, [bits] * elems) for r in rows]       # the definition
    nbytes = -(-bits * elems // 8) + 1                          # one byte of padding too
    raw = pack_bytes(vals, bits, nbytes)
    assert raw.shape == (2, 3, nbytes) and raw.dtype == np.uint8
    assert [int.from_bytes(r.tobytes(), "little") for r in raw.reshape(-1, nbytes)] == want
    assert pack_words(vals, bits) == want
    np.testing.assert_array_equal(unpack_bytes(raw, elems, bits, signed), vals)
    np.testing.assert_array_equal(unpack_words(want, elems, bits, signed), vals.reshape(-1, elems))
    assert [unpack_fields(w, [bits] * elems, signed) for w in want] == rows


def test_bad_widths_are_named():
    with pytest.raises(ValueError, match="do not fit in 1 bytes"):
        pack_bytes([[1, 2, 3]], 3, 1)
    with pytest.raises(ValueError, match=r"element width must be an integer 1\.\.63, not 64"):
        pack_bytes([[1]], 64, 8)


def test_packing_depends_on_numpy_and_the_standard_library_only():
    """The board's driver folder carries a copy of the module without qnnfab."""
    tree = ast.parse((ROOT / "qnnfab" / "packing.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - {"numpy"} <= set(sys.stdlib_module_names), imported

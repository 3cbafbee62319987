"""Stream payload layouts: N lanes of one element shape.

Every component's stream word is an ``amaranth.lib.data.ArrayLayout`` of its
elements in their documented order: ``payload[0]`` is element 0, which sits
at the least significant bits when the word is flattened (Verilog ports,
memories, cocotb benches see ``element 0 | element 1 << bits | ...``).
In Amaranth's simulator set or read such a payload as one integer through
``Value.cast(port.payload)``, or element by element.
"""

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data

__all__ = ["lanes", "element_shape"]


def element_shape(kind, bits=1):
    """The stored shape of one element: "bipolar" -> ``unsigned(1)`` (bit 1 = +1),
    "uint" -> ``unsigned(bits)``, "int" -> ``signed(bits)`` (two's complement)."""
    if kind == "bipolar":
        return unsigned(1)
    if kind == "uint":
        return unsigned(bits)
    if kind == "int":
        return signed(bits)
    raise ValueError(f"unknown element kind {kind!r}")


def lanes(shape, n):
    """The payload layout of ``n`` elements of ``shape`` (element 0 first, at the LSBs)."""
    return data.ArrayLayout(Shape.cast(shape), n)

"""Stream payload layouts: N lanes of one element shape.

Every component's stream word is an ``amaranth.lib.data.ArrayLayout`` of its
elements in their documented order: ``payload[0]`` is element 0, which sits
at the least significant bits when the word is flattened (Verilog ports,
memories, cocotb benches see ``element 0 | element 1 << bits | ...``).
Words of a data kind's elements are :meth:`qnnfab.kinds.DataKind.layout`;
this helper gives the same layout for any element shape (accumulators, the
shapes a component is handed). In Amaranth's simulator set or read such a
payload as one integer through ``Value.cast(port.payload)``, or element by
element.
"""

from amaranth.hdl import C, Shape
from amaranth.lib import data

__all__ = ["lanes", "if_output"]


def lanes(shape, n):
    """The payload layout of ``n`` elements of ``shape`` (element 0 first, at the LSBs)."""
    return data.ArrayLayout(Shape.cast(shape), n)


def if_output(cond, word, lane, *, pe, words, count):
    """``cond`` where lane ``lane`` of word ``word`` of a frame (``pe`` lanes, ``words`` words)
    holds one of the frame's first ``count`` elements (element ``word * pe + lane``), else 0;
    the rest are padding (a last layer's rows beyond its ``classes``). ``cond`` itself when the
    lane holds an element in every word, ``C(0, 1)`` when in none."""
    last = (count - 1 - lane) // pe        # the last word in which the lane holds an element (-1: none)
    if last >= words - 1:
        return cond
    return cond & (word <= last) if last >= 0 else C(0, 1)

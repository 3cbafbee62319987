"""A residual block: a stream forked into a long branch and a skip FIFO, joined by an add and thresholds."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError

from .elementwise_add import ResidualAdd
from .stream_fifo import StreamFIFO
from .stream_fork import StreamFork

__all__ = ["ResidualBlock"]


class ResidualBlock(wiring.Component):
    """``thresholds(branch(x) + x)`` over a stream: fork -> branch and fork -> skip FIFO, then
    :class:`~qnnfab.rtl.elementwise_add.ResidualAdd`.

    Parameters
    ----------
    branch : wiring.Component
        The long branch, ports ``i`` and ``o`` (streams of ``data.ArrayLayout`` words, e.g. a
        :class:`~qnnfab.rtl.conv.ConvLayer` with "same" padding): per frame it emits as
        many words as it takes, of as many lanes, word k of its output belonging to
        the same pixel and channels as word k of its input.
    skip_depth : int
        Depth of the :class:`~qnnfab.rtl.stream_fifo.StreamFIFO` on the skip path
        (:mod:`qnnfab.fifo_sizing` computes the least that does not deadlock, the
        least that keeps the cycles per frame and the least that keeps the whole
        schedule).
    thresholds : (C, N) integers, sorted per row, on ``branch output + block input``
        (stored integers), lane p of a pixel's word w being channel w * lanes + p.

    Ports: ``i`` as ``branch.i``; ``o``: stream of ``lanes(unsigned(n), lanes)``,
    n = bit_length(N).

    Submodules ``fork``, ``branch``, ``skip``, ``join`` are attributes, so a bench
    can watch every stream between them.
    """

    def __init__(self, branch, skip_depth, thresholds, name="residual block"):
        in_layout, out_layout = branch.i.payload.shape(), branch.o.payload.shape()
        if in_layout.length != out_layout.length:
            raise ConfigError(name, "branch", f"emits words of {out_layout.length} lanes but takes words of "
                              f"{in_layout.length}", "fold the branch's last layer with PE = its input's SIMD")
        self.fork = StreamFork(in_layout, 2)
        self.branch = branch
        self.skip = StreamFIFO(in_layout, skip_depth)
        self.join = ResidualAdd(out_layout.elem_shape, in_layout.elem_shape, thresholds, pe=in_layout.length,
                                name=name)
        self.skip_depth, self.out_bits = skip_depth, self.join.out_bits
        super().__init__({
            "i": In(stream.Signature(in_layout)),
            "o": Out(stream.Signature(self.join.o.payload.shape())),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fork = self.fork
        m.submodules.branch = self.branch
        m.submodules.skip = self.skip
        m.submodules.join = self.join
        wiring.connect(m, wiring.flipped(self.i), self.fork.i)
        wiring.connect(m, self.fork.o[0], self.branch.i)
        wiring.connect(m, self.fork.o[1], self.skip.i)
        wiring.connect(m, self.branch.o, self.join.a)
        wiring.connect(m, self.skip.o, self.join.b)
        wiring.connect(m, self.join.o, wiring.flipped(self.o))
        return m

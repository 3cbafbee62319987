"""Skip-path FIFO depths: the formulas on hand cases, then a residual block on Amaranth's simulator
(a 3x3 convolution branch beside a skip FIFO) at the computed depths and one word below."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qnnfab.errors import ConfigError
from qnnfab.fifo_sizing import (chain_need, conv_need, deadlock_depth, keeps_schedule, keeps_throughput, pointwise_need,
                                join_deadlock_depth, regroup_need, repeat_frames, skip_fifo_depth, throughput_depth,
                                vector_need)
from qnnfab.golden import binary_weight_matvec, conv_weights_to_matrix, im2col, multithreshold
from qnnfab.golden.graph import elementwise_add
from qnnfab.packing import pack_words, unpack_words
from qnnfab.rtl.conv import ConvLayer
from qnnfab.rtl.residual_block import ResidualBlock
from qnnfab.rtl.stream_fifo import StreamFIFO
from qnnfab.sim.branch_timing import StreamDeadlock, fork_branch_schedule, run_residual_block, skip_depths


def test_words_all_forked_before_the_first_join_need_all_but_two_in_the_fifo_memory():
    # 10 words forked back to back, joined from cycle 20: the fork's and the FIFO's output
    # registers hold one each, the memory the other 8
    f, j = list(range(10)), list(range(20, 30))
    assert skip_fifo_depth(f, j) == 8
    assert keeps_schedule(f, j, 8) and not keeps_schedule(f, j, 7)


@pytest.mark.parametrize("lag,depth", [(3, 2), (4, 3), (5, 4), (9, 8)])
def test_lockstep_fork_and_join_need_the_lag_less_one(lag, depth):
    f = list(range(40))
    assert skip_fifo_depth(f, [c + lag for c in f]) == depth


def test_a_schedule_the_skip_path_cannot_meet_is_refused():
    with pytest.raises(ConfigError, match="join_cycles"):
        skip_fifo_depth([0, 1, 2], [2, 5, 6])         # word 0 joined before it can cross the skip path
    with pytest.raises(ConfigError, match="fork_cycles"):
        skip_fifo_depth([0, 2, 2], [10, 11, 12])
    with pytest.raises(ConfigError, match="join_cycles"):
        skip_fifo_depth([0, 1], [10, 11, 12])


def test_need_of_a_same_padded_3x3_convolution_by_hand():
    # 3x3 image, one word per pixel: output (0,0) needs input pixel (1,1) = the 5th word,
    # (0,2) needs (1,2) = the 6th, (1,1) needs (2,2) = all 9
    need = conv_need(3, 3, 1, 3, 1, 1, 1)
    assert list(need) == [5, 6, 6, 8, 9, 9, 9, 9, 9]         # (2,0) needs (2,1), after (1,2)
    assert list(conv_need(3, 3, 2, 3, 1, 1, 1)[:2]) == [10, 12]      # two words per pixel
    assert list(conv_need(2, 2, 1, 1, 1, 0, 3)) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]   # 1x1, 3 words out
    # two such convolutions: output 0 needs the first's output 4 (the 5th), which needs all 9 inputs
    assert chain_need(need, need)[0] == 9
    assert list(chain_need(pointwise_need(9), need)) == list(need)
    assert list(vector_need(9, 2)) == [9, 9]
    assert list(repeat_frames([2, 3], 3, 2)) == [2, 3, 5, 6]


def test_throughput_model_by_hand():
    # 10 words forked back to back; the branch needs all 10 before its first output (cycle 20 on),
    # 5 cycles after taking the last: 8 words in the FIFO memory keep the schedule, 7 deadlock
    f, j, need = list(range(10)), list(range(20, 30)), [10] * 10
    assert deadlock_depth(need) == 8
    assert keeps_throughput(f, j, need, 5, 8, 1)
    assert not keeps_throughput(f, j, need, 5, 7, 1)
    assert throughput_depth(f, j, need, 5, 1) == 8
    # lockstep at lag 5 (each output needs its own word): fewer words are late but in time
    f, j = list(range(40)), list(range(5, 45))
    need = list(range(1, 41))
    assert skip_fifo_depth(f, j) == 4
    assert throughput_depth(f, j, need, 1, 2) == 2       # a late fork costs nothing: the branch waits 1 cycle
    with pytest.raises(ConfigError, match="need"):
        keeps_throughput(f, j, need[::-1], 1, 2, 2)


def test_deadlock_depth_by_hand():
    # output 0 needs 7 words: the skip path holds 7 - 0; two of them in registers
    assert deadlock_depth([7, 7, 8, 9]) == 5
    assert deadlock_depth([1, 2, 3]) == 2               # pointwise: the StreamFIFO minimum


# ---- a residual block: thresholds(conv3x3(x) + x), 4x4x2 uint2 maps, the convolution the bottleneck
H = W = 4
C, K, PE, FRAMES = 2, 3, 2, 3
ADD_T = np.array([[1, 3, 5], [2, 3, 4]])


def _case(simd):
    rng = np.random.default_rng(simd)
    w = rng.integers(0, 2, size=(C, C, K, K))
    t = np.sort(rng.integers(-10, 10, size=(C, 3)), axis=1)
    imgs = rng.integers(0, 4, size=(FRAMES, H, W, C))
    return w, t, imgs


def _conv(w, t, simd):
    return ConvLayer(H, W, w, t, stride=1, pad=1, simd=simd, pe=PE, weight_kind="bipolar", act_kind="uint",
                     act_bits=2)


def _golden(w, t, imgs):
    cols = im2col(imgs, K, 1, 1, 0).reshape(-1, K * K * C)
    branch = multithreshold(binary_weight_matvec(conv_weights_to_matrix(w), cols, "uint", 2), t)
    return multithreshold(elementwise_add(branch, imgs.reshape(-1, C)), ADD_T)


def _run_block(w, t, imgs, simd, depth):
    """(outputs, fork input cycles, output cycles) of the block, or StreamDeadlock."""
    blk = ResidualBlock(_conv(w, t, simd), depth, ADD_T)
    words = pack_words(imgs.reshape(-1, min(simd, C)), 2)
    out, sent, cycles = run_residual_block(blk, words, len(words))
    return unpack_words(out, PE, blk.out_bits), sent, cycles


@pytest.mark.parametrize("simd", [2, 6, 18])       # 9, 3 or 1 cycles per output pixel
def test_computed_skip_depth_keeps_the_branch_schedule_and_one_less_does_not(simd):
    w, t, imgs = _case(simd)
    words = pack_words(imgs.reshape(-1, min(simd, C)), 2)
    fork_cycles, join_cycles = fork_branch_schedule(_conv(w, t, simd), words, len(words))
    depth = skip_fifo_depth(fork_cycles, join_cycles)
    out, sent, out_cycles = _run_block(w, t, imgs, simd, depth)
    np.testing.assert_array_equal(out, _golden(w, t, imgs))
    assert sent == fork_cycles                                   # the fork never waited on the skip path
    per = len(words) // FRAMES
    steady = (out_cycles[-1] - out_cycles[per - 1]) / (FRAMES - 1)
    assert steady == _conv(w, t, simd).cycles_per_image          # the bottleneck's cycles per frame
    _, sent_short, cycles_short = _run_block(w, t, imgs, simd, depth - 1)
    assert sent_short != fork_cycles                             # one word less: the fork stalls
    if simd == 18:       # one word per cycle: the input is the bottleneck, and a fork stall costs throughput
        assert (cycles_short[-1] - cycles_short[per - 1]) / (FRAMES - 1) > steady


def test_one_word_below_the_deadlock_depth_deadlocks_and_the_watch_names_the_full_skip_fifo():
    simd = 2
    w, t, imgs = _case(simd)
    need = repeat_frames(conv_need(H, W, 1, K, 1, 1, C // PE), H * W, FRAMES)
    depth = deadlock_depth(need)
    assert depth == 4        # 1 + W + 1 = 6 pixels before the first output, 2 held in registers
    out, _, _ = _run_block(w, t, imgs, simd, depth)
    np.testing.assert_array_equal(out, _golden(w, t, imgs))
    with pytest.raises(StreamDeadlock) as e:
        _run_block(w, t, imgs, simd, depth - 1)
    msg = str(e.value)
    assert "holding a word nobody takes: fork input, skip FIFO input" in msg
    assert "waiting for a word: branch input, branch output" in msg


def test_a_branch_whose_words_differ_from_its_input_is_refused():
    w, t, _ = _case(2)
    conv = ConvLayer(H, W, w, t, stride=1, pad=1, simd=2, pe=1, weight_kind="bipolar", act_kind="uint", act_bits=2)
    with pytest.raises(ConfigError, match="residual block: branch"):
        ResidualBlock(conv, 4, ADD_T)


class _TwoConvs(wiring.Component):
    """conv -> StreamFIFO(2) -> conv: a basic block's long branch, as the dataflow chains layers."""

    def __init__(self, first, second):
        self.first, self.second = first, second
        self.fifo = StreamFIFO(first.o.payload.shape(), 2)
        super().__init__({"i": In(stream.Signature(first.i.payload.shape())),
                          "o": Out(stream.Signature(second.o.payload.shape()))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.first, m.submodules.fifo, m.submodules.second = self.first, self.fifo, self.second
        wiring.connect(m, wiring.flipped(self.i), self.first.i)
        wiring.connect(m, self.first.o, self.fifo.i)
        wiring.connect(m, self.fifo.o, self.second.i)
        wiring.connect(m, self.second.o, wiring.flipped(self.o))
        return m


def test_two_convolutions_in_the_branch_compose_their_needs_exactly():
    w, t, imgs = _case(2)
    w2 = np.random.default_rng(5).integers(0, 2, size=w.shape)
    branch = lambda: _TwoConvs(_conv(w, t, 2), _conv(w2, t, 2))          # noqa: E731
    words = pack_words(imgs.reshape(-1, C), 2)
    one = repeat_frames(conv_need(H, W, 1, K, 1, 1, 1), H * W, FRAMES)
    depth = deadlock_depth(chain_need(one, one))
    assert depth == 9          # output 0 needs the first conv's output 5 (0-based), which needs 11 words
    with pytest.raises(StreamDeadlock):
        run_residual_block(ResidualBlock(branch(), depth - 1, ADD_T), words, len(words))
    run_residual_block(ResidualBlock(branch(), depth, ADD_T), words, len(words))
    fork_cycles, join_cycles = fork_branch_schedule(branch(), words, len(words))
    keep = skip_fifo_depth(fork_cycles, join_cycles)
    _, sent, _ = run_residual_block(ResidualBlock(branch(), keep, ADD_T), words, len(words))
    assert sent == fork_cycles
    _, sent, _ = run_residual_block(ResidualBlock(branch(), keep - 1, ADD_T), words, len(words))
    assert sent != fork_cycles


def _steady(cycles, per):
    return (cycles[-1] - cycles[per - 1]) / (FRAMES - 1)


@pytest.mark.parametrize("simd", [2, 6, 18])
def test_computed_throughput_depth_keeps_the_bottleneck_and_one_word_less_does_not(simd):
    w, t, imgs = _case(simd)
    words = pack_words(imgs.reshape(-1, C), 2)
    depths = skip_depths(lambda: _conv(w, t, simd), words, FRAMES)
    assert depths.deadlock <= depths.throughput <= depths.schedule
    bottleneck = _conv(w, t, simd).cycles_per_image
    per = len(words) // FRAMES
    _, _, cycles = _run_block(w, t, imgs, simd, depths.throughput)
    assert _steady(cycles, per) == bottleneck
    try:
        _, _, cycles = _run_block(w, t, imgs, simd, depths.throughput - 1)
    except StreamDeadlock:
        assert depths.throughput - 1 < depths.deadlock
    else:
        assert _steady(cycles, per) > bottleneck


def test_throughput_depth_of_a_two_convolution_branch_is_exact():
    w, t, imgs = _case(2)
    w2 = np.random.default_rng(5).integers(0, 2, size=w.shape)
    branch = lambda: _TwoConvs(_conv(w, t, 2), _conv(w2, t, 2))          # noqa: E731
    words = pack_words(imgs.reshape(-1, C), 2)
    depths = skip_depths(branch, words, FRAMES)
    assert depths.deadlock == 9                    # measured need = the geometric one (previous test)
    per = len(words) // FRAMES
    bottleneck = _conv(w, t, 2).cycles_per_image
    _, _, cycles = run_residual_block(ResidualBlock(branch(), depths.throughput, ADD_T), words, len(words))
    assert _steady(cycles, per) == bottleneck
    _, _, cycles = run_residual_block(ResidualBlock(branch(), depths.throughput - 1, ADD_T), words, len(words))
    assert _steady(cycles, per) > bottleneck


def test_a_join_whose_short_path_is_a_fifo_alone_has_the_deadlock_depth_of_its_long_path():
    for h, w, c in ((4, 4, 1), (6, 6, 2), (8, 8, 3)):
        need = conv_need(h, w, c, 3, 1, 1, c)
        assert join_deadlock_depth(need, pointwise_need(h * w * c), h * w * c) == deadlock_depth(need)


def test_a_width_converter_needs_the_input_words_holding_its_last_element():
    assert regroup_need(2, 4, 3).tolist() == [2, 4, 6]          # two 2-element words per 4-element word
    assert regroup_need(4, 2, 4).tolist() == [1, 1, 2, 2]       # half a word each
    assert regroup_need(3, 2, 3).tolist() == [1, 2, 2]          # elements 0-1, 2-3, 4-5 of 3-element words


def test_capacities_by_hand():
    """A FIFO of depth D holds words k .. k + D while word k waits; FIFOs in sequence add up (over the
    frame's end too); a 4x4 3x3 "same" window with a 3-row buffer holds 12 pixels from the top-left one
    of the latest window it may read (here one window after the waiting output's), and one in its
    input register; past the frame's last window, the next frame's."""
    from qnnfab.fifo_sizing import chain_capacity, conv_capacity, fifo_capacity

    assert list(fifo_capacity(4, 2)) == [3, 4, 5, 6]
    assert list(chain_capacity([(fifo_capacity(8, 2), 8), (fifo_capacity(8, 3), 8)])) == [k + 7 for k in range(8)]
    cap = conv_capacity(4, 4, 1, 3, 1, 1, 1, 3, 0, 1)
    assert (cap[0], cap[5], cap[15]) == (13, 14, 16 + 12 + 1)
    assert conv_capacity(4, 4, 2, 3, 1, 1, 1, 3, 0, 1)[0] == 26          # 2 words a pixel


def test_never_binding_depth_of_two_fifos_is_the_long_fifo_less_one():
    """Long path a FIFO of depth L (holds k .. k + L while the join waits for k), shortcut a FIFO of D:
    the fork's register holds k + D + 1, and the long path can take no more once it holds k + L, so the
    shortcut never stalls the fork alone when D + 1 >= L."""
    from qnnfab.fifo_sizing import fifo_capacity, join_throughput_depth

    for long in (3, 10, 40):
        assert join_throughput_depth(fifo_capacity(64, long), pointwise_need(64), 64) == long - 1
    assert join_throughput_depth(fifo_capacity(64, 2), pointwise_need(64), 64) == 2       # StreamFIFO's least


def test_what_a_concat_has_taken_of_one_input_when_it_waits_for_the_other_by_hand():
    """2 words of a then 3 of b a pixel, 2 pixels: a's words of pixel p wait after b's of the pixels
    before (0, 0, 3, 3); b's after a's up to pixel p (2, 2, 2, 4, 4, 4). While a's word k is not taken
    but word k - 1 is, at fewest the b words before word k - 1: the previous frame's last a word's
    (3 - 6) for k = 0."""
    from qnnfab.fifo_sizing import concat_taken, pending_taken

    assert concat_taken(2, 3, 2, 0).tolist() == [0, 0, 3, 3]
    assert concat_taken(2, 3, 2, 1).tolist() == [2, 2, 2, 4, 4, 4]
    assert pending_taken(concat_taken(2, 3, 2, 0), 6).tolist() == [-3, 0, 0, 3]


def test_a_concat_of_an_identity_path_needs_the_words_it_has_not_yet_taken_by_hand():
    """3 pixels; the identity path (b, 2 fork words a pixel) beside a path whose every word needs the
    whole frame (6 fork words). Long a first: while the concat waits for a's pixel 0 it has taken no b
    word, so the b FIFO holds b words 0 .. D and the fork one more: D + 2 >= 6, D = 4."""
    from qnnfab.fifo_sizing import concat_taken

    long_need, short_need = [6, 6, 6], pointwise_need(6)
    assert join_deadlock_depth(long_need, short_need, 6, concat_taken(1, 2, 3, 0)) == 4
    with pytest.raises(ConfigError, match="taken"):
        join_deadlock_depth(long_need, short_need, 6, [0, 2])


def test_a_concat_taking_the_short_path_first_needs_less_of_its_fifo_by_hand():
    """3 pixels; the short path (3 fork words a pixel, 9 a frame) beside a long one of 1 word a pixel
    whose every word needs the whole frame (9 fork words). Short path first (a: 3 words, then b's 1):
    while the concat waits for b's word of pixel 0 it has taken a's words 0 .. 2, so the a FIFO holds
    a words 3 .. 3 + D (memory and output register) and the fork's register the next: the long path
    has had 3 + D + 2 fork words, >= 9 once D = 4. Long path first (a: its 1 word, then b's 3): nothing
    of the short path is taken at the first wait, 0 + D + 2 >= 9, D = 7."""
    from qnnfab.fifo_sizing import concat_taken

    long_need, short_need = [9, 9, 9], pointwise_need(9)
    assert join_deadlock_depth(long_need, short_need, 9, concat_taken(3, 1, 3, 1)) == 4
    assert join_deadlock_depth(long_need, short_need, 9, concat_taken(1, 3, 3, 0)) == 7


def test_a_concat_never_stalls_its_fork_only_if_the_fifo_holds_the_words_it_has_not_yet_taken_by_hand():
    """3 pixels; long a (1 word a pixel) may have taken the whole frame (6 fork words) while any of its
    words waits; short b (the identity, 2 fork words a pixel), taken after a's word of each pixel. While
    a's word 0 of a frame is not yet taken (the previous frame's last a word, pixel 2's, is), the concat
    has taken that frame's b words up to pixel 2's, not pixel 2's two: the b FIFO holds b words -2 .. 4
    (memory and output register, D + 1 words, the frame's own numbered from 0) and the fork's register
    word 5, so the long path can have its 6 fork words: -2 + D + 2 >= 6, D = 6. Counting the b words
    taken once a's word k is taken instead (concat_taken: 0 at k = 0), or a frame of 3 b words (1 at
    k = 0), leaves a word that waits with no b word taken binding: 0 + D + 2 >= 6, D = 4."""
    from qnnfab.fifo_sizing import concat_taken, join_throughput_depth, pending_taken

    long_cap, short_need = [6, 6, 6], pointwise_need(6)
    taken = concat_taken(1, 2, 3, 0)
    assert join_throughput_depth(long_cap, short_need, 6, pending_taken(taken, 6)) == 6
    assert join_throughput_depth(long_cap, short_need, 6, taken) == 4
    assert join_throughput_depth(long_cap, short_need, 6, pending_taken(taken, 3)) == 4

"""FIFO depths of a fork/join (a residual block's skip path), computed from when words move.

A skip path runs from a :class:`~qnnfab.rtl.stream_fork.StreamFork` through a
:class:`~qnnfab.rtl.stream_fifo.StreamFIFO` to the join (an
:class:`~qnnfab.rtl.elementwise_add.ElementwiseAdd`, which takes word k of
both branches in one cycle, or a :class:`~qnnfab.rtl.channel_concat.ChannelConcat`, which takes
each pixel's words of its first input, then those of its second: :func:`concat_taken` says how many
of one input's words it has taken when it waits for a word of the other). The long branch (the block's convolutions)
cannot give its output word k before it has taken some number of the fork's
words; meanwhile every word the fork hands it also waits on the skip path.
Three figures follow, none from a simulation of the block (the second and third
need characterisation runs of the long branch alone):

**Deadlock bound** (:func:`deadlock_depth`), from the long branch's *need*:
``need[k]`` = the fork words the long branch must have taken before its
output word k can exist (the geometry of its layers: :func:`conv_need`,
:func:`pointwise_need`, :func:`vector_need`, chained by :func:`chain_need`).
While the join waits for long word k, the skip path holds words k, k+1, ...:
the FIFO ``depth + 1`` (memory and output register) and the fork's register
one more, so the long branch can have taken at most ``k + depth + 2`` words.
Any FIFO with ``depth < max_k(need[k] - k) - 2`` deadlocks, whatever the
implementation of the long branch.

**Schedule-keeping depth** (:func:`skip_fifo_depth`), from the schedule of
the block when the skip path never stalls the fork: ``fork_cycles[j]``, the
cycle the fork takes its input word j, and ``join_cycles[k]``, the cycle the
join takes word k (the long branch's output transfers, as the join takes a
word as soon as both are there). This is the schedule of the fork and the
long branch run alone, with the fork's skip output always ready (a
characterisation run of the branch: :func:`qnnfab.sim.branch_timing.fork_branch_schedule`).
Exact cycle-level reasoning on the components' contracts, for a FIFO of
``depth`` D: the fork offers word j on its skip output from cycle
``fork_cycles[j] + 1``, and the FIFO writes it in the first cycle its memory
holds fewer than D words; a word leaves the memory for the output register
one cycle after it was written at the earliest, and word i >= 1 not before
the cycle the join takes word i - 1. So, with ``write[j]`` and ``leave[j]``
the cycles of those transfers (the edges ending them)::

    leave[j] = max(write[j] + 1, join_cycles[j - 1])
    write[j] = max(fork_cycles[j] + 1, leave[j - D] + 1)     # j >= D: word j - D must have left

(the memory holds words j - D .. j - 1 until ``leave[j - D]``). The
schedule is kept iff every word is written by the cycle the fork takes the
next (``write[j] <= fork_cycles[j + 1]``: the fork takes a word only when
both its outputs are free) and reaches the output register before the join
wants it (``write[j] + 2 <= join_cycles[j]``). :func:`keeps_schedule`
checks a depth, :func:`skip_fifo_depth` finds the least (at least 2, the
StreamFIFO's minimum; keeping is monotone in D). One word less and the fork
stalls at least once against the schedule; that need not cost throughput
when the long branch takes words ahead of its need (its own buffers): the
least depth that keeps full throughput lies between the two figures, and
is the third.

**Throughput-keeping depth** (:func:`throughput_depth`): the least depth at
which the block still runs at the schedule's cycles per frame, from the same
schedule plus the long branch's *need* and *latency* (the fewest cycles from
the branch taking the last word an output needs to that output:
:func:`qnnfab.sim.branch_timing.starved_schedule`, words fed one at a time).
The branch is modelled as a max-plus system: its output k comes out no
earlier than in the schedule, no earlier than ``gap[k]`` (the schedule's
gap) after output k - 1, and no earlier than ``latency`` after it took its
input word ``need[k] - 1`` (one cycle after the fork took it); the fork takes
word j no earlier than in the schedule and not before the FIFO wrote word
j - 1; the FIFO as above. The least fixed point of these inequalities (each
side only ever moves later) is the constrained schedule; a depth keeps
throughput when that schedule's steady-state cycles per frame equal the
unconstrained one's, and deadlocks when the fixed point does not exist (the
times grow without bound). :func:`keeps_throughput` checks a depth.

**Never-binding depth** (:func:`join_throughput_depth`), from the plan alone, no
simulation: a *capacity* per stage (``cap[k]``, the most input words the stage can have
taken while its output word k is not yet taken downstream: a FIFO of depth D holds words
k .. k + D, a sliding window's line buffer holds ``KR * W`` pixels from the oldest one a
pending window needs; :func:`fifo_capacity`, :func:`conv_capacity`,
:func:`regroup_capacity`, chained by :func:`chain_capacity`), the capacity of the long path
in place of its need in :func:`join_deadlock_depth`. With that depth the skip FIFO is
never full while the long path could still take a fork word, so it never stalls the fork
that the long path would not stall anyway: the block's schedule is the one with an
unbounded skip FIFO (the throughput-keeping depth is at most this one). The capacities
are upper bounds (every register counted), so the figure is sufficient, not least.
"""

import numpy as np

from qnnfab.errors import ConfigError

__all__ = ["skip_fifo_depth", "keeps_schedule", "throughput_depth", "keeps_throughput", "deadlock_depth",
           "join_deadlock_depth", "conv_need", "pointwise_need", "vector_need", "regroup_need", "chain_need",
           "repeat_frames", "SKIP_PATH_REGISTERS", "MIN_FIFO_DEPTH", "fifo_capacity", "regroup_capacity",
           "conv_capacity", "chain_capacity", "join_throughput_depth", "concat_taken", "pending_taken"]

MIN_FIFO_DEPTH = 2          # StreamFIFO's smallest depth
SKIP_PATH_REGISTERS = 2     # words the skip path holds besides the FIFO memory: its output register, the fork's


def _cycles(name, c):
    a = np.asarray(c, dtype=np.int64)
    if a.ndim != 1 or a.size == 0:
        raise ConfigError("skip_fifo_depth", name, f"must be a non-empty 1-D list of cycles, got shape {a.shape}",
                          "pass one transfer cycle per word")
    if np.any(np.diff(a) <= 0):
        raise ConfigError("skip_fifo_depth", name, "must be strictly increasing (one transfer per cycle)",
                          "pass the cycles of the transfers in word order")
    return a


def skip_fifo_depth(fork_cycles, join_cycles):
    """The least StreamFIFO depth on the skip path that keeps a schedule (module docstring).

    ``fork_cycles[j]``: the cycle the fork takes its input word j;
    ``join_cycles[k]``: the cycle the join takes word k; both of the same
    words (several frames, so the steady state is in them)."""
    f = _cycles("fork_cycles", fork_cycles)
    j = _cycles("join_cycles", join_cycles)
    if f.size != j.size:
        raise ConfigError("skip_fifo_depth", "join_cycles", f"has {j.size} words, fork_cycles {f.size}",
                          "pass the same words on both ends of the skip path")
    if np.any(j < f + 3):
        k = int(np.nonzero(j < f + 3)[0][0])
        raise ConfigError("skip_fifo_depth", "join_cycles", f"word {k} is joined in cycle {j[k]}, before the "
                          f"skip path can deliver it (cycle {f[k] + 3})", "this is not the short branch")
    lo, hi = MIN_FIFO_DEPTH, max(MIN_FIFO_DEPTH, f.size + 1)
    if not _keeps(f, j, hi):
        raise ConfigError("skip_fifo_depth", "join_cycles", "no depth keeps this schedule",
                          "pass the schedule of the fork and branch run with the skip output always ready")
    while lo < hi:                  # the least depth that keeps it (keeping is monotone in the depth)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _keeps(f, j, mid) else (mid + 1, hi)
    return lo


def keeps_schedule(fork_cycles, join_cycles, depth):
    """Whether a skip FIFO of ``depth`` keeps the schedule (module docstring)."""
    return _keeps(_cycles("fork_cycles", fork_cycles), _cycles("join_cycles", join_cycles), depth)


def _keeps(f, j, depth):
    write, _ = _skip_fifo(f, j, depth)
    return not (np.any(write[:-1] > f[1:]) or np.any(write + 2 > j))


def _skip_fifo(f, join, depth):
    """``(write, leave)`` cycles of every word through a skip FIFO of ``depth`` (module docstring)."""
    n = f.size
    write = np.empty(n, np.int64)
    leave = np.empty(n, np.int64)
    for k in range(n):
        write[k] = f[k] + 1 if k < depth else max(f[k] + 1, leave[k - depth] + 1)
        leave[k] = write[k] + 1 if k == 0 else max(write[k] + 1, join[k - 1])
    return write, leave


def keeps_throughput(fork_cycles, join_cycles, need, latency, depth, frames):
    """Whether a skip FIFO of ``depth`` keeps the steady-state cycles per frame of the schedule
    (``frames`` frames of equal words; module docstring). ``need``: per output word, the fork
    words the branch takes before it (over all the frames, non-decreasing); ``latency``: cycles."""
    f = _cycles("fork_cycles", fork_cycles)
    j = _cycles("join_cycles", join_cycles)
    n = np.asarray(need, dtype=np.int64)
    if n.shape != j.shape or np.any(n < 1) or np.any(n > f.size) or np.any(np.diff(n) < 0):
        raise ConfigError("keeps_throughput", "need", f"must hold one non-decreasing count in [1, {f.size}] per "
                          "output word", "pass the branch's need over the same frames (repeat_frames)")
    gaps = np.cumsum(np.diff(j, prepend=j[0]))
    fork, join = f.copy(), j.copy()
    bound = j[-1] + 4 * (j[-1] - j[0] + latency + f.size + 100)
    while True:
        write, _ = _skip_fifo(fork, join, depth)
        new_fork = np.concatenate([f[:1], np.maximum(f[1:], write[:-1])])
        earliest = np.maximum.reduce([j, new_fork[n - 1] + 1 + latency, write + 2])
        new_join = gaps + np.maximum.accumulate(earliest - gaps)
        if np.array_equal(new_fork, fork) and np.array_equal(new_join, join):
            break
        fork, join = new_fork, new_join
        if join.max() > bound:
            return False                   # no fixed point: the block deadlocks
    per = f.size // frames
    return join[-1] - join[per - 1] == j[-1] - j[per - 1]


def throughput_depth(fork_cycles, join_cycles, need, latency, frames):
    """The least skip FIFO depth that keeps the schedule's cycles per frame (:func:`keeps_throughput`),
    searched from :func:`deadlock_depth` up to :func:`skip_fifo_depth`."""
    keep = skip_fifo_depth(fork_cycles, join_cycles)
    for depth in range(deadlock_depth(need), keep):
        if keeps_throughput(fork_cycles, join_cycles, need, latency, depth, frames):
            return depth
    return keep


def deadlock_depth(need):
    """The least StreamFIFO depth on the skip path below which the block deadlocks whatever the long
    branch's implementation: ``max_k(need[k] - k) - SKIP_PATH_REGISTERS`` (at least 2); ``need[k]``:
    fork words the long branch takes before its output word k can exist."""
    n = np.asarray(need, dtype=np.int64)
    return max(MIN_FIFO_DEPTH, int((n - np.arange(n.size)).max()) - SKIP_PATH_REGISTERS)


def join_deadlock_depth(long_need, short_need, in_words, taken=None):
    """The least StreamFIFO depth, on the short path's last link before a join, below which the join may
    deadlock, when both paths leave one fork: ``long_need[k]`` / ``short_need[k]`` (one frame, in each
    path's words at the join) are the fork words each path takes before its word k can exist;
    ``in_words``: fork words per frame; ``taken[k]``: the short path's words the join has taken when it
    waits for long word k (default ``k``: an add takes word k of both at once; a concat:
    :func:`concat_taken`).

    While the join waits for long word k, the FIFO holds short words t .. t + D (t = ``taken[k]``; its
    memory and output register), for which the short path took at least ``short_need[t + D]`` fork
    words, and the fork's register holds one more: the long path is sure to get ``long_need[k]`` words
    only if ``long_need[k] <= short_need[t + D] + 1``. Nothing is counted of the short path's own
    buffers (they can only take more), so the figure is exact for a FIFO alone on the short path (then,
    for an add, it equals :func:`deadlock_depth`) and an upper bound of the least safe depth otherwise."""
    long_n = np.asarray(long_need, dtype=np.int64)
    short_n = np.asarray(short_need, dtype=np.int64)
    taken = _taken(taken, long_n, short_n, "join_deadlock_depth")
    later = repeat_frames(short_n, in_words, 2)                     # a need is at most a frame: two reach it
    first = np.searchsorted(later, long_n - 1)                      # least m with short_need[m] >= need - 1
    return max(MIN_FIFO_DEPTH, int((first - taken).max()))


def _taken(taken, long_n, short_n, where):
    """``taken`` checked (one count per long word), or ``arange`` when None (an add: equal words)."""
    if taken is None:
        if long_n.shape != short_n.shape or long_n.ndim != 1:
            raise ConfigError(where, "short_need", f"has shape {short_n.shape}, long_need {long_n.shape}",
                              "pass one need per join word of one frame on both paths")
        return np.arange(long_n.size)
    t = np.asarray(taken, dtype=np.int64)
    if t.shape != long_n.shape or long_n.ndim != 1 or short_n.ndim != 1:
        raise ConfigError(where, "taken", f"has shape {t.shape}, long_need {long_n.shape}",
                          "pass one count of taken short words per long word")
    return t


def concat_taken(a_words, b_words, pixels, port):
    """Per word k of input ``port`` (0: ``a``, 1: ``b``) of a
    :class:`~qnnfab.rtl.channel_concat.ChannelConcat` taking ``a_words`` then ``b_words`` words of each of
    ``pixels`` pixels: the other input's words it has taken when it waits for word k (its turn). An ``a``
    word of pixel p: the ``b`` words of the pixels before, ``p * b_words``; a ``b`` word of pixel p: the
    ``a`` words of the pixels up to p, ``(p + 1) * a_words``. One frame."""
    own, other = (a_words, b_words) if port == 0 else (b_words, a_words)
    pixel = np.arange(pixels * own) // own
    return (pixel + port) * other


def pending_taken(taken, other_words):
    """The fewest of the other input's words a concat has taken while its word k of this input is not
    yet taken (word k - 1 is): ``taken[k - 1]``, the previous frame's last word's for k = 0 (``taken``:
    :func:`concat_taken`; ``other_words``: the other input's words per frame)."""
    t = np.asarray(taken, dtype=np.int64)
    return np.concatenate([t[-1:] - other_words, t[:-1]])


def regroup_need(in_elems, out_elems, out_words):
    """Need of a width converter from ``in_elems`` to ``out_elems`` per word: output word k needs the
    input words holding its last element, ``ceil((k + 1) * out_elems / in_elems)``; one frame."""
    return -(-(np.arange(1, out_words + 1) * out_elems) // in_elems)


def conv_need(height, width, in_words, kernel, stride, pad, out_words):
    """Need of a K x K convolution (or pool) over an H x W raster of ``in_words`` words per pixel,
    emitting ``out_words`` words per output pixel: output pixel (oy, ox) needs every word up to
    and including the input pixel (min(H-1, oy*S-P+K-1), min(W-1, ox*S-P+K-1)), and comes after
    the pixels before it (the need never decreases); one frame."""
    oh = (height + 2 * pad - kernel) // stride + 1
    ow = (width + 2 * pad - kernel) // stride + 1
    oy, ox = np.divmod(np.arange(oh * ow), ow)
    row = np.minimum(height - 1, oy * stride - pad + kernel - 1)
    col = np.minimum(width - 1, ox * stride - pad + kernel - 1)
    pixels_needed = np.maximum.accumulate(row * width + col + 1)      # outputs leave in order
    return np.repeat(pixels_needed * in_words, out_words)


def pointwise_need(words):
    """Need of a stage whose output word k needs input word k (thresholds, an element-wise add)."""
    return np.arange(1, words + 1)


def vector_need(in_words, out_words):
    """Need of a fully connected layer or global pool: every output word needs the whole input."""
    return np.full(out_words, in_words)


def repeat_frames(need, in_words, frames):
    """One frame's need repeated over ``frames`` frames (frame f needs f * ``in_words`` more)."""
    n = np.asarray(need, dtype=np.int64)
    return np.concatenate([n + f * in_words for f in range(frames)])


def chain_need(*needs):
    """Need of stages in sequence (first stage first): output k of the chain needs the last
    stage's input word ``need_last[k] - 1``, which needs the stage before's, and so on."""
    total = np.asarray(needs[-1], dtype=np.int64)
    for n in reversed(needs[:-1]):
        total = np.asarray(n, dtype=np.int64)[total - 1]
    return total


def _periodic(cap, in_words, index):
    """``cap`` (one frame of output words) at output words ``index``, frames beyond the first included
    (frame f takes ``f * in_words`` more input words)."""
    c = np.asarray(cap, dtype=np.int64)
    index = np.asarray(index, dtype=np.int64)
    return c[index % c.size] + (index // c.size) * in_words


def fifo_capacity(words, depth):
    """Capacity of a StreamFIFO of ``depth`` (or any stage holding ``depth`` + 1 words, output register
    included): while output word k waits, it holds words k .. k + depth; one frame of ``words``."""
    return np.arange(words, dtype=np.int64) + depth + 1


def regroup_capacity(in_elems, out_elems, out_words):
    """Capacity of a width converter: while output word k waits (in its register), the input words
    up to those holding the elements of word k + 1, and one more (its input register)."""
    return regroup_need(in_elems, out_elems, out_words + 1)[1:] + 1


def conv_capacity(height, width, in_words, kernel, stride, pad, out_words, rows, held_words, held_windows):
    """Capacity of a K x K convolution (or pool) whose sliding window keeps ``rows`` image rows
    (:func:`qnnfab.folding.window_buffer_rows`): while output word k waits, the unit holds at most
    ``held_words`` output words after it (its pipeline) and ``held_windows`` windows after theirs (between
    the sliding window and the matrix unit); the sliding window reads no later window, and its line
    buffer holds at most ``rows * W`` pixels from that window's top-left one (a slot is rewritten only
    once no current or later window needs its pixel), its input register one more pixel.
    ``in_words`` / ``out_words``: words per input / output pixel; one frame."""
    oh = (height + 2 * pad - kernel) // stride + 1
    ow = (width + 2 * pad - kernel) // stride + 1
    k = np.arange(oh * ow * out_words, dtype=np.int64)
    window = (k + held_words) // out_words + held_windows           # the latest window the reader may be in
    frame, window = np.divmod(window, oh * ow)
    oy, ox = np.divmod(window, ow)
    oldest = np.maximum(oy * stride - pad, 0) * width + np.maximum(ox * stride - pad, 0)   # its top-left pixel
    pixels = oldest + frame * height * width + rows * width + 1
    return pixels * in_words


def chain_capacity(caps_in_words):
    """Capacity of stages in sequence: ``caps_in_words`` lists ``(cap, in_words)`` per stage, first stage
    first (``in_words``: its input words per frame). While the chain's output word k waits, the last stage
    has taken at most ``cap_last[k]`` words, so the stage before's output word ``cap_last[k]`` waits."""
    total = np.asarray(caps_in_words[-1][0], dtype=np.int64)
    for cap, in_words in reversed(caps_in_words[:-1]):
        total = _periodic(cap, in_words, total)
    return total


def join_throughput_depth(long_cap, short_need, in_words, taken=None):
    """The depth of the short path's FIFO before a join that never stalls the fork while the long path
    (capacity ``long_cap``, one frame of its words at the join) could take a word (module docstring): the
    least ``D`` with ``long_cap[k] <= short_need[t + D] + SKIP_PATH_REGISTERS - 1`` for every k, t =
    ``taken[k]`` the fewest short words the join has taken while long word k waits (default ``k``, an
    add; a concat: :func:`pending_taken`)."""
    long_c = np.asarray(long_cap, dtype=np.int64)
    short_n = np.asarray(short_need, dtype=np.int64)
    taken = _taken(taken, long_c, short_n, "join_throughput_depth")
    frames = 2 + int(long_c.max()) // in_words                        # the short path's need over enough frames
    later = repeat_frames(short_n, in_words, frames)
    first = np.searchsorted(later, long_c - 1)
    return max(MIN_FIFO_DEPTH, int((first - taken).max()))

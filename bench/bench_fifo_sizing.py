"""Skip-path FIFO depths of residual blocks: computed against the least depths found by simulation.

Usage::

    .venv/bin/python bench/bench_fifo_sizing.py

Each case is a residual block ``thresholds(conv3x3(x) + x)`` (:class:`qnnfab.rtl.residual_block.ResidualBlock`,
"same" padding, uint2 maps, binary weights, the convolution the bottleneck), 3 frames back to back,
input always offered, output always taken, on Amaranth's simulator. Computed, without
simulating the block:

* ``deadlock``: :func:`qnnfab.fifo_sizing.deadlock_depth` from the convolution's need (geometry only);
* ``throughput``: :func:`qnnfab.fifo_sizing.throughput_depth` and ``schedule``:
  :func:`qnnfab.fifo_sizing.skip_fifo_depth`, from two characterisation runs of the convolution
  alone (:func:`qnnfab.sim.branch_timing.skip_depths`: with the fork at full rate, and starved).

Found by simulating the whole block at every depth from 2 up: the least depth that does not
deadlock, the least that reaches the bottleneck's cycles per frame (``ConvLayer.cycles_per_image``)
in the steady state, and the least whose fork schedule equals the one with a skip FIFO as deep as
the whole run. Each
computed figure must equal the simulated one beside it.
"""

import numpy as np

from qnnfab.fifo_sizing import conv_need, deadlock_depth, repeat_frames
from qnnfab.packing import pack_words
from qnnfab.rtl.conv import ConvLayer
from qnnfab.rtl.residual_block import ResidualBlock
from qnnfab.sim.branch_timing import StreamDeadlock, run_residual_block, skip_depths

FRAMES = 3
CASES = [
    # H, W, C, SIMD, PE
    (4, 4, 2, 2, 2),
    (4, 4, 2, 6, 2),
    (6, 6, 2, 2, 2),
    (6, 6, 2, 18, 2),
    (8, 8, 2, 6, 2),
]


def _conv(h, w, c, simd, pe, weights, t):
    return ConvLayer(h, w, weights, t, stride=1, pad=1, simd=simd, pe=pe, weight_kind="bipolar", act_kind="uint",
                     act_bits=2)


def main():
    print(f"{'block':<24}{'cycles/frame':>13}   computed: {'deadlock':>8}{'throughput':>11}{'schedule':>9}"
          f"   simulated: {'deadlock':>8}{'throughput':>11}{'schedule':>9}")
    for h, w, c, simd, pe in CASES:
        rng = np.random.default_rng(h * 10 + simd)
        weights = rng.integers(0, 2, size=(c, c, 3, 3))
        t = np.sort(rng.integers(-10, 10, size=(c, 3)), axis=1)
        add_t = np.sort(rng.integers(0, 7, size=(c, 3)), axis=1)
        imgs = rng.integers(0, 4, size=(FRAMES, h, w, c))
        in_simd = min(simd, c)
        words = pack_words(imgs.reshape(-1, in_simd), 2)
        conv = lambda: _conv(h, w, c, simd, pe, weights, t)        # noqa: E731 (a fresh one per elaboration)
        per_frame = conv().cycles_per_image
        depths = skip_depths(conv, words, FRAMES)
        need = repeat_frames(conv_need(h, w, c // in_simd, 3, 1, 1, c // pe), h * w * c // in_simd, FRAMES)
        geometric = deadlock_depth(need)
        assert geometric == depths.deadlock, (geometric, depths.deadlock)     # the RTL needs what geometry says
        sim = {"no deadlock": None, "throughput": None, "schedule": None}
        per = len(words) // FRAMES
        # the unconstrained schedule: a skip FIFO as deep as a whole run
        _, fork_schedule, _ = run_residual_block(ResidualBlock(conv(), len(words), add_t), words, len(words))
        runs = {}
        for depth in range(2, depths.schedule + 2):
            try:
                _, sent, cycles = run_residual_block(ResidualBlock(conv(), depth, add_t), words, len(words))
            except StreamDeadlock:
                continue
            steady = (cycles[-1] - cycles[per - 1]) / (FRAMES - 1)
            for key, ok in (("no deadlock", True), ("throughput", steady == per_frame)):
                if ok and sim[key] is None:
                    sim[key] = depth
            runs[depth] = sent
        sim["schedule"] = min((d for d, sent in runs.items() if sent == fork_schedule), default=None)
        name = f"{h}x{w}x{c} simd {simd} pe {pe}"
        print(f"{name:<24}{per_frame:>13}   {'':>9} {depths.deadlock:>8}{depths.throughput:>11}{depths.schedule:>9}"
              f"   {'':>10} {sim['no deadlock']!s:>8}{sim['throughput']!s:>11}{sim['schedule']!s:>9}")


if __name__ == "__main__":
    main()

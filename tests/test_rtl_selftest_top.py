"""The self-test board top on Amaranth's simulator (no platform: the accelerator in
``sync``): its LFSR frames are framed right (no framing error) and the labels it
shows are the golden model's for the frames it sent."""

import numpy as np
from amaranth.sim import Simulator

from qnnfab import netconfig
from qnnfab.rtl import selftest_top
from qnnfab.golden.network import network_of

NET = """
[network]
name = "selftest"
input_shape = [16]
weights = "random"
seed = 5
[[layer]]
name = "fc0"
type = "fc"
out = 8
pe = 2
simd = 4
[[layer]]
name = "fc1"
type = "fc"
out = 4
act = "acc"
pe = 2
simd = 8
"""


def test_lfsr_frames_are_framed_and_their_labels_are_the_golden_ones(monkeypatch):
    cfg = netconfig.loads(NET)
    built, make = [], selftest_top.AxiStreamAccelerator

    def keep(*args, **kwargs):
        built.append(make(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(selftest_top, "AxiStreamAccelerator", keep)
    top = selftest_top.SelfTestTop(cfg)
    sim = Simulator(top)          # elaborates: the accelerator is built now
    accel = built[0]
    fm = accel.format
    sent, labels, errors = [], [], []

    async def watch(ctx):
        for _ in range(2000):       # 6 frames take about 70 cycles
            if len(labels) == 6:
                break
            _, _, words, tready, tvalid, tlast, label, label_valid, error = await ctx.tick().sample(
                accel.s_axis_tdata, accel.s_axis_tready, accel.s_axis_tvalid, accel.s_axis_tlast,
                accel.label, accel.label_valid, accel.frame_error)
            if tready and tvalid:
                sent.append((words, tlast))
            if label_valid:
                labels.append(label)
            errors.append(error)

    sim.add_clock(1e-8)
    sim.add_testbench(watch)
    sim.run()
    assert not any(errors), "the self-test top's frames raised a framing error"
    assert len(labels) == 6, f"{len(labels)} labels in 2000 cycles"
    per = fm.in_words
    assert [t for _, t in sent[:6 * per]] == [int(k % per == per - 1) for k in range(6 * per)]
    bits = fm.in_elems * fm.in_bits
    frames = np.array([[(w >> j) & 1 for w, _ in sent[f * per:(f + 1) * per] for j in range(bits)]
                       for f in range(6)])
    scores = network_of(cfg).forward(frames.reshape((6,) + cfg.input_shape)).reshape(6, -1)
    assert labels == list(np.argmax(scores, axis=1))

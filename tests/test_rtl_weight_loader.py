"""The weight loader on Amaranth's simulator, on its own: an image offered
while a frame is in flight is discarded whole and the weights stay as they
were; offered once the accelerator is idle, the same image loads."""

import random

from amaranth.hdl import Value

from qnnfab import weights_image as wi
from qnnfab.rtl.weight_loader import WeightLoader
from qnnfab.sim.amaranth_stream import StreamSource, run_streams

GROUPS = [wi.MemoryGroup("fc0", "weights", pe=2, width=16, depth=8),                    # rows of 1 word
          wi.MemoryGroup("fc0", "thresholds0", pe=2, width=40, depth=3, signed=True)]  # rows of 2 words
TOPOLOGY_HASH = 0x5EED1234


def image(rng):
    """A weights image of random rows (module docstring of weights_image:
    header, then every group's rows in order, each row most significant word
    first) and the writes it must make: (enable bit, row address, row)."""
    body, writes = [], []
    for g, group in enumerate(GROUPS):
        for a in range(group.stored_depth):
            row = rng.getrandbits(group.row_bits)
            writes.append((g, a, row))
            body += [(row >> (64 * k)) & (2**64 - 1) for k in reversed(range(group.row_words))]
    return wi.header_words(TOPOLOGY_HASH, len(body)) + body, writes


def test_image_offered_while_busy_is_discarded_and_the_next_one_loads_once_idle():
    """``busy`` is high when the first image starts and drops halfway through
    it: the loader keeps ``ready`` high, writes nothing, never says ``active``
    and ends the image with BUSY. The same image offered again, now idle,
    makes exactly its writes and ends OK. Gaps between the words."""
    rng = random.Random(34)
    words, want = image(rng)
    assert len(words) == 12
    dut = WeightLoader(GROUPS, TOPOLOGY_HASH)
    src = StreamSource(dut.wload, [{"data": w, "last": int(k == len(words) - 1)} for k, w in enumerate(words)],
                       valid_prob=0.6, rng=rng, name="wload")
    log = {"busy_until": None, "second": None, "dones": [], "writes": [], "not_ready": [], "active_busy": []}

    def frame(ctx, cycle):          # a frame in flight until half of the first image has been taken
        if log["busy_until"] is None and len(src.sent_cycles) == len(words) // 2:
            log["busy_until"] = cycle
        ctx.set(dut.busy, log["busy_until"] is None)
        if log["second"] is None and log["dones"]:
            log["second"] = cycle
            src.send([{"data": w, "last": int(k == len(words) - 1)} for k, w in enumerate(words)])

    def watch(ctx, cycle):
        busy = ctx.get(dut.busy)
        if not ctx.get(dut.wload.ready):
            log["not_ready"].append(cycle)
        if busy and ctx.get(dut.active):
            log["active_busy"].append(cycle)
        en = ctx.get(dut.load.en)
        for g, group in enumerate(GROUPS):
            if en >> g & 1:
                row = ctx.get(Value.cast(dut.load.data)) & ((1 << group.row_bits) - 1)
                log["writes"].append((cycle, g, ctx.get(dut.load.addr), row))
        if ctx.get(dut.done):
            log["dones"].append((cycle, ctx.get(dut.error)))

    run_streams(dut, [src], [], [], max_cycles=10, extra_cycles=120, drivers=[frame], monitors=[watch])
    assert src.idle and log["second"] is not None, "the images were not both taken"
    assert not log["not_ready"], f"wload.ready low in cycles {log['not_ready'][:8]}"
    assert not log["active_busy"], f"active high while busy in cycles {log['active_busy'][:8]}"
    first = src.sent_cycles[len(words)]        # the first word of the second image
    early = [w for w in log["writes"] if w[0] < first]
    assert not early, f"the image offered while busy wrote rows {early[:4]}"
    assert [e for _, e in log["dones"]] == [wi.WloadError.BUSY, wi.WloadError.OK], log["dones"]
    assert [w[1:] for w in log["writes"]] == want

"""``qnnfab demo``: the main job of the README, from data to checked hardware.

1. train a binarized MLP (64-256-256-10 by default, first layer on 5-bit
   pixels; ``hidden``/``act_bits`` choose another MLP or a small conv net and
   k-bit activations) on the 8x8 digits shipped with qnnfab, with the three
   binarization schemes and a float baseline of the same size (progress per
   epoch), and plot the curves;
2. export the STE network (integer weights + folded thresholds, ``.npz`` and
   ``.toml``), check that the integer network reproduces every prediction;
3. generate its hardware for PYNQ-Z2: per-layer Yosys resources, fit check,
   accelerator Verilog and the board's build plan;
4. simulate the whole accelerator on Verilator over every test image with
   the compiled engine (:mod:`qnnfab.sim.compiled`), with random gaps and
   backpressure on part of them and unstalled on all of them, comparing every
   output word with the golden model;
5. print accuracy (float, binarized, hardware), hardware vs golden agreement,
   cycles per frame, frames/s at 100 MHz and the resource table;
6. run the board's Python driver over every test image in co-simulation of
   the PYNQ overlay shell (AXI4-Lite registers, AXI4 DMA, cocotbext-axi as
   the Zynq PS and DDR) and check its labels against the golden model.
"""

import time
from pathlib import Path

import numpy as np

from qnnfab.errors import QnnfabError


def run(out="out/demo", seed=None, epochs=30, train_seed=0, board_name="pynq-z2", jobs=2, hidden="256,256",
        act_bits=1):
    from qnnfab import netconfig
    from qnnfab.boards.emit.accelerator import write_accelerator
    from qnnfab.boards.emit.selftest import write_build_plan
    from qnnfab.boards.estimate.report import format_report, network_report, plot_report
    from qnnfab.boards.targets import check_fits, get_board
    from qnnfab.train.datasets import load_digits
    from qnnfab.train.trainer import parse_hidden
    from qnnfab.sim.compiled import verify_network
    from qnnfab.training import describe_arch, format_table, plot_curves, run_training

    t_all = time.monotonic()
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    ds = load_digits()
    hidden = tuple(t for t, _ in parse_hidden(hidden))
    print(f"qnnfab demo: {ds.name}, {len(ds.y_train)} training / {len(ds.y_test)} test images, "
          f"{ds.features} pixels of {ds.pixel_bits} bits -> {describe_arch(ds, hidden, act_bits)}")

    print(f"[1/6] training the float baseline and three binarization schemes ({epochs} epochs each)")
    results = run_training(ds, hidden=hidden, act_bits=act_bits, epochs=epochs, seed=train_seed,
                           out_dir=outdir / "train")
    print(format_table(results))
    curves = plot_curves(results, outdir / "training_curves.png")
    print(f"      training curves: {curves}")

    chosen = next(r for r in results if r.scheme == "ste")
    cfg_path = chosen.toml_path
    print(f"[2/6] exported the STE network: {cfg_path} (+ .npz); integer network "
          f"{100 * chosen.integer_acc:.2f}% = trained {100 * chosen.test_acc:.2f}%, "
          f"agreement {100 * chosen.agreement:.2f}%")
    cfg = netconfig.load(cfg_path)

    board = get_board(board_name)
    print(f"[3/6] generating the hardware for {board_name} ({board.capacity.part})")
    rep = network_report(cfg, jobs=jobs, f_clk=100e6, progress=lambda m: print("    " + m, flush=True))
    check_fits(f"network '{cfg.name}'", rep.total, board.capacity)
    hw = outdir / "hw"
    module, _ = write_accelerator(cfg, hw / "accel")
    files = write_build_plan(cfg, board, hw / "plan")
    (hw / "report.txt").write_text(format_report(rep, board.capacity) + "\n")
    plot_report(rep, hw / "report.png")
    print(f"      accelerator {module}: {hw / 'accel'}; build plan: {hw / 'plan'} ({len(files)} files); "
          f"report: {hw / 'report.txt'}")

    print(f"[4/6] Verilator (compiled engine): the whole accelerator over all {len(ds.y_test)} test images "
          "vs the golden model")
    x_test = ds.x_test.reshape((-1,) + cfg.input_shape)      # (B, 64) or (B, 8, 8, 1) as the network takes
    np.savez(outdir / "test_images.npz", x=x_test, y=ds.y_test)
    t0 = time.monotonic()
    ver = verify_network(cfg, x_test, seed=1 if seed is None else seed, log=lambda m: print("    " + m, flush=True))
    hw_labels = ver.labels
    hw_acc = ver.accuracy(ds.y_test)
    agree = ver.agreement
    how = "cached build" if ver.build.cached else f"built in {ver.build.seconds:.0f} s"
    print(f"      {ver.frames_identical} of {ver.frames} images identical to the golden model word by word "
          f"({ver.stalled_frames} also under random gaps and backpressure; {how}, "
          f"{time.monotonic() - t0:.0f} s); data set: {outdir / 'test_images.npz'} (qnnfab verify --data)")

    print("[5/6] summary")
    base = next(r for r in results if r.scheme == "float")
    print(f"  accuracy     float {100 * base.test_acc:.2f}%   binarized (STE) {100 * chosen.test_acc:.2f}%   "
          f"hardware {100 * hw_acc:.2f}%")
    for r in results:
        if r.scheme not in ("float", "ste"):
            print(f"               {r.scheme} {100 * r.test_acc:.2f}% (exported, not simulated)")
    print(f"  hardware vs golden: {100 * agree:.2f}% of {len(hw_labels)} images agree "
          f"(scores compared word by word)")
    _, (bottleneck, model), _ = cfg.throughput()
    fps = 100e6 / ver.cycles_per_frame
    print(f"  throughput   {ver.cycles_per_frame:.1f} cycles/frame measured in steady state "
          f"(model {model}, bottleneck {bottleneck}) -> {fps:,.0f} frames/s at 100 MHz")
    print(format_report(rep, board.capacity))
    print(f"  simulation   {ver.cycles:,} cycles at {ver.cycles_per_second:,.0f} cycles/s (compiled Verilator engine)")
    if not ver.identical or agree != 1.0:
        raise QnnfabError(f"hardware and golden disagree: {ver.first_mismatch or f'{100 * (1 - agree):.2f}% of labels'}")
    overlay_cosim(cfg, cfg_path, outdir / "test_images.npz", x_test, seed)
    print(f"qnnfab demo: done in {time.monotonic() - t_all:.0f} s; outputs in {outdir}/")
    return 0


def overlay_cosim(cfg, cfg_path, inputs, x_test, seed):
    """Step 6: the board's Python driver classifies the test images through the
    overlay shell (AXI4-Lite registers, AXI4 DMA) in co-simulation."""
    from qnnfab.sim import registry
    n = len(x_test)
    golden_labels = cfg.golden().forward(x_test).argmax(1)
    print("[6/6] co-simulation of the PYNQ overlay: the Python driver (qnnfab.boards.onboard.driver.Accelerator) "
          f"classifies the {n} test images through the AXI shell; PS and DDR are cocotbext-axi models")
    t0 = time.monotonic()
    res = registry.run_case("overlay", {"config": str(Path(cfg_path).resolve()), "frames": [n], "width": 64,
                                        "batch_size": n, "pause": 0.0, "inputs": str(Path(inputs).resolve())},
                            seed=seed, log=lambda m: print("    " + m, flush=True))
    labels = np.array(res.metrics["labels"])
    same = int(np.sum(labels == golden_labels))
    how = "cached build" if res.build_cached else f"built in {res.build_seconds:.0f} s"
    print(f"      driver labels equal to the golden model's: {same}/{n} "
          f"(scores too, frame by frame; {res.metrics['cycles']} cycles for the batch = "
          f"{res.metrics['cycles'] / n:.1f} cycles/frame; {how}, {time.monotonic() - t0:.0f} s)")
    if same != n:
        raise QnnfabError(f"the driver's labels differ from the golden model's on {n - same} of {n} images")


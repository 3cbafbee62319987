"""A real Brevitas model through qnnfab: train, export QONNX, import, run the hardware.

Trains two small quantized networks on the shipped 8x8 digits with Brevitas'
quantized layers (a binarized MLP with binary weights and sign activations,
and a conv net with binary weights and 2-bit ReLU activations; the input is
quantized by the model itself to 5 bits with a learned scale), exports each
with ``brevitas.export.export_qonnx`` (the TorchScript exporter and, where it
works, the dynamo exporter), imports it with ``qnnfab.interop`` and prints,
over the 450 test images:

* Brevitas' accuracy (PyTorch, float32),
* qnnfab's golden-model accuracy on the imported network, and the agreement
  of its scores with ``execute_onnx`` on the exported graph (up to the one
  positive output scale the import reports) and of its labels with Brevitas',
* the hardware on Verilator (compiled engine): accuracy, and agreement with
  the golden model word by word.

Needs torch and brevitas (not dependencies of qnnfab): it prints a skip line
and exits 0 without them. ``--fixtures DIR`` also writes the exported models
there (the tests import them without torch: tests/fixtures/brevitas_*.onnx).

    pip install torch brevitas onnxoptimizer 'qnnfab[onnx]'
    python bench/bench_brevitas.py --epochs 20 --fixtures tests/fixtures
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def models():
    import brevitas.nn as qnn
    import torch.nn as nn
    from brevitas.quant import Uint8ActPerTensorFloat
    from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    def input_quant():
        return qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=5, return_quant_tensor=True)

    def binary_linear(i, o):
        return qnn.QuantLinear(i, o, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)

    mlp = nn.Sequential(
        input_quant(),
        binary_linear(64, 64), nn.BatchNorm1d(64), qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
        binary_linear(64, 64), nn.BatchNorm1d(64), qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
        binary_linear(64, 10))
    cnn = nn.Sequential(
        input_quant(),
        qnn.QuantConv2d(1, 16, 3, bias=False, weight_quant=SignedBinaryWeightPerTensorConst), nn.BatchNorm2d(16),
        qnn.QuantReLU(bit_width=2, return_quant_tensor=True),
        nn.MaxPool2d(2), nn.Flatten(),
        binary_linear(16 * 3 * 3, 10))
    return {"mlp_w1a1": (mlp, (1, 64)), "cnn_w1a2": (cnn, (1, 1, 8, 8))}


def train(model, x, y, epochs, seed):
    import torch
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = x.shape[0]
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n)
        for k in range(0, n, 64):
            idx = perm[k:k + 64]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    model.eval()
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fixtures", default=None, help="also write the exported .onnx models here")
    ap.add_argument("--no-hardware", action="store_true", help="skip the Verilator runs")
    args = ap.parse_args(argv)
    try:
        import torch
        from brevitas.export import export_qonnx
    except ImportError as e:
        print(f"bench_brevitas: skipped: {e.name} is not installed (pip install torch brevitas onnxoptimizer)")
        return 0
    import numpy as np

    torch.set_num_threads(1)
    from qnnfab.golden.network import network_of
    from qnnfab.interop.qonnx_export import execute
    from qnnfab.interop.qonnx_import import import_qonnx
    from qnnfab.train.datasets import load_digits

    ds = load_digits()
    scale = float((1 << ds.pixel_bits) - 1)  # 5-bit pixels (0..16) to floats in [0, 0.52]
    rows = []
    for name, (model, shape) in models().items():
        xtr = torch.tensor(ds.x_train.reshape((-1,) + shape[1:]) / scale, dtype=torch.float32)
        xte = torch.tensor(ds.x_test.reshape((-1,) + shape[1:]) / scale, dtype=torch.float32)
        t0 = time.monotonic()
        train(model, xtr, torch.tensor(ds.y_train), args.epochs, args.seed)
        with torch.no_grad():
            torch_scores = model(xte).numpy()
        brevitas_acc = float(np.mean(torch_scores.argmax(1) == ds.y_test))
        for exporter in ("torchscript", "dynamo"):
            with tempfile.TemporaryDirectory() as d:
                path = Path(d) / f"{name}.onnx"
                try:
                    export_qonnx(model, torch.zeros(shape), str(path), dynamo=exporter == "dynamo")
                except Exception as e:  # noqa: BLE001  (report, go on with the other exporter)
                    rows.append((name, exporter, f"export failed: {type(e).__name__}: {str(e)[:80]}"))
                    continue
                import onnx
                graph = onnx.load(str(path))
                if args.fixtures:
                    Path(args.fixtures).mkdir(parents=True, exist_ok=True)
                    onnx.save(graph, str(Path(args.fixtures) / f"brevitas_{name}_{exporter}.onnx"))
            imp = import_qonnx(graph, name=name)
            cfg = imp.cfg
            frames = imp.input_codes.to_codes(xte.numpy())
            golden = network_of(cfg).forward(frames).reshape(len(frames), -1).astype(np.float64)
            ref = execute(graph, xte.numpy())
            a, b = np.polyfit(golden.reshape(-1), ref.reshape(-1), 1)
            exact = bool(np.allclose(ref, a * golden + b, atol=1e-4 * max(1.0, abs(a))) and a > 0)
            golden_labels = golden.argmax(1)
            top2 = np.sort(torch_scores, axis=1)[:, -2:]
            untied = top2[:, 1] > top2[:, 0]
            agree = float(np.mean(golden_labels[untied] == torch_scores.argmax(1)[untied]))
            graph_agree = float(np.mean(ref.argmax(1)[untied] == torch_scores.argmax(1)[untied]))
            row = [name, exporter, f"Brevitas {100 * brevitas_acc:.2f}%",
                   f"golden {100 * np.mean(golden_labels == ds.y_test):.2f}%",
                   f"graph == golden: {exact}", f"golden labels = Brevitas on {100 * agree:.2f}% of {untied.sum()} "
                   f"untied (the exported graph's on {100 * graph_agree:.2f}%)"]
            if not args.no_hardware:
                from qnnfab.sim.compiled import verify_network
                v = verify_network(cfg, frames)
                row += [f"hardware {100 * v.accuracy(ds.y_test):.2f}%",
                        f"{v.frames_identical}/{v.frames} frames identical to golden",
                        f"{v.cycles_per_frame:.1f} cycles/frame"]
            rows.append(tuple(row))
        print(f"{name}: trained {args.epochs} epochs in {time.monotonic() - t0:.0f} s", flush=True)
    print()
    for r in rows:
        print("  ".join(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())

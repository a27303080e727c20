"""Throughput of the rate-coded simulator beside the plain ANN forward pass.

For the digits MLP 64-100-10 (trained inline for a few epochs) and mnist-cnn (the shipped
pretrained weights when installed, else a random initialisation), one batch is simulated
for T steps; we report sample-steps per second (batch x T / wall time, best of
``--repeats``), samples per second, and the ANN's samples per second on the same batch.

    python benchmarks/bench_rate.py --out DIR [--steps 64 --batch 256 --threads 1]

One thread is the default: on a small shared machine extra intra-op threads oversubscribe
the cores and slow every small kernel down several-fold.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from spikecast.datasets.loaders import DataError, load_dataset
from spikecast.frontends.torch_fx import capture
from spikecast.measure.result import accuracy
from spikecast.schemes.base import convert
from spikecast.schemes.rate import RateRecipe
from spikecast.zoo.models import get_architecture


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Fastest wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def digits_model(epochs: int) -> tuple[nn.Module, str, torch.Tensor, torch.Tensor, torch.Tensor]:
    from spikecast.zoo.train import train_model

    data = load_dataset("digits")
    trained = train_model("digits-mlp", data, epochs=epochs, seed=0, progress=False, threads=1)
    note = f"trained inline, {epochs} epochs, test acc {trained.test_accuracy:.4f}"
    return trained.model, note, data.x_train, data.x_test, data.y_test


def mnist_cnn_model() -> tuple[nn.Module, str, torch.Tensor, torch.Tensor, torch.Tensor]:
    from spikecast.zoo.pretrained import load_pretrained

    try:
        model, meta = load_pretrained("mnist-cnn")
        note = f"pretrained, test acc {meta.get('test_accuracy')}"
    except ValueError:
        torch.manual_seed(0)
        model, note = get_architecture("mnist-cnn").build().eval(), "random init"
    try:
        data = load_dataset("mnist", download=False)
        return model, note, data.x_train[:2000], data.x_test, data.y_test
    except DataError:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(2000, 1, 28, 28, generator=g)
        return model, note + ", random inputs", x, x, torch.zeros(2000, dtype=torch.long)


def bench_model(
    name: str,
    loaded: tuple[nn.Module, str, torch.Tensor, torch.Tensor, torch.Tensor],
    steps: int,
    batch: int,
    repeats: int,
) -> dict[str, Any]:
    model, note, calib, x_test, y_test = loaded
    net = capture(model, tuple(calib.shape[1:]))
    snn = convert(net, RateRecipe(steps=steps), calib)
    xb, yb = x_test[:batch], y_test[:batch]
    with torch.no_grad():
        ann_s = best_time(lambda: net.forward(xb), repeats)
        snn_s = best_time(lambda: snn.simulate(xb), repeats)
        out = snn.simulate(xb)
        ann_pred = net.forward(xb).argmax(1)
    n = xb.shape[0]
    return {
        "model": name,
        "weights": note,
        "batch": n,
        "steps": steps,
        "snn_seconds": snn_s,
        "snn_sample_steps_per_s": n * steps / snn_s,
        "snn_samples_per_s": n / snn_s,
        "ann_seconds": ann_s,
        "ann_samples_per_s": n / ann_s,
        "snn_over_ann_time": snn_s / ann_s,
        "ann_batch_accuracy": accuracy(ann_pred, yb),
        "snn_batch_accuracy": accuracy(out.predictions[-1], yb),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for bench_rate.json")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--digits-epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [
        bench_model("digits-mlp", digits_model(args.digits_epochs), args.steps, args.batch,
                    args.repeats),
        bench_model("mnist-cnn", mnist_cnn_model(), args.steps, args.batch, args.repeats),
    ]
    report = {
        "benchmark": "rate-simulator throughput",
        "device": "cpu",
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_rate.json"
    path.write_text(json.dumps(report, indent=2))
    table = Table(title=f"rate simulator, T={args.steps}, batch={args.batch}, "
                        f"{args.threads} threads")
    for col in ("model", "SNN sample-steps/s", "SNN samples/s", "ANN samples/s",
                "SNN/ANN time", "ANN acc", "SNN acc"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["model"], f"{r['snn_sample_steps_per_s']:,.0f}",
            f"{r['snn_samples_per_s']:,.1f}", f"{r['ann_samples_per_s']:,.0f}",
            f"{r['snn_over_ann_time']:,.0f}x", f"{r['ann_batch_accuracy']:.4f}",
            f"{r['snn_batch_accuracy']:.4f}",
        )
    Console(width=120).print(table)
    for r in rows:
        print(f"{r['model']}: {r['weights']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

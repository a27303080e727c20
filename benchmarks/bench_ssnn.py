"""SSNN simulator throughput and accuracy: event-driven (numba) vs clock-driven (torch, dt).

    python benchmarks/bench_ssnn.py --out DIR [--mnist-samples 1000] [--clock-samples 64]

Measures samples/s of both simulators on MNIST 784-500-10 (shipped mnist-fc, 5 us window)
and wine 13-30-3, with the accuracy each reaches on the same samples; writes
DIR/bench_ssnn.json and prints a table. The target is the 10k MNIST test set in under
10 minutes on 2 cores (>= 16.7 samples/s for the event simulator).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from spikecast.datasets.loaders import load_dataset
from spikecast.papers.ssnn_nomura.reproduce import MNIST_RECIPE, WINE_RECIPE, train_wine_ann
from spikecast.schemes import convert
from spikecast.schemes.ssnn import SSNNRecipe
from spikecast.zoo.pretrained import load_pretrained

TARGET_SAMPLES_PER_S = 10_000 / 600


def _time(model, x, y, batch_size: int) -> dict:
    model.simulate(x[:2])  # compile / warm up
    start = time.perf_counter()
    res = model.evaluate(x, y, batch_size=batch_size)
    wall = time.perf_counter() - start
    return {"samples": len(x), "wall_s": wall, "samples_per_s": len(x) / wall,
            "accuracy": res.accuracy, "spikes_per_neuron": res.spikes_per_neuron}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mnist-samples", type=int, default=1000)
    parser.add_argument("--clock-samples", type=int, default=64)
    parser.add_argument("--dt", type=float, default=1e-9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=os.environ.get("SPIKECAST_DATA"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []

    wine = load_dataset("wine")
    wine_ann = train_wine_ann(wine, SSNNRecipe(**WINE_RECIPE).circuit_params().encoder)
    for sim in ("event", "clock"):
        model = convert(wine_ann, SSNNRecipe(**WINE_RECIPE, simulator=sim, dt=args.dt),
                        wine.x_train)
        rows.append({"network": "wine 13-30-3", "simulator": sim}
                    | _time(model, wine.x_test, wine.y_test, 178))

    mnist = load_dataset("mnist", args.data_dir)
    mnist_ann, _ = load_pretrained("mnist-fc")
    calib = mnist.x_train[:2000]
    for sim, n in (("event", args.mnist_samples), ("clock", args.clock_samples)):
        model = convert(mnist_ann, SSNNRecipe(**MNIST_RECIPE, simulator=sim, dt=args.dt), calib)
        rows.append({"network": "mnist 784-500-10", "simulator": sim}
                    | _time(model, mnist.x_test[:n], mnist.y_test[:n], 256))

    event_mnist = rows[2]["samples_per_s"]
    summary = {
        "threads": args.threads,
        "dt_s": args.dt,
        "rows": rows,
        "mnist_10k_event_minutes": 10_000 / event_mnist / 60,
        "meets_10_minute_target": event_mnist >= TARGET_SAMPLES_PER_S,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_ssnn.json").write_text(json.dumps(summary, indent=2))
    table = Table(title=f"SSNN simulators ({args.threads} threads, clock dt = {args.dt:g} s)")
    for col in ("network", "simulator", "samples", "samples/s", "accuracy", "spikes/neuron"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["network"], r["simulator"], str(r["samples"]),
                      f"{r['samples_per_s']:.1f}", f"{r['accuracy']:.4f}",
                      f"{r['spikes_per_neuron']:.3f}")
    console = Console()
    console.print(table)
    console.print(f"10k MNIST with the event simulator: "
                  f"{summary['mnist_10k_event_minutes']:.1f} min "
                  f"(target < 10 min: {summary['meets_10_minute_target']})")


if __name__ == "__main__":
    main()

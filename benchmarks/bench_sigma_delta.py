"""Throughput of the sigma-delta simulators on MNIST with the pretrained ``mnist-cnn``.

Runs the event-driven numba kernel on the first ``--limit`` test frames (default: all
10,000) with 1 and 2 worker threads (frames split between them), and the torch
time-slice mode on ``--timeslice-frames`` frames, then prints a table and writes
``bench_sigma_delta.json`` to ``--out``.

    python benchmarks/bench_sigma_delta.py --out bench-results
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
from spikecast.frontends.torch_fx import capture
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.sigma_delta.sim_event import EventSimulator
from spikecast.zoo.pretrained import load_pretrained


def _model(net, theta: float, mode: str):
    recipe = SigmaDeltaRecipe.paper(theta=theta, mode=mode)
    return recipe.build(net, recipe.calibrate(net, None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--theta", type=float, default=1.0)
    parser.add_argument("--timeslice-frames", type=int, default=200)
    parser.add_argument("--data-dir", default=os.environ.get("SPIKECAST_DATA"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist", args.data_dir)
    x, y = data.x_test[: args.limit], data.y_test[: args.limit]
    net = capture(load_pretrained("mnist-cnn")[0], (1, 28, 28))
    event = _model(net, args.theta, "event")
    t0 = time.perf_counter()
    event.simulate(x[:4])
    compile_s = time.perf_counter() - t0
    rows = []
    for threads in (1, 2):
        t0 = time.perf_counter()
        rec = EventSimulator(event.program, workers=threads).run(x)
        wall = time.perf_counter() - t0
        updates = float(rec.updates.sum())
        rows.append({
            "mode": "event", "threads": threads, "frames": len(x),
            "seconds": wall, "frames_per_s": len(x) / wall,
            "synaptic_updates_per_frame": updates / len(x),
            "synaptic_updates_per_s": updates / wall,
            "accuracy": float((torch.as_tensor(rec.final_pred) == y).double().mean()),
        })
    n_ts = min(args.timeslice_frames, len(x))
    sliced = _model(net, args.theta, "timeslice")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        rec = sliced.simulator().run(x[:n_ts], batch_size=n_ts)
        wall = time.perf_counter() - t0
        updates = float(rec.updates.sum())
        rows.append({
            "mode": "timeslice", "threads": threads, "frames": n_ts, "seconds": wall,
            "frames_per_s": n_ts / wall, "synaptic_updates_per_frame": updates / n_ts,
            "synaptic_updates_per_s": updates / wall,
            "accuracy": float((torch.as_tensor(rec.final_pred) == y[:n_ts]).double().mean()),
        })
    report = {"theta": args.theta, "compile_and_warmup_s": compile_s,
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_sigma_delta.json").write_text(json.dumps(report, indent=1))
    table = Table(title=f"sigma-delta simulators, mnist-cnn, theta={args.theta}")
    for col in ("mode", "threads", "frames", "seconds", "frames/s", "updates/frame",
                "updates/s", "accuracy"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["mode"], str(r["threads"]), str(r["frames"]), f"{r['seconds']:.1f}",
                      f"{r['frames_per_s']:.1f}", f"{r['synaptic_updates_per_frame']:,.0f}",
                      f"{r['synaptic_updates_per_s']:.3g}", f"{100 * r['accuracy']:.2f}%")
    Console().print(table)
    Console().print(f"compile + warm-up {compile_s:.1f} s; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()

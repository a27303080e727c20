"""Rate-coded simulation speed beside its peers, and calibration memory.

Simulation: the digits MLP 64-100-10 (trained inline) and mnist-cnn (the shipped pretrained
weights), both normalized by spikecast, one batch (256 samples) for T = 8, 32, 64 steps
with 1 and 2 threads. Contenders (:mod:`rate_peers`): spikecast's layer-wise simulator, a
plain torch step loop (and the same loop with the constant first layer computed once),
SpikingJelly and sinabs when installed. All run in this one process, the order rotated
every round; each contender's time is the best of ``--repeats`` rounds, each ratio
(peer / spikecast) is reported as best / best with the spread [min-max] of the per-round
ratios (the process CPU time of each run is kept too: on a shared machine it is less
disturbed by other processes than the wall time); peak RSS is the process's high-water
mark during the contender's runs (reset before each). Conversion is excluded.

Calibration: a 2-conv, 64-channel MNIST net on 2,000 samples, data-based normalization in
a fresh child process each: spikecast's streamed calibration, and the former all-at-once
activations + torch.quantile (before), peak RSS of each.

    python benchmarks/bench_rate.py --out DIR [--repeats 5 --steps 8 32 64 --threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import rate_peers
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from spikecast.datasets.loaders import DataError, load_dataset
from spikecast.frontends.torch_fx import capture
from spikecast.schemes.base import convert
from spikecast.schemes.rate import RateRecipe

CALIB_SAMPLES = 2000


def peak_rss_reset() -> None:
    """Reset the process's peak resident set size (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def digits(epochs: int) -> tuple[nn.Module, str, torch.Tensor, torch.Tensor, torch.Tensor]:
    from spikecast.zoo.train import train_model

    data = load_dataset("digits")
    trained = train_model("digits-mlp", data, epochs=epochs, seed=0, progress=False, threads=1)
    note = f"trained inline, {epochs} epochs, test acc {trained.test_accuracy:.4f}"
    return trained.model, note, data.x_train, data.x_test, data.y_test


def mnist_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    try:
        data = load_dataset("mnist", download=False)
        return data.x_train[:CALIB_SAMPLES].clone(), data.x_test, data.y_test, "MNIST"
    except DataError:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(CALIB_SAMPLES, 1, 28, 28, generator=g)
        return x, x, torch.zeros(len(x), dtype=torch.long), "random inputs (no MNIST files)"


def mnist_cnn() -> tuple[nn.Module, str, torch.Tensor, torch.Tensor, torch.Tensor]:
    from spikecast.zoo.pretrained import load_pretrained

    model, meta = load_pretrained("mnist-cnn")
    calib, x_test, y_test, source = mnist_data()
    return model, f"pretrained (test acc {meta.get('test_accuracy')}), {source}", calib, \
        x_test, y_test


def contenders(snn: Any, batch: int) -> dict[str, rate_peers.Runner]:
    net, theta = snn.network, snn.recipe.threshold
    runners: dict[str, rate_peers.Runner] = {
        "spikecast": lambda x, t: snn.simulate(x, t).counts[-1],
        "loop": rate_peers.plain_loop(net, theta, hoist=False),
        "loop-hoisted": rate_peers.plain_loop(net, theta, hoist=True),
    }
    if rate_peers.available("spikingjelly"):
        runners["spikingjelly"] = rate_peers.spikingjelly_runner(net, theta)
    if rate_peers.available("sinabs"):
        runners["sinabs"] = rate_peers.sinabs_runner(net, theta, batch)
    return runners


def race(runners: dict[str, rate_peers.Runner], x: torch.Tensor, y: torch.Tensor, steps: int,
         repeats: int) -> dict[str, Any]:
    """Interleaved rounds; per contender best time, all times, peak RSS, batch accuracy."""
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    peak: dict[str, float] = dict.fromkeys(names, 0.0)
    acc = {}
    for n in names:  # warm-up (numba and TorchScript compile, allocator)
        acc[n] = float((runners[n](x, steps).argmax(1) == y).double().mean())
    for r in range(repeats):
        for n in names[r % len(names):] + names[: r % len(names)]:
            peak_rss_reset()
            start, start_cpu = time.perf_counter(), time.process_time()
            runners[n](x, steps)
            times[n].append(time.perf_counter() - start)
            cpu[n].append(time.process_time() - start_cpu)
            peak[n] = max(peak[n], peak_rss_mb())
    best = {n: min(ts) for n, ts in times.items()}
    ratios = {
        n: {"best": best[n] / best["spikecast"],
            "min": min(a / b for a, b in zip(times[n], times["spikecast"], strict=True)),
            "max": max(a / b for a, b in zip(times[n], times["spikecast"], strict=True))}
        for n in names if n != "spikecast"
    }
    return {"steps": steps, "best_s": best, "times_s": times,
            "best_cpu_s": {n: min(ts) for n, ts in cpu.items()}, "peak_rss_mb": peak,
            "batch_accuracy": acc, "ratio_to_spikecast": ratios}


def bench_model(name: str, loaded: tuple, steps_list: list[int], threads_list: list[int],
                batch: int, repeats: int) -> list[dict[str, Any]]:
    model, note, calib, x_test, y_test = loaded
    net = capture(model, tuple(calib.shape[1:]))
    snn = convert(net, RateRecipe(steps=max(steps_list)), calib)
    x, y = x_test[:batch].float(), y_test[:batch]
    with torch.no_grad():
        ann_acc = float((net(x).argmax(1) == y).double().mean())
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        runners = contenders(snn, len(x))
        for steps in steps_list:
            row = race(runners, x, y, steps, repeats)
            rows.append({"model": name, "weights": note, "batch": len(x), "threads": threads,
                         "ann_batch_accuracy": ann_acc, **row})
            print(f"{name} T={steps} threads={threads}: " + ", ".join(
                f"{n} {t:.3f}s" for n, t in row["best_s"].items()), flush=True)
    return rows


def calibration_net() -> nn.Module:
    """2 convolutions of 64 channels on 28 x 28, max-pool, linear readout."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 14 * 14, 10),
    ).eval()


def _calibrate(method: str, queue: Any) -> None:
    """Child process: calibrate and report (peak RSS before and during, seconds)."""
    torch.set_num_threads(1)
    from spikecast.ir.graph import Add, Conv2d, Linear
    from spikecast.ir.normalize import data_based

    calib = mnist_data()[0]  # 2,000 samples (a copy: the rest of MNIST is freed)
    net = capture(calibration_net(), (1, 28, 28))
    before = rss_mb()
    peak_rss_reset()
    start = time.perf_counter()
    if method == "streamed":
        scales = data_based(net, calib, 99.9, progress=False).scales
    else:  # the former implementation: every layer's activations at once
        with torch.no_grad():
            acts = net.activations(calib)
        scales = []
        for a, layer in zip(acts, net.layers, strict=True):
            if isinstance(layer, (Linear, Conv2d, Add)):
                pos = a[a > 0].double()
                pos = pos[:: -(-pos.numel() // 10_000_000)]
                scales.append(float(torch.quantile(pos, 0.999)))
    queue.put({"method": method, "rss_before_mb": before, "peak_rss_mb": peak_rss_mb(),
               "seconds": time.perf_counter() - start, "scales": list(scales)})


def bench_calibration() -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    out = []
    for method in ("streamed", "all-at-once (before)"):
        queue = ctx.Queue()
        child = ctx.Process(target=_calibrate, args=(method, queue))
        child.start()
        out.append(queue.get())
        child.join()
    return out


def print_tables(rows: list[dict[str, Any]], calib: list[dict[str, Any]]) -> None:
    console = Console(width=160)
    peers = [n for n in ("loop", "loop-hoisted", "spikingjelly", "sinabs")
             if any(n in r["best_s"] for r in rows)]
    table = Table(title="rate simulation, batch 256, best time (s) and peer / spikecast "
                        "[per-round spread]; peak RSS MB")
    for col in ("model", "T", "thr", "spikecast", *peers, "RSS sc", *(f"RSS {p}" for p in peers)):
        table.add_column(col)
    for r in rows:
        cells = [f"{r['best_s'][p]:.3f} ({r['ratio_to_spikecast'][p]['best']:.2f}x "
                 f"[{r['ratio_to_spikecast'][p]['min']:.2f}-"
                 f"{r['ratio_to_spikecast'][p]['max']:.2f}])" if p in r["best_s"] else "-"
                 for p in peers]
        rss = [f"{r['peak_rss_mb'][p]:.0f}" if p in r["peak_rss_mb"] else "-" for p in peers]
        table.add_row(r["model"], str(r["steps"]), str(r["threads"]),
                      f"{r['best_s']['spikecast']:.3f}", *cells,
                      f"{r['peak_rss_mb']['spikecast']:.0f}", *rss)
    console.print(table)
    cpu = Table(title="process CPU time (s), best of the rounds, and peer / spikecast")
    for col in ("model", "T", "thr", "spikecast", *peers):
        cpu.add_column(col)
    for r in rows:
        sc = r["best_cpu_s"]["spikecast"]
        cpu.add_row(r["model"], str(r["steps"]), str(r["threads"]), f"{sc:.3f}",
                    *(f"{r['best_cpu_s'][p]:.3f} ({r['best_cpu_s'][p] / sc:.2f}x)"
                      if p in r["best_cpu_s"] else "-" for p in peers))
    console.print(cpu)
    acc = Table(title="batch accuracy at T (the peers max-pool spikes, spikecast gates them)")
    for col in ("model", "T", "ANN", "spikecast", *peers):
        acc.add_column(col)
    for r in rows:
        if r["threads"] == rows[0]["threads"]:
            acc.add_row(r["model"], str(r["steps"]), f"{r['ann_batch_accuracy']:.4f}",
                        *(f"{r['batch_accuracy'].get(n, float('nan')):.4f}"
                          for n in ("spikecast", *peers)))
    console.print(acc)
    cal = Table(title=f"data-based calibration, 2-conv 64-channel net, {CALIB_SAMPLES} samples")
    for col in ("method", "RSS before (MB)", "peak RSS (MB)", "seconds"):
        cal.add_column(col)
    for c in calib:
        cal.add_row(c["method"], f"{c['rss_before_mb']:.0f}", f"{c['peak_rss_mb']:.0f}",
                    f"{c['seconds']:.2f}")
    console.print(cal)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for bench_rate.json")
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--digits-epochs", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=["digits-mlp", "mnist-cnn"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    calib = bench_calibration()
    loaders = {"digits-mlp": lambda: digits(args.digits_epochs), "mnist-cnn": mnist_cnn}
    rows = []
    for name in args.models:
        rows += bench_model(name, loaders[name](), args.steps, args.threads, args.batch,
                            args.repeats)
    report = {
        "benchmark": "rate simulation vs peers; calibration memory",
        "device": "cpu", "torch": torch.__version__, "machine": platform.machine(),
        "processor": platform.processor(), "cpus": multiprocessing.cpu_count(),
        "peers": {n: version(n) if rate_peers.available(n) else None
                  for n in ("spikingjelly", "sinabs")},
        "simulation": rows, "calibration": calib,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_rate.json"
    path.write_text(json.dumps(report, indent=2))
    print_tables(rows, calib)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

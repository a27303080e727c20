"""Conversion-aware fine-tuning: rate at T = 2..32 and sigma-delta, before and after.

Models: the shipped ``mnist-cnn`` and ``mnist-fc`` on MNIST, and two nobody tuned to: a
``digits-mlp`` trained here on digits, and the ``mnist-cnn`` architecture trained here for
``--base-epochs`` on inverted MNIST (1 - pixel). Per model, on the first ``--test`` test
samples (and on the validation split, for the ``v_init`` choice):

* the float ANN;
* rate without fine-tuning at every T, initial membrane v_init = 0 and 0.5 (one run at the
  largest T, read at each T; data-based normalization on 2,000 training samples);
* rate fine-tuned with QCFS for each target T (``--epochs``), converted as recorded;
* sigma-delta at the recipe's default settings, before and after fine-tuning
  (``--sd-epochs``, hysteresis quantizer, spike penalty 0.05).

Fine-tuning uses ``--val`` training samples for validation and the next ``--train-limit``
for training (never the test set). Writes ``bench_finetune.json`` and prints the tables::

    python benchmarks/bench_finetune.py --out bench-results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

import spikecast
from spikecast.datasets.loaders import Dataset, load_dataset
from spikecast.finetune.api import split_indices
from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Network
from spikecast.measure.result import accuracy
from spikecast.schemes.rate.model import accuracy_at
from spikecast.zoo.pretrained import load_pretrained
from spikecast.zoo.train import train_model

MODELS = ("mnist-cnn", "mnist-fc", "digits-mlp", "inverted-cnn")
V_INITS = (0.0, 0.5)


def _subset(data: Dataset, idx: torch.Tensor, name: str, x_test: torch.Tensor,
            y_test: torch.Tensor) -> Dataset:
    return Dataset(name, data.x_train[idx], data.y_train[idx], x_test, y_test, data.n_classes,
                   data.preprocessing)


def _setup(name: str, args: argparse.Namespace) -> tuple[Network, Dataset, str]:
    """(network, its dataset, how the base model was obtained)."""
    if name in ("mnist-cnn", "mnist-fc"):
        data = load_dataset("mnist", args.data_dir)
        return capture(load_pretrained(name)[0], (1, 28, 28)), data, "shipped weights"
    if name == "digits-mlp":
        data = load_dataset("digits")
        arch, epochs = "digits-mlp", args.digits_epochs
    else:
        mnist = load_dataset("mnist", args.data_dir)
        data = Dataset("mnist-inverted", 1.0 - mnist.x_train, mnist.y_train, 1.0 - mnist.x_test,
                       mnist.y_test, 10, "1 - pixels / 255")
        arch, epochs = "mnist-cnn", args.base_epochs
    train_idx, _ = split_indices(len(data.x_train), _val(data, args), args.seed)
    base = _subset(data, train_idx[: args.train_limit], data.name, data.x_test[: args.test],
                   data.y_test[: args.test])
    trained = train_model(arch, base, epochs=epochs, seed=args.seed, progress=False, threads=1,
                          schedule="cosine")
    note = f"{arch} trained here, {epochs} epochs on the fine-tuning training samples"
    return capture(trained.model, data.sample_shape), data, note


def _val(data: Dataset, args: argparse.Namespace) -> int:
    return min(args.val, len(data.x_train) // 10)


def _ann(net: Network, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return accuracy(torch.cat([net(x[i : i + 500]).argmax(1)
                                   for i in range(0, len(x), 500)]), y)


def _finetune(net: Network, scheme: str, data: Dataset, epochs: int, args: argparse.Namespace,
              **params: Any) -> tuple[Any, dict[str, Any]]:
    start = time.perf_counter()
    tuned = spikecast.finetune(net, scheme, data, epochs, params=params,
                               validation=_val(data, args), train_limit=args.train_limit,
                               seed=args.seed, progress=False)
    history = tuned.outcome.history
    return tuned, {
        "epochs": epochs, "best_epoch": tuned.outcome.best_epoch,
        "seconds_per_epoch": [round(r.seconds, 2) for r in history[1:]],
        "val_accuracy_per_epoch": [r.val_accuracy for r in history],
        "finetune_wall_s": round(time.perf_counter() - start, 1),
    }


def bench_model(name: str, args: argparse.Namespace, log: Console) -> dict[str, Any]:
    net, data, note = _setup(name, args)
    _, val_idx = split_indices(len(data.x_train), _val(data, args), args.seed)
    x_val, y_val = data.x_train[val_idx], data.y_train[val_idx]
    x, y = data.x_test[: args.test], data.y_test[: args.test]
    calib = data.x_train[:2000]
    row: dict[str, Any] = {"model": name, "dataset": data.name, "base": note,
                           "n_test": len(x), "n_val": len(x_val),
                           "ann_test": _ann(net, x, y), "ann_val": _ann(net, x_val, y_val)}
    t_max = max(args.steps)
    for v in V_INITS:
        log.log(f"{name}: rate without fine-tuning, v_init={v}, T={t_max}")
        snn = spikecast.convert(net, "rate", calib_x=calib, steps=t_max, v_init=v)
        test, val = snn.evaluate(x, y), snn.evaluate(x_val, y_val)
        row[f"rate_v{v}_test"] = {t: accuracy_at(test, t) for t in args.steps}
        row[f"rate_v{v}_val"] = {t: accuracy_at(val, t) for t in args.steps}
    row["rate_tuned"] = {}
    for t in args.steps if args.epochs else ():
        log.log(f"{name}: rate fine-tuned with QCFS for T={t}")
        tuned, record = _finetune(net, "rate", data, args.epochs, args, steps=t)
        res = tuned.convert().evaluate(x, y)
        row["rate_tuned"][t] = record | {"test": res.accuracy,
                                         "spikes_per_neuron": res.spikes_per_neuron,
                                         "ann_relu_test": _ann(tuned.network, x, y)}
    if args.sd_epochs is not None:
        log.log(f"{name}: sigma-delta before and after fine-tuning")
        before = spikecast.convert(net, "sigma-delta", calib_x=calib).evaluate(x, y)
        tuned, record = _finetune(net, "sigma-delta", data, args.sd_epochs, args)
        after = tuned.convert().evaluate(x, y)
        row["sigma_delta"] = {
            "params": tuned.params, "before_test": before.accuracy,
            "before_spikes_per_neuron": before.spikes_per_neuron, "after_test": after.accuracy,
            "after_spikes_per_neuron": after.spikes_per_neuron,
            "after_ann_test": _ann(tuned.network, x, y), **record,
        }
    return row


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def tables(rows: list[dict[str, Any]], steps: list[int]) -> list[Table]:
    rate = Table(title="rate coding, test accuracy % (delta vs ANN in points)")
    for col in ("model", "ANN", "T", "v_init 0", "v_init 0.5", "QCFS-tuned", "tuned - ANN",
                "spikes/neuron", "epochs (best)", "s/epoch"):
        rate.add_column(col, justify="right")
    val = Table(title="rate without fine-tuning on the validation split, accuracy %")
    for col in ("model", "ANN", *(f"T={t} v0 / v0.5" for t in steps)):
        val.add_column(col, justify="right")
    sd = Table(title="sigma-delta, test accuracy % (spikes per neuron)")
    for col in ("model", "ANN", "thetas", "before", "after", "after - ANN", "epochs (best)",
                "s/epoch"):
        sd.add_column(col, justify="right")
    for r in rows:
        ann = r["ann_test"]
        for t in steps:
            tuned = r["rate_tuned"].get(t)
            rate.add_row(
                r["model"], _pct(ann), str(t), _pct(r["rate_v0.0_test"][t]),
                _pct(r["rate_v0.5_test"][t]),
                *((_pct(tuned["test"]), f"{100 * (tuned['test'] - ann):+.2f}",
                   f"{tuned['spikes_per_neuron']:.3f}",
                   f"{tuned['epochs']} ({tuned['best_epoch']})",
                   f"{sum(tuned['seconds_per_epoch']) / max(1, tuned['epochs']):.1f}")
                  if tuned else ("-",) * 5),
            )
        val.add_row(r["model"], _pct(r["ann_val"]), *(
            f"{_pct(r['rate_v0.0_val'][t])} / {_pct(r['rate_v0.5_val'][t])}" for t in steps))
        s = r.get("sigma_delta")
        if s:
            sd.add_row(
                r["model"], _pct(ann), str(s["params"]["theta"]),
                f"{_pct(s['before_test'])} ({s['before_spikes_per_neuron']:.3f})",
                f"{_pct(s['after_test'])} ({s['after_spikes_per_neuron']:.3f})",
                f"{100 * (s['after_test'] - ann):+.2f}", f"{s['epochs']} ({s['best_epoch']})",
                f"{sum(s['seconds_per_epoch']) / max(1, s['epochs']):.1f}",
            )
    return [rate, val, sd]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for bench_finetune.json")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", default="2,4,8,16,32")
    parser.add_argument("--epochs", type=int, default=3, help="rate fine-tuning epochs")
    parser.add_argument("--sd-epochs", type=int, default=3, help="sigma-delta epochs")
    parser.add_argument("--no-sigma-delta", action="store_true")
    parser.add_argument("--train-limit", type=int, default=10_000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--base-epochs", type=int, default=2, help="inverted-cnn training")
    parser.add_argument("--digits-epochs", type=int, default=30, help="digits-mlp training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("SPIKECAST_DATA"))
    args = parser.parse_args()
    args.steps = sorted(int(t) for t in args.steps.split(","))
    if args.no_sigma_delta:
        args.sd_epochs = None
    torch.set_num_threads(1)
    console = Console(width=140)
    start = time.perf_counter()
    rows = [bench_model(m, args, console) for m in args.models.split(",")]
    report = {
        "benchmark": "conversion-aware fine-tuning", "threads": 1,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "torch": torch.__version__, "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "wall_s": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_finetune.json"
    path.write_text(json.dumps(report, indent=1))
    for table in tables(rows, args.steps):
        console.print(table)
    console.print(f"wrote {path} ({report['wall_s']} s)")


if __name__ == "__main__":
    main()

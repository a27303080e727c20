"""Train a model for the sigma-delta SNN with ``spikecast.finetune`` and measure it.

Phase 1 (``--scratch-epochs N``): from a fresh ``--arch``, N epochs with float ReLU on the
1-bit input (``--scratch-lr``, cosine). Phase 2 (``--epochs M``): fine-tuning at the thetas
(``--theta`` shared, ``--layer-theta`` per population, or ``--calibrated`` on the phase-1
model) with the ``--quantizer`` and the spike penalty. Both phases hold out ``--validation``
training samples and keep the best epoch. Then one row on the test set: float ANN on the
real-valued and the 1-bit input, Q-ANN, event-driven SNN. Writes ``--out`` (.safetensors +
sidecar: dataset, base model, command, thetas) and ``--table`` (JSON)::

    python scripts/train_sigma_delta.py --init scratch --scratch-epochs 15 --epochs 5 \
        --quantizer hysteresis --theta 1.0 --out runs/sd.safetensors --table runs/sd.table.json
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

import spikecast
from spikecast.datasets.loaders import load_dataset
from spikecast.finetune.quantizers import Quantizer
from spikecast.io.annfile import save_network, sidecar_path
from spikecast.papers.sigma_delta_yousefzadeh.reproduce import updates_to_reach
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.sigma_delta.encoding import binarize
from spikecast.schemes.sigma_delta.thresholds import Calibrated
from spikecast.zoo.models import get_architecture
from spikecast.zoo.train import LRSchedule


def _accuracy(net: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).double().mean())


def _measure(tuned: Any, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    snn = tuned.convert()
    res = snn.evaluate(x, y, progress=True)
    float_acc = _accuracy(tuned.network, x, y)
    return {
        "thetas": list(snn.thetas),
        "float_ann_accuracy": float_acc,
        "ann_accuracy_1bit_input": _accuracy(tuned.network, binarize(x), y),
        "qann_accuracy": snn.qann_accuracy(x, y),
        "snn_accuracy": res.accuracy,
        "spikes_per_neuron": res.spikes_per_neuron,
        "spikes_per_neuron_per_layer": [layer.spikes_per_neuron for layer in res.layers],
        "synaptic_updates": res.synaptic_events,
        "ann_macs": res.ann_macs,
        "input_spikes": res.input_spikes,
        "updates_to_own_float_accuracy": updates_to_reach(res, float_acc),
    }


def main(
    table: Annotated[Path, typer.Option(help="write the measured row here (JSON)")],
    init: Annotated[str, typer.Option(
        help="'scratch' (a fresh --arch), a pretrained name or a model file")] = "mnist-cnn",
    arch: Annotated[str, typer.Option(help="architecture for --init scratch")] = "mnist-cnn",
    dataset: Annotated[str, typer.Option(help="dataset (as spikecast --dataset reads it)")] = (
        "mnist"
    ),
    out: Annotated[Path | None, typer.Option(help="write the model here (.safetensors)")] = None,
    scratch_epochs: Annotated[int, typer.Option(help="phase 1: float ReLU epochs")] = 0,
    scratch_lr: Annotated[float, typer.Option(help="phase 1 learning rate")] = 1e-3,
    epochs: Annotated[int, typer.Option(help="phase 2: quantization-aware epochs")] = 0,
    lr: Annotated[float, typer.Option(help="phase 2 learning rate")] = 2e-4,
    theta: Annotated[float, typer.Option(help="shared theta (if no --calibrated)")] = 1.0,
    calibrated: Annotated[float | None, typer.Option(
        help="per-layer theta = FRACTION x p99.9 of the phase-1 activations")] = None,
    layer_theta: Annotated[list[float] | None, typer.Option(
        help="one theta per population, output included (repeat in layer order)")] = None,
    quantizer: Annotated[Quantizer, typer.Option(help="phase 2 quantizer")] = Quantizer.FLOOR,
    spike_weight: Annotated[float, typer.Option(help="phase 2 spike penalty")] = 0.05,
    schedule: Annotated[LRSchedule, typer.Option(help="phase 2 LR schedule")] = (
        LRSchedule.COSINE
    ),
    max_shift: Annotated[int, typer.Option(help="random shift augmentation, pixels")] = 2,
    batch_size: Annotated[int, typer.Option(help="mini-batch size")] = 128,
    validation: Annotated[int, typer.Option(help="training samples held out")] = 5000,
    seed: Annotated[int, typer.Option(help="seed of both phases")] = 0,
    limit: Annotated[int | None, typer.Option(help="first N test samples (default all)")] = None,
    device: Annotated[str, typer.Option(help="torch device for training")] = "cpu",
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
    data_dir: Annotated[str | None, typer.Option(help="MNIST IDX folder")] = None,
) -> None:
    """Train (phase 1 and/or 2), save, and measure one row."""
    if out is not None and sidecar_path(out).resolve() == table.resolve():
        raise ValueError(f"--table {table} is the sidecar of --out {out}; pick another name")
    torch.set_num_threads(threads)
    common = {"batch_size": batch_size, "max_shift": max_shift, "validation": validation,
              "seed": seed, "device": device, "data_dir": data_dir}
    model = get_architecture(arch).build() if init == "scratch" else init
    phase1: dict[str, Any] = {}
    if scratch_epochs:
        float_relu = spikecast.finetune(
            model, SigmaDeltaRecipe(theta=theta), dataset, scratch_epochs, quantizer="relu",
            lr=scratch_lr, spike_weight=0.0, schedule="cosine", **common)
        model, phase1 = float_relu.network, float_relu.sidecar()["finetune"]
    spec = Calibrated(calibrated) if calibrated is not None else tuple(layer_theta or ()) or theta
    tuned = spikecast.finetune(model, SigmaDeltaRecipe.paper(theta=spec), dataset, epochs,
                               quantizer=quantizer, lr=lr, spike_weight=spike_weight,
                               schedule=schedule, **common)
    command = shlex.join(["python", "scripts/train_sigma_delta.py", *sys.argv[1:]])
    record = tuned.sidecar(command) | {"base_model": init, "phase1": phase1}
    if out is not None:
        save_network(tuned.network, out, metadata=record)
    data = load_dataset(dataset, data_dir, seed=seed)
    x, y = data.x_test[:limit], data.y_test[:limit]
    row = {"command": command, "n_samples": len(x), "phase1": phase1,
           "finetune": record["finetune"], **_measure(tuned, x, y)}
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(json.dumps(row, indent=1))
    typer.echo(json.dumps(row, indent=1))


if __name__ == "__main__":
    typer.run(main)

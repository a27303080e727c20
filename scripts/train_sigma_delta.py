"""Train mnist-cnn for the sigma-delta SNN (issue 4) and measure it with the exact simulator.

Phase 1 (``--scratch-epochs N``): from a fresh mnist-cnn, N epochs with float ReLU on the
1-bit input (Adam, cosine, ``--scratch-lr``, ``--max-shift``). Phase 2 (``--epochs M``):
quantization-aware training at the thetas (``--theta`` shared, ``--layer-theta`` per layer,
or ``--calibrated`` on the phase-1 model) with the ``--quantizer`` (hysteresis rates
measured in the simulator unless ``--up`` gives them) and the spike penalty. Then one row:
float ANN on the real-valued and the 1-bit input, Q-ANN, event-driven SNN on the test
frames, and the synaptic updates the SNN needs to reach the shipped ANN's and its own float
accuracy. Writes ``--out`` (.safetensors + sidecar with the command) and ``--table`` (JSON)::

    python scripts/train_sigma_delta.py --init scratch --scratch-epochs 15 --epochs 5 \
        --quantizer hysteresis --theta 1.0 --out runs/sd.safetensors --table runs/sd.table.json
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from torch import nn

from spikecast.datasets.loaders import load_dataset
from spikecast.finetune.hysteresis import FinetuneConfig, Quantizer, finetune, measure_up_rates
from spikecast.frontends.torch_fx import capture
from spikecast.io.annfile import load_model, save_model, sidecar_path
from spikecast.measure.counts import neuron_count
from spikecast.papers.sigma_delta_yousefzadeh.reproduce import updates_to_reach
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.sigma_delta.encoding import binarize
from spikecast.schemes.sigma_delta.program import population_stages
from spikecast.schemes.sigma_delta.thresholds import Calibrated, resolve_thresholds
from spikecast.zoo.models import get_architecture
from spikecast.zoo.pretrained import PRETRAINED, load_pretrained
from spikecast.zoo.train import LRSchedule, evaluate_ann

ARCH = "mnist-cnn"


def _initial_model(init: str) -> nn.Module:
    if init == "scratch":
        return get_architecture(ARCH).build()
    if init in PRETRAINED:
        return load_pretrained(init)[0]
    return load_model(Path(init))[0]


def _evaluate(
    model: nn.Module, thetas: tuple[float, ...], x: torch.Tensor, y: torch.Tensor,
    shipped_acc: float,
) -> dict[str, Any]:
    net = capture(model, (1, 28, 28))
    recipe = SigmaDeltaRecipe.paper(theta=thetas)
    snn = recipe.replace(recipe.normalize(net, None), net)
    start = time.time()
    res = snn.evaluate(x, y)
    float_acc = evaluate_ann(model, x, y)
    return {
        "thetas": list(thetas),
        "float_ann_accuracy": float_acc,
        "ann_accuracy_1bit_input": evaluate_ann(model, binarize(x), y),
        "qann_accuracy": snn.qann_accuracy(x, y),
        "snn_accuracy": res.accuracy,
        "spikes_per_neuron": res.spikes_per_neuron,
        "synaptic_updates": res.synaptic_events,
        "ann_macs": res.ann_macs,
        "spikes_per_neuron_per_layer": [layer.spikes_per_neuron for layer in res.layers],
        "input_spikes": res.extra["input_spikes"],
        "updates_to_shipped_ann_accuracy": updates_to_reach(res, shipped_acc),
        "updates_to_own_float_accuracy": updates_to_reach(res, float_acc),
        "eval_s": time.time() - start,
    }


def main(
    table: Annotated[Path, typer.Option(help="write the measured rows here (JSON)")],
    init: Annotated[str, typer.Option(help="'scratch', a pretrained name or a .safetensors")] = (
        "mnist-cnn"
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
        help="one theta per synaptic layer, output included (repeat in layer order)")] = None,
    quantizer: Annotated[Quantizer, typer.Option(help="phase 2 quantizer")] = Quantizer.FLOOR,
    up: Annotated[list[float] | None, typer.Option(
        help="hysteresis rates per ReLU (default: measured in the simulator)")] = None,
    up_frames: Annotated[int, typer.Option(help="training frames to measure --up on")] = 300,
    spike_weight: Annotated[float, typer.Option(help="phase 2 spike penalty")] = 0.05,
    schedule: Annotated[LRSchedule, typer.Option(help="phase 2 LR schedule")] = (
        LRSchedule.COSINE
    ),
    max_shift: Annotated[int, typer.Option(help="random shift augmentation, pixels")] = 2,
    batch_size: Annotated[int, typer.Option(help="mini-batch size")] = 128,
    seed: Annotated[int, typer.Option(help="seed of both phases")] = 0,
    limit: Annotated[int | None, typer.Option(help="first N test frames (default all)")] = None,
    device: Annotated[str, typer.Option(help="torch device for training")] = "cpu",
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
    data_dir: Annotated[str | None, typer.Option(help="MNIST IDX folder")] = None,
) -> None:
    """Train (phase 1 and/or 2), save, and measure the rows of the issue-4 table."""
    if out is not None and sidecar_path(out).resolve() == table.resolve():
        raise ValueError(f"--table {table} is the sidecar of --out {out}; pick another name")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    data = load_dataset("mnist", data_dir, seed=seed)
    x, y = data.x_test[:limit], data.y_test[:limit]
    calib_x = data.x_train[:2000]
    model = _initial_model(init)
    n_neurons = neuron_count(capture(model, (1, 28, 28)))
    log: dict[str, Any] = {"command": shlex.join(["python", "scripts/train_sigma_delta.py",
                                                  *sys.argv[1:]])}
    start = time.time()
    if scratch_epochs:
        phase1 = FinetuneConfig(epochs=scratch_epochs, lr=scratch_lr, spike_weight=0.0,
                                quantizer=Quantizer.RELU, schedule=LRSchedule.COSINE,
                                max_shift=max_shift, batch_size=batch_size, seed=seed,
                                device=device)
        model = finetune(model, data.x_train, data.y_train, phase1, n_neurons)
    log["phase1_s"] = time.time() - start
    net = capture(model, (1, 28, 28))
    spec = Calibrated(calibrated) if calibrated is not None else tuple(layer_theta or ()) or theta
    thetas = resolve_thresholds(net, spec, calib_x)
    hidden = tuple(t for t, s in zip(thetas, population_stages(net), strict=True) if s.relu)
    rates: tuple[float, ...] = tuple(up) if up else ()
    if quantizer is Quantizer.HYSTERESIS and not rates:
        recipe = SigmaDeltaRecipe.paper(theta=thetas)
        rates = measure_up_rates(recipe.replace(recipe.normalize(net, None), net),
                                 data.x_train[-up_frames:])
    log["up_rates"] = list(rates)
    start = time.time()
    if epochs:
        phase2 = FinetuneConfig(theta=hidden, epochs=epochs, lr=lr, spike_weight=spike_weight,
                                quantizer=quantizer, up=rates or 0.0, schedule=schedule,
                                max_shift=max_shift, batch_size=batch_size, seed=seed,
                                device=device)
        model = finetune(model, data.x_train, data.y_train, phase2, n_neurons)
    log["phase2_s"] = time.time() - start
    if out is not None:
        save_model(model, out, arch=ARCH, metadata={
            "command": log["command"], "thresholds": list(thetas), "up_rates": list(rates),
            "test_accuracy": evaluate_ann(model, data.x_test, data.y_test),
        })
    shipped_acc = evaluate_ann(load_pretrained(ARCH)[0], x, y)
    row = {**log, "shipped_ann_accuracy": shipped_acc, "n_samples": len(x),
           **_evaluate(model, thetas, x, y, shipped_acc)}
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(json.dumps(row, indent=1))
    typer.echo(json.dumps(row, indent=1))


if __name__ == "__main__":
    typer.run(main)

"""Regenerate a shipped reference model: train it, then save weights + sidecar atomically.

The exact command is recorded in the sidecar under "command"; the shipped models came from::

    python scripts/train_pretrained.py --arch mnist-cnn --epochs 15 --seed 0 \
        --schedule cosine --max-shift 2 --threads 1 \
        --out src/spikecast/pretrained/mnist-cnn.safetensors
    python scripts/train_pretrained.py --arch mnist-fc --epochs 10 --seed 0 \
        --schedule cosine --threads 1 --out src/spikecast/pretrained/mnist-fc.safetensors
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from spikecast.io.annfile import save_model
from spikecast.zoo.models import get_architecture
from spikecast.zoo.train import LRSchedule, train_model


def main(
    arch: Annotated[str, typer.Option(help="architecture name, e.g. mnist-cnn or mnist-fc")],
    epochs: Annotated[int, typer.Option(help="training epochs")],
    out: Annotated[Path, typer.Option(help="output .safetensors path (+ .json sidecar)")],
    seed: Annotated[int, typer.Option(help="seed for init, shuffling and augmentation")] = 0,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="mini-batch size")] = 128,
    weight_decay: Annotated[float, typer.Option(help="Adam weight decay")] = 0.0,
    schedule: Annotated[LRSchedule, typer.Option(help="learning-rate schedule")] = (
        LRSchedule.COSINE
    ),
    max_shift: Annotated[int, typer.Option(help="random shift augmentation, pixels")] = 0,
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
    dataset: Annotated[str, typer.Option(help="dataset (default: the architecture's)")] = "",
) -> None:
    """Train ARCH and write OUT plus its sidecar, recording the exact command."""
    trained = train_model(
        arch,
        dataset or get_architecture(arch).dataset,
        epochs=epochs,
        seed=seed,
        lr=lr,
        batch_size=batch_size,
        weight_decay=weight_decay,
        schedule=schedule,
        max_shift=max_shift,
        threads=threads,
    )
    argv = ["python", "scripts/train_pretrained.py", *sys.argv[1:]]
    save_model(trained, out, arch=arch, metadata={"command": shlex.join(argv)})
    typer.echo(
        f"{arch}: test accuracy {trained.test_accuracy:.4f}, train accuracy "
        f"{trained.train_accuracy:.4f} -> {out}"
    )


if __name__ == "__main__":
    typer.run(main)

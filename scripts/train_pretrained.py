"""Regenerate a shipped reference model: train it, then save weights + sidecar atomically.

    nice -n 5 python scripts/train_pretrained.py --arch mnist-cnn --epochs 15 --seed 0 \
        --schedule cosine --max-shift 2 --threads 1 --out src/spikecast/pretrained/mnist-cnn.safetensors
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from spikecast.modelio import save_model
from spikecast.train import LRSchedule, train_model


def main(
    arch: str = typer.Option(..., help="architecture name, e.g. mnist-cnn or mnist-fc"),
    epochs: int = typer.Option(..., help="training epochs"),
    out: Path = typer.Option(..., help="output .safetensors path (a .json sidecar is written)"),
    seed: int = typer.Option(0, help="seed for init, shuffling and augmentation"),
    lr: float = typer.Option(1e-3, help="Adam learning rate"),
    batch_size: int = typer.Option(128, help="mini-batch size"),
    weight_decay: float = typer.Option(0.0, help="Adam weight decay"),
    schedule: LRSchedule = typer.Option(LRSchedule.COSINE, help="learning-rate schedule"),
    max_shift: int = typer.Option(0, help="random shift augmentation in pixels (0: none)"),
    threads: int = typer.Option(1, help="torch CPU threads"),
    dataset: str = typer.Option("", help="dataset name (default: the architecture's)"),
) -> None:
    """Train ARCH and write OUT plus its sidecar, recording the exact command."""
    from spikecast.models import get_architecture

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
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/train_pretrained.py", *sys.argv[1:]])
    save_model(trained, out, arch=arch, metadata={"command": command})
    typer.echo(
        f"{arch}: test accuracy {trained.test_accuracy:.4f}, train accuracy "
        f"{trained.train_accuracy:.4f} -> {out}"
    )


if __name__ == "__main__":
    typer.run(main)

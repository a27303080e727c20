"""Deterministic CPU training of the reference architectures (Adam, cross-entropy).

The loss is the mean cross-entropy ``L = -mean_n log softmax(f(x_n))[y_n]``; the learning
rate follows ``lr_t = lr`` (constant) or ``lr_t = lr * (1 + cos(pi * t / T)) / 2`` (cosine,
``t`` = optimiser steps taken, ``T`` = total steps). With the same seed, arguments and thread
count, two runs give bitwise-identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from spikecast.checks import require_seed
from spikecast.choice import Choice
from spikecast.datasets.loaders import Dataset, load_dataset
from spikecast.progress import Reporter
from spikecast.zoo.models import get_architecture

__all__ = ["LRSchedule", "TrainedModel", "evaluate_ann", "random_shift", "train_model"]


class LRSchedule(Choice):
    """Learning-rate schedule over all optimiser steps."""

    CONSTANT = "constant"
    COSINE = "cosine"


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trained network (in eval mode) and how it was obtained."""

    model: nn.Module
    arch: str
    dataset: str
    seed: int
    epochs: int
    test_accuracy: float
    train_accuracy: float
    input_shape: tuple[int, ...]
    preprocessing: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def evaluate_ann(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024
) -> float:
    """Top-1 accuracy ``mean(argmax f(x_n) == y_n)`` in eval mode (the mode is restored)."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x has {len(x)} samples and y {len(y)}; need the same non-zero count")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size])
        correct += int((logits.argmax(dim=1) == y[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(x)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image (N, C, H, W) by its own integer (dy, dx) in [-max_shift, max_shift].

    Pixels shifted in from outside the image are zero: ``out[n, c, i, j] = x[n, c, i - dy_n,
    j - dx_n]`` where that index is inside the image, else 0.
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if max_shift == 0:
        return x
    if x.ndim != 4:
        raise ValueError(f"random_shift needs images shaped (N, C, H, W), got {tuple(x.shape)}")
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    rows = (offsets[0][:, None] + torch.arange(h))[:, None, :, None]
    cols = (offsets[1][:, None] + torch.arange(w))[:, None, None, :]
    return padded[
        torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols
    ]


@contextmanager
def _training_context(threads: int | None) -> Iterator[None]:
    """Deterministic algorithms and an optional thread count, restored on exit."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)


def _validate(
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    max_shift: int,
    threads: int | None,
) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")


def log_interval(epochs: int, log_every: int | None) -> int:
    """Epochs between two log lines: ``log_every``, by default a tenth of the run (at most
    10 lines plus the last epoch's)."""
    if log_every is None:
        return max(1, epochs // 10)
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    return log_every


def train_model(
    arch_name: str,
    dataset: Dataset | str,
    *,
    epochs: int,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 128,
    weight_decay: float = 0.0,
    schedule: LRSchedule | str = LRSchedule.CONSTANT,
    max_shift: int = 0,
    progress: bool = True,
    threads: int | None = None,
    log_every: int | None = None,
) -> TrainedModel:
    """Train ``arch_name`` on ``dataset`` with Adam and cross-entropy; return it in eval mode.

    ``max_shift`` > 0 shifts every training image by a random integer offset in
    [-max_shift, max_shift] pixels (image datasets only). Shuffling and augmentation use a
    ``torch.Generator`` seeded with ``seed``; initial weights use ``torch.manual_seed(seed)``.
    With ``progress``, one bar covers the whole run (plain lines when not on a terminal,
    :class:`spikecast.progress.Reporter`) and a log line follows every ``log_every`` epochs
    (see :func:`log_interval`) and the last.
    """
    _validate(epochs, lr, batch_size, weight_decay, max_shift, threads)
    every = log_interval(epochs, log_every)
    require_seed(seed)
    schedule = LRSchedule(schedule)
    arch = get_architecture(arch_name)
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    if data.sample_shape != arch.input_shape:
        raise ValueError(
            f"dataset {data.name!r} has samples shaped {data.sample_shape} but architecture "
            f"{arch.name!r} expects {arch.input_shape}"
        )
    if max_shift and len(arch.input_shape) != 3:
        raise ValueError(
            f"max_shift needs image inputs (C, H, W); {arch.name!r} takes {arch.input_shape}"
        )
    hyperparameters: dict[str, Any] = {
        "optimizer": "adam",
        "lr": lr,
        "batch_size": batch_size,
        "weight_decay": weight_decay,
        "schedule": schedule.value,
        "max_shift": max_shift,
        "loss": "cross_entropy",
        "threads": threads,
    }
    with _training_context(threads):
        torch.manual_seed(seed)
        model = arch.build()
        _fit(model, data, epochs, seed, hyperparameters, schedule, progress, every)
        model.eval()
        train_accuracy = evaluate_ann(model, data.x_train, data.y_train)
        test_accuracy = evaluate_ann(model, data.x_test, data.y_test)
    return TrainedModel(
        model=model,
        arch=arch.name,
        dataset=data.name,
        seed=seed,
        epochs=epochs,
        test_accuracy=test_accuracy,
        train_accuracy=train_accuracy,
        input_shape=arch.input_shape,
        preprocessing=data.preprocessing,
        hyperparameters=hyperparameters,
    )


def _fit(
    model: nn.Module,
    data: Dataset,
    epochs: int,
    seed: int,
    hp: dict[str, Any],
    schedule: LRSchedule,
    progress: bool,
    log_every: int,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    n_batches = math.ceil(len(data.x_train) / hp["batch_size"])
    total_steps = epochs * n_batches
    if schedule is LRSchedule.COSINE:
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
        )
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    with Reporter("training", total_steps, enabled=progress, tenths=False) as bar:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(data.x_train), generator=generator)
            loss_sum, correct, seen = 0.0, 0, 0
            for start in range(0, len(order), hp["batch_size"]):
                index = order[start : start + hp["batch_size"]]
                x = random_shift(data.x_train[index], hp["max_shift"], generator)
                y = data.y_train[index]
                logits = model(x)
                loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                loss_sum += float(loss.detach()) * len(y)
                correct += int((logits.argmax(dim=1) == y).sum())
                seen += len(y)
                bar.advance(
                    1, description=f"epoch {epoch}/{epochs}",
                    status=f"loss {loss_sum / seen:.4f}  train acc {correct / seen:.4f}",
                )
            if epoch % log_every == 0 or epoch == epochs:
                bar.log(
                    f"epoch {epoch}/{epochs}: loss {loss_sum / seen:.4f}, train acc (running) "
                    f"{correct / seen:.4f}, lr {scheduler.get_last_lr()[0]:.2e}"
                )

"""The fine-tuning loop: Adam on cross-entropy plus a spike penalty, validation every epoch,
the best-validation checkpoint kept (also when interrupted with Ctrl-C).

Loss per batch: L = CE(f(c(x)), y) + ``spike_weight`` x mean_n(sum_l levels_l(n)) / neurons,
where c codes the input as the scheme does and levels_l are the expected spikes the
quantizers record. The learning rate (``lr`` for the weights, ``scale_lr`` for the QCFS
lambdas) is constant or cosine over all steps, lr_t = lr (1 + cos(pi t / total)) / 2.
Epoch 0 is the model before any step (recorded for reference; kept only if no epoch
finishes); the kept checkpoint is the trained epoch with the highest validation accuracy
(ties: the lower validation loss, then the earlier epoch).
Seeded; with the same seed, data and thread count two CPU runs give identical weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from spikecast.zoo.train import LRSchedule, random_shift

Coder = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings; ``epochs`` may be 0 (only the epoch-0 validation); ``scale_lr``
    is the learning rate of the quantizers' own parameters (the QCFS lambdas)."""

    epochs: int = 3
    lr: float = 2e-4
    scale_lr: float = 1e-2
    batch_size: int = 128
    spike_weight: float = 0.0
    schedule: LRSchedule = LRSchedule.CONSTANT
    max_shift: int = 0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", LRSchedule(self.schedule))
        for name in ("epochs", "batch_size", "max_shift", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.max_shift < 0:
            raise ValueError(
                f"need epochs >= 0, batch_size >= 1 and max_shift >= 0; got {self.epochs}, "
                f"{self.batch_size}, {self.max_shift}"
            )
        for name in ("lr", "scale_lr"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if not (self.spike_weight >= 0 and math.isfinite(self.spike_weight)):
            raise ValueError(f"spike_weight must be a finite number >= 0, got {self.spike_weight}")


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: mean training loss (None for epoch 0), validation accuracy and loss of the
    quantized model, its expected spikes per neuron, and the wall time of the epoch."""

    epoch: int
    train_loss: float | None
    val_accuracy: float
    val_loss: float
    val_spikes_per_neuron: float
    seconds: float

    def to_dict(self) -> dict[str, float | int | None]:
        return dict(vars(self))


@dataclass(frozen=True)
class TrainOutcome:
    """Every epoch's record, the epoch whose weights were kept and whether Ctrl-C stopped it."""

    history: tuple[EpochRecord, ...]
    best_epoch: int
    interrupted: bool

    @property
    def best(self) -> EpochRecord:
        return next(r for r in self.history if r.epoch == self.best_epoch)


Callback = Callable[[EpochRecord], None]


def _expected_spikes(quantizers: Sequence[nn.Module], n_neurons: int) -> torch.Tensor:
    return sum(q.levels for q in quantizers) / n_neurons


def _loss(
    logits: torch.Tensor, y: torch.Tensor, spikes: torch.Tensor, weight: float
) -> torch.Tensor:
    loss = F.cross_entropy(logits, y)
    return loss + weight * spikes.mean() if weight > 0 else loss


@torch.no_grad()
def validate(
    module: nn.Module, quantizers: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
    code: Coder, n_neurons: int, config: TrainConfig, batch_size: int = 1000,
) -> tuple[float, float, float]:
    """(accuracy, loss, expected spikes per neuron) of the quantized model in eval mode."""
    module.eval()
    correct, loss, spikes = 0, 0.0, 0.0
    for start in range(0, len(x), batch_size):
        xb = code(x[start : start + batch_size]).to(config.device)
        yb = y[start : start + batch_size].to(config.device)
        logits = module(xb)
        s = _expected_spikes(quantizers, n_neurons)
        loss += float(_loss(logits, yb, s, config.spike_weight)) * len(yb)
        spikes += float(s.sum())
        correct += int((logits.argmax(1) == yb).sum())
    return correct / len(x), loss / len(x), spikes / len(x)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), disable=not enabled,
    )


def _better(a: EpochRecord, b: EpochRecord) -> bool:
    return (a.val_accuracy, -a.val_loss) > (b.val_accuracy, -b.val_loss)


def train(
    module: nn.Module,
    quantizers: Sequence[nn.Module],
    train_data: tuple[torch.Tensor, torch.Tensor],
    val_data: tuple[torch.Tensor, torch.Tensor],
    code: Coder,
    n_neurons: int,
    config: TrainConfig,
    *,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
) -> TrainOutcome:
    """Train ``module`` in place (its quantizers among its submodules), leave it on the CPU
    holding the best checkpoint, and return the history. A ``KeyboardInterrupt`` (Ctrl-C, or
    raised by a callback after an epoch) stops training and keeps the best epoch so far."""
    x_train, y_train = train_data
    x_val, y_val = val_data
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    module.to(config.device)
    scales = {id(p) for q in quantizers for p in q.parameters()}
    opt = torch.optim.Adam([
        {"params": [p for p in module.parameters() if id(p) not in scales]},
        {"params": [p for p in module.parameters() if id(p) in scales], "lr": config.scale_lr},
    ], lr=config.lr)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    total = max(1, config.epochs * steps_per_epoch)
    cosine = config.schedule is LRSchedule.COSINE
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * t / total)) if cosine else 1.0
    )

    def record(epoch: int, train_loss: float | None, seconds: float) -> EpochRecord:
        acc, loss, spikes = validate(module, quantizers, x_val, y_val, code, n_neurons, config)
        return EpochRecord(epoch, train_loss, acc, loss, spikes, seconds)

    history = [record(0, None, 0.0)]
    best = copy.deepcopy(module.state_dict())
    best_record = history[0]
    interrupted = False
    try:
        with _progress(progress) as bar:
            for epoch in range(1, config.epochs + 1):
                start = time.perf_counter()
                task = bar.add_task(f"epoch {epoch}/{config.epochs}", total=steps_per_epoch,
                                    status="")
                module.train()
                order = torch.randperm(len(x_train), generator=generator)
                loss_sum, seen = 0.0, 0
                for first in range(0, len(order), config.batch_size):
                    idx = order[first : first + config.batch_size]
                    xb = code(random_shift(x_train[idx], config.max_shift, generator))
                    yb = y_train[idx].to(config.device)
                    logits = module(xb.to(config.device))
                    spikes = _expected_spikes(quantizers, n_neurons)
                    loss = _loss(logits, yb, spikes, config.spike_weight)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    loss_sum += float(loss.detach()) * len(idx)
                    seen += len(idx)
                    bar.update(task, advance=1, status=f"loss {loss_sum / seen:.4f}")
                rec = record(epoch, loss_sum / max(seen, 1), time.perf_counter() - start)
                history.append(rec)
                bar.update(task, status=f"loss {rec.train_loss:.4f}  val acc "
                                        f"{rec.val_accuracy:.4f}")
                if best_record.epoch == 0 or _better(rec, best_record):
                    best, best_record = copy.deepcopy(module.state_dict()), rec
                for callback in callbacks:
                    callback(rec)
    except KeyboardInterrupt:
        interrupted = True
    module.load_state_dict(best)
    module.to("cpu").eval()
    return TrainOutcome(tuple(history), best_record.epoch, interrupted)

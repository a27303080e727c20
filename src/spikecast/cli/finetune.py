"""The ``finetune`` command; :func:`register` adds it to the main CLI."""

from __future__ import annotations

import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console
from rich.table import Table

from spikecast.finetune.quantizers import Quantizer
from spikecast.zoo.train import LRSchedule

console = Console(width=None if sys.stdout.isatty() else 110)
INTERRUPTED_EXIT = 130


def _model_dataset(model: str) -> str:
    """The dataset a pretrained name or a ``.safetensors`` sidecar names."""
    from spikecast.io.annfile import load_model
    from spikecast.zoo.pretrained import PRETRAINED, load_pretrained

    if model in PRETRAINED:
        return str(load_pretrained(model)[1]["dataset"])
    if Path(model).suffix.lower() == ".safetensors":
        return str(load_model(model)[1]["dataset"])
    raise ValueError(f"{model}: the file does not name its dataset; pass --dataset")


def _command(ctx: typer.Context) -> str:
    """The command line with every setting spelled out (what reproduces the run)."""
    words = ["spikecast", str(ctx.info_name)]
    for p in ctx.command.params:
        value = ctx.params.get(p.name)
        if value is None:
            continue
        if p.param_type_name == "argument":
            words.append(str(value))
        elif getattr(p, "is_flag", False):
            words.append(p.opts[0] if value else p.secondary_opts[0])
        else:
            for v in value if isinstance(value, (list, tuple)) else [value]:
                words += [p.opts[0], str(v.value if isinstance(v, Enum) else v)]
    return shlex.join(words)


def _history_table(outcome: Any) -> Table:
    table = Table(title="fine-tuning (validation split of the training data)")
    for column in ("epoch", "train loss", "val accuracy", "val spikes/neuron", "seconds"):
        table.add_column(column, justify="right")
    for r in outcome.history:
        mark = " *" if r.epoch == outcome.best_epoch else ""
        table.add_row(
            f"{r.epoch}{mark}", "-" if r.train_loss is None else f"{r.train_loss:.4f}",
            f"{100 * r.val_accuracy:.2f}%", f"{r.val_spikes_per_neuron:.3f}", f"{r.seconds:.1f}",
        )
    return table


def finetune_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(
        help="A pretrained name (mnist-cnn, ...), a .safetensors (+ sidecar), .onnx or .nir "
             "file.")],
    scheme: Annotated[str, typer.Option(help="sigma-delta or rate.")],
    out: Annotated[Path, typer.Option(help="Fine-tuned model to write (.safetensors + sidecar).")],
    epochs: Annotated[int, typer.Option(min=0, help="Training epochs.")] = 3,
    dataset: Annotated[str | None, typer.Option(
        help="wine, digits, mnist, idx:FOLDER or a .npz file (default: the model's own).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Scheme parameter KEY=VALUE (repeatable): rate steps=T (the "
        "target T), sigma-delta theta=...")] = None,
    quantizer: Annotated[Quantizer | None, typer.Option(
        help="sigma-delta: hysteresis (default), floor or relu; rate: qcfs.")] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate of the weights.")] = 2e-4,
    lambda_lr: Annotated[float, typer.Option(
        help="Learning rate of the QCFS lambdas (rate).")] = 1e-2,
    batch_size: Annotated[int, typer.Option(min=1, help="Mini-batch size.")] = 128,
    spike_weight: Annotated[float | None, typer.Option(
        help="Penalty on expected spikes per neuron (default 0.05 sigma-delta, 0 rate).")] = None,
    schedule: Annotated[LRSchedule, typer.Option(help="Learning-rate schedule.")] = (
        LRSchedule.CONSTANT
    ),
    max_shift: Annotated[int, typer.Option(min=0, help="Random shift augmentation, pixels.")] = 0,
    validation: Annotated[float, typer.Option(
        help="Validation split: a fraction (< 1) or a count of the training samples.")] = 0.1,
    train_limit: Annotated[int | None, typer.Option(
        min=1, help="Train on the first N of the remaining training samples.")] = None,
    calib_samples: Annotated[int, typer.Option(
        min=1, help="Training samples the scheme calibrates its levels on.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the split, shuffling and quantizers.")] = 0,
    device: Annotated[str, typer.Option(help="Torch device for training.")] = "cpu",
    threads: Annotated[int | None, typer.Option(min=1, help="Torch CPU threads.")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Folder with the MNIST IDX files (else $SPIKECAST_DATA, then the cache).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Fine-tune MODEL for a scheme's neurons on a dataset, keep the best validation epoch
    (also on Ctrl-C) and write OUT; `spikecast evaluate OUT` / `convert OUT` then use the
    recorded scheme, parameters and dataset."""
    from spikecast.cli.main import parse_params
    from spikecast.finetune.api import finetune

    if threads is not None:
        torch.set_num_threads(threads)
    command = _command(ctx)
    try:
        if out.suffix != ".safetensors":
            raise ValueError(f"--out {out}: model files must end in .safetensors")
        tuned = finetune(
            model, scheme, dataset or _model_dataset(model), epochs,
            params=parse_params(param), quantizer=quantizer, lr=lr, lambda_lr=lambda_lr,
            batch_size=batch_size,
            spike_weight=spike_weight, schedule=schedule, max_shift=max_shift,
            validation=int(validation) if validation >= 1 else validation,
            train_limit=train_limit, calib_samples=calib_samples, seed=seed, device=device,
            data_dir=data_dir, progress=not quiet,
        )
        tuned.save(out, command)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    console.print(_history_table(tuned.outcome))
    best = tuned.outcome.best
    console.print(
        f"kept epoch {best.epoch} (val accuracy {100 * best.val_accuracy:.2f}%), tuned for "
        f"{tuned.scheme} {tuned.params} -> {out}"
    )
    if tuned.outcome.interrupted:
        console.print("[yellow]interrupted[/yellow]: saved the best epoch so far")
        raise typer.Exit(INTERRUPTED_EXIT)


def register(app: typer.Typer) -> None:
    """Add ``finetune`` to ``app``."""
    app.command("finetune")(finetune_command)

"""``spikecast.finetune``: conversion-aware fine-tuning of any capturable model on any dataset.

    tuned = spikecast.finetune("mnist-cnn", "rate", "mnist", epochs=3, params={"steps": 8})
    tuned.save("cnn-rate8.safetensors")        # graph + sidecar: dataset, base model, scheme
    snn = tuned.convert()                       # the scheme and parameters it was tuned for

The model (a PyTorch module, a pretrained zoo name, a ``.safetensors``/``.onnx``/``.nir``
file or a :class:`Network`) is captured and trained as a
:class:`~spikecast.finetune.to_module.NetworkModule` (BatchNorm folded, Dropout dropped),
with the scheme's quantizers at the levels the recipe's own ``calibrate`` gives
(:mod:`spikecast.finetune.targets`). A validation split is drawn from the training data
(the test set is never read) and the best validation epoch is kept, also on Ctrl-C.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikecast.datasets.loaders import Dataset, load_dataset
from spikecast.finetune.quantizers import Quantizer
from spikecast.finetune.targets import check_quantizer, finish, prepare
from spikecast.finetune.to_module import NetworkModule, to_module
from spikecast.finetune.trainer import Callback, TrainConfig, TrainOutcome, train
from spikecast.ir.graph import Network
from spikecast.measure.counts import neuron_count
from spikecast.schemes.base import Recipe, SpikingModel
from spikecast.schemes.registry import get_recipe
from spikecast.zoo.train import LRSchedule

ModelSource = nn.Module | Network | str | os.PathLike
DEFAULT_SPIKE_WEIGHT = {"sigma-delta": 0.05, "rate": 0.0}


@dataclass(frozen=True, eq=False)
class FinetunedModel:
    """A fine-tuned network, the scheme and recipe parameters it was tuned for, the
    training history and its provenance (``info``: base model, dataset, split, settings)."""

    network: Network
    scheme: str
    params: dict[str, Any]
    outcome: TrainOutcome
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def recipe(self) -> Recipe:
        return get_recipe(self.scheme, **self.params)

    def convert(self, calib_x: torch.Tensor | None = None) -> SpikingModel:
        """The spiking model with the tuned scheme settings (their levels need no data)."""
        recipe = self.recipe
        return recipe.build(self.network, recipe.calibrate(self.network, calib_x))

    def module(self) -> NetworkModule:
        """A trainable module of the tuned network (ReLU activations)."""
        return to_module(self.network)

    def sidecar(self, command: str | None = None) -> dict[str, Any]:
        """What the model file's JSON sidecar records besides the layer graph."""
        return self.info | {
            "scheme": {"name": self.scheme, "params": _jsonable(self.params)},
            "command": command,
            "finetune": self.info["finetune"] | {
                "history": [r.to_dict() for r in self.outcome.history],
                "best_epoch": self.outcome.best_epoch,
                "interrupted": self.outcome.interrupted,
            },
            "val_accuracy": self.outcome.best.val_accuracy,
        }

    def save(self, path: str | os.PathLike, command: str | None = None) -> Path:
        """Write the network (``.safetensors``) and its sidecar (:meth:`sidecar`)."""
        from spikecast.io.annfile import save_network

        return save_network(self.network, path, metadata=self.sidecar(command))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return getattr(value, "value", value)


def dataset_spec(spec: str) -> str:
    """``spec`` with the path of an ``idx:``/``npz:``/``.npz`` dataset made absolute, so a
    sidecar names the same data from any working directory."""
    for prefix in ("idx:", "npz:"):
        if spec.startswith(prefix):
            return prefix + str(Path(spec[len(prefix):]).resolve())
    return str(Path(spec).resolve()) if spec.endswith(".npz") else spec


def _network(model: ModelSource, shape: tuple[int, ...]) -> tuple[Network, str]:
    """The captured network of ``model`` and how the sidecar names it."""
    from spikecast.api import as_network
    from spikecast.zoo.pretrained import PRETRAINED, load_pretrained

    if isinstance(model, str) and model in PRETRAINED:
        return as_network(load_pretrained(model)[0], shape), model
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.suffix:
            raise ValueError(f"model {str(model)!r} is neither a pretrained name "
                             f"({', '.join(PRETRAINED)}) nor a model file")
        return as_network(path, shape), str(path.resolve())
    if isinstance(model, Network):
        return model, "Network"
    return as_network(model, shape), f"{type(model).__name__} (torch.nn.Module)"


def split_indices(n: int, validation: float | int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, validation) indices of ``n`` training samples: a seeded permutation, the
    first ``validation`` of it (a count, or a fraction in (0, 1)) for validation."""
    if isinstance(validation, bool) or not (
        (isinstance(validation, int) and 1 <= validation < n)
        or (isinstance(validation, float) and 0.0 < validation < 1.0)
    ):
        raise ValueError(f"validation must be a fraction in (0, 1) or a sample count in [1, {n}) "
                         f"of the {n} training samples; got {validation!r}")
    n_val = validation if isinstance(validation, int) else min(n - 1, max(1, round(validation * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:], order[:n_val]


def finetune(
    model: ModelSource,
    scheme: str | Recipe,
    data: str | Dataset,
    epochs: int = 3,
    *,
    params: Mapping[str, Any] | None = None,
    quantizer: Quantizer | str | None = None,
    lr: float = 2e-4,
    lambda_lr: float = 1e-2,
    batch_size: int = 128,
    spike_weight: float | None = None,
    schedule: LRSchedule | str = LRSchedule.CONSTANT,
    max_shift: int = 0,
    validation: float | int = 0.1,
    train_limit: int | None = None,
    calib_samples: int = 2000,
    seed: int = 0,
    device: str = "cpu",
    data_dir: str | os.PathLike | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
) -> FinetunedModel:
    """Fine-tune ``model`` for ``scheme`` (a name with ``params``, or a recipe) on ``data``
    (a dataset name as :func:`~spikecast.datasets.loaders.load_dataset` reads it, or a
    :class:`Dataset`); the user's model is never modified.

    ``quantizer``: sigma-delta 'hysteresis' (default), 'floor' or 'relu'; rate 'qcfs'.
    ``lr`` is Adam's learning rate of the weights, ``lambda_lr`` that of the QCFS lambdas;
    ``spike_weight`` (the penalty on expected spikes per neuron) defaults to 0.05
    (sigma-delta) / 0 (rate). ``validation``: fraction or count of the
    training samples held out; ``train_limit``: train on the first N of the rest;
    ``calib_samples``: training samples the recipe calibrates on. ``callbacks`` are called
    with each epoch's :class:`~spikecast.finetune.trainer.EpochRecord`.
    """
    if isinstance(scheme, Recipe):
        if params:
            raise ValueError("pass parameters either in the recipe or in params, not both")
        recipe = scheme
    else:
        recipe = get_recipe(scheme, **dict(params or {}))
    q = check_quantizer(recipe.name, quantizer)
    if isinstance(data, Dataset):
        dataset, spec = data, data.name
    else:
        dataset, spec = load_dataset(data, data_dir, seed=seed), dataset_spec(data)
    net, base = _network(model, dataset.sample_shape)
    if net.input_shape != dataset.sample_shape:
        raise ValueError(f"the model takes samples of shape {net.input_shape} but dataset "
                         f"{dataset.name!r} has {dataset.sample_shape}")
    config = TrainConfig(
        epochs=epochs, lr=lr, scale_lr=lambda_lr,
        batch_size=batch_size,
        spike_weight=DEFAULT_SPIKE_WEIGHT[recipe.name] if spike_weight is None else spike_weight,
        schedule=schedule, max_shift=max_shift, seed=seed, device=device,
    )
    train_idx, val_idx = split_indices(len(dataset.x_train), validation, seed)
    if train_limit is not None:
        if train_limit < 1:
            raise ValueError(f"train_limit must be >= 1, got {train_limit}")
        train_idx = train_idx[:train_limit]
    x_train, y_train = dataset.x_train[train_idx], dataset.y_train[train_idx]
    calib_x = x_train[:calib_samples]
    prepared = prepare(recipe, net, calib_x, q)
    outcome = train(
        prepared.module, prepared.quantizers, (x_train, y_train),
        (dataset.x_train[val_idx], dataset.y_train[val_idx]), prepared.code,
        neuron_count(net), config, callbacks=callbacks, progress=progress,
    )
    tuned, tuned_params, levels = finish(recipe, prepared, calib_x)
    info = {
        "dataset": spec,
        "seed": seed,
        "base_model": base,
        "preprocessing": dataset.preprocessing,
        "finetune": asdict(config) | {
            "schedule": config.schedule.value, "quantizer": q.value,
            "train_samples": len(train_idx), "val_samples": len(val_idx),
            "calib_samples": len(calib_x), **_jsonable(levels),
        },
    }
    return FinetunedModel(tuned, recipe.name, tuned_params, outcome, info)

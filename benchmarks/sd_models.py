"""Models and datasets of ``bench_sigma_delta_models.py``: the pretrained mnist-cnn and
mnist-fc, and briefly trained mnist-cnn, mnist-fc, mnist-vgg and mnist-resnet (one thread,
a training subset), on MNIST and on shifted MNIST (every image translated by its own
random offset of up to ``SHIFT`` pixels, train and test alike). Trained weights are cached
in ``--cache`` as .safetensors with sidecars."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from spikecast.datasets.loaders import Dataset, load_dataset
from spikecast.io.annfile import load_model, save_model
from spikecast.zoo.pretrained import load_pretrained
from spikecast.zoo.train import evaluate_ann, random_shift, train_model

SHIFT = 3
TRAIN_SUBSET = 8000
EPOCHS = {"mnist-fc": 3, "mnist-cnn": 3, "mnist-vgg": 3, "mnist-resnet": 3}
PRETRAINED = ("mnist-cnn", "mnist-fc")


@dataclass(frozen=True, eq=False)
class Case:
    """One model on one dataset: the trained module and its data."""

    arch: str
    dataset: str
    model: nn.Module
    data: Dataset
    origin: str


def datasets(data_dir: str | None) -> dict[str, Dataset]:
    """MNIST and shifted MNIST (seeded offsets, the same for every run)."""
    mnist = load_dataset("mnist", data_dir or os.environ.get("SPIKECAST_DATA"))
    g = torch.Generator().manual_seed(11)
    shifted = Dataset(
        "mnist-shifted", random_shift(mnist.x_train, SHIFT, g), mnist.y_train,
        random_shift(mnist.x_test, SHIFT, g), mnist.y_test, mnist.n_classes,
        f"{mnist.preprocessing}; each image shifted by up to {SHIFT} px",
    )
    return {"mnist": mnist, "mnist-shifted": shifted}


def _subset(data: Dataset, n: int) -> Dataset:
    return Dataset(data.name, data.x_train[:n], data.y_train[:n], data.x_test[:1],
                   data.y_test[:1], data.n_classes, data.preprocessing)


def _trained(arch: str, data: Dataset, cache: Path) -> nn.Module:
    path = cache / f"{arch}@{data.name}.safetensors"
    if path.is_file():
        return load_model(path)[0]
    trained = train_model(arch, _subset(data, TRAIN_SUBSET), epochs=EPOCHS[arch], lr=2e-3,
                          batch_size=64, progress=False, threads=1)
    save_model(trained, path, arch=arch, metadata={"trained_on": f"{TRAIN_SUBSET} samples"})
    return trained.model


def cases(data_dir: str | None, cache: Path) -> list[Case]:
    """Every (architecture, dataset) pair of the benchmark, in table order."""
    out = []
    for name, data in datasets(data_dir).items():
        for arch in ("mnist-cnn", "mnist-fc", "mnist-vgg", "mnist-resnet"):
            if name == "mnist" and arch in PRETRAINED:
                out.append(Case(arch, name, load_pretrained(arch)[0], data, "pretrained"))
            else:
                model = _trained(arch, data, cache)
                out.append(Case(arch, name, model, data, f"trained {EPOCHS[arch]} epochs on "
                                                         f"{TRAIN_SUBSET} samples"))
    return out


def ann_accuracy(case: Case, n_test: int) -> float:
    return evaluate_ann(case.model, case.data.x_test[:n_test], case.data.y_test[:n_test])

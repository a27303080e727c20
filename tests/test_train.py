"""Trainer: determinism, convergence on wine, argument validation, shift augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spikecast.datasets.loaders import Dataset, load_dataset
from spikecast.zoo.train import LRSchedule, TrainedModel, evaluate_ann, random_shift, train_model


@pytest.fixture(scope="module")
def wine() -> Dataset:
    return load_dataset("wine")


def _weights(trained: TrainedModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trained.model.state_dict().items()}


def test_same_seed_gives_bitwise_identical_weights(wine: Dataset) -> None:
    runs = [
        train_model("wine-fc", wine, epochs=3, seed=7, progress=False, threads=1) for _ in range(2)
    ]
    first, second = (_weights(r) for r in runs)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_different_seed_gives_different_weights(wine: Dataset) -> None:
    a = _weights(train_model("wine-fc", wine, epochs=3, seed=0, progress=False, threads=1))
    b = _weights(train_model("wine-fc", wine, epochs=3, seed=1, progress=False, threads=1))
    assert any(not torch.equal(a[name], b[name]) for name in a)


def test_wine_trains_above_90_percent_and_reports_metadata(wine: Dataset) -> None:
    trained = train_model(
        "wine-fc", wine, epochs=150, seed=0, lr=1e-2, schedule="cosine", progress=False, threads=1
    )
    assert trained.train_accuracy > 0.9
    # Wine's test set is its training set (SSNN paper protocol), so both figures agree.
    assert trained.test_accuracy == trained.train_accuracy
    assert not trained.model.training
    assert (trained.arch, trained.dataset, trained.seed, trained.epochs) == (
        "wine-fc",
        "wine",
        0,
        150,
    )
    assert trained.input_shape == (13,)
    assert trained.hyperparameters["schedule"] == "cosine"
    assert trained.hyperparameters["lr"] == 1e-2
    assert trained.hyperparameters["optimizer"] == "adam"


def test_training_restores_global_torch_settings(wine: Dataset) -> None:
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    train_model("wine-fc", wine, epochs=1, progress=False, threads=1)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"epochs": 1, "lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
        ({"epochs": 1, "lr": float("nan")}, "lr must be a finite number > 0"),
        ({"epochs": 1, "batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"epochs": 1, "weight_decay": -1.0}, "weight_decay must be a finite number >= 0"),
        ({"epochs": 1, "threads": 0}, "threads must be >= 1 or None, got 0"),
        ({"epochs": 1, "max_shift": -1}, "max_shift must be >= 0, got -1"),
        (
            {"epochs": 1, "schedule": "step"},
            "invalid LRSchedule 'step'; allowed: 'constant', 'cosine'",
        ),
        (
            {"epochs": 1, "max_shift": 2},
            "max_shift needs image inputs (C, H, W); 'wine-fc' takes (13,)",
        ),
    ],
)
def test_bad_arguments_raise_specific_value_error(
    wine: Dataset, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_model("wine-fc", wine, progress=False, **{"threads": 1, **kwargs})


def test_dataset_shape_mismatch_names_both_shapes(wine: Dataset) -> None:
    with pytest.raises(ValueError) as info:
        train_model("mnist-fc", wine, epochs=1, progress=False, threads=1)
    assert "(13,)" in str(info.value) and "(1, 28, 28)" in str(info.value)


def test_unknown_architecture_lists_known_ones(wine: Dataset) -> None:
    with pytest.raises(ValueError, match="unknown architecture 'resnet'; known: wine-fc"):
        train_model("resnet", wine, epochs=1, progress=False, threads=1)


def test_evaluate_ann_golden_accuracy_and_mode_restored() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    model.train()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [5.0, 4.0]])
    y = torch.tensor([0, 1, 1, 1, 1])
    # argmax picks class 0, 1, 0, 1, 0 -> 3 of 5 correct, whatever the batching.
    assert evaluate_ann(model, x, y, batch_size=2) == pytest.approx(0.6)
    assert evaluate_ann(model, x, y) == pytest.approx(0.6)
    assert model.training


def test_evaluate_ann_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="x has 3 samples and y 2"):
        evaluate_ann(nn.Identity(), torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64))


def _numpy_shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[c, i, j] = image[c, i - dy, j - dx] inside the image, else 0."""
    out = np.zeros_like(image)
    _, h, w = image.shape
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[:, i, j] = image[:, i - dy, j - dx]
    return out


def test_random_shift_matches_a_numpy_shift_within_range() -> None:
    x = torch.arange(2 * 2 * 5 * 6, dtype=torch.float32).reshape(2, 2, 5, 6) + 1.0
    shifted = random_shift(x, 2, torch.Generator().manual_seed(3)).numpy()
    candidates = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    for n in range(len(x)):
        matches = [
            s for s in candidates if np.array_equal(shifted[n], _numpy_shift(x[n].numpy(), *s))
        ]
        assert len(matches) == 1


def test_random_shift_golden_single_pixel() -> None:
    x = torch.zeros(200, 1, 5, 5)
    x[:, 0, 2, 2] = 1.0
    shifted = random_shift(x, 1, torch.Generator().manual_seed(0))
    # One lit pixel moves by at most one in each direction and never leaves a 5x5 image.
    assert torch.equal(shifted.sum(dim=(1, 2, 3)), torch.ones(200))
    assert shifted[:, 0, 1:4, 1:4].sum() == 200
    # All nine offsets occur among 200 draws.
    positions = {divmod(i, 5) for i in shifted[:, 0].flatten(1).argmax(1).tolist()}
    assert len(positions) == 9


def test_random_shift_zero_is_identity_and_rejects_flat_input() -> None:
    x = torch.rand(3, 1, 4, 4)
    assert random_shift(x, 0, torch.Generator()) is x
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got \(3, 16\)"):
        random_shift(x.flatten(1), 1, torch.Generator())


def test_schedule_enum_parses_values() -> None:
    assert LRSchedule("cosine") is LRSchedule.COSINE
    assert LRSchedule(" Cosine ") is LRSchedule.COSINE
    assert LRSchedule(LRSchedule.CONSTANT) is LRSchedule.CONSTANT

"""Quantization-aware training: the STE quantizers, the training loop contract, and the
hysteresis rates measured in the event-driven simulator."""

import json
import os
from pathlib import Path

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from spikecast.cli.sigma_delta import register
from spikecast.datasets.loaders import load_dataset
from spikecast.finetune.hysteresis import (
    FinetuneConfig,
    Quantizer,
    QuantReLU,
    finetune,
    measure_up_rates,
    quantized_copy,
)
from spikecast.schemes import convert, get_recipe
from spikecast.schemes.sigma_delta.recipe import PAPER_SETTINGS
from spikecast.zoo.pretrained import load_pretrained
from spikecast.zoo.train import evaluate_ann

MNIST_DIR = Path(
    os.environ.get("SPIKECAST_DATA") or Path(__file__).resolve().parents[2] / "shared/data/mnist"
)
# first 1000 test frames, theta 1.0: mnist-cnn 96.8%, floor fine-tuned 98.4%, mnist-cnn-sd 98.9%
SNN_FLOOR = 0.987
Z = [[-0.3, 0.4, 1.0, 2.75]]  # with theta 0.5: ReLU(z) / theta = 0, 0.8, 2, 5.5


def _forward(q: QuantReLU) -> tuple[list, list]:
    z = torch.tensor(Z, requires_grad=True)
    out = q(z)
    out.sum().backward()
    return out.tolist(), z.grad.tolist()


def test_floor_quantizer_forward_and_straight_through_gradient():
    q = QuantReLU(0.5, Quantizer.FLOOR)
    out, grad = _forward(q)
    assert out == [[0.0, 0.0, 1.0, 2.5]]  # 0.5 floor(relu(z) / 0.5)
    assert grad == [[0.0, 1.0, 1.0, 1.0]]  # ReLU's gradient
    assert q.levels.tolist() == pytest.approx([0.8 + 2.0 + 5.5])


def test_relu_mode_is_plain_relu():
    out, grad = _forward(QuantReLU(0.5, "relu"))
    assert out[0] == pytest.approx([0.0, 0.4, 1.0, 2.75])
    assert grad == [[0.0, 1.0, 1.0, 1.0]]


def test_hysteresis_quantizer_adds_one_level_only_off_the_grid():
    sure = QuantReLU(0.5, Quantizer.HYSTERESIS, up=1e6)  # P(up) = min(1, up frac) = 1 if frac > 0
    out, grad = _forward(sure)
    assert out == [[0.0, 0.5, 1.0, 3.0]]  # 0.8 -> 1 level, 2 stays (on the grid), 5.5 -> 6
    assert grad == [[0.0, 1.0, 1.0, 1.0]]
    assert _forward(QuantReLU(0.5, Quantizer.HYSTERESIS, up=0.0))[0] == [[0.0, 0.0, 1.0, 2.5]]
    assert _forward(sure.eval())[0] == [[0.0, 0.0, 1.0, 2.5]]  # eval mode: floor


def test_hysteresis_up_probability_is_up_times_frac():
    torch.manual_seed(0)
    q = QuantReLU(1.0, Quantizer.HYSTERESIS, up=0.5)
    out = q(torch.full((2, 100_000), 2.5))  # frac 0.5 -> P(3) = 0.25, else 2
    assert set(out.unique().tolist()) == {2.0, 3.0}
    assert float((out == 3.0).double().mean()) == pytest.approx(0.25, abs=0.005)


def test_quantizer_rejects_bad_parameters():
    with pytest.raises(ValueError, match="theta"):
        QuantReLU(0.0)
    with pytest.raises(ValueError, match="up rate"):
        QuantReLU(1.0, Quantizer.HYSTERESIS, up=-0.1)
    with pytest.raises(ValueError, match="Quantizer"):
        QuantReLU(1.0, "ceil")


def _toy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.rand(64, 4)
    return model, x, (x[:, 0] > 0.5).long()


@pytest.mark.parametrize("quantizer", list(Quantizer))
def test_finetune_returns_a_trained_copy_and_leaves_the_model_untouched(quantizer):
    model, x, y = _toy()
    before = [p.detach().clone() for p in model.parameters()]
    config = FinetuneConfig(theta=(0.25, 0.5), epochs=2, lr=1e-2, batch_size=16,
                            quantizer=quantizer, up=(0.3, 0.6), schedule="cosine")
    tuned = finetune(model, x, y, config, n_neurons=18)
    again = finetune(model, x, y, config, n_neurons=18)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert isinstance(tuned[1], nn.ReLU) and not tuned.training
    assert not torch.equal(tuned[0].weight, model[0].weight)
    assert all(torch.equal(a, b) for a, b in zip(tuned.parameters(), again.parameters(),
                                                 strict=True))  # seeded


def test_zero_epochs_return_an_unchanged_copy():
    model, x, y = _toy()
    tuned = finetune(model, x, y, FinetuneConfig(epochs=0), n_neurons=18)
    assert tuned is not model
    assert all(torch.equal(a, b) for a, b in zip(tuned.parameters(), model.parameters(),
                                                 strict=True))


def test_finetune_rejects_bad_configs():
    model, x, y = _toy()
    with pytest.raises(ValueError, match=r"nn\.ReLU"):
        finetune(nn.Linear(2, 2), torch.rand(4, 2), torch.zeros(4, dtype=torch.long),
                 FinetuneConfig(), n_neurons=2)
    with pytest.raises(ValueError, match="3 values of theta given for 2 ReLU layers"):
        finetune(model, x, y, FinetuneConfig(theta=(1.0, 1.0, 1.0)), n_neurons=18)
    with pytest.raises(ValueError, match="epochs >= 0"):
        FinetuneConfig(epochs=-1)
    with pytest.raises(ValueError, match="LRSchedule"):
        FinetuneConfig(schedule="step")


def test_measured_up_rate_counts_a_neuron_that_rose_then_fell():
    # hidden v: +1.5 from the bright pixel (one +1 spike), then -1.0 from the dim one: the
    # neuron stays at level 1 although floor(ReLU(0.5)) = 0 (up, frac 0.5). Without the dim
    # pixel it settles at 1.5 -> level 1 = floor (no up, frac 0.5).
    model = nn.Sequential(nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.5, -1.0]]))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        model[2].bias.zero_()
    snn = convert(model, get_recipe("sigma-delta", **PAPER_SETTINGS), torch.rand(4, 2))
    fell = torch.tensor([[0.9, 0.5]])
    stayed = torch.tensor([[0.9, 0.1]])
    assert measure_up_rates(snn, fell) == (pytest.approx(1 / 0.5),)
    assert measure_up_rates(snn, stayed) == (0.0,)
    assert measure_up_rates(snn, torch.cat([fell, stayed])) == (pytest.approx(1 / 1.0),)


@pytest.mark.slow
def test_reproduce_zero_epoch_hysteresis_finetune_matches_the_reference(tmp_path):
    app, reproduce_app = typer.Typer(), typer.Typer()
    app.add_typer(reproduce_app, name="reproduce")
    register(app, reproduce_app)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, [
        "reproduce", "sigma-delta-mnist", "--limit", "10", "--no-rate", "--theta", "1.0",
        "--finetune", "--finetune-epochs", "0", "--finetune-quantizer", "hysteresis",
        "--data-dir", str(MNIST_DIR),
        "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["finetune"]["quantizer"] == "hysteresis"
    assert len(report["finetune"]["up"]) == 3 and all(u > 0 for u in report["finetune"]["up"])
    ref, tuned = report["rows"][1], report["rows"][3]  # no step: the same network
    assert (ref["model"], tuned["model"]) == ("mnist-cnn", "finetuned")
    assert report["model"] == "mnist-cnn"
    assert ref["accuracy"] == tuned["accuracy"]
    assert ref["spikes_per_neuron"] == tuned["spikes_per_neuron"]


def test_shipped_sigma_delta_model_is_recorded_and_recomputed():
    model, info = load_pretrained("mnist-cnn-sd")
    assert info["architecture"] == "mnist-cnn" and info["thresholds"] == [1.0] * 4
    assert "scripts/train_sigma_delta.py" in info["command"]
    assert "--init mnist-cnn --epochs 3 --quantizer hysteresis" in info["command"]
    data = load_dataset("mnist", MNIST_DIR)
    x, y = data.x_test[:1000], data.y_test[:1000]
    assert evaluate_ann(model, x, y) >= 0.98  # oracle: recomputed, not the sidecar's claim
    snn = convert(model, get_recipe("sigma-delta", **PAPER_SETTINGS), x[:10])
    result = snn.evaluate(x, y)
    assert result.accuracy >= SNN_FLOOR and result.spikes_per_neuron <= 0.25


class _DeclaredOutOfOrder(nn.Module):
    """act2 is registered before act1 but runs after it."""

    def __init__(self, shared: bool = False) -> None:
        super().__init__()
        self.act2 = nn.ReLU()
        self.fc1, self.fc2, self.out = nn.Linear(4, 3), nn.Linear(3, 3), nn.Linear(3, 2)
        self.act1 = self.act2 if shared else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act2(self.fc2(self.act1(self.fc1(x)))))


def test_per_layer_settings_follow_the_call_order() -> None:
    config = FinetuneConfig(theta=(0.5, 0.25), quantizer="floor")
    qmodel, quantizers = quantized_copy(_DeclaredOutOfOrder(), config)
    assert qmodel.act1.theta == 0.5 and qmodel.act2.theta == 0.25
    assert quantizers == [qmodel.act1, qmodel.act2]


def test_shared_or_functional_relus_are_refused() -> None:
    with pytest.raises(ValueError, match="'act2' is called more than once"):
        quantized_copy(_DeclaredOutOfOrder(shared=True), FinetuneConfig())

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.relu(self.fc(x))

    with pytest.raises(ValueError, match="functional ReLU at node 'relu'"):
        quantized_copy(Functional(), FinetuneConfig())


def test_cosine_schedule_with_no_step_returns_the_model_unchanged() -> None:
    model = _DeclaredOutOfOrder()
    config = FinetuneConfig(epochs=0, schedule="cosine", quantizer="floor")
    tuned = finetune(model, torch.rand(0, 4), torch.zeros(0, dtype=torch.long), config, 6)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  tuned.state_dict().values(), strict=True))

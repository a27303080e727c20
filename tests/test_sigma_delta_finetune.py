"""Quantization-aware fine-tuning: the STE floor quantizer and the training loop contract."""

import pytest
import torch
from torch import nn

from spikecast.sigma_delta.finetune import FinetuneConfig, FloorQuantReLU, finetune


def test_floor_quantizer_forward_and_straight_through_gradient():
    z = torch.tensor([[-0.3, 0.4, 1.2, 2.75]], requires_grad=True)
    q = FloorQuantReLU(0.5)
    out = q(z)
    assert out.tolist() == [[0.0, 0.0, 1.0, 2.5]]  # 0.5 floor(relu(z) / 0.5)
    assert q.levels.tolist() == pytest.approx([(0.4 + 1.2 + 2.75) / 0.5])
    out.sum().backward()
    assert z.grad.tolist() == [[0.0, 1.0, 1.0, 1.0]]  # ReLU's gradient


def test_finetune_returns_a_trained_copy_and_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.rand(64, 4)
    y = (x[:, 0] > 0.5).long()
    config = FinetuneConfig(theta=0.25, epochs=2, lr=1e-2, batch_size=16)
    tuned = finetune(model, x, y, config, n_neurons=10)
    again = finetune(model, x, y, config, n_neurons=10)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert isinstance(tuned[1], nn.ReLU) and not tuned.training
    assert not torch.equal(tuned[0].weight, model[0].weight)
    assert all(torch.equal(a, b) for a, b in zip(tuned.parameters(), again.parameters(),
                                                 strict=True))  # seeded


def test_finetune_needs_relu_modules():
    with pytest.raises(ValueError, match=r"nn\.ReLU"):
        finetune(nn.Linear(2, 2), torch.rand(4, 2), torch.zeros(4, dtype=torch.long),
                 FinetuneConfig(), n_neurons=2)

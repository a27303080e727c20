"""Per-layer fidelity: exact outputs give correlation 1 and MAE 0, hand-computed offsets,
numpy oracles for the correlation, and the ANN activation each stage is compared with."""

import numpy as np
import pytest
import torch

from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.measure.fidelity import (
    ann_stage_activations,
    layer_fidelity,
    pearson,
)


def _net() -> Network:
    w1 = torch.tensor([[1.0, -1.0], [0.5, 0.5], [-1.0, 0.0]])
    w2 = torch.tensor([[1.0, 2.0, -1.0]])
    return Network((Linear(w1), ReLU(), Linear(w2)), ("fc1", "relu", "fc2"), (2,))


X = torch.tensor([[1.0, 0.0], [0.2, 0.8], [0.5, 0.5]])


def test_stage_activations_are_post_relu_and_raw_output() -> None:
    hidden, out = ann_stage_activations(_net(), X)
    torch.testing.assert_close(hidden, torch.relu(X @ _net().layers[0].weight.T))
    torch.testing.assert_close(out, hidden @ _net().layers[2].weight.T)


def test_exact_outputs_have_correlation_one_and_zero_mae() -> None:
    acts = ann_stage_activations(_net(), X)
    for layer in layer_fidelity(_net(), X, acts):
        assert layer.correlation == pytest.approx(1.0)
        assert layer.mae == 0.0


def test_offset_golden() -> None:
    acts = ann_stage_activations(_net(), X)
    shifted = [a + 0.1 for a in acts]
    fid = layer_fidelity(_net(), X, shifted)
    # hidden activations [[1, .5, 0], [0, .5, 0], [0, .5, 0]]: mean |a| = 2.5 / 9
    assert fid[0].mae == pytest.approx(0.1)
    assert fid[0].relative_mae == pytest.approx(0.1 / (2.5 / 9))
    assert fid[0].correlation == pytest.approx(1.0)
    assert [f.name for f in fid] == ["fc1", "fc2"]


def test_pearson_matches_numpy() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, generator=g), torch.randn(50, generator=g)
    assert pearson(a, b) == pytest.approx(float(np.corrcoef(a.numpy(), b.numpy())[0, 1]))
    assert pearson(torch.ones(4), a[:4]) is None


def test_unscaled_outputs_only_get_a_correlation() -> None:
    acts = ann_stage_activations(_net(), X)
    fid = layer_fidelity(_net(), X, [3 * a for a in acts], scaled=False)
    assert fid[0].correlation == pytest.approx(1.0)
    assert fid[0].mae is None and fid[0].relative_mae is None


def test_errors() -> None:
    acts = ann_stage_activations(_net(), X)
    with pytest.raises(ValueError, match="1 SNN layer outputs for 2 populations"):
        layer_fidelity(_net(), X, acts[:1])
    with pytest.raises(ValueError, match="layer 'fc2': SNN output has 6 values, the ANN 3"):
        layer_fidelity(_net(), X, [acts[0], torch.zeros(3, 2)])

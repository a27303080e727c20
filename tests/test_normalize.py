"""Normalization: hand-computed scales, argmax invariance, percentile semantics."""

import pytest
import torch

from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.ir.normalize import data_based, model_based
from spikecast.zoo.models import ARCHITECTURES


def _two_layer() -> Network:
    w1 = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.5, -1.0]])
    w2 = torch.tensor([[2.0, -1.0], [-4.0, 1.0]])
    return Network((Linear(w1), ReLU(), Linear(w2)), ("l1", "r", "l2"), (3,))


def test_model_based_hand_computed() -> None:
    norm = model_based(_two_layer())
    # layer 1: positive sums (4, 1) -> lambda1 = 4; layer 2: (2, 1) * 4 -> lambda2 = 8
    assert norm.scales == (4.0, 4.0, 8.0)
    torch.testing.assert_close(norm.network.layers[0].weight, _two_layer().layers[0].weight / 4)
    torch.testing.assert_close(norm.network.layers[2].weight, _two_layer().layers[2].weight / 2)
    # every neuron's positive input sum is now at most 1
    for layer in (norm.network.layers[0], norm.network.layers[2]):
        assert float(layer.weight.clamp(min=0).sum(1).max()) == pytest.approx(1.0)


def test_model_based_bound_holds_for_any_input_in_unit_box() -> None:
    torch.manual_seed(0)
    arch = ARCHITECTURES["mnist-cnn"]
    net = capture(arch.build().eval(), arch.input_shape)
    norm = model_based(net)
    x = torch.rand(64, *arch.input_shape)
    for act in norm.network.activations(x):
        assert float(act.max()) <= 1.0 + 1e-5


def test_model_based_includes_positive_bias() -> None:
    net = Network(
        (Linear(torch.tensor([[1.0, 1.0]]), torch.tensor([2.0])),), ("l",), (2,)
    )
    norm = model_based(net)
    assert norm.scales == (4.0,)
    torch.testing.assert_close(norm.network.layers[0].bias, torch.tensor([0.5]))


def test_data_based_uses_percentile_of_nonzero_activations() -> None:
    net = Network((Linear(torch.eye(2)), ReLU()), ("l", "r"), (2,))
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, -1.0], [4.0, 0.0]])
    norm = data_based(net, x, percentile=100.0)
    assert norm.scales[0] == pytest.approx(4.0)
    norm50 = data_based(net, x, percentile=50.0)
    assert norm50.scales[0] == pytest.approx(2.5)  # median of the non-zero values 1, 2, 3, 4


@pytest.mark.parametrize("name", ["mnist-cnn", "mnist-fc", "digits-mlp"])
@pytest.mark.parametrize("method", ["model", "data"])
def test_normalization_keeps_argmax_and_scales_consistently(name: str, method: str) -> None:
    torch.manual_seed(1)
    arch = ARCHITECTURES[name]
    net = capture(arch.build().eval(), arch.input_shape)
    x = torch.rand(32, *arch.input_shape)
    norm = model_based(net) if method == "model" else data_based(net, x, percentile=99.9)
    ann, snn = net.activations(x), norm.network.activations(x)
    for a, b, lam in zip(ann, snn, norm.scales, strict=True):
        torch.testing.assert_close(b * lam, a, rtol=1e-4, atol=1e-5)
    assert torch.equal(ann[-1].argmax(1), snn[-1].argmax(1))


def test_layer_dead_on_calibration_data_keeps_scale_and_rescales_bias() -> None:
    # hidden layer: one unit, lambda_1 = 2 (the only activation); output layer never
    # positive on the data, so lambda_2 = lambda_1 and b_2 is divided by it
    net = Network(
        (Linear(torch.tensor([[1.0, 0.5]])), ReLU(),
         Linear(torch.tensor([[-1.0], [1.0]]), torch.tensor([0.0, -10.0]))),
        ("a", "r", "b"), (2,),
    )
    x = torch.tensor([[1.0, 2.0]])
    norm = data_based(net, x, percentile=100.0)
    assert norm.scales == (2.0, 2.0, 2.0)
    torch.testing.assert_close(norm.network(x) * 2.0, net(x))  # (-2, -8) * 1/2 * 2


def test_data_based_rejects_bad_percentile_and_empty_data() -> None:
    with pytest.raises(ValueError, match="percentile"):
        data_based(_two_layer(), torch.rand(3, 3), percentile=0)
    with pytest.raises(ValueError, match="calibration sample"):
        data_based(_two_layer(), torch.rand(0, 3))

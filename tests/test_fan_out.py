"""Fan-out without autograd: equal to d(sum of outputs)/d(input) with unit weights (the
autograd oracle), and evaluation under torch.no_grad() and torch.inference_mode()."""

import math

import pytest
import torch
import torch.nn.functional as F

from spikecast.ir.graph import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, Network, ReLU
from spikecast.measure.counts import fan_out
from spikecast.schemes import convert
from spikecast.schemes.rate import RateRecipe


def autograd_fan_out(layer: Conv2d | AvgPool2d | Linear, in_shape: tuple[int, ...]) -> torch.Tensor:
    with torch.enable_grad():
        x = torch.ones(1, *in_shape, requires_grad=True)
        if isinstance(layer, Linear):
            y = F.linear(x, torch.ones_like(layer.weight))
        elif isinstance(layer, Conv2d):
            y = F.conv2d(x, torch.ones_like(layer.weight), None, layer.stride, layer.padding)
        else:
            k = math.prod(layer.kernel_size)
            y = F.avg_pool2d(x, layer.kernel_size, layer.stride, layer.padding) * k
        y.sum().backward()
    return x.grad[0]


@pytest.mark.parametrize(("layer", "in_shape"), [
    (Conv2d(torch.zeros(3, 2, 5, 5), None, (2, 2), (2, 2)), (2, 11, 10)),
    (Conv2d(torch.zeros(4, 3, 3, 2), None, (3, 1), (1, 0)), (3, 10, 7)),
    (Conv2d(torch.zeros(2, 1, 1, 1)), (1, 5, 5)),
    (AvgPool2d((3, 3), (2, 2), (1, 1)), (4, 9, 8)),
    (AvgPool2d((2, 2), (2, 2)), (3, 7, 7)),
    (Linear(torch.zeros(5, 12)), (12,)),
])
def test_fan_out_equals_the_autograd_oracle(layer, in_shape) -> None:
    expected = autograd_fan_out(layer, in_shape)
    assert torch.equal(fan_out(layer, in_shape), expected)
    with torch.inference_mode():
        assert torch.equal(fan_out(layer, in_shape), expected)


def test_avgpool_fan_out_golden() -> None:
    # 2 x 2 windows, stride 1, on a 3 x 3 plane: the centre is in 4 windows, edges in 2,
    # corners in 1 (each window reads its own channel only)
    fan = fan_out(AvgPool2d((2, 2), (1, 1)), (2, 3, 3))
    assert fan[1].tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_evaluate_under_no_grad_and_inference_mode(context) -> None:
    g = torch.Generator().manual_seed(0)
    net = Network(
        (Conv2d(torch.rand(3, 1, 3, 3, generator=g) * 0.5, None, (1, 1), (1, 1)), ReLU(),
         MaxPool2d((2, 2), (2, 2)), Flatten(), Linear(torch.randn(2, 12, generator=g))),
        ("conv", "relu", "pool", "flat", "fc"), (1, 4, 4),
    )
    x = torch.rand(6, 1, 4, 4, generator=g)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    snn = convert(net, RateRecipe(steps=8), x)
    expected = snn.evaluate(x, y)
    with context():
        result = snn.evaluate(x, y)
    assert result.accuracy == expected.accuracy
    assert [s.synaptic_events for s in result.layers] == [
        s.synaptic_events for s in expected.layers]
    assert result.layers[-1].synaptic_events > 0

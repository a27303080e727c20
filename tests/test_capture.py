"""Capture: fx tracing of many model styles, BN folding, canonical ReLU placement, errors."""

import pytest
import torch
import torch.nn.functional as F
from dag_models import trained_like
from torch import nn

from spikecast.frontends.torch_fx import capture, fold_batchnorm
from spikecast.ir.graph import (
    AvgPool2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Network,
    ReLU,
    canonicalize,
)
from spikecast.zoo.models import ARCHITECTURES


def _kinds(net: Network) -> list[str]:
    return [type(layer).__name__ for layer in net.layers]


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding="same")
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        x = x.view(x.size(0), -1)
        return self.fc(F.dropout(x, 0.5, self.training))


def _randomise_bn(bn: nn.BatchNorm2d | nn.BatchNorm1d, gen: torch.Generator) -> None:
    n = bn.num_features
    bn.running_mean.copy_(torch.randn(n, generator=gen))
    bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    bn.weight.data.copy_(torch.randn(n, generator=gen))
    bn.bias.data.copy_(torch.randn(n, generator=gen))


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_reference_models_capture_exactly(name: str) -> None:
    arch = ARCHITECTURES[name]
    torch.manual_seed(0)
    model = arch.build().eval()
    net = capture(model, arch.input_shape)
    x = torch.rand(4, *arch.input_shape)
    torch.testing.assert_close(net(x), model(x), rtol=0, atol=1e-5)


def test_mnist_cnn_layer_graph() -> None:
    arch = ARCHITECTURES["mnist-cnn"]
    net = capture(arch.build(), arch.input_shape)
    assert _kinds(net) == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
        "Flatten", "Linear", "ReLU", "Linear",
    ]
    conv = net.layers[0]
    assert conv.padding == (2, 2) and conv.stride == (1, 1)
    assert [s.out_shape for s in net.stages()] == [
        (16, 28, 28), (16, 14, 14), (8, 14, 14), (8, 7, 7), (392,), (256,), (10,)
    ]


def test_functional_model_with_batchnorm_is_folded() -> None:
    gen = torch.Generator().manual_seed(1)
    model = Functional()
    with torch.no_grad():
        _randomise_bn(model.bn, gen)
    model.eval()
    net = capture(model, (1, 8, 8))
    assert _kinds(net) == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert net.names[0] == "conv+bn"
    x = torch.rand(6, 1, 8, 8, generator=gen)
    torch.testing.assert_close(net(x), model(x), rtol=1e-5, atol=1e-5)


def test_fold_batchnorm_linear_matches_hand_formula() -> None:
    bn = nn.BatchNorm1d(2).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25]))
        bn.weight.copy_(torch.tensor([2.0, 3.0]))
        bn.bias.copy_(torch.tensor([0.5, -1.0]))
    bn.eps = 0.0
    layer = Linear(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1.0, 1.0]))
    folded = fold_batchnorm(layer, bn)
    # gamma' = (2/2, 3/0.5) = (1, 6); W' = W * gamma'; b' = (b - mean) gamma' + beta
    torch.testing.assert_close(folded.weight, torch.tensor([[1.0, 2.0], [18.0, 24.0]]))
    torch.testing.assert_close(folded.bias, torch.tensor([0.0 + 0.5, 18.0 - 1.0]))


def test_user_model_is_not_mutated() -> None:
    model = Functional()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net = capture(model, (1, 8, 8))
    with torch.no_grad():
        net.layers[0].weight.mul_(0)
    assert model.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_relu_after_pool_is_moved_before_it() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.ReLU(), nn.Linear(18, 2)
    )
    net = capture(model, (1, 8, 8))
    assert _kinds(net) == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(net(x), model(x))


def test_avgpool_after_relu_becomes_a_population() -> None:
    net = canonicalize(
        Network(
            (Conv2d(torch.ones(1, 1, 1, 1)), ReLU(), AvgPool2d((2, 2), (2, 2)), Flatten(),
             Linear(torch.ones(2, 4))),
            ("c", "r", "p", "f", "l"),
            (1, 4, 4),
        )
    )
    stages = net.stages()
    assert [(type(s.layer).__name__, s.relu) for s in stages] == [
        ("Conv2d", True), ("AvgPool2d", True), ("Flatten", False), ("Linear", False)
    ]


def test_input_relu_is_dropped_and_double_relu_collapsed() -> None:
    model = nn.Sequential(nn.ReLU(), nn.Linear(3, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 2))
    net = capture(model, (3,))
    assert _kinds(net) == ["Linear", "ReLU", "Linear"]


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + 1.0


class Branch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.a(x)
        return self.b(x)


@pytest.mark.parametrize(
    ("model", "shape", "needle"),
    [
        (nn.Sequential(nn.Linear(3, 3), nn.Sigmoid()), (3,), "Sigmoid"),
        (nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")), (2, 5, 5),
         "padding_mode"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2)), (1, 9, 9), "dilation"),
        (nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), (1, 5, 5), "ceil_mode"),
        (nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.BatchNorm1d(3)), (3,), "BatchNorm"),
        (Residual(), (4,), "without alpha or constants"),
        (nn.Sequential(nn.Flatten(0)), (2, 2), "start_dim=0"),
    ],
)
def test_unsupported_layers_name_the_node(model: nn.Module, shape: tuple, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        capture(model.eval(), shape)
    msg = str(err.value)
    assert needle in msg
    assert "Supported:" in msg


def test_a_layer_whose_output_is_unused_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\['a'\] feed nothing"):
        capture(Branch().eval(), (4,))


@pytest.mark.parametrize(
    ("pool", "needle"),
    [
        (lambda x: F.max_pool2d(x, 2, 2, 0, 2), "dilation=2"),
        (lambda x: F.max_pool2d(x, 2, ceil_mode=True), "ceil_mode=True"),
        (lambda x: F.avg_pool2d(x, 2, 2, 1, count_include_pad=False), "count_include_pad"),
        (lambda x: F.avg_pool2d(x, 2, divisor_override=3), "divisor_override=3"),
    ],
)
def test_functional_pool_options_are_not_ignored(pool, needle: str) -> None:
    class M(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return pool(x)

    with pytest.raises(ValueError, match=needle):
        capture(M(), (1, 6, 6))


def test_wrong_input_shape_is_a_value_error_and_modes_are_restored() -> None:
    model = nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5))
    model.train()
    model[1].eval()
    with pytest.raises(ValueError, match=r"per-sample shape \(3,\)"):
        capture(model, (3,))
    assert model.training and model[0].training and not model[1].training


def test_functional_pools_and_torch_flatten() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv2d(1, 2, 3, padding=1)
            self.l = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.avg_pool2d(torch.relu(self.c(x)), 2)
            x = F.max_pool2d(x, kernel_size=2, stride=2)
            return self.l(torch.flatten(x, 1))

    model = M().eval()
    net = capture(model, (1, 8, 8))
    assert _kinds(net) == ["Conv2d", "ReLU", "AvgPool2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert isinstance(net.layers[4], MaxPool2d) and net.layers[4].kernel_size == (2, 2)
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(net(x), model(x))


class _BnBehindDropout(nn.Module):
    """y = conv(x); relu(bn(dropout(y)) + y): y is read raw as well, BN cannot be folded."""

    def __init__(self) -> None:
        super().__init__()
        self.c, self.bn, self.d = nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Dropout()
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c(x)
        return self.fc(F.relu(self.bn(self.d(y)) + y).flatten(1))


class _ParallelBn(nn.Module):
    """conv a, conv b, then bn a, bn b: each BN folds into its own convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 2, 1), nn.Conv2d(1, 2, 1)
        self.ba, self.bb = nn.BatchNorm2d(2), nn.BatchNorm2d(2)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ya, yb = self.a(x), self.b(x)
        return self.fc(F.relu(self.ba(ya) + self.bb(yb)).flatten(1))


def test_batchnorm_is_not_folded_into_a_value_read_elsewhere() -> None:
    with pytest.raises(ValueError, match=r"output of 'c' is also read by \['add'\]"):
        capture(trained_like(_BnBehindDropout()), (1, 2, 2))


def test_batchnorm_folds_into_its_own_branch() -> None:
    m = trained_like(_ParallelBn())
    net = capture(m, (1, 2, 2))
    assert net.names[:2] == ("a+ba", "b+bb")
    x = torch.rand(3, 1, 2, 2)
    with torch.no_grad():
        assert torch.allclose(net(x), m(x), atol=1e-6)

"""Front-end extras on both paths (torch.fx capture; ONNX from torch's TorchScript and
dynamo exporters): input normalization folded into the first layer, grouped and depthwise
convolutions, AdaptiveAvgPool2d / ReduceMean as AvgPool2d, a trailing (log-)softmax dropped
with a notice, and the refusals naming the op and what to do."""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import AvgPool2d, Conv2d, Flatten, Linear, Network, ReLU
from spikecast.measure.counts import ann_macs, synapse_count
from spikecast.schemes.rate import RateRecipe


class Normalized(nn.Module):
    """(x - 0.5) / 0.25 -> conv (no padding) -> depthwise conv (padded) -> grouped 1x1 ->
    adaptive pool to 1 x 1 -> linear -> log_softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5]).reshape(1, 1, 1, 1))
        self.stem = nn.Conv2d(1, 4, 3)
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.grouped = nn.Conv2d(4, 6, 1, groups=2, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / 0.25
        x = F.relu(self.stem(x))
        x = F.relu(self.depthwise(x))
        x = F.relu(self.grouped(x))
        return self.fc(torch.flatten(self.pool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.logits(x), dim=1)


SHAPE = (1, 8, 8)


def _model() -> Normalized:
    torch.manual_seed(0)
    return Normalized().eval()


def _check(net: Network, model: Normalized) -> None:
    """The layer graph: normalization folded into the stem, the groups kept, the adaptive
    pool an AvgPool2d of the 6 x 6 map, no softmax; same logits as the model."""
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU", "AvgPool2d",
                     "ReLU", "Flatten", "Linear"]
    assert [layer.groups for layer in net.layers if isinstance(layer, Conv2d)] == [1, 4, 2]
    assert net.layers[6] == AvgPool2d((6, 6), (6, 6))
    stem = net.layers[0]
    w = model.stem.weight.detach()
    torch.testing.assert_close(stem.weight, w / 0.25)  # W' = W a with a = 1 / 0.25
    torch.testing.assert_close(stem.bias, model.stem.bias.detach() - 2.0 * w.sum((1, 2, 3)))
    x = torch.rand(16, *SHAPE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net(x), model.logits(x), rtol=1e-5, atol=1e-5)
        assert torch.equal(net(x).argmax(1), model(x).argmax(1))


def test_torch_path(caplog: pytest.LogCaptureFixture) -> None:
    model = _model()
    with caplog.at_level(logging.WARNING):
        net = capture(model, SHAPE)
    _check(net, model)
    assert "dropped the final log_softmax" in caplog.text


def _onnx(model: nn.Module, dynamo: bool) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {} if dynamo else {"opset_version": 17}
        torch.onnx.export(model, (torch.zeros(1, *SHAPE),), buf, dynamo=dynamo, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_onnx_paths(dynamo: bool) -> None:
    """TorchScript writes GlobalAveragePool and Sub/Div by Constant nodes; dynamo (needs
    onnxscript) writes ReduceMean with the axes as an input, opset 18+."""
    onnx = pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    from spikecast.frontends.onnx.reader import load_onnx

    model = _model()
    data = _onnx(model, dynamo)
    ops = {n.op_type for n in onnx.load_model_from_string(data).graph.node}
    assert {"Sub", "Div", "LogSoftmax"} <= ops
    assert ("ReduceMean" if dynamo else "GlobalAveragePool") in ops
    _check(load_onnx(data), model)


def test_shifted_input_into_padded_conv_is_refused() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
    wrapped = _Shift(model)
    with pytest.raises(ValueError, match=r"shifts the input of the zero-padded Conv2d.*"
                                         r"Normalize outside the model"):
        capture(wrapped, (1, 4, 4))
    scaled = capture(_Scale(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))), (1, 4, 4))
    assert isinstance(scaled.layers[0], Conv2d) and scaled.layers[0].padding == (1, 1)


class _Shift(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x - 0.1307)


class _Scale(_Shift):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 3.0)


def test_normalized_input_into_a_pool_is_refused() -> None:
    with pytest.raises(ValueError, match=r"normalized input \['mul'\] feeds MaxPool2d"):
        capture(_Scale(nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2))),
                (1, 4, 4))


def test_linear_folds_flattened_normalization() -> None:
    """(x - m) / s with per-pixel m through Flatten into a Linear: W' = W / s,
    b' = b - W m / s, checked against the model."""
    torch.manual_seed(2)
    fc = nn.Linear(4, 3)
    model = _PerPixel(fc).eval()
    net = capture(model, (1, 2, 2))
    assert [type(layer) for layer in net.layers] == [Flatten, Linear]
    x = torch.rand(5, 1, 2, 2)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x))


class _PerPixel(nn.Module):
    def __init__(self, fc: nn.Linear) -> None:
        super().__init__()
        self.fc = fc
        self.register_buffer("m", torch.tensor([[[0.1, 0.2], [0.3, 0.4]]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten((x - self.m) / 2.0, 1))


@pytest.mark.parametrize(("size", "kernel"), [((2, 2), (3, 3)), ((None, 3), (1, 2)), (6, (1, 1))])
def test_adaptive_pool_that_divides_is_an_avgpool(size, kernel) -> None:
    net = capture(nn.Sequential(nn.AdaptiveAvgPool2d(size)), (2, 6, 6))
    assert net.layers[0] == AvgPool2d(kernel, kernel)


def test_adaptive_pool_that_does_not_divide_is_refused() -> None:
    with pytest.raises(ValueError, match=r"output size \(4, 4\) does not divide the input "
                                         r"\(6, 6\); use an AvgPool2d"):
        capture(nn.Sequential(nn.AdaptiveAvgPool2d(4)), (1, 6, 6))


def test_spatial_mean_is_pool_and_flatten() -> None:
    net = capture(_Mean(), (3, 4, 4))
    assert net.layers == (AvgPool2d((4, 4), (4, 4)), ReLU(), Flatten())  # a population


class _Mean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def test_softmax_not_at_the_output_is_refused() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=1), nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"softmax.*read by \['_2'\].*last operation"):
        capture(model, (3,))


def _block_diagonal(conv: Conv2d) -> Conv2d:
    """The dense (groups = 1) convolution equal to a grouped one: zeros off the blocks."""
    out, per_in = conv.weight.shape[:2]
    g = conv.groups
    w = torch.zeros(out, per_in * g, *conv.weight.shape[2:])
    for j in range(g):
        rows = slice(j * out // g, (j + 1) * out // g)
        w[rows, j * per_in:(j + 1) * per_in] = conv.weight[rows]
    return Conv2d(w, conv.bias, conv.stride, conv.padding)


def _grouped_net() -> tuple[Network, Network]:
    g = torch.Generator().manual_seed(3)
    grouped = Conv2d(torch.rand(4, 1, 3, 3, generator=g) * 0.4, torch.rand(4, generator=g) * 0.1,
                     (1, 1), (1, 1), groups=2)
    layers = (grouped, ReLU(), Flatten(), Linear(torch.rand(3, 64, generator=g) * 0.3 - 0.1))
    names = ("conv", "act", "flat", "fc")
    dense = (_block_diagonal(grouped), *layers[1:])
    return Network(layers, names, (2, 4, 4)), Network(dense, names, (2, 4, 4))


def test_grouped_conv_equals_torch_and_its_dense_form() -> None:
    grouped, dense = _grouped_net()
    conv = nn.Conv2d(2, 4, 3, padding=1, groups=2)
    with torch.no_grad():
        conv.weight.copy_(grouped.layers[0].weight)
        conv.bias.copy_(grouped.layers[0].bias)
    x = torch.rand(6, 2, 4, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(grouped.layers[0].forward(x), conv(x))
    torch.testing.assert_close(grouped(x), dense(x))


def test_grouped_conv_counts_are_per_group() -> None:
    """MACs: 4 x 16 outputs x (1 input channel per group) x 9, and 64 x 3 for the Linear.
    Synapses: an input pixel of a 4 x 4 map reaches 4 (corner), 6 (edge) or 9 (interior)
    positions of a padded 3 x 3 kernel, 4 x 4 + 8 x 6 + 4 x 9 = 100 per input channel and
    output channel of its group (2 x 2 pairs), plus the Linear's 192."""
    grouped, dense = _grouped_net()
    assert ann_macs(grouped) == 4 * 16 * 9 + 192
    assert ann_macs(dense) == 4 * 16 * 2 * 9 + 192
    # every input pixel meets out/g = 2 channels at each in-bounds tap: 2 x 2 x 100 + 192
    assert synapse_count(grouped) == 2 * 2 * 100 + 192


@pytest.mark.parametrize("scheme", ["rate", "sigma-delta"])
def test_grouped_conv_simulates_like_its_dense_form(scheme: str) -> None:
    """Each simulator on the grouped network spikes exactly as on its block-diagonal dense
    form (the rate simulator applies the layer; sigma-delta builds per-group tables)."""
    from spikecast.schemes import convert, get_recipe

    grouped, dense = _grouped_net()
    x = torch.rand(8, 2, 4, 4, generator=torch.Generator().manual_seed(5))
    recipe = (RateRecipe(steps=30, normalization="none") if scheme == "rate"
              else get_recipe("sigma-delta"))
    a, b = (convert(n, recipe, x) for n in (grouped, dense))
    for ca, cb in zip(a.neuron_spike_counts(x), b.neuron_spike_counts(x), strict=True):
        assert torch.equal(ca, cb) and ca.sum() > 0


def test_grouped_conv_survives_spikecast_and_nir_files(tmp_path) -> None:
    from spikecast.io.snnfile import load_converted, load_network
    from spikecast.schemes import convert

    grouped, _ = _grouped_net()
    model = convert(grouped, RateRecipe(steps=20, normalization="none", reset="zero",
                                        v_init=0.0))
    path = model.save(tmp_path / "g.spikecast")
    assert load_converted(path).ann.layers[0].groups == 2
    assert load_network(path).network.layers[0].groups == 2
    nir = pytest.importorskip("nir")
    from spikecast.io.nir import read_nir, write_nir

    file = write_nir(model, tmp_path / "g.nir")
    node = nir.read(file).nodes["conv"]  # the dense block-diagonal form, groups in metadata
    assert int(node.groups) == 1 and node.weight.shape == (4, 2, 3, 3)
    assert '"groups": 2' in node.metadata["spikecast"]
    assert np.count_nonzero(node.weight[:2, 1]) == np.count_nonzero(node.weight[2:, 0]) == 0
    back = read_nir(file)
    x = torch.rand(4, 2, 4, 4, generator=torch.Generator().manual_seed(6))
    for a, b in zip(model.simulate(x).counts, back.simulate(x).counts, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["mnist-cnn", "residual"])
def test_dynamo_export_of_reference_models_matches_capture(name: str) -> None:
    """torch.onnx.export's default exporter (dynamo): same layer graph as the torch path."""
    pytest.importorskip("onnxscript")
    from dag_models import ResidualBlock

    from spikecast.frontends.onnx.reader import load_onnx
    from spikecast.zoo.models import get_architecture

    torch.manual_seed(7)
    if name == "residual":
        model, shape = ResidualBlock().eval(), (1, 6, 6)
    else:
        arch = get_architecture(name)
        model, shape = arch.build().eval(), arch.input_shape
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, *shape),), buf, dynamo=True)
    ours, ref = load_onnx(buf.getvalue()), capture(model, shape)
    assert [type(a) for a in ours.layers] == [type(b) for b in ref.layers]
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)

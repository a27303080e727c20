"""Data-based calibration streamed in batches: the exact percentile of torch.quantile (the
oracle, over all positive outputs at once) whatever the batch size, and a lazy progress bar."""

import pytest
import torch

from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Add, Conv2d, Linear, Network, ReLU
from spikecast.ir.normalize import data_based
from spikecast.zoo.models import get_architecture


def oracle_scales(net: Network, x: torch.Tensor, percentile: float,
                  batch: int) -> dict[int, float]:
    # the activations of the same batches (a BLAS may round a 1-row product differently)
    parts = [net.activations(x[i : i + batch]) for i in range(0, len(x), batch)]
    acts = [torch.cat(layer) for layer in zip(*parts, strict=True)]
    out = {}
    for i, layer in enumerate(net.layers):
        if isinstance(layer, (Linear, Conv2d, Add)):
            pos = acts[i][acts[i] > 0].double()
            out[i] = float(torch.quantile(pos, percentile / 100.0)) if pos.numel() else None
    return out


@pytest.mark.parametrize("percentile", [50.0, 99.0, 99.9, 100.0])
def test_streamed_percentile_equals_torch_quantile(percentile: float) -> None:
    torch.manual_seed(0)
    net = capture(get_architecture("mnist-cnn").build().eval(), (1, 28, 28))
    x = torch.rand(23, 1, 28, 28)
    for batch in (1, 5, 64):
        expected = oracle_scales(net, x, percentile, batch)
        norm = data_based(net, x, percentile, batch_size=batch)
        # lambda_l of every measured layer is exactly the oracle's (routing layers and
        # ReLUs carry their source's scale)
        assert {i: norm.scales[i] for i in expected} == expected


def test_a_layer_never_positive_keeps_its_input_scale() -> None:
    # layer 1 has only negative weights on inputs in [0, 1]: no positive output, lambda = 1
    net = Network((Linear(-torch.ones(2, 3)), ReLU(), Linear(torch.ones(1, 2))),
                  ("neg", "r", "out"), (3,))
    norm = data_based(net, torch.rand(8, 3), 99.0)
    assert norm.scales[0] == 1.0
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        data_based(net, torch.rand(8, 3), batch_size=0)

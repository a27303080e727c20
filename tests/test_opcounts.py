"""NeuroBench-compatible operation counts: hand-computed goldens, analytic nnz x fan-out
counts, numpy oracles, and (when neurobench is importable) neurobench itself."""

import numpy as np
import pytest
import torch
from torch import nn

from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, Network, ReLU
from spikecast.measure.counts import fan_out, synapse_count
from spikecast.measure.opcounts import (
    ann_workload,
    connection_sparsity,
    footprint_bytes,
    is_spike_tensor,
    layer_dense_ops,
    layer_ops,
    snn_workload,
)
from spikecast.measure.result import LayerStats, PredictionTrace, SchemeResult


def _small_cnn() -> Network:
    g = torch.Generator().manual_seed(0)
    return Network(
        (
            Conv2d(torch.randn(3, 1, 3, 3, generator=g), torch.randn(3, generator=g),
                   (1, 1), (1, 1)),
            ReLU(),
            MaxPool2d((2, 2), (2, 2)),
            Flatten(),
            Linear(torch.randn(5, 12, generator=g)),
            ReLU(),
            Linear(torch.randn(2, 5, generator=g)),
        ),
        ("conv", "relu1", "pool", "flat", "fc1", "relu2", "fc2"),
        (1, 4, 4),
    )


def test_linear_golden_skips_zero_inputs_and_zero_weights() -> None:
    layer = Linear(torch.tensor([[1.0, 0.0, 2.0], [3.0, 4.0, 0.0]]), torch.tensor([5.0, 5.0]))
    x = torch.tensor([[0.5, 0.0, 1.0], [0.0, 0.0, 0.0]])
    # sample 0: row 0 has (x0, 1) and (x2, 2); row 1 has (x0, 3) only; the bias is no op
    assert layer_ops(layer, x).tolist() == [3.0, 0.0]
    assert layer_dense_ops(layer, (3,)) == 6


def test_spike_detection() -> None:
    assert is_spike_tensor(torch.tensor([1.0, 0.0, -1.0]))
    assert not is_spike_tensor(torch.tensor([1.0, 0.5]))
    assert not is_spike_tensor(torch.tensor([2.0, 0.0]))


def test_conv_ops_equal_nnz_times_fan_out() -> None:
    layer = Conv2d(torch.ones(2, 1, 3, 3), None, (1, 1), (1, 1))
    x = (torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(1)) > 0.6).float()
    fan = fan_out(layer, (1, 5, 5))
    expected = ((x != 0).float() * fan).flatten(1).sum(1)
    torch.testing.assert_close(layer_ops(layer, x), expected)
    assert layer_dense_ops(layer, (1, 5, 5)) == int(fan.sum())


def test_avgpool_counted_like_a_depthwise_conv() -> None:
    layer = AvgPool2d((2, 2), (2, 2))
    x = torch.tensor([[[[1.0, 0.0], [0.0, 0.3]], [[0.0, 0.0], [0.0, 0.0]]]])
    assert layer_ops(layer, x).tolist() == [2.0]
    assert layer_dense_ops(layer, (2, 2, 2)) == 8


def test_ann_workload_matches_numpy_oracle() -> None:
    net = _small_cnn()
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    x[x < 0.3] = 0
    work = ann_workload(net, x, batch_size=4)
    acts = [a.numpy() for a in net.activations(x)]
    w1 = net.layers[4].weight.numpy() != 0
    w2 = net.layers[6].weight.numpy() != 0
    fan = fan_out(net.layers[0], (1, 4, 4)).numpy()
    conv_ops = ((x.numpy() != 0) * fan).reshape(6, -1).sum(1).mean()
    fc1_ops = ((acts[3] != 0).astype(float) @ w1.T.astype(float)).sum(1).mean()
    fc2_ops = ((acts[5] != 0).astype(float) @ w2.T.astype(float)).sum(1).mean()
    assert [layer.effective_macs for layer in work.layers] == pytest.approx(
        [conv_ops, fc1_ops, fc2_ops]
    )
    assert work.effective_acs == 0
    assert work.effective_macs == pytest.approx(conv_ops + fc1_ops + fc2_ops)
    assert work.dense == synapse_count(net)
    relu_outs = np.concatenate([acts[1].ravel(), acts[5].ravel()])
    assert work.activation_sparsity == pytest.approx(float((relu_outs == 0).mean()))
    assert work.neuron_updates == 3 * 16 + 5 + 2


def test_ann_workload_counts_binary_inputs_as_acs() -> None:
    net = Network((Linear(torch.ones(2, 3)),), ("fc",), (3,))
    work = ann_workload(net, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]))
    assert (work.effective_acs, work.effective_macs) == (3.0, 0.0)


def test_connection_sparsity_and_footprint() -> None:
    net = Network(
        (Linear(torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.zeros(2)), ReLU(),
         Linear(torch.tensor([[0.0, 0.0]]))),
        ("a", "r", "b"), (2,),
    )
    assert connection_sparsity(net) == pytest.approx(4 / 6)
    assert footprint_bytes(net) == (4 + 2 + 2) * 4


def _fc_net() -> Network:
    return Network(
        (Linear(torch.ones(4, 3)), ReLU(), Linear(torch.ones(2, 4))), ("a", "r", "b"), (3,)
    )


def _result(time_steps: int | None = None, analog_input_macs: int = 0,
            n_layers: int = 2) -> SchemeResult:
    layers = (LayerStats("a", 4, 6.0, 0.0, 12), LayerStats("b", 2, 2.0, 12.0, 8))[:n_layers]
    labels = torch.zeros(2, dtype=torch.long)
    trace = PredictionTrace((1.0,), torch.zeros(2, 1, dtype=torch.long), "step")
    return SchemeResult("fake", labels, labels, trace, layers, 20, time_steps=time_steps,
                        analog_input_macs=analog_input_macs)


def test_snn_workload_clocked_with_analog_input() -> None:
    x = torch.tensor([[0.5, 0.0, 1.0], [0.2, 0.3, 0.0]])
    work = snn_workload(_fc_net(), _result(4, 12), x)
    # analog first layer: nnz(x) x fan-out (4) averaged over samples = (2 + 2) * 4 / 2
    assert work.layers[0].effective_macs == 8.0
    assert work.effective_acs == 12.0
    assert work.dense == (12 + 8) * 4
    assert work.neuron_updates == 6 * 4
    assert work.activation_sparsity == pytest.approx(1 - 8 / (6 * 4))
    without_x = snn_workload(_fc_net(), _result(4, 12))
    assert without_x.effective_macs == 12.0


def test_snn_workload_event_driven() -> None:
    work = snn_workload(_fc_net(), _result())
    assert work.effective_macs == 0.0
    assert work.neuron_updates == work.effective_acs == 12.0
    assert work.activation_sparsity is None
    assert work.dense == 20


def test_snn_workload_rejects_layer_mismatch() -> None:
    result = _result(n_layers=1)
    needle = r"reports layers \['a'\] but the network's synaptic layers and populations"
    with pytest.raises(ValueError, match=needle):
        snn_workload(_fc_net(), result)


def test_layer_ops_rejects_routing_layers() -> None:
    with pytest.raises(ValueError, match="not MaxPool2d"):
        layer_ops(MaxPool2d((2, 2), (2, 2)), torch.zeros(1, 1, 2, 2))


def test_against_neurobench_on_a_plain_ann() -> None:
    pytest.importorskip("neurobench")
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel

    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5), nn.ReLU(),
        nn.Linear(5, 2),
    ).eval()
    with torch.no_grad():
        model[3].weight[0, :10] = 0
    x = torch.rand(8, 1, 4, 4)
    x[x < 0.4] = 0
    nb_model = TorchModel(model)
    nb_model.register_hooks()
    metric = SynapticOperations()
    with torch.no_grad():
        preds = nb_model(x)
    expected = metric(nb_model, preds, (x, torch.zeros(8)))
    ours = ann_workload(capture(model, (1, 4, 4)), x)
    assert ours.effective_macs == pytest.approx(expected["Effective_MACs"])
    assert ours.effective_acs == pytest.approx(expected["Effective_ACs"])
    assert ours.dense == pytest.approx(expected["Dense"])

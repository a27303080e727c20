"""Measurement core: exact MAC, neuron and fan-out counts, results serialisation."""

import json

import torch

from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Conv2d, Linear, Network, ReLU
from spikecast.measure.counts import SpikeCounter, ann_macs, fan_out, neuron_count, synapse_count
from spikecast.measure.result import (
    LayerStats,
    PredictionTrace,
    RunResults,
    SchemeResult,
    accuracy,
)
from spikecast.zoo.models import ARCHITECTURES


def test_mnist_cnn_counts() -> None:
    arch = ARCHITECTURES["mnist-cnn"]
    net = capture(arch.build(), arch.input_shape)
    conv1 = 28 * 28 * 16 * 1 * 5 * 5
    conv2 = 14 * 14 * 8 * 16 * 5 * 5
    fc1, fc2 = 392 * 256, 256 * 10
    assert ann_macs(net) == conv1 + conv2 + fc1 + fc2 == 1_043_712
    assert neuron_count(net) == 16 * 28 * 28 + 8 * 14 * 14 + 256 + 10 == 14_378


def test_fc_counts() -> None:
    arch = ARCHITECTURES["wine-fc"]
    net = capture(arch.build(), arch.input_shape)
    assert ann_macs(net) == 13 * 30 + 30 * 3
    assert neuron_count(net) == 33


def test_conv_fan_out_counts_borders() -> None:
    layer = Conv2d(torch.zeros(2, 1, 3, 3), None, (1, 1), (1, 1))
    fan = fan_out(layer, (1, 4, 4))
    # a corner pixel reaches 2x2 output positions of each of 2 channels; the centre 3x3
    expected = torch.tensor(
        [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]], dtype=torch.float32
    ) * 2
    torch.testing.assert_close(fan[0], expected)
    net = Network((layer,), ("c",), (1, 4, 4))
    # dense MACs include the products with padded zeros; connections do not
    assert ann_macs(net) == 4 * 4 * 2 * 9 == 288
    assert synapse_count(net) == float(fan.sum()) == 200


def test_spike_counter_events_equal_spikes_times_fan_out() -> None:
    net = Network(
        (Linear(torch.ones(3, 2)), ReLU(), Linear(torch.ones(4, 3))), ("a", "r", "b"), (2,)
    )
    stages = [s for s in net.stages() if s.synaptic]
    counter = SpikeCounter(net)
    counter.add_spikes(stages[0], torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 1.0]]))
    counter.add_inputs(stages[1], torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 1.0]]))
    counter.add_samples(2)
    stats = counter.stats()
    assert stats[0].spikes == 2.0  # 4 spikes over 2 samples
    assert stats[1].synaptic_events == (3 + 1) * 4 / 2
    assert stats[0].spikes_per_neuron == 2.0 / 3


def test_results_json_contract(tmp_path) -> None:
    layers = (LayerStats("h", 30, 15.0, 45.0, 390), LayerStats("o", 3, 3.0, 0.0, 90))
    labels = torch.tensor([0, 1, 2, 1])
    # readout at steps 1 and 2: 2 then 3 of 4 correct; final = step 2
    trace = torch.tensor([[1, 0], [0, 1], [2, 2], [1, 0]])
    res = SchemeResult("rate", labels, trace[:, -1], PredictionTrace((1.0, 2.0), trace, "step"),
                       layers, 480, time_steps=2)
    run = RunResults("wine", 0.95, 480, 4, {"rate": res})
    data = json.loads(run.save(tmp_path / "r.json").read_text())
    assert data["dataset"] == "wine"
    assert data["ann"] == {"accuracy": 0.95, "macs": 480}
    rate = data["schemes"]["rate"]
    assert rate["accuracy"] == 0.75 and rate["n_samples"] == 4
    assert rate["curve"] == {"x_label": "step", "x": [1.0, 2.0], "accuracy": [0.5, 0.75]}
    assert rate["time_steps"] == 2 and rate["details"] is None
    assert rate["spikes_per_neuron"] == 18.0 / 33
    assert rate["synaptic_events"] == 45.0
    assert rate["ann_macs"] == 480


def test_accuracy() -> None:
    assert accuracy(torch.tensor([1, 2, 3, 0]), torch.tensor([1, 2, 0, 0])) == 0.75

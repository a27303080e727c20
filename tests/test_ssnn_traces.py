"""Traces of one sample and parameter sweeps on a small hand-built network."""

import numpy as np
import pytest
import torch

from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.papers.ssnn_nomura.sweeps import SweepParam, run_sweep
from spikecast.papers.ssnn_nomura.traces import plot_trace, trace_sample
from spikecast.schemes.ssnn import SSNNRecipe


@pytest.fixture(scope="module")
def small_net():
    gen = torch.Generator().manual_seed(0)
    w1 = torch.rand(6, 4, generator=gen)
    w2 = torch.randn(3, 6, generator=gen)
    return Network((Linear(w1), ReLU(), Linear(w2)), ("fc1", "relu", "fc2"), (4,))


def converted(net, **kwargs):
    recipe = SSNNRecipe(**kwargs)
    return recipe.build(net, recipe.calibrate(net, None))


def test_trace_is_consistent_with_spike_counts(small_net, tmp_path):
    model = converted(small_net, window=2e-6, rate_target=1.0)
    x = torch.tensor([0.9, 0.8, 0.7, 1.0])
    trace = trace_sample(model, x)
    result = model.simulate(x[None])
    counts = result.counts[0][0].numpy()
    assert [len(s) for s in trace.hidden_spikes] == counts[trace.hidden].tolist()
    assert counts[trace.hidden].tolist() == sorted(counts, reverse=True)[:3]
    assert [len(s) for s in trace.output_spikes] == result.counts[1][0].tolist()
    assert trace.trace_v.min() >= 0 and trace.trace_v.max() <= trace.v_th * (1 + 1e-9)
    assert np.all(np.diff(trace.trace_t) >= 0)
    assert plot_trace(trace, tmp_path / "t.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"hidden neurons must lie in \[0, 6\)"):
        trace_sample(model, x, hidden=[6])


def test_sweep_window_accuracy_and_spikes_grow(small_net):
    x = torch.rand(12, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = small_net(x).argmax(1)
    res = run_sweep(small_net, x, x, y, "window", [0.5e-6, 4e-6], base_params={"rate_target": 1.0})
    assert res.param == "window" and res.mc_seeds == 1
    assert res.spikes_per_neuron[1] > res.spikes_per_neuron[0]
    mc = run_sweep(small_net, x, x, y, SweepParam.MISMATCH, [0.0, 20.0], mc_seeds=3,
                   base_params={"window": 1e-6})
    assert mc.accuracy_std[0] == 0.0 and mc.mc_seeds == 3
    with pytest.raises(ValueError, match="sweep parameter must be one of"):
        run_sweep(small_net, x, x, y, "colour", [1.0])
    with pytest.raises(ValueError, match="at least one value"):
        run_sweep(small_net, x, x, y, "window", [])

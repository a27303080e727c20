"""SigmaDeltaRecipe / SigmaDeltaModel: registry, results contract, counts, thresholds, Q-ANN."""

import numpy as np
import pytest
import torch
from torch import nn

from spikecast.frontends.torch_fx import capture
from spikecast.measure.counts import ann_macs, neuron_count
from spikecast.papers.sigma_delta_yousefzadeh.reproduce import paper_formula_macs
from spikecast.schemes import convert, get_recipe
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.sigma_delta.qann import qann_predict
from spikecast.schemes.sigma_delta.recipe import PAPER_SETTINGS
from spikecast.schemes.sigma_delta.thresholds import Calibrated, resolve_thresholds
from spikecast.zoo.models import get_architecture


def wine_like():
    torch.manual_seed(0)
    model = get_architecture("wine-fc").build()
    x = torch.rand(40, 13)
    y = model(x).argmax(1)
    return model, x, y


def test_paper_recipe_runs_a_fully_connected_net_with_1d_input():
    model, x, y = wine_like()
    snn = convert(model, get_recipe("sigma-delta", **PAPER_SETTINGS), x)
    res = snn.evaluate(x, y)
    assert res.scheme == "sigma-delta" and res.n_samples == 40
    assert [layer.neurons for layer in res.layers] == [30, 3]
    assert res.curve.x_label == "time (TU)"
    assert res.curve.x[-1] == pytest.approx(0.8) and len(res.curve.x) == 81
    assert res.accuracy == res.curve.accuracy[-1]
    # analytic: every input spike reaches all 30 hidden neurons, every hidden spike 3 outputs
    hidden_spikes = res.layers[0].spikes
    assert res.layers[0].synaptic_events == pytest.approx(res.input_spikes * 30)
    assert res.layers[1].synaptic_events == pytest.approx(hidden_spikes * 3)
    assert res.synaptic_events == pytest.approx(res.details.synaptic_updates)
    assert res.input_spikes == pytest.approx(float((x > 0.2).sum(1).double().mean()))
    spikes = res.details.positive_spikes + res.details.negative_spikes
    assert res.spikes == pytest.approx(spikes)
    assert res.to_dict()["details"]["thresholds"] == [1.0, 1.0]


def test_default_recipe_is_scale_free_with_a_16_level_input():
    model, x, y = wine_like()
    snn = convert(model, get_recipe("sigma-delta"), x)
    net = snn.network
    # theta_l = 5 % of population l's 99.9th percentile on the 16-level coded input
    coded = torch.ceil(x * 16 - 0.5).clamp(min=0) / 16  # n(p) = #{k : p > (k - 1/2) / 16}
    with torch.no_grad():
        hidden = net.layers[0].forward(coded).clamp(min=0)
        out = net.layers[2].forward(hidden).abs()
    want = [0.05 * float(torch.quantile(a[a > 0].double(), 0.999)) for a in (hidden, out)]
    assert snn.thetas == pytest.approx(want)
    res = snn.evaluate(x, y)
    assert res.curve.x[-1] == pytest.approx(1 - 0.5 / 16)
    assert res.input_spikes == pytest.approx(float((coded * 16).sum(1).mean()))
    assert res.details.coded_input_ann_accuracy == pytest.approx(
        float((net(coded).argmax(1) == y).double().mean()))
    assert res.details.qann_accuracy == pytest.approx(snn.qann_accuracy(x, y))
    assert res.params["input_levels"] == 16 and res.params["hysteresis"] == 0.0


def test_mnist_cnn_counts_exact_and_paper_formula():
    net = capture(get_architecture("mnist-cnn").build(), (1, 28, 28))
    assert neuron_count(net) == 14_378
    assert ann_macs(net) == 1_043_712
    # paper footnote: 28*28*16*25 + 14*14*8*25 + 256*7*7*8 + 10*256
    assert paper_formula_macs(net) == 455_712


def test_recipe_parameter_errors():
    with pytest.raises(ValueError, match="theta must be"):
        SigmaDeltaRecipe(theta=0.0)
    with pytest.raises(ValueError, match=r"theta\[1\] must be"):
        SigmaDeltaRecipe(theta=(1.0, -2.0))
    with pytest.raises(ValueError, match="'event', 'timeslice'"):
        SigmaDeltaRecipe(mode="gpu")
    with pytest.raises(ValueError, match="'paper', 'exact'"):
        SigmaDeltaRecipe(rule="often")
    model, x, _ = wine_like()
    with pytest.raises(ValueError, match=r"3 thresholds given for 2 layers \(0, 2\)"):
        convert(model, SigmaDeltaRecipe(theta=(1.0, 1.0, 1.0)), x)
    with pytest.raises(ValueError, match="need calibration data"):
        convert(model, SigmaDeltaRecipe(theta=Calibrated()), None, input_shape=(13,))
    with pytest.raises(ValueError, match=r"inputs in \[0, 1\]"):
        convert(model, SigmaDeltaRecipe(), x).evaluate(x * 3, torch.zeros(40, dtype=torch.long))


def test_unsupported_layer_is_rejected_by_name():
    class Tanh(nn.Module):
        def forward(self, x):
            return torch.tanh(nn.functional.linear(x, torch.ones(2, 2)))

    with pytest.raises(ValueError, match="not supported"):
        convert(Tanh(), SigmaDeltaRecipe(), torch.rand(2, 2))


def test_calibrated_thresholds_match_numpy_percentile():
    model, x, _ = wine_like()
    net = capture(model, (13,))
    thetas = resolve_thresholds(net, Calibrated(fraction=0.5, percentile=90.0), x)
    w1 = model[0].weight.detach().numpy().astype(np.float64)
    w2 = model[2].weight.detach().numpy().astype(np.float64)
    bits = (x.numpy() > 0.2).astype(np.float64)
    h = np.maximum(bits @ w1.T, 0)
    out = np.abs(np.maximum(h, 0) @ w2.T)
    expect = [0.5 * np.percentile(h[h > 0], 90), 0.5 * np.percentile(out[out > 0], 90)]
    assert thetas == pytest.approx(expect, rel=1e-5)


def test_qann_matches_numpy_oracle():
    model, x, _ = wine_like()
    net = capture(model, (13,))
    w1 = model[0].weight.detach().numpy().astype(np.float64)
    w2 = model[2].weight.detach().numpy().astype(np.float64)
    bits = (x.numpy() > 0.2).astype(np.float64)
    h = np.floor(np.maximum(bits @ w1.T, 0) / 0.25) * 0.25
    expect = (h @ w2.T).argmax(1)
    assert qann_predict(net, x, (0.25, 0.5)).numpy().tolist() == expect.tolist()


def test_timeslice_mode_runs_through_the_recipe():
    model, x, y = wine_like()
    a = convert(model, SigmaDeltaRecipe(theta=0.5, mode="timeslice"), x).evaluate(x, y)
    b = convert(model, SigmaDeltaRecipe(theta=0.5), x).evaluate(x, y)
    assert a.params["mode"] == "timeslice" and b.params["mode"] == "event"
    # the input layer sees the same spikes in both modes (only hidden cascades may differ)
    assert a.input_spikes == b.input_spikes
    assert a.layers[0].synaptic_events == b.layers[0].synaptic_events

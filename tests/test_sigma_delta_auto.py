"""theta='auto' (budget, validation split, confirmation, save/load) and collapse warnings."""

import warnings

import pytest
import torch
from torch import nn

from spikecast.frontends.torch_fx import capture
from spikecast.io.snnfile import load_converted, load_network
from spikecast.schemes import convert, get_recipe
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.sigma_delta.auto_theta import search_thresholds
from spikecast.schemes.sigma_delta.diagnostics import CollapseWarning, collapse_warnings
from spikecast.schemes.sigma_delta.qann import qann_predict


def mlp_and_data():
    """A random 6-20-4 MLP whose predictions on uniform inputs cover three classes."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 20), nn.ReLU(), nn.Linear(20, 4)).eval()
    with torch.no_grad():
        model[0].weight.mul_(4)
        model[0].bias.uniform_(-1, 1)
        model[2].weight.mul_(2)
    x = torch.rand(200, 6)
    return model, x


def loss_against_ann(pred, net, x):
    with torch.no_grad():
        return 100.0 * float((pred != net(x).argmax(1)).double().mean())


@pytest.mark.parametrize("budget", [1.0, 4.0])
def test_auto_thetas_keep_the_validation_loss_within_budget(budget):
    model, x = mlp_and_data()
    recipe = SigmaDeltaRecipe(theta="auto", budget=budget)
    net = capture(model, (6,))
    found = search_thresholds(net, x, recipe)
    val = x[100:]  # the second half of the calibration data
    pred = qann_predict(net, val, found.thetas, recipe.input_threshold, hysteresis=0.0,
                        input_levels=16)
    # recomputed independently (float64 Q-ANN); the SNN (h = 0) rests where the Q-ANN is
    assert loss_against_ann(pred, net, val) <= budget
    assert found.snn_loss <= budget and found.proxy_loss <= budget
    assert found.snn_loss == pytest.approx(loss_against_ann(pred, net, val))
    snn = convert(model, recipe, x)
    assert snn.thetas == found.thetas  # deterministic
    rec = snn.simulate(val)
    assert loss_against_ann(torch.as_tensor(rec.final_pred), net, val) <= budget


def test_a_larger_budget_never_costs_more_updates():
    model, x = mlp_and_data()
    net = capture(model, (6,))
    tight = search_thresholds(net, x, SigmaDeltaRecipe(theta="auto", budget=1.0))
    loose = search_thresholds(net, x, SigmaDeltaRecipe(theta="auto", budget=5.0))
    assert loose.proxy_updates < tight.proxy_updates
    assert tight.proxy_loss <= 1.0 < loose.proxy_loss <= 5.0


def test_auto_needs_calibration_data_and_a_valid_budget():
    model, x = mlp_and_data()
    with pytest.raises(ValueError, match="at least 20 calibration samples"):
        convert(model, SigmaDeltaRecipe(theta="auto"), x[:5])
    with pytest.raises(ValueError, match=r"budget must be in \[0, 100\]"):
        SigmaDeltaRecipe(theta="auto", budget=-1.0)
    with pytest.raises(ValueError, match="a string theta must be 'auto'"):
        SigmaDeltaRecipe(theta="fast")


def test_chosen_thetas_survive_save_and_load(tmp_path):
    model, x = mlp_and_data()
    net = capture(model, (6,))
    snn = convert(net, get_recipe("sigma-delta", theta="auto", budget=1.0), x)
    path = snn.save(tmp_path / "m.spikecast")
    conv = load_converted(path)
    assert conv.params["theta"] == "auto" and conv.params["budget"] == 1.0
    assert conv.calibration == {"thetas": list(snn.thetas)}
    loaded = load_network(path)  # the saved thetas, not a new search
    assert loaded.thetas == snn.thetas
    y = torch.zeros(10, dtype=torch.long)
    assert snn.evaluate(x[:10], y).details.thresholds == snn.thetas


def test_collapse_warnings_golden():
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])  # majority class 2: 50 %
    assert collapse_warnings(0.0, y, 0.9) == []
    # 1 of 10 samples silent (10 % > 5 %); accuracy 52 % <= 50 % + 2 points
    found = collapse_warnings(0.1, y, 0.52)
    assert len(found) == 2
    assert "10.0% of the samples got no output spike" in found[0] and "lower theta" in found[0]
    assert "majority class (50.0%)" in found[1] and "collapsed" in found[1]
    # 5 % silent is not more than 5 %; 53 % is more than 2 points above 50 %
    assert collapse_warnings(0.05, y, 0.53) == []
    # a single-class label set cannot be beaten: no majority warning at 100 %
    assert collapse_warnings(0.0, torch.zeros(10, dtype=torch.long), 1.0) == []


def test_a_silent_run_warns_and_records_it():
    model, x = mlp_and_data()
    y = torch.randint(0, 4, (len(x),), generator=torch.Generator().manual_seed(1))
    snn = convert(model, SigmaDeltaRecipe(theta=1e6), x)
    with pytest.warns(CollapseWarning, match="no output spike"):
        res = snn.evaluate(x, y)
    assert any("no output spike" in w for w in res.details.warnings)
    assert res.to_dict()["details"]["warnings"] == list(res.details.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        fine = convert(model, SigmaDeltaRecipe(), x).evaluate(x, model(x).argmax(1))
    assert fine.details.warnings == ()

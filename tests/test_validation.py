"""Validation where data enters, through the Python API: weights at capture, inputs in
[0, 1] and labels in range on every scheme, at least one sample, parameter types, strict
parameter values, and the sigma-delta spike limit that replaced an int64 overflow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikecast.cli.values import parse_value
from spikecast.errors import SpikecastError
from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.schemes import convert, get_recipe
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.sigma_delta.kernel import MAX_FIRE

SCHEMES = ["rate", "ssnn", "sigma-delta"]


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_a_shape_mismatch_is_our_message_without_torch_tracebacks(
    capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SpikecastError, match=r"per-sample shape \(5,\): mat1 and mat2 shapes"):
        capture(_mlp(), (5,))
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ShapeProp" not in err


def test_non_float32_and_non_finite_tensors_are_named() -> None:
    with pytest.raises(SpikecastError, match=r"tensor '0\.weight' is torch\.float64.*float\(\)"):
        capture(_mlp().double(), (3,))
    model = _mlp()
    with torch.no_grad():
        model[2].bias[1] = float("inf")
    with pytest.raises(SpikecastError, match=r"tensor '2\.bias' holds 1 NaN or infinite value"):
        capture(model, (3,))
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).eval()
    bn[1].running_var[0] = -1.0
    with pytest.raises(SpikecastError, match="running variance <= -eps"):
        capture(bn, (3,))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_inputs_outside_the_unit_interval_are_refused_by_every_scheme(scheme: str) -> None:
    x = torch.linspace(0, 1, 18).reshape(6, 3)
    with pytest.raises(SpikecastError, match=r"calibration inputs range over \[0, 255\] \(first "
                       r"outside at sample 0\); spikecast needs inputs in \[0, 1\]"):
        convert(_mlp(), get_recipe(scheme), calib_x=x * 255)
    snn = convert(_mlp(), get_recipe(scheme), calib_x=x)
    bad = x.clone()
    bad[3, 1] = 1.5
    with pytest.raises(SpikecastError, match=r"inputs range over \[0, 1\.5\] \(first outside at "
                       r"sample 3\)"):
        snn.evaluate(bad, torch.zeros(6, dtype=torch.long))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_labels_and_sample_counts_are_checked_by_every_scheme(scheme: str) -> None:
    x = torch.rand(6, 3, generator=torch.Generator().manual_seed(1))
    snn = convert(_mlp(), get_recipe(scheme), calib_x=x)
    with pytest.raises(SpikecastError, match=r"labels span \[0, 2\] but the model has 2 classes"):
        snn.evaluate(x, torch.tensor([0, 1, 2, 0, 1, 0]))
    with pytest.raises(SpikecastError, match="labels span \\[-1, 1\\]"):
        snn.evaluate(x, torch.tensor([0, 1, -1, 0, 1, 0]))
    with pytest.raises(SpikecastError, match="labels must be integers"):
        snn.evaluate(x, torch.zeros(6))
    with pytest.raises(SpikecastError, match="no samples to evaluate"):
        snn.evaluate(x[:0], torch.zeros(0, dtype=torch.long))
    with pytest.raises(SpikecastError, match="6 inputs but 5 labels"):
        snn.evaluate(x, torch.zeros(5, dtype=torch.long))


def test_recipe_parameters_are_checked_against_the_signature() -> None:
    assert get_recipe("sigma-delta", theta={"fraction": 0.2}).params()["theta"]["fraction"] == 0.2
    assert get_recipe("sigma-delta", theta=[0.5, 1]).params()["theta"] == [0.5, 1.0]
    assert get_recipe("rate", reset="ZERO", threshold=2).params()["reset"] == "zero"
    assert get_recipe("ssnn", i_unit=[1e-9, 2e-9], t_ref=None).i_unit == (1e-9, 2e-9)
    for scheme, params, message in (
        ("rate", {"threshold": [1]}, "'threshold' must be a finite number, got [1]"),
        ("rate", {"threshold": float("nan")}, "'threshold' must be a finite number, got nan"),
        ("rate", {"steps": True}, "'steps' must be an integer, got True"),
        ("ssnn", {"window": "abc"}, "'window' must be a finite number, got 'abc'"),
        ("ssnn", {"i_unit": ["x"]}, "'i_unit' must be a finite number or a list of finite"),
        ("ssnn", {"phase": 3}, "'phase' must be one of 'aligned', 'random', got 3"),
        ("ssnn", {"bogus": 1}, "scheme 'ssnn' has no parameter 'bogus'; its parameters: c_mem"),
        ("sigma-delta", {"theta": "big"}, "a string theta must be 'auto'"),
    ):
        with pytest.raises(ValueError, match=None) as err:
            get_recipe(scheme, **params)
        assert message in str(err.value)


def test_parameter_values_are_strict_json() -> None:
    assert parse_value("25", "steps=25") == 25
    assert parse_value("[1, 2.5]", "theta=[1, 2.5]") == [1, 2.5]
    assert parse_value("zero", "reset=zero") == "zero"
    for text in ("NaN", "Infinity", "-Infinity", "1e999", "[1, NaN]"):
        with pytest.raises(SpikecastError, match="is not a finite number"):
            parse_value(text, f"threshold={text}")


def _one_neuron(weight: float) -> Network:
    """One input pixel -> one output neuron of weight ``weight``, no bias."""
    return Network((Linear(torch.full((1, 1), weight)),), ("out",), (1,))


@pytest.mark.parametrize("mode", ["event", "timeslice"])
def test_sigma_delta_fires_exactly_up_to_the_limit_and_refuses_beyond(mode: str) -> None:
    """theta = 1, one input spike of charge 1: the output potential is w, so the EXACT rule
    fires floor(w / theta) spikes at once. 2**20 of them are simulated exactly; 2**24 (or
    weights of 1e30, which overflowed int64 into negative spike counts) are refused."""
    x, y = torch.ones(1, 1), torch.zeros(1, dtype=torch.long)
    recipe = SigmaDeltaRecipe.paper(theta=1.0, mode=mode)
    result = convert(_one_neuron(2.0**20), recipe).evaluate(x, y)
    assert result.spikes_per_neuron == 2**20 and result.details.negative_spikes == 0
    for weight in (float(MAX_FIRE), 1e30):
        with pytest.raises(SpikecastError, match=r"more than 2\*\*24 spikes from one neuron"):
            convert(_one_neuron(weight), recipe).evaluate(x, y)


def test_a_network_with_huge_weights_is_refused_not_negative() -> None:
    g = torch.Generator().manual_seed(0)
    net = Network((Linear(torch.rand(5, 4, generator=g) * 1e30), ReLU(),
                   Linear(torch.rand(3, 5, generator=g))), ("a", "a.relu", "b"), (4,))
    x = torch.rand(6, 4, generator=g)
    with pytest.raises(SpikecastError, match="weights or biases are too large"):
        convert(net, SigmaDeltaRecipe.paper(), calib_x=x).evaluate(
            x, torch.zeros(6, dtype=torch.long))

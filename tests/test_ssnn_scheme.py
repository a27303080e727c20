"""The ``ssnn`` recipe end to end: registry, defaults on wine-fc, counts, energy, errors."""

import pytest
import torch

from spikecast.datasets.loaders import load_dataset
from spikecast.energy.circuit import SSNN_180NM
from spikecast.frontends.torch_fx import capture
from spikecast.measure.result import accuracy
from spikecast.schemes import convert, get_recipe
from spikecast.schemes.ssnn import SSNNModel, SSNNRecipe, pwm_pulse_count
from spikecast.zoo.models import get_architecture


@pytest.fixture(scope="module")
def wine():
    return load_dataset("wine")


@pytest.fixture(scope="module")
def wine_ann(wine):
    """wine-fc trained full-batch on [0, 1]-scaled inputs (the demo's setting)."""
    torch.manual_seed(0)
    model = get_architecture("wine-fc").build()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(400):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(wine.x_train), wine.y_train).backward()
        opt.step()
    return model.eval()


def test_registry_returns_ssnn_recipe():
    recipe = get_recipe("ssnn", window=2e-6)
    assert isinstance(recipe, SSNNRecipe)
    assert recipe.params()["window"] == 2e-6
    assert "_calib_x" not in recipe.params()


def test_defaults_on_wine_within_one_point_of_ann(wine, wine_ann):
    with torch.no_grad():
        ann_acc = accuracy(wine_ann(wine.x_test).argmax(1), wine.y_test)
    model = convert(wine_ann, SSNNRecipe(), wine.x_train)
    assert isinstance(model, SSNNModel)
    res = model.evaluate(wine.x_test, wine.y_test)
    assert res.n_samples == 178
    assert res.accuracy >= ann_acc - 0.01
    assert res.curve.x_label == "time (us)"
    assert len(res.curve.x) == 50 and res.curve.x[-1] == pytest.approx(5.0)
    assert res.curve.accuracy[-1] == res.accuracy
    assert res.details.power_W == pytest.approx(SSNN_180NM.power_W(13, 480, 33))
    assert res.details.activity_energy_J == pytest.approx(res.spikes * 0.94e-12)
    assert 0 <= res.details.silent_samples <= 178
    assert [layer.neurons for layer in res.layers] == [30, 3]


def test_input_synaptic_events_are_pwm_pulses_times_fan_out(wine, wine_ann):
    """Analytic count: aligned phases, 5 us / 400 ns = 12.5 periods -> 13 on-intervals
    per input (every duty > 0), each delivered to 30 hidden neurons."""
    model = convert(wine_ann, SSNNRecipe(), wine.x_train)
    res = model.evaluate(wine.x_test[:10], wine.y_test[:10])
    assert res.layers[0].synaptic_events == pytest.approx(13 * 13 * 30)
    assert res.layers[1].synaptic_events == pytest.approx(res.layers[0].spikes * 3)


def test_calibration_record_rebuilds_the_same_circuit(wine, wine_ann):
    recipe = SSNNRecipe()
    model = convert(wine_ann, recipe, wine.x_train)
    assert recipe.params() == SSNNRecipe().params()  # no hidden state left in the recipe
    assert model.calibration.i_unit == model.circuit.i_unit
    net = capture(wine_ann, (13,))
    rebuilt = SSNNRecipe(**recipe.params()).build(net, model.calibration)
    fixed = SSNNRecipe(i_unit=model.calibration.i_unit)
    same = fixed.build(net, fixed.calibrate(net, None))
    for a, b, c in zip(model.circuit.weights, rebuilt.circuit.weights, same.circuit.weights,
                       strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_pwm_pulse_count_matches_enumeration():
    duty = torch.tensor([0.2, 0.5, 1.0, 0.0, 0.7], dtype=torch.float64)
    phase = torch.tensor([0.0, 390e-9, 100e-9, 0.0, 250e-9], dtype=torch.float64)
    got = pwm_pulse_count(duty, phase, 400e-9, 1e-6)
    expected = []
    for d, p in zip(duty.tolist(), phase.tolist(), strict=True):
        n = sum(
            1 for k in range(-3, 5)
            if d > 0 and p + k * 400e-9 < 1e-6 and p + k * 400e-9 + d * 400e-9 > 0
        )
        expected.append(n)
    assert got.tolist() == expected


def test_clock_simulator_matches_event_accuracy(wine, wine_ann):
    x, y = wine.x_test[::9], wine.y_test[::9]
    event = convert(wine_ann, SSNNRecipe(window=1e-6), wine.x_train).evaluate(x, y)
    clock = convert(wine_ann, SSNNRecipe(window=1e-6, simulator="clock", dt=1e-9),
                    wine.x_train).evaluate(x, y)
    assert clock.accuracy == pytest.approx(event.accuracy, abs=1 / len(y) + 1e-9)


def test_fixed_i_unit_and_no_calibration_data(wine_ann, wine):
    net = capture(wine_ann, (13,))
    fixed = SSNNRecipe(i_unit=2e-6)
    model = fixed.build(net, fixed.calibrate(net, None))
    assert model.circuit.i_unit == (2e-6, 2e-6)
    bound = SSNNRecipe()
    model = bound.build(net, bound.calibrate(net, None))
    res = model.evaluate(wine.x_test[:20], wine.y_test[:20])
    assert res.layers[0].spikes <= 30 * (5e-6 * 5.3e6 + 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"phase": "late"}, "phase must be one of"),
        ({"input_mapping": "log"}, "input_mapping must be one of 'fold', 'voltage'"),
        ({"simulator": "spice"}, "simulator must be one of 'event', 'clock'"),
        ({"rate_target": 0.0}, "rate_target"),
        ({"calibration_percentile": 0.0}, "calibration_percentile"),
        ({"i_unit": -1.0}, "i_unit"),
        ({"window": 0.0}, "window"),
        ({"c_mem": -1e-12}, "c_mem"),
        ({"energy_preset": "nope"}, "unknown energy preset"),
        ({"n_points": 0}, "n_points"),
    ],
)
def test_invalid_recipe_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SSNNRecipe(**kwargs)


def test_wrong_input_size_is_refused(wine_ann, wine):
    model = convert(wine_ann, SSNNRecipe(), wine.x_train)
    with pytest.raises(ValueError, match="13"):
        model.simulate(torch.rand(2, 12))

"""The contract every registered scheme passes (scikit-learn ``parametrize_with_checks``
style): convert, evaluate, save, load and evaluate again with identical results; the
user's model and the recipe are left as they were; batching does not change the result."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import spikecast
from spikecast.schemes import recipe_class, scheme_names


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(24, 6, generator=g), torch.randint(0, 3, (24,), generator=g)


def _same(a: spikecast.SchemeResult, b: spikecast.SchemeResult) -> None:
    assert torch.equal(a.predictions, b.predictions)
    assert torch.equal(a.trace.predictions, b.trace.predictions)
    assert a.to_dict() == b.to_dict()


@pytest.fixture(params=scheme_names())
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param


def test_convert_evaluate_save_load_identical(scheme: str, tmp_path: Path) -> None:
    model, (x, y) = _mlp(), _data()
    before = copy.deepcopy(model.state_dict())
    snn = spikecast.convert(model, scheme, calib_x=x)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert snn.scheme == scheme and snn.recipe.params() == recipe_class(scheme)().params()
    result = snn.evaluate(x, y)
    assert result.n_samples == 24 and 0.0 <= result.accuracy <= 1.0
    assert result.trace.predictions.shape == (24, len(result.trace.times))
    assert result.curve.accuracy[-1] == pytest.approx(
        float((result.trace.predictions[:, -1] == y).double().mean()))
    json.dumps(result.to_dict(), allow_nan=False)

    path = snn.save(tmp_path / f"{scheme}.spikecast")
    back = spikecast.load(path)
    assert type(back) is type(snn) and back.calibration == snn.calibration
    assert back.recipe.params() == snn.recipe.params()
    _same(back.evaluate(x, y), result)


def test_split_run_equals_full_run(scheme: str) -> None:
    model, (x, y) = _mlp(), _data()
    snn = spikecast.convert(model, scheme, calib_x=x)
    _same(snn.evaluate(x, y, batch_size=5), snn.evaluate(x, y, batch_size=24))


def test_build_is_pure(scheme: str) -> None:
    model, (x, _) = _mlp(), _data()
    net = spikecast.as_network(model, (6,))
    recipe = recipe_class(scheme)()
    calibration = recipe.calibrate(net, x)
    assert calibration == recipe.calibrate(net, x)
    a, b = recipe.build(net, calibration), recipe.build(net, calibration)
    assert a.calibration == b.calibration == type(calibration).from_dict(calibration.to_dict())
    _same(a.evaluate(*_data()), b.evaluate(*_data()))


def test_bad_parameters_and_inputs_are_refused(scheme: str) -> None:
    with pytest.raises(ValueError, match=f"scheme '{scheme}' has no parameter 'bogus'"):
        spikecast.convert(_mlp(), scheme, calib_x=_data()[0], bogus=1)
    snn = spikecast.convert(_mlp(), scheme, calib_x=_data()[0])
    with pytest.raises(ValueError, match="no samples to evaluate"):
        snn.evaluate(torch.zeros(0, 6), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="3 inputs but 2 labels"):
        snn.evaluate(torch.rand(3, 6), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN or infinite"):
        snn.evaluate(torch.full((2, 6), float("nan")), torch.zeros(2, dtype=torch.long))


def test_register_checks_the_recipe_and_unregister_removes_it() -> None:
    from dataclasses import dataclass
    from typing import ClassVar

    from spikecast.schemes import Recipe, register, unregister

    @dataclass(frozen=True)
    class NoReadout(Recipe):
        name: ClassVar[str] = "no-readout"

    with pytest.raises(ValueError, match="needs a 'readout' field"):
        register(NoReadout)
    with pytest.raises(ValueError, match="already registered"):
        register(recipe_class("rate"))
    with pytest.raises(ValueError, match="expects a Recipe subclass"):
        register(dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown scheme 'no-readout'"):
        unregister("no-readout")

"""Settling latency and accuracy at fractions of the window: hand-made traces, invariants."""

import pytest
import torch

from spikecast.measure.latency import (
    PredictionTrace,
    accuracy_at_fractions,
    latency,
    settling_index,
)
from spikecast.measure.result import Curve


def test_settling_index_golden() -> None:
    preds = torch.tensor([[0, 1, 1, 1], [2, 2, 2, 2], [1, 0, 1, 0], [0, 1, 0, 0]])
    assert settling_index(preds).tolist() == [1, 0, 3, 2]


def test_latency_golden() -> None:
    trace = PredictionTrace(
        (1.0, 2.0, 3.0, 4.0), torch.tensor([[0, 1, 1, 1], [2, 2, 2, 2], [1, 0, 1, 0]]), "step"
    )
    lat = latency(trace, torch.tensor([1, 2, 1]), fractions=(0.25, 0.5, 1.0))
    # settling times t[1], t[0], t[3] = 2, 1, 4
    assert lat.mean == pytest.approx(7 / 3)
    assert lat.median == 2.0
    assert lat.window == 4.0
    # t <= 1: [0, 2, 1] -> 2/3 correct; t <= 2: [1, 2, 0] -> 2/3; t = 4: [1, 2, 0] -> 2/3
    assert lat.accuracy_at == pytest.approx({"0.25": 2 / 3, "0.5": 2 / 3, "1": 2 / 3})
    assert lat.to_dict()["unit"] == "step"


def test_accuracy_at_fractions_before_first_point_is_none() -> None:
    curve = Curve("time (us)", [0.5, 1.0, 1.5, 2.0], [0.1, 0.4, 0.8, 0.9])
    got = accuracy_at_fractions(curve, (0.1, 0.5, 0.75, 1.0))
    assert got == {"0.1": None, "0.5": 0.4, "0.75": 0.8, "1": 0.9}


def test_settling_is_bounded_by_the_window() -> None:
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 3, (50, 7), generator=g)
    k = settling_index(preds)
    assert bool(((k >= 0) & (k <= 6)).all())
    for b in range(50):
        assert bool((preds[b, k[b]:] == preds[b, -1]).all())
        if k[b] > 0:
            assert preds[b, k[b] - 1] != preds[b, -1]


def test_trace_errors() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        PredictionTrace((2.0, 1.0), torch.zeros(1, 2), "step")
    with pytest.raises(ValueError, match="3 time points"):
        PredictionTrace((1.0, 2.0, 3.0), torch.zeros(1, 2), "step")
    trace = PredictionTrace((1.0, 2.0), torch.zeros(2, 2, dtype=torch.long), "step")
    with pytest.raises(ValueError, match="labels of shape"):
        latency(trace, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"fractions must be in \(0, 1\]"):
        latency(trace, torch.zeros(2, dtype=torch.long), fractions=(1.5,))

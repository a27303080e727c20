"""IF neuron: hand-computed spike trains, charge conservation, batching and validation."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikecast.schemes.rate.neuron import IFParams, IFState, Reset, if_step


def run(currents: list[float], p: IFParams) -> tuple[list[int], float]:
    state = IFState.zeros((1,))
    spikes = []
    for i in currents:
        s, state = if_step(torch.tensor([i]), state, p)
        spikes.append(int(s.item()))
    return spikes, float(state.v.item())


def test_subtract_reset_golden_train() -> None:
    # I = 0.375 (exact in binary), theta = 1, reset by subtraction:
    # v: .375, .75, 1.125->s->.125, .5, .875, 1.25->s->.25, .625, 1.0->s->0
    spikes, v = run([0.375] * 8, IFParams(1.0, Reset.SUBTRACT))
    assert spikes == [0, 0, 1, 0, 0, 1, 0, 1]
    assert v == 0.0


def test_zero_reset_golden_train() -> None:
    # Same input, reset to zero: the 0.125 / 0.25 excess is lost, so one spike every 3 steps:
    # v: .375, .75, 1.125->s->0, .375, .75, 1.125->s->0, .375, .75
    spikes, v = run([0.375] * 8, IFParams(1.0, "zero"))
    assert spikes == [0, 0, 1, 0, 0, 1, 0, 0]
    assert v == 0.75


def test_threshold_scales_the_train() -> None:
    # theta = 2, I = 0.75: v: .75, 1.5, 2.25->s->.25, 1.0, 1.75, 2.5->s->.5
    spikes, v = run([0.75] * 6, IFParams(2.0))
    assert spikes == [0, 0, 1, 0, 0, 1]
    assert v == 0.5


def test_negative_current_never_spikes_and_accumulates() -> None:
    spikes, v = run([-0.5, 0.25, 0.25, 0.5], IFParams())
    assert spikes == [0, 0, 0, 0]
    assert v == 0.5


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1.0, 2.0, allow_nan=False), min_size=1, max_size=40),
    st.floats(0.25, 3.0),
)
def test_subtract_reset_conserves_charge(currents: list[float], theta: float) -> None:
    # Invariant: v_T = sum(I) - theta * N_spikes, in float64.
    state = IFState(torch.zeros(1, dtype=torch.float64))
    p = IFParams(theta)
    n = 0.0
    for i in currents:
        s, state = if_step(torch.tensor([i], dtype=torch.float64), state, p)
        n += float(s.item())
    assert math.isclose(float(state.v.item()), sum(currents) - theta * n, abs_tol=1e-9)


def test_batched_step_matches_scalar_loop() -> None:
    g = torch.Generator().manual_seed(3)
    currents = torch.rand(12, 4, 5, generator=g) * 1.5 - 0.2
    for reset in Reset:
        p = IFParams(0.8, reset)
        state = IFState.zeros((4, 5))
        batched = []
        for t in range(12):
            s, state = if_step(currents[t], state, p)
            batched.append(s)
        for j in range(4):
            for k in range(5):
                train, _ = run(currents[:, j, k].tolist(), p)
                assert train == [int(b[j, k]) for b in batched]


def test_step_is_pure() -> None:
    state = IFState(torch.tensor([0.9]))
    if_step(torch.tensor([0.5]), state, IFParams())
    assert state.v.item() == pytest.approx(0.9)


@pytest.mark.parametrize("theta", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_threshold_raises(theta: float) -> None:
    with pytest.raises(ValueError, match="threshold must be a finite number > 0"):
        IFParams(theta)


def test_bad_reset_names_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"'subtract', 'zero'"):
        IFParams(1.0, "hard")
    assert IFParams(1.0, "ZERO").reset is Reset.ZERO


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="current shape"):
        if_step(torch.zeros(2, 3), IFState.zeros((2, 4)), IFParams())


def test_initial_membrane_half_threshold_rounds_the_rate() -> None:
    # v(0) = 0.5: .875, 1.25->s->.25, .625, 1.0->s->0, .375: 2 spikes = floor(5 x .375 + 1/2);
    # from v(0) = 0 (the run above): 1 spike = floor(5 x .375)
    p = IFParams(1.0, Reset.SUBTRACT, v_init=0.5)
    state = IFState.initial((1,), p)
    assert state.v.item() == 0.5
    spikes = []
    for _ in range(5):
        s, state = if_step(torch.tensor([0.375]), state, p)
        spikes.append(int(s.item()))
    assert spikes == [0, 1, 0, 1, 0] and state.v.item() == 0.375
    assert run([0.375] * 5, IFParams(1.0))[0] == [0, 0, 1, 0, 0]
    assert IFState.initial((2,), IFParams(2.0, v_init=0.25)).v.tolist() == [0.5, 0.5]


def test_rate_simulation_starts_at_v_init() -> None:
    from spikecast.ir.graph import Linear, Network, ReLU
    from spikecast.schemes import convert, get_recipe

    net = Network((Linear(torch.tensor([[0.5], [-0.5]])), ReLU(), Linear(torch.eye(2))),
                  ("fc1", "relu", "out"), (1,))
    x = torch.ones(1, 1)
    for v_init, first_layer in ((0.0, [0.0, 0.0]), (0.5, [1.0, 0.0])):  # 0.5 + 0.5 >= 1
        recipe = get_recipe("rate", steps=1, normalization="none", v_init=v_init)
        snn = convert(net, recipe)
        assert snn.neuron_spike_counts(x)[0].tolist() == [first_layer]
        assert snn.recipe.params()["v_init"] == v_init


@pytest.mark.parametrize("v_init", [-0.1, 1.0, float("nan"), True])
def test_bad_initial_membrane_raises(v_init) -> None:
    with pytest.raises(ValueError, match=r"v_init .* must be in \[0, 1\)"):
        IFParams(1.0, v_init=v_init)

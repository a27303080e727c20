"""Hysteresis band and multi-level input: hand-computed neuron and cascade spike sequences,
the K-level intensity-to-delay code, and path independence of the nearest-level quantizer
(event-driven == time-slice == Q-ANN in every final count, also on DAGs)."""

import numpy as np
import pytest
import torch
from dag_models import Inception, ResidualBlock, trained_like
from hypothesis import given, settings
from hypothesis import strategies as st

from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.schemes.sigma_delta.encoding import InputCoding, binarize, encode_frames
from spikecast.schemes.sigma_delta.neuron import FiringRule, NeuronParams, NeuronState, step
from spikecast.schemes.sigma_delta.program import build_program, population_stages
from spikecast.schemes.sigma_delta.qann import qann_forward
from spikecast.schemes.sigma_delta.sim_event import EventSimulator
from spikecast.schemes.sigma_delta.sim_timeslice import TimeSliceSimulator


def run(inputs, bias, params):
    state = NeuronState.initial(torch.tensor([bias], dtype=torch.float64))
    spikes = []
    for x in inputs:
        s, state = step(torch.tensor([x], dtype=torch.float64), state, params)
        spikes.append(int(s.item()))
    return spikes, state


# theta 1, bias 0: v = .75, .5, .875, .375 (dyadic, so every comparison is exact)
BAND_INPUTS = [0.75, -0.25, 0.375, -0.5]


def test_band_width_sets_where_the_neuron_rests():
    # h = 1: d < 1 throughout, no spike. h = .5 (u = .75): d = .75 -> +1 (Vq 1); then
    # d = -.5, -.125, -.625 all >= -.75: rests at Vq 1 though f = .375.
    # h = 0 (u = .5): +1 at d = .75; d = -.5 rests (band [-.5, .5)); d = -.625 -> -1: Vq 0,
    # the level nearest .375.
    assert run(BAND_INPUTS, 0.0, NeuronParams(1.0, "exact", hysteresis=1.0))[0] == [0, 0, 0, 0]
    spikes, state = run(BAND_INPUTS, 0.0, NeuronParams(1.0, "exact", hysteresis=0.5))
    assert spikes == [1, 0, 0, 0] and state.count.item() == 1
    spikes, state = run(BAND_INPUTS, 0.0, NeuronParams(1.0, "exact", hysteresis=0.0))
    assert spikes == [1, 0, 0, -1] and state.count.item() == 0


def test_nearest_level_exact_and_paper_rules():
    # theta .5, one update of 1.3: EXACT n = floor(1.3 / .5 + .5) = 3 (Vq 1.5, the level
    # nearest 1.3); PAPER one spike per update. Down: from Vq 1.5 to v = .2: d = -1.3 ->
    # -max(1, ceil(2.6 - .5)) = -3 (Vq 0, nearest .2).
    exact = NeuronParams(0.5, FiringRule.EXACT, hysteresis=0.0)
    assert run([1.3, -1.1], 0.0, exact)[0] == [3, -3]
    assert run([1.3], 0.0, NeuronParams(0.5, FiringRule.PAPER, hysteresis=0.0))[0] == [1]


@pytest.mark.parametrize("h", [-0.1, 1.5, float("nan")])
def test_hysteresis_outside_unit_interval_is_refused(h):
    with pytest.raises(ValueError, match=r"hysteresis must be in \[0, 1\]"):
        NeuronParams(1.0, hysteresis=h)


def test_k_level_code_golden():
    # K = 4, c = .5: cuts (k - .5) / 4 = .125, .375, .625, .875 (strictly exceeded)
    x = torch.tensor([[0.0, 0.1, 0.125, 0.13, 0.5, 0.9, 1.0]])
    coding = InputCoding(4, 0.5)
    assert coding.counts(x).tolist() == [[0, 0, 0, 1, 2, 4, 4]]
    assert coding.coded(x).tolist() == [[0, 0, 0, 0.25, 0.5, 1.0, 1.0]]
    assert coding.level == 0.25 and coding.duration == pytest.approx(0.875)
    index, ptr, time, count = coding.frames(x)
    # brighter first; the two 1.0 pixels at t = 0 in index order
    assert index.tolist() == [6, 5, 4, 3]
    assert time.tolist() == pytest.approx([0.0, 0.1, 0.5, 0.87])
    assert count.tolist() == [4, 4, 2, 1] and ptr.tolist() == [0, 4]


def test_one_level_is_the_paper_code():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 10, generator=g)
    x[0, 0] = 0.2  # float32 0.2 does not exceed the threshold 0.2
    coding = InputCoding(1, 0.2)
    assert torch.equal(coding.coded(x, x.dtype), (x > 0.2).float())
    assert torch.equal(binarize(x), (x > 0.2).float())
    index, ptr, time, count = coding.frames(x)
    old = encode_frames(x)
    assert all(np.array_equal(a, b) for a, b in zip((index, ptr, time), old, strict=True))
    assert np.all(count == 1)


@pytest.mark.parametrize("levels", [0, 2.5, True])
def test_input_levels_must_be_a_positive_integer(levels):
    with pytest.raises(ValueError, match="input_levels must be an integer >= 1"):
        InputCoding(levels, 0.5)


def difference_net():
    return Network((Linear(torch.tensor([[1.0, -1.0]])),), ("out",), (2,))


def test_multi_level_cascade_golden():
    # K = 4, c = .5, theta_out .25: pixel 0 (.9 -> 4 spikes of .25, t = .1) then pixel 1
    # (.6 -> 2 spikes, t = .4). out: v = .25, .5, .75, 1 -> +1 each; then v = .75, .5:
    # d = -.25 <= -.25 -> -1 each. Final v = .5 = 1.0 - .5, count 2.
    frame = torch.tensor([[0.9, 0.6]])
    prog = build_program(difference_net(), (0.25,), input_level=0.25)
    ev = EventSimulator(prog, "exact", 0.5, input_levels=4)
    rec = ev.run(frame)
    assert rec.input_spikes.tolist() == [6]
    assert rec.pos[0].tolist() == [0, 4] and rec.neg[0].tolist() == [0, 2]
    assert rec.updates[0].tolist() == [6, 0]
    assert rec.out_q[0].tolist() == [2] and rec.out_v[0].tolist() == [0.5]
    state = ev.final_state(frame[0])
    assert state.count[0].tolist() == [4, 2]
    # time slices: +4 x .25 at t = .1 fires 4 at once; -2 x .25 at t = .4 fires -2
    ts = TimeSliceSimulator(prog, "exact", 0.5, input_levels=4).run(frame)
    assert ts.pos[0].tolist() == [0, 4] and ts.neg[0].tolist() == [0, 2]
    assert ts.input_spikes.tolist() == [6]
    assert qann_forward(difference_net(), frame, (0.25,), 0.5, 1.0, 4)[-1].tolist() == [[0.5]]


def test_program_input_level_must_match_the_coding():
    prog = build_program(difference_net(), (0.25,))
    with pytest.raises(ValueError, match="input level"):
        EventSimulator(prog, input_levels=4)


def final_counts_agree(net, frames, thetas, levels, threshold):
    prog = build_program(net, thetas, 1.0 / levels)
    kw = {"hysteresis": 0.0, "input_levels": levels}
    event = EventSimulator(prog, "exact", threshold, **kw)
    sliced = TimeSliceSimulator(prog, "exact", threshold, **kw)
    qann = qann_forward(net, frames, thetas, threshold, 0.0, levels)
    position = {s.index: k for k, s in enumerate(net.stages())}
    pops = prog.populations()
    for f, frame in enumerate(frames):
        ev = event.final_state(frame)
        ts = sliced.run(frame[None])
        for pop, (m, stage) in enumerate(zip(pops, population_stages(net), strict=True)):
            # hidden: Q-ANN values are levels; output (identity): floor(z / theta + 1/2)
            level = qann[position[stage.index]][f].reshape(-1) / thetas[pop]
            want = level.round() if stage.relu else torch.floor(level + 0.5)
            assert np.array_equal(ev.count[m], want.numpy().astype(np.int64)), stage.name
        assert np.array_equal(ts.out_q[0], ev.count[-1])


@pytest.mark.parametrize("model", [ResidualBlock, Inception])
@pytest.mark.parametrize("levels,threshold", [(1, 0.2), (4, 0.5)])
def test_nearest_quantizer_final_state_is_path_independent_on_dags(model, levels, threshold):
    # h = 0: every neuron rests at the level nearest f(v) whatever order its spikes came in,
    # so both simulators end where the Q-ANN (nearest levels) is, population by population.
    torch.manual_seed(1)
    net = capture(trained_like(model()), (1, 6, 6))
    n_pop = len(population_stages(net))
    thetas = tuple(float(t) for t in np.linspace(0.15, 0.4, n_pop))
    frames = torch.rand(3, 1, 6, 6)
    final_counts_agree(net, frames, thetas, levels, threshold)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), levels=st.integers(1, 6))
def test_nearest_quantizer_path_independent_random_chains(seed, levels):
    rng = np.random.default_rng(seed)
    n_in, h = int(rng.integers(2, 7)), int(rng.integers(1, 6))

    def w(*shape):
        return torch.tensor(rng.normal(0, 0.8, shape), dtype=torch.float32)

    net = Network((Linear(w(h, n_in), w(h)), ReLU(), Linear(w(3, h), w(3))),
                  ("fc1", "r1", "fc2"), (n_in,))
    thetas = tuple(float(t) for t in rng.uniform(0.1, 0.6, 2))
    frames = torch.tensor(rng.uniform(0, 1, (3, n_in)))
    final_counts_agree(net, frames, thetas, levels, 0.5)

"""Golden spike sequences of one sigma-delta neuron (hand-computed) and parameter errors."""

import pytest
import torch

from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.schemes import convert
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.sigma_delta.encoding import (
    binarize,
    encode_frame,
    encode_frames,
    frame_duration,
)
from spikecast.schemes.sigma_delta.neuron import FiringRule, NeuronParams, NeuronState, step


def run(inputs, bias, params):
    state = NeuronState.initial(torch.tensor([bias]))
    spikes = []
    for x in inputs:
        s, state = step(torch.tensor([x], dtype=torch.float64), state, params)
        spikes.append(int(s.item()))
    return spikes, state


# bias 0.25, theta 0.5: v = 1.25, 1.75, 0.25, -0.5, 1.5 after each input
INPUTS = [1.0, 0.5, -1.5, -0.75, 2.0]


def test_paper_rule_fires_at_most_one_spike_per_event():
    # d = 1.25 -> +1 (Vq .5); d = 1.25 -> +1 (Vq 1); d = -.75 -> -1 (Vq .5);
    # relu(-.5) - .5 = -.5 -> -1 (Vq 0); d = 1.5 -> +1 (Vq .5, lagging f(v) = 1.5)
    spikes, state = run(INPUTS, 0.25, NeuronParams(0.5, FiringRule.PAPER))
    assert spikes == [1, 1, -1, -1, 1]
    assert state.count.item() == 1
    assert state.v.item() == 1.5


def test_exact_rule_fires_until_within_one_theta():
    # d = 1.25 -> +2 (Vq 1); d = .75 -> +1 (Vq 1.5); d = -1.25 -> -2 (Vq .5);
    # d = -.5 -> -1 (Vq 0); d = 1.5 -> +3 (Vq 1.5)
    spikes, state = run(INPUTS, 0.25, NeuronParams(0.5, FiringRule.EXACT))
    assert spikes == [2, 1, -2, -1, 3]
    assert state.count.item() == 3


def test_identity_activation_goes_negative_relu_stops_at_zero():
    linear, _ = run([1.0, -2.0], 0.0, NeuronParams(0.5, FiringRule.EXACT, relu=False))
    relu, _ = run([1.0, -2.0], 0.0, NeuronParams(0.5, FiringRule.EXACT, relu=True))
    assert linear == [2, -4]  # v = -1: d = -1 - 1 = -2 -> -4 spikes, Vq = -1
    assert relu == [2, -2]  # relu(-1) - 1 = -1 -> -2 spikes, Vq = 0


def test_hysteresis_no_spike_inside_band():
    # v oscillating between 0.9 and 1.1 around the level 1 never fires again (paper Fig. 1)
    spikes, _ = run([1.1, -0.2, 0.2, -0.2], 0.0, NeuronParams(1.0, FiringRule.EXACT))
    assert spikes == [1, 0, 0, 0]


@pytest.mark.parametrize("theta", [0.0, -1.0, float("inf"), float("nan")])
def test_theta_must_be_positive(theta):
    with pytest.raises(ValueError, match="theta must be a finite number > 0"):
        NeuronParams(theta)


def test_unknown_rule_lists_allowed():
    with pytest.raises(ValueError, match="'paper', 'exact'"):
        NeuronParams(1.0, "sometimes")


def test_intensity_to_delay_encoding():
    x = torch.tensor([[0.2, 1.0], [0.6, 0.6], [0.0, 0.25]])
    ev = encode_frame(x)
    # flat indices: 0:.2 (silent, not > .2), 1:1.0 -> t 0, 2,3: .6 -> t .4 (index order),
    # 5: .25 -> t .75
    assert ev.index.tolist() == [1, 2, 3, 5]
    assert ev.time.tolist() == pytest.approx([0.0, 0.4, 0.4, 0.75])
    assert binarize(x).flatten().tolist() == [0, 1, 1, 1, 0, 1]
    assert frame_duration() == pytest.approx(0.8)


def test_encoding_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"inputs in \[0, 1\]"):
        encode_frame(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="input threshold"):
        encode_frame(torch.tensor([0.5]), threshold=1.0)


def test_batch_encoding_equals_frame_by_frame_encoding() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 1, 4, 4, generator=g)
    x[1] = 0.1  # a frame without spikes
    x[2] = 0.1
    x[2, 0, 0, :] = 0.6  # four spikes at t = 0.4: ordered by pixel index
    index, ptr, time = encode_frames(x)
    n0 = int((x[0] > 0.2).sum())
    assert ptr.tolist()[:4] == [0, n0, n0, n0 + 4]
    assert index[ptr[2]:ptr[3]].tolist() == [0, 1, 2, 3]
    # pixel order and time order differ: the brighter pixel 1 fires first
    index, ptr, time = encode_frames(torch.tensor([[0.3, 0.9], [0.9, 0.3], [0.5, 0.5]]))
    assert index.tolist() == [1, 0, 0, 1, 0, 1] and ptr.tolist() == [0, 2, 4, 6]
    assert time.tolist() == pytest.approx([0.1, 0.7, 0.1, 0.7, 0.5, 0.5])
    index, ptr, time = encode_frames(x)
    for f in range(5):
        ev = encode_frame(x[f])
        assert index[ptr[f]:ptr[f + 1]].tolist() == ev.index.tolist()
        assert time[ptr[f]:ptr[f + 1]].tolist() == ev.time.tolist()


@pytest.mark.parametrize("rule", ["exact", "paper"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_event_kernel_equals_the_pure_step(rule: str, seed: int) -> None:
    """The numba kernel's first population (fed only by input spikes) and its linear output
    layer end in the state that replaying the frame's input events through ``step`` gives:
    one step at t = 0 (bias-driven firing), then one per input spike in processing order."""
    g = torch.Generator().manual_seed(seed)
    for relu in (True, False):
        w = torch.randn(7, 12, generator=g, dtype=torch.float64)
        b = torch.randn(7, generator=g, dtype=torch.float64) * 0.6
        layers: tuple = (Linear(w.float(), b.float()),)
        if relu:
            layers = (*layers, ReLU(), Linear(torch.randn(3, 7, generator=g)))
        net = Network(layers, tuple(f"l{i}" for i in range(len(layers))), (12,))
        snn = convert(net, SigmaDeltaRecipe.paper(theta=0.3, rule=rule))
        frame = torch.rand(12, generator=g)
        events = encode_frame(frame, 0.2)
        p = NeuronParams(0.3, rule, relu)
        state = NeuronState.initial(b.float().double())
        _, state = step(torch.zeros(7, dtype=torch.float64), state, p)
        for index in events.index:
            _, state = step(w.float().double()[:, index], state, p)
        final = snn.final_state(frame)
        node = snn.program.populations()[0]
        assert final.count[node].tolist() == state.count.long().tolist()
        assert final.v[node] == pytest.approx(state.v.numpy(), abs=1e-12)

"""Rate-coded scheme: hand-computed trains, convergence to the ANN, gating, readout, counts."""

import numpy as np
import pytest
import torch

from spikecast.ir.graph import Conv2d, Flatten, Linear, MaxPool2d, Network, ReLU
from spikecast.measure.counts import fan_out
from spikecast.schemes import convert, get_recipe
from spikecast.schemes.rate import RateModel, RateRecipe, accuracy_at
from spikecast.schemes.rate.sim import InputCoding, lex_argmax, maxpool_gate, ordered_rank


def unnormalized(net: Network, **params: object) -> RateModel:
    """The hand-computed spike trains below start from v = 0 (``v_init=0``)."""
    recipe = RateRecipe(normalization="none", **({"v_init": 0.0} | params))
    return recipe.build(net, recipe.calibrate(net, None))


def chain(w_hidden: float, w_out: float) -> Network:
    """1 input -> 1 hidden IF -> 1 output IF, no bias."""
    return Network(
        (Linear(torch.tensor([[w_hidden]])), ReLU(), Linear(torch.tensor([[w_out]]))),
        ("hidden", "hidden.relu", "out"),
        (1,),
    )


def spike_steps(model: RateModel, x: torch.Tensor, steps: int) -> list[list[int]]:
    """1-based steps at which each population spiked (single sample, single neuron each)."""
    prev = [0.0, 0.0]
    trains: list[list[int]] = [[], []]
    for t in range(1, steps + 1):
        counts = [float(c.sum()) for c in model.simulate(x, t).counts]
        for k in range(2):
            if counts[k] > prev[k]:
                trains[k].append(t)
        prev = counts
    return trains


def test_two_neuron_chain_subtract_golden() -> None:
    # x = 1 (constant current), hidden gets 0.625/step, reset by subtraction:
    #   v_h: .625, 1.25->s2->.25, .875, 1.5->s4->.5, 1.125->s5->.125, .75, 1.375->s7->.375,
    #        1.0->s8->0
    # the output gets 0.75 in the steps the hidden neuron spikes (same step):
    #   v_o: t2 .75, t4 1.5->s->.5, t5 1.25->s->.25, t7 1.0->s->0, t8 .75
    model = unnormalized(chain(0.625, 0.75))
    hidden, out = spike_steps(model, torch.ones(1, 1), 8)
    assert hidden == [2, 4, 5, 7, 8]
    assert out == [4, 5, 7]
    final = model.simulate(torch.ones(1, 1), 8)
    assert final.membranes[0].item() == 0.0
    assert final.membranes[1].item() == 0.75


def test_two_neuron_chain_zero_reset_golden() -> None:
    # Reset to zero drops the excess: v_h: .625, 1.25->s->0, ... spikes every 2nd step;
    #   v_o: t2 .75, t4 1.5->s->0, t6 .75, t8 1.5->s->0
    model = unnormalized(chain(0.625, 0.75), reset="zero")
    hidden, out = spike_steps(model, torch.ones(1, 1), 8)
    assert hidden == [2, 4, 6, 8]
    assert out == [4, 8]


def random_mlp(g: torch.Generator) -> Network:
    """8-16-12-4 with a bias and a non-negative output layer."""
    layers = (
        Linear(torch.randn(16, 8, generator=g) * 0.5, torch.randn(16, generator=g) * 0.1),
        ReLU(),
        Linear(torch.randn(12, 16, generator=g) * 0.4),
        ReLU(),
        Linear(torch.rand(4, 12, generator=g) * 0.3),
    )
    return Network(layers, ("fc1", "fc1.relu", "fc2", "fc2.relu", "out"), (8,))


@pytest.mark.parametrize("threshold", [1.0, 2.0])
def test_rates_converge_to_normalized_activations(threshold: float) -> None:
    g = torch.Generator().manual_seed(0)
    net = random_mlp(g)
    x = torch.rand(32, 8, generator=g)
    model = convert(net, RateRecipe(percentile=100.0, threshold=threshold), x)
    acts = model.network.activations(x)
    targets = [acts[1], acts[3], acts[4].clamp(min=0)]
    errors = []
    for steps in (10, 100, 1000):
        rates = model.rates(x, steps)
        errors.append(max(float((r - a).abs().max()) for r, a in zip(rates, targets, strict=True)))
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 0.01


def test_rates_with_threshold_estimate_activation() -> None:
    # Spikes carry charge theta, so theta x rate still estimates the normalized activation
    # (below theta); one layer, T = 100: floor(100 x .25 / 2) = 12 and floor(100 x .75 / 2) = 37
    # spikes, so theta x rate = .24 and .74.
    net = Network((Linear(torch.tensor([[0.25], [0.75]])),), ("out",), (1,))
    model = unnormalized(net, threshold=2.0)
    rates = model.rates(torch.ones(1, 1), 100)[0]
    assert rates.tolist() == [[pytest.approx(0.24), pytest.approx(0.74)]]


def test_maxpool_gate_picks_highest_count() -> None:
    pool = MaxPool2d((2, 2), (2, 2))
    counts = torch.tensor([[[[3.0, 1.0], [2.0, 0.0]]]])
    spikes = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    out, mem = maxpool_gate(pool, spikes, counts, torch.tensor([[[[0.1, 0.9], [0.8, 0.7]]]]))
    # neuron (0, 0) has the most spikes so far; it is silent now, so nothing passes
    assert out.tolist() == [[[[0.0]]]]
    assert mem.tolist() == [[[[pytest.approx(0.1)]]]]
    counts[0, 0, 0, 0] = 1.0
    out, _ = maxpool_gate(pool, spikes, counts, None)
    assert out.tolist() == [[[[1.0]]]]  # now (1, 0) with count 2 leads and spiked


def test_maxpool_gate_tie_breaks() -> None:
    pool = MaxPool2d((2, 2), (2, 2))
    counts = torch.tensor([[[[2.0, 2.0], [0.0, 2.0]]]])
    spikes = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    membrane = torch.tensor([[[[0.2, 0.5], [0.9, 0.5]]]])
    out, mem = maxpool_gate(pool, spikes, counts, membrane)
    assert out.item() == 1.0 and mem.item() == 0.5  # count tie -> larger v -> (0, 1)
    membrane[0, 0, 0, 0] = 0.5
    out, _ = maxpool_gate(pool, spikes, counts, membrane)
    assert out.item() == 0.0  # full tie -> lowest index (0, 0), which is silent


def test_maxpool_gate_padding_never_wins() -> None:
    pool = MaxPool2d((2, 2), (2, 2), (1, 1))
    counts = torch.zeros(1, 1, 2, 2)
    spikes = torch.zeros(1, 1, 2, 2)
    membrane = torch.full((1, 1, 2, 2), -0.5)
    spikes[0, 0, 1, 1] = 1.0
    counts[0, 0, 1, 1] = 1.0
    out, mem = maxpool_gate(pool, spikes, counts, membrane)
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[0.0, 0.0], [0.0, 1.0]]
    assert mem[0, 0].tolist() == [[-0.5, -0.5], [-0.5, -0.5]]


def gate_oracle(
    pool: MaxPool2d, spikes: np.ndarray, counts: np.ndarray, membrane: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Plain-numpy gating: scan every window, keep (count, v) lexicographically largest,
    first in row-major order on ties; padded positions are skipped."""
    (kh, kw), (sh, sw), (ph, pw) = pool.kernel_size, pool.stride, pool.padding
    b, c, h, w = spikes.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out, out_v = np.zeros((b, c, oh, ow)), np.zeros((b, c, oh, ow))
    for n, ch, i, j in np.ndindex(b, c, oh, ow):
        best = None
        for di, dj in np.ndindex(kh, kw):
            r, q = i * sh - ph + di, j * sw - pw + dj
            if 0 <= r < h and 0 <= q < w:
                cand = (counts[n, ch, r, q], membrane[n, ch, r, q])
                if best is None or cand > best[0]:
                    best = (cand, r, q)
        out[n, ch, i, j] = spikes[n, ch, best[1], best[2]]
        out_v[n, ch, i, j] = membrane[n, ch, best[1], best[2]]
    return out, out_v


@pytest.mark.parametrize(
    "pool",
    [MaxPool2d((2, 2), (2, 2)), MaxPool2d((3, 3), (2, 2), (1, 1)), MaxPool2d((2, 3), (1, 2))],
)
def test_maxpool_gate_matches_numpy_oracle(pool: MaxPool2d) -> None:
    g = torch.Generator().manual_seed(5)
    counts = torch.randint(0, 3, (2, 3, 6, 7), generator=g).float()
    spikes = torch.randint(0, 2, counts.shape, generator=g).float()
    # few distinct membrane values (incl. negatives and -0.0) so every tie rule is exercised
    membrane = torch.randint(-2, 2, counts.shape, generator=g).float() * 0.375
    membrane[0, 0, 0, 0] = -0.0
    out, out_v = maxpool_gate(pool, spikes, counts, membrane)
    want, want_v = gate_oracle(pool, spikes.numpy(), counts.numpy(), membrane.numpy())
    np.testing.assert_array_equal(out.numpy(), want)
    np.testing.assert_array_equal(out_v.numpy(), want_v)


def test_ordered_rank_preserves_float_order() -> None:
    v = torch.tensor([-3e38, -2.5, -1e-30, -0.0, 0.0, 1e-45, 0.375, 1.0, 7e37])
    ranks = ordered_rank(v)
    assert torch.all(ranks[1:] >= ranks[:-1])
    assert ranks[3] == ranks[4]  # -0.0 == +0.0
    assert torch.all(ranks[[0, 1, 2, 4, 5, 6, 7]] < ranks[[1, 2, 3, 5, 6, 7, 8]])


def test_maxpool_in_network_forwards_leading_neuron() -> None:
    # conv 1x1 (w = 1) on a 1x2 image x = (0.5, 0.75): the 0.75 neuron leads the pool.
    # Its train (subtract): v .75, 1.5->s2, 1.25->s3, 1.0->s4 -> spikes at 2, 3, 4 (3 in 4 steps)
    # and the 0.5 neuron spikes at 2, 4; the pool forwards only the leader's 3 spikes.
    net = Network(
        (Conv2d(torch.ones(1, 1, 1, 1)), ReLU(), MaxPool2d((1, 2), (1, 2)), Flatten(),
         Linear(torch.ones(1, 1))),
        ("conv", "relu", "pool", "flat", "out"),
        (1, 1, 2),
    )
    out = unnormalized(net).simulate(torch.tensor([[[[0.5, 0.75]]]]), 4)
    assert out.counts[0].flatten().tolist() == [2.0, 3.0]
    assert out.arrivals[4].flatten().tolist() == [3.0]
    assert out.counts[1].item() == 3.0


def test_readout_tie_break_by_membrane() -> None:
    # One output layer, x = 1: t1 v = (w0, w1), no spikes -> tie on counts -> larger v.
    # t2: w = .5 reaches 1.0 -> spikes -> 0; w = .75 reaches 1.5 -> spikes -> .5.
    x = torch.ones(1, 1)
    for weights, expected in (([0.5, 0.75], [1, 1]), ([0.75, 0.5], [0, 0]), ([0.5, 0.5], [0, 0])):
        net = Network((Linear(torch.tensor(weights).reshape(2, 1)),), ("out",), (1,))
        preds = unnormalized(net).simulate(x, 2).predictions[:, 0].tolist()
        assert preds == expected


@pytest.mark.parametrize(
    ("readout", "accuracy"), [("count-membrane", 1.0), ("spike-count", 0.0), ("membrane", 1.0)])
def test_readout_setting_and_tie_statistics(readout: str, accuracy: float) -> None:
    # T = 2, x = 1, w = (.5, .75): both outputs spike once (a tie), v = (0, .5) after; the
    # accumulated potentials theta n + v = (1, 1.5) favour class 1, the label.
    net = Network((Linear(torch.tensor([[0.5], [0.75]])),), ("out",), (1,))
    res = unnormalized(net, steps=2, readout=readout).evaluate(
        torch.ones(3, 1), torch.ones(3, dtype=torch.long))
    assert res.readout == readout and res.accuracy == accuracy
    assert res.accuracy_spike_count == 0.0
    assert (res.tied_fraction, res.silent_fraction) == (1.0, 0.0)
    # after step 1 nothing has spiked: silent, and tied (every output at 0)
    assert res.curve.accuracy[0] == (0.0 if readout == "spike-count" else 1.0)
    silent = unnormalized(net, steps=1, readout=readout).evaluate(
        torch.ones(3, 1), torch.ones(3, dtype=torch.long))
    assert (silent.silent_fraction, silent.tied_fraction) == (1.0, 1.0)
    assert silent.accuracy_spike_count == 0.0


def test_lex_argmax_orders_count_then_membrane_then_index() -> None:
    counts = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    membrane = torch.tensor([[9.0, 0.1, 0.4, 9.0], [0.3, 0.3, -1.0, 0.2]])
    assert lex_argmax(counts, membrane, dim=1).tolist() == [2, 0]


def test_poisson_input_is_seeded_and_converges_to_x() -> None:
    net = Network((Flatten(), Linear(torch.eye(6))), ("flat", "out"), (2, 3))
    x = torch.tensor([[[0.0, 0.1, 0.3], [0.5, 0.8, 1.0]]])
    model = unnormalized(net, input_coding="poisson", seed=7)
    first = model.simulate(x, 4000)
    again = model.simulate(x, 4000)
    other = unnormalized(net, input_coding="poisson", seed=8).simulate(x, 4000)
    assert torch.equal(first.arrivals[1], again.arrivals[1])
    assert not torch.equal(first.arrivals[1], other.arrivals[1])
    rate = first.arrivals[1] / 4000
    # std of a Bernoulli rate estimate is at most sqrt(0.25 / 4000) = 0.0079
    assert torch.allclose(rate, x.flatten(1), atol=0.04)
    assert rate[0, 0] == 0.0 and rate[0, 5] == 1.0
    assert first.input_spikes.item() == first.arrivals[1].sum().item()


def test_data_based_normalization_keeps_ann_argmax() -> None:
    g = torch.Generator().manual_seed(1)
    net = random_mlp(g)
    x = torch.rand(200, 8, generator=g)
    model = convert(net, RateRecipe(percentile=99.0), x)
    assert torch.equal(model.network.forward(x).argmax(1), net.forward(x).argmax(1))
    # and the simulated SNN agrees with the plain ANN on nearly every sample at T = 500
    snn = model.simulate(x, 500).predictions[-1]
    assert float((snn == net.forward(x).argmax(1)).float().mean()) >= 0.95


def conv_net() -> Network:
    """(1,3,3) -> 1x1 conv (w = .5) + ReLU -> 3x3 conv 'same' (w = .125) -> output."""
    return Network(
        (Conv2d(torch.full((1, 1, 1, 1), 0.5)), ReLU(),
         Conv2d(torch.full((1, 1, 3, 3), 0.125), padding=(1, 1))),
        ("c1", "c1.relu", "c2"),
        (1, 3, 3),
    )


def test_spikes_and_events_match_analytic_counts() -> None:
    # x = 1 everywhere, T = 4: each hidden neuron gets .5/step -> spikes at t = 2, 4: 2 each,
    # 18 in total. Fan-out of the 3x3 'same' conv: corners 4, edges 6, centre 9 -> sum 49,
    # so 2 x 49 = 98 events. The output centre sees 9 x .125 = 1.125 at t = 2, 4 -> spikes at
    # t2 (v .125) and t4 (v .25): 2 spikes; corners see 4 x .125 = .5 per hidden volley -> 1
    # spike (t4); edges 6 x .125 = .75 -> 1 spike (t4, v .5): 1 x 2 + 4 + 4 = 10 spikes.
    model = unnormalized(conv_net(), steps=4)
    result = model.evaluate(torch.ones(3, 1, 3, 3), torch.zeros(3, dtype=torch.long))
    hidden, out = result.layers
    assert fan_out(model.network.layers[2], (1, 3, 3)).sum().item() == 49
    assert (hidden.spikes, hidden.synaptic_events) == (18.0, 0.0)  # analog input: 0 events
    assert (out.spikes, out.synaptic_events) == (10.0, 98.0)
    assert result.analog_input_macs == 9
    assert result.spikes_per_neuron == pytest.approx(28 / 18)


def test_poisson_first_layer_events_are_input_spikes() -> None:
    model = unnormalized(conv_net(), steps=50, input_coding="poisson")
    x = torch.rand(4, 1, 3, 3, generator=torch.Generator().manual_seed(2))
    result = model.evaluate(x, torch.zeros(4, dtype=torch.long))
    # 1x1 conv: fan-out 1, so events = input spikes (per-sample means)
    assert result.layers[0].synaptic_events == pytest.approx(result.input_spikes)
    assert result.input_spikes > 0
    assert result.analog_input_macs == 0


def test_one_long_run_gives_every_shorter_horizon() -> None:
    g = torch.Generator().manual_seed(4)
    net = random_mlp(g)
    x, y = torch.rand(40, 8, generator=g), torch.randint(0, 4, (40,), generator=g)
    long = convert(net, RateRecipe(steps=25), x).evaluate(x, y, batch_size=16)
    short = convert(net, RateRecipe(steps=15), x).evaluate(x, y, batch_size=7)
    assert long.curve.x == [float(t) for t in range(1, 26)]
    assert long.curve.accuracy[:15] == short.curve.accuracy
    assert accuracy_at(long, 15) == short.accuracy
    assert accuracy_at(long, 25) == long.accuracy
    oracle = convert(net, RateRecipe(steps=25), x).simulate(x).predictions[-1]
    assert long.accuracy == pytest.approx(float((oracle == y).float().mean()))
    assert long.params["normalization"] == "data" and long.time_steps == 25
    with pytest.raises(ValueError, match=r"steps must be in \[1, 25\]"):
        accuracy_at(long, 26)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"steps": 0}, r"steps must be an integer in \[1, 2097152\]"),
        ({"steps": 2.5}, "parameter 'steps' must be an integer, got 2.5"),
        ({"steps": 2**21 + 1}, "steps must be an integer in"),
        ({"percentile": 0}, r"percentile must be in \(0, 100\]"),
        ({"percentile": 100.5}, r"percentile must be in \(0, 100\]"),
        ({"normalization": "max"}, "allowed: 'data', 'model', 'none'"),
        ({"input_coding": "latency"}, "allowed: 'constant', 'poisson'"),
        ({"reset": "hard"}, "allowed: 'subtract', 'zero'"),
        ({"threshold": 0.0}, "threshold must be a finite number > 0"),
        ({"threshold": float("inf")}, "parameter 'threshold' must be a finite number, got inf"),
        ({"threshold": float("nan")}, "parameter 'threshold' must be a finite number, got nan"),
        ({"readout": "vote"}, "allowed: .spike-count., .count-membrane., .membrane."),
        ({"seed": "a"}, "parameter 'seed' must be an integer, got 'a'"),
        ({"seed": 2**32}, r"seed must be an integer in \[0, 4294967295\], got 4294967296"),
    ],
)
def test_invalid_params_raise(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_recipe("rate", **params)


def test_string_params_become_enums() -> None:
    recipe = get_recipe("rate", normalization="MODEL", input_coding="Poisson", reset="zero")
    assert recipe.input_coding is InputCoding.POISSON
    assert recipe.params() == {
        "steps": 64, "normalization": "model", "percentile": 99.9, "reset": "zero",
        "input_coding": "poisson", "seed": 0, "threshold": 1.0, "v_init": 0.5,
        "readout": "count-membrane", "device": "cpu",
    }


def test_bad_inputs_raise() -> None:
    net = chain(0.5, 0.5)
    with pytest.raises(ValueError, match="needs calibration inputs"):
        RateRecipe().calibrate(net, None)
    with pytest.raises(ValueError, match=r"range over \[2, 2\].*needs inputs in \[0, 1\]"):
        unnormalized(net, input_coding="poisson").simulate(torch.full((1, 1), 2.0), 3)
    with pytest.raises(ValueError, match=r"the network expects \(1,\)"):
        unnormalized(net).simulate(torch.ones(2, 3), 3)
    with pytest.raises(ValueError, match="3 inputs but 2 labels"):
        unnormalized(net).evaluate(torch.ones(3, 1), torch.zeros(2, dtype=torch.long))


class Square:
    """A layer type the rate simulator does not know."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def test_unsupported_layer_is_named() -> None:
    net = Network((Linear(torch.ones(2, 2)), Square()), ("fc", "sq"), (2,))
    with pytest.raises(ValueError, match=r"layer 'sq' \(Square\): not supported"):
        unnormalized(net).simulate(torch.ones(1, 2), 2)
    with pytest.raises(ValueError, match="the output must be a Linear"):
        unnormalized(Network((Flatten(),), ("flat",), (2,))).simulate(torch.ones(1, 2), 2)

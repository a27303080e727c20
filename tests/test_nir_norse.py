"""Cross-check: our exported NIR graphs run in norse (via nirtorch) spike exactly like
spikecast. norse's IAF fires on v - v_th > 0 (strict, as NIR), resets to v_reset, adds
its input without r or dt, and nirtorch sums the edges into a node."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")
norse_torch = pytest.importorskip("norse.torch")

from spikecast.io.nir import export_nir  # noqa: E402
from spikecast.ir.graph import Add, Flatten, Linear, Network, ReLU  # noqa: E402
from spikecast.schemes import convert  # noqa: E402
from spikecast.schemes.rate import RateModel, RateRecipe  # noqa: E402


def _norse_counts(
    graph: nir.NIRGraph, x: torch.Tensor, steps: int, names: tuple[str, ...], dt: float = 1.0
) -> list[torch.Tensor]:
    """Spike counts of the named IF nodes after ``steps`` norse steps on constant ``x``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = norse_torch.from_nir(graph, dt=dt)
    counts = [0.0] * len(names)
    state = None
    with torch.no_grad():
        for _ in range(steps):
            _, state = module(x, state)
            counts = [c + state.cache[n] for c, n in zip(counts, names, strict=True)]
    return counts


def _model(net: Network, steps: int, **params) -> RateModel:
    return convert(net, RateRecipe(steps=steps, normalization="none", v_init=0.0, **params))


def _mlp(seed: int) -> Network:
    g = torch.Generator().manual_seed(seed)
    return Network(
        (Linear(torch.rand(16, 8, generator=g) * 0.6 - 0.15, torch.rand(16, generator=g) * 0.1),
         ReLU(), Linear(torch.rand(12, 16, generator=g) * 0.5 - 0.15), ReLU(),
         Linear(torch.rand(4, 12, generator=g) * 0.5 - 0.1, torch.rand(4, generator=g) * 0.05)),
        ("fc1", "act1", "fc2", "act2", "fc3"), (8,),
    )


@pytest.mark.parametrize(("theta", "dt"), [(1.0, 1.0), (1.0, 1e-3), (0.5, 1.0)])
def test_linear_if_network_counts_equal_norse(theta, dt):
    """Every population's counts agree; norse's IAF ignores dt (the dt = 1 grid of the
    export), and theta = 0.5 exercises the charge scaling W theta."""
    model = _model(_mlp(0), 40, reset="zero", threshold=theta)
    x = torch.rand(32, 8, generator=torch.Generator().manual_seed(1))
    ours = model.simulate(x).counts
    theirs = _norse_counts(export_nir(model), x, 40, ("act1", "act2", "fc3_if"), dt)
    assert all(c.sum() > 50 for c in ours)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_strict_threshold_translation_matters():
    """I = 0.5 per step reaches v = theta = 1 exactly at step 2: spikecast fires (v >= theta)
    and so does norse with the exported v_thr = nextafter(1, 0); with v_thr = theta norse
    would fire only when v = 1.5 (steps 3, then 6): 2 spikes in 4 steps against 1."""
    net = Network((Linear(torch.tensor([[0.5]])),), ("fc",), (1,))
    model = _model(net, 4, reset="zero")
    x = torch.ones(1, 1)
    graph = export_nir(model)
    assert model.simulate(x).counts[0].item() == 2
    assert _norse_counts(graph, x, 4, ("fc_if",))[0].item() == 2
    graph.nodes["fc_if"].v_threshold = np.ones(1, dtype=np.float32)
    assert _norse_counts(graph, x, 4, ("fc_if",))[0].item() == 1


def test_residual_add_counts_equal_norse():
    g = torch.Generator().manual_seed(2)
    net = Network(
        (Linear(torch.rand(6, 5, generator=g) * 0.5, torch.rand(6, generator=g) * 0.1), ReLU(),
         Linear(torch.rand(6, 6, generator=g) * 0.6 - 0.3), Add((1.0, 1.0)), ReLU(),
         Linear(torch.rand(3, 6, generator=g) * 0.5)),
        ("fc1", "act1", "fc2", "add", "act2", "fc3"), (5,),
        ((-1,), (0,), (1,), (2, 1), (3,), (4,)),
    )
    model = _model(net, 30, reset="zero")
    x = torch.rand(16, 5, generator=g)
    ours = model.simulate(x).counts
    theirs = _norse_counts(export_nir(model), x, 30, ("act1", "act2", "fc3_if"))
    assert all(c.sum() > 20 for c in ours)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_subtract_approximation_is_reset_to_zero_in_norse():
    """approximate=True writes reset-to-zero: norse reproduces the reset='zero' model."""
    subtract = _model(_mlp(3), 40)
    zero = _model(_mlp(3), 40, reset="zero")
    x = torch.rand(16, 8, generator=torch.Generator().manual_seed(4))
    theirs = _norse_counts(export_nir(subtract, approximate=True), x, 40,
                           ("act1", "act2", "fc3_if"))
    for a, b in zip(zero.simulate(x).counts, theirs, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(subtract.simulate(x).counts[0], theirs[0])


def test_negative_dim_flatten_is_per_sample_in_norse_batched_or_not():
    """NIR shapes exclude the batch; nirtorch (2.6) hands start_dim/end_dim to
    torch.nn.Flatten on batched tensors, so Flatten(start_dim=0) flattened the batch too.
    The export writes Flatten(start_dim=-3, end_dim=-1): one batch of 2 or one sample at a
    time, the same counts."""
    g = torch.Generator().manual_seed(5)
    net = Network((Flatten(), Linear(torch.rand(3, 4, generator=g) * 0.4)),
                  ("flat", "fc"), (1, 2, 2))
    model = _model(net, 20, reset="zero")
    x = torch.rand(2, 1, 2, 2, generator=g)
    graph = export_nir(model)
    assert graph.nodes["flat"].start_dim == -3
    ours = model.simulate(x).counts[0]
    assert ours.sum() > 5
    assert torch.equal(_norse_counts(graph, x, 20, ("fc_if",))[0], ours)
    for i in range(2):
        assert torch.equal(_norse_counts(graph, x[i], 20, ("fc_if",))[0], ours[i])

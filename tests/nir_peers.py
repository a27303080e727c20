"""Run a NIR graph in snnTorch 1.0.0, norse 1.1.0 or sinabs 3.1.3 and count the spikes of
named neuron nodes (forward hooks on the modules their importers build).

* snnTorch: ``import_from_nir`` (nirtorch's fx interpreter); its neurons keep their
  membrane inside the module (``init_hidden``), cleared by ``snntorch.utils.reset``;
* norse: ``from_nir`` returns a module stepped as ``out, state = m(x, state)``;
* sinabs: ``from_nir(batch_size=B)`` builds "squeeze" layers that take the whole spike
  train at once, shape (B * T, ...), sample-major.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch


def _hooked_counts(
    module: torch.nn.Module, names: tuple[str, ...], run: Callable[[], None]
) -> list[torch.Tensor]:
    modules = dict(module.named_modules())
    counts: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:

        def hook(_mod, _inp, out, name=name):
            spikes = (out[0] if isinstance(out, tuple) else out).detach()
            counts[name] = counts[name] + spikes if name in counts else spikes.clone()

        handles.append(modules[name].register_forward_hook(hook))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return [counts[n] for n in names]


def _quiet(load: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load()


def snntorch_run(module, x: torch.Tensor, steps: int, names: tuple[str, ...]):
    """Spike counts of the named snnTorch modules after ``steps`` steps on constant ``x``."""
    import snntorch.utils

    snntorch.utils.reset(module)

    def run() -> None:
        with torch.no_grad():
            for _ in range(steps):
                module(x)

    return _hooked_counts(module, names, run)


def snntorch_counts(graph, x: torch.Tensor, steps: int, names: tuple[str, ...]):
    """:func:`snntorch_run` of ``graph`` as snnTorch's ``import_from_nir`` builds it."""
    from snntorch.import_nir import import_from_nir

    return snntorch_run(_quiet(lambda: import_from_nir(graph)), x, steps, names)


def norse_run(module, x: torch.Tensor, steps: int, names: tuple[str, ...]):
    """Spike counts of the named norse modules after ``steps`` steps on constant ``x``."""

    def run() -> None:
        state = None
        with torch.no_grad():
            for _ in range(steps):
                _, state = module(x, state)

    return _hooked_counts(module, names, run)


def norse_counts(graph, x: torch.Tensor, steps: int, names: tuple[str, ...], dt: float = 1.0):
    """:func:`norse_run` of ``graph`` as norse's ``from_nir`` builds it."""
    import norse.torch

    return norse_run(_quiet(lambda: norse.torch.from_nir(graph, dt=dt)), x, steps, names)


def sinabs_run(module, x: torch.Tensor, steps: int, names: tuple[str, ...]):
    """Spike counts of the named sinabs modules after ``steps`` steps on constant ``x``
    (the spike train fed at once, sample-major), from zero membranes (a sinabs layer keeps
    its state between calls, ``to_nir``'s trace included)."""
    for layer in module.modules():
        if hasattr(layer, "reset_states"):
            layer.reset_states()
    batch = x.shape[0]
    train = x.unsqueeze(1).expand(batch, steps, *x.shape[1:]).reshape(-1, *x.shape[1:])

    def run() -> None:
        with torch.no_grad():
            module(train)

    counts = _hooked_counts(module, names, run)
    return [c.reshape(batch, steps, *c.shape[1:]).sum(1) for c in counts]


def sinabs_counts(graph, x: torch.Tensor, steps: int, names: tuple[str, ...]):
    """:func:`sinabs_run` of ``graph`` as sinabs' ``from_nir`` builds it."""
    import sinabs

    module = _quiet(lambda: sinabs.from_nir(graph, batch_size=x.shape[0]))
    return sinabs_run(module, x, steps, names)

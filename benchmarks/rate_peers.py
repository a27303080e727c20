"""The contenders of ``bench_rate.py``: one rate-coded IF network (the spikecast-normalized
weights, constant input current, reset by subtraction, threshold theta), simulated for T
steps by

* ``loop``: a plain torch step loop (every layer every step, max-pool of the spikes);
* ``loop-hoisted``: the same loop with the constant first layer computed once;
* ``spikingjelly``: SpikingJelly's multi-step IFNode (soft reset) network, when installed;
* ``sinabs``: sinabs' IAFSqueeze (single spike, membrane subtract) network, when installed.

Each returns the output spike counts (batch, classes); the peers' max-pools take the plain
max of spikes (not spikecast's count-gated pool), so their accuracies may differ a little.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
from torch import nn

from spikecast.ir.graph import Conv2d, Flatten, Linear, MaxPool2d, Network, ReLU

Runner = Callable[[torch.Tensor, int], torch.Tensor]


def _if_step(v: torch.Tensor | None, current: torch.Tensor, theta: float
             ) -> tuple[torch.Tensor, torch.Tensor]:
    v = current.clone() if v is None else v + current
    spikes = (v >= theta).float()
    return spikes, v - spikes * theta


def plain_loop(net: Network, theta: float, hoist: bool) -> Runner:
    """The textbook loop: per step, every stage on the previous stage's output, an IF
    update after every population (``hoist``: constant-input stages once)."""
    stages = net.stages()

    def run(x: torch.Tensor, steps: int) -> torch.Tensor:
        with torch.no_grad():
            v: dict[int, torch.Tensor] = {}
            constant: dict[int, torch.Tensor] = {}
            counts = torch.zeros(())
            for _ in range(steps):
                h, fixed = x, True  # fixed: h does not change over time
                for s in stages:
                    if hoist and fixed:
                        if s.index not in constant:
                            constant[s.index] = s.layer.forward(h)
                        h = constant[s.index]
                    else:
                        h = s.layer.forward(h)
                    if s.population:
                        h, v[s.index] = _if_step(v.get(s.index), h, theta)
                        fixed = False
                counts = counts + h
            return counts

    return run


def available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _torch_layers(net: Network) -> list[nn.Module]:
    """The network's layers as torch modules (weights copied), ReLU marking a population."""
    out: list[nn.Module] = []
    for layer in net.layers:
        if isinstance(layer, Conv2d):
            o, i, kh, kw = layer.weight.shape
            m = nn.Conv2d(i, o, (kh, kw), layer.stride, layer.padding, bias=layer.bias is not None)
        elif isinstance(layer, Linear):
            o, i = layer.weight.shape
            m = nn.Linear(i, o, bias=layer.bias is not None)
        elif isinstance(layer, MaxPool2d):
            out.append(nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding))
            continue
        elif isinstance(layer, Flatten):
            out.append(nn.Flatten())
            continue
        elif isinstance(layer, ReLU):
            out.append(nn.ReLU())
            continue
        else:
            raise ValueError(f"the peers take chains of Conv2d/Linear/MaxPool2d/Flatten/ReLU, "
                             f"not {type(layer).__name__}")
        m.weight.data.copy_(layer.weight)
        if layer.bias is not None:
            m.bias.data.copy_(layer.bias)
        out.append(m)
    return [*out, nn.ReLU()]  # the output layer is a population too


def spikingjelly_runner(net: Network, theta: float) -> Runner:
    from spikingjelly.activation_based import functional, layer, neuron

    mods = []
    for m in _torch_layers(net):
        if isinstance(m, nn.ReLU):
            mods.append(neuron.IFNode(v_threshold=theta, v_reset=None, step_mode="m"))
        else:
            mods.append(layer.SeqToANNContainer(m))
    model = nn.Sequential(*mods).eval()
    functional.set_step_mode(model, "m")

    def run(x: torch.Tensor, steps: int) -> torch.Tensor:
        with torch.no_grad():
            functional.reset_net(model)
            out = model(x.unsqueeze(0).expand(steps, *x.shape))
            return out.sum(0)

    return run


def sinabs_runner(net: Network, theta: float, batch: int) -> Runner:
    import sinabs.layers as sl
    from sinabs.activation import MembraneSubtract, SingleSpike

    mods = [
        sl.IAFSqueeze(batch_size=batch, spike_threshold=torch.tensor(theta),
                      spike_fn=SingleSpike, reset_fn=MembraneSubtract(), min_v_mem=None)
        if isinstance(m, nn.ReLU) else m
        for m in _torch_layers(net)
    ]
    model = nn.Sequential(*mods).eval()

    def run(x: torch.Tensor, steps: int) -> torch.Tensor:
        with torch.no_grad():
            for m in model:
                if isinstance(m, sl.IAFSqueeze):
                    m.reset_states()
            seq = x.unsqueeze(1).expand(x.shape[0], steps, *x.shape[1:]).flatten(0, 1)
            out = model(seq)
            return out.reshape(x.shape[0], steps, -1).sum(1)

    return run

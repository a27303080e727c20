"""Measurement core shared by every scheme: exact operation counts and the results record.

Counts are per sample. A *synaptic event* is one spike delivered over one connection
(an accumulate): events = sum over inputs of spikes_i x fan_out_i. ANN MACs are the
multiply-accumulates of one dense forward pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from spikecast.ir.graph import AvgPool2d, Conv2d, Layer, Linear, Network, Stage
from spikecast.measure.result import LayerStats


def layer_macs(layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    """Dense MACs of one layer: Linear in x out; Conv2d out_numel x in_ch kh kw (products
    with padded zeros included, the usual convention); AvgPool2d out_numel x kh kw;
    routing and ReLU 0."""
    out_numel = math.prod(out_shape)
    if isinstance(layer, Linear):
        return int(layer.weight.shape[0] * layer.weight.shape[1])
    if isinstance(layer, Conv2d):
        return out_numel * math.prod(layer.weight.shape[1:])
    if isinstance(layer, AvgPool2d):
        return out_numel * math.prod(layer.kernel_size)
    return 0


def ann_macs(net: Network) -> int:
    """Exact MACs of one dense forward pass of ``net``."""
    return sum(layer_macs(s.layer, s.in_shape, s.out_shape) for s in net.stages())


def synapse_count(net: Network) -> int:
    """Synaptic connections: every (input, output) pair a weight links, shared conv kernels
    counted once per output position, connections to zero padding excluded (so a padded
    convolution has fewer synapses than dense MACs)."""
    return sum(int(fan_out(s.layer, s.in_shape).sum()) for s in net.stages() if s.synaptic)


def neuron_count(net: Network) -> int:
    """Neurons that can spike: every population (a layer followed by a ReLU, and the output)."""
    return sum(s.neurons for s in net.stages() if s.population)


def fan_out(layer: Layer, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Connections leaving each input position of a synaptic layer (shape ``in_shape``).

    fan_out = W^T 1 with every weight set to 1: the transposed layer (a transposed
    convolution for Conv2d and AvgPool2d, one channel at a time for the pool) applied to an
    all-ones output, so zero padding and borders are accounted for; no autograd, so it
    works under ``torch.no_grad()`` and ``torch.inference_mode()``.
    """
    if isinstance(layer, Linear):
        return torch.full(in_shape, float(layer.weight.shape[0]))
    if isinstance(layer, Conv2d):
        out_ch, _, kh, kw = layer.weight.shape
        return _transposed_ones(in_shape, out_ch, (kh, kw), layer.stride, layer.padding,
                                layer.groups)
    if isinstance(layer, AvgPool2d):
        return _transposed_ones(in_shape, in_shape[0], layer.kernel_size, layer.stride,
                                layer.padding, in_shape[0])
    raise ValueError(f"fan_out is defined for synaptic layers, not {type(layer).__name__}")


def _transposed_ones(
    in_shape: tuple[int, ...], out_ch: int, kernel: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int], groups: int,
) -> torch.Tensor:
    """conv_transpose2d of an all-ones output through all-ones weights, cropped to
    ``in_shape``: how many (output channel, position) pairs read each input."""
    c, h, w = in_shape
    out_hw = [(size + 2 * p - k) // s + 1
              for size, k, s, p in zip((h, w), kernel, stride, padding, strict=True)]
    extra = [size - ((o - 1) * s - 2 * p + k)
             for size, o, k, s, p in zip((h, w), out_hw, kernel, stride, padding, strict=True)]
    ones_out = torch.ones(1, out_ch, *out_hw, dtype=torch.float64)
    ones_w = torch.ones(out_ch, c // groups, *kernel, dtype=torch.float64)
    fan = F.conv_transpose2d(ones_out, ones_w, None, stride, padding, tuple(extra), groups)
    return fan[0].float()


class SpikeCounter:
    """Accumulates spikes and synaptic events per stage while a simulator runs.

    Simulators call :meth:`add_spikes` with per-sample spike counts of a population and
    :meth:`add_inputs` with the counts arriving at each synaptic layer (or directly at an
    Add/Concat population, one connection each); :meth:`stats` turns them into per-sample
    means. Tracked stages: every synaptic layer and every population.
    """

    def __init__(self, net: Network) -> None:
        self.stages = [s for s in net.stages() if s.synaptic or s.population]
        self._fan = {
            s.index: fan_out(s.layer, s.in_shape) if s.synaptic else torch.ones(s.out_shape)
            for s in self.stages
        }
        self.spikes = {s.index: 0.0 for s in self.stages}
        self.events = {s.index: 0.0 for s in self.stages}
        self.samples = 0

    def add_spikes(self, stage: Stage, counts: torch.Tensor) -> None:
        """Spikes emitted by ``stage``'s neurons; ``counts`` is (batch, *out_shape) or a sum."""
        self.spikes[stage.index] += float(counts.sum())

    def add_inputs(self, stage: Stage, counts: torch.Tensor) -> None:
        """Spikes arriving at ``stage`` ((batch, *in_shape), unsigned counts)."""
        fan = self._fan[stage.index].to(counts.device, counts.dtype)
        self.events[stage.index] += float((counts.abs() * fan).sum())

    def add_samples(self, n: int) -> None:
        self.samples += n

    def stats(self) -> list[LayerStats]:
        n = max(self.samples, 1)
        return [
            LayerStats(
                s.name,
                s.neurons if s.population else 0,
                self.spikes[s.index] / n,
                self.events[s.index] / n,
                layer_macs(s.layer, s.in_shape, s.out_shape),
            )
            for s in self.stages
        ]

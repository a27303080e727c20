"""Weight normalization for ANN-to-SNN conversion.

Both methods find a scale lambda for the output of every Linear, Conv2d and Add layer and
rescale  W <- W lambda_in / lambda,  b <- b / lambda  (lambda of the input = input maximum),
so normalized activations stay (mostly) within [0, 1], i.e. below one threshold per step.
Routing layers (Flatten, MaxPool2d) and ReLU pass the scale through; AvgPool2d has fixed
weights that keep the scale (its output never exceeds its input's maximum). An Add or
Concat rescales each input's weight, w_k <- w_k lambda_k / lambda (a Concat takes the
largest input scale), so every branch arrives on the merged value's scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

from spikecast.device import Device, network_on, resolve_device
from spikecast.ir.graph import INPUT, Add, Concat, Conv2d, Layer, Linear, Network
from spikecast.progress import Reporter


@dataclass(frozen=True)
class Normalized:
    """A rescaled network and the scale lambda_l of every layer's output (same order)."""

    network: Network
    scales: tuple[float, ...]


ScaleRule = Callable[[int, Layer, list[float]], float | None]


def _rescale(net: Network, measure: ScaleRule, input_scale: float) -> Normalized:
    """Walk the layers in order; ``measure(i, layer, input_scales)`` gives layer i's output
    scale (None: keep the input's, i.e. W unchanged and b / lambda_in, for layers that are
    never positive) for Linear, Conv2d and Add."""
    layers: list[Layer] = []
    scales: list[float] = []
    for i, (layer, src) in enumerate(zip(net.layers, net.sources, strict=True)):
        ins = [input_scale if k == INPUT else scales[k] for k in src]
        if isinstance(layer, (Linear, Conv2d)):
            lam = measure(i, layer, ins) or ins[0]
            bias = None if layer.bias is None else layer.bias / lam
            layer = replace(layer, weight=layer.weight * (ins[0] / lam), bias=bias)
        elif isinstance(layer, (Add, Concat)):
            lam = (measure(i, layer, ins) if isinstance(layer, Add) else None) or max(ins)
            layer = replace(layer, weights=tuple(
                w * k / lam for w, k in zip(layer.weights, ins, strict=True)
            ))
        else:
            lam = ins[0]
        layers.append(layer)
        scales.append(lam)
    return Normalized(net.with_layers(layers), tuple(scales))


def positive_input_sum(layer: Linear | Conv2d) -> torch.Tensor:
    """Per output neuron (channel for Conv2d): sum_i max(0, W_ji)."""
    return layer.weight.clamp(min=0).flatten(1).sum(1)


def model_based(net: Network, input_max: float = 1.0) -> Normalized:
    """Model-based normalization (Diehl et al. 2015, the SSNN paper's Fig. 2).

    lambda_l = max_j ( sum_i max(0, W_ji) lambda_{l-1} + max(0, b_j) ): the largest
    activation the layer can reach when every input is at its maximum; an Add reaches at
    most sum_k max(0, w_k) lambda_k. After rescaling, every neuron's positive input sum
    (plus positive bias) is at most 1.
    """

    def bound(_: int, layer: Layer, ins: list[float]) -> float | None:
        if isinstance(layer, Add):
            cur = sum(max(w, 0.0) * k for w, k in zip(layer.weights, ins, strict=True))
        else:
            b = positive_input_sum(layer) * ins[0]
            if layer.bias is not None:
                b = b + layer.bias.clamp(min=0)
            cur = float(b.max())
        return cur if cur > 0 else None  # a layer never positive keeps the scale

    return _rescale(net, bound, input_max)


def data_based(
    net: Network,
    x_calib: torch.Tensor,
    percentile: float = 99.9,
    input_max: float = 1.0,
    *,
    batch_size: int = 128,
    device: Device | str = Device.CPU,
    progress: bool = True,
) -> Normalized:
    """Data-based normalization (Rueckauer et al. 2017).

    lambda_l = p-th percentile of the positive outputs of layer l on ``x_calib`` (equal to
    the non-zero activations after its ReLU); p = 100 is the max-norm of Diehl et al.
    Biases are divided by lambda_l. The percentile is exact, torch.quantile's linear
    interpolation over all positive values, found without holding them: the calibration
    set streams through ``net`` in batches on ``device``, twice (:class:`_Percentiles`),
    so memory is bounded by ``batch_size``; a progress bar shows when it takes a while.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if x_calib.numel() == 0:
        raise ValueError("data-based normalization needs at least one calibration sample")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    where = resolve_device(device)
    measured = [i for i, layer in enumerate(net.layers) if isinstance(layer, (Linear, Conv2d, Add))]
    found = _Percentiles(network_on(net, where), measured, x_calib, batch_size, where, progress)
    scales = found.values(percentile / 100.0)
    return _rescale(net, lambda i, _, __: scales[i], input_max)


class _Percentiles:
    """Exact quantiles of the positive outputs of some layers, by a two-pass radix select.

    Positive float32 values order like their bit patterns read as integers. Pass 1 counts
    the values per upper 16 bits; the bins holding the two order statistics around the
    quantile's rank are then known, and pass 2 counts the lower 16 bits of the values in
    those bins, which pins both order statistics exactly.
    """

    def __init__(self, net: Network, layers: list[int], x: torch.Tensor, batch_size: int,
                 device: torch.device, progress: bool) -> None:
        self.net, self.layers, self.x = net, layers, x
        self.batch_size, self.device, self.progress = batch_size, device, progress
        self.high = {i: torch.zeros(2**15, dtype=torch.int64, device=device) for i in layers}
        self.low: dict[int, dict[int, torch.Tensor]] = {}

    def values(self, q: float) -> dict[int, float | None]:
        """The q-quantile of every layer's positive outputs (None: the layer never is)."""
        with Reporter("calibration", 2 * len(self.x), enabled=self.progress,
                      tenths=False) as bar:
            self._stream(self._count_high, bar)
            ranks = {i: self._ranks(i, q) for i in self.layers}
            self.low = {i: {b: torch.zeros(2**16, dtype=torch.int64, device=self.device)
                            for b, _ in pair} for i, pair in ranks.items() if pair}
            self._stream(self._count_low, bar)
        out: dict[int, float | None] = {}
        for i, pair in ranks.items():
            if not pair:
                out[i] = None
                continue
            below, above = (self._order_statistic(i, b, r) for b, r in pair)
            rank = q * (int(self.high[i].sum()) - 1)
            weight = torch.tensor(rank - math.floor(rank), dtype=torch.float64)
            value = float(torch.lerp(below, above, weight))
            out[i] = value if value > 0 else None
        return out

    def _stream(self, count: Callable[[int, torch.Tensor], None], bar: Reporter) -> None:
        with torch.no_grad():
            for start in range(0, len(self.x), self.batch_size):
                xb = self.x[start : start + self.batch_size].to(self.device).float()
                for i, out in _outputs(self.net, xb, set(self.layers)):
                    count(i, out[out > 0].view(torch.int32))
                    del out  # before the next layer runs
                bar.advance(len(xb))

    def _count_high(self, i: int, bits: torch.Tensor) -> None:
        self.high[i] += torch.bincount(bits >> 16, minlength=2**15)

    def _count_low(self, i: int, bits: torch.Tensor) -> None:
        for b, hist in self.low.get(i, {}).items():
            hist += torch.bincount(bits[(bits >> 16) == b] & 0xFFFF, minlength=2**16)

    def _ranks(self, i: int, q: float) -> list[tuple[int, int]]:
        """(upper-bits bin, rank within it) of the order statistics floor and ceil of
        q (n - 1); empty when the layer has no positive output."""
        n = int(self.high[i].sum())
        if n == 0:
            return []
        rank = q * (n - 1)
        cum = self.high[i].cumsum(0).cpu()
        pair = []
        for r in (math.floor(rank), math.ceil(rank)):
            b = int(torch.searchsorted(cum, torch.tensor(r), right=True))
            pair.append((b, r - (int(cum[b - 1]) if b else 0)))
        return pair

    def _order_statistic(self, i: int, b: int, r: int) -> torch.Tensor:
        cum = self.low[i][b].cumsum(0).cpu()
        low = int(torch.searchsorted(cum, torch.tensor(r), right=True))
        bits = torch.tensor([(b << 16) | low], dtype=torch.int32)
        return bits.view(torch.float32).double()[0]


def _outputs(
    net: Network, x: torch.Tensor, wanted: set[int]
) -> Iterator[tuple[int, torch.Tensor]]:
    """Layer i's output for every i in ``wanted``, in order, each layer's output freed once
    the layers reading it have run."""
    readers = [0] * len(net.layers)
    for src in net.sources:
        for k in src:
            if k != INPUT:
                readers[k] += 1
    live: dict[int, torch.Tensor] = {}
    for i, (layer, src) in enumerate(zip(net.layers, net.sources, strict=True)):
        out = layer.forward(*(x if k == INPUT else live[k] for k in src))
        for k in src:
            if k != INPUT:
                readers[k] -= 1
                if readers[k] == 0:
                    del live[k]
        if readers[i]:
            live[i] = out
        if i in wanted:
            yield i, out
        del out


def apply_scales(net: Network, scales: tuple[float, ...], input_max: float = 1.0) -> Normalized:
    """Rescale ``net`` with saved scales lambda_l (one per layer, as in
    :attr:`Normalized.scales`): the same W, b and merge weights the measuring pass gave."""
    if len(scales) != len(net.layers):
        raise ValueError(f"{len(scales)} scales for a network of {len(net.layers)} layers")
    if not all(s > 0 and math.isfinite(s) for s in scales):
        raise ValueError(f"normalization scales must be finite and > 0, got {list(scales)}")
    return _rescale(net, lambda i, _, __: scales[i], input_max)

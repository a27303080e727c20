"""The device setting: cpu runs, auto picks what torch sees, cuda without a GPU is a clear
error (never silently ignored) in every simulator and in calibration."""

import pytest
import torch

from spikecast.device import Device, network_on, resolve_device
from spikecast.ir.graph import Linear, Network, ReLU
from spikecast.ir.normalize import data_based
from spikecast.schemes import convert
from spikecast.schemes.rate import RateRecipe
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.ssnn.recipe import SSNNRecipe
from spikecast.schemes.ssnn.sim_clock import simulate_clock
from spikecast.zoo.models import get_architecture

GPU = torch.cuda.is_available()
NO_GPU = "device='cuda' but torch sees no CUDA GPU"


def small_net() -> tuple[Network, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    net = Network((Linear(torch.randn(6, 4, generator=g)), ReLU(),
                   Linear(torch.randn(3, 6, generator=g))), ("a", "r", "b"), (4,))
    return net, torch.rand(10, 4, generator=g)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(Device.AUTO).type == ("cuda" if GPU else "cpu")
    if GPU:
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match=NO_GPU):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="allowed: 'cpu', 'cuda', 'auto'"):
        resolve_device("gpu")


def test_network_on_keeps_a_network_already_there() -> None:
    net, _ = small_net()
    assert network_on(net, torch.device("cpu")) is net


def test_rate_device_reaches_the_simulator() -> None:
    net, x = small_net()
    cpu = convert(net, RateRecipe(steps=12), x)
    auto = convert(net, RateRecipe(steps=12, device="auto"), x)
    assert auto.recipe.device is Device.AUTO
    if not GPU:  # auto is the cpu here: the very same result
        assert torch.equal(auto.simulate(x).predictions, cpu.simulate(x).predictions)
    cuda_recipe = RateRecipe(steps=12, device="cuda")
    cuda_model = cuda_recipe.build(net, cpu.calibration)
    if GPU:
        out = cuda_model.simulate(x)
        assert out.predictions.device.type == "cpu"  # results come back on the CPU
    else:
        with pytest.raises(ValueError, match=NO_GPU):
            cuda_model.simulate(x)
        with pytest.raises(ValueError, match=NO_GPU):
            convert(net, RateRecipe(device="cuda"), x)  # calibration runs on the device too
    with pytest.raises(ValueError, match="allowed: 'cpu', 'cuda', 'auto'"):
        RateRecipe(device="tpu")


def test_calibration_device() -> None:
    net, x = small_net()
    on_cpu = data_based(net, x, 99.0, device="cpu")
    assert data_based(net, x, 99.0, device="auto").scales == pytest.approx(on_cpu.scales)
    if not GPU:
        with pytest.raises(ValueError, match=NO_GPU):
            data_based(net, x, 99.0, device="cuda")


def test_sigma_delta_event_mode_refuses_a_gpu() -> None:
    with pytest.raises(ValueError, match="device='cuda' needs mode='timeslice'"):
        SigmaDeltaRecipe(mode="event", device="cuda")
    assert SigmaDeltaRecipe(mode="event", device="auto").device is Device.AUTO


def test_sigma_delta_timeslice_honours_the_device() -> None:
    torch.manual_seed(0)
    model = get_architecture("wine-fc").build()
    x = torch.rand(12, 13)
    y = model(x).argmax(1)
    on_cpu = convert(model, SigmaDeltaRecipe(mode="timeslice", device="cpu"), x).evaluate(x, y)
    auto = convert(model, SigmaDeltaRecipe(mode="timeslice", device="auto"), x)
    assert auto.simulator().device.type == ("cuda" if GPU else "cpu")
    if not GPU:
        assert auto.evaluate(x, y).accuracy == on_cpu.accuracy
        cuda = convert(model, SigmaDeltaRecipe(mode="timeslice", device="cuda"), x)
        with pytest.raises(ValueError, match=NO_GPU):
            cuda.evaluate(x, y)


def test_ssnn_clock_device() -> None:
    with pytest.raises(ValueError, match="device='cuda' needs simulator='clock'"):
        SSNNRecipe(simulator="event", device="cuda")
    torch.manual_seed(0)
    model = get_architecture("wine-fc").build()
    x = torch.rand(4, 13)
    snn = convert(model, SSNNRecipe(simulator="clock", dt=10e-9, window=1e-6, n_points=2), x)
    duty = snn.duty(x)
    phase = snn.circuit.params.encoder.phases(snn.circuit.n_inputs)
    ref = simulate_clock(snn.circuit, duty, phase, 10e-9, 2)
    auto = simulate_clock(snn.circuit, duty, phase, 10e-9, 2, device="auto")
    assert all(c.device.type == "cpu" for c in auto.counts)
    if GPU:  # float order differs between devices: same record, not the same bits
        assert [c.shape for c in auto.counts] == [c.shape for c in ref.counts]
    else:
        assert all(torch.equal(a, b) for a, b in zip(auto.counts, ref.counts, strict=True))
        with pytest.raises(ValueError, match=NO_GPU):
            simulate_clock(snn.circuit, duty, phase, 10e-9, 2, device="cuda")

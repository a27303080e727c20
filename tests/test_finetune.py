"""Fine-tuning: QCFS by hand, the straight-through gradient, Network <-> module equality,
the rate target's SNN equal to its QCFS levels, the validation split, Ctrl-C keeping the
best epoch, and the model file's sidecar round trip."""

import json
import math
import subprocess
import sys

import pytest
import torch
from dag_models import Inception, ResidualBlock, trained_like
from torch import nn

import spikecast
from spikecast.datasets.loaders import Dataset, load_dataset
from spikecast.finetune.api import FinetunedModel, split_indices
from spikecast.finetune.quantizers import QCFS, Quantizer
from spikecast.finetune.record import recorded_scheme
from spikecast.finetune.targets import finish, prepare
from spikecast.finetune.to_module import NetworkModule, to_module
from spikecast.frontends.torch_fx import capture
from spikecast.io.annfile import load_model, save_network, sidecar_path
from spikecast.ir.graph import (
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Network,
    ReLU,
)
from spikecast.schemes.rate import RateRecipe

# T = 4, lambda = 2: z T / lambda + 1/2 = 2 z + 1/2 -> floor -> / 4 -> clip [0, 1] -> x 2
Z = [-1.0, 0.2, 0.3, 0.75, 1.0, 2.5, 3.0]
A = [0.0, 0.0, 0.5, 1.0, 1.0, 2.0, 2.0]  # floor(-1.5), floor(0.9), floor(1.1), 2.0, 2.5, 5.5, 6.5


def test_qcfs_forward_golden_values() -> None:
    q = QCFS(steps=4, lam=2.0)
    out = q(torch.tensor([Z]))
    assert out.tolist() == [A]
    assert q.levels.tolist() == [0 + 0 + 1 + 2 + 2 + 4 + 4]  # spikes in T = 4 steps


def test_qcfs_straight_through_gradient() -> None:
    q = QCFS(steps=4, lam=2.0)
    z = torch.tensor([Z], requires_grad=True)
    q(z).sum().backward()
    assert z.grad.tolist() == [[0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]]  # 1 on 0 < z < lambda
    # dlambda: (a - z) / lambda inside (0, lambda), 1 above, 0 below:
    inside = (0.0 - 0.2 + 0.5 - 0.3 + 1.0 - 0.75 + 1.0 - 1.0) / 2.0
    assert q.lam.grad.item() == pytest.approx(inside + 2 * 1.0)


def test_qcfs_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="time steps >= 1"):
        QCFS(steps=0)
    with pytest.raises(ValueError, match="lambda must be a finite number > 0"):
        QCFS(steps=4, lam=-1.0)


def test_tied_qcfs_takes_the_largest_scale() -> None:
    a, b = QCFS(4, 1.5), QCFS(4, 3.0)
    assert QCFS(4, tied=(a, b)).scale().item() == 3.0
    assert QCFS(4, tied=(a, 0.5)).scale().item() == 1.5


def _weighted_dag() -> Network:
    """conv -> relu -> {maxpool, avgpool} -> concat(2, 1) -> conv; + skip Add(0.5, -1)."""
    torch.manual_seed(0)
    layers = (
        Conv2d(torch.randn(2, 1, 3, 3), torch.randn(2), padding=(1, 1)),  # 0
        ReLU(),  # 1
        MaxPool2d((2, 2), (2, 2)),  # 2
        AvgPool2d((2, 2), (2, 2)),  # 3
        ReLU(),  # 4
        Concat((2.0, 1.0)),  # 5
        Conv2d(torch.randn(4, 4, 1, 1), None),  # 6
        Conv2d(torch.randn(4, 4, 1, 1), torch.randn(4)),  # 7
        Add((0.5, -1.0)),  # 8
        ReLU(),  # 9
        Flatten(),  # 10
        Linear(torch.randn(3, 36), torch.randn(3)),  # 11
    )
    sources = ((-1,), (0,), (1,), (1,), (3,), (2, 4), (5,), (5,), (6, 7), (8,), (9,), (10,))
    return Network(layers, tuple(f"l{i}" for i in range(12)), (1, 6, 6), sources)


def _networks() -> list[Network]:
    chain = capture(nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(3, 2, 3),
        nn.ReLU(), nn.Flatten(), nn.Linear(2, 4),
    ), (1, 6, 6))
    dags = [capture(trained_like(m()), (1, 6, 6)) for m in (ResidualBlock, Inception)]
    return [chain, *dags, _weighted_dag()]


@pytest.mark.parametrize("index", range(4))
def test_module_forward_equals_the_network_and_back(index: int) -> None:
    net = _networks()[index]
    module = to_module(net)
    x = torch.rand(5, *net.input_shape)
    assert torch.equal(module(x), net(x))
    assert torch.equal(module.to_network()(x), net(x))
    assert capture(module, net.input_shape)(x).equal(net(x))  # captured as its own graph
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    module(x).square().sum().backward()
    opt.step()
    trained = module.to_network()
    assert torch.equal(module(x), trained(x)) and not torch.equal(trained(x), net(x))
    assert trained.sources == net.sources and trained.names == net.names


def test_capture_of_a_module_checks_the_shape() -> None:
    with pytest.raises(ValueError, match=r"takes samples of shape \(1, 6, 6\), not \(1, 8, 8\)"):
        capture(to_module(_weighted_dag()), (1, 8, 8))


def _one_layer() -> Network:
    # dyadic weights: every membrane value below is exact in float32
    w1 = torch.tensor([[0.75, 0.5], [0.25, -0.5], [1.0, 1.0], [0.125, 0.375]])
    w2 = torch.tensor([[1.0, -1.0, 0.5, 0.25], [-0.5, 1.0, 0.25, 1.0]])
    return Network((Linear(w1), ReLU(), Linear(w2)), ("fc1", "relu", "fc2"), (2,))


def test_rate_snn_of_the_tuned_network_emits_the_qcfs_levels() -> None:
    net, steps = _one_layer(), 4
    x = torch.tensor([[k / 8, j / 8] for k in range(9) for j in range(9)])
    recipe = RateRecipe(steps=steps)
    prepared = prepare(recipe, net, x, Quantizer.QCFS)
    (q,) = prepared.quantizers
    with torch.no_grad():
        q.lam.fill_(1.25)  # lambda = 1.25 theta: a neuron fires every step from z = 1.25 on
    with torch.no_grad():
        prepared.module(x)
    levels = q.levels  # per sample; per neuron:
    per_neuron = torch.floor(torch.clamp(net.layers[0].forward(x) / 1.25, 0, 1) * steps + 0.5)
    assert torch.equal(levels, per_neuron.sum(1))
    tuned, params, record = finish(recipe, prepared, x)
    assert params["normalization"] == "none" and params["v_init"] == 0.5
    assert record["lambdas"] == [1.25]
    snn = spikecast.convert(tuned, "rate", calib_x=None, **params)
    counts = snn.neuron_spike_counts(x)[0]
    assert torch.equal(counts, per_neuron)


def test_an_average_pool_population_keeps_its_inputs_lambda() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    net = capture(model, (1, 8, 8))
    x = torch.rand(16, 1, 8, 8)
    recipe = RateRecipe(steps=4, threshold=0.5)
    prepared = prepare(recipe, net, x, Quantizer.QCFS)
    pooled_input, conv, pooled = prepared.quantizers
    assert pooled_input.lam is None and pooled.lam is None and conv.lam is not None
    with torch.no_grad():
        conv.lam.fill_(3.0)
    assert pooled_input.scale().item() == 0.5  # the input's scale (1) x theta
    assert pooled.scale().item() == 3.0
    tuned, _, record = finish(recipe, prepared, x)
    assert record["lambdas"] == [0.5, 3.0, 3.0]
    plain = prepared.module.to_network()  # the same weights, not rescaled
    assert torch.equal(tuned(x).argmax(1), plain(x).argmax(1))  # positive rescaling only


def _data(n: int = 120) -> Dataset:
    torch.manual_seed(1)
    x = torch.rand(n, 6)
    y = (x[:, 0] + x[:, 1] > x[:, 2] + 0.5).long()
    return Dataset("toy", x, y, torch.full((4, 6), math.nan), torch.zeros(4).long(), 2, "toy")


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))


def test_split_is_seeded_disjoint_and_from_the_training_data() -> None:
    train, val = split_indices(100, 0.1, seed=3)
    assert len(val) == 10 and len(train) == 90
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))
    assert torch.equal(split_indices(100, 0.1, 3)[1], val)
    assert len(split_indices(100, 7, 3)[1]) == 7
    for bad in (0.0, 1.0, 0, 100, True):
        with pytest.raises(ValueError, match="validation must be a fraction"):
            split_indices(100, bad, 0)


def test_rate_finetune_never_reads_the_test_set() -> None:
    tuned = spikecast.finetune(_mlp(), "rate", _data(), 2, params={"steps": 4}, lr=1e-2,
                               batch_size=16, progress=False)  # the test inputs are NaN
    assert all(math.isfinite(r.val_loss) for r in tuned.outcome.history)
    assert tuned.info["finetune"]["val_samples"] == 12
    assert tuned.info["finetune"]["train_samples"] == 108
    assert len(tuned.info["finetune"]["lambdas"]) == 1
    assert tuned.params["steps"] == 4


def test_ctrl_c_keeps_the_best_epoch_so_far() -> None:
    kw = {"params": {"steps": 2}, "lr": 3e-2, "batch_size": 8, "progress": False}

    def stop_after_3(record) -> None:
        if record.epoch == 3:
            raise KeyboardInterrupt

    tuned = spikecast.finetune(_mlp(), "rate", _data(), 6, callbacks=[stop_after_3], **kw)
    history = tuned.outcome.history
    assert tuned.outcome.interrupted and [r.epoch for r in history] == [0, 1, 2, 3]
    best = max(history[1:], key=lambda r: (r.val_accuracy, -r.val_loss))  # trained epochs
    assert tuned.outcome.best_epoch == best.epoch
    # the kept weights are those of the best epoch: the same seeded run stopped there
    oracle = spikecast.finetune(_mlp(), "rate", _data(), best.epoch, **kw)
    x = torch.rand(10, 6)
    assert torch.equal(tuned.network(x), oracle.network(x))


def test_finetune_refuses_unsupported_requests() -> None:
    with pytest.raises(ValueError, match="supports the schemes sigma-delta, rate; got 'ssnn'"):
        spikecast.finetune(_mlp(), "ssnn", _data(), progress=False)
    with pytest.raises(ValueError, match="scheme 'rate' is fine-tuned with quantizer 'qcfs'"):
        spikecast.finetune(_mlp(), "rate", _data(), quantizer="floor", progress=False)
    with pytest.raises(ValueError, match=r"does not accept inputs of per-sample shape \(6,\)"):
        spikecast.finetune(nn.Sequential(nn.Linear(5, 2)), "rate", _data(), progress=False)
    with pytest.raises(ValueError, match="neither a pretrained name"):
        spikecast.finetune("resnet", "rate", _data(), progress=False)


def test_spikecast_finetune_is_callable_as_function_and_package() -> None:
    probe = ("import spikecast; first = spikecast.finetune; import spikecast.finetune.api; "
             "print(first is spikecast.finetune.api.finetune, callable(spikecast.finetune))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == ["True", "True"]
    tuned = spikecast.finetune(_mlp(), "rate", _data(), 0, progress=False)
    assert isinstance(tuned, FinetunedModel) and len(tuned.outcome.history) == 1


def test_sidecar_round_trip_of_a_tuned_graph(tmp_path) -> None:
    tuned = spikecast.finetune(_weighted_dag(), "rate", _image_data(), 1, params={"steps": 8},
                               batch_size=8, progress=False)
    path = tuned.save(tmp_path / "tuned.safetensors", command="spikecast finetune x")
    module, info = load_model(path)
    assert isinstance(module, NetworkModule) and not module.training
    x = torch.rand(3, 1, 6, 6)
    assert torch.equal(module(x), tuned.network(x))
    assert info["architecture"] == "graph" and info["dataset"] == "toy-images"
    assert info["base_model"] == "Network" and info["command"] == "spikecast finetune x"
    assert info["scheme"] == {"name": "rate", "params": tuned.params}
    assert info["finetune"]["best_epoch"] == tuned.outcome.best_epoch
    assert recorded_scheme(info, None, {}) == ("rate", tuned.params)
    assert recorded_scheme(info, "rate", {"steps": 2}) == ("rate", tuned.params | {"steps": 2})
    assert recorded_scheme(info, "ssnn", {"x": 1}) == ("ssnn", {"x": 1})
    assert recorded_scheme({}, None, {}) == (None, {})
    assert spikecast.as_network(path)(x).equal(tuned.network(x))


def _image_data() -> Dataset:
    torch.manual_seed(2)
    x = torch.rand(40, 1, 6, 6)
    y = (x[:, 0, :3].mean((1, 2)) > x[:, 0, 3:].mean((1, 2))).long()
    return Dataset("toy-images", x, y, x[:4], y[:4], 3, "toy")


def test_graph_file_errors_name_the_problem(tmp_path) -> None:
    path = save_network(_weighted_dag(), tmp_path / "g.safetensors", metadata={"dataset": "d"})
    info = json.loads(sidecar_path(path).read_text())
    sidecar_path(path).write_text(json.dumps({k: v for k, v in info.items() if k != "graph"}))
    with pytest.raises(ValueError, match="architecture 'graph' needs a 'graph'"):
        load_model(path)
    with pytest.raises(ValueError, match=r"reserved key\(s\) \['graph'\]"):
        save_network(_weighted_dag(), tmp_path / "h.safetensors", metadata={"graph": 1})
    with pytest.raises(ValueError, match=r"must end in \.safetensors"):
        save_network(_weighted_dag(), tmp_path / "h.pt")


def test_digits_mlp_tuned_for_sigma_delta_converts_with_its_thetas() -> None:
    data = load_dataset("digits")
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    tuned = spikecast.finetune(model, "sigma-delta", data, 1, params={"theta": 0.5},
                               quantizer="floor", progress=False)
    snn = tuned.convert()
    assert snn.thetas == (0.5, 0.5)
    assert tuned.info["dataset"] == "digits" and tuned.info["finetune"]["val_samples"] == 144


def test_a_nir_graph_is_fine_tuned_without_its_python_class(tmp_path) -> None:
    pytest.importorskip("nir")
    from spikecast.io.nir import read_nir, write_nir

    snn = spikecast.convert(_mlp(), "rate", calib_x=_data().x_train, reset="zero", v_init=0.0)
    path = write_nir(snn, tmp_path / "m.nir")
    tuned = spikecast.finetune(path, "rate", _data(), 1, params={"steps": 4}, lr=1e-2,
                               progress=False)
    x = torch.rand(8, 6)
    start = read_nir(path).ann
    assert tuned.info["base_model"] == str(path.resolve())
    assert tuned.network.names == start.names and not torch.equal(tuned.network(x), start(x))


def test_a_pretrained_zoo_name_is_fine_tuned_on_any_data_of_its_shape() -> None:
    torch.manual_seed(3)
    x = torch.rand(30, 1, 28, 28)
    y = torch.randint(0, 10, (30,))
    data = Dataset("noise", x, y, x[:2], y[:2], 10, "uniform noise")
    tuned = spikecast.finetune("mnist-fc", "rate", data, 1, params={"steps": 4}, batch_size=10,
                               progress=False)
    assert tuned.info["base_model"] == "mnist-fc" and tuned.info["dataset"] == "noise"
    assert [type(layer).__name__ for layer in tuned.network.layers] == [
        "Flatten", "Linear", "ReLU", "Linear"]

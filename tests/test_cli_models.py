"""Own models on the command line: --model-class with .safetensors or .pt state_dict weights
(never unpickling code), pretrained names wherever a model is accepted, clear refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from spikecast.cli.main import app
from spikecast.datasets.loaders import load_dataset

runner = CliRunner()

NET_SOURCE = '''
import torch
from torch import nn


class Net(nn.Module):
    """8 x 8 digits -> hidden -> 10, with its own input normalization."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = torch.flatten((x - 0.5) * 2.0, 1)
        return self.fc2(torch.relu(self.fc1(x)))
'''


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    """A file nets.py with Net(hidden), a briefly trained instance and its weights as
    .safetensors, a .pt state_dict, a .pt checkpoint dict and a pickled module."""
    folder = tmp_path_factory.mktemp("user")
    (folder / "nets.py").write_text(NET_SOURCE)
    import importlib.util

    spec = importlib.util.spec_from_file_location("nets_fixture", folder / "nets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    net = module.Net(hidden=20)
    data = load_dataset("digits", seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(data.x_train), data.y_train).backward()
        opt.step()
    net.eval()
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / "net.safetensors"))
    torch.save(state, folder / "net.pt")
    torch.save({"state_dict": state, "epoch": 60}, folder / "ckpt.pth")
    torch.save(torch.nn.Sequential(torch.nn.Linear(64, 10)), folder / "whole.pt")  # a module
    return folder, net, data


def _flags(folder: Path) -> list[str]:
    return ["--model-class", f"{folder / 'nets.py'}:Net", "--model-kwargs", '{"hidden": 20}',
            "--dataset", "digits"]


@pytest.mark.parametrize("weights", ["net.safetensors", "net.pt", "ckpt.pth"])
def test_evaluate_own_model_ann_accuracy_is_the_models(user_model, weights, tmp_path):
    folder, net, data = user_model
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["evaluate", str(folder / weights), *_flags(folder), "--limit",
                              "100", "--json", str(out)])
    assert res.exit_code == 0, res.output
    with torch.no_grad():
        want = float((net(data.x_test[:100]).argmax(1) == data.y_test[:100]).double().mean())
    result = json.loads(out.read_text())
    assert result["ann"]["accuracy"] == pytest.approx(want) and want > 0.8


def test_convert_own_model_by_module_path_then_evaluate(user_model, tmp_path, monkeypatch):
    """pkg.module:Class resolves against the current folder, as with python -m."""
    folder, _, _ = user_model
    monkeypatch.chdir(folder)
    snn = tmp_path / "own.spikecast"
    res = runner.invoke(app, ["convert", "net.pt", "--model-class", "nets:Net",
                              "--model-kwargs", '{"hidden": 20}', "--dataset", "digits",
                              "--scheme", "rate", "-p", "steps=16", "--out", str(snn)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", str(snn), "--limit", "40"])
    assert res.exit_code == 0, res.output
    assert "rate" in res.output


@pytest.mark.parametrize(("args", "needle"), [
    (["whole.pt", "--model-class", "nets.py:Net"], "not a plain state_dict"),
    (["net.pt", "--model-kwargs", '{"hidden": 20}'], "--model-kwargs needs --model-class"),
    (["net.pt"], "pass --model-class"),
    (["net.safetensors"], "no JSON sidecar"),
    (["net.pt", "--model-class", "nets.py:Nope"], "no torch.nn.Module subclass named 'Nope'"),
    (["net.pt", "--model-class", "nets.py:Net"], "does not fit"),
    (["net.pt", "--model-class", "nets.py:Net", "--model-kwargs", "[1]"], "JSON object"),
    (["net.pt", "--model-class", "Net"], "MODULE:CLASS"),
])
def test_own_model_refusals_name_the_problem(user_model, args, needle, monkeypatch):
    folder, _, _ = user_model
    monkeypatch.chdir(folder)
    res = runner.invoke(app, ["evaluate", *args, "--dataset", "digits"])
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.split()), res.output


def test_own_model_without_dataset_is_refused(user_model):
    folder, _, _ = user_model
    flags = _flags(folder)[:-2]
    res = runner.invoke(app, ["evaluate", str(folder / "net.pt"), *flags])
    assert res.exit_code == 2 and "pass --dataset" in res.output


MNIST = Path(os.environ.get("SPIKECAST_DATA") or Path(__file__).resolve().parents[2]
             / "shared/data/mnist")


@pytest.mark.skipif(not (MNIST / "t10k-labels-idx1-ubyte.gz").exists()
                    and not (MNIST / "t10k-labels-idx1-ubyte").exists(),
                    reason="MNIST IDX files not available offline")
def test_pretrained_names_work_in_convert_and_evaluate(tmp_path):
    snn = tmp_path / "fc.spikecast"
    res = runner.invoke(app, ["convert", "mnist-fc", "--scheme", "rate", "-p", "steps=8",
                              "--calib-samples", "200", "--out", str(snn),
                              "--data-dir", str(MNIST)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "e.json"
    res = runner.invoke(app, ["evaluate", "mnist-fc", "--limit", "50", "--data-dir", str(MNIST),
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["ann"]["accuracy"] > 0.9


RES_SOURCE = '''
import torch
from torch import nn


class Res(nn.Module):
    """A residual MLP: the rate scheme runs it, the SSNN circuit (a chain) refuses it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(64, 64)
        self.b = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.b(torch.relu(torch.relu(self.a(x)) + x))
'''


def test_compare_own_model_exits_non_zero_when_a_scheme_fails(tmp_path):
    (tmp_path / "resnet.py").write_text(RES_SOURCE)
    torch.manual_seed(1)
    weights = tmp_path / "res.pt"
    import importlib.util

    spec = importlib.util.spec_from_file_location("resnet_fixture", tmp_path / "resnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.save(module.Res().state_dict(), weights)
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", str(weights), "--model-class",
                              f"{tmp_path / 'resnet.py'}:Res", "--dataset", "digits",
                              "--schemes", "rate,ssnn", "--limit", "20", "--calib-samples",
                              "100", "--fidelity-samples", "8", "-p", "rate.steps=8",
                              "-p", "ssnn.window=-1", "--out", str(out), "--quiet"])
    assert res.exit_code == 1, res.output
    results = json.loads((out / "results.json").read_text())
    assert list(results["schemes"]) == ["rate"] and list(results["failed"]) == ["ssnn"]
    assert "1 of 2 schemes failed: ssnn" in res.output
    # a residual network is outside the SSNN circuit's scope: skipped, not a failure
    res = runner.invoke(app, ["compare", str(weights), "--model-class",
                              f"{tmp_path / 'resnet.py'}:Res", "--dataset", "digits",
                              "--schemes", "rate,ssnn", "--limit", "10", "--calib-samples",
                              "50", "--fidelity-samples", "4", "-p", "rate.steps=4",
                              "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert "chain" in results["skipped"]["ssnn"] and not results["failed"]
    res = runner.invoke(app, ["compare", str(weights), "--model-class",
                              f"{tmp_path / 'resnet.py'}:Res", "--dataset", "digits",
                              "--schemes", "rate", "--limit", "10", "--calib-samples", "50",
                              "--fidelity-samples", "4", "-p", "rate.steps=4",
                              "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", str(weights), "--model-class",
                              f"{tmp_path / 'resnet.py'}:Res", "--dataset", "digits",
                              "--limit", "10", "--calib-samples", "50", "--fidelity-samples",
                              "4", "-p", "rate.steps=4",
                              "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output  # every scheme by default: ssnn skipped
    assert "ssnn skipped: layers" in " ".join(res.output.split())

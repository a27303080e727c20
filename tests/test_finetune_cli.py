"""``spikecast finetune`` end to end on wine and digits (1 epoch), then ``evaluate`` and
``convert`` with the scheme, parameters and dataset the model file records."""

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from spikecast.cli.main import app
from spikecast.io.snnfile import load_converted

runner = CliRunner()


@pytest.fixture(scope="module")
def wine_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "wine.safetensors"
    res = runner.invoke(app, ["train", "wine-fc", "--out", str(path), "--epochs", "60",
                              "--lr", "0.01", "--batch-size", "32"])
    assert res.exit_code == 0, res.output
    return path


def test_finetune_rate_then_evaluate_and_convert_use_the_record(wine_model, tmp_path) -> None:
    out = tmp_path / "wine-rate4.safetensors"
    res = runner.invoke(app, ["finetune", str(wine_model), "--scheme", "rate", "-p", "steps=4",
                              "--epochs", "1", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "kept epoch" in res.output
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["dataset"] == "wine" and side["base_model"] == str(wine_model.resolve())
    assert side["scheme"]["name"] == "rate"
    assert side["scheme"]["params"]["steps"] == 4 and side["scheme"]["params"]["v_init"] == 0.5
    assert "finetune" in side["command"] and "--epochs 1" in side["command"]
    report = tmp_path / "r.json"
    res = runner.invoke(app, ["evaluate", str(out), "--json", str(report)])
    assert res.exit_code == 0, res.output
    result = json.loads(report.read_text())
    assert result["dataset"] == "wine"
    assert result["schemes"]["rate"]["params"] == side["scheme"]["params"]
    snn = tmp_path / "w.spikecast"
    res = runner.invoke(app, ["convert", str(out), "-p", "steps=8", "--out", str(snn)])
    assert res.exit_code == 0, res.output
    conv = load_converted(snn)
    assert conv.scheme == "rate" and conv.params == side["scheme"]["params"] | {"steps": 8}


def test_convert_of_an_untuned_model_needs_a_scheme(wine_model, tmp_path) -> None:
    res = runner.invoke(app, ["convert", str(wine_model), "--out", str(tmp_path / "x.spikecast")])
    assert res.exit_code == 2
    assert "was not fine-tuned for a scheme; pass --scheme" in res.output


def test_finetune_sigma_delta_on_digits_from_onnx(tmp_path) -> None:
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    onnx_path = tmp_path / "digits.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(onnx_path), dynamo=False)
    out = tmp_path / "digits-sd.safetensors"
    res = runner.invoke(app, ["finetune", str(onnx_path), "--scheme", "sigma-delta",
                              "--dataset", "digits", "-p", "theta=0.5", "--quantizer", "floor",
                              "--epochs", "1", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["dataset"] == "digits" and side["architecture"] == "graph"
    assert side["scheme"]["params"]["theta"] == [0.5, 0.5]
    assert [r["epoch"] for r in side["finetune"]["history"]] == [0, 1]


def test_finetune_errors_are_one_line(wine_model, tmp_path) -> None:
    res = runner.invoke(app, ["finetune", str(wine_model), "--scheme", "ssnn",
                              "--out", str(tmp_path / "x.safetensors")])
    assert res.exit_code == 2 and "supports the schemes sigma-delta, rate" in res.output
    res = runner.invoke(app, ["finetune", str(tmp_path / "m.onnx"), "--scheme", "rate",
                              "--out", str(tmp_path / "x.safetensors")])
    assert res.exit_code == 2 and "does not name its dataset; pass --dataset" in res.output
    res = runner.invoke(app, ["finetune", str(wine_model), "--scheme", "rate",
                              "--out", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "must end in .safetensors" in res.output


def test_ctrl_c_saves_the_best_epoch_and_exits_130(wine_model, tmp_path, monkeypatch) -> None:
    from spikecast.finetune import trainer

    calls = []
    validate = trainer.validate

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # epoch 0, epoch 1, then Ctrl-C while validating epoch 2
            raise KeyboardInterrupt
        return validate(*args, **kwargs)

    monkeypatch.setattr(trainer, "validate", interrupted_in_epoch_2)
    out = tmp_path / "t.safetensors"
    res = runner.invoke(app, ["finetune", str(wine_model), "--scheme", "rate", "--epochs", "5",
                              "--out", str(out), "--quiet"])
    assert res.exit_code == 130, res.output
    assert "interrupted" in res.output
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["finetune"]["interrupted"] and side["finetune"]["best_epoch"] == 1
    assert [r["epoch"] for r in side["finetune"]["history"]] == [0, 1]

"""The command line end to end: train -> convert -> evaluate, params, errors."""

import json

import pytest
import torch
from typer.testing import CliRunner

from spikecast.cli.main import app, parse_params

runner = CliRunner()


@pytest.fixture(scope="module")
def wine_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "wine.safetensors"
    res = runner.invoke(
        app, ["train", "wine-fc", "--out", str(path), "--epochs", "60", "--lr", "0.01",
              "--batch-size", "32"]
    )
    assert res.exit_code == 0, res.output
    assert "test accuracy" in res.output
    return path


def test_train_convert_evaluate_round_trip(wine_model, tmp_path) -> None:
    snn = tmp_path / "wine-rate.spikecast"
    res = runner.invoke(
        app, ["convert", str(wine_model), "--scheme", "rate", "-p", "steps=40", "--out", str(snn)]
    )
    assert res.exit_code == 0, res.output
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["evaluate", str(snn), "--limit", "50", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["dataset"] == "wine" and data["n_samples"] == 50
    rate = data["schemes"]["rate"]
    assert rate["params"]["steps"] == 40
    assert len(rate["curve"]["x"]) == 40
    assert rate["ann_macs"] == data["ann"]["macs"] == 13 * 30 + 30 * 3
    # the same conversion done on the fly gives the same result (deterministic simulator)
    out2 = tmp_path / "r2.json"
    res = runner.invoke(
        app, ["evaluate", str(wine_model), "--scheme", "rate", "-p", "steps=40", "--limit", "50",
              "--json", str(out2)]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(out2.read_text())["schemes"]["rate"]["accuracy"] == rate["accuracy"]


@pytest.mark.parametrize(
    ("scheme", "params"),
    [("ssnn", ["phase=random"]), ("sigma-delta", ['theta={"fraction": 0.2}'])],
)
def test_saved_conversion_equals_on_the_fly(wine_model, tmp_path, scheme, params) -> None:
    flags = [x for p in params for x in ("-p", p)]
    snn = tmp_path / "w.spikecast"
    res = runner.invoke(app, ["convert", str(wine_model), "--scheme", scheme, *flags,
                              "--out", str(snn)])
    assert res.exit_code == 0, res.output
    saved, fly = tmp_path / "a.json", tmp_path / "b.json"
    res = runner.invoke(app, ["evaluate", str(snn), "--limit", "30", "--json", str(saved)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", str(wine_model), "--scheme", scheme, *flags,
                              "--limit", "30", "--json", str(fly)])
    assert res.exit_code == 0, res.output
    a = json.loads(saved.read_text())["schemes"][scheme]
    b = json.loads(fly.read_text())["schemes"][scheme]
    assert a["accuracy"] == b["accuracy"]
    assert a["spikes_per_neuron"] == pytest.approx(b["spikes_per_neuron"], rel=1e-9)


def test_params_on_a_finished_conversion_are_refused(wine_model, tmp_path) -> None:
    snn = tmp_path / "w.spikecast"
    assert runner.invoke(app, ["convert", str(wine_model), "--scheme", "rate",
                               "--out", str(snn)]).exit_code == 0
    res = runner.invoke(app, ["evaluate", str(snn), "-p", "percentile=50"])
    assert res.exit_code == 2
    assert "parameters are fixed" in res.output


def test_unknown_parameter_lists_the_allowed_ones(wine_model, tmp_path) -> None:
    res = runner.invoke(app, ["convert", str(wine_model), "--scheme", "rate", "-p", "foo=1",
                              "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "no parameter 'foo'" in res.output and "steps" in res.output


def test_dataset_of_the_wrong_shape_is_named(wine_model) -> None:
    res = runner.invoke(app, ["evaluate", str(wine_model), "--dataset", "digits"])
    assert res.exit_code == 2
    assert "(1, 8, 8)" in res.output


def test_unknown_scheme_is_a_clear_error(wine_model, tmp_path) -> None:
    res = runner.invoke(
        app, ["convert", str(wine_model), "--scheme", "bogus", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2
    assert "unknown scheme 'bogus'" in res.output and "rate" in res.output


def test_bad_parameter_value_is_reported(wine_model, tmp_path) -> None:
    res = runner.invoke(
        app, ["convert", str(wine_model), "--scheme", "rate", "-p", "steps=0",
              "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2
    assert "steps" in res.output


def test_evaluate_rejects_a_pickle(tmp_path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not really")
    res = runner.invoke(app, ["evaluate", str(bad)])
    assert res.exit_code == 2
    assert "error" in res.output


def test_parse_params() -> None:
    assert parse_params(["steps=25", "reset=zero", "percentile=99.9"]) == {
        "steps": 25, "reset": "zero", "percentile": 99.9
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_params(["steps"])


def test_convert_from_onnx_equals_the_safetensors_path(wine_model, tmp_path) -> None:
    pytest.importorskip("onnx")
    from spikecast.io.annfile import load_model

    module, _ = load_model(wine_model)
    onnx_path = tmp_path / "wine.onnx"
    torch.onnx.export(module.eval(), (torch.zeros(1, 13),), str(onnx_path), dynamo=False)
    res = runner.invoke(app, ["convert", str(onnx_path), "--scheme", "rate", "--out",
                              str(tmp_path / "x.spikecast")])
    assert res.exit_code != 0 and "pass --dataset" in res.output
    results = []
    for model, extra in ((onnx_path, ["--dataset", "wine"]), (wine_model, [])):
        snn, out = tmp_path / f"{model.stem}.spikecast", tmp_path / f"{model.stem}.json"
        res = runner.invoke(app, ["convert", str(model), "--scheme", "rate", "-p", "steps=30",
                                  *extra, "--out", str(snn)])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["evaluate", str(snn), "--json", str(out)])
        assert res.exit_code == 0, res.output
        results.append(json.loads(out.read_text())["schemes"]["rate"])
    assert results[0]["accuracy"] == results[1]["accuracy"]
    assert results[0]["spikes_per_neuron"] == results[1]["spikes_per_neuron"]
    # evaluate converts an ONNX model on the fly, like an ANN .safetensors file
    out = tmp_path / "fly.json"
    res = runner.invoke(app, ["evaluate", str(onnx_path), "--dataset", "wine", "--scheme",
                              "rate", "-p", "steps=30", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["schemes"]["rate"]["accuracy"] == results[0]["accuracy"]
    res = runner.invoke(app, ["evaluate", str(onnx_path), "--dataset", "digits"])
    assert res.exit_code != 0 and "does not match ONNX input" in res.output


def test_export_nir_then_evaluate_the_nir_file_gives_the_same_result(wine_model, tmp_path):
    pytest.importorskip("nir")
    snn, graph = tmp_path / "w.spikecast", tmp_path / "w.nir"
    res = runner.invoke(app, ["convert", str(wine_model), "--scheme", "rate", "-p", "steps=30",
                              "-p", "reset=zero", "-p", "v_init=0", "--out", str(snn)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export-nir", str(snn), str(graph)])
    assert res.exit_code == 0, res.output
    results = []
    for path, extra in ((snn, []), (graph, ["--dataset", "wine"])):
        out = tmp_path / f"{path.suffix[1:]}.json"
        res = runner.invoke(app, ["evaluate", str(path), *extra, "--json", str(out)])
        assert res.exit_code == 0, res.output
        results.append(json.loads(out.read_text()))
    a, b = (r["schemes"]["rate"] for r in results)
    assert a["accuracy"] == b["accuracy"] and a["spikes"] == b["spikes"]
    assert results[0]["ann"]["accuracy"] == results[1]["ann"]["accuracy"]
    res = runner.invoke(app, ["evaluate", str(graph)])
    assert res.exit_code != 0 and "pass --dataset" in res.output
    graph.write_bytes(b"garbage")
    res = runner.invoke(app, ["evaluate", str(graph), "--dataset", "wine"])
    assert res.exit_code != 0 and "not a readable NIR file" in res.output

"""Bad input on the command line: one ``error:`` line and exit 2 (a traceback only with
``--verbose``), outputs refused before any work, parameters, seeds and counts checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import spikecast.cli.main as cli_main
import spikecast.cli.models as cli_models
from spikecast.cli.main import app
from spikecast.io.annfile import save_model, sidecar_path
from spikecast.zoo.train import train_model

runner = CliRunner()


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trained = train_model("wine-fc", "wine", epochs=5, seed=0, progress=False, threads=1)
    return save_model(trained, tmp_path_factory.mktemp("m") / "wine.safetensors",
                      arch="wine-fc")


def _error(args: list[str], status: int = 2) -> str:
    """Run the CLI; it must exit with ``status`` printing one ``error:`` line and no
    traceback; returns that line."""
    res = runner.invoke(app, args)
    assert res.exit_code == status, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    return lines[0]


def test_a_user_error_is_one_line_and_verbose_adds_the_traceback(wine: Path) -> None:
    line = _error(["evaluate", str(wine), "--dataset", "digits"])
    assert "(1, 8, 8)" in line
    res = runner.invoke(app, ["--verbose", "evaluate", str(wine), "--dataset", "digits"])
    assert res.exit_code == 2
    assert "Traceback (most recent call last)" in res.output
    assert res.output.strip().splitlines()[-1].startswith("error: ")


def test_a_bug_is_reported_as_an_internal_error(
    wine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("unexpected")

    monkeypatch.setattr(cli_models, "load_model", broken)
    line = _error(["evaluate", str(wine)], status=1)
    assert "internal error, TypeError: unexpected" in line and "--verbose" in line


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a dataset (the first work of every command) fails the test."""
    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(cli_main, "load_dataset", started)


def test_an_output_over_the_input_is_refused(wine: Path, no_work: None) -> None:
    before = wine.read_bytes(), sidecar_path(wine).read_bytes()
    line = _error(["convert", str(wine), "--scheme", "rate", "--out", str(wine)])
    assert "is also an input of this command" in line
    line = _error(["evaluate", str(wine), "--json", str(sidecar_path(wine))])
    assert "wine.json: is also an input" in line
    assert (wine.read_bytes(), sidecar_path(wine).read_bytes()) == before


def test_bad_output_paths_are_refused_before_any_work(
    wine: Path, tmp_path: Path, no_work: None
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "is a directory" in _error(["convert", str(wine), "--scheme", "rate",
                                       "--out", str(tmp_path)])
    assert "afile is a file, not a folder" in _error(
        ["convert", str(wine), "--scheme", "rate", "--out", str(afile / "x.spikecast")])
    assert "must end in .safetensors" in _error(["train", "wine-fc", "--out", str(afile)])
    assert "is a directory" in _error(["evaluate", str(wine), "--json", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no temp file left


@pytest.mark.parametrize(("scheme", "param", "expected"), [
    ("rate", "threshold=[1]", "parameter 'threshold' must be a finite number, got [1]"),
    ("rate", "threshold=Infinity", "Infinity is not a finite number"),
    ("rate", "threshold=NaN", "NaN is not a finite number"),
    ("rate", "threshold=1e999", "1e999 is not a finite number"),
    ("rate", "steps=2.5", "parameter 'steps' must be an integer, got 2.5"),
    ("rate", "seed=4294967296", "seed must be an integer in [0, 4294967295]"),
    ("ssnn", "window=abc", "parameter 'window' must be a finite number, got 'abc'"),
    ("ssnn", "bogus=1", "scheme 'ssnn' has no parameter 'bogus'; its parameters: c_mem"),
    ("ssnn", "phase_seed=-1", "phase_seed must be an integer in [0, 4294967295]"),
    ("sigma-delta", "theta=-1", "theta must be a finite number > 0, got -1"),
    ("sigma-delta", "time_points=x", "parameter 'time_points' must be an integer"),
])
def test_wrong_parameters_are_one_line(
    wine: Path, tmp_path: Path, scheme: str, param: str, expected: str
) -> None:
    out = tmp_path / "x.spikecast"
    assert expected in _error(["convert", str(wine), "--scheme", scheme, "-p", param,
                               "--out", str(out)])
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["--seed", "4294967296"], ["--seed", "-1"], ["--seed", "2**70"], ["--limit", "-170"],
    ["--limit", "0"], ["--batch-size", "0"],
])
def test_counts_and_seeds_out_of_range_are_refused(wine: Path, args: list[str]) -> None:
    res = runner.invoke(app, ["evaluate", str(wine), "--scheme", "rate", *args])
    assert res.exit_code == 2 and args[0] in res.output
    assert "Traceback" not in res.output


def test_a_data_dir_that_is_a_file_is_refused(wine: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "is a file; give the folder" in _error(["evaluate", str(wine), "--data-dir",
                                                   str(afile)])


def test_report_on_a_binary_or_foreign_file(tmp_path: Path) -> None:
    binary = tmp_path / "results.json"
    binary.write_bytes(bytes(range(256)))
    assert "cannot read results JSON" in _error(["report", str(binary)])
    binary.write_text(json.dumps([1, 2]))
    assert "must hold a JSON object, got list" in _error(["report", str(binary)])
    binary.write_text(json.dumps({"dataset": "wine", "n_samples": 3, "ann": {},
                                  "schemes": {}, "network": {}}))
    assert "'ann': field 'accuracy' is missing" in _error(["report", str(binary)])
    assert "is also an input" in _error(["report", str(binary), "--out", str(binary)])


def test_labels_outside_the_models_classes_are_refused(wine: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "five.npz"
    np.savez(data, x_train=rng.random((10, 13)), y_train=np.arange(10) % 5,
             x_test=rng.random((6, 13)), y_test=np.arange(6) % 5)
    line = _error(["evaluate", str(wine), "--dataset", str(data)])
    assert "labels span [0, 4] but the model has 3 classes" in line


def test_a_tampered_converted_file_is_one_line(wine: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, safe_open, save_file

    snn = tmp_path / "w.spikecast"
    assert runner.invoke(app, ["convert", str(wine), "--scheme", "rate",
                               "--out", str(snn)]).exit_code == 0
    with safe_open(str(snn), framework="pt") as f:
        meta = json.loads(f.metadata()["spikecast"])
    tensors = load_file(str(snn))
    for change, expected in (
        ({"params": None}, "field 'params' must be an object"),
        ({"layers": {"a": 1}}, "field 'layers' must be a non-empty list of layers"),
        ({"calibration": {"scales": [1.0, -2.0, 1.0, 1.0]}},
         "scales must be finite numbers > 0"),
        ({"params": meta["params"] | {"threshold": -1.0}}, "threshold must be a finite number"),
    ):
        save_file(tensors, str(snn), {"spikecast": json.dumps(meta | change)})
        assert expected in _error(["evaluate", str(snn)])
    missing = {k: v for k, v in meta.items() if k != "layers"}
    save_file(tensors, str(snn), {"spikecast": json.dumps(missing)})
    assert "field 'layers' is missing" in _error(["evaluate", str(snn)])
    nan = dict(tensors)
    nan["ann.0.weight"] = nan["ann.0.weight"].clone()
    nan["ann.0.weight"][0, 0] = float("nan")
    save_file(nan, str(snn), {"spikecast": json.dumps(meta)})
    assert "tensor 'ann.0.weight' holds 1 NaN or infinite value" in _error(["evaluate", str(snn)])


def test_a_sidecar_of_the_wrong_type_is_one_line(wine: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.safetensors"
    copy.write_bytes(wine.read_bytes())
    info = json.loads(sidecar_path(wine).read_text())
    for change, expected in (({"dataset": 123}, "field 'dataset' must be a text"),
                             ({"seed": 2**70}, "field 'seed' must be an integer in"),
                             ({"architecture": None}, "field 'architecture' must be a text")):
        sidecar_path(copy).write_text(json.dumps(info | change))
        assert expected in _error(["evaluate", str(copy)])


def test_a_nan_weight_is_refused_naming_the_tensor(wine: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "m.safetensors"
    tensors = load_file(str(wine))
    tensors["0.weight"][3, 2] = float("nan")
    save_file(tensors, str(copy))
    sidecar_path(copy).write_bytes(sidecar_path(wine).read_bytes())
    assert "tensor '0.weight' holds 1 NaN or infinite value" in _error(
        ["evaluate", str(copy), "--scheme", "rate"])


def test_compare_splits_the_data_with_the_models_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`compare --seed 1` must test on the model's own test split (as `evaluate` does)."""
    import spikecast.datasets.loaders as loaders

    trained = train_model("digits-mlp", "digits", epochs=1, seed=0, progress=False, threads=1)
    model = save_model(trained, tmp_path / "digits.safetensors", arch="digits-mlp")
    seeds: list[int] = []
    real = loaders.load_dataset

    def spy(name: str, data_dir: object = None, *, seed: int = 0, **kw: object) -> object:
        seeds.append(seed)
        return real(name, data_dir, seed=seed, **kw)

    monkeypatch.setattr(loaders, "load_dataset", spy)
    res = runner.invoke(app, ["compare", str(model), "--schemes", "rate", "-p", "rate.steps=4",
                              "--limit", "10", "--seed", "1", "--out", str(tmp_path / "c"),
                              "--quiet"])
    assert res.exit_code == 0, res.output
    assert seeds == [0]
    ann = json.loads((tmp_path / "c" / "results.json").read_text())["ann"]["accuracy"]
    x, y = real("digits", seed=0).x_test[:10], real("digits", seed=0).y_test[:10]
    with torch.no_grad():
        assert ann == float((trained.model(x).argmax(1) == y).double().mean())

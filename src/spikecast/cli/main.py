"""The ``spikecast`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console

from spikecast import __version__
from spikecast.datasets.loaders import Dataset, load_dataset
from spikecast.finetune.record import recorded_scheme
from spikecast.frontends.torch_fx import capture
from spikecast.io.annfile import load_model, save_model
from spikecast.io.snnfile import load_converted, model_from_file
from spikecast.ir.graph import Network
from spikecast.measure.counts import ann_macs
from spikecast.measure.result import RunResults, accuracy
from spikecast.report.summary import results_table
from spikecast.schemes import get_recipe, scheme_names
from spikecast.zoo.models import ARCHITECTURES, get_architecture
from spikecast.zoo.train import train_model

app = typer.Typer(
    help="Convert trained PyTorch ANNs into spiking networks, simulate them exactly, and "
    "measure accuracy, latency, spikes, synaptic operations and energy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
reproduce_app = typer.Typer(help="Reproduce the papers' tables.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")
# Tables need ~100 columns; rich assumes 80 when stdout is not a terminal.
console = Console(width=None if sys.stdout.isatty() else 110)

DataDir = Annotated[
    Path | None,
    typer.Option(help="Folder with the MNIST IDX files (else $SPIKECAST_DATA, then the cache)."),
]
Seed = Annotated[int, typer.Option(help="Seed for every random choice (training, sampling).")]
Limit = Annotated[
    int | None, typer.Option(min=1, help="Evaluate on the first N test samples only.")
]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        help="wine, digits, mnist, idx:FOLDER or a .npz file (default: the model's own dataset)."
    ),
]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Scheme parameter KEY=VALUE (repeatable), e.g. steps=25."),
]


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["steps=25", "reset=zero"]`` -> ``{"steps": 25, "reset": "zero"}``.

    Values are read as JSON where they parse, else kept as text."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param expects KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        console.print(f"spikecast {__version__}")
        raise typer.Exit()


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("spikecast-out"),
    seed: Seed = 0,
    limit: Limit = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train the Wine 13-30-3 ANN, convert it with every scheme, print ANN vs SNN and write
    results.json, report.html and accuracy_vs_time.png into OUT."""
    from spikecast.cli.demo import run_demo

    results = run_demo(out, seed=seed, limit=limit, progress=not quiet)
    console.print(results_table(results))
    written = ", ".join(str(out / f) for f in ("results.json", "report.html",
                                               "accuracy_vs_time.png"))
    console.print(f"wrote {written}")


@app.command()
def train(
    arch: Annotated[str, typer.Argument(help=f"One of: {', '.join(ARCHITECTURES)}.")],
    out: Annotated[Path, typer.Option(help="Weights file to write (.safetensors).")],
    dataset: DatasetOpt = None,
    data_dir: DataDir = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 128,
    seed: Seed = 0,
) -> None:
    """Train a reference architecture and save it as .safetensors plus a JSON sidecar."""
    try:
        a = get_architecture(arch)
        data = load_dataset(dataset or a.dataset, data_dir, seed=seed)
        trained = train_model(
            arch, data, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size, progress=True
        )
        save_model(trained, out, arch=arch, metadata={"dataset_spec": dataset or a.dataset})
    except ValueError as exc:
        _fail(str(exc))
    console.print(
        f"{arch}: test accuracy {100 * trained.test_accuracy:.2f}% "
        f"(train {100 * trained.train_accuracy:.2f}%), saved to {out}"
    )


def _calibration(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    if n >= len(x):
        return x
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx]


def _load_ann(
    model: Path, dataset: str | None, data_dir: Path | None, seed: int
) -> tuple[Network, Dataset, dict[str, Any]]:
    """The captured ANN, its dataset and metadata, from .safetensors (+ sidecar) or .onnx."""
    if model.suffix.lower() == ".onnx":
        from spikecast.frontends.onnx.reader import load_onnx

        if dataset is None:
            raise ValueError(f"{model}: an ONNX file does not name its dataset; pass --dataset")
        data = load_dataset(dataset, data_dir, seed=seed)
        return load_onnx(model, data.sample_shape), data, {"seed": seed}
    module, meta = load_model(model)
    data = load_dataset(dataset or meta["dataset"], data_dir, seed=meta.get("seed", seed))
    return capture(module, data.sample_shape), data, meta


@app.command()
def convert(
    model: Annotated[Path, typer.Argument(
        help="ANN: .safetensors with JSON sidecar, or an .onnx file (then pass --dataset).")],
    out: Annotated[Path, typer.Option(help="Converted network file to write (.spikecast).")],
    scheme: Annotated[str | None, typer.Option(
        help=f"One of: {', '.join(scheme_names())} (default: the one the model was "
             "fine-tuned for).")] = None,
    param: Params = None,
    dataset: DatasetOpt = None,
    data_dir: DataDir = None,
    calib_samples: Annotated[
        int, typer.Option(min=1, help="Training samples used for calibration/normalization.")
    ] = 2000,
    seed: Seed = 0,
) -> None:
    """Convert a saved ANN with a scheme (calibrating on training data) and save the SNN."""
    try:
        net, data, meta = _load_ann(model, dataset, data_dir, seed)
        scheme, params = recorded_scheme(meta, scheme, parse_params(param))
        if scheme is None:
            raise ValueError(f"{model} was not fine-tuned for a scheme; pass --scheme "
                             f"({', '.join(scheme_names())})")
        recipe = get_recipe(scheme, **params)
        snn = recipe.build(net, recipe.calibrate(net, _calibration(data.x_train, calib_samples,
                                                                    seed)))
        info = {
            "source_model": str(model), "dataset": data.name, "calib_samples": calib_samples,
            "split_seed": meta.get("seed", seed),
        }
        snn.save(out, info)
    except ValueError as exc:
        _fail(str(exc))
    console.print(f"converted {model} with scheme {scheme!r} -> {out}")


@app.command()
def evaluate(
    path: Annotated[Path, typer.Argument(
        help="A converted .spikecast file, a NIR graph (.nir, needs --dataset) or an ANN "
             "(.safetensors, or .onnx with --dataset).")],
    scheme: Annotated[
        str | None, typer.Option(help="Convert an ANN file with this scheme first (default: "
                                      "the one a fine-tuned model file records).")
    ] = None,
    param: Params = None,
    dataset: DatasetOpt = None,
    data_dir: DataDir = None,
    limit: Limit = None,
    batch_size: Annotated[int, typer.Option(help="Samples simulated together.")] = 256,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results JSON.")] = None,
    seed: Seed = 0,
) -> None:
    """Evaluate a converted network (or an ANN, optionally converted on the fly) on a dataset."""
    try:
        run = _evaluate(path, scheme, parse_params(param), dataset, data_dir, limit, batch_size,
                        seed)
    except ValueError as exc:
        _fail(str(exc))
    console.print(results_table(run.to_dict()))
    if json_out is not None:
        console.print(f"wrote {run.save(json_out)}")


def _evaluate(
    path: Path, scheme: str | None, params: dict[str, Any], dataset: str | None,
    data_dir: Path | None, limit: int | None, batch_size: int, seed: int,
) -> RunResults:
    torch.manual_seed(seed)
    if path.suffix.lower() in (".safetensors", ".onnx"):
        ann, data, meta = _load_ann(path, dataset, data_dir, seed)
        scheme, params = recorded_scheme(meta, scheme, params)
        snn_name = scheme
        if scheme is not None:
            recipe = get_recipe(scheme, **params)
            snn = recipe.build(ann, recipe.calibrate(ann, _calibration(data.x_train, 2000, seed)))
    elif path.suffix.lower() == ".nir":
        from spikecast.io.nir import read_nir

        if params:
            raise ValueError(f"{path}: a NIR graph is simulated as written; --param is refused")
        if dataset is None:
            raise ValueError(f"{path}: a NIR graph does not name its dataset; pass --dataset")
        snn = read_nir(path)
        data = load_dataset(dataset, data_dir, seed=seed)
        # the graph's analog network (each IF population read as a ReLU): its argmax is
        # the ANN's, whose layers differ from it by positive per-layer scales
        ann, snn_name = snn.network, "rate"
    else:
        conv = load_converted(path)
        if scheme is not None and scheme != conv.scheme:
            raise ValueError(f"{path} was converted with {conv.scheme!r}, not {scheme!r}")
        if params:
            raise ValueError(
                f"{path} holds a finished conversion whose parameters are fixed; "
                "pass --param to `spikecast convert` (or evaluate the ANN file with --scheme)"
            )
        split_seed = conv.info.get("split_seed", seed)
        data = load_dataset(dataset or conv.info.get("dataset", ""), data_dir, seed=split_seed)
        ann, snn_name = conv.ann, conv.scheme
        snn = model_from_file(conv, path)
    if data.sample_shape != ann.input_shape:
        raise ValueError(
            f"the network takes samples of shape {ann.input_shape} but dataset {data.name!r} "
            f"has {data.sample_shape}"
        )
    x, y = data.x_test[:limit], data.y_test[:limit]
    with torch.no_grad():
        run = RunResults(data.name, accuracy(ann(x).argmax(1), y), ann_macs(ann), len(x))
    if snn_name is not None:
        run.schemes[snn_name] = snn.evaluate(x, y, batch_size=batch_size, progress=True)
    return run


def _register_scheme_commands() -> None:
    from spikecast.cli.finetune import register as register_finetune
    from spikecast.cli.nir import register as register_nir
    from spikecast.cli.report import register as register_report
    from spikecast.cli.sigma_delta import register as register_sigma_delta
    from spikecast.cli.ssnn import register as register_ssnn

    register_ssnn(app, reproduce_app)
    register_sigma_delta(app, reproduce_app)
    register_report(app)
    register_nir(app)
    register_finetune(app)


_register_scheme_commands()

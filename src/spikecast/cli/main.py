"""The ``spikecast`` command line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from spikecast import __version__
from spikecast.checks import MAX_SEED, require_labels
from spikecast.cli.entry import SpikecastGroup, set_global_options, show_progress
from spikecast.cli.models import ModelClassOpt, ModelKwargsOpt, is_ann, load_module
from spikecast.cli.output import make_console
from spikecast.cli.values import parse_value
from spikecast.datasets.loaders import Dataset, load_dataset
from spikecast.finetune.record import recorded_scheme
from spikecast.frontends.torch_fx import capture
from spikecast.io.annfile import check_model_output, save_model, sidecar_path
from spikecast.io.atomic import check_output, check_output_dir
from spikecast.io.snnfile import load_converted, model_from_file
from spikecast.ir.graph import Network
from spikecast.measure.counts import ann_macs
from spikecast.measure.result import RunResults, accuracy
from spikecast.report.summary import results_table
from spikecast.schemes import Recipe, get_recipe, recipe_class, scheme_names
from spikecast.schemes.params import with_seed
from spikecast.zoo.models import ARCHITECTURES, get_architecture
from spikecast.zoo.train import train_model

app = typer.Typer(
    help="Convert trained PyTorch ANNs into spiking networks, simulate them exactly, and "
    "measure accuracy, latency, spikes, synaptic operations and energy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=SpikecastGroup,
)
reproduce_app = typer.Typer(help="Reproduce the papers' tables.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")
console = make_console()

DataDir = Annotated[
    Path | None,
    typer.Option(help="Folder with the MNIST IDX files (else $SPIKECAST_DATA, then the cache)."),
]
Seed = Annotated[int, typer.Option(
    min=0, max=MAX_SEED, help="Seed for every random choice (training, sampling, spike trains).")]
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


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["steps=25", "reset=zero"]`` -> ``{"steps": 25, "reset": "zero"}``.

    Values are read as strict JSON where they parse (``NaN`` and ``Infinity`` are refused),
    else kept as text."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param expects KEY=VALUE, got {item!r}")
        params[key] = parse_value(value, item)
    return params


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show the traceback of an error, and log details.")] = False,
) -> None:
    set_global_options(quiet, verbose)
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
    from spikecast.cli.demo import DEMO_FILES, run_demo

    check_output_dir(out, DEMO_FILES)
    results = run_demo(out, seed=seed, limit=limit, progress=show_progress() and not quiet)
    console.print(results_table(results))
    written = ", ".join(str(out / f) for f in DEMO_FILES)
    console.print(f"wrote {written}")


@app.command()
def train(
    arch: Annotated[str, typer.Argument(help=f"One of: {', '.join(ARCHITECTURES)}.")],
    out: Annotated[Path, typer.Option(help="Weights file to write (.safetensors).")],
    dataset: DatasetOpt = None,
    data_dir: DataDir = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 10,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(min=1, help="Mini-batch size.")] = 128,
    seed: Seed = 0,
    log_every: Annotated[int | None, typer.Option(
        min=1, help="Epochs between log lines (default: a tenth of the run).")] = None,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Train on the first N training samples only (a quick run).")] = None,
) -> None:
    """Train a reference architecture and save it as .safetensors plus a JSON sidecar
    (one progress bar, or plain progress lines when the output is not a terminal)."""
    a = get_architecture(arch)
    check_model_output(out, _inputs(None, dataset))
    data = load_dataset(dataset or a.dataset, data_dir, seed=seed)
    if limit is not None:
        data = replace(data, x_train=data.x_train[:limit], y_train=data.y_train[:limit])
    trained = train_model(
        arch, data, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
        progress=show_progress(), log_every=log_every,
    )
    save_model(trained, out, arch=arch, metadata={"dataset_spec": dataset or a.dataset})
    console.print(
        f"{arch}: test accuracy {100 * trained.test_accuracy:.2f}% "
        f"(train {100 * trained.train_accuracy:.2f}%), saved to {out}"
    )


def _inputs(model: Path | None, dataset: str | None) -> list[Path]:
    """The files a command reads: the model (with its sidecar) and a dataset archive."""
    files = []
    if model is not None:
        files.append(model)
        if model.suffix == ".safetensors":
            files.append(sidecar_path(model))
    if dataset is not None and (dataset.startswith("npz:") or dataset.endswith(".npz")):
        files.append(Path(dataset.removeprefix("npz:")).expanduser())
    return files


def _recipe(scheme: str, params: dict[str, Any], seed: int) -> Recipe:
    """The recipe ``scheme`` with ``params``; ``seed`` seeds what they leave unseeded."""
    return get_recipe(scheme, **with_seed(recipe_class(scheme), params, seed))


def _calibration(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    if n >= len(x):
        return x
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx]


def _load_ann(
    model: Path, dataset: str | None, data_dir: Path | None, seed: int,
    model_class: str | None = None, model_kwargs: str | None = None,
) -> tuple[Network, Dataset, dict[str, Any]]:
    """The captured ANN, its dataset and metadata, from a pretrained name, .safetensors
    (+ sidecar), .onnx, or --model-class with weights (see :mod:`spikecast.cli.models`)."""
    if model.suffix.lower() == ".onnx" and model_class is None:
        from spikecast.frontends.onnx.reader import load_onnx

        if dataset is None:
            raise ValueError(f"{model}: an ONNX file does not name its dataset; pass --dataset")
        data = load_dataset(dataset, data_dir, seed=seed)
        return load_onnx(model, data.sample_shape), data, {"seed": seed}
    module, meta = load_module(model, model_class, model_kwargs)
    name = dataset or meta.get("dataset")
    if name is None:
        raise ValueError(f"{model}: your own model does not name its dataset; pass --dataset")
    data = load_dataset(name, data_dir, seed=meta.get("seed", seed))
    return capture(module, data.sample_shape), data, meta


@app.command()
def convert(
    model: Annotated[Path, typer.Argument(
        help="ANN: a pretrained name (mnist-fc, mnist-cnn, mnist-cnn-sd), .safetensors with "
             "JSON sidecar, an .onnx file (then pass --dataset), or weights of --model-class.")],
    out: Annotated[Path, typer.Option(help="Converted network file to write (.spikecast).")],
    scheme: Annotated[str | None, typer.Option(
        help=f"One of: {', '.join(scheme_names())} (default: the one the model was "
             "fine-tuned for).")] = None,
    param: Params = None,
    model_class: ModelClassOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDir = None,
    calib_samples: Annotated[
        int, typer.Option(min=1, help="Training samples used for calibration/normalization.")
    ] = 2000,
    seed: Seed = 0,
) -> None:
    """Convert a saved ANN with a scheme (calibrating on training data) and save the SNN."""
    check_output(out, _inputs(model, dataset))
    net, data, meta = _load_ann(model, dataset, data_dir, seed, model_class, model_kwargs)
    scheme, params = recorded_scheme(meta, scheme, parse_params(param))
    if scheme is None:
        raise ValueError(f"{model} was not fine-tuned for a scheme; pass --scheme "
                         f"({', '.join(scheme_names())})")
    recipe = _recipe(scheme, params, seed)
    snn = recipe.build(net, recipe.calibrate(net, _calibration(data.x_train, calib_samples,
                                                                seed)))
    info = {
        "source_model": str(model), "dataset": data.name, "calib_samples": calib_samples,
        "split_seed": meta.get("seed", seed),
    }
    snn.save(out, info)
    console.print(f"converted {model} with scheme {scheme!r} -> {out}")


@app.command()
def evaluate(
    path: Annotated[Path, typer.Argument(
        help="A converted .spikecast file, a NIR graph (.nir, needs --dataset) or an ANN "
             "(a pretrained name, .safetensors, .onnx with --dataset, or weights of "
             "--model-class).")],
    scheme: Annotated[
        str | None, typer.Option(help="Convert an ANN file with this scheme first (default: "
                                      "the one a fine-tuned model file records).")
    ] = None,
    param: Params = None,
    model_class: ModelClassOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDir = None,
    limit: Limit = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples simulated together.")] = 256,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results JSON.")] = None,
    seed: Seed = 0,
) -> None:
    """Evaluate a converted network (or an ANN, optionally converted on the fly) on a dataset."""
    if json_out is not None:
        check_output(json_out, _inputs(path, dataset))
    run = _evaluate(path, scheme, parse_params(param), dataset, data_dir, limit, batch_size,
                    seed, model_class, model_kwargs)
    console.print(results_table(run.to_dict()))
    if json_out is not None:
        console.print(f"wrote {run.save(json_out)}")


def _evaluate(
    path: Path, scheme: str | None, params: dict[str, Any], dataset: str | None,
    data_dir: Path | None, limit: int | None, batch_size: int, seed: int,
    model_class: str | None = None, model_kwargs: str | None = None,
) -> RunResults:
    torch.manual_seed(seed)
    if is_ann(path, model_class):
        ann, data, meta = _load_ann(path, dataset, data_dir, seed, model_class, model_kwargs)
        scheme, params = recorded_scheme(meta, scheme, params)
        recipe = None if scheme is None else _recipe(scheme, params, seed)
        snn_name = scheme
        if recipe is not None:
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
    require_labels(y, len(x), ann.n_classes)
    with torch.no_grad():
        run = RunResults(data.name, accuracy(ann(x).argmax(1), y), ann_macs(ann), len(x))
    if snn_name is not None:
        run.schemes[snn_name] = snn.evaluate(x, y, batch_size=batch_size,
                                             progress=show_progress())
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

"""Typer commands of the SSNN scheme: ``reproduce ssnn-wine``, ``reproduce ssnn-mnist`` and
``ssnn-sweep``. The main CLI calls :func:`register`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from spikecast.checks import MAX_SEED
from spikecast.cli.entry import show_progress
from spikecast.cli.output import make_console
from spikecast.cli.values import parse_value
from spikecast.io.atomic import check_output, check_output_dir, write_bytes
from spikecast.schemes.params import check_params, with_seed

if TYPE_CHECKING:
    from spikecast.papers.ssnn_nomura.reproduce import Reproduction


console = make_console()

SeedOpt = Annotated[int, typer.Option(
    min=0, max=MAX_SEED, help="Seed for training, calibration sampling, PWM phases, mismatch.")]
LimitOpt = Annotated[int | None, typer.Option(min=1, help="Use only the first N test samples.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the results as JSON here.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(help="Folder with the MNIST IDX files (else $SPIKECAST_DATA, then the cache)."),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Recipe parameter KEY=VALUE (repeatable), e.g. "
                 "phase=random, window=1e-5, mismatch_pct=5."),
]


def parse_settings(items: list[str] | None) -> dict[str, Any]:
    """``["window=1e-5", "phase=random"]`` -> ``{"window": 1e-05, "phase": "random"}``
    (values read as strict JSON where they parse, else as text), checked against the SSNN
    recipe's parameters."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value, item)
    from spikecast.schemes.ssnn.recipe import SSNNRecipe

    check_params(SSNNRecipe, "ssnn", out)
    return out


TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
TIME_PARAMS = ("window", "spike_width")
LONG_TIME = 1e-3  # s: 200 x the paper's 5 us window; the simulation time grows with it


def parse_sweep_values(param: str, text: str) -> list[float]:
    """``--values`` of ``ssnn-sweep``: for window / spike_width, times in microseconds unless
    they carry a unit (``5us``, ``0.5ms``, ``2e-6s``, ``100ns``), returned in seconds; other
    parameters are plain numbers."""
    values = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        unit = next((u for u in sorted(TIME_UNITS, key=len, reverse=True)
                     if param in TIME_PARAMS and item.endswith(u)), None)
        number = item[: -len(unit)] if unit else item
        try:
            value = float(number)
        except ValueError:
            units = "; times take a unit among " + ", ".join(TIME_UNITS) if (
                param in TIME_PARAMS) else ""
            raise ValueError(f"--values: {item!r} is not a number{units}") from None
        if param in TIME_PARAMS:
            value *= TIME_UNITS[unit] if unit else 1e-6
            if not value > 0:
                raise ValueError(f"--values: {param} {item!r} must be > 0")
        values.append(value)
    if not values:
        raise ValueError("--values: give at least one value")
    return values


def _seeded_settings(items: list[str] | None, seed: int) -> dict[str, Any]:
    """:func:`parse_settings`, with ``seed`` for the PWM phases and mismatch unless set."""
    from spikecast.schemes.ssnn.recipe import SSNNRecipe

    return with_seed(SSNNRecipe, parse_settings(items), seed)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def print_reproduction(rep: Reproduction) -> None:
    """Our figure beside the paper's, one row per metric."""
    table = Table(title=f"{rep.name}: ours vs paper")
    table.add_column("metric")
    table.add_column("ours", justify="right")
    table.add_column("paper", justify="right")
    ours = rep.to_dict()
    keys = ["ann_accuracy", "snn_accuracy", "power_W", "energy_per_classification_J",
            "activity_energy_J", "spikes_per_neuron", "output_spikes_per_sample",
            "silent_samples", "n_samples"]
    for key in keys:
        if key in ours:
            table.add_row(key, _fmt(ours[key]), _fmt(rep.paper.get(key)))
    for key, value in rep.paper.items():
        if key not in keys:
            table.add_row(key, "-", _fmt(value))
    console.print(table)


def _finish(rep: Reproduction, json_path: Path | None) -> None:
    print_reproduction(rep)
    if json_path is not None:
        console.print(f"wrote {rep.save(json_path)}")


def register(app: typer.Typer, reproduce_app: typer.Typer) -> None:
    """Add ``ssnn-wine`` and ``ssnn-mnist`` to ``reproduce_app`` and ``ssnn-sweep`` to ``app``."""

    @reproduce_app.command("ssnn-wine")
    def ssnn_wine(
        seed: SeedOpt = 0,
        limit: LimitOpt = None,
        json_path: JsonOpt = None,
        data_dir: DataDirOpt = None,
        epochs: Annotated[int, typer.Option(min=1, help="ANN training epochs (full batch).")
                          ] = 500,
        trace_png: Annotated[Path | None, typer.Option(
            help="Also draw sample 0's PWM inputs, hidden membranes and output spikes "
                 "(the paper's Fig. 8(b)) into this PNG.")] = None,
        settings: ParamOpt = None,
    ) -> None:
        """SSNN paper, Table II: wine 13-30-3 on all 178 samples (ANN trained on 0.2-1 V
        inputs), converted SNN accuracy, output spikes and circuit power (--data-dir is
        unused: wine ships with scikit-learn)."""
        from spikecast.papers.ssnn_nomura.reproduce import reproduce_wine

        params = _seeded_settings(settings, seed)
        _check_outputs(json_path, trace_png)
        rep = reproduce_wine(seed=seed, limit=limit, epochs=epochs, **params)
        _finish(rep, json_path)
        if trace_png is not None:
            _wine_trace(seed, epochs, params, trace_png)

    @reproduce_app.command("ssnn-mnist")
    def ssnn_mnist(
        seed: SeedOpt = 0,
        limit: LimitOpt = None,
        json_path: JsonOpt = None,
        data_dir: DataDirOpt = None,
        progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
        settings: ParamOpt = None,
    ) -> None:
        """SSNN paper, Table IV: MNIST 784-500-10 (shipped mnist-fc) on the 10k test set:
        ANN and SNN accuracy, spikes per neuron, energy per classification."""
        from spikecast.papers.ssnn_nomura.reproduce import reproduce_mnist

        params = _seeded_settings(settings, seed)
        _check_outputs(json_path)
        rep = reproduce_mnist(seed=seed, limit=limit, data_dir=data_dir,
                              progress=progress and show_progress(), **params)
        _finish(rep, json_path)

    @app.command("ssnn-sweep")
    def ssnn_sweep(
        param: Annotated[str, typer.Option(
            help="window | spike_width | current_scale | mismatch_pct")] = "window",
        values: Annotated[str, typer.Option(
            help="Comma-separated values: window/spike_width in microseconds unless they "
                 "carry a unit (5us, 0.5ms, 2e-6s, 100ns); a factor for current_scale, % for "
                 "mismatch_pct.")] = "1,2,5,10",
        dataset: Annotated[str, typer.Option(help="wine or mnist.")] = "wine",
        out: Annotated[Path, typer.Option(help="Folder for the JSON and PNG.")] = Path("."),
        mc_seeds: Annotated[int, typer.Option(min=1, help="Mismatch draws per value.")] = 5,
        seed: SeedOpt = 0,
        limit: LimitOpt = None,
        json_path: JsonOpt = None,
        data_dir: DataDirOpt = None,
        settings: ParamOpt = None,
    ) -> None:
        """Accuracy of the SSNN vs observation window, spike width, current scale or
        mismatch sigma (Monte Carlo), on the reproduction's wine or MNIST network."""
        from spikecast.papers.ssnn_nomura.sweeps import SweepParam, run_sweep

        try:
            sweep_param = SweepParam(param)
        except ValueError:
            allowed = ", ".join(p.value for p in SweepParam)
            raise typer.BadParameter(f"--param must be one of {allowed}, got {param!r}") from None
        try:
            grid = parse_sweep_values(sweep_param.value, values)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        for value in grid:
            if sweep_param.value in TIME_PARAMS and value > LONG_TIME:
                console.print(f"[yellow]warning:[/yellow] {sweep_param.value} {value:g} s "
                              f"(= {value * 1e3:g} ms) is over 1 ms, {value / 5e-6:.0f} x the "
                              "paper's 5 us window; the simulation time grows with it "
                              "(bare numbers are microseconds)")
        params = _seeded_settings(settings, seed)
        check_output_dir(out, [f"ssnn_sweep_{sweep_param.value}.{ext}" for ext in ("json", "png")])
        _check_outputs(json_path)
        ann, calib, x, y, base = _sweep_setup(dataset, seed, limit, data_dir)
        result = run_sweep(ann, calib, x, y, sweep_param, grid,
                           base_params=base | params, mc_seeds=mc_seeds)
        json_file, png_file = result.save(out)
        table = Table(title=f"SSNN accuracy vs {result.param} ({dataset})")
        for col in (result.param, "accuracy", "std", "spikes/neuron"):
            table.add_column(col, justify="right")
        for row in zip(result.values, result.accuracy, result.accuracy_std,
                       result.spikes_per_neuron, strict=True):
            table.add_row(*(_fmt(v) for v in row))
        console.print(table)
        console.print(f"wrote {json_file} and {png_file}")
        if json_path is not None:
            write_bytes(json_path, json_file.read_bytes())


def _check_outputs(*paths: Path | None) -> None:
    """Refuse unwritable output files before any work starts."""
    for path in paths:
        if path is not None:
            check_output(path)


def _sweep_setup(
    dataset: str, seed: int, limit: int | None, data_dir: Path | None
) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """The reproduction's network, calibration inputs, test split and base parameters."""
    from spikecast.datasets.loaders import load_dataset
    from spikecast.papers.ssnn_nomura.reproduce import MNIST_RECIPE, WINE_RECIPE, train_wine_ann
    from spikecast.schemes.ssnn.circuit import PWMEncoder

    if dataset == "wine":
        data = load_dataset("wine")
        ann = train_wine_ann(data, PWMEncoder(), seed=seed)
        return ann, data.x_train, data.x_test[:limit], data.y_test[:limit], dict(WINE_RECIPE)
    if dataset == "mnist":
        from spikecast.zoo.pretrained import load_pretrained

        data = load_dataset("mnist", data_dir)
        ann, _ = load_pretrained("mnist-fc")
        return ann, data.x_train[:2000], data.x_test[:limit], data.y_test[:limit], dict(
            MNIST_RECIPE)
    raise typer.BadParameter(f"--dataset must be 'wine' or 'mnist', got {dataset!r}")


def _wine_trace(seed: int, epochs: int, settings: dict[str, Any], path: Path) -> None:
    """Fig. 8(b)/9 for wine sample 0: PWM inputs, the 3 busiest hidden neurons, outputs."""
    from spikecast.datasets.loaders import load_dataset
    from spikecast.papers.ssnn_nomura.reproduce import WINE_RECIPE, train_wine_ann
    from spikecast.papers.ssnn_nomura.traces import plot_trace, trace_sample
    from spikecast.schemes import convert
    from spikecast.schemes.ssnn import SSNNRecipe

    data = load_dataset("wine")
    recipe = SSNNRecipe(**WINE_RECIPE | settings)
    ann = train_wine_ann(data, recipe.circuit_params().encoder, seed=seed, epochs=epochs)
    model = convert(ann, recipe, data.x_train)
    trace = trace_sample(model, data.x_test[0])
    console.print(f"wrote {plot_trace(trace, path)} (sample 0, label {int(data.y_test[0])})")

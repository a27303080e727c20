"""The ``compare`` and ``report`` commands; :func:`register` adds them to the main CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from spikecast.checks import MAX_SEED
from spikecast.cli.entry import show_progress
from spikecast.cli.models import ModelClassOpt, ModelKwargsOpt, load_module
from spikecast.cli.output import make_console
from spikecast.cli.values import parse_value
from spikecast.io.atomic import check_output, check_output_dir
from spikecast.schemes import recipe_class, scheme_names
from spikecast.schemes.params import check_params

console = make_console()

def parse_scheme_params(items: list[str] | None, schemes: tuple[str, ...]
                        ) -> dict[str, dict[str, Any]]:
    """``["rate.steps=25"]`` -> ``{"rate": {"steps": 25}}``; values parsed as strict JSON
    when they parse, else kept as text, and checked against each scheme's parameters."""
    params: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        scheme, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"--param expects SCHEME.KEY=VALUE, got {item!r}")
        if scheme not in schemes:
            raise ValueError(f"--param {item!r}: scheme {scheme!r} is not among {schemes}")
        params.setdefault(scheme, {})[name] = parse_value(value, item)
    for scheme, values in params.items():
        check_params(recipe_class(scheme), scheme, values)
    return params


def summary_table(results: dict[str, Any]) -> Table:
    """Terminal summary: accuracy, latency, spikes, operations per scheme."""
    table = Table(title=f"{results['dataset']}: ANN vs SNN ({results['n_samples']} samples)")
    for col in ("model", "accuracy %", "latency", "spikes/neuron", "eff. ACs", "eff. MACs",
                "wall s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    ann = results["ann"]
    table.add_row("ANN", f"{100 * ann['accuracy']:.2f}", "", "", f"{ann['effective_acs']:,.0f}",
                  f"{ann['effective_macs']:,.0f}", "")
    for name, e in results["schemes"].items():
        lat = e["latency"]
        mean = "n/a" if lat["mean"] is None else f"{lat['mean']:.3g} {lat['unit']}"
        table.add_row(name, f"{100 * e['accuracy']:.2f}", mean, f"{e['spikes_per_neuron']:.3f}",
                      f"{e['effective_acs']:,.0f}", f"{e['effective_macs']:,.0f}",
                      f"{e['wall_s']:.1f}")
    for name in results.get("skipped", {}):
        table.add_row(name, "skipped", "", "", "", "", "")
    for name in results.get("failed", {}):
        table.add_row(name, "failed", "", "", "", "", "")
    return table


def register(app: typer.Typer) -> None:
    """Add ``compare`` and ``report`` to ``app``."""

    @app.command("compare")
    def compare_command(
        model: Annotated[str, typer.Argument(
            help="ANN: a pretrained name, .safetensors with JSON sidecar, or weights of "
                 "--model-class.")],
        dataset: Annotated[str | None, typer.Option(
            help="wine, digits, mnist, idx:FOLDER or .npz (default: the model's).")] = None,
        schemes: Annotated[str | None, typer.Option(
            help=f"Comma-separated schemes among {', '.join(scheme_names())} (default: every "
                 "registered scheme).")] = None,
        out: Annotated[Path, typer.Option(help="Folder for results.json and report.html.")
                       ] = Path("spikecast-compare"),
        param: Annotated[list[str] | None, typer.Option(
            "--param", "-p", help="SCHEME.KEY=VALUE (repeatable), e.g. rate.steps=25.")] = None,
        limit: Annotated[int | None, typer.Option(min=1, help="First N test samples only.")
                         ] = None,
        energy_presets: Annotated[Path | None, typer.Option(
            help="Extra energy presets (.toml or .json).")] = None,
        calib_samples: Annotated[int, typer.Option(min=1, help="Calibration samples.")] = 2000,
        fidelity_samples: Annotated[int, typer.Option(
            min=1, help="Samples probed for fidelity and firing histograms.")] = 64,
        batch_size: Annotated[int, typer.Option(
            min=1, help="Samples simulated together.")] = 256,
        data_dir: Annotated[Path | None, typer.Option(help="MNIST IDX folder.")] = None,
        seed: Annotated[int, typer.Option(
            min=0, max=MAX_SEED, help="Seed for every random choice (calibration sampling, "
            "spike trains, PWM phases, mismatch); the split of the data is the model's.")] = 0,
        quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
        model_class: ModelClassOpt = None,
        model_kwargs: ModelKwargsOpt = None,
    ) -> None:
        """Run the ANN and each scheme on the same samples; write results.json and
        report.html into OUT. Exits with status 1 when a scheme failed (its error is
        printed and in results.json); a scheme whose scope excludes the model (e.g. the SSNN
        circuit on a branched network) is listed as skipped with the reason and is no
        failure."""
        from spikecast.datasets.loaders import load_dataset
        from spikecast.energy.presets import all_presets
        from spikecast.report.compare import CompareConfig, compare
        from spikecast.report.html import save_comparison

        inputs = [Path(p) for p in (model, dataset or "", energy_presets or "") if p]
        if model.endswith(".safetensors"):
            inputs.append(Path(model).with_suffix(".json"))
        check_output_dir(out, ("results.json", "report.html"), inputs)
        requested = schemes if schemes is not None else ",".join(scheme_names())
        names = tuple(s.strip() for s in requested.split(",") if s.strip())
        params = parse_scheme_params(param, names)
        presets = all_presets(energy_presets)
        module, meta = load_module(model, model_class, model_kwargs)
        if dataset is None and "dataset" not in meta:
            raise ValueError(f"{model}: your own model does not name its dataset; "
                             "pass --dataset")
        # the model's own split (as `evaluate` does): a test set that is not its training set
        data = load_dataset(dataset or meta["dataset"], data_dir, seed=meta.get("seed", seed))
        cfg = CompareConfig(
            schemes=names, params=params, limit=limit, calib_samples=calib_samples,
            fidelity_samples=fidelity_samples, batch_size=batch_size, seed=seed,
            presets=presets, progress=show_progress() and not quiet,
        )
        results = compare(module, data, cfg, model_name=Path(model).stem)
        json_path, html_path = save_comparison(results, out)
        console.print(summary_table(results))
        console.print(f"wrote {json_path} and {html_path}")
        for name, message in results.get("skipped", {}).items():
            console.print(f"{name} skipped: {message}", highlight=False, soft_wrap=True)
        failed = results.get("failed", {})
        for name, message in failed.items():
            console.print(f"{name} failed: {message}", highlight=False, soft_wrap=True)
        if failed:
            console.print(f"[red]error:[/red] {len(failed)} of {len(names)} schemes failed: "
                          f"{', '.join(failed)}")
            raise typer.Exit(1)

    @app.command("report")
    def report_command(
        results_json: Annotated[Path, typer.Argument(help="results.json from `compare`.")],
        out: Annotated[Path | None, typer.Option(
            help="HTML file to write (default: report.html next to the JSON).")] = None,
    ) -> None:
        """Re-render report.html from a results.json written by `compare`."""
        from spikecast.report.html import load_results, write_report

        target = check_output(out or results_json.with_name("report.html"), [results_json])
        path = write_report(load_results(results_json), target)
        console.print(f"wrote {path}")

"""Typer commands ``spikecast reproduce sigma-delta-mnist`` and ``sigma-delta-figures``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from spikecast.checks import MAX_SEED
from spikecast.cli.output import make_console
from spikecast.errors import SpikecastError
from spikecast.finetune.quantizers import Quantizer
from spikecast.io.atomic import check_output, check_output_dir, write_json
from spikecast.io.schema import Field, check_fields, is_number, is_object
from spikecast.zoo.train import LRSchedule

console = make_console()


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def _paper_row(report: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    key = "steps" if row["scheme"] == "rate" else "threshold"
    for p in report["paper"]["rows"]:
        if p["scheme"] == row["scheme"] and p.get(key) == row.get(key):
            return p
    return {}


def table(report: dict[str, Any]) -> Table:
    """Table I with the paper's numbers beside ours."""
    t = Table(title=f"Sigma-delta paper, Table I (MNIST, {report['n_samples']} test frames)")
    for col in ("scheme", "model", "theta / steps", "accuracy", "paper", "spikes/neuron",
                "paper", "synaptic updates"):
        t.add_column(col, justify="left" if col in ("scheme", "model") else "right")
    for row in report["rows"]:
        paper = _paper_row(report, row)
        setting = row.get("threshold", row.get("steps"))
        t.add_row(
            row["scheme"], row.get("model", ""), str(setting), _pct(row["accuracy"]),
            _pct(paper.get("accuracy")), _num(row.get("spikes_per_neuron")),
            _num(paper.get("spikes_per_neuron"), ".2f"), _num(row.get("synaptic_updates"), ",.0f"),
        )
    return t


def _summary(report: dict[str, Any]) -> str:
    p = report["paper"]
    lines = [
        f"ANN accuracy {_pct(report['ann_accuracy'])} (paper {_pct(p['ann_accuracy'])}); "
        f"on the 1-bit input {_pct(report['ann_accuracy_1bit_input'])}",
        f"neurons {report['neurons']:,} (paper ~{p['neurons']:,}); weights {report['synapses']:,}"
        f" (paper ~{p['synapses']:,}); connections {report['connections']:,}",
        f"ANN MACs {report['ann_macs']:,} exact; {report['ann_macs_paper_formula']:,} with the "
        f"paper's formula (paper: 455K)",
    ]
    if "finetuned_ann_accuracy" in report:
        lines.append(
            f"fine-tuned ANN {_pct(report['finetuned_ann_accuracy'])}, on the 1-bit input "
            f"{_pct(report['finetuned_ann_accuracy_1bit_input'])}"
        )
    return "\n".join(lines)


def _load(model: str) -> Any:
    from spikecast.io.annfile import load_model
    from spikecast.zoo.pretrained import PRETRAINED, load_pretrained

    return load_pretrained(model)[0] if model in PRETRAINED else load_model(Path(model))[0]


def reproduce_sigma_delta_mnist(
    limit: Annotated[int | None, typer.Option(
        min=1, help="Use only the first N test frames.")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for Fig. 2-4 (PNG + JSON).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="MNIST IDX folder.")] = None,
    seed: Annotated[int, typer.Option(
        min=0, max=MAX_SEED, help="Seed for data handling and fine-tuning.")] = 0,
    theta: Annotated[list[float] | None, typer.Option(
        help="Shared threshold to run (repeatable); default 1.0 and 2.0 as in the paper.")
    ] = None,
    calibrated: Annotated[list[float] | None, typer.Option(
        help="Also run per-layer theta = FRACTION x the 99.9th activation percentile.")] = None,
    finetune: Annotated[bool, typer.Option(
        help="Also fine-tune mnist-cnn for the 1-bit input and the quantizer, and rerun.")] = False,
    finetune_epochs: Annotated[int, typer.Option(min=0, help="Fine-tuning epochs.")] = 2,
    spike_weight: Annotated[float, typer.Option(help="Fine-tuning spike penalty.")] = 0.05,
    finetune_quantizer: Annotated[Quantizer, typer.Option(
        help="Fine-tuning quantizer; 'hysteresis' measures its rates in the simulator.")
    ] = Quantizer.FLOOR,
    finetune_lr: Annotated[float, typer.Option(help="Fine-tuning learning rate.")] = 2e-4,
    finetune_schedule: Annotated[LRSchedule, typer.Option(
        help="Fine-tuning learning-rate schedule.")] = LRSchedule.CONSTANT,
    finetune_max_shift: Annotated[int, typer.Option(
        help="Fine-tuning random shift augmentation, pixels.")] = 0,
    model: Annotated[str, typer.Option(
        help="Reference model: a pretrained name or a .safetensors file.")] = "mnist-cnn",
    rate: Annotated[bool, typer.Option(help="Run the rate-coded baseline (25, 15 steps).")] = True,
) -> None:
    """Table I of the sigma-delta paper: ANN, Q-ANN and event-driven SNN at theta 1.0 and
    2.0, and the rate-coded baseline at 25 and 15 steps, on the MNIST test set."""
    from spikecast.papers.sigma_delta_yousefzadeh.figures import FIGURE_FILES
    from spikecast.papers.sigma_delta_yousefzadeh.reproduce import ReproduceConfig, reproduce

    inputs = [Path(model), Path(model).with_suffix(".json")] if model.endswith(
        ".safetensors") else []
    if json_file is not None:
        check_output(json_file, inputs)
    if out is not None:
        check_output_dir(out, FIGURE_FILES, inputs)
    ft = {"epochs": finetune_epochs, "spike_weight": spike_weight,
          "quantizer": finetune_quantizer, "lr": finetune_lr, "schedule": finetune_schedule,
          "max_shift": finetune_max_shift}
    config = ReproduceConfig(
        thetas=tuple(theta or (1.0, 2.0)), calibrated=tuple(calibrated or ()), limit=limit,
        data_dir=data_dir, seed=seed, rate_steps=(25, 15) if rate else (),
        finetune=ft if finetune else None, model=_load(model), model_name=model,
    )
    report = reproduce(config, log=lambda msg: console.print(f"[dim]{msg}[/dim]"))
    console.print(table(report))
    console.print(_summary(report))
    if json_file is not None:
        console.print(f"wrote {write_json(json_file, report, indent=1)}")
    if out is not None:
        _figures_from_report(report, out, data_dir)


def _figures_from_report(report: dict[str, Any], out: Path, data_dir: str | None) -> None:
    from spikecast.datasets.loaders import load_dataset
    from spikecast.frontends.torch_fx import capture
    from spikecast.papers.sigma_delta_yousefzadeh.figures import fig2, fig3_fig4
    from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
    from spikecast.zoo.pretrained import load_pretrained

    macs = {"exact": report["ann_macs"], "paper formula": report["ann_macs_paper_formula"]}
    paths = fig3_fig4(report["details"], report["ann_accuracy"], macs, out)
    data = load_dataset("mnist", data_dir)
    net = capture(load_pretrained("mnist-cnn")[0], (1, 28, 28))
    recipe = SigmaDeltaRecipe.paper()
    model = recipe.build(net, recipe.calibrate(net, None))
    paths += fig2(model, data.x_test[0], int(data.y_test[0]), out)
    console.print(f"wrote {len(paths)} files to {out}")


def sigma_delta_figures(
    report_json: Annotated[Path, typer.Argument(help="A report from --json.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("sigma-delta-figures"),
    data_dir: Annotated[str | None, typer.Option(help="MNIST IDX folder.")] = None,
) -> None:
    """Draw Fig. 2a, 2b, 3a, 3b and 4 of the sigma-delta paper from a reproduction report."""
    from spikecast.papers.sigma_delta_yousefzadeh.figures import FIGURE_FILES

    check_output_dir(out, FIGURE_FILES, [report_json])
    _figures_from_report(_read_report(report_json), out, data_dir)


_REPORT = (
    Field("details", is_object, "an object of runs"),
    Field("ann_accuracy", is_number, "a number"),
    Field("ann_macs", is_number, "a number"),
    Field("ann_macs_paper_formula", is_number, "a number"),
)


def _read_report(path: Path) -> dict[str, Any]:
    """A report written by ``reproduce sigma-delta-mnist --json``."""
    try:
        report = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpikecastError(f"{path}: not a readable JSON report: {exc}") from None
    return check_fields(report, _REPORT, f"{path} (a report of `reproduce sigma-delta-mnist`)")


def register(app: typer.Typer, reproduce_app: typer.Typer) -> None:
    """Add ``sigma-delta-mnist`` to ``reproduce_app`` and ``sigma-delta-figures`` to ``app``."""
    reproduce_app.command("sigma-delta-mnist")(reproduce_sigma_delta_mnist)
    app.command("sigma-delta-figures")(sigma_delta_figures)

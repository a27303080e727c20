"""The ``export-nir`` command; :func:`register` adds it to the main CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spikecast.cli.output import make_console
from spikecast.errors import SpikecastError
from spikecast.io.atomic import check_output

console = make_console()

DIALECT_HELP = (
    "Whose reading of NIR to write for: 'nir' (IF nodes, the standard: norse, sinabs, "
    "spikecast), 'snntorch' (leak-free LIF nodes: snnTorch 1.0 cannot run IF nodes) or "
    "'sinabs' (IF nodes read as reset by subtraction; also loads with nir <= 1.0.4)."
)


def export_nir_command(
    snn_file: Annotated[Path, typer.Argument(help="A converted .spikecast file (scheme 'rate').")],
    out_nir: Annotated[Path, typer.Argument(help="NIR file to write (HDF5, e.g. model.nir).")],
    dialect: Annotated[str, typer.Option(help=DIALECT_HELP)] = "nir",
    approximate: Annotated[
        bool,
        typer.Option(
            "--approximate/--exact",
            help="--approximate (default) writes the dialect's reset for the other one and a "
            "sum-pool for each max-pool, printing each change (recorded in the graph "
            "metadata; spikecast restores them on import); --exact refuses such models.",
        ),
    ] = True,
) -> None:
    """Export a rate-coded converted network to NIR (one neuron node per population)."""
    from spikecast.io.snnfile import load_network

    check_output(out_nir, [snn_file])
    try:
        from spikecast.io.nir import write_graph
        from spikecast.io.nir.dialect import NirDialect, convention
        from spikecast.io.nir.export import export_nir
        from spikecast.io.nir.meta import load_meta

    except ImportError as exc:
        raise SpikecastError(
            f"NIR export needs the nir package (pip install 'spikecast[nir]'): {exc}"
        ) from exc
    target = NirDialect(dialect)
    model = load_network(snn_file)
    graph = export_nir(model, approximate, target)
    write_graph(graph, out_nir)
    console.print(f"exported {snn_file} -> {out_nir} (dialect {target.value})")
    changes = load_meta(graph, "graph")["approximations"]
    for change in changes:
        console.print(f"approximated: {change}")
    hints = []
    if any(change.startswith("reset") for change in changes):
        reset = convention(target).reset.value
        other = " (or use --dialect sinabs, which resets by subtraction)" if reset == "zero" else ""
        hints.append(f"convert with -p reset={reset} for dialect {target.value!r}{other}")
    if any("MaxPool2d" in change for change in changes):
        hints.append("replace the max-pools by average pools")
    if hints:
        console.print("for an exact file: " + "; ".join(hints))


def register(app: typer.Typer) -> None:
    """Add ``export-nir`` to ``app``."""
    app.command("export-nir")(export_nir_command)

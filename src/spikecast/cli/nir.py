"""The ``export-nir`` command; :func:`register` adds it to the main CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def export_nir_command(
    snn_file: Annotated[Path, typer.Argument(help="A converted .spikecast file (scheme 'rate').")],
    out_nir: Annotated[Path, typer.Argument(help="NIR file to write (HDF5, e.g. model.nir).")],
    approximate: Annotated[
        bool,
        typer.Option(
            help="Write reset-to-zero for reset by subtraction and SumPool2d for max-pools, "
            "listing each change in the graph metadata (spikecast restores them on import)."
        ),
    ] = False,
) -> None:
    """Export a rate-coded converted network to NIR (IF neurons, dt = 1)."""
    from spikecast.io.snnfile import load_network

    try:
        import nir

        from spikecast.io.nir import export_nir
        from spikecast.io.nir.mappers import load_meta

        model = load_network(snn_file)
        graph = export_nir(model, approximate)
        out_nir.parent.mkdir(parents=True, exist_ok=True)
        nir.write(out_nir, graph)
    except ImportError as exc:
        console.print(f"[red]error:[/red] NIR export needs the nir package "
                      f"(pip install 'spikecast[nir]'): {exc}")
        raise typer.Exit(2) from exc
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"exported {snn_file} -> {out_nir}")
    for change in load_meta(graph, "graph")["approximations"]:
        console.print(f"approximated: {change}")


def register(app: typer.Typer) -> None:
    """Add ``export-nir`` to ``app``."""
    app.command("export-nir")(export_nir_command)

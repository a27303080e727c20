"""The ``export-nir`` command; :func:`register` adds it to the main CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from spikecast.errors import SpikecastError
from spikecast.io.atomic import atomic_write, check_output

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
    from spikecast.io.snnfile import load_converted
    from spikecast.schemes import get_recipe

    check_output(out_nir, [snn_file])
    try:
        import nir

        from spikecast.io.nir import export_nir
        from spikecast.io.nir.mappers import load_meta
    except ImportError as exc:
        raise SpikecastError(
            f"NIR export needs the nir package (pip install 'spikecast[nir]'): {exc}"
        ) from exc
    conv = load_converted(snn_file)
    model = get_recipe(conv.scheme, **conv.params).replace(conv.normalized, conv.ann)
    graph = export_nir(model, approximate)
    atomic_write(out_nir, lambda tmp: nir.write(tmp, graph))
    console.print(f"exported {snn_file} -> {out_nir}")
    for change in load_meta(graph, "graph")["approximations"]:
        console.print(f"approximated: {change}")


def register(app: typer.Typer) -> None:
    """Add ``export-nir`` to ``app``."""
    app.command("export-nir")(export_nir_command)

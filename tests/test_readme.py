"""Every command and Python snippet of README.md works as written.

The fast test parses each ``spikecast`` command with the real command line (every
subcommand, option and value type exists); the slow ones run the commands in order in one
folder with small limits (:func:`readme_commands.shrink`) and execute the Python snippets,
then list every one that failed. ``make`` lines are CI's own entry points (``.ci/run``).
"""

from __future__ import annotations

import io
import os
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytest
import typer
from readme_commands import commands, python_snippets, shrink
from typer.testing import CliRunner

from spikecast.cli.main import app

MNIST = Path(os.environ.get("SPIKECAST_DATA") or Path(__file__).resolve().parents[2]
             / "shared/data/mnist")
HAS_MNIST = (MNIST / "t10k-labels-idx1-ubyte.gz").exists() or (
    MNIST / "t10k-labels-idx1-ubyte").exists()


def _spikecast_commands() -> list[list[str]]:
    return [c[1:] for c in commands() if c and c[0] == "spikecast"]


def _resolve(args: list[str]) -> tuple[Any, list[str], list[str]]:
    """The (click) command an argument list runs, the words naming it and the rest; typer
    builds it on click or on its vendored copy, so only their shared API is used."""
    cmd = typer.main.get_command(app)
    path, rest = [], list(args)
    while hasattr(cmd, "commands") and rest and not rest[0].startswith("-"):
        if rest[0] not in cmd.commands:
            raise LookupError(f"no command {rest[0]!r} under {' '.join(path) or 'spikecast'}")
        path.append(rest.pop(0))
        cmd = cmd.commands[path[-1]]
    return cmd, path, rest


def _options(cmd: Any) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def test_readme_has_commands_and_snippets():
    found = _spikecast_commands()
    assert len(found) >= 10
    assert any(c[:1] == ["export-nir"] for c in found)
    assert python_snippets()


def test_every_readme_command_parses():
    """Subcommands, options and value types of every README command exist (no run)."""
    failures = []
    for args in _spikecast_commands():
        try:
            cmd, path, rest = _resolve(args)
            cmd.make_context(" ".join(["spikecast", *path]), rest)
        except (LookupError, typer.Exit) as exc:
            failures.append(f"spikecast {' '.join(args)}: {exc}")
        except Exception as exc:  # click's UsageError family (click or typer's copy)
            message = getattr(exc, "format_message", lambda e=exc: str(e))()
            failures.append(f"spikecast {' '.join(args)}: {message}")
    assert not failures, "README commands that do not parse:\n" + "\n".join(failures)


def _fixtures(args: list[str], folder: Path) -> None:
    """Inputs the README assumes the reader has: ``model.onnx`` (any exported ANN; the
    shipped mnist-cnn here)."""
    if "model.onnx" in args and not (folder / "model.onnx").exists():
        import torch

        from spikecast.zoo.pretrained import load_pretrained

        module, _ = load_pretrained("mnist-cnn")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(1, 1, 28, 28),), str(folder / "model.onnx"),
                              dynamo=False)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MNIST, reason="the README's commands use MNIST")
def test_every_readme_command_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPIKECAST_DATA", str(MNIST))
    runner = CliRunner()
    failures = []
    for args in _spikecast_commands():
        cmd, path, rest = _resolve(args)
        run = [*path, *shrink(rest, _options(cmd))] if path else args
        _fixtures(run, tmp_path)
        result = runner.invoke(app, run)
        if result.exit_code != 0:
            tail = (result.output.strip().splitlines() or [repr(result.exception)])[-1]
            failures.append(f"spikecast {' '.join(args)}  (ran: {' '.join(run)}) -> exit "
                            f"{result.exit_code}: {tail}")
    assert not failures, "README commands that fail:\n" + "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_snippets())))
def test_readme_python_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if HAS_MNIST:
        monkeypatch.setenv("SPIKECAST_DATA", str(MNIST))
    code = python_snippets()[index]
    out = io.StringIO()
    try:
        exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme"})
    except Exception:
        traceback.print_exc(file=out)
        pytest.fail(f"README python block {index} fails:\n{code}\n{out.getvalue()}")

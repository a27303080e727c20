"""The one place the command line turns exceptions into messages, and its global options.

The root command group's :meth:`SpikecastGroup.invoke` runs every command. What escapes a
command becomes one ``error: ...`` line on stderr:

* a user error (:class:`~spikecast.errors.SpikecastError`, and every ``ValueError``, the
  project's type for bad values): exit status 2;
* an operating-system error (a file that cannot be read or written): exit status 1;
* anything else is a bug in spikecast: its type and message, exit status 1.

``spikecast --verbose COMMAND`` prints the traceback before the line; ``--quiet`` turns the
progress bars off.
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

_stderr = Console(stderr=True)


@dataclass
class GlobalOptions:
    """The options given before the command: ``spikecast [--quiet | --verbose] COMMAND``."""

    quiet: bool = False
    verbose: bool = False


OPTIONS = GlobalOptions()


class _StderrHandler(logging.Handler):
    """Log records as plain lines on the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def set_global_options(quiet: bool, verbose: bool) -> None:
    """Record the root options for this invocation (``--verbose`` also logs at INFO)."""
    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose exclude each other")
    OPTIONS.quiet, OPTIONS.verbose = quiet, verbose
    log = logging.getLogger("spikecast")
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose and not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())


def show_progress() -> bool:
    """Whether commands draw progress bars (not under ``--quiet``)."""
    return not OPTIONS.quiet


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr, never wrapped and never read as markup."""
    _stderr.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)


def _describe(exc: BaseException) -> tuple[str, int]:
    """The line to print and the exit status for an exception a command let escape."""
    if isinstance(exc, ValueError):
        return str(exc), 2
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}", 1
    return (f"internal error, {type(exc).__name__}: {exc} (a bug in spikecast; rerun with "
            "--verbose for the traceback and report it)"), 1


class SpikecastGroup(TyperGroup):
    """The root group: runs the command and reports what escapes it (module docstring)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as exc:
            message, status = _describe(exc)
            if OPTIONS.verbose:
                traceback.print_exception(exc, file=sys.stderr)
            print_error(message)
            raise typer.Exit(status) from None

"""The console every command prints through: the terminal's width on a terminal; when the
output is piped or redirected, ``$COLUMNS`` if set, else wide enough that the tables fit
(rich wraps a cell's text at spaces beyond that), and messages are never broken into
several lines (a log line stays one line for grep)."""

from __future__ import annotations

import os
import sys

from rich.console import Console

PIPED_WIDTH = 120


def piped_width() -> int:
    """``$COLUMNS`` when it is a positive integer, else :data:`PIPED_WIDTH`."""
    value = os.environ.get("COLUMNS", "")
    return int(value) if value.isdigit() and int(value) > 0 else PIPED_WIDTH


def make_console() -> Console:
    """A rich console sized for a terminal or for piped output (see the module docstring)."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=piped_width(), soft_wrap=True)

"""Progress of long loops: one rich bar on a terminal, plain lines anywhere else.

Output that is not a terminal (a pipe, ``| tee``, a CI log) gets no escape codes and no
silence either: a line ``description: done/total (p %) status, elapsed s`` each time the
loop passes another tenth of its total (unless ``tenths=False``, for loops that log their
own milestones) and at least every ``interval`` seconds.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

PLAIN_STEPS = 10
"""A plain line each time the loop passes another 1 / PLAIN_STEPS of its total."""


class Reporter:
    """``with Reporter("training", total) as p: p.advance(1, status=...); p.log(...)``.

    ``enabled=False`` prints nothing; ``console`` (default: a rich console on stdout)
    decides terminal or not through ``console.is_terminal``.
    """

    def __init__(self, description: str, total: int, *, enabled: bool = True,
                 console: Console | None = None, interval: float = 30.0,
                 tenths: bool = True) -> None:
        self.console = console or Console()
        self.enabled = enabled
        self.total = max(int(total), 1)
        self.description = description
        self.interval = interval
        self.tenths = tenths
        self.done = 0
        self.status = ""
        self.bar: Progress | None = None
        self.start = self.last_line = time.monotonic()
        self.next_step = 1

    @property
    def terminal(self) -> bool:
        return self.console.is_terminal

    def __enter__(self) -> Reporter:
        if self.enabled and self.terminal:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=self.console,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=self.total, status="")
        self.start = self.last_line = time.monotonic()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.__exit__(kind, exc, tb)

    def advance(self, n: int = 1, *, description: str | None = None, status: str = "") -> None:
        """``n`` more units done; ``description`` and ``status`` replace the shown ones."""
        self.done += n
        self.description = description or self.description
        self.status = status
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, advance=n, description=self.description, status=status)
            return
        now = time.monotonic()
        step = self.done * PLAIN_STEPS // self.total
        if (self.tenths and step >= self.next_step) or now - self.last_line >= self.interval:
            self.next_step = step + 1
            self.last_line = now
            self.console.print(self.line(now), highlight=False, soft_wrap=True)

    def line(self, now: float) -> str:
        """The plain progress line at time ``now``."""
        pct = 100 * self.done / self.total
        status = f" {self.status}," if self.status else ""
        return (f"{self.description}: {self.done}/{self.total} ({pct:.0f} %){status} "
                f"{now - self.start:.0f} s")

    def log(self, message: str) -> None:
        """A message above the bar (a plain line when not on a terminal)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.console.log(message)
        else:
            self.console.print(message, highlight=False, soft_wrap=True)
            self.last_line = time.monotonic()

"""A progress bar that shows only for work that takes a while."""

from __future__ import annotations

import time
from types import TracebackType

from rich.progress import Progress, TaskID

SHOW_AFTER_S = 2.0


class LazyProgress:
    """A transient rich bar over ``total`` units that appears once the work has run for
    ``SHOW_AFTER_S`` seconds (never when ``enabled`` is False)."""

    def __init__(self, description: str, total: float, *, enabled: bool = True) -> None:
        self.description, self.total, self.enabled = description, total, enabled
        self.done = 0.0
        self.start = time.perf_counter()
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> LazyProgress:
        self.start = time.perf_counter()
        return self

    def advance(self, amount: float) -> None:
        self.done += amount
        if self.bar is None and self.enabled and time.perf_counter() - self.start > SHOW_AFTER_S:
            self.bar = Progress(transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=self.total)
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=self.done)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.stop()

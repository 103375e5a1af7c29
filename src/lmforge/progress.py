"""Progress on stderr: a live bar (rich) on a terminal, a log line at an interval elsewhere.

Output that is not a terminal (a pipe, a log file, CI, `docker logs`) cannot show a live bar:
rich would print nothing until the task ends, so a long run looks hung. There, progress is an
INFO log line every `LMFORGE_PROGRESS_INTERVAL` seconds (30 unless set) and one at the end.
Nothing is shown when LMFORGE_NO_PROGRESS is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

stderr_console = Console(stderr=True)
log = logging.getLogger("lmforge.progress")
INTERVAL_ENV = "LMFORGE_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 30.0


def progress_disabled() -> bool:
    return bool(os.environ.get("LMFORGE_NO_PROGRESS"))


def live_display() -> bool:
    """Whether stderr is a terminal that can redraw a bar (rich honours FORCE_TERMINAL)."""
    return stderr_console.is_terminal


def progress_interval() -> float:
    """Seconds between progress lines when stderr is not a terminal."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _amount(value: float) -> str:
    """Whole counts as integers; fractional ones (MB) with enough digits to see them move."""
    if value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.1f}"


class ProgressLine:
    """Progress of one task as a log line at most every `interval` seconds, and at `finish`."""

    def __init__(
        self,
        description: str,
        total: float | None,
        unit: str = "",
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        completed: float = 0,
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.interval = progress_interval() if interval is None else interval
        self.clock = clock
        self.completed = completed
        self.info = ""
        self._first = completed
        self._started = clock()
        self._last_line = self._started

    def advance(self, amount: float = 1) -> None:
        self.update(completed=self.completed + amount)

    def update(
        self,
        *,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
        info: str | None = None,
    ) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description
        if info is not None:
            self.info = info
        now = self.clock()
        if now - self._last_line >= self.interval:
            self._last_line = now
            log.info("%s", self.line(now))

    def finish(self) -> None:
        log.info("%s", self.line(self.clock(), done=True))

    def line(self, now: float, done: bool = False) -> str:
        """`train: 120/1,000 steps (12.0%), 3.1 steps/s, elapsed 0:00:39, ETA 0:04:44 ...`"""
        elapsed = now - self._started
        unit = f" {self.unit}" if self.unit else ""
        parts = [f"{self.description}:"]
        if self.total:
            percent = 100 * self.completed / self.total
            parts[0] += f" {_amount(self.completed)}/{_amount(self.total)}{unit} ({percent:.1f}%)"
        elif self.completed:
            parts[0] += f" {_amount(self.completed)}{unit}"
        rate = (self.completed - self._first) / elapsed if elapsed > 0 else 0.0
        if rate > 0:
            parts.append(f"{rate:,.1f}{unit}/s")
        parts.append(f"elapsed {_duration(elapsed)}")
        if self.total and rate > 0 and not done:
            parts.append(f"ETA {_duration(max(0.0, self.total - self.completed) / rate)}")
        if done:
            parts.append("done")
        head, *rest = parts
        return " ".join([head, ", ".join(rest)]) + (f" {self.info}" if self.info else "")


class Bar:
    """One task on a rich progress display, or on a `ProgressLine`, or on nothing."""

    def __init__(
        self,
        progress: Progress | None,
        task: TaskID | None,
        line: ProgressLine | None = None,
    ) -> None:
        self._progress = progress
        self._task = task
        self._line = line

    def advance(self, amount: float = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)
        elif self._line is not None:
            self._line.advance(amount)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total, description=description)
        elif self._line is not None:
            self._line.update(total=total, description=description)


@contextlib.contextmanager
def progress_bar(description: str, total: float | None, unit: str = "") -> Iterator[Bar]:
    """A bar with count, rate-derived ETA and elapsed time; `unit` labels the count."""
    if progress_disabled():
        yield Bar(None, None)
        return
    if not live_display():
        line = ProgressLine(description, total, unit)
        yield Bar(None, None, line)
        line.finish()
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=stderr_console, transient=False) as progress:
        yield Bar(progress, progress.add_task(description, total=total))

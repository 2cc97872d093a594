"""Progress display for long commands: a rich progress bar, or a plain line.

:func:`make_progress` returns a :class:`RichProgress` when ``rich`` (the
``cli`` extra) is installed, else a :class:`PlainProgress`; both write to
stderr, so that stdout keeps only results (``--json``).  Neither starts a
thread: the caller refreshes by calling :meth:`update` (the benchmark does
so from its 100 ms sampler).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

__all__ = ["PlainProgress", "Progress", "RichProgress", "make_progress", "rich_available"]


def rich_available() -> bool:
    """True when ``rich`` can be imported (the ``cli`` extra)."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


class Progress(Protocol):
    """What the benchmark needs of a progress display."""

    def phase(self, description: str, total: int) -> None:
        """Start a new phase of ``total`` steps (ends the previous one)."""

    def update(self, completed: int) -> None:
        """Show that ``completed`` steps of the current phase are done."""

    def close(self) -> None:
        """End the display (the last phase included)."""


class PlainProgress:
    """A progress line without any library.

    On a terminal one line is rewritten in place (``\\r``), at most ten times
    a second; elsewhere each phase prints one line when it ends.  With
    ``enabled`` false nothing is written.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self._out = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._tty = bool(getattr(self._out, "isatty", lambda: False)())
        self._desc = ""
        self._total = 0
        self._done = 0
        self._t0 = 0.0
        self._shown = 0.0
        self._open = False

    def _line(self) -> str:
        pct = 100.0 * self._done / self._total if self._total else 100.0
        secs = time.monotonic() - self._t0
        return f"{self._desc}: {self._done:,}/{self._total:,} ({pct:3.0f}%) {secs:5.1f} s"

    def phase(self, description: str, total: int) -> None:
        """Start a new phase of ``total`` steps (ends the previous one)."""
        self._end()
        self._desc, self._total, self._done = description, total, 0
        self._t0 = time.monotonic()
        self._open = True
        self._show(force=True)

    def update(self, completed: int) -> None:
        """Show that ``completed`` steps of the current phase are done."""
        self._done = completed
        self._show()

    def _show(self, force: bool = False) -> None:
        if not self._enabled or not self._tty:
            return
        now = time.monotonic()
        if force or now - self._shown >= 0.1:
            self._shown = now
            self._out.write("\r" + self._line() + "\x1b[K")
            self._out.flush()

    def _end(self) -> None:
        if not self._open:
            return
        self._open = False
        if not self._enabled:
            return
        if self._tty:
            self._out.write("\r" + self._line() + "\x1b[K\n")
        else:
            self._out.write(self._line() + "\n")
        self._out.flush()

    def close(self) -> None:
        """End the display (the last phase included)."""
        self._end()


class RichProgress:
    """A ``rich`` progress bar on stderr, one bar per phase, refreshed by the
    caller (no refresh thread)."""

    def __init__(self, *, enabled: bool = True) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress as _RichProgress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._enabled = enabled
        self._p: Any = _RichProgress(
            TextColumn("[bold]{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            auto_refresh=False,
            disable=not enabled,
        )
        self._task: Any = None
        self._started = False
        self._last = 0.0

    def phase(self, description: str, total: int) -> None:
        """Start a new phase of ``total`` steps (ends the previous one)."""
        if not self._started:
            self._p.start()
            self._started = True
        if self._task is not None:
            self._p.stop_task(self._task)
        self._task = self._p.add_task(description, total=max(total, 1))
        self._p.refresh()

    def update(self, completed: int) -> None:
        """Show that ``completed`` steps of the current phase are done."""
        if self._task is None:
            return
        self._p.update(self._task, completed=completed)
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._p.refresh()

    def close(self) -> None:
        """End the display (the last phase included)."""
        if self._started:
            if self._task is not None:
                self._p.stop_task(self._task)
            self._p.refresh()
            self._p.stop()
            self._started = False


def make_progress(*, enabled: bool = True) -> Progress:
    """A :class:`RichProgress` when ``rich`` is installed, else a :class:`PlainProgress`."""
    if rich_available():
        return RichProgress(enabled=enabled)
    return PlainProgress(enabled=enabled)

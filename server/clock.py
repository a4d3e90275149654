"""What "now" is for the live server: the real time, or, in tests only, the real time moved on by a test.

``create_app(clock=...)`` keeps the app's clock in ``app.extensions["nudge.clock"]``; :func:`now` (and so
``server.models.utcnow``, which the engine, the scheduler, the workers and the column defaults use) reads it.
Without one, the app runs on :class:`SystemClock`. The test clock, :class:`ShiftedClock`, keeps its shift in a
file so that every process of a test shares it: ``NUDGE_TEST_CLOCK_FILE`` names that file and is refused unless
``NUDGE_TESTING`` is on, so production always runs on the real clock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app, has_app_context

#: a clock: called, it answers the current instant (aware, UTC)
Clock = Callable[[], datetime]


def system_now() -> datetime:
    """The real time, aware, in UTC."""
    return datetime.now(UTC)


class SystemClock:
    """The real clock, the one production runs on."""

    def __call__(self) -> datetime:
        return system_now()


class ShiftedClock:
    """For tests: the real time plus a shift kept in a file (seconds, a decimal number), read on every call.

    :meth:`advance` moves every process sharing the file forward at once: the test itself, the app it built and
    the ``nudge`` processes it started. Time keeps flowing, so leases and back-offs behave as they do live.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if not self.path.exists():
            self._write(0.0)
        self._seen: tuple[int, int] | None = None
        self._shift = 0.0

    def __call__(self) -> datetime:
        return system_now() + timedelta(seconds=self.shift)

    @property
    def shift(self) -> float:
        """Seconds this clock is ahead of the real time."""
        stat = self.path.stat()
        if (stat.st_mtime_ns, stat.st_size) != self._seen:
            text = self.path.read_text(encoding="ascii").strip()
            try:
                self._shift = float(text)
            except ValueError:
                raise ValueError(
                    f"test clock file {str(self.path)!r}: expected a number of seconds, got {text!r}"
                ) from None
            self._seen = (stat.st_mtime_ns, stat.st_size)
        return self._shift

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by *delta* (a timedelta or seconds); return the new now."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, got {seconds} s")
        self._write(self.shift + seconds)
        return self()

    def _write(self, shift: float) -> None:
        part = self.path.with_name(self.path.name + ".part")
        part.write_text(repr(shift), encoding="ascii")
        os.replace(part, self.path)  # atomic: a reader sees the old shift or the new one
        self._seen = None


def clock_for(settings: dict[str, Any]) -> Clock:
    """The clock the settings ask for: the real one, unless a test set ``TEST_CLOCK_FILE`` (with ``TESTING``)."""
    path = settings.get("TEST_CLOCK_FILE")
    return ShiftedClock(path) if path else SystemClock()


def now() -> datetime:
    """Now, by the current app's clock; the real time outside an app context."""
    if has_app_context():
        clock = current_app.extensions.get("nudge.clock")
        if clock is not None:
            return clock()
    return system_now()

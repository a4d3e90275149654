"""The window and version a results page shows, read from its query string and checked, with errors people can act on.

``window`` is ``7d``, ``30d`` (the default), ``90d``, ``all`` or ``custom``; a custom window reads ``since`` and
``until`` as UTC days (``2026-11-01``), both included, ``until`` defaulting to today. ``version`` is a version
number of the rule, or empty for every version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

DAY = 86400
#: the windows offered, as (value, text), the number of days each covers (None: every day)
WINDOWS = (
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("all", "All time"),
    ("custom", "Custom"),
)
DAYS = {"7d": 7, "30d": 30, "90d": 90, "all": None}
DEFAULT = "30d"


@dataclass
class Window:
    """A checked choice: UNIX seconds *since*/*until* (None: unbounded), the version, and what was wrong."""

    key: str = DEFAULT
    since: int | None = None
    until: int | None = None
    since_text: str = ""
    until_text: str = ""
    version: int | None = None
    version_text: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The window in words: ``Last 30 days``, ``2026-11-01 to 2026-11-07``."""
        if self.key == "custom":
            return f"{self.since_text} to {self.until_text}"
        return dict(WINDOWS)[self.key]

    def days(self, today: int) -> list[int]:
        """The UTC day numbers of the window up to *today* (a day number); the last 30 when unbounded."""
        last = min(today, self.until // DAY) if self.until is not None else today
        first = self.since // DAY if self.since is not None else last - 29
        return list(range(first, last + 1))


def _day(text: str, what: str) -> int:
    try:
        return int(datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp())
    except ValueError:
        raise ValueError(f"{what} {text[:40]!r} is not a day: write it as 2026-11-01") from None


def read_window(args: Mapping[str, str], now: int, versions: list[int] | None = None) -> Window:
    """The window (and, given the rule's *versions*, the version) that *args* ask for at UNIX time *now*."""
    key = (args.get("window") or DEFAULT).strip()
    out = Window(key=key if key in dict(WINDOWS) else DEFAULT)
    if key not in dict(WINDOWS):
        out.errors["window"] = f"Unknown window {key[:40]!r}: choose one of " + ", ".join(k for k, _ in WINDOWS) + "."
    elif key == "custom":
        out.since_text = (args.get("since") or "").strip()
        out.until_text = (args.get("until") or "").strip() or datetime.fromtimestamp(now, UTC).date().isoformat()
        if not out.since_text:
            out.errors["since"] = "A custom window needs its first day (since), as 2026-11-01."
        for name, text in (("since", out.since_text), ("until", out.until_text)):
            if text and name not in out.errors:
                try:
                    setattr(out, name, _day(text, "since" if name == "since" else "until"))
                except ValueError as exc:
                    out.errors[name] = f"{exc}."
        if out.since is not None and out.until is not None and out.since > out.until:
            out.errors["until"] = "The window ends before it starts: choose an until day on or after since."
    elif (days := DAYS[key]) is not None:
        out.since = (now // DAY - days + 1) * DAY  # whole UTC days, today included
    if versions is not None:
        out.version_text = (args.get("version") or "").strip()
        if out.version_text:
            if not out.version_text.isdecimal() or int(out.version_text) not in versions:
                shown = ", ".join(f"v{v}" for v in versions) or "none yet"
                out.errors["version"] = f"This rule has no version {out.version_text[:20]!r}: its versions are {shown}."
            else:
                out.version = int(out.version_text)
    return out


__all__ = ["DAY", "DEFAULT", "WINDOWS", "Window", "read_window"]

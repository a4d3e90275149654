"""The admin UI's shell, wired in one call: roles, the flash area, the navigation and the template filters.

Templates of admin pages extend ``admin/layout.html`` and get ``admin_user()`` (the signed-in
:class:`~server.models.User`), ``nav_links()``, ``Role``, and the filters ``when`` (an instant as
``2026-11-25 14:03 UTC``), ``duration`` (seconds as ``3 min``) and ``who`` (``user:3`` as the person's email).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

from . import access, flash, nav
from .people import who


def when(value: datetime | None, empty: str = "never") -> str:
    """An aware instant as ``YYYY-MM-DD HH:MM UTC``; *empty* for None."""
    if value is None:
        return empty
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float | int | None, empty: str = "—") -> str:
    """*seconds* in the largest unit that keeps it readable: ``45 s``, ``3 min``, ``2 h 5 min``, ``4 d 3 h``."""
    if seconds is None:
        return empty
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 // 60 else "")
    return f"{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 // 3600 else "")


def init_app(app: Flask) -> None:
    access.init_app(app)
    flash.init_app(app)
    nav.init_app(app)
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.filters["who"] = who


__all__ = ["duration", "init_app", "when"]

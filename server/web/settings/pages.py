"""The Settings page: the instance's settings by topic, each saved in the database unless the config file or the
environment sets it (then read-only, naming where), and the ``nudge doctor`` checks with their fixes."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, redirect, render_template, request, url_for

from ... import instance_settings
from ...doctor import run_checks
from ...models import Role
from ..access import actor, requires
from ..flash import is_htmx, notify
from . import bp
from .fields import Field, as_posted, changes, fields

#: the topics of the page and their core settings; the sender's come from the channel that declares them
TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Public address and time", ("BASE_URL", "DEFAULT_TIMEZONE")),
    ("Sending limits", ("FREQUENCY_CAP",)),
    ("Consent", ("CONSENT_REQUIRED",)),
    ("Teams", ("TEAMS",)),
    ("Tracking", ("TRACK_OPENS", "TRACK_CLICKS", "TRACK_TEXT_LINKS", "TRACK_TRANSACTIONAL", "UNTRACKED_CHANNELS")),
)
#: the sender's identity and postal address, shown when an installed channel declares them
SENDER = ("MAIL_FROM", "POSTAL_ADDRESS")
_VARIABLE = re.compile(r"NUDGE_([A-Z0-9_]+)")


def _topics() -> list[tuple[str, list[Field]]]:
    declared = {key for cls in current_app.extensions["nudge.plugins"].channels.values() for key in cls.config_schema}
    sender = tuple(key for key in SENDER if key in declared)
    topics = ((("Sender", sender),) if sender else ()) + TOPICS
    return [(title, fields(keys)) for title, keys in topics]


def _quiet_hours() -> list[tuple[str, str]]:
    """Each channel's default quiet hours, as it declares them."""
    out = []
    for name, cls in sorted(current_app.extensions["nudge.plugins"].channels.items()):
        window = getattr(cls, "quiet_hours", None)
        out.append((name, f"{window[0]}–{window[1]}" if window else "none"))
    return out


def _page(topics: list[tuple[str, list[Field]]], errors: dict[str, str], status: int = 200) -> Any:
    return (
        render_template("admin/settings/index.html", topics=topics, errors=errors, quiet_hours=_quiet_hours()),
        status,
    )


@bp.get("/")
@requires(Role.ADMIN)
def index():
    return _page(_topics(), {})


@bp.post("/")
@requires(Role.ADMIN)
def save():
    topics = _topics()
    wanted = changes([f for _title, shown in topics for f in shown], request.form)
    if not wanted:
        notify("Nothing changed.", "info")
        return redirect(url_for("settings.index"))
    errors = instance_settings.save(current_app, wanted, actor())
    if errors:
        notify("The settings were not saved: " + " ".join(f"NUDGE_{k}: {v}" for k, v in errors.items()), "error")
        return _page([(title, as_posted(shown, request.form)) for title, shown in topics], errors, 422)
    names = ", ".join(f"NUDGE_{key}" for key in sorted(wanted))
    notify(f"Saved {names}; every process uses the new values from its next request or job.")
    return redirect(url_for("settings.index"))


@bp.get("/checks")
@requires(Role.ADMIN)
def checks():
    """The ``nudge doctor`` checks (loaded after the page: the channels' checks may ask their providers)."""
    shown = {f.key for _title, group in _topics() for f in group}
    rows = []
    for check in run_checks(current_app):
        here = [key for key in _VARIABLE.findall(check.detail) if key in shown]
        rows.append((check, here[0] if here else None))
    page = "admin/settings/_checks.html" if is_htmx() else "admin/settings/checks.html"
    return render_template(page, checks=rows)


__all__ = ["checks", "index", "save"]

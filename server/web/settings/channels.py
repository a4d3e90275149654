"""The Channels page: installed plugins with their versions, each channel's settings as a form generated from its
``config_schema`` (secrets write-only, stored like the other settings) and "Test connection", which reports what
the provider answered (``Channel.test_connection``). Nothing here knows any channel by name."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for

from ... import instance_settings
from ...models import Role
from ...sdk import Check
from ..access import actor, requires
from ..flash import is_htmx, notify
from . import channels_bp as bp
from .fields import Field, as_posted, changes, fields


def _plugins() -> Any:
    return current_app.extensions["nudge.plugins"]


def _forms() -> list[tuple[str, Any, list[Field]]]:
    """(name, class, fields) of every installed channel, by name."""
    return [(name, cls, fields(cls.config_schema)) for name, cls in sorted(_plugins().channels.items())]


def _page(forms: list[tuple[str, Any, list[Field]]], errors: dict[str, str], status: int = 200) -> Any:
    plugins = sorted(_plugins().describe(current_app), key=lambda p: p["name"])
    return render_template("admin/settings/channels.html", plugins=plugins, forms=forms, errors=errors), status


@bp.get("/")
@requires(Role.ADMIN)
def index():
    return _page(_forms(), {})


def _channel(name: str) -> Any:
    if name not in _plugins().channels:
        abort(404, description=f"No installed plugin provides the channel {name[:64]!r}.")
    return _plugins().channels[name]


@bp.post("/<name>")
@requires(Role.ADMIN)
def save(name: str):
    cls = _channel(name)
    forms = _forms()
    shown = next(group for n, _cls, group in forms if n == name)
    wanted = changes(shown, request.form)
    if not wanted:
        notify(f"Nothing changed in the {name} channel's settings.", "info")
        return redirect(url_for("channels.index") + f"#channel-{name}")
    errors = instance_settings.save(current_app, wanted, actor())
    if errors:
        notify(f"The {name} channel's settings were not saved: " + " ".join(errors.values()), "error")
        kept = [(n, c, as_posted(group, request.form) if n == name else group) for n, c, group in forms]
        return _page(kept, errors, 422)
    names = ", ".join(f"NUDGE_{key}" for key in sorted(wanted))
    notify(f"Saved {names} of the {cls.name} channel; sends use them from their next job.")
    return redirect(url_for("channels.index") + f"#channel-{name}")


@bp.post("/<name>/test")
@requires(Role.ADMIN)
def test(name: str):
    """Ask the provider with the saved settings; the answer is shown, never stored."""
    _channel(name)
    try:
        result = _plugins().channel(name, current_app.config).test_connection()
    except Exception as exc:  # a plugin's broken test must show as its answer, not as a 500
        result = Check(f"{name}: connection", "error", f"the test failed: {type(exc).__name__}: {exc}")
    if is_htmx():
        return render_template("admin/settings/_test_result.html", name=name, result=result)
    notify(f"{result.name}: {result.status} — {result.detail}", "success" if result.status == "ok" else "error")
    return redirect(url_for("channels.index") + f"#channel-{name}")


__all__ = ["index", "save", "test"]

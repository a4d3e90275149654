"""Settings as form fields, one code path for the Settings and Channels pages: what each shows (its value, or for
a secret only whether it is set; where it is set when the file or environment wins) and what a posted form changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from flask import current_app

from ... import instance_settings
from ...config import ENV_PREFIX
from ...db import get_session
from ..people import who


@dataclass(frozen=True)
class Field:
    """One setting as the form shows it."""

    key: str
    type: str
    help: str
    secret: bool
    #: what the input holds ("" for a secret: never rendered back)
    value: str
    #: a bool's state, or whether a secret has a value
    on: bool
    #: where the value comes from when it is set above the database ("the environment"): read-only then
    locked_by: str | None
    #: who saved it here and when, when it is stored in the database
    saved: str | None

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.key

    @property
    def name(self) -> str:
        return "s-" + self.key


def text(value: Any) -> str:
    """A setting's value as one line of text (teams as ``team=member,member;…``)."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return ";".join(f"{team}={','.join(str(m) for m in members)}" for team, members in value.items())
    return str(value)


def fields(keys: Iterable[str]) -> list[Field]:
    """The form fields of *keys*, with their effective values."""
    app = current_app
    keys = list(keys)
    locked = instance_settings.overridden(app)
    rows = instance_settings.stored_rows(get_session(), keys)
    out = []
    for key in keys:
        spec = instance_settings.spec(app, key)
        value = app.config.get(key, spec.get("default"))
        secret = bool(spec.get("secret"))
        row = rows.get(key)
        out.append(
            Field(
                key=key,
                type=spec["type"],
                help=spec.get("help", ""),
                secret=secret,
                value="" if secret or spec["type"] == "bool" else text(value),
                on=bool(value),
                locked_by=locked.get(key)
                or (key in instance_settings.NEVER_STORED and "the start-up settings")
                or None,
                saved=f"saved by {who(row.updated_by)} at {row.updated_at:%Y-%m-%d %H:%M} UTC" if row else None,
            )
        )
    return out


def changes(shown: list[Field], form: Mapping[str, str]) -> dict[str, Any]:
    """What a posted form changes among *shown* fields: ``{key: new value}``, None to go back to the default.

    A secret changes only when something is typed (or "clear" is ticked); an empty text field unsets a value
    saved here; a field equal to what is in effect changes nothing.
    """
    stored = current_app.extensions["nudge.settings"].stored
    out: dict[str, Any] = {}
    for f in shown:
        if f.locked_by:
            continue
        if f.type == "bool":
            value: Any = f.name in form
            if value != f.on or (f.key in stored and stored[f.key] != value):
                out[f.key] = value
            continue
        posted = form.get(f.name, "").strip()
        if f.secret:
            if form.get("clear-" + f.key) and f.key in stored:
                out[f.key] = None
            elif posted:
                out[f.key] = posted
        elif not posted:
            if f.key in stored:
                out[f.key] = None
        elif posted != f.value:
            out[f.key] = posted
    return out


def as_posted(shown: list[Field], form: Mapping[str, str]) -> list[Field]:
    """*shown* holding what the refused *form* posted, so the page that says what was wrong keeps what was typed
    (a secret is never rendered back: it stays as it is; a read-only field was not posted)."""
    out = []
    for f in shown:
        if f.locked_by or f.secret:
            out.append(f)
        elif f.type == "bool":
            out.append(replace(f, on=f.name in form))
        else:
            out.append(replace(f, value=form.get(f.name, "").strip()))
    return out


__all__ = ["Field", "as_posted", "changes", "fields", "text"]

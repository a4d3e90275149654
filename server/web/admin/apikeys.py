"""API keys, managed by admins: list (never the key or its hash), create (the key shown once), revoke (at once).

The same functions as ``nudge apikey`` and ``/api/v1/apikeys`` (:mod:`server.apikeys`), audited with the
signed-in admin as actor.
"""

from __future__ import annotations

from flask import abort, make_response, redirect, render_template, request, url_for

from ...apikeys import find_key, list_keys, new_key, parse_expiry, revoke, state
from ...db import get_session
from ...models import Role, Scope
from ..access import actor, requires
from ..flash import is_htmx, notify
from ..nav import add
from . import bp

add(bp, "API keys", "admin.apikeys", order=90)
SCOPES = [(Scope.INGEST.value, "ingest: send events, upsert contacts"), (Scope.ADMIN.value, "admin: everything")]


def _page(form: dict[str, str], errors: dict[str, str], status: int = 200):
    return render_template(
        "admin/apikeys.html", keys=list_keys(get_session()), state=state, form=form, errors=errors, scopes=SCOPES
    ), status


@bp.get("/apikeys/")
@requires(Role.ADMIN)
def apikeys():
    return _page({"name": "", "scope": Scope.INGEST.value, "expires": "90d"}, {})


@bp.post("/apikeys/")
@requires(Role.ADMIN)
def apikey_create():
    form = {k: request.form.get(k, "").strip() for k in ("name", "scope", "expires")}
    errors: dict[str, str] = {}
    if len(form["name"]) > 255:
        errors["name"] = "The name is longer than 255 characters."
    if form["scope"] not in {s.value for s in Scope}:
        errors["scope"] = f"Choose a scope: {', '.join(s.value for s in Scope)}."
    expires_at = None
    if form["expires"]:
        try:
            expires_at = parse_expiry(form["expires"])
        except ValueError as exc:
            errors["expires"] = f"{str(exc)[:1].upper()}{str(exc)[1:]}."
    if errors:
        notify("The key was not created: " + " ".join(errors.values()), "error")
        return _page(form, errors, 422)
    key, row = new_key(get_session(), form["scope"], form["name"], expires_at, actor())
    notify(f"API key {row.prefix} created with scope {row.scope}.")
    response = make_response(
        render_template(
            "admin/secret.html",
            title="API key created",
            subject=row.name or row.prefix,
            what="API key",
            secret=key,
            back=url_for("admin.apikeys"),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/apikeys/<prefix>/revoke")
@requires(Role.ADMIN)
def apikey_revoke(prefix: str):
    db = get_session()
    row = find_key(db, prefix) if "\x00" not in prefix else None  # no key holds a NUL (and PostgreSQL refuses it)
    if row is None:
        abort(404, description=f"There is no API key {prefix}.")
    changed = revoke(db, row, actor())
    notify(
        f"API key {row.prefix} revoked: it is refused from now on."
        if changed
        else f"API key {row.prefix} was revoked already.",
        "success" if changed else "info",
    )
    if is_htmx():
        return render_template("admin/_apikey_row.html", k=row, state=state)
    return redirect(url_for("admin.apikeys"))

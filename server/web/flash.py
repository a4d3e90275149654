"""The admin flash area: results (``role="status"``) and errors (``role="alert"``), for pages and htmx requests.

Views call :func:`notify` (Flask's ``flash`` with one of :data:`CATEGORIES`). A full page shows the
messages in the layout. An htmx request gets them in an ``HX-Trigger`` header as the ``nudge:flash``
event, which ``/static/admin.js`` writes into the same area; an htmx request that fails (4xx, 5xx)
carries its error there the same way, so nothing fails silently.
"""

from __future__ import annotations

import json
from typing import Any, cast

from flask import Flask, Response, flash, g, get_flashed_messages, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from .signin import return_path

#: the categories a message may have; the first two are results, the last two errors
CATEGORIES = ("success", "info", "warning", "error")
ERRORS = frozenset({"warning", "error"})
EVENT = "nudge:flash"


def notify(message: str, category: str = "success") -> None:
    """Show *message* in the flash area of the next page (or of this htmx request's page)."""
    if category not in CATEGORIES:
        raise ValueError(f"flash category {category!r} is not one of {', '.join(CATEGORIES)}")
    flash(message, category)


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _add_trigger(response: Response, messages: list[tuple[str, str]], link: dict[str, str] | None = None) -> None:
    """Add the ``nudge:flash`` event to *response*'s ``HX-Trigger``, keeping the events already there.

    :param link: ``{"href": …, "text": …}`` shown after the last message (``/static/admin.js`` makes it a link).
    """
    raw = response.headers.get("HX-Trigger", "")
    try:
        events: dict[str, Any] = (
            json.loads(raw) if raw.startswith("{") else {name.strip(): None for name in raw.split(",") if name}
        )
    except ValueError:
        events = {}
    earlier = events.get(EVENT)
    if not isinstance(earlier, dict):
        earlier = {}
    added: list[dict[str, Any]] = [{"category": c, "text": t} for c, t in messages]
    if link and added:
        added[-1]["link"] = link
    events[EVENT] = {"messages": [*earlier.get("messages", []), *added]}
    # ASCII JSON: a header value is latin-1 on the wire; \\u escapes carry any text
    response.headers["HX-Trigger"] = json.dumps(events, ensure_ascii=True)


def admin_error(exc: HTTPException) -> Any:
    """An error on an admin page: the page in the layout, or for htmx the message in the flash area."""
    if exc.code is None or exc.code < 400:
        return exc
    if exc.code >= 500:  # the view may have failed in the database: the page below reads it (the person, the nav)
        from ..db import get_session

        get_session().rollback()
    text = exc.description or exc.name
    link = _sign_in_link() if exc.code == 401 else None
    if is_htmx():
        response = Response(text, exc.code, mimetype="text/plain")
        _add_trigger(response, [("error", text)], link)
    else:
        page = render_template("admin/error.html", code=exc.code, name=exc.name, text=text, link=link)
        response = Response(page, exc.code)
    if exc.code == 405:
        allow = exc.get_response().headers.get("Allow")
        if allow:
            response.headers["Allow"] = allow
    return response


def _sign_in_link() -> dict[str, str]:
    """A 401 (signed out, :mod:`server.web.csrf`): the way back in, to the page the person was on."""
    return {"href": url_for("admin.login", next=return_path()), "text": "Sign in again"}


def init_app(app: Flask) -> None:
    """Hand pending messages to htmx requests of admin pages as the ``nudge:flash`` event."""

    @app.after_request
    def _flash_for_htmx(response: Response) -> Response:
        if not g.get("admin_page") or not is_htmx():
            return response
        if (
            response.headers.get("HX-Redirect")
            or response.headers.get("HX-Refresh")
            or 300 <= response.status_code < 400
        ):
            return response  # the next full page shows them
        # with_categories=True always gives (category, text) pairs; Flask's return type covers both forms
        messages = cast("list[tuple[str, str]]", get_flashed_messages(with_categories=True))
        if messages:
            _add_trigger(response, messages)
        return response


__all__ = ["CATEGORIES", "ERRORS", "EVENT", "admin_error", "init_app", "is_htmx", "notify"]

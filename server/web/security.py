"""What every response carries and every request may send: body limits and framing headers.

Bodies: no route reads more than :data:`MAX_BODY` (the API raises it per endpoint, up to the event
batch's 8 MiB); forms are limited in size and in number of fields. Flask refuses a body whose
``Content-Length`` is too large before reading it (413) and cuts a chunked body off at the limit;
``nudge web`` also tells waitress the largest body any route takes, so it refuses larger ones
before buffering them.

Framing: every HTML page, public ones included, says ``X-Frame-Options: DENY`` and
``Content-Security-Policy: frame-ancestors 'none'``. Hosted forms are embedded as plain HTML that
posts to Nudge (see ``/forms/{slug}/snippet``), never in a frame, so no page needs to be framed,
and none can be used for clickjacking (the unsubscribe and preference pages included).

Admin pages (everything under ``/admin``, and plugins' pages declared with ``requires``) carry a strict
:data:`ADMIN_CSP`: scripts only from Nudge's own ``/static`` (no inline script, no inline event handler, no
``eval``: htmx runs with ``allowEval`` off), style sheets from ``/static`` plus inline styles (the CodeMirror
editor injects its own; Nudge's templates have none, which tests/web/test_admin_shell.py checks), no plugins,
no ``<base>``, forms only to Nudge, no framing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, abort, g, request

MAX_BODY = 1024 * 1024  # bytes any route reads, unless its endpoint says otherwise
MAX_FORM_MEMORY = 64 * 1024  # bytes of form fields (URL-encoded or multipart, files aside)
MAX_FORM_PARTS = 100  # fields in one form post
ADMIN_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
FRAMING = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}


def largest_body(others: Iterable[int] = ()) -> int:
    """The largest body any route accepts (*others*: the API endpoints' own limits): what the WSGI server may
    buffer at most."""
    return max([MAX_BODY, *others])


def larger_body(limit: Callable[[Flask], int], too_large: str) -> Callable[[Any], Any]:
    """Declare that a view reads bodies up to ``limit(app)`` bytes (a file upload), more than :data:`MAX_BODY`.

    Put it right under the route decorator: the limit is set before anything reads the body (the CSRF check
    reads the form), and a larger body is refused with 413 and *too_large* (``{limit}`` becomes the limit in MiB).
    """

    def mark(view: Any) -> Any:
        view.larger_body = (limit, too_large)
        return view

    return mark


def declared_bodies(app: Flask) -> list[int]:
    """The limits of the views declared with :func:`larger_body`, for the WSGI server's own limit."""
    return [view.larger_body[0](app) for view in app.view_functions.values() if hasattr(view, "larger_body")]


def init_app(app: Flask) -> None:
    """Set Flask's body limits and the session cookie's flags; add the framing headers to HTML answers."""
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_FORM_MEMORY
    app.config["MAX_FORM_PARTS"] = MAX_FORM_PARTS
    app.config["SESSION_COOKIE_HTTPONLY"] = True

    @app.before_request
    def _larger_body() -> None:
        declared = getattr(app.view_functions.get(request.endpoint or ""), "larger_body", None)
        if declared is None:
            return
        limit, too_large = declared
        request.max_content_length = limit(app)
        if (request.content_length or 0) > limit(app):
            abort(413, description=too_large.format(limit=limit(app) // (1024 * 1024)))

    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"  # assigned: Flask defines the key already (as None)
    app.config["SESSION_COOKIE_SECURE"] = str(app.config["BASE_URL"]).startswith("https://")

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/admin") or g.get("admin_page"):
            response.headers["Content-Security-Policy"] = ADMIN_CSP
            response.headers["Referrer-Policy"] = "same-origin"
        if response.mimetype == "text/html":
            response.headers["X-Frame-Options"] = FRAMING["X-Frame-Options"]
            policy = response.headers.get("Content-Security-Policy", "")
            if "frame-ancestors" not in policy:  # keep a page's own policy, add the framing rule to it
                rule = FRAMING["Content-Security-Policy"]
                response.headers["Content-Security-Policy"] = f"{policy.rstrip('; ')}; {rule}" if policy else rule
        return response

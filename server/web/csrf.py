"""CSRF protection for the server-rendered pages (the JSON API and /v1/ ingest use keys instead)."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, request, session

from .signin import ADMIN_PREFIX, signed_in_user

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
EXEMPT_PREFIXES = ("/api/", "/v1/")  # /v1/: the Segment-compatible ingest, authenticated by its write key
SIGNED_OUT = (
    "You are signed out (perhaps in another tab, or after a while without use), so this was not done. "
    "Sign in again, then try once more."
)
STALE = "The form expired or did not come from this site; reload the page and try again."


def csrf_token() -> str:
    token = session.get("_csrf")
    if not token:
        token = session["_csrf"] = secrets.token_urlsafe(32)
    return token


def init_app(app: Flask) -> None:
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def _check_csrf() -> None:
        if request.method in SAFE_METHODS or request.path.startswith(EXEMPT_PREFIXES):
            return
        if request.routing_exception is not None:  # no page takes this path or method: its 404 or 405 says so
            return
        if (request.endpoint or "").split(".")[0] in app.config.get("CSRF_EXEMPT_BLUEPRINTS", ()):
            return
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
        expected = session.get("_csrf", "")
        if expected and hmac.compare_digest(sent, expected):
            return
        if signed_out():
            abort(401, description=SIGNED_OUT)
        abort(400, description=STALE)


def signed_out() -> bool:
    """Whether this refused admin request comes from a page whose person is no longer signed in (signed out in
    another tab, or their session ended): signing in again is what helps, not reloading a form."""
    if not request.path.startswith(ADMIN_PREFIX + "/") or request.endpoint == "admin.login":
        return False
    return signed_in_user() is None

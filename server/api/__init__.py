"""The JSON API, version 1: every endpoint is declared once in :mod:`server.api.spec` style
(``@endpoint``), which both validates requests and writes ``/api/v1/openapi.json``."""

from typing import Any

from flask import Blueprint, Flask, Request, current_app, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)

from .spec import IdConverter  # noqa: E402


@bp.record_once
def _id_converter(state: Any) -> None:
    """Recorded before any route: the API's paths name records as ``<id:…>`` (:func:`.spec.flask_rule`)."""
    state.app.url_map.converters.setdefault("id", IdConverter)


from ..problems import problem  # noqa: E402
from . import (  # noqa: E402,F401  (register routes)
    apikeys,
    audit,
    contacts,
    events,
    fields,
    forms,
    messages,
    rules,
    segments,
    splits,
    stats,
    tasks,
    templates,
)
from .spec import endpoint, openapi_document  # noqa: E402


@endpoint(
    bp,
    "GET",
    "/openapi.json",
    summary="This document",
    tag="meta",
    scope=None,
    responses={200: ("the OpenAPI 3 document", {"type": "object"})},
)
def openapi():
    return jsonify(openapi_document(current_app.config["BASE_URL"]))


class KeySessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except under /api/ and /v1/: API calls authenticate with keys and never use
    a session, so each call skips reading and verifying a cookie (a null session refuses writes)."""

    def open_session(self, app: Flask, request: Request) -> Any:
        if request.path.startswith((PREFIX + "/", "/v1/")):  # /v1/: the Segment-compatible ingest
            return self.make_null_session(app)
        return super().open_session(app, request)


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    """Under /api/ every error is problem+json, also for paths and methods no view matched."""
    if not request.path.startswith(PREFIX + "/") and request.path != PREFIX:
        return exc
    detail = {
        404: "no such endpoint; see /api/v1/openapi.json",
        405: f"{request.method} is not allowed here; see /api/v1/openapi.json",
    }.get(exc.code or 500, exc.description)
    response = problem(exc.code or 500, exc.name, detail or exc.name)
    if exc.code == 405 and exc.get_response().headers.get("Allow"):
        response.headers["Allow"] = exc.get_response().headers["Allow"]
    return response


__all__ = ["KeySessions", "bp"]

"""The API's one description: every endpoint is declared here with its scope, body and query
schemas and responses; the same declaration validates requests and produces ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import current_app, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import ClientDisconnected
from werkzeug.routing import BaseConverter

from ..auth import require_api_key
from ..contacts.errors import Conflict, InvalidInput
from ..db import get_session
from ..jsonbody import JsonInputError, read_json
from ..models import Scope
from ..problems import problem
from .validation import SCHEMAS, parse_query, validator

PREFIX = "/api/v1"
MAX_BODY = 1024 * 1024
MAX_ID = 2**31 - 1


def schema(name: str, body: dict[str, Any]) -> dict[str, str]:
    """Register a named schema; return a ``$ref`` to it."""
    SCHEMAS[name] = body
    return ref(name)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "nullable": True}


def page_of(item: str) -> dict[str, str]:
    """A ``{"data": [...], "next_cursor": …}`` page of *item*."""
    return schema(
        f"{item}Page",
        {
            "type": "object",
            "required": ["data", "next_cursor"],
            "properties": {
                "data": {"type": "array", "items": ref(item)},
                "next_cursor": {
                    "type": "string",
                    "nullable": True,
                    "description": "pass as ?cursor= for the next page; null on the last",
                },
            },
        },
    )


ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
TIMESTAMP = {"type": "string", "format": "date-time", "example": "2026-05-01T12:00:00Z"}
LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
    "description": "page size",
}
CURSOR = {
    "name": "cursor",
    "in": "query",
    "schema": {"type": "string", "maxLength": 512},
    "description": "the next_cursor of the previous page",
}


def query_param(name: str, body: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": body, "description": description}


class BadQuery(InvalidInput):
    """A query parameter is wrong (answered 400, naming it)."""


class NotFound(Exception):
    """The addressed record does not exist (answered 404 with the message)."""


class Refused(Exception):
    """A request that cannot be done now: ``status`` and ``title`` are sent as they are."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def get_or_404(model: Any, ident: int, what: str) -> Any:
    row = get_session().get(model, ident) if 0 < ident <= MAX_ID else None
    if row is None:
        raise NotFound(f"there is no {what} with id {ident}")
    return row


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    scope: Scope | None
    body: dict[str, Any] | None
    query: list[dict[str, Any]]
    responses: dict[int, tuple[str, dict[str, Any] | None]]
    description: str = ""
    idempotency: bool = False
    max_body: int = MAX_BODY
    path_params: list[str] = field(default_factory=list)
    #: the body's check (:func:`~.validation.validator`), compiled once
    check_body: Callable[[Any], Any] | None = None


REGISTRY: list[Operation] = []
#: path → method → OpenAPI operation, for routes that are not ``@endpoint`` views (:func:`document`)
DOCUMENTED: dict[str, dict[str, dict[str, Any]]] = {}
#: the HTTP Basic write key of the Segment-compatible endpoints (server.api.segment)
WRITE_KEY = {
    "type": "http",
    "scheme": "basic",
    "description": "an ingest API key as the user, with an empty password (what the Segment clients send)",
}


def document(path: str, method: str, operation: dict[str, Any]) -> None:
    """Describe a route that is not an ``@endpoint`` view (its full *path*, e.g. ``/v1/track``) in the document."""
    DOCUMENTED.setdefault(path, {})[method] = operation


def error_answer(exc: Exception, method: str, path: str) -> Any:
    """The problem+json answer to an error an API view raised (the caller rolled back); None for an unexpected one,
    which the caller re-raises (a 500)."""
    if isinstance(exc, BadQuery):
        return problem(400, "Invalid query parameter", str(exc), field=exc.field)
    if isinstance(exc, Conflict):
        return problem(409, "Conflict", str(exc), field=exc.field)
    if isinstance(exc, InvalidInput):
        return problem(422, "Invalid input", str(exc), field=exc.field)
    if isinstance(exc, NotFound):
        return problem(404, "Not found", str(exc))
    if isinstance(exc, Refused):
        return problem(exc.status, exc.title, exc.detail, **exc.extra)
    if isinstance(exc, IntegrityError):
        current_app.logger.info("integrity error on %s %s: %s", method, path, type(exc.orig).__name__)
        return problem(409, "Conflict", "the change clashes with a record stored meanwhile; retry the request")
    return None


_PATH_PARAM = re.compile(r"\{(\w+)\}")
_DIGITS = re.compile(r"[0-9]+")


def _framing_problem() -> Any:
    """The 400 for a ``Content-Length`` that is not a number of bytes (Werkzeug reads "abc" or "-1" as 0, and the body
    as empty: "not valid JSON" would blame the body); None when it is fine or absent."""
    declared = request.headers.get("Content-Length")
    if declared is None or _DIGITS.fullmatch(declared.strip()):
        return None
    return problem(
        400,
        "Invalid Content-Length",
        f"Content-Length {declared[:40]!r} is not a number of bytes; send the body's length in bytes, or no "
        "Content-Length with Transfer-Encoding: chunked",
        field="Content-Length",
    )


class IdConverter(BaseConverter):
    """A record id in a path: ASCII digits, a minus sign allowed, so that ``/contacts/-1`` reaches its view and is
    "no such contact" (:func:`endpoint`), not "no such endpoint"; Werkzeug's ``int`` matched no sign, and took any
    Unicode digit (``/contacts/١`` was contact 1)."""

    regex = r"-?[0-9]{1,40}"
    weight = 50  # as Werkzeug's int: a static segment (``/contacts/upsert``) is still preferred

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: Any) -> str:
        return str(int(value))


def flask_rule(path: str) -> str:
    """``/contacts/{contact_id}`` → ``/contacts/<id:contact_id>`` (ids are integers, names strings)."""
    return _PATH_PARAM.sub(lambda m: f"<{'id' if m.group(1).endswith('_id') else 'string'}:{m.group(1)}>", path)


def _missing(name: str, ident: int) -> NotFound:
    """The 404 of a path id out of range: ``contact_id`` -1 is "no contact with id -1"."""
    return NotFound(f"there is no {name.removesuffix('_id').replace('_', ' ')} with id {ident}")


def endpoint(
    bp: Any,
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    scope: Scope | None = Scope.ADMIN,
    body: dict[str, Any] | None = None,
    query: list[dict[str, Any]] | tuple = (),
    responses: dict[int, tuple[str, dict[str, Any] | None]] | None = None,
    description: str = "",
    idempotency: bool = False,
    max_body: int = MAX_BODY,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare and register an API view.

    The view receives ``body=`` (validated JSON) when *body* is given and ``query=`` (typed
    parameters) when *query* is given, plus its path parameters. It may raise
    :class:`~server.contacts.InvalidInput` (422), :class:`~server.contacts.Conflict` (409),
    :class:`NotFound` (404) or :class:`Refused`; the session is rolled back on every error.
    """
    op = Operation(
        method=method,
        path=path,
        summary=summary,
        tag=tag,
        scope=scope,
        body=body,
        query=list(query),
        responses=responses or {200: ("OK", None)},
        description=description,
        idempotency=idempotency,
        max_body=max_body,
        path_params=_PATH_PARAM.findall(path),
        check_body=validator(body) if body is not None else None,
    )
    check_body = op.check_body

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            session = get_session()
            try:
                for name in op.path_params:
                    if name.endswith("_id") and not 0 < kwargs[name] <= MAX_ID:
                        raise _missing(name, kwargs[name])
                if op.query:
                    try:
                        kwargs["query"] = parse_query(op.query, request.args)
                    except InvalidInput as exc:
                        return problem(400, "Invalid query parameter", str(exc), field=exc.field)
                elif request.args:
                    name = sorted(request.args)[0]
                    return problem(
                        400, "Invalid query parameter", f"this endpoint takes no query parameter {name!r}", field=name
                    )
                if check_body is not None:
                    framing = _framing_problem()
                    if framing is not None:
                        return framing
                    if request.content_length is not None and request.content_length > op.max_body:
                        return problem(413, "Body too large", f"the body may be at most {op.max_body} bytes")
                    if not request.is_json:
                        return problem(
                            400, "Malformed JSON", "the body must be JSON with Content-Type: application/json"
                        )
                    try:
                        data = read_json(op.max_body)
                    except ClientDisconnected:
                        return problem(
                            400,
                            "Incomplete body",
                            f"the body ended before the {request.content_length} bytes its Content-Length "
                            "announced; send the whole body, with its length in bytes",
                        )
                    except JsonInputError as exc:
                        if exc.malformed:
                            return problem(400, "Malformed JSON", str(exc))
                        raise InvalidInput(exc.field, exc.message) from None
                    kwargs["body"] = check_body(data)
                return view(*args, **kwargs)
            except Exception as exc:
                session.rollback()
                answer = error_answer(exc, method, path)
                if answer is None:
                    raise
                return answer

        guarded = require_api_key(op.scope)(wrapper) if op.scope is not None else wrapper
        bp.add_url_rule(flask_rule(path), endpoint=view.__name__, view_func=guarded, methods=[method])
        REGISTRY.append(op)
        return view

    return decorator


PROBLEM = schema(
    "Problem",
    {
        "type": "object",
        "required": ["title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "field": {"type": "string", "description": "the offending input"},
        },
    },
)


def openapi_document(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document for every registered operation."""
    paths: dict[str, dict[str, Any]] = {}
    for op in REGISTRY:
        params: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": ID if name.endswith("_id") else {"type": "string", "minLength": 1, "maxLength": 255},
            }
            for name in op.path_params
        ]
        params += [dict(p.items()) for p in op.query]
        if op.idempotency:
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    "description": "retry-safe: the first answer is stored and replayed for 24 hours; "
                    "the same key with a different body is refused with 422",
                }
            )
        responses: dict[str, Any] = {}
        for status, (text, body) in op.responses.items():
            responses[str(status)] = {"description": text}
            if body is not None:
                responses[str(status)]["content"] = {"application/json": {"schema": body}}
        responses["default"] = {
            "description": "an error, as RFC 9457 problem details",
            "content": {"application/problem+json": {"schema": PROBLEM}},
        }
        entry: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": f"{op.method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', op.path)}".rstrip("_"),
            "parameters": params,
            "responses": responses,
        }
        if op.description:
            entry["description"] = op.description
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
        if op.scope is not None:
            entry["security"] = [{"bearer": []}]
            entry["x-scope"] = op.scope.value
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = entry
    for path, operations in DOCUMENTED.items():
        paths.setdefault(path, {}).update(operations)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Nudge API",
            "version": "1",
            "description": "Contacts, events, messages, tasks, templates, forms and segments, and the "
            "Segment-compatible ingest under /v1/. Authenticate "
            "with `Authorization: Bearer <key>`; keys have scope `ingest` (events and contact "
            "upserts) or `admin` (everything). Errors are `application/problem+json` naming "
            "the field.",
        },
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "schemas": dict(SCHEMAS),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "create one with: nudge apikey create --scope admin",
                },
                "writeKey": WRITE_KEY,
            },
        },
    }

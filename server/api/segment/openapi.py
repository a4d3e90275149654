"""The Segment-compatible endpoints in ``/api/v1/openapi.json``: ``POST /v1/batch`` and one per message kind.

They are not ``@endpoint`` views (their body may be ``text/plain`` or gzipped, their key may come as the HTTP Basic
user or in the body), so they are described here, as :mod:`server.api.segment` answers them, and handed to
:func:`server.api.spec.document`. Every status they answer is listed: there is no catch-all ``default``.
"""

from __future__ import annotations

from typing import Any

from ..spec import PROBLEM, document, schema
from .messages import KINDS, MAX_ID

#: what each kind needs besides ``userId`` or ``anonymousId`` (an alias: ``userId`` and ``previousId``)
_NEEDS = {"track": ["event"], "group": ["groupId"], "alias": ["userId", "previousId"]}
_IDENT = {
    "anyOf": [{"type": "string", "maxLength": MAX_ID}, {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}],
    "nullable": True,
    "description": "one line of text; a whole number within 64 bits is taken as its decimal text (any other number "
    "is refused); empty or null: not given",
}
_OBJECT = {"type": "object", "additionalProperties": True, "nullable": True}
_LABEL = {"description": "added to the event's props when it is a string (and props have none of that name)"}
_COMMON: dict[str, Any] = {
    "userId": _IDENT,
    "anonymousId": _IDENT,
    "messageId": {**_IDENT, "description": "stored once per write key for 24 hours: a retry stores nothing twice"},
    "timestamp": {
        "type": "string",
        "format": "date-time",
        "nullable": True,
        "description": "when it happened: ISO-8601 with a time zone, a year from 1900 to 9998 (default: now)",
    },
    "context": {**_OBJECT, "description": "its `traits` count for an identify, under `traits`"},
    "integrations": _OBJECT,
    "sentAt": {"description": "ignored"},
    "writeKey": {"type": "string", "description": "the write key, when not sent as the HTTP Basic user"},
}
_OF_KIND: dict[str, dict[str, Any]] = {
    "track": {
        "event": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "example": "Form Submitted",
            "description": "one line; becomes the event name (form.submitted) as docs/api.md says, else a 400",
        },
        "properties": _OBJECT,
    },
    "identify": {"traits": {**_OBJECT, "description": "email, phone, firstName, lastName, name, custom fields"}},
    "page": {"name": _LABEL, "category": _LABEL, "properties": _OBJECT},
    "screen": {"name": _LABEL, "category": _LABEL, "properties": _OBJECT},
    "group": {"groupId": _IDENT, "traits": _OBJECT},
    "alias": {"previousId": _IDENT},
}
_WHO = [{"required": ["userId"]}, {"required": ["anonymousId"]}]
_PROBLEM = schema(
    "SegmentCompatProblem",
    {
        "allOf": [PROBLEM],
        "description": "problem details, with the `code` and `message` the Segment clients log "
        "(a refused key answers plain problem details)",
        "properties": {"code": {"type": "string", "example": "invalid_input"}, "message": {"type": "string"}},
    },
)
_SUCCESS = schema(
    "SegmentCompatSuccess",
    {"type": "object", "required": ["success"], "properties": {"success": {"type": "boolean", "enum": [True]}}},
)
_ANSWERS = {
    200: "stored (or seen before, by messageId): handed to the engine",
    400: "malformed JSON or gzip, or a message is wrong (`field` names it: batch[2].traits.email); nothing is stored",
    401: "no write key, or not a valid one",
    403: "a key of neither scope ingest nor admin",
    413: "a message over 32 KB, a body over 500 KB (unpacked), or a batch of more than 2,500 messages",
    415: "a body neither application/json nor text/plain, or a Content-Encoding other than gzip",
    429: "more events wait for the engine than NUDGE_INGEST_MAX_QUEUE: retry after Retry-After seconds",
    503: "a concurrent request stored the same data: retry after Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before retrying"}}


def _message(kind: str) -> dict[str, str]:
    """The schema of a message of *kind* (the body of ``/v1/<kind>``, which takes its kind from the path)."""
    body: dict[str, Any] = {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": [kind]}, **_COMMON, **_OF_KIND[kind]},
        "additionalProperties": True,
    }
    if _NEEDS.get(kind):
        body["required"] = _NEEDS[kind]
    if kind != "alias":
        body["anyOf"] = _WHO
    return schema(f"SegmentCompat{kind.capitalize()}", body)


def _body(kind: str | None) -> dict[str, str]:
    """The request body's schema: one message of *kind*, or a batch (*kind* None) of messages named by ``type``."""
    if kind is not None:
        return _message(kind)
    item = {"allOf": [{"required": ["type"]}, {"oneOf": [_message(k) for k in KINDS]}]}
    batch = {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {"type": "array", "maxItems": 2500, "items": item},
            "sentAt": _COMMON["sentAt"],
            "writeKey": _COMMON["writeKey"],
            "context": _OBJECT,
        },
        "additionalProperties": True,
    }
    return schema("SegmentCompatBatch", batch)


def _entry(kind: str | None, summary: str) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, text in _ANSWERS.items():
        content = _SUCCESS if status == 200 else _PROBLEM
        media = "application/json" if status == 200 else "application/problem+json"
        responses[str(status)] = {"description": text, "content": {media: {"schema": content}}}
        if status in (429, 503):
            responses[str(status)]["headers"] = _RETRY_AFTER
    return {
        "summary": summary,
        "tags": ["segment"],
        "operationId": f"post_v1_{kind or 'batch'}",
        "description": 'Segment\'s wire format (docs/api.md, "Segment-compatible ingest"). The body may also be '
        "sent gzipped (`Content-Encoding: gzip`); the write key may also be sent as `writeKey` in the body.",
        "parameters": [],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _body(kind)},
                "text/plain": {"schema": {"type": "string", "description": "the same JSON, as text (analytics.js)"}},
            },
        },
        "responses": responses,
        "security": [{"writeKey": []}, {"bearer": []}],
        "x-scope": "ingest",
    }


def declare(prefix: str) -> None:
    """Hand the endpoints' descriptions, under *prefix* (``/v1``), to the API's document."""
    document(f"{prefix}/batch", "post", _entry(None, "Store a batch of Segment messages, all or none"))
    for kind in KINDS:
        document(f"{prefix}/{kind}", "post", _entry(kind, f"Store one Segment {kind} message"))


__all__ = ["declare"]

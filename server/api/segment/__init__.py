"""The Segment-compatible ingest: ``POST /v1/batch``, ``/v1/track``, ``/v1/identify``, ``/v1/page``,
``/v1/screen``, ``/v1/group`` and ``/v1/alias``, the wire format of the Segment and RudderStack clients.

Authenticated by a write key (an ingest-scope API key) as the HTTP Basic user or as ``writeKey`` in the body;
JSON sent as ``application/json`` or ``text/plain`` (analytics.js), optionally gzipped; Segment's limits (32 KB a
message, 500 KB and 2,500 messages a batch, the decompressed size counting); 429 with ``Retry-After`` while more
events than ``INGEST_MAX_QUEUE`` wait for the engine. The messages are stored as the events API stores events and
handed to the engine the same way (see :mod:`.messages`); the answer is Segment's ``{"success": true}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import zlib
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy.exc import IntegrityError

from ...auth import check_key
from ...contacts import Conflict, InvalidInput
from ...db import get_session
from ...engine.groups import hand_over
from ...engine.ingest import write_turn
from ...engine.wake import events_waiting
from ...jsonbody import explained
from ...models import Scope
from ...problems import problem
from ...sdk import JsonInputError, parse_json
from ..common import actor
from .messages import KINDS, Message, Naming, check_message, store_messages
from .openapi import declare

PREFIX = "/v1"
MAX_MESSAGE = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500
#: seconds a client is asked to wait when the queue is too long
RETRY_AFTER = 10
#: seconds one look at the queue's length serves (one Redis round trip a second at most, not one a request)
QUEUE_LOOK_EVERY = 1.0
TYPES = ("application/json", "text/plain")

bp = Blueprint("segment", __name__, url_prefix=PREFIX)


def refuse(status: int, title: str, detail: str, **extra: Any) -> Response:
    """problem+json that the Segment clients can read too: they log ``code`` and ``message``."""
    code = title.lower().replace(" ", "_")
    return problem(status, title, detail, code=code, message=detail, **extra)


def _write_key(body: Any) -> str | Response:
    """The write key: the HTTP Basic user (any password, usually empty) or the body's ``writeKey``."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and value.strip():
        try:
            user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return refuse(401, "Invalid credentials", "the Basic credentials are not base64 of 'writeKey:'")
        if user.strip():
            return user.strip()
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = body.get("writeKey") if isinstance(body, dict) else None
    if isinstance(key, str) and key.strip():
        return key.strip()
    return refuse(
        401,
        "Missing write key",
        "send an ingest API key as the HTTP Basic user (empty password) or as writeKey in the body; "
        "create one with: nudge apikey create --scope ingest",
    )


def _body() -> Any | Response:
    """The request's JSON: ``application/json`` or ``text/plain``, gzipped or not, at most 500 KB unpacked."""
    if request.mimetype not in TYPES:
        return refuse(
            415, "Unsupported media type", f"send JSON as application/json or text/plain, not {request.mimetype!r}"
        )
    if request.content_length is not None and request.content_length > MAX_BATCH_BYTES:
        return refuse(413, "Body too large", f"a body may be at most {MAX_BATCH_BYTES} bytes (500 KB)")
    request.max_content_length = MAX_BATCH_BYTES
    raw = request.get_data(cache=False)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "gzip":
        unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = unpack.decompress(raw, MAX_BATCH_BYTES + 1)
        except zlib.error as exc:
            return refuse(400, "Malformed gzip", f"the body is not valid gzip ({exc})")
        if len(raw) > MAX_BATCH_BYTES:
            return refuse(413, "Body too large", f"the body unpacks to more than {MAX_BATCH_BYTES} bytes (500 KB)")
        if not unpack.eof:
            return refuse(400, "Malformed gzip", "the gzip body is cut short")
    elif encoding not in ("identity", ""):
        return refuse(415, "Unsupported encoding", f"Content-Encoding may be gzip or none, not {encoding!r}")
    try:
        return parse_json(raw)
    except JsonInputError as raised:
        error = explained(raised, raw)
        if error.malformed:
            return refuse(400, "Malformed JSON", str(error))
        return refuse(400, "Invalid input", error.message, field=error.field)


_look = threading.Lock()


def _overloaded() -> bool:
    """Whether more events wait for the engine than ``INGEST_MAX_QUEUE`` (looked at once a second)."""
    limit = int(current_app.config.get("INGEST_MAX_QUEUE") or 0)
    if limit <= 0:
        return False
    seen = current_app.extensions.get("nudge.segment.queue")
    now = time.monotonic()
    if seen is None or now - seen[0] >= QUEUE_LOOK_EVERY:
        with _look:
            seen = (now, events_waiting(limit))
            current_app.extensions["nudge.segment.queue"] = seen
    return bool(seen[1] > limit)


def _messages(body: Any, kind: str | None) -> list[Message] | Response:
    """The checked messages of a batch (*kind* None) or of one message of *kind*."""
    if kind is not None:
        if isinstance(body, dict) and len(json.dumps(body, separators=(",", ":")).encode()) > MAX_MESSAGE:
            return refuse(413, "Message too large", f"a message may be at most {MAX_MESSAGE} bytes (32 KB)")
        return [check_message(body, "", kind)]
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(batch, list):
        raise InvalidInput("batch", 'the body must be an object with a list of messages "batch"')
    if len(batch) > MAX_BATCH_MESSAGES:
        return refuse(
            413, "Too many messages", f"a batch may hold at most {MAX_BATCH_MESSAGES} messages, got {len(batch)}"
        )
    for i, item in enumerate(batch):
        if len(json.dumps(item, separators=(",", ":")).encode()) > MAX_MESSAGE:
            return refuse(
                413, "Message too large", f"batch[{i}] is larger than {MAX_MESSAGE} bytes (32 KB)", field=f"batch[{i}]"
            )
    return [check_message(item, f"batch[{i}].") for i, item in enumerate(batch)]


def _ingest(kind: str | None) -> Response | tuple[Response, int]:
    body = _body()
    if isinstance(body, Response):
        return body
    key = _write_key(body)
    if isinstance(key, Response):
        return key
    found = check_key(key, Scope.INGEST)
    if isinstance(found, Response):
        return found
    g.api_key = found
    if _overloaded():
        answer = refuse(429, "Too busy", f"the engine is behind; retry in {RETRY_AFTER} seconds")
        answer.headers["Retry-After"] = str(RETRY_AFTER)
        return answer
    session = get_session()
    try:
        messages = _messages(body, kind)
        if isinstance(messages, Response):
            return messages
        config = current_app.config
        plugins = current_app.extensions.get("nudge.plugins")
        naming = Naming(config.get("SEGMENT_EVENT_MAP") or {}, _reserved(plugins))
        region, who = config.get("PHONE_REGION"), actor()
        for attempt in range(2):
            try:
                with write_turn(session):
                    event_ids = store_messages(
                        session, messages, api_key_id=found.id, naming=naming, region=region, actor=who
                    )
                    session.commit()
                break
            except Conflict:
                # a concurrent request may have committed the contact between this one's look-up and its check
                # (PostgreSQL): look again once; a conflict found a second time is the data's own
                if attempt:
                    raise
                session.rollback()
            except IntegrityError:  # a concurrent request stored the same messages (or contacts): look again
                session.rollback()
                if attempt:
                    answer = refuse(503, "Try again", "a concurrent request stored the same data; retry the request")
                    answer.headers["Retry-After"] = "1"
                    return answer
    except (InvalidInput, Conflict) as exc:
        session.rollback()
        return refuse(400, "Invalid input", str(exc), field=exc.field)
    hand_over(event_ids)
    return jsonify({"success": True}), 200


def _reserved(plugins: Any) -> frozenset[str]:
    """Event namespaces of Nudge's own (``contact``, ``email`` …) that a track name must not fall into."""
    from dsl.vocabulary import RESERVED_EVENT_NAMESPACES

    return RESERVED_EVENT_NAMESPACES | (plugins.event_namespaces() if plugins is not None else frozenset())


@bp.post("/batch")
def batch() -> Any:
    return _ingest(None)


def _single(kind: str) -> Any:
    def view() -> Any:
        return _ingest(kind)

    view.__name__ = kind
    bp.add_url_rule(f"/{kind}", endpoint=kind, view_func=view, methods=["POST"])
    return view


for _kind in KINDS:
    _single(_kind)
declare(PREFIX)


@bp.errorhandler(413)
def _too_large(_exc: Any) -> Response:
    return refuse(413, "Body too large", f"a body may be at most {MAX_BATCH_BYTES} bytes (500 KB)")


__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_MESSAGES", "MAX_MESSAGE", "bp"]

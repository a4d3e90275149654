"""/api/v1/events: store events (one, or a batch of up to 1,000, all or nothing), enqueue their processing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import current_app, jsonify
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..contacts.normalize import check_json, parse_datetime
from ..db import get_session
from ..engine.ingest import record_event, upsert_contact
from ..engine.jobs import enqueue_events
from ..models import Event, Scope
from . import bp
from .common import text
from .contacts import CONTACT_INPUT, EVENT, event_dict
from .idempotency import body_digest, remember, replay, request_key
from .pagination import filtered_page, sort_param
from .spec import CURSOR, ID, LIMIT, TIMESTAMP, endpoint, page_of, query_param, schema

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_BODY = 256 * 1024
MAX_BATCH = 1000
MAX_BATCH_BODY = 8 * 1024 * 1024

EVENT_INPUT = schema(
    "EventInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["contact", "event"],
        "properties": {
            "contact": CONTACT_INPUT,
            "event": text(
                128, pattern=EVENT_NAME.pattern, pattern_hint="be a dotted lowercase name such as form.submitted"
            ),
            "props": {"type": "object", "description": "any JSON object"},
            "occurred_at": {**TIMESTAMP, "description": "when it happened (default: now); needs a time zone"},
        },
    },
)
BATCH_INPUT = schema(
    "EventBatch",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["events"],
        "properties": {"events": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": EVENT_INPUT}},
    },
)
ACCEPTED = schema(
    "EventAccepted",
    {"type": "object", "properties": {"id": ID, "contact_id": ID, "status": {"type": "string", "enum": ["accepted"]}}},
)
BATCH_ACCEPTED = schema(
    "EventBatchAccepted",
    {
        "type": "object",
        "properties": {
            "ids": {"type": "array", "items": ID},
            "contact_ids": {"type": "array", "items": ID},
            "count": {"type": "integer"},
            "status": {"type": "string", "enum": ["accepted"]},
        },
    },
)


def _store(session: Session, item: dict[str, Any], prefix: str) -> Event:
    props = check_json(item.get("props", {}), f"{prefix}props")
    occurred_at = parse_datetime(item["occurred_at"], f"{prefix}occurred_at") if item.get("occurred_at") else None
    contact = upsert_contact(
        session, item["contact"], region=current_app.config.get("PHONE_REGION"), strict=True, prefix=f"{prefix}contact."
    )
    return record_event(session, contact, item["event"], props, occurred_at=occurred_at)


def _idempotent(body: Any, work: Callable[[Session], tuple[dict[str, Any], list[int]]]):
    """Run *work* once per Idempotency-Key: store its answer with it, replay it to retries."""
    session = get_session()
    key = request_key()
    digest = body_digest(body) if key else ""
    if key:
        stored = replay(session, key, digest)
        if stored is not None:
            return stored
    payload, event_ids = work(session)
    if key:
        remember(session, key, digest, 202, payload)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        if key:  # a concurrent request with the same key won: answer as it did
            stored = replay(session, key, digest)
            if stored is not None:
                return stored
        raise
    enqueue_events(event_ids)
    return jsonify(payload), 202


@endpoint(
    bp,
    "POST",
    "/events",
    summary="Send an event",
    tag="events",
    scope=Scope.INGEST,
    body=EVENT_INPUT,
    idempotency=True,
    max_body=MAX_BODY,
    responses={202: ("stored; rules run shortly", ACCEPTED)},
    description="Creates or updates the contact (found by external_id, then email) and stores the event.",
)
def post_event(body: dict[str, Any]):
    def work(session: Session) -> tuple[dict[str, Any], list[int]]:
        event = _store(session, body, "")
        return {"id": event.id, "contact_id": event.contact_id, "status": "accepted"}, [event.id]

    return _idempotent(body, work)


@endpoint(
    bp,
    "POST",
    "/events/batch",
    summary="Send up to 1,000 events at once",
    tag="events",
    scope=Scope.INGEST,
    body=BATCH_INPUT,
    idempotency=True,
    max_body=MAX_BATCH_BODY,
    responses={202: ("all stored", BATCH_ACCEPTED)},
    description="All or nothing: one invalid event (named as events[i].field) stores none of them.",
)
def post_batch(body: dict[str, Any]):
    def work(session: Session) -> tuple[dict[str, Any], list[int]]:
        events = [_store(session, item, f"events[{i}].") for i, item in enumerate(body["events"])]
        ids = [e.id for e in events]
        return {"ids": ids, "contact_ids": [e.contact_id for e in events], "count": len(ids), "status": "accepted"}, ids

    return _idempotent(body, work)


@endpoint(
    bp,
    "GET",
    "/events",
    summary="List events",
    tag="events",
    responses={200: ("a page", page_of("Event"))},
    query=[query_param("contact_id", ID), query_param("name", text(128)), sort_param(["id"], "-id"), LIMIT, CURSOR],
)
def list_events(query: dict[str, Any]):
    return jsonify(filtered_page(Event, query, ("contact_id", "name"), event_dict))


__all__ = ["EVENT", "post_batch", "post_event"]

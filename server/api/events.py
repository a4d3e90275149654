"""/api/v1/events: store events (one, or a batch of up to 1,000, all or nothing), enqueue their processing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from flask import current_app, jsonify

from ..db import get_db, get_session
from ..engine.groups import store_once, store_together
from ..engine.ingest import prepare_events
from ..engine.once import Reused
from ..models import Event, Scope
from . import bp
from .common import text
from .contacts import CONTACT_INPUT, EVENT, event_dict
from .idempotency import body_digest, once, refused, replayed, request_key
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
            "occurred_at": {
                **TIMESTAMP,
                "minLength": 1,  # "" is no time: leave the field out for now
                "description": "when it happened (default: now); needs a time zone",
            },
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


class Route(NamedTuple):
    """What differs between the single-event and the batch endpoint (shared with :mod:`.ingest_wsgi`)."""

    items: Callable[[dict[str, Any]], list[dict[str, Any]]]
    #: how errors name item *i* (``events[3].``)
    prefix: Callable[[int], str]
    #: the 202's body for the stored (event id, contact id) pairs
    answer: Callable[[list[tuple[int, int]]], dict[str, Any]]


def _one(stored: list[tuple[int, int]]) -> dict[str, Any]:
    [(event_id, contact_id)] = stored
    return {"id": event_id, "contact_id": contact_id, "status": "accepted"}


def _many(stored: list[tuple[int, int]]) -> dict[str, Any]:
    ids = [event_id for event_id, _contact_id in stored]
    contact_ids = [contact_id for _event_id, contact_id in stored]
    return {"ids": ids, "contact_ids": contact_ids, "count": len(ids), "status": "accepted"}


SINGLE = Route(lambda body: [body], lambda _i: "", _one)
BATCH = Route(lambda body: body["events"], lambda i: f"events[{i}].", _many)


def _accept(body: Any, route: Route):
    """Store the body's items and answer 202 with ``route.answer(stored)``; with an Idempotency-Key, once
    (replayed to retries).

    The items are checked before any write, then written, committed and enqueued together with concurrent
    requests' (:func:`store_together`); with a key, in the same transaction, each keyed request's earlier answer is
    looked up or its answer stored with its events (:func:`store_once`).
    """
    session = get_session()
    key = request_key()
    digest = body_digest(body) if key else ""
    if session.in_transaction():  # a look-up (the key's, the idempotency key's) must not hold a lock meanwhile
        session.commit()
    prepared = prepare_events(
        session,
        route.items(body),
        region=current_app.config.get("PHONE_REGION"),
        prefix=route.prefix,
        engine=get_db().engine,  # stored in a group: its values packed here
    )
    if not key:
        return jsonify(route.answer(store_together(prepared))), 202
    try:
        answered = store_once(prepared._replace(once=once(key, digest, 202, route.answer)))
    except Reused as exc:
        raise refused(exc) from None
    if answered.replayed:
        return replayed(answered.answer)
    return jsonify(answered.answer.payload), 202


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
    return _accept(body, SINGLE)


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
    return _accept(body, BATCH)


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


__all__ = ["BATCH", "EVENT", "SINGLE", "Route", "post_batch", "post_event"]

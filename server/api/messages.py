"""/api/v1/messages: the outbox, for operators (``?status=failed`` / ``unknown`` need a look), and resending."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from sqlalchemy import select

from ..contacts import audit, iso
from ..db import get_session
from ..engine.stuck import RESENDABLE, ResendError, resend
from ..models import Message, MessageStatus, MessageStatusChange
from ..queue import get_queue
from . import bp
from .common import actor, text
from .pagination import filtered_page, sort_param
from .spec import CURSOR, ID, LIMIT, TIMESTAMP, Refused, endpoint, get_or_404, nullable, page_of, query_param, schema

STATUS_CHANGE = schema(
    "MessageStatusChange",
    {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "detail": {"type": "string", "nullable": True},
            "source": {"type": "string"},
            "at": TIMESTAMP,
        },
    },
)
MESSAGE = schema(
    "Message",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "key": {"type": "string"},
            "contact_id": {**ID, "nullable": True},
            "channel": {"type": "string"},
            "template": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in MessageStatus]},
            "attempts": {"type": "integer"},
            "next_attempt_at": nullable(TIMESTAMP),
            "provider_id": {"type": "string", "nullable": True},
            "error": {"type": "string", "nullable": True},
            "data": {"type": "object"},
            "created_at": TIMESTAMP,
            "sent_at": nullable(TIMESTAMP),
            "history": {"type": "array", "items": STATUS_CHANGE},
        },
    },
)


def message_dict(msg: Message, history: list[MessageStatusChange] | None = None) -> dict[str, Any]:
    out = {
        "id": msg.id,
        "key": msg.key,
        "contact_id": msg.contact_id,
        "channel": msg.channel,
        "template": msg.template,
        "status": msg.status,
        "attempts": msg.attempts,
        "next_attempt_at": iso(msg.next_attempt_at),
        "provider_id": msg.provider_id,
        "error": msg.error,
        "data": msg.data or {},
        "created_at": iso(msg.created_at),
        "sent_at": iso(msg.sent_at),
    }
    if history is not None:
        out["history"] = [
            {"status": h.status, "detail": h.detail, "source": h.source, "at": iso(h.at)} for h in history
        ]
    return out


@endpoint(
    bp,
    "GET",
    "/messages",
    summary="List outbox messages",
    tag="messages",
    responses={200: ("a page", page_of("Message"))},
    query=[
        query_param(
            "status",
            {"type": "string", "enum": [s.value for s in MessageStatus]},
            "e.g. failed or unknown: sends that need an operator",
        ),
        query_param("channel", text(64)),
        query_param("contact_id", ID),
        sort_param(["id", "created_at"], "-id"),
        LIMIT,
        CURSOR,
    ],
)
def list_messages(query: dict[str, Any]):
    return jsonify(filtered_page(Message, query, ("status", "channel", "contact_id"), message_dict))


@endpoint(
    bp,
    "GET",
    "/messages/{message_id}",
    summary="A message with its status history",
    tag="messages",
    responses={200: ("the message", MESSAGE)},
)
def get_message(message_id: int):
    msg = get_or_404(Message, message_id, "message")
    history = list(
        get_session().scalars(
            select(MessageStatusChange)
            .where(MessageStatusChange.message_id == msg.id)
            .order_by(MessageStatusChange.at, MessageStatusChange.id)
        )
    )
    return jsonify(message_dict(msg, history))


RESEND = schema(
    "Resend",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "ids": {"type": "array", "minItems": 1, "maxItems": 1000, "items": ID},
            "status": {"type": "string", "enum": list(RESENDABLE)},
        },
    },
)
RESENT = schema("Resent", {"type": "object", "properties": {"resent": {"type": "array", "items": ID}}})


@endpoint(
    bp,
    "POST",
    "/messages/resend",
    summary="Send failed or unknown messages again",
    tag="messages",
    body=RESEND,
    responses={200: ("the ids queued to be sent again", RESENT)},
    description="Either `ids` (each failed or unknown) or `status` (every message with it). All or nothing: "
    "an unknown id is 404, a message that is neither failed nor unknown is 409, and nothing is "
    "changed. An `unknown` message may have reached the recipient: check with the provider first.",
)
def resend_messages(body: dict[str, Any]):
    if ("ids" in body) == ("status" in body):
        raise Refused(
            422, "Invalid input", "give either ids (a list of message ids) or status (unknown or failed)", field="ids"
        )
    session = get_session()
    try:
        resent = resend(session, actor(), body.get("ids", ()), body.get("status"))
    except ResendError as exc:
        raise Refused(
            exc.status, {404: "Not found", 409: "Conflict"}.get(exc.status, "Invalid input"), str(exc), field=exc.field
        ) from None
    audit(session, actor(), "messages.resent", "message", None, count=len(resent), ids=resent[:100])
    session.commit()
    if resent:
        from ..engine.jobs import deliver_messages

        get_queue().enqueue_send(deliver_messages, resent)  # or the scheduler does, once Redis answers
    return jsonify({"resent": resent})

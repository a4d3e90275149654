"""Inbound webhooks: ``POST /hooks/in/<source>``, signed per Standard Webhooks with the source's own secret."""
from __future__ import annotations

import logging
import time

import redis
from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select

from server.api.problems import problem
from server.db import get_session
from server.engine.ingest import IngestError, record_event, upsert_contact
from server.engine.jobs import process_events
from server.models import InboundSource
from server.queue import get_queue
from server.sdk import JsonInputError, Trigger, parse_json

from . import signing
from .mapping import MappingError, apply

log = logging.getLogger(__name__)

bp = Blueprint("webhook_inbound", __name__, url_prefix="/hooks/in")
MAX_BODY = 256 * 1024


class InboundWebhooks(Trigger):
    name = "webhook"
    events = ()  # whatever each source's mapping names
    description = "JSON payloads POSTed to /hooks/in/<source>, signed per Standard Webhooks, become events"


@bp.post("/<name>")
def receive(name: str):
    session = get_session()
    source = session.scalar(select(InboundSource).where(InboundSource.name == name))
    if source is None:
        return problem(404, "Unknown source", f"no inbound source named {name!r}; create it under Settings → Webhooks")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return problem(413, "Body too large", f"a payload may be at most {MAX_BODY} bytes")
    body = request.stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return problem(413, "Body too large", f"a payload may be at most {MAX_BODY} bytes")
    try:
        msg_id = signing.verify(source.secret, request.headers, body, now=time.time())
    except (signing.InvalidSignature, ValueError) as exc:
        return problem(401, "Invalid signature", str(exc))
    try:
        mapped = apply(source.mapping or {}, parse_json(body, "payload"))
    except (ValueError, MappingError) as exc:  # JsonInputError is a ValueError
        field = getattr(exc, "field", "payload")
        detail = str(exc) if isinstance(exc, (MappingError, JsonInputError)) else f"the body is not JSON: {exc}"
        return problem(422, "Payload does not fit the mapping", detail, field=field)
    seen = _SeenIds(f"{current_app.config['QUEUE_NAME']}:{source.id}")
    if not seen.add(msg_id):
        return jsonify({"status": "duplicate", "webhook_id": msg_id}), 200
    try:
        contact = upsert_contact(session, mapped.contact)
        event = record_event(session, contact, mapped.name, mapped.props, occurred_at=mapped.occurred_at,
                             source=f"hook:{source.name}"[:32])
        session.commit()
    except IngestError as exc:
        session.rollback()
        seen.forget(msg_id)
        return problem(422, "Payload does not fit the mapping", str(exc), field=exc.field)
    except Exception:
        session.rollback()
        seen.forget(msg_id)  # a retry of the same message must still be able to land
        raise
    get_queue().enqueue(process_events, [event.id])
    return jsonify({"id": event.id, "contact_id": contact.id, "status": "accepted"}), 202


class _SeenIds:
    """webhook-ids accepted in the last ten minutes (twice the timestamp tolerance), kept in Redis.

    A replay inside the tolerance is answered as a duplicate and stores nothing; older ones already
    fail the timestamp check. Without Redis the check is skipped (logged), never the request.
    """

    def __init__(self, scope: str):
        self.prefix = f"nudge:hooks:in:{scope}:"  # scoped by instance (its queue name) and source

    def add(self, msg_id: str) -> bool:
        try:
            return bool(get_queue().redis.set(self.prefix + msg_id, 1, nx=True, ex=2 * signing.TOLERANCE))
        except redis.RedisError as exc:
            log.warning("cannot check webhook-id %s for replays (%s); accepting it", msg_id, exc)
            return True

    def forget(self, msg_id: str) -> None:
        try:
            get_queue().redis.delete(self.prefix + msg_id)
        except redis.RedisError:
            pass


"""Inbound webhooks: ``POST /hooks/in/<source>``, signed per Standard Webhooks with the source's own secret.

Each accepted payload is stored once: its ``webhook-id`` is the receipt of the event, so a replay (within the
timestamp tolerance; older ones fail the signature check) is answered as a duplicate and stores nothing.
"""

from __future__ import annotations

import time

from flask import Blueprint, jsonify, request

from server.sdk import ContactDataError, JsonInputError, Trigger, inbound_source, ingest_event, parse_json, problem

from . import signing
from .mapping import MappingError, apply

bp = Blueprint("webhook_inbound", __name__, url_prefix="/hooks/in")
MAX_BODY = 256 * 1024


class InboundWebhooks(Trigger):
    name = "webhook"
    events = ()  # whatever each source's mapping names
    description = "JSON payloads POSTed to /hooks/in/<source>, signed per Standard Webhooks, become events"


@bp.post("/<name>")
def receive(name: str):
    source = inbound_source(name)
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
    try:
        stored = ingest_event(
            mapped.contact,
            mapped.name,
            mapped.props,
            occurred_at=mapped.occurred_at,
            source=f"hook:{source.name}"[:32],
            receipt=f"{source.id}:{msg_id}",
        )
    except ContactDataError as exc:
        return problem(422, "Payload does not fit the mapping", str(exc), field=exc.field)
    if stored.duplicate:
        return jsonify({"status": "duplicate", "webhook_id": msg_id}), 200
    return jsonify({"id": stored.event_id, "contact_id": stored.contact_id, "status": "accepted"}), 202

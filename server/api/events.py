"""POST /api/v1/events: store an event, enqueue its processing."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from flask import current_app, jsonify, request

from ..auth import require_api_key
from ..db import get_session
from ..engine.ingest import IngestError, record_event, upsert_contact
from ..engine.jobs import process_events
from ..models import Scope
from ..queue import get_queue
from . import bp
from .problems import problem

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_BODY = 256 * 1024
ALLOWED_KEYS = {"contact", "event", "props", "occurred_at"}


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise IngestError("occurred_at", "occurred_at must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise IngestError("occurred_at", f"occurred_at {value!r} is not ISO-8601, e.g. 2026-05-01T12:00:00Z") from None
    if parsed.tzinfo is None:
        raise IngestError("occurred_at", "occurred_at needs a timezone, e.g. a trailing Z for UTC")
    return parsed.astimezone(timezone.utc)


def _validate(body: Any) -> tuple[dict[str, Any], str, dict[str, Any], datetime | None]:
    if not isinstance(body, dict):
        raise IngestError("", "the body must be a JSON object")
    unknown = set(body) - ALLOWED_KEYS
    if unknown:
        raise IngestError(sorted(unknown)[0], f"unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(ALLOWED_KEYS))}")
    contact = body.get("contact")
    if not isinstance(contact, dict):
        raise IngestError("contact", "contact must be an object with an email or external_id")
    email = contact.get("email")
    if email is not None:
        if not isinstance(email, str):
            raise IngestError("contact.email", "contact.email must be a string")
        from email_validator import EmailNotValidError, validate_email

        try:
            contact = {**contact, "email": validate_email(email, check_deliverability=False).normalized.lower()}
        except EmailNotValidError as exc:
            raise IngestError("contact.email", f"contact.email is not a valid address: {exc}") from None
    name = body.get("event")
    if not isinstance(name, str) or not EVENT_NAME.match(name):
        raise IngestError("event", "event must be a dotted lowercase name such as form.submitted")
    props = body.get("props", {})
    if not isinstance(props, dict):
        raise IngestError("props", "props must be a JSON object")
    return contact, name, props, _parse_time(body.get("occurred_at"))


@bp.post("/events")
@require_api_key(Scope.INGEST)
def post_event():
    if request.content_length is not None and request.content_length > MAX_BODY:
        return problem(413, "Body too large", f"an event may be at most {MAX_BODY} bytes")
    body = request.get_json(silent=True)
    if body is None:
        return problem(400, "Malformed JSON", "the body must be JSON with Content-Type: application/json")
    session = get_session()
    try:
        spec, name, props, occurred_at = _validate(body)
        contact = upsert_contact(session, spec)
        event = record_event(session, contact, name, props, occurred_at=occurred_at)
        session.commit()
    except IngestError as exc:
        session.rollback()
        return problem(422, "Invalid event", str(exc), field=exc.field)
    get_queue().enqueue(process_events, [event.id])
    current_app.logger.debug("event %s stored as %d", name, event.id)
    return jsonify({"id": event.id, "contact_id": contact.id, "status": "accepted"}), 202

"""``Idempotency-Key``: the first answer to a key is stored with the work it describes and replayed
to retries; the same key with another body or endpoint is refused."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from flask import Response, g, jsonify, request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..contacts.errors import InvalidInput
from ..models import IdempotencyRecord, utcnow
from .spec import Refused

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)


def request_key() -> str | None:
    """The request's key, checked: 1 to 255 visible ASCII characters."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not all(33 <= ord(c) < 127 for c in key):
        raise InvalidInput(HEADER, f"{HEADER} must be 1 to 255 visible ASCII characters, e.g. a UUID")
    return key


def body_digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _endpoint() -> str:
    return f"{request.method} {request.path}"


def replay(session: Session, key: str, digest: str) -> Response | None:
    """The stored answer for *key*, or None when the key is new (or expired).

    :raises Refused: 422 when the key was used for a different request.
    """
    row = session.scalar(
        select(IdempotencyRecord).where(IdempotencyRecord.api_key_id == g.api_key.id, IdempotencyRecord.key == key)
    )
    if row is None:
        return None
    if row.created_at < utcnow() - KEEP:
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == row.id))
        session.flush()
        return None
    if row.endpoint != _endpoint() or row.request_hash != digest:
        raise Refused(
            422,
            "Idempotency-Key reused",
            f"this {HEADER} was already used for a different request "
            f"({row.endpoint}); send a new key for a new request",
            field=HEADER,
        )
    response = jsonify(row.response)
    response.status_code = row.status_code
    response.headers["Idempotent-Replayed"] = "true"
    return response


def remember(session: Session, key: str, digest: str, status: int, payload: Any) -> None:
    """Store the answer in the request's transaction: it exists exactly when the work does."""
    session.add(
        IdempotencyRecord(
            api_key_id=g.api_key.id,
            key=key,
            endpoint=_endpoint(),
            request_hash=digest,
            status_code=status,
            response=payload,
        )
    )

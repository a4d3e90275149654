"""Small helpers shared by the API views."""

from __future__ import annotations

from typing import Any

from flask import current_app, g

from ..contacts import address_channels


def actor() -> str:
    """Who is acting, for the audit log: the API key's public prefix, never the key."""
    key = getattr(g, "api_key", None)
    return f"apikey:{key.prefix}" if key is not None else "api"


def secret() -> str:
    return current_app.config["SECRET_KEY"]


def channels() -> dict[str, tuple[str, ...]]:
    return address_channels(current_app.extensions.get("nudge.plugins"))


def text(
    max_length: int, *, nullable: bool = False, min_length: int = 0, pattern_hint: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A JSON Schema string; *pattern_hint* finishes "… must …" in the error for a value not matching ``pattern``."""
    body: dict[str, Any] = {"type": "string", "maxLength": max_length, **extra}
    if pattern_hint is not None:
        body["x-pattern-hint"] = pattern_hint
    if min_length:
        body["minLength"] = min_length
    if nullable:
        body["nullable"] = True
    return body


def save(row: Any, action: str, target_type: str, target_id: Any, **detail: Any) -> None:
    """Add (or keep) *row*, audit *action* on it and commit: the tail of every admin write."""
    from ..contacts import audit
    from ..db import get_session

    session = get_session()
    session.add(row)
    session.flush()
    audit(session, actor(), action, target_type, target_id() if callable(target_id) else target_id, **detail)
    session.commit()


def remove(row: Any, action: str, target_type: str, target_id: Any) -> tuple[str, int]:
    """Delete *row*, audit it, commit; the 204 answer."""
    from ..contacts import audit
    from ..db import get_session

    session = get_session()
    session.delete(row)
    audit(session, actor(), action, target_type, target_id)
    session.commit()
    return "", 204

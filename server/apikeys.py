"""Managing API keys: expiry, listing and revocation, the same for the CLI and the API.

A listing shows a key's public prefix, name, scope and dates, never the key or its hash.
Revoking writes ``revoked_at``; every request reads the key's row, so it is refused at once.
Creating and revoking are audited.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .auth import create_api_key
from .contacts import audit, iso
from .models import ApiKey, Scope, utcnow

_SPAN = re.compile(r"^\s*(\d{1,5})\s*([hdw])\s*$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """When a key given ``--expires TEXT`` stops working.

    :param text: a span from now (``90d``, ``12h``, ``4w``), a date (``2027-01-31``: the key works until
        that day begins, UTC) or a date-time with a time zone (``2027-01-31T12:00:00Z``).
    :raises ValueError: saying what is accepted, or that the instant is not in the future.
    """
    now = now or utcnow()
    span = _SPAN.match(text)
    if span:
        when = now + int(span[1]) * _UNITS[span[2]]
    else:
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
                when = datetime.combine(date.fromisoformat(text.strip()), time(), UTC)
            else:
                when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"expiry {text!r} is neither a span like 90d, 12h or 4w nor a date like 2027-01-31"
            ) from None
        if when.tzinfo is None:
            raise ValueError(f"expiry {text!r} needs a time zone, e.g. a trailing Z for UTC")
    if when <= now:
        raise ValueError(f"expiry {text!r} is not in the future")
    return when.astimezone(UTC)


def state(row: ApiKey, now: datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def key_dict(row: ApiKey) -> dict[str, Any]:
    """What may be shown of a key: never the key, never its hash."""
    return {
        "prefix": row.prefix,
        "name": row.name,
        "scope": row.scope,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "expires_at": iso(row.expires_at),
        "revoked_at": iso(row.revoked_at),
        "state": state(row),
    }


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def find_key(session: Session, prefix: str) -> ApiKey | None:
    """The key with public *prefix* (the 8 hex characters after ``nk_<scope>_``; a whole key works too)."""
    parts = prefix.strip().split("_")
    ident = parts[2] if prefix.startswith("nk_") and len(parts) >= 3 else prefix.strip()
    return session.scalar(select(ApiKey).where(ApiKey.prefix == ident))


def new_key(
    session: Session, scope: Scope | str, name: str, expires_at: datetime | None, actor: str
) -> tuple[str, ApiKey]:
    """Create a key and audit it; return the key (shown once) and its row."""
    key = create_api_key(session, scope, name, expires_at)
    row = find_key(session, key)
    assert row is not None
    audit(session, actor, "apikey.created", "apikey", row.prefix, scope=row.scope, expires_at=iso(row.expires_at))
    session.commit()
    return key, row


def revoke(session: Session, row: ApiKey, actor: str) -> bool:
    """Revoke *row* now, audited; False when it was revoked already (nothing changes then)."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    audit(session, actor, "apikey.revoked", "apikey", row.prefix)
    session.commit()
    return True


__all__ = ["find_key", "key_dict", "list_keys", "new_key", "parse_expiry", "revoke", "state"]

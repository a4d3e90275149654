"""Who did something, as people know them: the ``user:<id>`` the audit log and records keep becomes the person's
email (the ``who`` template filter); an API key reads ``API key <id>``; anything else is shown as written."""

from __future__ import annotations

from flask import g, has_app_context
from sqlalchemy import select

from ..db import get_session
from ..models import User


def who(actor: str | None, empty: str = "—") -> str:
    """*actor* (``user:3``, ``apikey:1a2b``, ``cli``…) as a person reads it; *empty* for none.

    Each user is looked up once a request (a list page names the same few people on every row).
    """
    if not actor:
        return empty
    if actor.startswith("apikey:"):
        return f"API key {actor[7:]}"
    if not (actor.startswith("user:") and actor[5:].isdigit()) or not has_app_context():
        return actor
    known: dict[int, str | None] = g.setdefault("nudge_people", {})
    user_id = int(actor[5:])
    if user_id not in known:
        known[user_id] = get_session().scalar(select(User.email).where(User.id == user_id))
    return known[user_id] or actor


__all__ = ["who"]

"""The audit log: who changed what (rules, segments, templates, users, API keys, contacts and their erasure …),
newest first, filtered by actor, kind of change and date range, in keyset pages.

Editors and admins read it; viewers do not: it tells who did what in the areas only admins open (users, API
keys), and a viewer, who changes nothing, has no changes of their own to look back on. Entries hold ids and
counts, never personal data: an erased contact's entries keep only its id (erasure blanks their details).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import abort, render_template, request
from sqlalchemy import func, select

from ..db import get_session
from ..models import AuditEntry, Contact, Role, User
from .access import admin_blueprint, requires
from .crm import paging
from .nav import add, area_url

bp = admin_blueprint("audit", __name__, url_prefix="/admin/audit")
add(bp, "Audit log", "audit.index", order=95)

#: the kinds of record changes are made to (``target_type``); other kinds found in a filter are accepted too
KINDS = (
    "apikey",
    "contact",
    "engine",
    "field",
    "form",
    "message",
    "rule",
    "segment",
    "settings",
    "task",
    "template",
    "user",
)
MAX_FILTER = 128


def _filters(args: Any) -> dict[str, str]:
    out = {name: args.get(name, "").strip() for name in ("actor", "kind", "since", "until")}
    for name, value in out.items():
        if len(value) > MAX_FILTER:
            abort(400, description=f"The {name} filter is at most {MAX_FILTER} characters; shorten it.")
    return out


def _day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        abort(400, description=f"{name} {value[:40]!r} is not a date: use YYYY-MM-DD (UTC).")


def _actor(db: Any, value: str) -> str:
    """The actor as the log writes it: a person's email becomes ``user:<id>``; anything else is taken as written."""
    if "@" in value:
        user_id = db.scalar(select(User.id).where(func.lower(User.email) == value.lower()))
        return f"user:{user_id}" if user_id is not None else value
    return value


@bp.get("/")
@requires(Role.EDITOR)
def index():
    db = get_session()
    filters = _filters(request.args)
    since, until = _day(filters["since"], "From"), _day(filters["until"], "To")
    stmt = select(AuditEntry)
    if filters["actor"]:
        stmt = stmt.where(AuditEntry.actor == _actor(db, filters["actor"]))
    if filters["kind"]:
        stmt = stmt.where(AuditEntry.target_type == filters["kind"])
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= datetime.combine(since, time(), UTC))
    if until is not None:  # the whole day *until*
        stmt = stmt.where(AuditEntry.at < datetime.combine(until + timedelta(days=1), time(), UTC))
    scope = "|".join(filters.values())
    after = paging.cursor(scope, request.args.get("after"))
    if after is not None:
        stmt = stmt.where(AuditEntry.id < after[0])
    rows = list(db.scalars(stmt.order_by(AuditEntry.id.desc()).limit(paging.PAGE_SIZE + 1)))
    next_after = None
    if len(rows) > paging.PAGE_SIZE:
        rows = rows[: paging.PAGE_SIZE]
        next_after = paging.next_link(scope, (rows[-1].id,))
    return render_template(
        "admin/audit.html",
        entries=[_entry(e, _existing_contacts(db, rows)) for e in rows],
        people=_people(db, rows),
        filters=filters,
        active={k: v for k, v in filters.items() if v},
        kinds=[("", "every kind"), *((k, k) for k in sorted({*KINDS, filters["kind"]} - {""}))],
        after=next_after,
        first=bool(request.args.get("after")),
    )


def _people(db: Any, rows: list[AuditEntry]) -> dict[str, str]:
    """``user:<id>`` → the person's email, for the actors on this page."""
    ids = {int(e.actor[5:]) for e in rows if e.actor.startswith("user:") and e.actor[5:].isdigit()}
    if not ids:
        return {}
    return {f"user:{i}": email for i, email in db.execute(select(User.id, User.email).where(User.id.in_(ids)))}


def _existing_contacts(db: Any, rows: list[AuditEntry]) -> set[int]:
    """The contacts this page's entries are about that still exist (an erased one has no page to link to)."""
    ids = {int(e.target_id or "") for e in rows if e.target_type == "contact" and (e.target_id or "").isdigit()}
    return set(db.scalars(select(Contact.id).where(Contact.id.in_(ids)))) if ids else set()


def _entry(entry: AuditEntry, contacts: set[int]) -> dict[str, Any]:
    return {
        "entry": entry,
        "detail": json.dumps(entry.detail, ensure_ascii=False, sort_keys=True, default=str) if entry.detail else "",
        "link": _link(entry, contacts),
    }


def _link(entry: AuditEntry, contacts: set[int]) -> str | None:
    """The page of the record an entry is about, when it has one here."""
    target = entry.target_id or ""
    if entry.target_type == "contact" and target.isdigit() and int(target) in contacts:
        return area_url("contacts.contact", contact_id=int(target))
    if entry.target_type == "rule" and target.isdigit():
        return area_url("rules.show", rule_id=int(target))
    return None


__all__ = ["bp"]

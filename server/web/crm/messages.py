"""Messages: the sends that need an operator (failed, outcome unknown, retrying) with their errors, tries and
status history, filterable by channel, rule and time; resend one or the chosen ones; and the events and
journeys that are failing, with unpark.

Resending and unparking are :func:`server.engine.stuck.resend` and :func:`~server.engine.stuck.unpark`: the
same code as ``nudge messages resend|unpark`` and ``POST /api/v1/messages/resend``, audited the same way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import and_, or_, select

from ...contacts import audit
from ...db import get_session
from ...engine.jobs import deliver_messages
from ...engine.stuck import RESENDABLE, ResendError, resend, stuck_work, unpark
from ...engine.timeutil import to_dt
from ...models import Contact, Message, MessageStatus, Role, Rule
from ...queue import get_queue
from ..access import actor, admin_blueprint, current_role, requires
from ..flash import notify
from ..nav import add
from . import paging
from .timeline import histories

bp = admin_blueprint("messages", __name__, url_prefix="/admin/messages")
add(bp, "Messages", "messages.index", order=40)

PENDING, FAILED, UNKNOWN = MessageStatus.PENDING.value, MessageStatus.FAILED.value, MessageStatus.UNKNOWN.value
#: the ``status`` filter: value → (label, condition); "parked" shows only failing events and journeys
STATUSES: dict[str, tuple[str, Any]] = {
    "": (
        "Needs a look: failed, unknown, retrying",
        or_(Message.status.in_((FAILED, UNKNOWN)), and_(Message.status == PENDING, Message.attempts > 0)),
    ),
    "failed": ("Failed", Message.status == FAILED),
    "unknown": ("Outcome unknown", Message.status == UNKNOWN),
    "retrying": ("Retrying", and_(Message.status == PENDING, Message.attempts > 0)),
    "parked": ("Failing events and journeys only", None),
    "all": ("Every message", None),
}
FILTERS = ("status", "channel", "rule", "since", "until")
MAX_IDS = 1000


class BadFilter(ValueError):
    """A filter the list cannot use; the page says which and why (400)."""


def _filters(args: Any) -> dict[str, str]:
    return {name: args.get(name, "").strip() for name in FILTERS}


def _day(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), UTC)
    except ValueError:
        raise BadFilter(f"{name} {value[:40]!r} is not a date; use YYYY-MM-DD") from None


def _query(filters: dict[str, str]) -> Any:
    """The messages the filters select.

    :raises BadFilter: for an unknown status, a rule that is not an id, or a malformed date.
    """
    if filters["status"] not in STATUSES:
        raise BadFilter(f"status {filters['status'][:40]!r} is not one of: {', '.join(s for s in STATUSES if s)}")
    stmt = select(Message)
    condition = STATUSES[filters["status"]][1]
    if condition is not None:
        stmt = stmt.where(condition)
    if filters["channel"]:
        stmt = stmt.where(Message.channel == filters["channel"][:64])
    if filters["rule"]:
        if not filters["rule"].isdecimal() or not 0 < int(filters["rule"]) < 2**31:
            raise BadFilter(f"rule {filters['rule'][:40]!r} is not a rule id; choose one from the list")
        stmt = stmt.where(Message.data["rule"].as_integer() == int(filters["rule"]))
    since, until = _day(filters["since"], "since"), _day(filters["until"], "until")
    if since is not None:
        stmt = stmt.where(Message.created_at >= since)
    if until is not None:
        stmt = stmt.where(Message.created_at < until + timedelta(days=1))
    return stmt


def _list(filters: dict[str, str], status: int = 200) -> Any:
    db = get_session()
    scope = "|".join(filters[name] for name in FILTERS)
    rows: list[Message] = []
    after = None
    try:
        stmt = _query(filters)
    except BadFilter as exc:
        notify(f"Cannot list messages: {exc}.", "error")
        status, stmt = 400, None
    if stmt is not None and filters["status"] != "parked":
        start = paging.cursor(scope, request.args.get("after"))
        if start is not None:
            stmt = stmt.where(Message.id < start[0])
        rows = list(db.scalars(stmt.order_by(Message.id.desc()).limit(paging.PAGE_SIZE + 1)))
        if len(rows) > paging.PAGE_SIZE:
            rows = rows[: paging.PAGE_SIZE]
            after = paging.next_link(scope, (rows[-1].id,))
    history = histories(db, [m.id for m in rows])
    contacts = (
        dict(
            db.execute(
                select(Contact.id, Contact.email).where(Contact.id.in_({m.contact_id for m in rows if m.contact_id}))
            ).all()
        )
        if rows
        else {}
    )
    rules = dict(db.execute(select(Rule.id, Rule.name).order_by(Rule.name)).all())
    work = stuck_work(db, paging.PAGE_SIZE) if filters["status"] in ("", "parked") else []
    channels = [(name, name) for name in sorted(current_app.extensions["nudge.plugins"].channels)]
    role = current_role()
    return render_template(
        "admin/messages.html",
        rows=rows,
        history=history,
        contacts=contacts,
        rules=rules,
        work=work,
        filters=filters,
        rule_choices=[(str(rid), name) for rid, name in sorted(rules.items(), key=lambda r: r[1])],
        active={k: v for k, v in filters.items() if v},
        statuses=[(k, v[0]) for k, v in STATUSES.items()],
        channels=channels,
        after=after,
        first=bool(request.args.get("after")),
        resendable=RESENDABLE,
        to_dt=to_dt,
        can_edit=role is not None and role.allows(Role.EDITOR),
    ), status


@bp.get("/")
@requires(Role.VIEWER)
def index():
    return _list(_filters(request.args))


def _back(filters: dict[str, str]) -> Any:
    values: dict[str, Any] = {k: v for k, v in filters.items() if v}
    return redirect(url_for("messages.index", **values))


def _ids(values: list[str], what: str) -> list[int]:
    try:
        ids = [int(v) for v in values]
    except ValueError:
        abort(400, description=f"{what} must be ids of the list; reload the page and choose again.")
    if any(not 0 < i < 2**31 for i in ids) or len(ids) > MAX_IDS:
        abort(400, description=f"{what} must be at most {MAX_IDS} ids of the list.")
    return ids


@bp.post("/resend")
@requires(Role.EDITOR)
def resend_messages():
    """Send again the message of the row's button (``one``), or the ticked ones (``selected``)."""
    filters = _filters(request.form)
    ids = _ids(request.form.getlist("one") or request.form.getlist("selected"), "The messages to resend")
    if not ids:
        notify("Nothing was resent: tick the messages to send again first.", "error")
        return _list(filters, 422)
    db = get_session()
    try:
        resent = resend(db, actor(), ids)
    except ResendError as exc:
        db.rollback()
        notify(f"Nothing was resent: {exc}.", "error")
        return _list(filters, exc.status)
    audit(db, actor(), "messages.resent", "message", None, count=len(resent), ids=resent[:100])
    db.commit()
    queued = get_queue().enqueue_send(deliver_messages, resent)
    notify(
        f"{len(resent)} message(s) queued to be sent again: "
        + ", ".join(f"#{i}" for i in resent[:20])
        + (" …" if len(resent) > 20 else "")
        + "."
    )
    if not queued:
        notify("Redis cannot be reached: the scheduler sends them once it is back.", "warning")
    return _back(filters)


@bp.post("/unpark")
@requires(Role.EDITOR)
def unpark_work():
    """Try parked events and journeys again: the row's (``event`` / ``journey``), or every parked one (``all``)."""
    filters = _filters(request.form)
    events, journeys = _ids(request.form.getlist("event"), "Events"), _ids(request.form.getlist("journey"), "Journeys")
    if not (events or journeys or request.form.get("all") == "yes"):
        notify("Nothing was unparked: choose an event or journey, or unpark all.", "error")
        return _list(filters, 422)
    db = get_session()
    done = unpark(db, events, journeys)
    audit(db, actor(), "work.unparked", "engine", None, events=done[0], journeys=done[1])
    db.commit()
    notify(
        f"{done[0]} event(s) and {done[1]} journey(s) will be tried again now."
        if any(done)
        else "Nothing was parked any more: it may have been unparked already.",
        "success" if any(done) else "info",
    )
    return _back(filters)


__all__ = ["bp"]

"""The broadcasts list, composing one (template, segment, now or a time), and a broadcast's progress and results."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...contacts import audit
from ...db import get_session
from ...engine.broadcast import BroadcastError, cancel_broadcast, create_broadcast, enqueue_broadcast, rows_of
from ...engine.funnel import broadcast_results
from ...engine.rollup import counted_up_to
from ...engine.vocabulary import instance_vocabulary
from ...models import BroadcastRecord, Contact, Message, MessageStatusChange, Role, Segment, utcnow
from ..access import actor, may, requires
from ..flash import notify
from . import bp
from .audience import audience

MAX_ID = 2**31 - 1
#: how far ahead a broadcast may be scheduled
MAX_AHEAD = dt.timedelta(days=366)
#: the statuses a broadcast's progress shows, in order; "sending" counts as queued until its outcome is known
SHOWN = ("queued", "sent", "suppressed", "failed", "cancelled")
#: messages listed on a broadcast's page
LISTED = 50


def _can_edit() -> bool:
    return may(Role.EDITOR)


def _templates(session: Session) -> list[str]:
    """``channel:template`` for every template a broadcast may send."""
    known = instance_vocabulary(session, current_app.extensions["nudge.plugins"]).channels
    return sorted(f"{channel}:{name}" for channel, names in known.items() for name in names)


def progress(session: Session, row: BroadcastRecord, results: bool = False) -> dict[str, Any]:
    """The broadcast's messages by status (``queued``, ``sent``, ``suppressed``, ``failed``, ``cancelled``) of its
    total. ``counting`` (asked for with *results*, for a page that shows them): none is queued, but the stats rollup
    has yet to count some outcomes, so the results lag the counts."""
    by_status = dict(
        session.execute(
            select(Message.status, func.count(Message.id)).where(rows_of(session, row.ident)).group_by(Message.status)
        ).all()
    )
    counts = {
        "queued": by_status.pop("pending", 0) + by_status.pop("sending", 0),
        "sent": by_status.pop("sent", 0),
        "suppressed": by_status.pop("suppressed", 0),
        "failed": by_status.pop("failed", 0) + by_status.pop("unknown", 0),
        "cancelled": by_status.pop("cancelled", 0),
    }
    total = sum(counts.values()) + sum(by_status.values())
    done = total - counts["queued"]
    return {
        **counts,
        "total": total,
        "done": done,
        "percent": 100 if not total else done * 100 // total,
        "counting": results and not counts["queued"] and _uncounted(session, row),
    }


def _uncounted(session: Session, row: BroadcastRecord) -> bool:
    """Whether the broadcast's last outbox status change is past what the stats rollup has counted: its results
    still lag its counts (the page keeps polling until the next rollup, after the send job's or the scheduler's)."""
    last = session.scalar(
        select(func.max(MessageStatusChange.id))
        .join(Message, Message.id == MessageStatusChange.message_id)
        .where(rows_of(session, row.ident))
    )
    return last is not None and counted_up_to(session, "message_status") < last


@bp.get("/")
@requires(Role.VIEWER)
def index():
    session = get_session()
    rows = list(session.scalars(select(BroadcastRecord).order_by(BroadcastRecord.id.desc()).limit(200)))
    return render_template(
        "admin/broadcasts/list.html",
        broadcasts=[(row, progress(session, row)) for row in rows],
        can_edit=_can_edit(),
        now=utcnow(),
    )


def _page(values: dict[str, Any], errors: dict[str, str] | None = None, status: int = 200) -> Any:
    session = get_session()
    return (
        render_template(
            "admin/broadcasts/new.html",
            values=values,
            errors=errors or {},
            templates=_templates(session),
            segments=list(session.scalars(select(Segment.name).order_by(Segment.name))),
            preview=_preview(session, values),
        ),
        status,
    )


def _preview(session: Session, values: dict[str, Any]) -> Any:
    channel, _, _template = values.get("template", "").partition(":")
    if not channel or not values.get("segment"):
        return None
    return audience(session, channel, values["segment"], utcnow())


@bp.get("/new")
@requires(Role.EDITOR)
def new():
    return _page({"name": "", "template": "", "segment": "", "when": "now", "send_at": ""})


@bp.post("/audience")
@requires(Role.EDITOR)
def audience_preview():
    """The audience count under the form (htmx, as the template or segment changes)."""
    values = {k: request.form.get(k, "") for k in ("template", "segment")}
    return render_template("admin/broadcasts/_audience.html", preview=_preview(get_session(), values))


def _read(session: Session) -> tuple[dict[str, Any], dict[str, str], dt.datetime | None]:
    f = request.form
    values = {k: f.get(k, "").strip() for k in ("name", "template", "segment", "when", "send_at")}
    errors: dict[str, str] = {}
    if len(values["name"]) > 255:
        errors["name"] = "A name is at most 255 characters."
    if values["template"] not in _templates(session):
        errors["template"] = "Choose a template from the list (create one in Templates first)."
    if session.scalar(select(Segment.id).where(Segment.name == values["segment"])) is None:
        errors["segment"] = "Choose a segment from the list (create one in Segments first)."
    send_at = None
    now = utcnow()
    if values["when"] == "later":
        try:
            send_at = dt.datetime.fromisoformat(values["send_at"]).replace(tzinfo=dt.UTC)
        except ValueError:
            errors["send_at"] = "Give the time to send as YYYY-MM-DDTHH:MM (UTC)."
        else:
            if send_at <= now:
                errors["send_at"] = f"That time has passed (it is {now:%Y-%m-%d %H:%M} UTC now); choose a later one."
            elif send_at > now + MAX_AHEAD:
                errors["send_at"] = "Schedule a broadcast at most a year ahead."
    elif values["when"] != "now":
        errors["when"] = "Choose to send now or at a time."
    return values, errors, send_at


@bp.post("/new")
@requires(Role.EDITOR)
def create():
    session = get_session()
    values, errors, send_at = _read(session)
    channel, _, template = values["template"].partition(":")
    result = None
    if not errors:
        ident = secrets.token_hex(6)
        try:
            result = create_broadcast(
                session, current_app.extensions["nudge.plugins"], channel, template, values["segment"], ident, send_at
            )
        except BroadcastError as exc:
            errors["segment"] = str(exc)
    if errors or result is None:
        session.rollback()
        notify("The broadcast was not sent: " + " ".join(errors.values()), "error")
        return _page(values, errors, 422)
    row = BroadcastRecord(
        ident=result.id,
        name=values["name"],
        channel=channel,
        template=template,
        segment=values["segment"],
        send_at=send_at or utcnow(),
        members=result.members,
        created_by=actor(),
    )
    session.add(row)
    session.flush()
    audit(
        session,
        actor(),
        "broadcast.scheduled" if send_at else "broadcast.sent",
        "broadcast",
        result.id,
        members=result.members,
        template=values["template"],
        segment=values["segment"],
    )
    session.commit()
    if send_at is None:
        enqueue_broadcast(result)
        notify(f"Broadcast {result.id} is on its way to {result.members} member(s) of {values['segment']!r}.")
    else:
        notify(
            f"Broadcast {result.id} to {result.members} member(s) of {values['segment']!r} "
            f"is scheduled for {send_at:%Y-%m-%d %H:%M} UTC."
        )
    return redirect(url_for("broadcasting.show", broadcast_id=row.id))


def _broadcast(broadcast_id: int) -> BroadcastRecord:
    row = get_session().get(BroadcastRecord, broadcast_id) if 0 < broadcast_id <= MAX_ID else None
    if row is None:
        abort(404, description=f"There is no broadcast {broadcast_id}.")
    return row


@bp.get("/<int:broadcast_id>")
@requires(Role.VIEWER)
def show(broadcast_id: int):
    session = get_session()
    row = _broadcast(broadcast_id)
    return render_template(
        "admin/broadcasts/show.html",
        broadcast=row,
        progress=progress(session, row, results=True),
        **_listed(session, row),
        now=utcnow(),
        can_edit=_can_edit(),
        results=broadcast_results(session, row.ident),
    )


@bp.post("/<int:broadcast_id>/cancel")
@requires(Role.EDITOR)
def cancel(broadcast_id: int):
    """Withdraw the messages of a broadcast that no sender has taken yet (a scheduled one before its time: all)."""
    session = get_session()
    row = _broadcast(broadcast_id)
    withdrawn = cancel_broadcast(session, row.ident, actor())
    session.commit()
    if withdrawn:
        notify(
            f"Broadcast {row.ident} cancelled: {withdrawn} message(s) not yet sent will not be sent; "
            "those already sent or being sent stay as they are."
        )
    else:
        notify(f"Nothing to cancel: every message of broadcast {row.ident} was already handed to its channel.")
    return redirect(url_for("broadcasting.show", broadcast_id=row.id))


def _listed(session: Session, row: BroadcastRecord) -> dict[str, Any]:
    """The first messages of broadcast *row*, as the page lists them, and their contacts' names as the contact
    list shows them (email, else external id)."""
    messages = list(
        session.scalars(select(Message).where(rows_of(session, row.ident)).order_by(Message.id).limit(LISTED))
    )
    ids = {m.contact_id for m in messages if m.contact_id}
    names = session.execute(select(Contact.id, Contact.email, Contact.external_id).where(Contact.id.in_(ids)))
    contacts = {cid: email or external_id for cid, email, external_id in names if email or external_id}
    return {"messages": messages, "contacts": contacts}


@bp.get("/<int:broadcast_id>/progress")
@requires(Role.VIEWER)
def progress_fragment(broadcast_id: int):
    """The progress bar and counts (htmx polls it while messages are queued), and the listed messages' statuses
    and the results swapped in out of band, so the tables never lag behind the counts."""
    session = get_session()
    row = _broadcast(broadcast_id)
    bar = render_template(
        "admin/broadcasts/_progress.html",
        broadcast=row,
        progress=progress(session, row, results=True),
        now=utcnow(),
        can_edit=_can_edit(),
    )
    return (
        bar
        + render_template("admin/broadcasts/_messages.html", **_listed(session, row), oob=True)
        + render_template("admin/broadcasts/_results.html", results=broadcast_results(session, row.ident), oob=True)
    )


__all__ = ["progress"]

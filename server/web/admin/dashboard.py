"""The dashboard: how much there is, and what needs someone (the oldest waiting send, failing and parked work)."""

from __future__ import annotations

from flask import render_template, request
from sqlalchemy import func, select

from ...db import get_session
from ...engine.health import channel_report, delivery_report, engine_report, problems
from ...models import Contact, Event, Message, MessageStatus, Role, utcnow
from ..access import requires
from ..flash import is_htmx
from ..nav import add, area_url
from ..results.activity import dashboard_activity
from . import bp

add(bp, "Dashboard", "admin.dashboard", order=0)


@bp.get("/")
@requires(Role.VIEWER)
def dashboard():
    db = get_session()
    now = utcnow()
    counts = {
        "contacts": db.scalar(select(func.count(Contact.id))),
        "events": db.scalar(select(func.count(Event.id))),
        "messages": db.scalar(select(func.count(Message.id))),
    }
    failed = db.scalar(select(func.count()).where(Message.status == MessageStatus.FAILED.value))
    channels, delivery, engine = channel_report(db, now), delivery_report(db, now), engine_report(db, now)
    # where each figure can be worked on: the Messages area, when it is installed and this person may open it
    links = {status: area_url("messages.index", status=status) for status in ("failed", "unknown", "retrying")}
    links["parked"] = area_url("messages.index", status="parked")
    # the activity section (server.web.results): its window control swaps only that section
    activity = dashboard_activity(db, request.args, int(now.timestamp()))
    status = 422 if activity["window"].errors else 200
    if is_htmx() and request.headers.get("HX-Target") == "results-body":
        return render_template("admin/results/_activity.html", **activity), status
    recent = db.scalars(select(Message).order_by(Message.id.desc()).limit(20)).all()
    return render_template(
        "admin/dashboard.html",
        counts=counts,
        failed=failed,
        delivery=delivery,
        engine=engine,
        failing=[name for name, info in channels.items() if not info["ok"]],
        links=links,
        problems=problems(channels, delivery, engine),
        recent=recent,
        messages_url=area_url("messages.index"),
        results_url=area_url("results.index"),
        **activity,
    ), status

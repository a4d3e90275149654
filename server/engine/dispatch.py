"""What moves journeys: incoming events, due enrolments, and due trigger timers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from dsl.vocabulary import RESERVED_EVENT_NAMESPACES

from ..consent import current_consent, record_consent
from ..models import Contact, Enrolment, EnrolmentState, Event, Rule, ScheduleTimer, TriggerTimer
from . import bulk, failures, runtime, timers
from .context import EngineContext
from .effects import contact_changed
from .timeutil import iso, to_dt

log = logging.getLogger(__name__)

__all__ = [
    "advance",
    "contact_changed",
    "drain",
    "due_enrolment_ids",
    "fire_schedule_timers",
    "fire_trigger_timers",
    "handle_event",
    "mark_seen",
    "next_due",
]


def index(ctx: EngineContext):
    return ctx.index


def mark_seen(ctx: EngineContext, contact: Contact, event: Event) -> None:
    """Move ``contact.last_seen`` to *event* when it is something the person did, by the engine's clock.

    The contact's own events count (anything sent through the API, a form, a tracked visit, an inbound
    webhook, a timeline event in ``nudge simulate``), and so do a click, an open no machine made and an SMS
    reply. Nudge's own events (contact changes, tags, scores, deliveries, bounces, opt-outs) do not.
    The moment is the event's, never later than the engine's now; ``last_seen`` never moves back.
    """
    at = seen_at(ctx, event)
    if at is not None and (contact.last_seen is None or at > contact.last_seen):
        contact.last_seen = at
        runtime.touch(ctx, contact)


def seen_at(ctx: EngineContext, event: Any) -> datetime | None:
    """When *event* says its contact was last seen (see :func:`mark_seen`); None when it is not the person's doing."""
    if not seen_by(ctx, event):
        return None
    now = to_dt(ctx.now)
    return min(event.occurred_at or now, now)


def seen_by(ctx: EngineContext, event: Any) -> bool:
    """Whether *event* is something its contact did (it moves ``last_seen``, see :func:`mark_seen`)."""
    return event.source != "nudge" and not (event.props or {}).get("machine") and _persons(ctx, event.name)


def _persons(ctx: EngineContext, name: str) -> bool:
    """Whether an event called *name* can be something the person did (not one of Nudge's or a plugin's own)."""
    plugins = ctx.plugins
    own = RESERVED_EVENT_NAMESPACES | (plugins.event_namespaces() if plugins is not None else frozenset())
    return name.split(".")[0] not in own or (plugins is not None and name in plugins.activity_events())


def handle_event(ctx: EngineContext, event: Event) -> None:
    """Apply one stored event: last seen, consent, goals, ``wait for``, inactivity timers, then new enrolments."""
    contact = ctx.session.get(Contact, event.contact_id)
    if contact is None:
        return
    mark_seen(ctx, contact, event)
    idx = index(ctx)
    channel = ctx.plugins.opt_out_events().get(event.name) if ctx.plugins is not None else None
    # dated when the contact opted out, to the microsecond like every other ledger row: stamped with the
    # engine's whole-second clock it sorted before an opt-in earlier in the same second, and lost to it;
    # whoever raised the event may have recorded the opt-out already (one-click unsubscribe does)
    if channel and current_consent(ctx.session, contact.id, channel) != "revoked":
        record_consent(
            ctx.session,
            contact.id,
            channel,
            False,
            source=f"event:{event.name}",
            at=event.occurred_at or to_dt(ctx.now),
        )
    for enr in runtime.active_enrolments(ctx, contact.id, held=True):
        # the goal of the version the contact entered with; it also ends a journey its paused rule holds
        goal = ctx.plan(enr.version_id).get("goal")
        if (
            goal
            and goal["event"] == event.name
            and (
                goal.get("where") is None
                or runtime.evaluate(
                    goal["where"], runtime.condition_scope(ctx, contact, enr.rule_id, enr.id, event.props)
                )
            )
        ):
            runtime.finish(ctx, enr, "goal")
        elif enr.state == EnrolmentState.ACTIVE and enr.wait_event == event.name:
            runtime.resume_on_event(ctx, enr, contact, event)
    timers.on_event(ctx, contact, event, idx.timed)
    if event.source != "nudge" and event.name in ("contact.created", "contact.updated"):
        # a contact created or changed outside the engine (API, import, forms): re-plan its date
        # and schedule triggers; the engine's own changes re-plan at once, where they happen
        fields = (event.props or {}).get("fields")
        contact_changed(ctx, contact, None if event.name == "contact.created" or not fields else set(fields))
    event_index = idx.by_event.get(event.name)
    if event_index is None:
        return
    for entry in event_index.candidates(event.props or {}, contact):
        plan = ctx.plan(entry.version_id)
        cond = plan.get("condition")
        if cond is not None and not runtime.evaluate(
            cond, runtime.condition_scope(ctx, contact, entry.rule_id, event_props=event.props)
        ):
            continue
        rule = ctx.session.get_one(Rule, entry.rule_id)
        runtime.enrol(ctx, rule, contact, event.id, f"{event.name} at {iso(ctx.now)}")


def drain(ctx: EngineContext) -> None:
    """Handle the events the engine raised itself (tag.added, score.changed …) until none are left."""
    guard = 0
    while ctx.pending_events:
        guard += 1
        if guard > 10_000:
            raise RuntimeError("rules keep raising events for each other without end (a loop between rules?)")
        event = ctx.session.get_one(Event, ctx.pending_events.popleft())
        handle_event(ctx, event)


# -- due work ----------------------------------------------------------------------------------
def due_enrolment_ids(ctx: EngineContext, limit: int) -> list[int]:
    return list(
        ctx.session.scalars(
            select(Enrolment.id)
            .where(Enrolment.state == EnrolmentState.ACTIVE, Enrolment.due <= ctx.now)
            .order_by(Enrolment.due, Enrolment.id)
            .limit(limit)
        )
    )


def advance(ctx: EngineContext, enrolment_ids: list[int]) -> int:
    """Resume each still-due enrolment of *enrolment_ids*; return how many ran."""
    ran = 0
    for enr_id in enrolment_ids:
        enr = ctx.session.get(Enrolment, enr_id)
        if enr is None or enr.state != EnrolmentState.ACTIVE or enr.due is None or enr.due > ctx.now:
            continue
        runtime.resume_due(ctx, enr)
        ran += 1
    drain(ctx)
    return ran


def fire_trigger_timers(ctx: EngineContext, limit: int = 1000) -> int:
    idx = index(ctx)
    triggers = {rule_id: trigger for rule_id, _v, trigger in idx.timed}
    rows = list(
        ctx.session.scalars(
            select(TriggerTimer)
            .where(TriggerTimer.due <= ctx.now)
            .order_by(TriggerTimer.due, TriggerTimer.id)
            .limit(limit)
        )
    )

    def fire(timer: TriggerTimer) -> None:
        trigger = triggers.get(timer.rule_id)
        contact = ctx.session.get(Contact, timer.contact_id)
        if trigger is None or contact is None:
            ctx.session.delete(timer)
            return
        _enter_timed(ctx, timer.rule_id, contact, trigger)
        following = timers.next_fire(ctx, trigger, contact, ctx.now + 1) if trigger["kind"] == "anniversary" else None
        if following is None:
            ctx.session.delete(timer)
        else:
            timer.due = following

    _fire_each(ctx, rows, fire)
    drain(ctx)
    return len(rows)


def fire_schedule_timers(ctx: EngineContext, limit: int = 100) -> int:
    idx = index(ctx)
    triggers = {rule_id: trigger for rule_id, _v, trigger in idx.timed}
    rows = list(
        ctx.session.scalars(
            select(ScheduleTimer)
            .where(ScheduleTimer.due <= ctx.now)
            .order_by(ScheduleTimer.due, ScheduleTimer.id)
            .limit(limit)
        )
    )

    def fire(timer: ScheduleTimer) -> None:
        trigger = triggers.get(timer.rule_id)
        if trigger is None:
            ctx.session.delete(timer)
            return
        rule = ctx.session.get(Rule, timer.rule_id)
        version_id = rule.active_version_id if rule is not None else None
        plan = ctx.plan(version_id) if version_id else None
        if version_id and plan is not None and bulk.can_enrol_set_based(plan):
            bulk.enrol_set_based(
                ctx,
                timer.rule_id,
                version_id,
                plan,
                timers.schedule_contact_ids(ctx, timer.timezone),
                f"schedule at {iso(ctx.now)}",
            )
        else:
            for contact in timers.schedule_contacts(ctx, timer.timezone):
                _enter_timed(ctx, timer.rule_id, contact, trigger)
        timer.due = timers.next_schedule(ctx, trigger, timer.timezone, ctx.now + 1)

    _fire_each(ctx, rows, fire)
    drain(ctx)
    return len(rows)


def _fire_each(ctx: EngineContext, rows: list, fire: Callable[[Any], None]) -> None:
    """Fire each timer in a savepoint: one that fails stays due (later, after a back-off), the others go on.

    A journey's own failure is kept on its enrolment (see :func:`_enter_timed`); what fails here is the timer
    itself. The simulation fires without savepoints: its inline delivery commits as it goes.
    """
    for timer in rows:
        if ctx.deliver_now is not None:
            fire(timer)
            continue
        drain(ctx)
        ctx.write_buffered()
        model, timer_id, mark = type(timer), timer.id, ctx.checkpoint()
        try:
            with ctx.session.begin_nested():
                fire(timer)
                drain(ctx)
                ctx.write_buffered()
        except Exception as exc:  # not fired: due again after a back-off
            ctx.forget_since(mark)
            retry = ctx.now + max(1, round(failures.backoff(ctx.config, 1)))
            ctx.session.execute(update(model).where(model.id == timer_id).values(due=retry))
            log.warning(
                "%s %s failed: %s; it fires again at %s",
                model.__tablename__,
                timer_id,
                failures.describe(exc),
                iso(retry),
            )


def _enter_timed(ctx: EngineContext, rule_id: int, contact: Contact, trigger: dict) -> None:
    """Enter *contact* into a date or schedule rule. Nothing else would retry the entry, so first steps that
    fail are the journey's own failure: it has entered, and its step is retried with back-off, then parked."""
    rule = ctx.session.get(Rule, rule_id)
    if rule is None or rule.active_version_id is None:
        return
    cond = ctx.plan(rule.active_version_id).get("condition")
    if cond is not None and not runtime.evaluate(cond, runtime.condition_scope(ctx, contact, rule_id)):
        return
    reason = f"{trigger['kind']} trigger at {iso(ctx.now)}"
    if ctx.deliver_now is not None:  # the simulation: its inline delivery commits as it goes, no savepoints
        runtime.enrol(ctx, rule, contact, None, reason)
        return
    enr = runtime.enter(ctx, rule, contact, None, reason)
    if enr is None:
        return
    drain(ctx)  # what earlier steps raised is not this journey's to lose
    ctx.write_buffered()
    enrolment_id, mark = enr.id, ctx.checkpoint()
    try:
        with ctx.session.begin_nested():
            runtime.run(ctx, enr, contact)
            drain(ctx)
            ctx.write_buffered()
    except Exception as exc:
        ctx.forget_since(mark)
        failures.enrolment_failed(ctx.session, ctx.config, enrolment_id, exc, ctx.now)


def next_due(ctx: EngineContext) -> int | None:
    """The earliest instant at which anything is due (simulation jumps the clock there)."""
    from sqlalchemy import func

    candidates = [
        ctx.session.scalar(select(func.min(Enrolment.due)).where(Enrolment.state == EnrolmentState.ACTIVE)),
        ctx.session.scalar(select(func.min(TriggerTimer.due))),
        ctx.session.scalar(select(func.min(ScheduleTimer.due))),
    ]
    found = [c for c in candidates if c is not None]
    return min(found) if found else None

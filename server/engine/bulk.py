"""Set-based execution: many contacts at the same step of the same rule version advance in a few SQL statements.

The per-contact interpreter (:mod:`runtime`) defines the semantics; this module only takes
over runs of steps whose effect does not depend on the contact — sends without quiet hours,
tags nobody listens to, waits, the end — and does for a whole group exactly what the
interpreter would do for each member. Anything else falls back to the interpreter.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, insert, literal, select, update
from sqlalchemy.orm import Session

from ..models import ContactTag, Enrolment, EnrolmentState, Event, JourneyLog, Message
from ..models.base import JsonType
from .context import EngineContext
from .quiet import window
from .runtime import channel_class
from .timeutil import to_dt

SIMPLE = {"send", "tag", "score", "wait", "exit"}


def segment(plan: dict[str, Any], pc: int, ctx: EngineContext) -> list[dict[str, Any]] | None:
    """The steps from *pc* to the next wait or the end, if all can run set-based; else None."""
    steps = plan["steps"]
    ops: list[dict[str, Any]] = []
    while pc < len(steps):
        op = steps[pc]
        kind = op["op"]
        if kind not in SIMPLE:
            return None
        if kind == "send" and window(plan.get("quiet_hours"), channel_class(ctx, op["channel"])) is not None:
            return None  # quiet hours depend on each contact's time zone
        if kind == "tag" and ctx.listens_to("tag.added"):
            return None  # a rule reacts to it: the interpreter raises and handles the event
        if kind == "score" and ctx.listens_to("score.changed"):
            return None
        ops.append(op)
        if kind in ("wait", "exit"):
            return ops
        pc += 1
    return ops + [{"op": "exit"}]


def advance_group(ctx: EngineContext, version_id: int, pc: int, ids: list[int], ops: list[dict[str, Any]],
                  rule_id: int, rule_name: str) -> list[int]:
    """Run *ops* for the enrolments *ids* (all at *pc* of *version_id*); return new outbox row ids."""
    session: Session = ctx.session
    now = to_dt(ctx.now)
    members = (Enrolment.id.in_(ids)) & (Enrolment.version_id == version_id) & (Enrolment.pc == pc) & \
              (Enrolment.state == EnrolmentState.ACTIVE)
    message_ids: list[int] = []
    for op in ops[:-1]:
        if op["op"] == "send":
            key = literal("enr:", String).concat(cast(Enrolment.id, String)).concat(literal(f":{op['id']}", String))
            data = {"rule": rule_id, "rule_name": rule_name, "marketing": True, "step": op["id"]}
            rows = select(key, Enrolment.contact_id, literal(op["channel"], String), literal(op["name"], String),
                          literal("pending", String), literal(now, Message.__table__.c.next_attempt_at.type),
                          literal(now, Message.__table__.c.created_at.type), literal(data, JsonType),
                          literal(0)).where(members)
            stmt = insert(Message.__table__).from_select(
                ["key", "contact_id", "channel", "template", "status", "next_attempt_at", "created_at", "data",
                 "attempts"], rows).returning(Message.__table__.c.id)
            message_ids += list(session.connection().execute(stmt).scalars())
        elif op["op"] == "tag":
            new = select(Enrolment.contact_id, literal(op["tag"], String),
                         literal(now, ContactTag.__table__.c.created_at.type)).where(
                members, ~select(ContactTag.contact_id).where(ContactTag.contact_id == Enrolment.contact_id,
                                                              ContactTag.tag == op["tag"]).exists())
            events = select(Enrolment.contact_id, literal("tag.added", String), literal({"tag": op["tag"]}, JsonType),
                            literal("nudge", String), literal(now, Event.__table__.c.occurred_at.type),
                            literal(now, Event.__table__.c.received_at.type),
                            literal(now, Event.__table__.c.processed_at.type)).where(
                members, ~select(ContactTag.contact_id).where(ContactTag.contact_id == Enrolment.contact_id,
                                                              ContactTag.tag == op["tag"]).exists())
            session.connection().execute(insert(Event.__table__).from_select(
                ["contact_id", "name", "props", "source", "occurred_at", "received_at", "processed_at"], events))
            session.connection().execute(insert(ContactTag.__table__).from_select(
                ["contact_id", "tag", "created_at"], new))
            session.connection().execute(insert(JourneyLog.__table__).from_select(
                ["enrolment_id", "contact_id", "rule_id", "at", "action", "data"],
                select(Enrolment.id, Enrolment.contact_id, Enrolment.rule_id, literal(ctx.now),
                       literal("tag", String), literal({"tag": op["tag"]}, JsonType)).where(members)))
        elif op["op"] == "score":
            _score(ctx, members, op["delta"], now)
    last = ops[-1]
    table = Enrolment.__table__
    if last["op"] == "wait":
        from .runtime import _duration_text

        due = ctx.now + int(last["seconds"])
        values = {"pc": pc + len(ops), "due": due, "wait_event": None}
        session.connection().execute(insert(JourneyLog.__table__).from_select(
            ["enrolment_id", "contact_id", "rule_id", "at", "action", "data"],
            select(Enrolment.id, Enrolment.contact_id, Enrolment.rule_id, literal(ctx.now), literal("wait", String),
                   literal({"until": due, "why": f"wait {_duration_text(int(last['seconds']))}"}, JsonType)
                   ).where(members)))
    else:
        session.connection().execute(insert(JourneyLog.__table__).from_select(
            ["enrolment_id", "contact_id", "rule_id", "at", "action", "data"],
            select(Enrolment.id, Enrolment.contact_id, Enrolment.rule_id, literal(ctx.now),
                   literal("exit", String), literal({"reason": "completed"}, JsonType)).where(members)))
        values = {"pc": pc + len(ops) - 1, "state": EnrolmentState.DONE.value, "due": None, "finished": ctx.now,
                  "exit_reason": "completed", "wait_event": None}
    session.connection().execute(update(table).where(
        table.c.id.in_(ids), table.c.version_id == version_id, table.c.pc == pc,
        table.c.state == EnrolmentState.ACTIVE.value).values(**values))
    return message_ids


def _json_object(ctx: EngineContext, *pairs: Any) -> Any:
    """A JSON object built in SQL from (key, expression) pairs, on SQLite and PostgreSQL."""
    from sqlalchemy import func
    from sqlalchemy.dialects.postgresql import JSONB

    args = [item for pair in pairs for item in pair]
    if ctx.session.get_bind().dialect.name == "postgresql":
        return cast(func.json_build_object(*args), JSONB)
    return func.json(func.json_object(*args))


def _score(ctx: EngineContext, members: Any, delta: int | float, now: Any) -> None:
    """``score +N`` for a group: the trace line and ``score.changed`` (old, new) per contact, then the update."""
    from ..models import Contact

    conn = ctx.session.connection()
    joined = select(Enrolment.id, Enrolment.contact_id, Enrolment.rule_id, Contact.score).join(
        Contact, Contact.id == Enrolment.contact_id).where(members).subquery()
    conn.execute(insert(JourneyLog.__table__).from_select(
        ["enrolment_id", "contact_id", "rule_id", "at", "action", "data"],
        select(joined.c.id, joined.c.contact_id, joined.c.rule_id, literal(ctx.now), literal("score", String),
               _json_object(ctx, (literal("delta", String), literal(delta)),
                            (literal("score", String), joined.c.score + delta)))))
    conn.execute(insert(Event.__table__).from_select(
        ["contact_id", "name", "props", "source", "occurred_at", "received_at", "processed_at"],
        select(joined.c.contact_id, literal("score.changed", String),
               _json_object(ctx, (literal("old", String), joined.c.score),
                            (literal("new", String), joined.c.score + delta)),
               literal("nudge", String), literal(now, Event.__table__.c.occurred_at.type),
               literal(now, Event.__table__.c.received_at.type), literal(now, Event.__table__.c.processed_at.type))))
    table = Contact.__table__
    conn.execute(update(table).where(table.c.id.in_(select(Enrolment.contact_id).where(members)))
                 .values(score=table.c.score + delta, updated_at=now))  # the engine's clock, not the column default


def can_enrol_set_based(plan: dict[str, Any]) -> bool:
    """A rule whose journey starts with a wait and whose entry needs no per-contact condition."""
    steps = plan["steps"]
    kind = (plan.get("entry") or {}).get("kind", "default")
    return (bool(steps) and steps[0]["op"] == "wait" and plan.get("condition") is None
            and kind in ("default", "once", "always"))


def enrol_set_based(ctx: EngineContext, rule_id: int, version_id: int, plan: dict[str, Any], contacts: Any,
                    reason: str) -> int:
    """Enrol every contact selected by *contacts* (a SELECT of contact ids) in one INSERT … SELECT.

    Applies the entry policy in SQL and runs the first step (a wait) for all of them.
    :return: how many contacts entered.
    """
    import logging

    logging.getLogger(__name__).info("rule %s: %s", rule_id, reason)
    from ..models import Contact

    kind = (plan.get("entry") or {}).get("kind", "default")
    due = ctx.now + int(plan["steps"][0]["seconds"])
    rows = select(Contact.id, literal(rule_id), literal(version_id), literal(1), literal(EnrolmentState.ACTIVE.value),
                  literal(due), literal(ctx.now)).where(Contact.id.in_(contacts))
    if kind != "always":
        others = select(Enrolment.id).where(Enrolment.contact_id == Contact.id, Enrolment.rule_id == rule_id)
        if kind == "default":
            others = others.where(Enrolment.state == EnrolmentState.ACTIVE)
        rows = rows.where(~others.exists())
    conn = ctx.session.connection()
    count = conn.execute(insert(Enrolment.__table__).from_select(
        ["contact_id", "rule_id", "version_id", "pc", "state", "due", "entered"], rows)).rowcount
    conn.execute(insert(JourneyLog.__table__).from_select(
        ["enrolment_id", "contact_id", "rule_id", "at", "action", "data"],
        # no per-row reason: every row of this INSERT entered for the same one, said once in the log;
        # the first wait rides on the same row (one trace row per waiting contact keeps a wait small)
        select(Enrolment.id, Enrolment.contact_id, Enrolment.rule_id, literal(ctx.now), literal("enter", String),
               literal({"until": due}, JsonType)).where(Enrolment.rule_id == rule_id, Enrolment.contact_id.in_(contacts),
                                                             Enrolment.entered == ctx.now, Enrolment.pc == 1,
                                                             Enrolment.due == due)))
    return count

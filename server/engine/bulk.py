"""Set-based execution: many contacts at the same step of the same rule version advance in a few SQL statements.

The per-contact interpreter (:mod:`runtime`) defines the semantics; its table of step kinds (``runtime.STEPS``)
names, for each kind, the function here that does for a whole group exactly what the interpreter does for each
member, or marks the kind interpreter-only. The interpreter decides which runs of steps a group may take here
(sends without quiet hours, tags and scores nobody listens to, waits, the end); anything else falls back to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, insert, literal, select, update

from dsl.plan import ExitOp, RulePlan, ScoreOp, SendOp, TagOp, WaitOp

from ..models import Contact, ContactTag, Enrolment, EnrolmentState, Event, JourneyLog, Message
from ..models.base import JsonType
from .context import EngineContext
from .effects import duration_text, send_data
from .keys import ENROLMENT, message_key


def among(ctx: EngineContext, column: Any, ids: list[int]) -> Any:
    """``column IN ids`` with the ids as one bound value (a PostgreSQL array, a JSON list in SQLite): a statement
    over a thousand ids is neither compiled nor parsed with a thousand parameters, and its compiled form is cached."""
    return ids_in(ctx.session, column, ids)


def ids_in(session: Any, column: Any, ids: list[int]) -> Any:
    """:func:`among` for a session outside the engine's context (the stats rollup)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import Integer, any_
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(literal(list(ids), ARRAY(Integer)))
    from sqlalchemy import func, literal_column

    return column.in_(select(literal_column("value")).select_from(func.json_each(literal(json.dumps(list(ids))))))


@dataclass
class Group:
    """Enrolments at the same step of one rule version, advancing together.

    :param at: the step being run (its index in the plan), moved on by the caller.
    """

    ctx: EngineContext
    version_id: int
    pc: int
    ids: list[int]
    rule_id: int
    rule_name: str
    now: datetime
    at: int = 0
    message_ids: list[int] = field(default_factory=list)

    @property
    def members(self) -> Any:
        """The SQL condition selecting the group's enrolments, still where the group started."""
        return (
            among(self.ctx, Enrolment.id, self.ids)
            & (Enrolment.version_id == self.version_id)
            & (Enrolment.pc == self.pc)
            & (Enrolment.state == EnrolmentState.ACTIVE)
        )

    def trace(self, action: str, data: Any) -> None:
        """One trace line per member: *data* is a dict, or a SQL expression per row."""
        trace(self.ctx, self.members, action, data)

    def move_on(self, **values: Any) -> None:
        """Move every member on (the last step of a run): the enrolments leave the group's step."""
        table = Enrolment.__table__
        self.ctx.session.connection().execute(
            update(table)
            .where(
                among(self.ctx, table.c.id, self.ids),
                table.c.version_id == self.version_id,
                table.c.pc == self.pc,
                table.c.state == EnrolmentState.ACTIVE.value,
            )
            .values(**values)
        )


def trace(ctx: EngineContext, enrolments: Any, action: str, data: Any) -> None:
    """One trace line for each enrolment *enrolments* (a SQL condition) selects: *data* is a dict, or a SQL
    expression per row."""
    ctx.session.connection().execute(
        insert(JourneyLog.__table__).from_select(
            ["enrolment_id", "contact_id", "rule_id", "at", "action", "data"],
            select(
                Enrolment.id,
                Enrolment.contact_id,
                Enrolment.rule_id,
                literal(ctx.now),
                literal(action, String),
                literal(data, JsonType) if isinstance(data, dict) else data,
            ).where(enrolments),
        )
    )


def send(group: Group, op: SendOp) -> None:
    """``send``: one outbox row per member, keyed as the interpreter keys it."""
    table = Message.__table__
    rows = select(
        message_key(ENROLMENT, Enrolment.id, op["id"]),
        Enrolment.contact_id,
        literal(op["channel"], String),
        literal(op["name"], String),
        literal("pending", String),
        literal(group.now, table.c.next_attempt_at.type),
        literal(group.ctx.moment, table.c.created_at.type),  # to the microsecond on the live clock
        literal(send_data(group.rule_id, group.rule_name, op["id"]), JsonType),
        literal(0),
    ).where(group.members)
    stmt = (
        insert(table)
        .from_select(
            ["key", "contact_id", "channel", "template", "status", "next_attempt_at", "created_at", "data", "attempts"],
            rows,
        )
        .returning(table.c.id)
    )
    group.message_ids += list(group.ctx.session.connection().execute(stmt).scalars())


def tag(group: Group, op: TagOp) -> None:
    """``tag``: the tag for the members without it, then its ``tag.added`` for each contact it was new to (as the
    interpreter does, in that order), a trace line for all.

    The tag goes in with ``ON CONFLICT DO NOTHING``, which says which contacts it was new to: no anti-join against
    the tags (whose plan, on a PostgreSQL table not analysed since a burst, was a nested loop over every tagged
    contact for each member)."""
    conn, now = group.ctx.session.connection(), group.now
    table = ContactTag.__table__
    rows = select(Enrolment.contact_id, literal(op["tag"], String), literal(now, table.c.created_at.type)).where(
        group.members
    )
    add = _insert_skipping_duplicates(group.ctx, table).from_select(["contact_id", "tag", "created_at"], rows)
    tagged = list(conn.execute(add.returning(table.c.contact_id)).scalars())
    if tagged:
        events = select(
            Contact.id,
            literal("tag.added", String),
            literal({"tag": op["tag"]}, JsonType),
            literal("nudge", String),
            literal(now, Event.__table__.c.occurred_at.type),
            literal(now, Event.__table__.c.received_at.type),
            literal(now, Event.__table__.c.processed_at.type),
        ).where(among(group.ctx, Contact.id, tagged))
        conn.execute(
            insert(Event.__table__).from_select(
                ["contact_id", "name", "props", "source", "occurred_at", "received_at", "processed_at"], events
            )
        )
    group.trace("tag", {"tag": op["tag"]})


def _insert_skipping_duplicates(ctx: EngineContext, table: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` into *table*, on SQLite and PostgreSQL."""
    if ctx.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def score(group: Group, op: ScoreOp) -> None:
    """``score +N``: the trace line and ``score.changed`` (old, new) per contact, then the update."""
    _score(group.ctx, group.members, op["delta"], group.now)


def wait(group: Group, op: WaitOp) -> None:
    """``wait``: the members park until the wait is over, past it."""
    due = group.ctx.now + int(op["seconds"])
    group.trace("wait", {"until": due, "why": f"wait {duration_text(int(op['seconds']))}", "pc": group.at})
    group.move_on(pc=group.at + 1, due=due, wait_event=None, attempts=None, error=None)


def exit(group: Group, op: ExitOp) -> None:
    """The end (an ``exit`` step, or past the last step): the members' journeys are completed."""
    group.trace("exit", {"reason": "completed", "pc": group.at})
    group.move_on(
        pc=group.at,
        state=EnrolmentState.DONE.value,
        due=None,
        finished=group.ctx.now,
        exit_reason="completed",
        wait_event=None,
        attempts=None,
        error=None,
    )


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
    conn = ctx.session.connection()
    joined = (
        select(Enrolment.id, Enrolment.contact_id, Enrolment.rule_id, Contact.score)
        .join(Contact, Contact.id == Enrolment.contact_id)
        .where(members)
        .subquery()
    )
    conn.execute(
        insert(JourneyLog.__table__).from_select(
            ["enrolment_id", "contact_id", "rule_id", "at", "action", "data"],
            select(
                joined.c.id,
                joined.c.contact_id,
                joined.c.rule_id,
                literal(ctx.now),
                literal("score", String),
                _json_object(
                    ctx, (literal("delta", String), literal(delta)), (literal("score", String), joined.c.score + delta)
                ),
            ),
        )
    )
    conn.execute(
        insert(Event.__table__).from_select(
            ["contact_id", "name", "props", "source", "occurred_at", "received_at", "processed_at"],
            select(
                joined.c.contact_id,
                literal("score.changed", String),
                _json_object(
                    ctx, (literal("old", String), joined.c.score), (literal("new", String), joined.c.score + delta)
                ),
                literal("nudge", String),
                literal(now, Event.__table__.c.occurred_at.type),
                literal(now, Event.__table__.c.received_at.type),
                literal(now, Event.__table__.c.processed_at.type),
            ),
        )
    )
    table = Contact.__table__
    conn.execute(
        update(table)
        .where(table.c.id.in_(select(Enrolment.contact_id).where(members)))
        .values(score=table.c.score + delta, updated_at=now)
    )  # the engine's clock, not the column default


def can_enrol_set_based(plan: RulePlan) -> bool:
    """A rule whose journey starts with a wait and whose entry needs no per-contact condition."""
    steps = plan["steps"]
    return (
        bool(steps)
        and steps[0]["op"] == "wait"
        and plan["condition"] is None
        and plan["entry"]["kind"] in ("default", "once", "always")
    )


def enrol_set_based(
    ctx: EngineContext, rule_id: int, version_id: int, plan: RulePlan, contacts: Any, reason: str
) -> int:
    """Enrol every contact selected by *contacts* (a SELECT of contact ids) in one INSERT … SELECT.

    Applies the entry policy in SQL and runs the first step (a wait) for all of them.
    :return: how many contacts entered.
    """
    import logging

    logging.getLogger(__name__).info("rule %s: %s", rule_id, reason)
    from ..models import Contact

    kind = plan["entry"]["kind"]
    first = plan["steps"][0]
    if first["op"] != "wait":
        raise ValueError(f"rule {rule_id} does not start with a wait: it cannot enrol set-based")
    due = ctx.now + first["seconds"]
    rows = select(
        Contact.id,
        literal(rule_id),
        literal(version_id),
        literal(1),
        literal(EnrolmentState.ACTIVE.value),
        literal(due),
        literal(ctx.now),
    ).where(Contact.id.in_(contacts))
    if kind != "always":
        others = select(Enrolment.id).where(Enrolment.contact_id == Contact.id, Enrolment.rule_id == rule_id)
        if kind == "default":
            others = others.where(Enrolment.state == EnrolmentState.ACTIVE)
        rows = rows.where(~others.exists())
    conn = ctx.session.connection()
    count = conn.execute(
        insert(Enrolment.__table__).from_select(
            ["contact_id", "rule_id", "version_id", "pc", "state", "due", "entered"], rows
        )
    ).rowcount
    # no per-row reason: every row of this INSERT entered for the same one, said once in the log;
    # the first wait rides on the same row (one trace row per waiting contact keeps a wait small)
    trace(
        ctx,
        (Enrolment.rule_id == rule_id)
        & Enrolment.contact_id.in_(contacts)
        & (Enrolment.entered == ctx.now)
        & (Enrolment.pc == 1)
        & (Enrolment.due == due),
        "enter",
        {"until": due, "pc": 0},
    )
    return count

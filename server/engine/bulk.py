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

from sqlalchemy import String, case, cast, insert, literal, select, union_all, update

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
    #: the run's trace lines not written yet: (action, data)
    lines: list[tuple[str, Any]] = field(default_factory=list)
    #: the run's events not written yet: ("tag.added", (tag, contact ids)) or ("score.changed", _Score)
    events: list[tuple[str, Any]] = field(default_factory=list)
    #: the run's score steps not applied yet
    deltas: list[int | float] = field(default_factory=list)
    #: (contact_id, at) rows (a subquery, one a contact) of moments the contacts were last seen that are not
    #: written yet: the score's update moves ``last_seen`` too, where it moves forward, in the same rewrite of the
    #: contact (see :meth:`server.engine.setwise._Batch.moments`); None: the score alone
    seen: Any = None
    #: what the members were inserted with, where their run ends (:func:`server.engine.setwise._enter`): moving
    #: them on to exactly these values has nothing to write (their step, ``pc``, is then where the run ends)
    placed: dict[str, Any] | None = None

    @property
    def members(self) -> Any:
        """The SQL condition selecting the group's enrolments, still where the group started."""
        return (
            among(self.ctx, Enrolment.id, self.ids)
            & (Enrolment.version_id == self.version_id)
            & (Enrolment.pc == self.pc)
            & (Enrolment.state == EnrolmentState.ACTIVE)
        )

    def trace(self, action: str, data: dict[str, Any]) -> None:
        """One trace line per member, written with the run's other lines (:meth:`flush`)."""
        self.lines.append((action, data))

    def flush(self) -> None:
        """Write what the steps so far left to write together: their trace lines in one statement (each member's
        in step order, as the interpreter writes them), their ``tag.added`` and ``score.changed`` events in another,
        then the members' score moved by the run's score steps (the lines and events read the score before)."""
        lines, events, deltas = self.lines, self.events, self.deltas
        self.lines, self.events, self.deltas = [], [], []
        if not (lines or events or deltas):
            return
        ctx, conn = self.ctx, self.ctx.session.connection()
        scored = any(isinstance(data, _Score) for _a, data in lines) or any(e[0] == "score.changed" for e in events)
        members = select(Enrolment.id, Enrolment.contact_id, Enrolment.rule_id)
        if scored:  # NULL where the contact is gone (a score is never NULL): no score line nor event for it
            members = members.add_columns(Contact.score).outerjoin(Contact, Contact.id == Enrolment.contact_id)
        if lines:
            m = _shared(members.where(self.members), "members", len(lines))
            parts = []
            for order, (action, data) in enumerate(lines):
                part = select(m.c.id.label("enrolment_id"), m.c.contact_id, m.c.rule_id)
                if isinstance(data, _Score):
                    part = part.add_columns(data.json(ctx, m.c.score).label("data")).where(m.c.score.is_not(None))
                else:
                    part = part.add_columns(_typed(ctx, literal(data, JsonType)).label("data"))
                named = _typed(ctx, literal(action, String)).label("action")
                parts.append(part.add_columns(named, literal(order).label("ord")))
            rows = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
            conn.execute(
                insert(JourneyLog.__table__).from_select(
                    ["enrolment_id", "contact_id", "rule_id", "at", "action", "data"],
                    select(
                        rows.c.enrolment_id,
                        rows.c.contact_id,
                        rows.c.rule_id,
                        literal(ctx.now),
                        rows.c.action,
                        rows.c.data,
                    ).order_by(rows.c.enrolment_id, rows.c.ord),
                )
            )
        if events:
            self._raise(events, members)
        if deltas:
            self._score(deltas)

    def _score(self, deltas: list[int | float]) -> None:
        """Add the run's score steps to the members' contacts, moving their ``last_seen`` to :attr:`seen` in the same
        rewrite where that is later (each update of a contact writes a new row and, on PostgreSQL, an entry in each
        of its indexes: one rewrite, not two)."""
        table = Contact.__table__
        moved: Any = table.c.score
        for delta in deltas:  # one addition per step, in order, as the steps' own updates did
            moved = moved + delta
        whose = select(Enrolment.contact_id).where(self.members)
        stmt = update(table).values(score=moved, updated_at=self.now)  # the engine's clock, not the column default
        if self.seen is None:
            self.ctx.session.connection().execute(stmt.where(table.c.id.in_(whose)))
            return
        members = whose.distinct().subquery()
        joined = (
            select(members.c.contact_id, self.seen.c.at)
            .select_from(members)
            .outerjoin(self.seen, self.seen.c.contact_id == members.c.contact_id)
            .subquery()
        )
        later = joined.c.at.is_not(None) & (table.c.last_seen.is_(None) | (table.c.last_seen < joined.c.at))
        self.ctx.session.connection().execute(
            stmt.where(table.c.id == joined.c.contact_id).values(
                last_seen=case((later, joined.c.at), else_=table.c.last_seen)
            )
        )

    def _raise(self, events: list[tuple[str, Any]], members: Any) -> None:
        """The run's ``tag.added`` (for the contacts each tag was new to) and ``score.changed`` events, in one
        statement, each contact's in step order."""
        ctx, table = self.ctx, Event.__table__
        m = _shared(members.where(self.members), "members", sum(name == "score.changed" for name, _s in events))
        parts = []
        for order, (name, spec) in enumerate(events):
            if name == "tag.added":
                tag, tagged = spec
                part = select(
                    Contact.id.label("contact_id"), _typed(ctx, literal({"tag": tag}, JsonType)).label("props")
                ).where(among(ctx, Contact.id, tagged))
            else:
                part = select(m.c.contact_id, spec.changed(ctx, m.c.score).label("props")).where(m.c.score.is_not(None))
            named = _typed(ctx, literal(name, String)).label("name")
            parts.append(part.add_columns(named, literal(order).label("ord")))
        rows = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
        now = [literal(self.now, table.c[column].type) for column in ("occurred_at", "received_at", "processed_at")]
        ctx.session.connection().execute(
            insert(table).from_select(
                ["contact_id", "name", "props", "source", "occurred_at", "received_at", "processed_at"],
                select(rows.c.contact_id, rows.c.name, rows.c.props, literal("nudge", String), *now).order_by(
                    rows.c.contact_id, rows.c.ord
                ),
            )
        )

    def move_on(self, **values: Any) -> None:
        """Move every member on (the last step of a run): the enrolments leave the group's step."""
        self.flush()
        if values == self.placed:
            return  # entered where the run ends: no second version of each new row (and its index entries)
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


def trace(ctx: EngineContext, enrolments: Any, action: str, data: dict[str, Any]) -> None:
    """One trace line, with *data*, for each enrolment *enrolments* (a SQL condition) selects."""
    ctx.session.connection().execute(
        insert(JourneyLog.__table__).from_select(
            ["enrolment_id", "contact_id", "rule_id", "at", "action", "data"],
            select(
                Enrolment.id,
                Enrolment.contact_id,
                Enrolment.rule_id,
                literal(ctx.now),
                literal(action, String),
                literal(data, JsonType),
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
    group.message_ids += group.ctx.session.connection().execute(stmt).scalars().all()  # one fetchall


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
    tagged = conn.execute(add.returning(table.c.contact_id)).scalars().all()
    if tagged:
        group.events.append(("tag.added", (op["tag"], tagged)))
    group.trace("tag", {"tag": op["tag"]})


def _insert_skipping_duplicates(ctx: EngineContext, table: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` into *table*, on SQLite and PostgreSQL."""
    if ctx.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


@dataclass(frozen=True)
class _Score:
    """A score step's trace line (or event) in a run: the score before the run plus the run's deltas up to this
    step (*before*, then *delta*), added one by one as the steps' own updates would have."""

    before: tuple[int | float, ...]
    delta: int | float

    def old(self, score: Any) -> Any:
        for delta in self.before:
            score = score + delta
        return score

    def json(self, ctx: EngineContext, score: Any) -> Any:
        """The trace line's data: ``{"delta": …, "score": …}``."""
        new = self.old(score) + self.delta
        return _json_object(ctx, (literal("delta", String), literal(self.delta)), (literal("score", String), new))

    def changed(self, ctx: EngineContext, score: Any) -> Any:
        """The ``score.changed`` event's props: ``{"old": …, "new": …}``."""
        old = self.old(score)
        return _json_object(ctx, (literal("old", String), old), (literal("new", String), old + self.delta))


def score(group: Group, op: ScoreOp) -> None:
    """``score +N``: the trace line and ``score.changed`` (old, new) per contact, then the update: written with the
    run's other lines and events, the update when the run is written (a whole number; any other is applied at
    once, after what the run wrote so far, as a database may round it on the way in)."""
    delta = op["delta"]
    whole = isinstance(delta, int) and not isinstance(delta, bool)
    if not whole:
        group.flush()
    line = _Score(tuple(group.deltas), delta)
    group.lines.append(("score", line))
    group.events.append(("score.changed", line))
    group.deltas.append(delta)
    if not whole:
        group.flush()


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


def _shared(query: Any, name: str, uses: int) -> Any:
    """*query* as a common table expression, computed once when the statement reads it more than once."""
    cte = query.cte(name)
    return cte.prefix_with("MATERIALIZED") if uses > 1 else cte


def _typed(ctx: EngineContext, value: Any) -> Any:
    """A bound value typed in the SQL on PostgreSQL, where a ``UNION``'s untyped parameters are taken as text."""
    if ctx.session.get_bind().dialect.name == "postgresql":
        return cast(value, value.type)
    return value


def _json_object(ctx: EngineContext, *pairs: Any) -> Any:
    """A JSON object built in SQL from (key, expression) pairs, on SQLite and PostgreSQL."""
    from sqlalchemy import func
    from sqlalchemy.dialects.postgresql import JSONB

    args = [item for pair in pairs for item in pair]
    if ctx.session.get_bind().dialect.name == "postgresql":
        return cast(func.json_build_object(*args), JSONB)
    return func.json(func.json_object(*args))


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
        {"until": due},  # at the first step (the rollup reads no "pc" as 0): 7 bytes a waiting journey
    )
    return count

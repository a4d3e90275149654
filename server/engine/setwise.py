"""Events processed set-wise: a claimed batch enrols its contacts and runs their first steps in a few statements.

The interpreter (:func:`server.engine.dispatch.handle_event`) defines what an event does; this module does the
same for the events whose effects are simple (last seen, then new enrolments whose first steps the set-based path
takes: tag, score, send, wait, the end) and hands every other event back to it. A contact's events stay in their
order: its *n*-th event is handled in round *n*; once one of them needs the interpreter, so do all its later ones.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Text, case, func, insert, literal, select, type_coerce, update

from dsl.plan import Instruction, RulePlan

from ..models import Contact, Enrolment, EnrolmentState, Event, Rule, RuleStatus
from . import bulk, dispatch, runtime
from .context import EngineContext
from .machine_events import asks_machine, is_machine
from .matcher import Entry
from .timeutil import iso, to_dt

__all__ = ["EventRow", "process", "read_events"]

#: condition tree operators that read the contact (or its history) rather than the event
_READS_CONTACT = frozenset({"field", "has_tag", "segment", "did", "call"})


class EventRow(NamedTuple):
    """What the set-wise path reads of a claimed event."""

    id: int
    contact_id: int
    name: str
    props: Any
    source: str


def read_events(session: Any, ids: Any) -> list[EventRow]:
    """The events *ids* (a SQL condition on ``events.id``), in id order, their props decoded once per distinct
    JSON text in the batch (SQLite hands JSON over as text; PostgreSQL's driver decodes it): events with the same
    props share one dict, which the set-wise path and the attribution only read."""
    table = Event.__table__
    raw = session.execute(
        select(table.c.id, table.c.contact_id, table.c.name, type_coerce(table.c.props, Text), table.c.source)
        .where(ids)
        .order_by(table.c.id)
    ).all()
    decoded: dict[str, Any] = {}
    rows = []
    for event_id, contact_id, name, props, source in raw:
        if isinstance(props, str):
            text, props = props, decoded.get(props)
            if props is None:
                props = decoded[text] = json.loads(text)
        rows.append(EventRow(event_id, contact_id, name, props, source))
    return rows


@dataclass
class _Entering:
    """One contact entering one rule because of one event."""

    contact_id: int
    rule: Rule
    event_id: int
    reason: str


@dataclass
class _Batch:
    """What one batch works out once: which event names the interpreter takes, and what each plan allows."""

    ctx: EngineContext
    interpreted: frozenset[str]
    #: version id -> (its journey starts with steps the set-based path takes, its condition reads the contact)
    plans: dict[int, tuple[bool, bool]] = field(default_factory=dict)
    #: event name -> the rules every event of that name enrols into (None: the interpreter's), where that is fixed
    fixed: dict[str, list[Entry] | None] = field(default_factory=dict)

    #: event name -> why its contacts enter (the ``enter`` trace line's ``because``)
    reasons: dict[str, str] = field(default_factory=dict)
    #: event name -> whether it can be the person's doing (see :func:`dispatch.seen_by`)
    persons: dict[str, bool] = field(default_factory=dict)
    #: per round so far, its events whose moment has not moved their contact's ``last_seen`` yet (:meth:`settle_seen`)
    unseen: list[list[int]] = field(default_factory=list)

    def reason(self, name: str) -> str:
        known = self.reasons.get(name)
        if known is None:
            known = self.reasons[name] = f"{name} at {iso(self.ctx.now)}"
        return known

    def settle_seen(self) -> None:
        """:func:`dispatch.mark_seen` for every event in :attr:`unseen`, in one statement: each contact's
        ``last_seen`` moves to the latest of its events' moments, where that is later (it never moves back, so the
        latest is where moving it event by event ends). Run before anything reads a contact: nothing the set-based
        path does in between reads ``last_seen``, so each contact row is rewritten for it once a batch, not once
        an event."""
        moments = self.moments()
        self.unseen = []
        if moments is None:
            return
        ctx, contacts = self.ctx, Contact.__table__
        ctx.session.connection().execute(
            update(contacts)
            .where(
                contacts.c.id == moments.c.contact_id,
                contacts.c.last_seen.is_(None) | (contacts.c.last_seen < moments.c.at),
            )
            .values(last_seen=moments.c.at, updated_at=to_dt(ctx.now))
        )

    def moments(self) -> Any:
        """The moments :attr:`unseen` moves ``last_seen`` to: a subquery of (contact_id, at), one row a contact (the
        latest of its events' moments, each never later than now); None when there is none."""
        rounds = [ids for ids in self.unseen if ids]
        if not rounds:
            return None
        ctx, table = self.ctx, Event.__table__
        now = literal(to_dt(ctx.now), table.c.occurred_at.type)
        at: Any = case((table.c.occurred_at.is_(None) | (table.c.occurred_at > now), now), else_=table.c.occurred_at)
        query = select(table.c.contact_id).where(bulk.among(ctx, table.c.id, [i for ids in rounds for i in ids]))
        if len(rounds) > 1:  # a contact's events in several rounds: the latest moment of each (one event a round)
            query = query.add_columns(func.max(at).label("at")).group_by(table.c.contact_id)
        else:
            query = query.add_columns(at.label("at"))
        return query.subquery()

    def plan(self, version_id: int) -> tuple[bool, bool]:
        known = self.plans.get(version_id)
        if known is None:
            plan = self.ctx.plan(version_id)
            known = self.plans[version_id] = (
                runtime.segment(plan, 0, self.ctx) is not None,
                _reads_contact(plan.get("condition")),
            )
        return known


def process(ctx: EngineContext, events: Sequence[Any]) -> list[int]:
    """Apply *events* (rows with id, contact_id, name, props and source; in id order) set-wise.

    :return: the ids of the events left to the interpreter, in order (each contact's, after its set-wise ones).
    """
    queues: dict[int, list[Any]] = defaultdict(list)
    for event in events:
        queues[event.contact_id].append(event)
    left: dict[int, list[Any]] = {}
    batch = _Batch(ctx, _interpreted(ctx))
    depth = 0
    while queues:
        round_ = {cid: queue[depth] for cid, queue in queues.items()}
        for contact_id in _round(batch, round_):
            left[contact_id] = queues[contact_id][depth:]
        depth += 1
        queues = {cid: queue for cid, queue in queues.items() if cid not in left and len(queue) > depth}
    batch.settle_seen()  # before the interpreter takes the events left
    return sorted(event.id for rest in left.values() for event in rest)


def _round(batch: _Batch, events: dict[int, Any]) -> set[int]:
    """Handle one event per contact; return the contacts whose event (and later ones) the interpreter must take."""
    ctx = batch.ctx
    session = ctx.session
    existing = _mark_seen(batch, events)
    contacts: dict[int, Contact] = {}

    def contact_of(contact_id: int) -> Contact | None:
        if not contacts:  # read after the round's last-seen moves, and after what earlier rounds changed in SQL
            batch.settle_seen()
            query = (
                select(Contact)
                .where(bulk.among(ctx, Contact.id, list(events)))
                .execution_options(populate_existing=True)
            )
            contacts.update((c.id, c) for c in session.scalars(query))
        return contacts.get(contact_id)

    entering: list[_Entering] = []
    handback: set[int] = set()
    rules: dict[int, Rule] = {}
    for contact_id, event in events.items():
        if contact_id not in existing:  # deleted since: nothing to do, as in the interpreter
            continue
        chosen = _entries(batch, event, contact_id, contact_of)
        if chosen is None:
            handback.add(contact_id)
            continue
        if chosen:
            reason = batch.reason(event.name)
            for entry in chosen:
                rule = rules.get(entry.rule_id) or rules.setdefault(entry.rule_id, session.get_one(Rule, entry.rule_id))
                entering.append(_Entering(contact_id, rule, event.id, reason))
    _enrol(batch, entering)
    return handback


def _mark_seen(batch: _Batch, events: dict[int, Any]) -> set[int]:
    """:func:`dispatch.mark_seen` for one event per contact: the events that move ``last_seen`` join the batch's
    :attr:`_Batch.unseen` (applied before a contact is read); return the contacts that exist.

    First, as in the interpreter (conditions may read it); it never moves twice, so an event handed back to the
    interpreter has it again to no effect."""
    ctx, contacts = batch.ctx, Contact.__table__
    # each result read with one fetchall (iterating a result fetches its rows one call a row)
    existing = set(ctx.session.scalars(select(contacts.c.id).where(bulk.among(ctx, contacts.c.id, list(events)))).all())
    batch.unseen.append([event.id for event in events.values() if dispatch.seen_by(ctx, event, batch.persons)])
    return existing


def _entries(
    batch: _Batch, event: Any, contact_id: int, contact_of: Callable[[int], Contact | None]
) -> list[Entry] | None:
    """The rules *event* enrols its contact into, or None when the event needs the interpreter."""
    ctx = batch.ctx
    name = event.name
    if name in batch.interpreted or (event.source != "nudge" and name in ("contact.created", "contact.updated")):
        return None
    if is_machine(event.props):  # a machine's open or click: only rules asking about machines react to it
        return None if _asked_about_machines(ctx, name) else []
    if name in batch.fixed:  # the same rules for every event of this name, whatever its props or contact
        return batch.fixed[name]
    event_index = ctx.index.by_event.get(name)
    if event_index is None:
        return []
    if not event_index.keyed and all(ctx.plan(e.version_id).get("condition") is None for e in event_index.unkeyed):
        fixed = sorted(event_index.unkeyed, key=lambda e: e.rule_id)
        ok = all(batch.plan(e.version_id)[0] for e in fixed)
        batch.fixed[name] = fixed if ok else None
        return batch.fixed[name]
    props = event.props or {}
    candidates = event_index.candidates(props, contact_of(contact_id) if event_index.reads_contact else None)
    for position, entry in enumerate(candidates):
        set_based, reads_contact = batch.plan(entry.version_id)
        # the interpreter runs each journey before the next rule's condition: one reading the contact could see it
        if not set_based or (position and reads_contact):
            return None
    chosen = []
    for entry in candidates:
        cond = ctx.plan(entry.version_id).get("condition")
        contact = contact_of(contact_id) if cond is not None else None
        if cond is None or (
            contact is not None
            and runtime.evaluate(cond, runtime.condition_scope(ctx, contact, entry.rule_id, event_props=props))
        ):
            chosen.append(entry)
    return chosen


def _asked_about_machines(ctx: EngineContext, name: str) -> bool:
    """Whether a rule triggered by events called *name* reads ``event.machine`` in its condition."""
    listening = ctx.index.by_event.get(name)
    if listening is None:
        return False
    entries = listening.unkeyed + [e for by_value in listening.keyed.values() for es in by_value.values() for e in es]
    return any(asks_machine(ctx.plan(e.version_id).get("condition")) for e in entries)


def _interpreted(ctx: EngineContext) -> frozenset[str]:
    """Event names only the interpreter handles: journeys in progress react to them (a goal, a ``wait for``), they
    revoke consent (an opt-out), or they re-arm an inactivity trigger."""
    idx = ctx.index
    opt_outs = ctx.plugins.opt_out_events() if ctx.plugins is not None else {}
    inactivity = {trigger["event"] for _r, _v, trigger in idx.timed if trigger["kind"] == "inactivity"}
    return idx.resumes | frozenset(opt_outs) | frozenset(inactivity)


def _reads_contact(node: Any) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if _READS_CONTACT.intersection(item):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _enrol(batch: _Batch, entering: list[_Entering]) -> None:
    """Enter the contacts their entry policies let in, then run each rule's first steps for its group at once."""
    ctx = batch.ctx
    groups: dict[tuple[int, str], list[_Entering]] = defaultdict(list)
    for e in entering:  # one group per rule and reason: each group's contacts enter with one trace line text
        groups[(e.rule.id, e.reason)].append(e)
    rules = {
        rule.id: (rule, version, ctx.plan(version))
        for rule in {members[0].rule for members in groups.values()}
        if rule.status == RuleStatus.ACTIVE.value and (version := rule.active_version_id)
    }
    groups = {key: members for key, members in groups.items() if key[0] in rules}
    policies = [rule_id for rule_id, (_r, _v, plan) in rules.items() if plan["entry"]["kind"] != "always"]
    if policies:
        earlier: dict[tuple[int, int], list[tuple[int, int]]] = {}
        contact_ids = list({e.contact_id for key, members in groups.items() if key[0] in policies for e in members})
        for contact_id, rule_id, state, entered in ctx.session.execute(
            select(Enrolment.contact_id, Enrolment.rule_id, Enrolment.state, Enrolment.entered).where(
                bulk.among(ctx, Enrolment.contact_id, contact_ids), Enrolment.rule_id.in_(policies)
            )
        ).all():
            earlier.setdefault((contact_id, rule_id), []).append((state, entered))
        for (rule_id, reason), members in groups.items():
            plan = rules[rule_id][2]
            # a contact never in the rule may enter it whatever its policy
            groups[(rule_id, reason)] = [
                e
                for e in members
                if (past := earlier.get((e.contact_id, rule_id))) is None or runtime.entry_allows(plan, past, ctx.now)
            ]
    groups = {key: members for key, members in groups.items() if members}
    if not groups:
        return
    ctx.write_buffered()  # what conditions logged comes before the journeys' first lines, as in the interpreter
    seen = batch.moments()  # the round's last-seen moves, written with a first step's score where there is one
    for (rule_id, reason), members in groups.items():
        rule, version_id, plan = rules[rule_id]
        ops = _first_steps(plan, ctx)
        placed = _where_run_ends(ctx, ops)
        ids = _enter(ctx, rule, version_id, [e.event_id for e in members], placed)
        ctx.new_messages.extend(
            runtime.advance_group(
                ctx, version_id, 0, ids, ops, rule.id, rule.name, {"because": reason}, seen=seen, placed=placed
            )
        )


def _where_run_ends(ctx: EngineContext, ops: list[Instruction]) -> dict[str, Any] | None:
    """Where a first run that ends in a wait leaves its enrolments (the values :func:`bulk.wait` moves them on
    with): they are inserted there, not inserted at the first step and then rewritten; None for another run."""
    last = ops[-1] if ops else None
    if last is None or last["op"] != "wait":
        return None
    return {"pc": len(ops), "due": ctx.now + int(last["seconds"]), "wait_event": None, "attempts": None, "error": None}


def _enter(
    ctx: EngineContext, rule: Rule, version_id: int, event_ids: list[int], placed: dict[str, Any] | None = None
) -> list[int]:
    """Enrol the contact of each of *event_ids* (events of one name, one per contact) into *rule*, as
    :func:`runtime.enter` does for one (its ``enter`` trace line is written with the first steps'); return the new
    enrolments' ids.

    :param placed: the step (``pc``) and ``due`` the enrolments start at (see :func:`_where_run_ends`); default the
        first step."""
    conn = ctx.session.connection()
    table, events = Enrolment.__table__, Event.__table__
    columns = ["contact_id", "rule_id", "version_id", "pc", "state", "entered", "event_id", "due"]
    rows = select(
        events.c.contact_id,
        literal(rule.id),
        literal(version_id),
        literal(0 if placed is None else placed["pc"]),
        literal(EnrolmentState.ACTIVE.value),
        literal(ctx.now),
        events.c.id,
        literal(None if placed is None else placed["due"], table.c.due.type),
    ).where(bulk.among(ctx, events.c.id, event_ids))
    return list(conn.execute(insert(table).from_select(columns, rows).returning(table.c.id)).scalars().all())


def _first_steps(plan: RulePlan, ctx: EngineContext) -> list[Instruction]:
    ops = runtime.segment(plan, 0, ctx)
    if ops is None:  # checked when the event was matched; the index cannot change within a batch
        raise RuntimeError(f"rule {plan['name']!r} no longer starts with steps the set-based path takes")
    return ops

"""The journey interpreter: enrol contacts, run their steps until the next wait, resume them when due.

Everything here is written to the database in the caller's transaction: advancing a
journey and writing its outbox rows commit together or not at all.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import date, datetime
from typing import Any, Mapping

from sqlalchemy import delete, func, select

from ..models import (Contact, ContactTag, Enrolment, EnrolmentState, Event, Message, Note, Rule, RuleStatus, Task,
                      TaskStatus)
from ..sdk import redact
from .context import EngineContext
from .quiet import send_resumes_at
from .scope import Scope
from .staff import notify_team
from .timeutil import DEFAULT_AT, local_at, next_local_time, parse_hhmm, quiet_until, to_dt, to_ts, zone

log = logging.getLogger(__name__)

#: how many steps one enrolment may take in one go; a guard against a plan that never waits
MAX_STEPS_PER_RUN = 10_000


def evaluate(cond: Any, scope: Scope) -> bool:
    """Whether a condition tree holds (unknown, e.g. an unset field, does not hold)."""
    from dsl.evaluate import holds

    return holds(cond, scope)


def condition_scope(ctx: EngineContext, contact: Contact, rule_id: int | None, enrolment_id: int | None = None,
                    event_props: Mapping[str, Any] | None = None, event_loader: Any = None) -> Scope:
    """What a rule's conditions see for *contact*: the plugins' condition functions, and a journey-log line
    (``function_failed``: which function, and why) whenever one cannot run and its call counts as unknown."""
    def failed(name: str, problem: str) -> None:
        ctx.log(contact.id, rule_id, "function_failed", enrolment_id, function=name, error=problem)

    functions = ctx.plugins.condition_functions if ctx.plugins is not None else None
    return Scope(ctx.session, contact, ctx.now, event_props, event_loader=event_loader, functions=functions,
                 on_failure=failed)


def render_text(text: str, contact: Contact, event: Mapping[str, Any]) -> str:
    """``{{ … }}`` placeholders in note, task and notify texts, with the same bounded sandbox as messages."""
    from .render import TemplateError, contact_data, get_renderer

    try:
        return get_renderer().render_part("text", text, {"contact": contact_data(contact), "event": dict(event)})
    except TemplateError as exc:  # a broken placeholder must not stop the journey
        log.warning("placeholder in %r failed: %s", text, redact(str(exc)))
        return text


def event_props(ctx: EngineContext, event_id: int | None) -> dict[str, Any]:
    if event_id is None:
        return {}
    event = ctx.session.get(Event, event_id)
    return dict(event.props or {}) if event else {}


# -- entering ------------------------------------------------------------------------------
def may_enter(ctx: EngineContext, rule_id: int, plan: dict[str, Any], contact_id: int) -> bool:
    policy = plan.get("entry") or {"kind": "default"}
    kind = policy.get("kind", "default")
    if kind == "always":
        return True
    ctx.session.flush()
    rows = ctx.session.execute(
        select(Enrolment.state, Enrolment.entered).where(Enrolment.contact_id == contact_id,
                                                         Enrolment.rule_id == rule_id)).all()
    if kind == "once":
        return not rows
    if any(state == EnrolmentState.ACTIVE for state, _ in rows):
        return False
    if kind == "once_every":
        window = int(policy.get("every") or 0)
        return all(entered <= ctx.now - window for _, entered in rows)
    return True


def enrol(ctx: EngineContext, rule: Rule, contact: Contact, event_id: int | None, reason: str,
          isolate: bool = False) -> Enrolment | None:
    """Enter *contact* into *rule*'s active version (if its entry policy allows) and run to the first wait.

    :param isolate: when nothing else would retry the entry (a trigger timer fired it), first steps that fail
        are the journey's own failure: it has entered, and its step is retried with back-off, then parked.
    """
    if rule.status != RuleStatus.ACTIVE.value or rule.active_version_id is None:
        return None
    plan = ctx.plan(rule.active_version_id)
    if not may_enter(ctx, rule.id, plan, contact.id):
        return None
    enr = Enrolment(contact_id=contact.id, rule_id=rule.id, version_id=rule.active_version_id, pc=0,
                    state=EnrolmentState.ACTIVE, due=None, entered=ctx.now, event_id=event_id)
    ctx.session.add(enr)
    ctx.session.flush()
    ctx.log(contact.id, rule.id, "enter", enr.id, because=reason)
    if not isolate:
        run(ctx, enr, contact)
        return enr
    from .dispatch import drain  # dispatch imports this module
    from .failures import enrolment_failed

    drain(ctx)  # what earlier steps raised is not this journey's to lose
    ctx.write_buffered()
    enrolment_id, mark = enr.id, ctx.checkpoint()
    try:
        with ctx.session.begin_nested():
            run(ctx, enr, contact)
            drain(ctx)
            ctx.write_buffered()
    except Exception as exc:
        ctx.forget_since(mark)
        enrolment_failed(ctx.session, ctx.config, enrolment_id, exc, ctx.now)
    return enr


# -- running -----------------------------------------------------------------------------
def finish(ctx: EngineContext, enr: Enrolment, reason: str) -> None:
    enr.state = EnrolmentState.DONE if reason == "completed" else EnrolmentState.EXITED
    enr.finished = ctx.now
    enr.due = None
    enr.wait_event = None
    enr.exit_reason = reason
    ctx.log(enr.contact_id, enr.rule_id, "exit", enr.id, reason=reason)


def _split_arm(contact_id: int, rule_id: int, arms: list[dict[str, Any]]) -> dict[str, Any]:
    """A stable arm per (contact, rule): the same contact always lands in the same arm."""
    bucket = int(hashlib.sha256(f"{rule_id}:{contact_id}".encode()).hexdigest()[:8], 16) % 100
    total = 0
    for arm in arms:
        total += int(arm["share"])
        if bucket < total:
            return arm
    return arms[-1]


def _as_ts(value: Any, tz_name: str | None, ctx: EngineContext, at: str | None = None) -> int | None:
    """When ``wait until`` resumes: a date at *at* (09:00, like date triggers) in the contact's timezone;
    a date-time at that moment, or, with *at*, on its local day at *at*."""
    tz = zone(tz_name, ctx.default_tz)
    if isinstance(value, datetime):
        if at is None:
            return to_ts(value)
        value = value.astimezone(tz).date()
    if isinstance(value, date):
        return local_at(value, parse_hhmm(at or DEFAULT_AT), tz)
    return None


def channel_class(ctx: EngineContext, name: str) -> Any:
    """The installed class of channel *name* (its declarations), or None."""
    return ctx.plugins.channels.get(name) if ctx.plugins is not None else None


def run(ctx: EngineContext, enr: Enrolment, contact: Contact | None = None) -> None:
    """Execute *enr* from its program counter until it waits or finishes."""
    plan = ctx.plan(enr.version_id)
    steps = plan["steps"]
    contact = contact or ctx.session.get(Contact, enr.contact_id)
    if contact is None:
        finish(ctx, enr, "stopped")
        return
    tz = zone(contact.timezone, ctx.default_tz)
    scope = condition_scope(ctx, contact, enr.rule_id, enr.id, event_loader=lambda: event_props(ctx, enr.event_id))
    enr.due = None
    enr.wait_event = None
    if enr.error is not None:  # it failed before; if this run fails too, the savepoint restores both
        enr.attempts = enr.error = None
    for _ in range(MAX_STEPS_PER_RUN):
        if enr.pc >= len(steps):
            finish(ctx, enr, "completed")
            return
        op = steps[enr.pc]
        kind = op["op"]
        if kind == "exit":
            finish(ctx, enr, "completed")
            return
        if kind == "stop":
            finish(ctx, enr, "stopped")
            return
        if kind == "send":
            resume = send_resumes_at(ctx.now, plan.get("quiet_hours"), channel_class(ctx, op["channel"]), contact,
                                     ctx.config)
            if resume is not None:
                _park(ctx, enr, resume, "quiet hours")
                return
            _write_outbox(ctx, enr, op, plan)
            enr.pc += 1
        elif kind == "wait":
            enr.pc += 1
            _park(ctx, enr, ctx.now + int(op["seconds"]), f"wait {_duration_text(int(op['seconds']))}")
            return
        elif kind == "wait_until_time":
            due = next_local_time(ctx.now, parse_hhmm(op["at"]), tz)
            enr.pc += 1
            if due > ctx.now:
                _park(ctx, enr, due, f"wait until {op['at']}")
                return
        elif kind == "wait_until":
            due = _as_ts(evaluate_value(op["expr"], scope), contact.timezone, ctx, op.get("at"))
            enr.pc += 1
            if due is not None and due > ctx.now:
                _park(ctx, enr, due, f"wait until {_source(op)}" + (f" at {op['at']}" if op.get("at") else ""))
                return
        elif kind == "wait_for":
            enr.wait_event = op["event"]
            _park(ctx, enr, ctx.now + int(op["seconds"]), f"waiting for {op['event']}")
            return  # pc stays on the wait_for: resume_waiting/timeout decide where to go
        elif kind == "branch":
            taken = evaluate(op["cond"], scope)
            ctx.log(contact.id, enr.rule_id, "branch", enr.id, step=op.get("id"), cond=_source(op), taken=taken)
            enr.pc = enr.pc + 1 if taken else int(op["else"])
        elif kind == "jump":
            enr.pc = int(op["to"])
        elif kind == "split":
            arm = _split_arm(contact.id, enr.rule_id, op["arms"])
            ctx.log(contact.id, enr.rule_id, "split", enr.id, arm=arm["name"])
            enr.pc = int(arm["to"])
        else:
            apply_action(ctx, enr, contact, op, scope)
            enr.pc += 1
    raise RuntimeError(f"enrolment {enr.id} ran {MAX_STEPS_PER_RUN} steps without waiting")


def _park(ctx: EngineContext, enr: Enrolment, due: int, why: str) -> None:
    """Let *enr* wait until *due*; its trace says until when and why."""
    enr.due = due
    ctx.log(enr.contact_id, enr.rule_id, "wait", enr.id, until=due, why=why)


def _source(op: dict[str, Any]) -> str | None:
    """A condition or date as written in the rule (plans compiled before the rename call it ``text``)."""
    return op.get("source", op.get("text"))


def _duration_text(seconds: int) -> str:
    """``259200`` → ``3d``: a duration as the rules language writes it."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def evaluate_value(expr: Any, scope: Scope) -> Any:
    from dsl.evaluate import evaluate as evaluate_tree

    return evaluate_tree(expr, scope)


def _write_outbox(ctx: EngineContext, enr: Enrolment, op: dict[str, Any], plan: dict[str, Any]) -> None:
    # unique key: a step's outbox row is written in the same transaction that moves the program counter
    # past it, so re-running a step is impossible short of a crash rollback, and the constraint backs that up
    key = f"enr:{enr.id}:{op.get('id', enr.pc)}"
    data = {"enrolment": enr.id, "rule": enr.rule_id, "rule_name": plan.get("name"), "marketing": True,
            "step": op.get("id")}
    if plan.get("quiet_hours"):
        data["quiet_hours"] = plan["quiet_hours"]  # the outbox keeps to the rule's window too (a retry)
    msg = Message(key=key, contact_id=enr.contact_id, channel=op["channel"], template=op["name"],
                  status="pending", next_attempt_at=to_dt(ctx.now), created_at=to_dt(ctx.now), data=data)
    ctx.session.add(msg)
    ctx.session.flush()
    if ctx.deliver_now is not None:
        ctx.write_buffered()
        ctx.deliver_now([msg.id])
    else:
        ctx.new_messages.append(msg.id)


# -- actions ------------------------------------------------------------------------------
def raise_event(ctx: EngineContext, contact_id: int, name: str, props: dict[str, Any]) -> None:
    """Record one of Nudge's own events; if any rule reacts to it, it is handled before the batch ends."""
    now = to_dt(ctx.now)
    row = {"contact_id": contact_id, "name": name, "props": props, "source": "nudge", "occurred_at": now,
           "received_at": now, "processed_at": now}
    if not ctx.listens_to(name):
        ctx.buffer(Event, row)  # history only: no rule reacts to it or counts it
        return
    event = Event(**row)
    ctx.session.add(event)
    ctx.session.flush()
    ctx.pending_events.append(event.id)


def _tag_insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(ContactTag.__table__).on_conflict_do_nothing()


_TAG_INSERTS: dict[str, Any] = {}


def _insert_ignoring_duplicates(ctx: EngineContext, values: dict[str, Any]) -> bool:
    """INSERT a contact tag unless it exists; True when it was new (one statement, no read first)."""
    dialect = ctx.session.get_bind().dialect.name
    stmt = _TAG_INSERTS.get(dialect)
    if stmt is None:
        stmt = _TAG_INSERTS[dialect] = _tag_insert(dialect)
    return bool(ctx.session.connection().execute(stmt, values).rowcount)


def add_tag(ctx: EngineContext, contact: Contact, tag: str) -> bool:
    if not _insert_ignoring_duplicates(ctx, {"contact_id": contact.id, "tag": tag, "created_at": to_dt(ctx.now)}):
        return False
    raise_event(ctx, contact.id, "tag.added", {"tag": tag})
    return True


def remove_tag(ctx: EngineContext, contact: Contact, tag: str) -> bool:
    removed = ctx.session.execute(
        delete(ContactTag).where(ContactTag.contact_id == contact.id, ContactTag.tag == tag)).rowcount
    if not removed:
        return False
    raise_event(ctx, contact.id, "tag.removed", {"tag": tag})
    return True


def touch(ctx: EngineContext, contact: Contact) -> None:
    """Date a change to *contact* by the engine's clock (the column's own default is the wall clock,
    which in ``nudge simulate`` is not the simulated time)."""
    contact.updated_at = to_dt(ctx.now)


def change_score(ctx: EngineContext, contact: Contact, new: int | float) -> None:
    old = contact.score or 0
    if new == old:
        return
    contact.score = new
    touch(ctx, contact)
    raise_event(ctx, contact.id, "score.changed", {"old": old, "new": new})


BUILTIN_SETTABLE = {"first_name", "last_name", "phone", "email", "timezone", "locale", "stage", "external_id"}


def set_field(ctx: EngineContext, contact: Contact, field: str, value: Any) -> None:
    if field == "score":
        change_score(ctx, contact, value)
        return
    if isinstance(value, (date, datetime)):
        value = value.isoformat()
    if field in BUILTIN_SETTABLE:
        setattr(contact, field, value)
    else:
        contact.fields = {**(contact.fields or {}), field: value}
    touch(ctx, contact)
    raise_event(ctx, contact.id, "contact.updated", {"fields": [field]})
    from .dispatch import contact_changed  # dispatch imports this module

    contact_changed(ctx, contact, {field})  # date triggers on this field are re-planned, as for any change


def _author(ctx: EngineContext, enr: Enrolment) -> str:
    """Who wrote a note or task: ``rule:<name>``."""
    return f"rule:{ctx.plan(enr.version_id).get('name', enr.rule_id)}"


def apply_action(ctx: EngineContext, enr: Enrolment, contact: Contact, op: dict[str, Any], scope: Scope) -> None:
    kind = op["op"]
    cid, rid, eid = contact.id, enr.rule_id, enr.id
    if kind == "tag":
        add_tag(ctx, contact, op["tag"])
        scope.invalidate_tags()
        ctx.log(cid, rid, "tag", eid, tag=op["tag"])
    elif kind == "untag":
        remove_tag(ctx, contact, op["tag"])
        scope.invalidate_tags()
        ctx.log(cid, rid, "untag", eid, tag=op["tag"])
    elif kind == "set":
        field = op["field"].removeprefix("contact.")
        value = evaluate_value(op["value"], scope)
        set_field(ctx, contact, field, value)
        ctx.log(cid, rid, "set", eid, field=field, value=value if not isinstance(value, (date, datetime))
                else value.isoformat())
    elif kind == "score":
        delta = op["delta"]
        change_score(ctx, contact, (contact.score or 0) + delta)
        ctx.log(cid, rid, "score", eid, delta=delta, score=contact.score)
    elif kind == "note":
        text = render_text(op["text"], contact, scope.event)
        ctx.buffer(Note, {"contact_id": cid, "body": text, "author": _author(ctx, enr), "created_at": to_dt(ctx.now)})
        ctx.log(cid, rid, "note", eid, text=text)
    elif kind == "task":
        data: dict[str, Any] = {"text": render_text(op["text"], contact, scope.event), "team": op["team"]}
        due = to_dt(ctx.now + int(op["due"])) if op.get("due") is not None else None
        if due is not None:
            data["due"] = due.strftime("%Y-%m-%dT%H:%M:%SZ")
        task = Task(contact_id=cid, text=data["text"], team=op["team"], due_at=due, status=TaskStatus.OPEN.value,
                    source=_author(ctx, enr), created_at=to_dt(ctx.now))
        ctx.session.add(task)
        ctx.session.flush()  # its id goes into the team's notification
        notify_team(ctx, enr, op.get("id", enr.pc), "task", op["team"], data["text"], task=task.id, due=data.get("due"))
        ctx.log(cid, rid, "task", eid, **data)
    elif kind == "notify":
        text = render_text(op["text"], contact, scope.event)
        notify_team(ctx, enr, op.get("id", enr.pc), "notify", op["team"], text)
        ctx.log(cid, rid, "notify", eid, team=op["team"], text=text)
    elif kind == "start":
        other = ctx.session.scalar(select(Rule).where(Rule.name == op["rule"]))
        if other is not None:
            enrol(ctx, other, contact, enr.event_id, f"started by rule {rid}")
    elif kind == "plugin":
        actions = getattr(ctx.plugins, "actions", {}) if ctx.plugins is not None else {}
        action = actions.get(op["step"])
        if action is None:
            raise RuntimeError(f"unknown step {op['step']!r} in rule {rid}; is the plugin that provides it installed?")
        from .render import contact_data

        action.run(contact=contact_data(contact), args=op.get("args", []))
        ctx.log(cid, rid, op["step"], eid)
    else:
        raise RuntimeError(f"unknown instruction {kind!r} in rule {rid}: was the plan compiled by a newer Nudge?")


# -- resuming -----------------------------------------------------------------------------
def resume_due(ctx: EngineContext, enr: Enrolment, contact: Contact | None = None) -> None:
    """Continue a waiting enrolment whose time has come (a wait ended, or a ``wait for`` timed out)."""
    if enr.state != EnrolmentState.ACTIVE:
        return
    if enr.wait_event is not None:
        op = ctx.plan(enr.version_id)["steps"][enr.pc]
        ctx.log(enr.contact_id, enr.rule_id, "timeout", enr.id, event=enr.wait_event)
        enr.pc = int(op.get("on_timeout", enr.pc + 1))
        enr.wait_event = None
    run(ctx, enr, contact)


def resume_on_event(ctx: EngineContext, enr: Enrolment, contact: Contact, event: Event) -> bool:
    """If *enr* waits for *event* (and its ``where`` holds), take the ``then`` path; True if it did."""
    op = ctx.plan(enr.version_id)["steps"][enr.pc]
    where = op.get("where")
    if where is not None and not evaluate(where, condition_scope(ctx, contact, enr.rule_id, enr.id, event.props)):
        return False
    ctx.log(contact.id, enr.rule_id, "received", enr.id, event=event.name)
    enr.wait_event = None
    enr.pc += 1
    run(ctx, enr, contact)
    return True


def active_enrolments(ctx: EngineContext, contact_id: int, held: bool = False) -> list[Enrolment]:
    """The contact's journeys in progress; with *held*, also those its paused rules hold."""
    states = (EnrolmentState.ACTIVE, EnrolmentState.HELD) if held else (EnrolmentState.ACTIVE,)
    ctx.session.flush()
    return list(ctx.session.scalars(select(Enrolment).where(
        Enrolment.contact_id == contact_id, Enrolment.state.in_(states)).order_by(Enrolment.id)))


def count_active(ctx: EngineContext, rule_id: int) -> int:
    return ctx.session.scalar(select(func.count(Enrolment.id)).where(
        Enrolment.rule_id == rule_id, Enrolment.state == EnrolmentState.ACTIVE)) or 0


"""What a journey step does to one contact: outbox rows, tags, scores, fields, notes, tasks, trace lines.

The interpreter (:mod:`.runtime`) calls these for each contact; the set-based path (:mod:`.bulk`) does
the same for a group in SQL. Everything is written in the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm.attributes import flag_modified

from dsl.plan import RulePlan, SendOp

from ..contacts.fields import stored_moment
from ..db import affected_rows
from ..models import Contact, ContactTag, Enrolment, EnrolmentState, Event, Message, Note, Task, TaskStatus
from ..sdk import redact
from . import timers
from .context import EngineContext
from .keys import ENROLMENT, message_key
from .scope import Scope
from .staff import notify_team
from .timeutil import to_dt

log = logging.getLogger(__name__)

#: contact attributes a ``set`` step writes as columns (every other name is a custom field)
BUILTIN_SETTABLE = {"first_name", "last_name", "phone", "email", "timezone", "locale", "stage", "external_id"}


def evaluate(cond: Any, scope: Scope) -> bool:
    """Whether a condition tree holds (unknown, e.g. an unset field, does not hold)."""
    from dsl.evaluate import holds

    return holds(cond, scope)


def evaluate_value(expr: Any, scope: Scope) -> Any:
    from dsl.evaluate import evaluate as evaluate_tree

    return evaluate_tree(expr, scope)


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


def channel_class(ctx: EngineContext, name: str) -> Any:
    """The installed class of channel *name* (its declarations), or None."""
    return ctx.plugins.channels.get(name) if ctx.plugins is not None else None


def finish(ctx: EngineContext, enr: Enrolment, reason: str) -> None:
    enr.state = EnrolmentState.DONE if reason == "completed" else EnrolmentState.EXITED
    enr.finished = ctx.now
    enr.due = None
    enr.wait_event = None
    enr.exit_reason = reason
    ctx.log(enr.contact_id, enr.rule_id, "exit", enr.id, reason=reason, pc=enr.pc)


def park(ctx: EngineContext, enr: Enrolment, due: int, why: str) -> None:
    """Let *enr* wait until *due*; its trace says until when and why."""
    enr.due = due
    ctx.log(enr.contact_id, enr.rule_id, "wait", enr.id, until=due, why=why, pc=enr.pc)


def source_text(op: Mapping[str, object]) -> str | None:
    """A condition or date as written in the rule (plans compiled before the rename call it ``text``)."""
    text = op.get("source", op.get("text"))
    return text if isinstance(text, str) else None


def duration_text(seconds: int) -> str:
    """``259200`` → ``3d``: a duration as the rules language writes it."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def send_data(rule_id: int, rule_name: Any, step: Any) -> dict[str, Any]:
    """What a journey's outbox row carries besides its key: the rule and step it comes from."""
    return {"rule": rule_id, "rule_name": rule_name, "marketing": True, "step": step}


def write_outbox(ctx: EngineContext, enr: Enrolment, op: SendOp, plan: RulePlan) -> None:
    # unique key: a step's outbox row is written in the same transaction that moves the program counter
    # past it, so re-running a step is impossible short of a crash rollback, and the constraint backs that up
    step = op["id"]
    data = {"enrolment": enr.id, **send_data(enr.rule_id, plan["name"], step)}
    if plan["quiet_hours"]:
        data["quiet_hours"] = plan["quiet_hours"]  # the outbox keeps to the rule's window too (a retry)
    if plan.get("priority"):
        data["priority"] = plan.get("priority")  # how much of each frequency cap it may use
    msg = Message(
        key=message_key(ENROLMENT, enr.id, step),
        contact_id=enr.contact_id,
        channel=op["channel"],
        template=op["name"],
        status="pending",
        next_attempt_at=to_dt(ctx.now),
        created_at=ctx.moment,  # to the microsecond on the live clock
        data=data,
    )
    ctx.session.add(msg)
    ctx.session.flush()
    if ctx.deliver_now is not None:
        ctx.write_buffered()
        ctx.deliver_now([msg.id])
    else:
        ctx.new_messages.append(msg.id)


def raise_event(ctx: EngineContext, contact_id: int, name: str, props: dict[str, Any]) -> None:
    """Record one of Nudge's own events; if any rule reacts to it, it is handled before the batch ends."""
    now = to_dt(ctx.now)
    row = {
        "contact_id": contact_id,
        "name": name,
        "props": props,
        "source": "nudge",
        "occurred_at": now,
        "received_at": now,
        "processed_at": now,
    }
    if not ctx.listens_to(name):
        ctx.buffer(Event, row)  # history only: no rule reacts to it or counts it
        return
    event = Event(**row)
    ctx.session.add(event)
    ctx.session.flush()
    ctx.pending_events.append(event.id)


def _tag_insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(ContactTag.__table__).on_conflict_do_nothing().returning(ContactTag.__table__.c.tag)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(ContactTag.__table__).on_conflict_do_nothing().returning(ContactTag.__table__.c.tag)


_TAG_INSERTS: dict[str, Any] = {}


def _insert_ignoring_duplicates(ctx: EngineContext, values: dict[str, Any]) -> bool:
    """INSERT a contact tag unless it exists; True when it was new (one statement, no read first).

    Whether it was is what the statement returns: psycopg counts a row skipped by ``ON CONFLICT DO NOTHING`` as
    affected, and every ``tag`` of a tag the contact had raised ``tag.added`` again on PostgreSQL."""
    dialect = ctx.session.get_bind().dialect.name
    stmt = _TAG_INSERTS.get(dialect)
    if stmt is None:
        stmt = _TAG_INSERTS[dialect] = _tag_insert(dialect)
    return ctx.session.connection().execute(stmt, values).first() is not None


def add_tag(ctx: EngineContext, contact: Contact, tag: str) -> bool:
    if not _insert_ignoring_duplicates(ctx, {"contact_id": contact.id, "tag": tag, "created_at": to_dt(ctx.now)}):
        return False
    raise_event(ctx, contact.id, "tag.added", {"tag": tag})
    return True


def remove_tag(ctx: EngineContext, contact: Contact, tag: str) -> bool:
    removed = affected_rows(
        ctx.session.execute(delete(ContactTag).where(ContactTag.contact_id == contact.id, ContactTag.tag == tag))
    )
    if not removed:
        return False
    raise_event(ctx, contact.id, "tag.removed", {"tag": tag})
    return True


def touch(ctx: EngineContext, contact: Contact) -> None:
    """Date a change to *contact* by the engine's clock (the column's own default is the wall clock,
    which in ``nudge simulate`` is not the simulated time)."""
    contact.updated_at = to_dt(ctx.now)
    # already that instant (touched earlier this second): still written, or the column's wall-clock default wins
    flag_modified(contact, "updated_at")


def change_score(ctx: EngineContext, contact: Contact, new: int | float) -> None:
    old = contact.score or 0
    if new == old:
        return
    contact.score = new  # type: ignore[assignment]  # a fractional `score` step is stored as written (SQLite keeps it)
    touch(ctx, contact)
    raise_event(ctx, contact.id, "score.changed", {"old": old, "new": new})


def contact_changed(ctx: EngineContext, contact: Contact, fields: set[str] | None) -> None:
    """Re-plan the contact's date triggers after it was created (fields=None) or some fields changed."""
    timers.plan_contact(ctx, contact, ctx.index.timed, fields)


def set_field(ctx: EngineContext, contact: Contact, field: str, value: Any) -> Any:
    """Set *field* of *contact* to *value*; return the value as stored (a date field keeps a moment's day)."""
    if field == "score":
        change_score(ctx, contact, value)
        return value
    if field in BUILTIN_SETTABLE:
        stored = value.isoformat() if isinstance(value, (date, datetime)) else value
        setattr(contact, field, stored)
    else:  # a date or a time in the stored form of the field's type, as the API and imports store them
        stored = stored_moment(ctx.field_type(field), value)
        contact.fields = {**(contact.fields or {}), field: stored}
    touch(ctx, contact)
    raise_event(ctx, contact.id, "contact.updated", {"fields": [field]})
    contact_changed(ctx, contact, {field})  # date triggers on this field are re-planned, as for any change
    return stored


def _author(ctx: EngineContext, enr: Enrolment) -> str:
    """Who wrote a note or task: ``rule:<name>``."""
    return f"rule:{ctx.plan(enr.version_id).get('name', enr.rule_id)}"


# -- the steps that act on one contact (the interpreter's; see runtime.STEPS) -------------------------------
def tag(ctx: EngineContext, enr: Enrolment, contact: Contact, op: dict[str, Any], scope: Scope) -> None:
    add_tag(ctx, contact, op["tag"])
    scope.invalidate_tags()
    ctx.log(contact.id, enr.rule_id, "tag", enr.id, tag=op["tag"])


def untag(ctx: EngineContext, enr: Enrolment, contact: Contact, op: dict[str, Any], scope: Scope) -> None:
    remove_tag(ctx, contact, op["tag"])
    scope.invalidate_tags()
    ctx.log(contact.id, enr.rule_id, "untag", enr.id, tag=op["tag"])


def set_step(ctx: EngineContext, enr: Enrolment, contact: Contact, op: dict[str, Any], scope: Scope) -> None:
    field = op["field"].removeprefix("contact.")
    # the journey log shows the value as stored, as the contact's page and segments read it
    stored = set_field(ctx, contact, field, evaluate_value(op["value"], scope))
    ctx.log(
        contact.id,
        enr.rule_id,
        "set",
        enr.id,
        field=field,
        value=stored if not isinstance(stored, (date, datetime)) else stored.isoformat(),
    )


def score(ctx: EngineContext, enr: Enrolment, contact: Contact, op: dict[str, Any], scope: Scope) -> None:
    delta = op["delta"]
    change_score(ctx, contact, (contact.score or 0) + delta)
    ctx.log(contact.id, enr.rule_id, "score", enr.id, delta=delta, score=contact.score)


def note(ctx: EngineContext, enr: Enrolment, contact: Contact, op: dict[str, Any], scope: Scope) -> None:
    text = render_text(op["text"], contact, scope.event)
    ctx.buffer(
        Note, {"contact_id": contact.id, "body": text, "author": _author(ctx, enr), "created_at": to_dt(ctx.now)}
    )
    ctx.log(contact.id, enr.rule_id, "note", enr.id, text=text)


def task(ctx: EngineContext, enr: Enrolment, contact: Contact, op: dict[str, Any], scope: Scope) -> None:
    data: dict[str, Any] = {"text": render_text(op["text"], contact, scope.event), "team": op["team"]}
    due = to_dt(ctx.now + int(op["due"])) if op.get("due") is not None else None
    if due is not None:
        data["due"] = due.strftime("%Y-%m-%dT%H:%M:%SZ")
    row = Task(
        contact_id=contact.id,
        text=data["text"],
        team=op["team"],
        due_at=due,
        status=TaskStatus.OPEN.value,
        source=_author(ctx, enr),
        created_at=to_dt(ctx.now),
    )
    ctx.session.add(row)
    ctx.session.flush()  # its id goes into the team's notification
    notify_team(ctx, enr, op.get("id", enr.pc), "task", op["team"], data["text"], task=row.id, due=data.get("due"))
    ctx.log(contact.id, enr.rule_id, "task", enr.id, **data)


def notify(ctx: EngineContext, enr: Enrolment, contact: Contact, op: dict[str, Any], scope: Scope) -> None:
    text = render_text(op["text"], contact, scope.event)
    notify_team(ctx, enr, op.get("id", enr.pc), "notify", op["team"], text)
    ctx.log(contact.id, enr.rule_id, "notify", enr.id, team=op["team"], text=text)


def plugin(ctx: EngineContext, enr: Enrolment, contact: Contact, op: dict[str, Any], scope: Scope) -> None:
    actions = getattr(ctx.plugins, "actions", {}) if ctx.plugins is not None else {}
    action = actions.get(op["step"])
    if action is None:
        raise RuntimeError(
            f"unknown step {op['step']!r} in rule {enr.rule_id}; is the plugin that provides it installed?"
        )
    from .render import contact_data

    action.run(contact=contact_data(contact), args=op.get("args", []))
    ctx.log(contact.id, enr.rule_id, op["step"], enr.id)

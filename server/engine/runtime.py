"""The journey interpreter: enrol contacts, run their steps until the next wait, resume them when due.

What each kind of plan step does is one table, :data:`STEPS`: for every step kind the compiler emits, how the
interpreter runs it for one contact and how the set-based path (:mod:`.bulk`) runs it for a group at once, or
that only the interpreter runs it. Everything is written to the database in the caller's transaction:
advancing a journey and writing its outbox rows commit together or not at all.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select

from dsl.plan import (
    Arm,
    BranchOp,
    ExitOp,
    Instruction,
    JumpOp,
    RulePlan,
    SendOp,
    SplitOp,
    WaitForOp,
    WaitOp,
    WaitUntilOp,
    WaitUntilTimeOp,
)

from ..models import Contact, Enrolment, EnrolmentState, Event, Rule, RuleStatus
from . import autosplit, besttime, bulk, caps, effects, policy
from .context import EngineContext
from .effects import (
    add_tag,
    change_score,
    channel_class,
    evaluate,
    evaluate_value,
    finish,
    park,
    raise_event,
    remove_tag,
    source_text,
    touch,
)
from .machine_events import reacts
from .scope import Scope
from .timeutil import DEFAULT_AT, local_at, next_local_time, parse_hhmm, to_dt, to_ts, zone

log = logging.getLogger(__name__)

#: how many steps one enrolment may take in one go; a guard against a plan that never waits
MAX_STEPS_PER_RUN = 10_000

__all__ = [
    "INTERPRETER_ONLY",
    "STEPS",
    "Step",
    "active_enrolments",
    "add_tag",
    "advance_group",
    "change_score",
    "channel_class",
    "count_active",
    "enrol",
    "enter",
    "evaluate",
    "finish",
    "raise_event",
    "remove_tag",
    "resume_due",
    "resume_on_event",
    "run",
    "segment",
    "touch",
]


def condition_scope(
    ctx: EngineContext,
    contact: Contact,
    rule_id: int | None,
    enrolment_id: int | None = None,
    event_props: Mapping[str, Any] | None = None,
    event_loader: Any = None,
) -> Scope:
    """What a rule's conditions see for *contact*: the plugins' condition functions, and a journey-log line
    (``function_failed``: which function, and why) whenever one cannot run and its call counts as unknown."""

    def failed(name: str, problem: str) -> None:
        ctx.log(contact.id, rule_id, "function_failed", enrolment_id, function=name, error=problem)

    functions = ctx.plugins.condition_functions if ctx.plugins is not None else None
    return Scope(
        ctx.session, contact, ctx.now, event_props, event_loader=event_loader, functions=functions, on_failure=failed
    )


@dataclass
class Run:
    """One enrolment being run by the interpreter: what its steps read."""

    ctx: EngineContext
    enr: Enrolment
    contact: Contact
    plan: RulePlan
    scope: Scope


#: a step the set-based path never takes: the interpreter runs it for each contact
INTERPRETER_ONLY = None


#: the kind of instruction a :class:`Step` runs
Op = TypeVar("Op")


def _always(ctx: EngineContext, plan: RulePlan, op: Any) -> bool:
    return True


@dataclass(frozen=True)
class Step(Generic[Op]):
    """How one kind of plan step runs.

    :param run: the interpreter's: runs the step for one enrolment, moves its program counter and returns True
        to go on with the next step, False when the journey now waits or has ended.
    :param group: the set-based path's (a :mod:`.bulk` function), or :data:`INTERPRETER_ONLY`.
    :param groupable: whether a group may take this step here (``(ctx, plan, op) -> bool``): a send inside quiet
        hours, or a tag a rule reacts to, must go through the interpreter.
    :param ends_group: the step ends a set-based run (a wait, the end).
    """

    run: Callable[[Run, Op], bool]
    group: Callable[[bulk.Group, Op], None] | None
    groupable: Callable[[EngineContext, RulePlan, Op], bool] = _always
    ends_group: bool = False


def _acting(action: Callable[..., None]) -> Callable[[Run, Any], bool]:
    """A step that acts on the contact and goes on with the next one."""

    def step(r: Run, op: Any) -> bool:
        action(r.ctx, r.enr, r.contact, op, r.scope)
        r.enr.pc += 1
        return True

    return step


def _send(r: Run, op: SendOp) -> bool:
    if "best_within" in op and besttime.wait_for_best_time(r.ctx, r.enr, r.contact, op, r.plan):
        return False
    channel = channel_class(r.ctx, op["channel"])
    resume = policy.resumes_at(r.ctx.now, r.plan.get("quiet_hours"), channel, r.contact, r.ctx.config)
    if resume is not None:
        park(r.ctx, r.enr, resume, "quiet hours")
        return False
    if r.plan.get("on_cap") == "wait" and channel is not None:
        held = caps.held_by_cap(
            r.ctx.session,
            r.ctx.config,
            r.ctx.plugins.channels,
            op["channel"],
            r.contact.id,
            r.ctx.now,
            r.plan.get("priority", "normal"),
        )
        if held is not None:  # ``on cap wait``: until a slot frees up, then the send is tried again
            park(r.ctx, r.enr, held.frees_at, held.why())
            return False
    effects.write_outbox(r.ctx, r.enr, op, r.plan)
    r.enr.pc += 1
    return True


def _exit(r: Run, op: Instruction) -> bool:
    finish(r.ctx, r.enr, "completed")
    return False


def _stop(r: Run, op: Instruction) -> bool:
    finish(r.ctx, r.enr, "stopped")
    return False


def _wait(r: Run, op: WaitOp) -> bool:
    park(r.ctx, r.enr, r.ctx.now + int(op["seconds"]), f"wait {effects.duration_text(int(op['seconds']))}")
    r.enr.pc += 1  # after park: its trace names the wait's own step
    return False


def _wait_until_time(r: Run, op: WaitUntilTimeOp) -> bool:
    """Park until the next *at* after now, never now itself: a journey a timer resumed at 09:00:00 sharp (as the
    virtual clock resumes it; a worker a moment later) waits for tomorrow's 09:00 at its next `wait until 09:00`,
    whichever the clock."""
    due = next_local_time(r.ctx.now + 1, parse_hhmm(op["at"]), zone(r.contact.timezone, r.ctx.default_tz))
    park(r.ctx, r.enr, due, f"wait until {op['at']}")
    r.enr.pc += 1
    return False


def _wait_until(r: Run, op: WaitUntilOp) -> bool:
    due = _as_ts(evaluate_value(op["expr"], r.scope), r.contact.timezone, r.ctx, op.get("at"))
    if due is not None and due > r.ctx.now:
        park(r.ctx, r.enr, due, f"wait until {source_text(op)}" + (f" at {op['at']}" if op.get("at") else ""))
        r.enr.pc += 1
        return False
    r.enr.pc += 1
    return True


def _wait_for(r: Run, op: WaitForOp) -> bool:
    r.enr.wait_event = op["event"]
    park(r.ctx, r.enr, r.ctx.now + int(op["seconds"]), f"waiting for {op['event']}")
    return False  # pc stays on the wait_for: resume_on_event/resume_due decide where to go


def _branch(r: Run, op: BranchOp) -> bool:
    taken = evaluate(op["cond"], r.scope)
    r.ctx.log(r.contact.id, r.enr.rule_id, "branch", r.enr.id, step=op.get("id"), cond=source_text(op), taken=taken)
    r.enr.pc = r.enr.pc + 1 if taken else int(op["else"])
    return True


def _jump(r: Run, op: JumpOp) -> bool:
    r.enr.pc = int(op["to"])
    return True


def _split(r: Run, op: SplitOp) -> bool:
    if op.get("auto"):
        arm, why = autosplit.assign(r.ctx.session, r.ctx.config, r.enr.rule_id, op, r.contact.id, r.ctx.now)
        r.ctx.log(r.contact.id, r.enr.rule_id, "split", r.enr.id, arm=arm["name"], pc=r.enr.pc, step=op["id"], auto=why)
    else:
        nth = sum(1 for earlier in r.plan["steps"][: r.enr.pc] if earlier.get("op") == "split")
        arm = _split_arm(r.contact.id, r.enr.rule_id, op["arms"], nth)
        r.ctx.log(r.contact.id, r.enr.rule_id, "split", r.enr.id, arm=arm["name"], pc=r.enr.pc, step=op["id"])
    r.enr.pc = int(arm["to"])
    return True


def _start(ctx: EngineContext, enr: Enrolment, contact: Contact, op: Any, scope: Scope) -> None:
    other = ctx.session.scalar(select(Rule).where(Rule.name == op["rule"]))
    if other is not None:
        enrol(ctx, other, contact, enr.event_id, f"started by rule {enr.rule_id}")


def _per_contact_send(ctx: EngineContext, plan: RulePlan, op: SendOp) -> bool:
    """Whether a group may take the send: not when it depends on each contact (quiet hours in their zone, their
    best time, waiting for their frequency cap) or carries the rule's priority to the outbox."""
    if "best_within" in op or plan.get("on_cap") == "wait" or plan.get("priority"):
        return False
    return policy.quiet_window(plan.get("quiet_hours"), channel_class(ctx, op["channel"])) is None


def _unheard(event: str) -> Callable[[EngineContext, RulePlan, Any], bool]:
    """A step whose event no rule reacts to: else the interpreter raises and handles it."""
    return lambda ctx, plan, op: not ctx.listens_to(event)


#: every kind of plan step (``op``) the compiler emits, and how it runs (a test keeps this complete)
STEPS: dict[str, Step[Any]] = {
    "send": Step(_send, bulk.send, groupable=_per_contact_send),
    "wait": Step(_wait, bulk.wait, ends_group=True),
    "exit": Step(_exit, bulk.exit, ends_group=True),
    "tag": Step(_acting(effects.tag), bulk.tag, groupable=_unheard("tag.added")),
    "score": Step(_acting(effects.score), bulk.score, groupable=_unheard("score.changed")),
    "stop": Step(_stop, INTERPRETER_ONLY),
    "wait_until_time": Step(_wait_until_time, INTERPRETER_ONLY),  # each contact's own time zone
    "wait_until": Step(_wait_until, INTERPRETER_ONLY),  # each contact's own date
    "wait_for": Step(_wait_for, INTERPRETER_ONLY),
    "branch": Step(_branch, INTERPRETER_ONLY),
    "jump": Step(_jump, INTERPRETER_ONLY),
    "split": Step(_split, INTERPRETER_ONLY),
    "untag": Step(_acting(effects.untag), INTERPRETER_ONLY),
    "set": Step(_acting(effects.set_step), INTERPRETER_ONLY),
    "note": Step(_acting(effects.note), INTERPRETER_ONLY),
    "task": Step(_acting(effects.task), INTERPRETER_ONLY),
    "notify": Step(_acting(effects.notify), INTERPRETER_ONLY),
    "start": Step(_acting(_start), INTERPRETER_ONLY),
    "plugin": Step(_acting(effects.plugin), INTERPRETER_ONLY),
}


# -- entering ------------------------------------------------------------------------------
def may_enter(ctx: EngineContext, rule_id: int, plan: RulePlan, contact_id: int) -> bool:
    if (plan.get("entry") or {}).get("kind", "default") == "always":
        return True
    ctx.session.flush()
    rows = ctx.session.execute(
        select(Enrolment.state, Enrolment.entered).where(
            Enrolment.contact_id == contact_id, Enrolment.rule_id == rule_id
        )
    ).all()
    return entry_allows(plan, [(state, entered) for state, entered in rows], ctx.now)


def entry_allows(plan: RulePlan, earlier: list[tuple[int, int]], now: int) -> bool:
    """Whether a contact whose enrolments in the rule are *earlier* (state, entered) may enter it at *now*."""
    policy = plan.get("entry") or {"kind": "default"}
    kind = policy.get("kind", "default")
    if kind == "always":
        return True
    if kind == "once":
        return not earlier
    if any(state == EnrolmentState.ACTIVE for state, _ in earlier):
        return False
    if kind == "once_every":
        window = int(policy.get("every") or 0)
        return all(entered <= now - window for _, entered in earlier)
    return True


def enrol(ctx: EngineContext, rule: Rule, contact: Contact, event_id: int | None, reason: str) -> Enrolment | None:
    """Enter *contact* into *rule*'s active version (if its entry policy allows) and run to the first wait."""
    enr = enter(ctx, rule, contact, event_id, reason)
    if enr is not None:
        run(ctx, enr, contact)
    return enr


def enter(ctx: EngineContext, rule: Rule, contact: Contact, event_id: int | None, reason: str) -> Enrolment | None:
    """Enter *contact* into *rule*'s active version if its entry policy allows; the journey has not run yet."""
    if rule.status != RuleStatus.ACTIVE.value or rule.active_version_id is None:
        return None
    plan = ctx.plan(rule.active_version_id)
    if not may_enter(ctx, rule.id, plan, contact.id):
        return None
    enr = Enrolment(
        contact_id=contact.id,
        rule_id=rule.id,
        version_id=rule.active_version_id,
        pc=0,
        state=EnrolmentState.ACTIVE,
        due=None,
        entered=ctx.now,
        event_id=event_id,
    )
    ctx.session.add(enr)
    ctx.session.flush()
    ctx.log(contact.id, rule.id, "enter", enr.id, because=reason)
    return enr


# -- running -----------------------------------------------------------------------------
def _split_arm(contact_id: int, rule_id: int, arms: list[Arm], nth: int = 0) -> Arm:
    """A stable arm per (contact, rule, split): the same contact always lands in the same arm of a split.

    *nth* is the split's place among the rule's splits (0: the first): each later split draws its own bucket, so
    that its arms are independent of the earlier ones' (with one bucket per contact and rule, two 50/50 splits sent
    everyone down A-A or B-B, and the second comparison only repeated the first). The first split's bucket is the
    one every split drew before (the arms contacts already had stay theirs)."""
    salt = f"{rule_id}:{contact_id}" if nth == 0 else f"{rule_id}:{contact_id}:{nth}"
    bucket = int(hashlib.sha256(salt.encode()).hexdigest()[:8], 16) % 100
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


def run(ctx: EngineContext, enr: Enrolment, contact: Contact | None = None) -> None:
    """Execute *enr* from its program counter until it waits or finishes."""
    plan = ctx.plan(enr.version_id)
    steps = plan["steps"]
    contact = contact or ctx.session.get(Contact, enr.contact_id)
    if contact is None:
        finish(ctx, enr, "stopped")
        return
    scope = condition_scope(
        ctx, contact, enr.rule_id, enr.id, event_loader=lambda: effects.event_props(ctx, enr.event_id)
    )
    state = Run(ctx, enr, contact, plan, scope)
    enr.due = None
    enr.wait_event = None
    if enr.error is not None:  # it failed before; if this run fails too, the savepoint restores both
        enr.attempts = enr.error = None
    for _ in range(MAX_STEPS_PER_RUN):
        if enr.pc >= len(steps):
            finish(ctx, enr, "completed")
            return
        op = steps[enr.pc]
        step = STEPS.get(op["op"])
        if step is None:
            raise RuntimeError(
                f"unknown instruction {op['op']!r} in rule {enr.rule_id}: was the plan compiled by a newer Nudge?"
            )
        if not step.run(state, op):
            return
    raise RuntimeError(f"enrolment {enr.id} ran {MAX_STEPS_PER_RUN} steps without waiting")


# -- the set-based path ----------------------------------------------------------------------
#: past the last step: the end, run as an ``exit``
_END: ExitOp = {"id": "end", "line": None, "op": "exit"}


def segment(plan: RulePlan, pc: int, ctx: EngineContext) -> list[Instruction] | None:
    """The steps from *pc* to the next wait or the end, if a group may take them all set-based; else None."""
    steps = plan["steps"]
    ops: list[Instruction] = []
    while pc < len(steps):
        op = steps[pc]
        step = STEPS.get(op["op"])
        if step is None or step.group is INTERPRETER_ONLY or not step.groupable(ctx, plan, op):
            return None
        ops.append(op)
        if step.ends_group:
            return ops
        pc += 1
    return ops + [_END]


def advance_group(
    ctx: EngineContext,
    version_id: int,
    pc: int,
    ids: list[int],
    ops: list[Instruction],
    rule_id: int,
    rule_name: str,
    entered: dict[str, Any] | None = None,
    *,
    seen: Any = None,
    placed: dict[str, Any] | None = None,
) -> list[int]:
    """Run *ops* (from :func:`segment`) for the enrolments *ids*, all at *pc* of *version_id*; return new outbox
    row ids. Each step does for the group exactly what :func:`run` does for each member.

    :param entered: the data of the ``enter`` trace line of enrolments that have just entered, written with the
        run's lines.
    :param seen: moments the contacts were last seen, not written yet (see :class:`bulk.Group`): a score step
        moves ``last_seen`` in the same rewrite.
    :param placed: where enrolments that have just entered were inserted (their ``pc`` and wait columns, see
        :class:`bulk.Group`), when not at *pc*."""
    at = pc if placed is None else placed["pc"]
    group = bulk.Group(ctx, version_id, at, ids, rule_id, rule_name, to_dt(ctx.now), seen=seen, placed=placed)
    if entered is not None:
        group.trace("enter", entered)
    for offset, op in enumerate(ops):
        group.at = pc + offset
        step = STEPS[op["op"]]
        if step.group is None:
            raise RuntimeError(f"the step {op['op']!r} runs only in the interpreter")
        step.group(group, op)
    group.flush()  # a run ends by moving on, which writes it; this is for one that would not
    return group.message_ids


# -- resuming -----------------------------------------------------------------------------
def resume_due(ctx: EngineContext, enr: Enrolment, contact: Contact | None = None) -> None:
    """Continue a waiting enrolment whose time has come (a wait ended, or a ``wait for`` timed out)."""
    if enr.state != EnrolmentState.ACTIVE:
        return
    if enr.wait_event is not None:
        op = ctx.plan(enr.version_id)["steps"][enr.pc]
        ctx.log(enr.contact_id, enr.rule_id, "timeout", enr.id, event=enr.wait_event)
        enr.pc = op["on_timeout"] if op["op"] == "wait_for" else enr.pc + 1
        enr.wait_event = None
    run(ctx, enr, contact)


def resume_on_event(ctx: EngineContext, enr: Enrolment, contact: Contact, event: Event) -> bool:
    """If *enr* waits for *event* (and its ``where`` holds), take the ``then`` path; True if it did."""
    op = ctx.plan(enr.version_id)["steps"][enr.pc]
    where = op["where"] if op["op"] == "wait_for" else None
    if not reacts(where, event.props):
        return False  # a machine's open or click: it does not end the wait unless the where asks about machines
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
    return list(
        ctx.session.scalars(
            select(Enrolment)
            .where(Enrolment.contact_id == contact_id, Enrolment.state.in_(states))
            .order_by(Enrolment.id)
        )
    )


def count_active(ctx: EngineContext, rule_id: int) -> int:
    return (
        ctx.session.scalar(
            select(func.count(Enrolment.id)).where(
                Enrolment.rule_id == rule_id, Enrolment.state == EnrolmentState.ACTIVE
            )
        )
        or 0
    )

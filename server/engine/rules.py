"""Rules as stored data: compile text, keep versions, activate, pause and resume."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from ..db import affected_rows
from ..models import Contact, Enrolment, EnrolmentState, Rule, RuleStatus, RuleVersion, utcnow
from ..models.journeys import ACTIVE_ROWS, NOT_ACTIVE_ROWS


class RuleError(Exception):
    """Rules text did not check; ``diagnostics`` holds every problem, formatted for people."""

    def __init__(self, diagnostics: list[str]):
        super().__init__("\n".join(diagnostics))
        self.diagnostics = diagnostics


class RuleStateError(ValueError):
    """A rule cannot make this change in its state (a draft cannot be paused); the message says why and what to do."""


@dataclass
class RuleChange:
    name: str
    action: str  # "create", "update", "unchanged", "pause", "resume"
    version: int | None = None
    in_flight: int = 0  # contacts mid-journey on the old version
    details: list[str] = field(default_factory=list)
    held: int = 0  # of them, those a pause holds (activating the rule resumes them)


@dataclass
class Checked:
    """Rules files parsed, checked and compiled together: what ``nudge check`` prints and ``nudge apply`` runs."""

    files: int = 0
    rules: int = 0
    #: (is an error, the problem formatted for people), in file and source order
    problems: list[tuple[bool, str]] = field(default_factory=list)
    #: the compiled rules, when no file has an error; each also carries its own ``source`` text and ``file``
    plans: list[dict[str, Any]] = field(default_factory=list)
    #: every problem found in a file, as the language's diagnostics (line, column, fix), in file and source order
    diagnostics: list[Any] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [text for is_error, text in self.problems if is_error]

    @property
    def warnings(self) -> list[str]:
        return [text for is_error, text in self.problems if not is_error]


def check_sources(sources: Iterable[tuple[str, str | bytes]], vocabulary: Any) -> Checked:
    """Parse, check and compile ``(filename, text or raw bytes)`` pairs as one set of rules.

    :param vocabulary: a :class:`dsl.Vocabulary`, or a callable giving the one for a file name. When it
        knows which events are raised (``raised`` is set), an event name written in more than one place
        across the files counts as raised too.
    """
    import dsl

    parsed = []
    for filename, text in sources:
        words = vocabulary(filename) if callable(vocabulary) else vocabulary
        if isinstance(text, bytes):  # undecodable bytes become diagnostics, not an exception
            result = dsl.parse_bytes(text, filename, words.steps)  # the plugins' steps are no misspelt ones
            parsed.append((text.decode("utf-8", errors="replace"), result, words))
        else:
            parsed.append((text, dsl.parse(text, filename=filename, steps=words.steps), words))
    written = Counter(
        name
        for _text, result, _words in parsed
        if result.program is not None
        for name in dsl.listened_events(result.program)
    )
    twice = {name for name, count in written.items() if count > 1}
    # the rules saved together may start each other, whichever file each is in
    together = frozenset(
        name for _text, result, _words in parsed if result.program is not None for name in result.program.rule_names()
    )
    checked = Checked(files=len(parsed))
    for text, result, words in parsed:
        lines = text.split("\n")  # once: every diagnostic and rule of the file reads its lines
        diagnostics = list(result.diagnostics)
        if result.program is not None:
            if words.raised is not None:
                words = words.with_raised(twice)
            if words.rules is not None:
                words = replace(words, rules=words.rules | together)
            checked.rules += len(result.program.rules)
            diagnostics += dsl.check(result.program, words)
        checked.problems += [(diag.is_error, diag.format(lines)) for diag in diagnostics]
        checked.diagnostics += diagnostics
        if result.program is not None and not any(d.is_error for d in diagnostics):
            compiled = dsl.compile_program(result.program)["rules"]
            for rule, plan in zip(result.program.rules, compiled, strict=True):
                checked.plans.append(
                    {
                        **plan,
                        "source": rule_text(lines, rule.span.line, rule.span.end_line),
                        "file": result.program.filename,
                    }
                )
    seen: set[str] = set()
    for annotated in checked.plans:
        if annotated["name"] in seen:
            checked.problems.append((True, f"rule {annotated['name']!r} is defined twice; rule names must be unique"))
        seen.add(annotated["name"])
    if checked.errors:
        checked.plans = []
    return checked


def rule_text(lines: list[str], first: int, last: int) -> str:
    """Lines *first* to *last* (1-based) of a file's *lines* (split at ``\n``), with the comment lines right above
    them: one rule's own text."""
    while first > 1 and lines[first - 2].lstrip().startswith("#"):
        first -= 1
    return "\n".join(line.rstrip("\r") for line in lines[first - 1 : last]) + "\n"


def compile_rules(
    sources: Iterable[tuple[str, str]], vocabulary: Any
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Parse, check and compile ``(filename, text)`` pairs (see :func:`check_sources`).

    :return: (rule plans, error lines, warning lines) — plans only when there are no errors.
    """
    checked = check_sources(sources, vocabulary)
    return checked.plans, checked.errors, checked.warnings


def in_flight(session: Session, rule_id: int) -> int:
    """Contacts mid-journey in the rule, held ones (rule paused) included: each state from its partial index."""
    count = select(func.count()).where(Enrolment.rule_id == rule_id)
    active = session.scalar(count.where(sql(ACTIVE_ROWS))) or 0
    return active + (session.scalar(count.where(*_state_is(EnrolmentState.HELD))) or 0)


def _state_is(state: EnrolmentState) -> tuple[Any, ...]:
    """``state = <state>``, with the text of the partial index holding such journeys (SQLite uses it then)."""
    return (Enrolment.state == state, sql(ACTIVE_ROWS if state == EnrolmentState.ACTIVE else NOT_ACTIVE_ROWS))


def position_map(session: Session, rule_id: int, new_plan: dict[str, Any]) -> list[tuple[int, int, int | None, int]]:
    """Where contacts mid-journey would go on *new_plan*: (old version, old pc, new pc or None, contacts).

    Positions map by step identity (the compiler's stable ``id``), never by index; a step that no
    longer exists in the new version has no position (None).
    """
    new_ids = {op["id"]: pc for pc, op in enumerate(new_plan["steps"])}
    rows = session.execute(
        select(Enrolment.version_id, Enrolment.pc, func.count(Enrolment.id))
        .where(Enrolment.rule_id == rule_id, Enrolment.state == EnrolmentState.ACTIVE)
        .group_by(Enrolment.version_id, Enrolment.pc)
        .order_by(Enrolment.version_id, Enrolment.pc)
    ).all()
    out = []
    for version_id, pc, count in rows:
        steps = session.get_one(RuleVersion, version_id).plan["steps"]
        step_id = steps[pc]["id"] if pc < len(steps) else None
        out.append((version_id, pc, new_ids.get(step_id), count))
    return out


def migrate_positions(
    session: Session, rule_id: int, new_version_id: int, mapping: list[tuple[int, int, int | None, int]]
) -> int:
    """Move mid-journey contacts onto the new version where their step still exists; return how many moved."""
    moved = 0
    for version_id, pc, new_pc, _count in mapping:
        if new_pc is None or version_id == new_version_id:
            continue
        moved += affected_rows(
            session.execute(
                update(Enrolment)
                .where(
                    Enrolment.rule_id == rule_id,
                    Enrolment.version_id == version_id,
                    Enrolment.pc == pc,
                    Enrolment.state == EnrolmentState.ACTIVE,
                )
                .values(version_id=new_version_id, pc=new_pc)
            )
        )
    return moved


def plan_changes(session: Session, plans: list[dict[str, Any]], prune: bool = False) -> list[RuleChange]:
    """What :func:`apply_plans` would do, without doing it."""
    return _planned(session, plans, prune)[0]


def _planned(session: Session, plans: list[dict[str, Any]], prune: bool) -> tuple[list[RuleChange], dict[str, Rule]]:
    """:func:`plan_changes`, and the rules of *plans* that exist (by name: :func:`apply_plans` writes to them)."""
    changes: list[RuleChange] = []
    names = set()
    rules = rules_named(session, [plan["name"] for plan in plans])  # one read for them all, not one each
    active_ids = [rule.active_version_id for rule in rules.values() if rule.active_version_id]
    current_of: dict[int, RuleVersion] = {}
    for chunk in _chunks(active_ids):
        current_of.update((v.id, v) for v in session.scalars(select(RuleVersion).where(RuleVersion.id.in_(chunk))))
    ids = [rule.id for rule in rules.values()]
    numbers = _per_rule(session, select(RuleVersion.rule_id, func.max(RuleVersion.number)), RuleVersion.rule_id, ids)
    count = select(Enrolment.rule_id, func.count())
    active = _per_rule(session, count.where(sql(ACTIVE_ROWS)), Enrolment.rule_id, ids)
    held = _per_rule(session, count.where(*_state_is(EnrolmentState.HELD)), Enrolment.rule_id, ids)
    for plan in plans:
        names.add(plan["name"])
        rule = rules.get(plan["name"])
        if rule is None:
            changes.append(RuleChange(plan["name"], "create", 1))
            continue
        if rule.active_version_id is None:  # a draft: never run, so nobody is mid-journey
            changes.append(RuleChange(plan["name"], "create", numbers.get(rule.id, 0) + 1))
            continue
        current = current_of.get(rule.active_version_id)
        if current is not None and _same(current.plan, plan):
            action = "resume" if rule.status == RuleStatus.PAUSED.value else "unchanged"
            changes.append(RuleChange(plan["name"], action, current.number, held=held.get(rule.id, 0)))
        else:
            on_hold = held.get(rule.id, 0)
            mid_journey = active.get(rule.id, 0) + on_hold  # as in_flight() counts them
            change = RuleChange(plan["name"], "update", numbers.get(rule.id, 0) + 1, mid_journey, held=on_hold)
            moving = position_map(session, rule.id, plan) if active.get(rule.id) else []
            for _version, pc, new_pc, contacts in moving:
                if new_pc is None:
                    change.details.append(
                        f"{contacts} contact(s) at step {pc + 1} cannot move: that step is gone "
                        "in the new version (they finish on their current version)"
                    )
            changes.append(change)
    if prune:
        for rule in session.scalars(select(Rule).where(Rule.status == RuleStatus.ACTIVE.value)):
            if rule.name not in names:
                changes.append(RuleChange(rule.name, "pause", in_flight=in_flight(session, rule.id)))
    return changes, rules


def rules_named(session: Session, names: list[str]) -> dict[str, Rule]:
    """The rules of these *names* that exist, by name (read a few hundred names a statement)."""
    found: dict[str, Rule] = {}
    for chunk in _chunks(list(dict.fromkeys(names))):
        found.update((rule.name, rule) for rule in session.scalars(select(Rule).where(Rule.name.in_(chunk))))
    return found


def _per_rule(session: Session, query: Any, rule_id: Any, ids: list[int]) -> dict[int, int]:
    """*query* (selecting a rule id and a number) grouped by *rule_id*, for the rules *ids*: ``{rule id: number}``."""
    found: dict[int, int] = {}
    for chunk in _chunks(ids):
        found.update((key, value) for key, value in session.execute(query.where(rule_id.in_(chunk)).group_by(rule_id)))
    return found


def _chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
    return (values[i : i + size] for i in range(0, len(values), size))


def next_number(session: Session, rule_id: int) -> int:
    """The number the rule's next version gets."""
    return (session.scalar(select(func.max(RuleVersion.number)).where(RuleVersion.rule_id == rule_id)) or 0) + 1


#: what a plan from :func:`check_sources` carries beyond the compiled rule (kept on the version, not in its plan)
_ANNOTATIONS = ("source", "file")


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = lambda p: {k: v for k, v in p.items() if k not in ("line", *_ANNOTATIONS)}  # noqa: E731
    return strip(a) == strip(b)


def new_version(
    session: Session,
    rule: Rule,
    plan: dict[str, Any],
    source: str | None = None,
    actor: str | None = None,
    number: int | None = None,
    *,
    flush: bool = True,
) -> RuleVersion:
    """Store *plan* as the rule's next version, not active yet (a draft until :func:`make_active`); with *flush*
    False the caller flushes (many versions at once), and the version has no id until then."""
    version = RuleVersion(
        rule_id=rule.id,
        number=number or next_number(session, rule.id),
        actor=actor,
        plan={k: v for k, v in plan.items() if k not in _ANNOTATIONS},
        source=source if source is not None else plan.get("source", ""),
    )
    session.add(version)
    if flush:
        session.flush()
    return version


def make_active(
    session: Session,
    rule: Rule,
    version: RuleVersion,
    change: RuleChange,
    migrate: bool = False,
    *,
    journeys: bool = True,
) -> None:
    """Run *version* of *rule* from now on; with *migrate*, contacts mid-journey move to the same step of it.

    :param journeys: False for a rule made in this transaction (nobody in its journeys: none to resume).
    """
    _set_status(session, rule, RuleStatus.ACTIVE, journeys=journeys)  # first: contacts held by a pause may migrate
    if migrate and change.action == "update":
        moved = migrate_positions(session, rule.id, version.id, position_map(session, rule.id, version.plan))
        change.details.append(f"{moved} contact(s) moved to v{version.number} at the same step")
    rule.active_version_id = version.id
    if version.activated_at is None:
        version.activated_at = utcnow()


def apply_plans(
    session: Session,
    plans: list[dict[str, Any]],
    sources: dict[str, str] | None = None,
    prune: bool = False,
    origin: str | None = None,
    migrate: bool = False,
    actor: str | None = None,
    from_files: bool = False,
) -> list[RuleChange]:
    """Store new versions of changed rules and activate them (in the caller's transaction).

    Contacts mid-journey stay on the version they entered with, unless *migrate*: then each moves to
    the same step (by identity) of the new version; those whose step is gone stay where they are.

    :param origin: where rules made now come from (``"api"``).
    :param actor: who saves the versions (``api:<key prefix>``).
    :param from_files: ``nudge apply``: each rule's origin is the file it was read from (``file`` of its
        plan), set on every apply, and each version's actor is ``apply:<file>``.
    """
    changes, rules = _planned(session, plans, prune)
    by_name = {p["name"]: p for p in plans}
    for change in changes:
        if change.action == "pause":
            pause(session, change.name)
    kept = [change for change in changes if change.action != "pause"]
    for change in kept:  # the new rules first, all in one flush (their ids)
        if change.name not in rules:
            rules[change.name] = Rule(name=change.name, status=RuleStatus.ACTIVE.value, origin=origin)
            session.add(rules[change.name])
    session.flush()
    versions: dict[str, RuleVersion] = {}
    for change in kept:  # then their versions, again in one flush
        plan, rule = by_name[change.name], rules[change.name]
        file = plan.get("file") if from_files else None
        if file:
            rule.origin = file
        if change.action in ("create", "update"):
            actor_now = f"apply:{file}" if file else actor
            source = (sources or {}).get(change.name)
            versions[change.name] = new_version(session, rule, plan, source, actor_now, change.version, flush=False)
    session.flush()
    for change in kept:  # journeys a pause holds are resumed (a rule made just now, or not paused, has none)
        rule = rules[change.name]
        if change.name in versions:
            make_active(session, rule, versions[change.name], change, migrate, journeys=change.held > 0)
        else:
            _set_status(session, rule, RuleStatus.ACTIVE, journeys=change.held > 0)
    session.flush()
    return changes


def pause(session: Session, name: str) -> Rule:
    """Stop rule *name*: nobody enters, and contacts mid-journey are held where they are.

    :raises RuleStateError: for a draft (it never ran).
    """
    rule = _not_draft(get_rule(session, name), "paused")
    _set_status(session, rule, RuleStatus.PAUSED)
    return rule


def resume(session: Session, name: str) -> Rule:
    """Run rule *name* again; its held contacts go on (a wait that ended meanwhile ends at once).

    :raises RuleStateError: for a draft: activating one is a choice of version, with its plan shown first.
    """
    rule = _not_draft(get_rule(session, name), "resumed")
    _set_status(session, rule, RuleStatus.ACTIVE)
    return rule


def _not_draft(rule: Rule, verb: str) -> Rule:
    if rule.active_version_id is None:
        raise RuleStateError(
            f"rule {rule.name!r} is a draft, never activated, so it cannot be {verb}; "
            "activate a version of it first (the rule's page in the admin UI)"
        )
    return rule


def _set_status(session: Session, rule: Rule, status: RuleStatus, journeys: bool = True) -> None:
    held, active = EnrolmentState.HELD, EnrolmentState.ACTIVE
    before, after = (active, held) if status == RuleStatus.PAUSED else (held, active)
    if journeys:
        session.execute(update(Enrolment).where(Enrolment.rule_id == rule.id, *_state_is(before)).values(state=after))
    rule.status = status.value
    rule.updated_at = utcnow()


def get_rule(session: Session, name: str) -> Rule:
    rule = session.scalar(select(Rule).where(Rule.name == name))
    if rule is None:
        known = ", ".join(sorted(session.scalars(select(Rule.name)))) or "none"
        raise LookupError(f"no rule named {name!r} (known rules: {known})")
    return rule


def timed_rules_need_planning(session: Session, changes: list[RuleChange]) -> list[Contact]:
    """Contacts whose date triggers must be (re)planned after *changes* (all of them, if any timed rule changed)."""
    if not any(c.action in ("create", "update", "resume") for c in changes):
        return []
    return list(session.scalars(select(Contact).order_by(Contact.id)))

"""The stats rollup's journey trace: what a batch of trace lines adds to the per-step counters (docs/stats.md).

Most journeys of a batch count by their lines alone: a journey that entered, tagged, scored, sent and started a
wait counts ``entered`` and the wait's ``reached`` and ``waited``, whichever journey it is. Those lines are counted
by the database (one ``GROUP BY`` over the batch's entries, waits, exits and branches; the trace's JSON is read
there, not in Python). A journey whose lines depend on what came before them is folded line by line in Python,
as it always was: one that was waiting when the batch began (its next line leaves the wait), one whose wait is
followed by another line in the batch, and one that was ever split (its arm is part of every counter's key).
Both give the same counters; tests/engine/test_rollup_fold.py checks them side by side.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sqlalchemy import BigInteger, Text, and_, case, cast, func, literal_column, null, or_, select
from sqlalchemy.orm import Session, aliased

from ..models import Enrolment, JourneyLog, RuleVersion
from .arms import ArmKeys
from .bulk import ids_in
from .rollup_settled import below

#: rows read per source per transaction: a backlog is worked off in bounded steps
BATCH = 5000
#: seconds a day: the counters count per day since 1970, UTC
DAY = 86400
#: the step key of rule-wide counters (entered)
RULE = ""
#: past the last step: where a journey that ran off the end completes
END = "end"
#: trace lines the outbox writes when it sends or suppresses a message, after the journey moved on
OUTBOX_ACTIONS = ("send", "suppressed")
#: the trace lines whose data the rollup reads (entries and waits, exits, branches and splits)
DATA_ACTIONS = ("enter", "wait", "exit", "branch", "split")
#: exit reasons of a journey running its steps (the end, a ``stop`` step), not of one waiting
RUN_EXITS = ("completed", "stopped")
#: the members of a trace line's data that the counts read (each only on the lines whose counts read it)
MEMBERS = {"pc": ("enter", "wait", "exit"), "until": ("enter",), "reason": ("exit",), "step": ("branch",)}

Key = tuple[int, int, str, str, int, str]


class _Plans:
    """The step ids and split arm keys of rule versions' plans, read once per version."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._keys: dict[int, ArmKeys] = {}
        self._before: dict[tuple[int, str, str], str] = {}

    def keys(self, version_id: int) -> ArmKeys:
        """How the counters of a version key their split arms (its plan's steps and splits)."""
        keys = self._keys.get(version_id)
        if keys is None:
            plan = self.session.scalar(select(RuleVersion.plan).where(RuleVersion.id == version_id))
            keys = self._keys[version_id] = ArmKeys(plan)
        return keys

    def before(self, version_id: int, key: str, step: str) -> str:
        """:meth:`ArmKeys.before` of a version, worked out once per arms and step (a batch's sends are of a few
        steps, most journeys under the same arms)."""
        arms = self._before.get((version_id, key, step))
        if arms is None:
            arms = self._before[(version_id, key, step)] = self.keys(version_id).before(key, step)
        return arms

    def step(self, version_id: int, pc: Any) -> str:
        """The plan's id of step *pc* of a version (``end`` past the last; "" when unknown)."""
        if not isinstance(pc, int):
            return RULE
        ids = self.keys(version_id).steps
        return ids[pc] if 0 <= pc < len(ids) else END


class _Journeys:
    """What the rollup needs to know of the journeys a batch touches: their rule version, split arms (the key of
    their counters, :mod:`.arms`), last step."""

    def __init__(
        self,
        session: Session,
        enrolment_ids: set[int],
        below: int,
        trail: bool = True,
        plans: _Plans | None = None,
        contacts: set[int] | None = None,
    ) -> None:
        """:param contacts: the journeys' contacts as their lines name them (those of their enrolments by default;
        an erased journey has none)."""
        self.session = session
        self.plans = plans or _Plans(session)
        self.version: dict[int, int] = {}
        self.rule: dict[int, int] = {}
        self.arm: dict[int, str] = {}
        #: the step where each journey's last counted wait started, while nothing has followed it
        self.waiting: dict[int, str] = {}
        ids = sorted(enrolment_ids)
        contacts = set(contacts or ())
        # each id list is one bound value (bulk.ids_in): one statement of each kind, however many journeys
        for enr_id, version_id, rule_id, contact_id in (
            session.connection()  # Core rows, one fetchall: not the ORM's loading, row by row
            .execute(
                select(Enrolment.id, Enrolment.version_id, Enrolment.rule_id, Enrolment.contact_id).where(
                    ids_in(session, Enrolment.id, ids)
                )
            )
            .all()
        ):
            self.version[enr_id], self.rule[enr_id] = version_id, rule_id
            contacts.add(contact_id)
        self.lines = _lines_of(session, JourneyLog, ids, contacts)
        if trail:
            self._trail(below)
        for enr_id, data in (
            session.connection()
            .execute(
                select(JourneyLog.enrolment_id, JourneyLog.data)
                .where(self.lines, JourneyLog.action == "split", JourneyLog.id <= below)
                .order_by(JourneyLog.id)
            )
            .all()
        ):
            self.took(enr_id, data)

    def _trail(self, below: int) -> None:
        """Where each journey stood before this batch: waiting at a step, if its last trace line started a wait."""
        last = (
            select(JourneyLog.enrolment_id, func.max(JourneyLog.id).label("id"))
            .where(
                self.lines,
                JourneyLog.id <= below,
                JourneyLog.action.not_in(OUTBOX_ACTIONS),
            )
            .group_by(JourneyLog.enrolment_id)
            .subquery()
        )
        for row in self.session.execute(
            select(JourneyLog.enrolment_id, JourneyLog.action, _data_if_read()).join(last, JourneyLog.id == last.c.id)
        ):
            if _waits(row.action, row.data):
                self.waiting[row.enrolment_id] = self.step(row.enrolment_id, _pc(row.action, row.data or {}))

    def step(self, enr_id: int, pc: Any) -> str:
        """The plan's id of step *pc* of the journey's version (``end`` past the last; "" when unknown)."""
        return self.plans.step(self.version.get(enr_id, 0), pc)

    def took(self, enr_id: int, data: Any) -> None:
        """The journey took a split: *data* of its trace line (its arm, and the split's step)."""
        keys = self.plans.keys(self.version.get(enr_id, 0))
        self.arm[enr_id] = keys.took(self.arm.get(enr_id, ""), data if isinstance(data, dict) else {})

    def arm_before(self, enr_id: int, step: str) -> str:
        """The key of the arms the journey took before step *step*: a message that step sent counts under it."""
        return self.plans.before(self.version.get(enr_id, 0), self.arm.get(enr_id, ""), step)


def _lines_of(session: Session, log: Any, journeys: list[int], contacts: Any) -> Any:
    """SQL: the trace lines of *journeys*, found through their *contacts* (the trace's index is the contact's), the
    journey a filter on those few lines."""
    return and_(ids_in(session, log.contact_id, sorted(contacts)), ids_in(session, log.enrolment_id, journeys))


def _waits(action: str, data: Any) -> bool:
    """Whether a trace line starts a wait: ``wait``, or a set-based entry straight into the first wait (``until``;
    lines written before migration 0041 say ``"pc": 0`` too)."""
    return action == "wait" or (action == "enter" and isinstance(data, dict) and "until" in data)


def _pc(action: str, data: dict[str, Any]) -> Any:
    """The step a trace line names: its ``pc``; an entry into a wait without one waits at the first step."""
    return data.get("pc", 0) if action == "enter" else data.get("pc")


def day_of(log: Any = JourneyLog) -> Any:
    """SQL: the day (since 1970, UTC) of a trace line, its time being UNIX seconds (whole ones, as Python's ``int``
    makes them): lines are read, and grouped, by day (the counters' key), not by second."""
    return (cast(log.at, BigInteger) // DAY).label("day")


def _data_if_read() -> Any:
    """A trace line's data where the rollup reads it, else NULL: most lines (tags, scores, sends) are counted by
    their action alone, and their JSON is not decoded for nothing."""
    return case((JourneyLog.action.in_(DATA_ACTIONS), JourneyLog.data), else_=null()).label("data")


def _member(session: Session, key: str, log: Any = JourneyLog) -> Any:
    """Member *key* of a trace line's data as JSON text, NULL where the data has no such member (or is no object):
    a member holding ``null`` is told apart from a missing one, as Python's ``data.get(key, default)`` does."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(log.data.op("->")(literal_column(f"'{key}'")), Text)
    return log.data.op("->", return_type=Text)(literal_column(f"'$.{key}'"))


def _starts_wait(session: Session, log: Any = JourneyLog) -> Any:
    """SQL: the trace line starts a wait (:func:`_waits`)."""
    return or_(log.action == "wait", and_(log.action == "enter", _member(session, "until", log).is_not(None)))


def journey_rows(
    session: Session, after: int, upto: int | None = None, *, line_by_line: bool = False
) -> tuple[int, Counter[Key]]:
    """The counters of the next batch of trace lines past *after* (and up to *upto*: None, no bound), and the last
    line's id.

    :param line_by_line: fold every journey line by line in Python (the reference the SQL counts are tested
        against), not only those that need it.
    """
    window = (
        select(JourneyLog.id)
        .where(JourneyLog.id > after, *below(JourneyLog.id, upto))
        .order_by(JourneyLog.id)
        .limit(BATCH)
        .subquery()
    )
    last = session.scalar(select(func.max(window.c.id)))
    if last is None:
        return after, Counter()
    batch = and_(JourneyLog.id > after, JourneyLog.id <= last)
    counted = and_(batch, JourneyLog.enrolment_id.is_not(None), JourneyLog.rule_id.is_not(None))
    plans = _Plans(session)
    counts: Counter[Key] = Counter()
    if line_by_line or not _sql_json(session):
        stateful = {enr for enr in session.scalars(select(JourneyLog.enrolment_id).where(counted)) if enr is not None}
    else:
        resumed: Counter[Key] = Counter()
        stateful = _stateful(session, after, batch, counted, resumed, plans)
        counts = _grouped(session, counted, stateful, plans) + resumed
    if stateful:
        _line_by_line(session, after, counted, stateful, plans, counts)
    return last, counts


def _sql_json(session: Session) -> bool:
    """Whether the database reads a member of JSON as JSON text (``->``): PostgreSQL, SQLite from 3.38 (older ones
    fold every journey line by line)."""
    if session.get_bind().dialect.name != "sqlite":
        return True
    import sqlite3

    return sqlite3.sqlite_version_info >= (3, 38)


def _stateful(
    session: Session,
    after: int,
    batch: Any,
    counted: Any,
    resumed: Counter[Key] | None = None,
    plans: _Plans | None = None,
) -> set[int]:
    """The journeys of the batch whose lines count by what came before them (see the module's docstring).

    Only the journeys that did not enter in the batch are looked up in the older trace: an ``enter`` line is a
    journey's first, so one that entered in the batch has no older line (most of a burst of new journeys).
    :param resumed: given, a journey that was waiting (never split; nothing follows a wait in the batch) is not
        folded line by line: the wait its first line ends is counted here (:func:`_resumed`), its lines alone."""
    moving = and_(counted, JourneyLog.action.not_in(OUTBOX_ACTIONS))
    # in the batch: a split, or a line after the first that started a wait
    in_batch = or_(
        func.max(case((JourneyLog.action == "split", 1), else_=0)) == 1,
        func.min(case((_starts_wait(session), JourneyLog.id), else_=null())) < func.max(JourneyLog.id),
    )
    entered = func.max(case((JourneyLog.action == "enter", 1), else_=0))
    # the journeys looked up as one bound list (given a subquery, PostgreSQL's planner reads every older line of
    # the trace, table size, per batch)
    stateful: set[int] = set()
    others: list[int] = []
    contacts: set[int] = set()
    firsts: dict[int, int] = {}
    contact = func.max(JourneyLog.contact_id)  # a journey's lines all name its contact
    for enr_id, flag, new, contact_id, first in (
        session.connection()
        .execute(
            select(JourneyLog.enrolment_id, in_batch, entered, contact, func.min(JourneyLog.id))
            .where(moving)
            .group_by(JourneyLog.enrolment_id)
            .having(or_(in_batch, entered == 0))  # the others (most of a burst of entries) need nothing here
        )
        .all()
    ):  # one fetchall (iterating a result fetches a row a call); Core rows, not the ORM's
        if enr_id is None:
            continue  # not counted (``counted`` leaves no such line): for the type checker
        if flag:
            stateful.add(enr_id)
        elif not new:
            others.append(enr_id)
            contacts.add(contact_id)
            firsts[enr_id] = first
    waiting: dict[int, Any] = {}
    older = session.connection().execute(_before(session, after, others, contacts)).all() if others else []
    for enr_id, split, action, pc in older:
        if split == 1 or resumed is None:
            stateful.add(enr_id)
        else:  # where it waits: the step its last line names (the member as JSON text)
            waiting[enr_id] = _pc(action, {} if pc is None else {"pc": json.loads(pc)})
    if waiting and resumed is not None:
        stateful.update(_resumed(session, waiting, firsts, plans or _Plans(session), resumed))
    return stateful


def _resumed(
    session: Session, waiting: dict[int, Any], firsts: dict[int, int], plans: _Plans, counts: Counter[Key]
) -> set[int]:
    """Count the wait each journey of *waiting* (its step's pc) was in when the batch began, and that its first
    line of the batch (*firsts*) ends: ``left`` and ``passed`` at that step, on that line's day, as the line by
    line fold does. :return: the journeys whose first line is an exit where they waited (a goal, a removal), whose
    exit counts at the wait: folded line by line."""
    reason = case((JourneyLog.action == "exit", _member(session, "reason")), else_=null())
    version = func.coalesce(Enrolment.version_id, 0)
    rows = (
        session.connection()
        .execute(
            select(JourneyLog.enrolment_id, JourneyLog.rule_id, day_of(), JourneyLog.action, reason, version)
            .select_from(JourneyLog)
            .outerjoin(Enrolment, Enrolment.id == JourneyLog.enrolment_id)
            .where(ids_in(session, JourneyLog.id, sorted(firsts[enr] for enr in waiting)))
        )
        .all()
    )
    at_wait: set[int] = set()
    for enr_id, rule_id, day, action, why, version_id in rows:
        if action == "exit" and ("unknown" if why is None else json.loads(why)) not in RUN_EXITS:
            at_wait.add(enr_id)
            continue
        step = plans.step(version_id, waiting[enr_id])
        counts[(rule_id, version_id, step, "", day, "left")] += 1
        counts[(rule_id, version_id, step, "", day, "passed")] += 1
    return at_wait


def _before(session: Session, after: int, journeys: list[int], contacts: set[int]) -> Any:
    """SQL: those of *journeys* (of *contacts*) that were ever split, or waiting, before the batch (the last line
    but the outbox's started a wait), with the split flag and that line's action and ``pc``; one look-up of each
    journey's older lines (``older``, found through their contacts), its last line read again (``old``): aliases
    of the trace."""
    old, older = aliased(JourneyLog), aliased(JourneyLog)
    split = func.max(case((older.action == "split", 1), else_=0)).label("split")
    latest = (
        select(func.max(older.id).label("id"), split)
        .where(_lines_of(session, older, journeys, contacts), older.id <= after, older.action.not_in(OUTBOX_ACTIONS))
        .group_by(older.enrolment_id)
        .subquery()
    )
    return (
        select(old.enrolment_id, latest.c.split, old.action, _member(session, "pc", old))
        .join(latest, old.id == latest.c.id)
        .where(or_(latest.c.split == 1, _starts_wait(session, old)))
    )


def _grouped(session: Session, counted: Any, stateful: set[int], plans: _Plans) -> Counter[Key]:
    """The counters of the other journeys' lines, counted by the database: each of their entries, waits, exits and
    branches counts on its own (the journey was not waiting, and was never split)."""
    members = [
        case((JourneyLog.action.in_(actions), _member(session, key)), else_=null()).label(key)
        for key, actions in MEMBERS.items()
    ]
    version = func.coalesce(Enrolment.version_id, 0).label("version_id")
    lines = (
        select(JourneyLog.rule_id, version, day_of(), JourneyLog.action, *members)
        .select_from(JourneyLog)
        .outerjoin(Enrolment, Enrolment.id == JourneyLog.enrolment_id)
        .where(counted, JourneyLog.action.in_(("enter", "wait", "exit", "branch")))
    )
    if stateful:
        lines = lines.where(~ids_in(session, JourneyLog.enrolment_id, sorted(stateful)))
    keys = list(lines.subquery().c)  # each member read once a line, then grouped
    query = select(*keys, func.count().label("n")).group_by(*keys)
    counts: Counter[Key] = Counter()
    for row in session.execute(query):
        data = {key: json.loads(row._mapping[key]) for key in MEMBERS if row._mapping[key] is not None}
        for step, metric in _alone(row.action, data, plans, row.version_id):
            counts[(row.rule_id, row.version_id, step, "", row.day, metric)] += row.n
    return counts


def _alone(action: str, data: dict[str, Any], plans: _Plans, version_id: int) -> list[tuple[str, str]]:
    """(step, metric) of each counter one trace line of a version adds when its journey was not waiting and never
    split."""
    if action == "exit":
        return [(plans.step(version_id, data.get("pc")), f"exit:{data.get('reason', 'unknown')}")]
    moves = [(RULE, "entered")] if action == "enter" else []
    if action == "branch" and isinstance(data.get("step"), str):
        moves.append((data["step"], "reached"))  # the branch's trace line names its step
    if _waits(action, data):
        step = plans.step(version_id, _pc(action, data))
        moves += [(step, "reached"), (step, "waited")]
    return moves


def _line_by_line(
    session: Session, after: int, counted: Any, enrolments: set[int], plans: _Plans, counts: Counter[Key]
) -> None:
    """Fold the lines of *enrolments* in the batch one by one, in order."""
    rows = (
        session.connection()  # Core rows, one fetchall: not the ORM's loading, row by row
        .execute(
            select(
                JourneyLog.enrolment_id,
                JourneyLog.contact_id,
                JourneyLog.rule_id,
                day_of(),
                JourneyLog.action,
                _data_if_read(),
            )
            .where(counted, ids_in(session, JourneyLog.enrolment_id, sorted(enrolments)))
            .order_by(JourneyLog.id)
        )
        .all()
    )
    journeys = _Journeys(session, enrolments, after, plans=plans, contacts={row.contact_id for row in rows})
    for row in rows:
        _journey_row(journeys, row, counts)


def _journey_row(journeys: _Journeys, row: Any, counts: Counter[Key]) -> None:
    """Count one trace line: an entry, a wait started (and the one it ends), a split, an exit."""
    if row.action in OUTBOX_ACTIONS:
        return  # the outbox's note on a send it made later: the journey did not move (its outcome is counted apart)
    enr = row.enrolment_id
    left = journeys.waiting.pop(enr, None)  # a wait this line ends: the journey left its step
    if left is None and row.action not in DATA_ACTIONS:
        return  # a step under way (a tag, a score, a send): nothing to count
    data = row.data if isinstance(row.data, dict) else {}

    def add(step: str, metric: str) -> None:
        counts[(row.rule_id, journeys.version.get(enr, 0), step, journeys.arm.get(enr, ""), row.day, metric)] += 1

    if left is not None:
        add(left, "left")
    reason = data.get("reason", "unknown")
    # a goal (or a removal) ends a journey where it waits; completing or a `stop` step is a step of its own
    at_wait = row.action == "exit" and left is not None and reason not in RUN_EXITS
    if row.action == "exit":
        add(left if at_wait and left is not None else journeys.step(enr, data.get("pc")), f"exit:{reason}")
    if left is not None and not at_wait:
        add(left, "passed")
    if row.action == "enter":
        add(RULE, "entered")
    if row.action == "branch" and isinstance(data.get("step"), str):
        add(data["step"], "reached")  # the branch's trace line names its step
    if row.action == "split":
        journeys.took(enr, data)
        # the split's trace line names its step (lines written before it did: its pc)
        add(data["step"] if isinstance(data.get("step"), str) else journeys.step(enr, data.get("pc")), "reached")
    elif _waits(row.action, data):
        step = journeys.step(enr, _pc(row.action, data))
        add(step, "reached")
        add(step, "waited")
        journeys.waiting[enr] = step

"""Rules, their versions, and the journeys (enrolments) contacts make through them.

Engine times are integer UNIX seconds (UTC): compact on disk — a waiting enrolment is
a few integers — and compared without time-zone surprises on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, JsonType, UTCDateTime, utcnow


class RuleStatus(str, enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    #: saved but never activated: no active version, so the engine never runs it
    DRAFT = "draft"


class Rule(Base):
    __tablename__ = "rules"
    #: the engine's rule index is rebuilt when max(updated_at) moves: keep that lookup cheap
    __table_args__ = (Index("ix_rules_updated_at", "updated_at"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=RuleStatus.ACTIVE.value)
    active_version_id: Mapped[int | None] = mapped_column(Integer)
    #: where the rule came from: the file `nudge apply` read it from (kept once set), "api", "editor"
    origin: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RuleVersion(Base):
    __tablename__ = "rule_versions"
    __table_args__ = (UniqueConstraint("rule_id", "number"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    #: the compiled plan of this one rule (see docs/plan.md)
    plan: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: when this version was first made the active one; NULL: a draft, never run
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: who saved it: a person's email, ``apply:<file>``, ``api:<key prefix>``; NULL before migration 0014
    actor: Mapped[str | None] = mapped_column(String(255))


class RuleTest(Base):
    """A saved "Try it" case of a rule: a made-up contact and a timeline, run again on every save of the rule."""

    __tablename__ = "rule_tests"
    __table_args__ = (UniqueConstraint("rule_id", "name"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    #: the made-up contact: ``{"key", "fields", "tags", "timezone", "consent"}``
    contact: Mapped[dict[str, Any]] = mapped_column(JsonType)
    #: the events, as ``nudge simulate`` timeline lines (JSON Lines)
    timeline: Mapped[str] = mapped_column(Text)
    #: the sends the case expects, ``[{"at", "channel", "template"}]``: what it sent when it was saved
    expected: Mapped[list[Any]] = mapped_column(JsonType)
    #: the last run: passed or not (NULL: never run), what differed, when
    passed: Mapped[bool | None] = mapped_column(Boolean)
    report: Mapped[list[Any] | None] = mapped_column(JsonType)
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(255))


class EnrolmentState(enum.IntEnum):
    ACTIVE = 0  # running or waiting (``due`` says until when, ``wait_event`` for what)
    DONE = 1  # finished all steps
    EXITED = 2  # left early: goal reached, stopped, rule removed
    HELD = 3  # its rule is paused: kept where it is, ``due`` and all, until the rule is resumed
    PARKED = 4  # its next step failed ``MAX_ATTEMPTS`` times: kept where it is until an operator retries it


#: the partial indexes' split of the journeys: the active ones (running or waiting), and the others
ACTIVE_ROWS = "state = 0"
NOT_ACTIVE_ROWS = "state <> 0"
#: journeys in flight (active, held, parked) that an event started: the partial index the retention cleanup reads
EVENT_IN_FLIGHT = "state IN (0, 3, 4) AND event_id IS NOT NULL"


class Enrolment(Base):
    """One contact's journey through one rule version: a program counter and a due time."""

    __tablename__ = "enrolments"
    __table_args__ = (
        Index("ix_enrolments_due", "due", postgresql_where=text(ACTIVE_ROWS), sqlite_where=text(ACTIVE_ROWS)),
        # the rules list's counts per rule, in two partial indexes (migration 0034): the active journeys (most are
        # waiting; no finish time; the state, a 0 of no bytes, lets SQLite read the index alone) and the others
        Index(
            "ix_enrolments_rule_active",
            "rule_id",
            "entered",
            "state",
            postgresql_where=text(ACTIVE_ROWS),
            sqlite_where=text(ACTIVE_ROWS),
        ),
        Index("ix_enrolments_contact_rule", "contact_id", "rule_id"),
        Index(
            "ix_enrolments_rule_state",
            "rule_id",
            "state",
            "entered",
            "finished",
            postgresql_where=text(NOT_ACTIVE_ROWS),
            sqlite_where=text(NOT_ACTIVE_ROWS),
        ),
        # the few journeys that failed (retrying or parked), found without reading the waiting millions
        Index(
            "ix_enrolments_failing",
            "id",
            postgresql_where=text("error IS NOT NULL"),
            sqlite_where=text("error IS NOT NULL"),
        ),
        # the events that started journeys in flight: the retention cleanup keeps them (migration 0029)
        Index(
            "ix_enrolments_event_in_flight",
            "event_id",
            postgresql_where=text(EVENT_IN_FLIGHT),
            sqlite_where=text(EVENT_IN_FLIGHT),
        ),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[int] = mapped_column(Integer)
    pc: Mapped[int] = mapped_column(SmallInteger, default=0)
    state: Mapped[int] = mapped_column(SmallInteger, default=EnrolmentState.ACTIVE)
    #: UNIX seconds when the enrolment should next run; NULL = waiting only for an event
    due: Mapped[int | None] = mapped_column(BigInteger)
    #: while in ``wait for EVENT``: the event name that resumes it
    wait_event: Mapped[str | None] = mapped_column(String(128))
    entered: Mapped[int] = mapped_column(BigInteger)
    finished: Mapped[int | None] = mapped_column(BigInteger)
    #: the event that started the journey (its props are ``event.*`` in conditions)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    exit_reason: Mapped[str | None] = mapped_column(String(16))
    #: failed tries of the step at ``pc``; a failed step is retried at ``due`` (back-off), parked after
    #: ``MAX_ATTEMPTS``. NULL and 0 both mean none: waiting rows stay small.
    attempts: Mapped[int | None] = mapped_column(SmallInteger)
    #: why the last try failed; NULL once the journey moves on
    error: Mapped[str | None] = mapped_column(Text)


class JourneyLog(Base):
    """The trace of every journey: what happened, when, and why. ``nudge explain`` reads it.

    One index besides the id: (contact, time). A journey's lines are found through its contact, the enrolment id
    a filter on those few rows (migration 0041 dropped the index of enrolment ids: 13 bytes a line).
    """

    __tablename__ = "journey_log"
    __table_args__ = (Index("ix_journey_log_contact", "contact_id", "at"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int | None] = mapped_column(BigInteger)
    contact_id: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class TriggerTimer(Base):
    """When a date trigger (anniversary, relative date, inactivity) next fires for one contact."""

    __tablename__ = "trigger_timers"
    __table_args__ = (
        UniqueConstraint("rule_id", "contact_id"),
        Index("ix_trigger_timers_due", "due"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(Integer)
    due: Mapped[int] = mapped_column(BigInteger)


class ScheduleTimer(Base):
    """When a schedule rule (``every day at 09:00``) next fires; per time zone, since it is local time."""

    __tablename__ = "schedule_timers"
    __table_args__ = (UniqueConstraint("rule_id", "timezone"), Index("ix_schedule_timers_due", "due"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    due: Mapped[int] = mapped_column(BigInteger)

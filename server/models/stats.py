"""Rollups of what the engine did: counters per rule, version, step, split arm, day and metric.

``nudge stats``, the API and the results pages read these few rows instead of scanning the journeys, the
outbox or the events (see docs/stats.md, "The funnel").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, UTCDateTime, utcnow


class StatCounter(Base):
    """How many times *metric* happened at one step of one rule version, in one split arm, on one UTC day."""

    __tablename__ = "stat_counters"
    #: the instance-wide reads (overview, results list, dashboard) by metric and days, covering rule and count
    __table_args__ = (Index("ix_stat_counters_metric_day", "metric", "day", "rule_id", "count"),)

    rule_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the rule version's id (0: unknown, its journey was erased)
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the step's id in the plan (``s3``), ``end`` past the last step, "" for the rule as a whole
    step: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the split arm the journey took ("" before or without a split); with several splits, every arm taken so far
    #: (one character per split of the plan, server/engine/arms.py)
    arm: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: UTC day number (UNIX seconds // 86400)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class StatWatermark(Base):
    """How far the rollup has read one append-only source (its rows' ids up to ``last_id`` are counted)."""

    __tablename__ = "stat_watermarks"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)


class Attribution(Base):
    """A conversion (an event carrying a value) and the message it was attributed to when it arrived.

    Written once, with the settings of that moment: a later change of the windows never rewrites it
    (``nudge stats recompute-revenue`` does, on demand). No foreign keys: erasing or expiring the event or the
    message keeps what was earned.
    """

    __tablename__ = "attributions"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the conversion event (one attribution per event)
    event_id: Mapped[int] = mapped_column(Integer, unique=True)
    #: the outbox message that touched the contact last, and its key ``enr:<enrolment>:<step>``
    message_id: Mapped[int] = mapped_column(Integer)
    message_key: Mapped[str] = mapped_column(String(255))
    rule_id: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(64))
    template: Mapped[str] = mapped_column(String(255))
    #: ``click`` (a person's click within the click window) or ``delivery`` (within the delivery window)
    touch: Mapped[str] = mapped_column(String(16))
    touched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the value in ten-thousandths of the currency unit (49.90 is 499000): exact, summed as an integer
    amount: Mapped[int] = mapped_column(BigInteger)
    #: when the conversion happened (the day it counts on)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attributed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

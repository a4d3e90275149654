"""Rollups of what the engine did: counters per rule, version, step, split arm, day and metric.

``nudge stats``, the API and the results pages read these few rows instead of scanning the journeys, the
outbox or the events (see docs/stats.md, "The funnel").
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class StatCounter(Base):
    """How many times *metric* happened at one step of one rule version, in one split arm, on one UTC day."""

    __tablename__ = "stat_counters"

    rule_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the rule version's id (0: unknown, its journey was erased)
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the step's id in the plan (``s3``), ``end`` past the last step, "" for the rule as a whole
    step: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the split arm the journey took ("" before or without a split)
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

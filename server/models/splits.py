"""Auto-winner splits: each test's state (winner, evidence) and every contact's assignment (docs/optimisation.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import NEVER_REUSE_IDS, Base, JsonType


class SplitTest(Base):
    """One ``split auto`` step of a rule: how far the test is (``version`` counts changes of its counts), and the
    winner once declared, by the engine or by hand, with when and the evidence."""

    __tablename__ = "split_tests"
    __table_args__ = (UniqueConstraint("rule_id", "step_id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(16))
    #: bumped whenever an assignment's outcome is decided: part of each contact's seed
    version: Mapped[int] = mapped_column(Integer, default=0)
    winner: Mapped[str | None] = mapped_column(String(2))
    declared_at: Mapped[int | None] = mapped_column(BigInteger)
    #: "engine", or the user or API key that ended the test by hand
    declared_by: Mapped[str | None] = mapped_column(String(64))
    #: the last posteriors, counts, P(best) and expected losses (server.stats.autowinner.Evidence)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class SplitAssignment(Base):
    """One contact's arm in an auto-winner split: decided once its outcome arrived in the window, or the window
    passed without it."""

    __tablename__ = "split_assignments"
    __table_args__ = (Index("ix_split_assignments_open", "test_id", "decided", "deadline"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("split_tests.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    arm: Mapped[str] = mapped_column(String(2))
    assigned_at: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)
    decided: Mapped[bool] = mapped_column(default=False)
    #: when the outcome event happened (within the window); NULL: none (yet)
    outcome_at: Mapped[int | None] = mapped_column(BigInteger)

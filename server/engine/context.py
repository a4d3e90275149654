"""The engine's working state for one batch: session, clock, settings, and what the batch produced."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from sqlalchemy.orm import Session

from ..models import JourneyLog, RuleVersion


@dataclass
class EngineContext:
    session: Session
    config: Mapping[str, Any]
    now: int
    plugins: Any = None
    #: simulation: deliver outbox rows at once, through capturing channels
    inline_delivery: bool = False
    #: events raised while running (tag.added, score.changed, …), handled before the batch ends
    pending_events: deque[int] = field(default_factory=deque)
    #: outbox rows written by this batch, for delivery once it commits
    new_messages: list[int] = field(default_factory=list)
    #: simulation: called with each new outbox row id at once, so effects appear in step order
    deliver_now: Callable[[list[int]], None] | None = None
    _plans: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def default_tz(self) -> str:
        return self.config.get("DEFAULT_TIMEZONE", "UTC")

    def plan(self, version_id: int) -> dict[str, Any]:
        plan = self._plans.get(version_id)
        if plan is None:
            plan = self._plans[version_id] = self.session.get(RuleVersion, version_id).plan
        return plan

    def log(self, contact_id: int, rule_id: int | None, action: str, enrolment_id: int | None = None,
            at: int | None = None, **data: Any) -> None:
        self.session.add(JourneyLog(enrolment_id=enrolment_id, contact_id=contact_id, rule_id=rule_id,
                                    at=self.now if at is None else at, action=action, data=data))

"""The engine's working state for one batch: session, clock, settings, and what the batch produced."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy.orm import Session

from dsl import BUILTIN_CONTACT_FIELDS
from dsl.plan import RulePlan, require_version

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
    #: *now* to the microsecond on the app's clock (None on a fixed engine clock): see :attr:`moment`
    instant: datetime | None = None
    _plans: dict[int, RulePlan] = field(default_factory=dict)
    _buffer: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)

    _index: Any = None
    _field_types: dict[str, str] | None = None

    @property
    def index(self) -> Any:
        """The active rules' index, looked up once per batch."""
        if self._index is None:
            from .matcher import rule_index

            self._index = rule_index(self.session, str(self.session.get_bind().engine.url))
        return self._index

    def field_type(self, name: str) -> str | None:
        """The type of contact field *name* kept in the contact's ``fields`` JSON: its custom definition (read once
        per batch), else the built-in vocabulary's (``birthday``); None for a name with neither."""
        if self._field_types is None:
            from ..contacts.fields import definitions

            self._field_types = definitions(self.session)
        return self._field_types.get(name) or BUILTIN_CONTACT_FIELDS.get(name)

    def listens_to(self, event_name: str) -> bool:
        """Whether any active rule could react to *event_name* (trigger, goal, wait for, inactivity)."""
        # an opt-out event also revokes consent when it arrives: always handled
        return event_name in self.index.listened or (
            self.plugins is not None and event_name in self.plugins.opt_out_events()
        )

    @property
    def moment(self) -> datetime:
        """Now as a row's stamp (an event claimed, an outbox row written): to the microsecond on the app's clock, so
        that the stages of a send can be told apart; the second of a fixed engine clock."""
        return self.instant if self.instant is not None else datetime.fromtimestamp(self.now, UTC)

    @property
    def default_tz(self) -> str:
        return self.config.get("DEFAULT_TIMEZONE", "UTC")

    def plan(self, version_id: int) -> RulePlan:
        """The plan of rule version *version_id*, looked up once per batch.

        :raises PlanVersionError: the stored plan is of a format this Nudge does not run (a newer Nudge
            compiled it, or the database was not upgraded).
        """
        plan = self._plans.get(version_id)
        if plan is None:
            version = self.session.get(RuleVersion, version_id)
            if version is None:
                raise LookupError(f"rule version {version_id} does not exist")
            require_version(version.plan, f"rule version {version_id} (rule {version.rule_id})")
            plan = self._plans[version_id] = cast(RulePlan, version.plan)
        return plan

    def log(
        self,
        contact_id: int,
        rule_id: int | None,
        action: str,
        enrolment_id: int | None = None,
        at: int | None = None,
        **data: Any,
    ) -> None:
        """Add a trace line; buffered and written with one multi-row INSERT (see :meth:`write_buffered`)."""
        self._buffer.setdefault(JourneyLog, []).append(
            {
                "enrolment_id": enrolment_id,
                "contact_id": contact_id,
                "rule_id": rule_id,
                "at": self.now if at is None else at,
                "action": action,
                "data": data,
            }
        )

    def buffer(self, model: Any, row: dict[str, Any]) -> None:
        """Queue a row nobody reads back within this batch (trace lines, unwatched events)."""
        self._buffer.setdefault(model, []).append(row)

    def write_buffered(self) -> None:
        """Write the buffered rows: call before anything commits or reads them."""
        from sqlalchemy import insert

        buffered, self._buffer = self._buffer, {}
        for model, rows in buffered.items():
            if rows:
                self.session.execute(insert(model), rows)

    def checkpoint(self) -> int:
        """Mark where one unit of work starts (see :meth:`forget_since`)."""
        return len(self.new_messages)

    def forget_since(self, mark: int) -> None:
        """Forget what a unit of work rolled back to its savepoint had produced: its outbox rows, raised
        events and buffered rows are gone from the database and must not leak into the next unit."""
        del self.new_messages[mark:]
        self.pending_events.clear()
        self._buffer = {}

    def commit(self) -> None:
        self.write_buffered()
        self.session.commit()

"""What rule conditions see: a contact, its tags, the triggering event, the clock, its history.

Implements the evaluation context the language's evaluator asks for (``dsl.evaluate``)
over the database, so simulation and live runs evaluate conditions the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Contact, ContactTag, Event
from ..models.contacts import BUILTIN_COLUMNS
from ..sdk import redact
from ..segments import is_member
from .timeutil import UTC, parse_date_value, to_dt

log = logging.getLogger(__name__)


def contact_value(contact: Contact, name: str) -> Any:
    value = getattr(contact, name) if name in BUILTIN_COLUMNS else (contact.fields or {}).get(name)
    parsed = parse_date_value(value) if isinstance(value, str) else None
    return parsed if parsed is not None else value


def contact_tags(session: Session, contact_id: int) -> set[str]:
    return set(session.scalars(select(ContactTag.tag).where(ContactTag.contact_id == contact_id)))


def lookup(data: Any, path: str) -> Any:
    for part in path.split(".") if path else ():
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        else:
            return None
    if isinstance(data, str):
        parsed = parse_date_value(data)
        if parsed is not None:
            return parsed
    return data


class Scope:
    """Evaluation context for one contact at one instant (optionally with a triggering event)."""

    def __init__(
        self,
        session: Session,
        contact: Contact,
        now_ts: int,
        event_props: Mapping[str, Any] | None = None,
        segments: Any = None,
        event_loader: Callable[[], Mapping[str, Any]] | None = None,
        functions: Mapping[str, Any] | None = None,
        on_failure: Callable[[str, str], None] | None = None,
    ):
        """:param event_loader: reads the triggering event's props on first use (most steps never look).
        :param functions: the condition functions by name (default: the current app's plugins').
        :param on_failure: told ``(function, problem)`` when a condition function cannot run (the engine
            writes it to the journey log); the call is then unknown."""
        self.session = session
        self.contact = contact
        self._now_ts = now_ts
        self.now: datetime = to_dt(now_ts)
        self._event = event_props
        self._event_loader = event_loader
        self._tags: set[str] | None = None
        self._segments = segments
        self._functions = functions
        self._on_failure = on_failure

    @property
    def event(self) -> Mapping[str, Any]:
        """The triggering event's props (empty without one)."""
        if self._event is None:
            self._event = self._event_loader() if self._event_loader is not None else {}
        return self._event

    # -- the evaluator's protocol ---------------------------------------------------
    def contact_field(self, name: str) -> Any:
        return contact_value(self.contact, name)

    def has_tag(self, tag: str) -> bool:
        if self._tags is None:
            self._tags = contact_tags(self.session, self.contact.id)
        return tag in self._tags

    def event_prop(self, path: str) -> Any:
        return lookup(self.event, path)

    def count_events(self, name: str, where: Any, since: datetime) -> int:
        self.session.flush()  # events raised earlier in this batch count too
        rows = self.session.execute(
            select(Event.props).where(
                Event.contact_id == self.contact.id,
                Event.name == name,
                Event.occurred_at >= since.astimezone(UTC),
                Event.occurred_at <= self.now,
            )
        ).scalars()
        from dsl.evaluate import holds

        from .machine_events import reacts

        # a machine's open or click is not something the person did, unless the `where` asks about machines
        people = [props for props in rows if reacts(where, props)]
        if where is None:
            return len(people)
        return sum(1 for props in people if holds(where, self.for_event(props)))

    def in_segment(self, name: str) -> bool:
        if self._segments is None:  # the segments stored in the database, evaluated with a Scope like this one
            self._segments = partial(is_member, scope=self._inner)
        return bool(self._segments(self.session, self.contact, name, self._now_ts))

    def function(self, name: str) -> Any:
        if self._functions is None:
            from ..functions import installed

            self._functions = installed()
        return self._functions.get(name)

    def function_failed(self, name: str, problem: str) -> None:
        problem = redact(problem)  # a plugin's message may quote the address it was given
        log.warning("condition function %s() failed for contact %s: %s", name, self.contact.id, problem)
        if self._on_failure is not None:
            self._on_failure(name, problem)

    def _inner(self, session: Session, contact: Contact, now_ts: int) -> Scope:
        """The scope a segment's condition is evaluated in from here: the same functions, failures in the same log."""
        return Scope(session, contact, now_ts, functions=self._functions, on_failure=self._on_failure)

    @classmethod
    def of(cls, session: Session, contact: Contact, now_ts: int) -> Scope:
        """A contact's scope at *now_ts*, without an event (what segments evaluate their conditions in)."""
        return cls(session, contact, now_ts)

    def for_event(self, props: Mapping[str, Any]) -> Scope:
        """The same contact and clock, with ``event`` bound to another event (inside ``did … where``)."""
        scope = Scope(
            self.session,
            self.contact,
            self._now_ts,
            props,
            self._segments,
            functions=self._functions,
            on_failure=self._on_failure,
        )
        scope._tags = self._tags
        return scope

    def invalidate_tags(self) -> None:
        self._tags = None

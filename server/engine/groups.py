"""Doing concurrent requests' work together: one transaction and one queued job for the events of many requests.

A request hands its work to a :class:`Grouped` and waits. While one thread (the leader) does a group, the work the
others bring gathers; the next thread to find the group free does all of it at once, and each request gets its own
result (or its own error). One request alone is done at once, as before; under load, 32 requests share one commit
and one enqueue instead of 32 of each. Each request still answers only after its own work is done: its events are
committed, and handed to the queue (or the enqueue failed, when the scheduler re-enqueues them from the database,
as for any lost job).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from flask import current_app

from ..db import get_session
from .ingest import Prepared, store_events, store_plain, write_turn

T = TypeVar("T")
R = TypeVar("R")

#: events per job at most (a larger group is split): the size of a batch a worker claims in one transaction
MAX_JOB = 1000


class _Slot(Generic[T, R]):
    __slots__ = ("item", "outcome")

    def __init__(self, item: T):
        self.item = item
        self.outcome: R | BaseException | None = None


class Grouped(Generic[T, R]):
    """Leader/follower grouping of ``run(items) -> outcomes`` (one outcome, a result or an exception, per item)."""

    def __init__(self, run: Callable[[list[T]], list[R | BaseException]]):
        self._run = run
        self._cond = threading.Condition()
        self._pending: list[_Slot[T, R]] = []
        self._collecting = 1  # the group the next item joins
        self._done = 0  # the last group done
        self._busy = False

    def submit(self, item: T) -> R:
        """Return the result of *item*'s work (raise its error) once done, in a group with whatever else waited."""
        slot: _Slot[T, R] = _Slot(item)
        with self._cond:
            self._pending.append(slot)
            mine = self._collecting
            while self._busy and self._done < mine:
                self._cond.wait()
            if self._done < mine:  # the group is free and this item's group still waits: lead it
                self._busy = True
                group, self._pending = self._pending, []
                self._collecting += 1
            else:
                group = []
        if group:
            try:
                outcomes = self._run([s.item for s in group])
            except BaseException as exc:
                outcomes = [exc] * len(group)
            finally:
                with self._cond:
                    for s, outcome in zip(group, outcomes, strict=True):
                        s.outcome = outcome
                    self._done = mine
                    self._busy = False
                    self._cond.notify_all()
        if isinstance(slot.outcome, BaseException):
            raise slot.outcome
        return slot.outcome  # type: ignore[return-value]


_create = threading.Lock()


def _per_app(name: str, make: Callable[[], Grouped[Any, Any]]) -> Grouped[Any, Any]:
    extensions = current_app.extensions
    grouped = extensions.get(name)
    if grouped is None:
        with _create:
            grouped = extensions.setdefault(name, make())
    return grouped


def _enqueue(event_ids: list[int]) -> None:
    from .jobs import enqueue_events

    for start in range(0, len(event_ids), MAX_JOB):
        enqueue_events(event_ids[start : start + MAX_JOB])


def hand_over(event_ids: list[int]) -> None:
    """Enqueue the processing of *event_ids* (stored and committed), grouped with concurrent requests' events."""

    def run(groups: list[list[int]]) -> list[BaseException | None]:
        _enqueue([event_id for ids in groups for event_id in ids])
        return [None] * len(groups)

    _per_app("nudge.handover", lambda: Grouped(run)).submit(event_ids)


def store_together(prepared: Prepared) -> list[tuple[int, int]]:
    """Store *prepared* (all or none), commit and enqueue it, in one transaction with concurrent requests' events.

    :return: (event id, contact id) per item, in order.
    :raises InvalidInput: (or any error storing it would raise alone) naming the first offending field.
    """
    return _per_app("nudge.ingest", lambda: Grouped(_write_group)).submit(prepared)


def _write_group(group: list[Prepared]) -> list[list[tuple[int, int]] | BaseException]:
    """Store each request's events, all or none per request, in one transaction; then enqueue them all.

    Set-wise over the whole group when it is plain (:func:`store_plain`): the same rows as storing the requests one
    after the other. Otherwise each request goes in its own savepoint, so one failing request fails alone.
    """
    session = get_session()
    outcomes: list[list[tuple[int, int]] | BaseException] = []
    with write_turn(session):
        try:  # the transaction holds nothing else yet (the turn began it): a failure here is simply rolled back
            together = _store_plain_group(session, group)
        except Exception:  # a clash with another process's insert, say: each request alone says what it meets
            session.rollback()
            together = None
        if together is not None:
            outcomes.extend(together)
        else:
            for prepared in group:
                try:
                    with session.begin_nested():
                        outcomes.append(store_events(session, prepared))
                except Exception as exc:  # this request's answer (422, 409...); the others go on
                    outcomes.append(exc)
        session.commit()
    _enqueue([event_id for outcome in outcomes if isinstance(outcome, list) for event_id, _contact_id in outcome])
    return outcomes


def _store_plain_group(session: Any, group: list[Prepared]) -> list[list[tuple[int, int]]] | None:
    checked = [item for prepared in group if prepared.checked is not None for item in prepared.checked]
    if any(prepared.checked is None for prepared in group):
        return None
    stored = store_plain(session, checked)
    if stored is None:
        return None
    out, start = [], 0
    for prepared in group:
        count = len(prepared.items)
        out.append(stored[start : start + count])
        start += count
    return out


__all__ = ["MAX_JOB", "Grouped", "hand_over", "store_together"]

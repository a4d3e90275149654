"""Doing concurrent requests' work together: one transaction and one wake-up of the engine for many requests.

A request hands its work to a :class:`Grouped` and waits. While one thread (the leader) does a group, the work the
others bring gathers; the next thread to find the group free does all of it at once, and each request gets its own
result (or its own error). One request alone is done at once, as before; under load, 32 requests share one commit
and one wake-up (:mod:`.wake`) instead of 32 of each. Each request still answers only after its own work is done:
its events are committed, and a job that will claim them waits on the queue (or Redis failed, when the scheduler
re-enqueues them from the database, as for any lost job).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from flask import current_app
from sqlalchemy.exc import IntegrityError

from ..db import get_db, get_session
from .ingest import (
    NotAdmitted,
    Prepared,
    admitted_as,
    engine_turn,
    per_request,
    store_events,
    store_plain,
    store_plain_apart,
    write_turn,
)
from .once import Answered, Reused, Stored, earlier, outcomes, session_records
from .wake import wake_engine

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("done", "item", "lead", "outcome", "woken")

    def __init__(self, item: T):
        self.item = item
        self.outcome: R | BaseException | None = None
        self.done = False  # its outcome is set
        self.lead: list[_Slot[T, R]] | None = None  # a group handed to this item's thread to run
        self.woken = threading.Event()  # set when ``done`` or ``lead`` changes: only this thread wakes


class Grouped(Generic[T, R]):
    """Leader/follower grouping of ``run(items) -> outcomes`` (one outcome, a result or an exception, per item).

    One group runs at a time; what arrives meanwhile waits, and the leader hands it, as the next group, to the
    thread of its first item (each thread is woken only for its own news: no herd of waiters per group). With
    *then* (``then(items, outcomes)``, e.g. handing stored work to the queue), the next group may start its ``run``
    while this one does its ``then``; each item's answer waits for both.
    """

    def __init__(
        self,
        run: Callable[[list[T]], list[R | BaseException]],
        then: Callable[[list[T], list[R | BaseException]], None] | None = None,
    ):
        self._run = run
        self._then = then
        self._lock = threading.Lock()
        self._pending: list[_Slot[T, R]] = []
        self._busy = False

    def submit(self, item: T) -> R:
        """Return the result of *item*'s work (raise its error) once done, in a group with whatever else waited."""
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._pending.append(slot)
            if not self._busy:  # nobody runs a group: lead one of all that waits
                self._busy = True
                slot.lead, self._pending = self._pending, []
        while not slot.done:
            if slot.lead is not None:
                group, slot.lead = slot.lead, None
                self._lead(group)
                continue
            slot.woken.wait()
            slot.woken.clear()  # the flags are read after this: a wake-up set meanwhile is not lost
        if isinstance(slot.outcome, BaseException):
            raise slot.outcome
        return slot.outcome  # type: ignore[return-value]

    def _lead(self, group: list[_Slot[T, R]]) -> None:
        items = [s.item for s in group]
        outcomes: list[R | BaseException] = []
        try:
            try:
                outcomes = self._run(items)
            except BaseException as exc:
                outcomes = [exc] * len(group)
            finally:
                self._pass_on()
            if self._then is not None:
                try:
                    self._then(items, outcomes)
                except BaseException as exc:
                    outcomes = [exc] * len(group)
        finally:
            for s, outcome in zip(group, outcomes, strict=True):
                s.outcome, s.done = outcome, True
                s.woken.set()

    def _pass_on(self) -> None:
        """Hand what waits to the thread of its first item as the next group, or mark the grouping free."""
        with self._lock:
            waiting, self._pending = self._pending, []
            self._busy = bool(waiting)
            if waiting:
                waiting[0].lead = waiting
        if waiting:
            waiting[0].woken.set()


_create = threading.Lock()


def _per_app(name: str, make: Callable[[], Grouped[Any, Any]]) -> Grouped[Any, Any]:
    extensions = current_app.extensions
    grouped = extensions.get(name)
    if grouped is None:
        with _create:
            grouped = extensions.setdefault(name, make())
    return grouped


def hand_over(event_ids: list[int]) -> None:
    """Wake the engine for *event_ids* (stored and committed), once for concurrent requests' events together.

    No job per group: a burst's events share the one job :func:`~.wake.wake_engine` keeps waiting on the queue.
    """

    def run(groups: list[list[int]]) -> list[BaseException | None]:
        if any(groups):
            wake_engine()
        return [None] * len(groups)

    _per_app("nudge.handover", lambda: Grouped(run)).submit(event_ids)


def store_together(prepared: Prepared) -> Stored:
    """Store *prepared* (all or none), commit and enqueue it, in one transaction with concurrent requests' events.

    :return: (event id, contact id) per item, in order.
    :raises InvalidInput: (or any error storing it would raise alone) naming the first offending field.
    """
    stored = _grouped().submit(prepared)
    assert not isinstance(stored, Answered)  # (only a request made once is answered so)
    return stored


def store_once(prepared: Prepared) -> Answered:
    """:func:`store_together` for a request made once (:attr:`Prepared.once`, an Idempotency-Key): in the same
    transaction as concurrent requests' events, its earlier answer is looked up, or its events and its answer are
    stored. A request with the same key stored meanwhile by another transaction (another process's, on PostgreSQL)
    makes it try again and replay that answer (:func:`retry_clashes`).

    :raises ~.once.Reused: the key was used for a different request.
    :raises InvalidInput: (or what else storing it raises) naming what is wrong.
    """
    assert prepared.once is not None
    answered = _grouped().submit(prepared)
    assert isinstance(answered, Answered)
    return answered


def _grouped() -> Grouped[Prepared, Stored | Answered]:
    return _per_app("nudge.ingest", lambda: Grouped(_write_group, _hand_over_group))


#: tries of a write that clashes with a row another transaction stored meanwhile
CLASH_TRIES = 3


def retry_clashes(write: Callable[[], T]) -> T:
    """*write* (a transaction or savepoint of its own, undone when it raises), tried again when it clashes with a
    row stored meanwhile: on PostgreSQL two requests naming one new contact at once both insert it, and the second
    insert waits for the first transaction, then fails; tried again, the request finds that contact. A clash that
    lasts (the same row refused each time) is raised after :data:`CLASH_TRIES` tries."""
    tries = 1
    while True:
        try:
            return write()
        except IntegrityError:
            if tries == CLASH_TRIES:
                raise
            tries += 1


def _write_group(group: list[Prepared]) -> list[Stored | Answered | BaseException]:
    """Store each request's events, all or none per request, in one transaction (then :func:`_hand_over_group`).

    On SQLite, on the ingest's own connection when the group is plain (:func:`store_plain_apart`; no session set
    up). Otherwise through the session: each request admitted first (:attr:`Prepared.admit`), then set-wise over
    the admitted when they are plain (:func:`store_plain`), the same rows as storing the requests one after the
    other, with the answers of those made once (:attr:`Prepared.once`, :func:`_together`); or else each request in
    its own savepoint, so one failing request fails alone.
    """
    db = get_db()
    if all(prepared.checked is not None for prepared in group):  # no session to set up for the plain case
        if db.session.registry.has() and db.session().in_transaction():
            db.session().commit()  # as write_turn does: no transaction of this thread's left open while it writes
        with engine_turn(db.engine):
            apart = store_plain_apart(db.engine, group)
        if apart is not None:
            return list(apart)
    session = get_session()
    with write_turn(session):
        connection = session.connection()  # the turn's transaction begins
        cursor = connection.connection.cursor()
        admitted = {
            i: taken
            for i, prepared in enumerate(group)
            if (taken := admitted_as(prepared, cursor, connection.engine)) is not None
        }
        try:  # the transaction holds nothing else yet (the turn began it): a failure here is simply rolled back
            together = _together(session, admitted)
        except Exception:  # a clash with another process's insert, say: each request alone says what it meets
            session.rollback()
            together = None
        results = together if together is not None else {}
        for i, prepared in admitted.items():
            if i in results:
                continue
            try:
                results[i] = retry_clashes(functools.partial(_store_alone, session, prepared))
            except Exception as exc:  # this request's answer (422, 409...); the others go on
                results[i] = exc
        session.commit()
    return [results[i] if i in admitted else NotAdmitted() for i in range(len(group))]


def _together(session: Any, group: dict[int, Prepared]) -> dict[int, Stored | Answered | BaseException] | None:
    """The outcome of each request of *group* (the admitted, by their index), stored set-wise
    (:func:`store_plain`); None when one is not plain (nothing is stored then).

    The keys of the requests made once are looked up first, in one query: a key answered before gives that answer
    (or :class:`~.once.Reused`), and so does a key that an earlier request of the group stores now; the others are
    stored with the rest, and their answers after, in one insert (:func:`~.once.outcomes`).
    """
    found = earlier(session, [once for prepared in group.values() if (once := prepared.once) is not None])
    results: dict[int, Stored | Answered | BaseException] = {}
    storing: list[int] = []
    first: dict[tuple[int, str], int] = {}  # a key this group stores: the request that does
    repeats: dict[int, int] = {}  # a request whose key an earlier one of the group stores: that one
    for i, prepared in group.items():
        once = prepared.once
        if once is None:
            storing.append(i)
            continue
        key = (once.api_key_id, once.key)
        got = found.get(key)
        if got is None and key in first:
            other = group[first[key]].once
            assert other is not None
            same = (other.endpoint, other.digest) == (once.endpoint, once.digest)
            if same:
                repeats[i] = first[key]
            else:
                results[i] = Reused(other.endpoint)
        elif got is None:
            first[key] = i
            storing.append(i)
        else:
            results[i] = got if isinstance(got, Reused) else Answered(got, [], True)
    stored = _store_plain_group(session, [group[i] for i in storing])
    if stored is None:
        return None
    records = session_records(session)
    results.update(zip(storing, outcomes([group[i].once for i in storing], stored, records), strict=True))
    for i, j in repeats.items():
        done = results[j]
        assert isinstance(done, Answered)
        results[i] = Answered(done.answer, [], True)
    return results


def _store_alone(session: Any, prepared: Prepared) -> Stored | Answered:
    """*prepared* stored in a savepoint of its own (undone when it fails); with its answer when it is made once,
    or only that answer when it was made before."""
    with session.begin_nested():
        once = prepared.once
        if once is None:
            return store_events(session, prepared)
        got = earlier(session, [once]).get((once.api_key_id, once.key))
        if isinstance(got, Reused):
            raise got
        if got is not None:
            return Answered(got, [], True)
        return outcomes([once], [store_events(session, prepared)], session_records(session))[0]


def _hand_over_group(_group: list[Prepared], outcomes: list[Any]) -> None:
    """Hand what a group stored (committed) to the queue: while it waits on Redis the next group already writes,
    and the events of the groups written meanwhile go to the queue together (:func:`hand_over`)."""
    hand_over([event_id for outcome in outcomes for event_id, _contact_id in _stored(outcome)])


def _stored(outcome: Any) -> Stored:
    if isinstance(outcome, Answered):
        return outcome.stored
    return outcome if isinstance(outcome, list) else []


def _store_plain_group(session: Any, group: list[Prepared]) -> list[Stored] | None:
    checked = [item for prepared in group if prepared.checked is not None for item in prepared.checked]
    if any(prepared.checked is None for prepared in group):
        return None
    stored = store_plain(session, checked)
    return None if stored is None else per_request(group, stored)


__all__ = ["Grouped", "hand_over", "store_once", "store_together"]

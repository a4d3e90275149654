"""Waking the engine for stored events: one queued job for a burst, however many requests stored its events.

Events carry no job of their own: the database says which are pending, and a :func:`process_pending` job claims
them, oldest first, up to ``ENGINE_EVENT_BATCH``. A flag in Redis says that such a job waits on the queue; while
it is set, new events add nothing but one ``SET NX`` (no RQ job to build, send and run per request or group).
The job clears the flag before it claims, so events committed before a request found the flag set are always
seen by that job's claim; events committed after the clearing set the flag again and queue the next job. A lost
flag or job (Redis flushed, a worker killed) loses nothing: the flag expires after :data:`FLAG_TTL` seconds, and
the scheduler re-enqueues events left pending longer than ``REQUEUE_AFTER``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from typing import Any

import redis
from flask import current_app
from sqlalchemy import func, select

from ..db import get_session
from ..models import Event
from ..queue import get_queue

log = logging.getLogger(__name__)

#: seconds the "a job waits" flag lives at most: a job lost with its flag set delays events no longer than this
FLAG_TTL = 5


def _flag() -> str:
    return f"{current_app.config['QUEUE_NAME']}:events-job-waiting"


def wake_engine() -> bool:
    """Make sure a :func:`process_pending` job waits on the engine queue (call after the events' commit).

    :return: whether one waits (already, or queued now); on a Redis outage, logged, the scheduler takes over.
    """
    tq = get_queue()
    flag = _flag()
    try:
        if not _setter(tq.redis, flag).set_flag():
            return True  # a job waits, not started yet: its claim will see these events
    except redis.RedisError as exc:
        tq.outage = True
        log.warning("could not reach Redis (%s); the scheduler will pick the events up from the database", exc)
        return False
    if tq.enqueue_many(process_pending, [()]):
        return True
    with contextlib.suppress(redis.RedisError):  # no job was queued: the next events must try again
        tq.redis.delete(flag)  # (or it went with Redis, or expires soon)
    return False


class _FlagSetter:
    """``SET flag 1 NX EX FLAG_TTL`` on a connection this process keeps for it, the command packed once.

    The one Redis round trip of most requests that store events: through the client's own ``set`` it cost ~40 µs
    of CPU (argument packing, the pool's checkout and health checks, its retry and metrics wrappers), ~11 here.
    The connection is the pool's (closed with it: it reconnects on its next use), taken for good and used by one
    thread at a time; a dropped one is replaced once, as the client's retry would; a forked child makes its own.
    """

    def __init__(self, client: redis.Redis, flag: str):
        self.pool = client.connection_pool  # not the client: a dropped client takes its setter (and connection) along
        self.lock = threading.Lock()
        self.command: Any = None
        self.connection: Any = None
        self.pid = 0
        self.flag = flag

    def set_flag(self) -> bool:
        """Set the flag unless set; whether this call set it.

        :raises redis.RedisError: Redis cannot be reached (twice) or refuses the command.
        """
        with self.lock:
            for attempt in (1, 2):
                if self.connection is None or self.pid != os.getpid():
                    self.connection = self.pool.get_connection()
                    self.command = self.connection.pack_command("SET", self.flag, "1", "NX", "EX", str(FLAG_TTL))
                    self.pid = os.getpid()
                try:
                    self.connection.send_packed_command(self.command, check_health=False)
                    return self.connection.read_response() is not None
                except redis.ResponseError:
                    raise  # its answer was read: the connection is still in step
                except BaseException as exc:
                    self.connection.disconnect()  # an answer may be left unread: never read it as the next one's
                    if attempt == 2 or not isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
                        raise
        raise AssertionError("unreachable")


#: per Redis client (a closed queue's goes with it): flag name → its setter
_setters: weakref.WeakKeyDictionary[redis.Redis, dict[str, _FlagSetter]] = weakref.WeakKeyDictionary()
_setters_lock = threading.Lock()


def _setter(client: redis.Redis, flag: str) -> _FlagSetter:
    setters = _setters.get(client)
    setter = setters.get(flag) if setters is not None else None
    if setter is None:
        with _setters_lock:
            setter = _setters.setdefault(client, {}).setdefault(flag, _FlagSetter(client, flag))
    return setter


def enqueue_events(event_ids: list[int]) -> None:
    """Hand stored events to the engine: after the commit that stored them (the DB is the source of truth).

    No job per call: forms, tracking, unsubscribes, admin actions and plugins wake the one :func:`process_pending`
    job, as API events do; that job claims whatever is pending, these events among them.
    """
    if event_ids:
        wake_engine()


def process_pending(now: int | None = None) -> int:
    """Process pending events, oldest first, up to ``ENGINE_EVENT_BATCH`` (the job :func:`wake_engine` queues).

    A full batch means more may wait: another job is queued as soon as the batch is claimed (behind whatever else
    waits on the queue), so that a second worker claims the next batch while this one works on its own.
    :return: how many events this job processed.
    """
    from .jobs import run_events

    tq = get_queue()
    try:
        tq.redis.delete(_flag())  # before the claim: events stored from now on queue the next job
    except redis.RedisError as exc:  # the flag expires on its own; this job still does what it finds
        log.warning("could not clear the events flag in Redis (%s)", exc)
    woken: list[bool] = []
    done, claimed = run_events([], now, when_full=lambda: woken.append(wake_engine()))
    if not woken and claimed >= max(int(current_app.config.get("ENGINE_EVENT_BATCH", 1)), 1):
        wake_engine()  # the batch was redone event by event (a journey failed)
    return done


def events_waiting(limit: int) -> int:
    """How many stored events wait for the engine (not parked), counted up to *limit* + 1 at most.

    The queue's length no longer says it (a burst is one job); the count walks the unprocessed-events index and
    stops past *limit*, so its cost stays bounded however far behind the engine is.
    """
    table = Event.__table__
    pending = select(table.c.id).where(table.c.processed_at.is_(None), table.c.parked_at.is_(None))
    return int(get_session().scalar(select(func.count()).select_from(pending.limit(limit + 1).subquery())) or 0)


__all__ = ["FLAG_TTL", "enqueue_events", "events_waiting", "process_pending", "wake_engine"]

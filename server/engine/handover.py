"""Handing stored events to the queue together: concurrent requests share one job (a group commit for Redis).

Each request still returns only once its events are on the queue (or the enqueue failed, when the scheduler
re-enqueues them from the database, as for any lost job). While one thread talks to Redis, the events the others
stored meanwhile gather; the next thread to find Redis free sends all of them as one job. One request alone is sent
at once, as before; under load, 32 requests cost a couple of round trips instead of 64.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask import current_app

#: events per job at most (a larger group is split): the size of a batch a worker claims in one transaction
MAX_JOB = 1000


class Handover:
    """Leader/follower grouping of ``send(ids)`` calls; one instance per app (see :func:`hand_over`)."""

    def __init__(self, send: Callable[[list[int]], object]):
        self._send = send
        self._cond = threading.Condition()
        self._pending: list[int] = []
        self._collecting = 1  # the group the next ids join
        self._sent = 0  # the last group handed over (or given up on)
        self._busy = False

    def submit(self, ids: list[int]) -> None:
        """Return once *ids* were handed to ``send``, in a group with whatever else was waiting."""
        if not ids:
            return
        with self._cond:
            self._pending.extend(ids)
            mine = self._collecting
            while self._busy:
                self._cond.wait()
                if self._sent >= mine:
                    return
            self._busy = True
            group, self._pending = self._pending, []
            self._collecting += 1
        try:
            for start in range(0, len(group), MAX_JOB):
                self._send(group[start : start + MAX_JOB])
        finally:
            with self._cond:
                self._sent = mine
                self._busy = False
                self._cond.notify_all()


_create = threading.Lock()


def hand_over(event_ids: list[int]) -> None:
    """Enqueue the processing of *event_ids* (stored and committed), grouped with concurrent requests' events."""
    from .jobs import enqueue_events

    extensions = current_app.extensions
    handover = extensions.get("nudge.handover")
    if handover is None:
        with _create:
            handover = extensions.setdefault("nudge.handover", Handover(enqueue_events))
    handover.submit(event_ids)


__all__ = ["MAX_JOB", "Handover", "hand_over"]

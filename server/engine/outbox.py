"""Delivering outbox rows exactly once: claim, ask the send-time policy, render, stamp, send, record.

The parts live in modules named for what they own: :mod:`.outbox_rounds` (claims, stamps and outcomes, and
settling sends whose worker vanished), :mod:`.outbox_checks` (the send-time policy), :mod:`.outbox_handoff` (the
rendering hand-off); :class:`Delivery` here runs a job's batches through them, the next batch claimed and
rendered while one is on the wire. The public names of all of them are importable from here.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Message
from . import health
from .lanes import Item, Lanes, send_all
from .outbox_checks import BatchVerdicts, Checks
from .outbox_handoff import Handoff, Prepared
from .outbox_rounds import (
    AMBIGUOUS_HELD,
    AMBIGUOUS_RESENT,
    MAX_ATTEMPTS,
    STRANDED,
    Claimed,
    Rounds,
    backoff,
    resolve_stale_sends,
)
from .timeutil import to_dt

__all__ = [
    "AMBIGUOUS_HELD",
    "AMBIGUOUS_RESENT",
    "CLAIM_BATCH",
    "CLAIM_MAX",
    "JOB_MORE",
    "MAX_ATTEMPTS",
    "STRANDED",
    "BatchVerdicts",
    "Checks",
    "Delivery",
    "Handoff",
    "Prepared",
    "Rounds",
    "backoff",
    "deliver",
    "resolve_stale_sends",
]

#: outbox rows claimed (and asked about, and rendered) together: one statement and one commit for them all. A job's
#: first claim takes this many; each later one about two seconds of sending at the rate the job's batch before went
#: out (:func:`claim_size`), between this and :data:`CLAIM_MAX`: a fast relay pays a batch's reads and commits (and
#: the lanes' idle tail at its end) once per few hundred messages, while on a slow one a claimed row is still stamped
#: well within ``REQUEUE_AFTER`` (else the scheduler gives it back meanwhile, and the claim was for nothing)
CLAIM_BATCH = 50
CLAIM_MAX = 250
#: where the app keeps the claim size its last send batch called for (the next job starts with it)
_CLAIM_SIZE = "nudge.outbox.claim_size"
#: due rows a send job may take besides its own (see ``Delivery.deliver``): about two seconds of sending
JOB_MORE = 1000


class Delivery(Handoff):
    """Delivers a batch of outbox rows, reusing one channel connection per channel."""

    _claim_size = CLAIM_BATCH  # the next claim's (see CLAIM_BATCH)

    def deliver(self, message_ids: list[int], more: int = 0) -> int:
        """Send each pending message of *message_ids* at most once, then up to *more* other due ones (oldest
        first); return how many were sent.

        *more* lets a send job take whatever is due besides its own rows, as an event job does with events: under
        a steady stream the first job sends in full batches and the jobs behind it find their rows gone.
        """
        # one query skips what is done already: duplicate jobs (the scheduler re-enqueues slow ones) cost little
        todo = set(self.session.scalars(select(Message.id).where(Message.id.in_(message_ids), self._claimable())))
        self.session.commit()  # as each claim does: never hold the (SQLite) write lock across a send
        ordered = [message_id for message_id in dict.fromkeys(message_ids) if message_id in todo]
        # as the jobs before this one on this worker went out (their first claim waits for no rate)
        self._claim_size = self.app.extensions.get(_CLAIM_SIZE, CLAIM_BATCH)
        batches = self._claims(ordered, more)
        sent = 0
        current: list[Prepared | None] = []
        for _ in self._ahead(batches, current):
            pass
        while current[0] is not None:
            following: list[Prepared | None] = []
            steps = self._ahead(batches, following)
            failed: list[Exception] = []
            sent += self._send_prepared(current[0], functools.partial(self._step, steps, failed))
            if failed:  # the batch on the wire is recorded: now the job fails as the preparation did
                raise failed[0]
            for _ in steps:  # what the wire left no time for
                pass
            current = following
        return sent

    def _step(self, steps: Iterator[bool], failed: list[Exception]) -> bool:
        """A step of the next batch's preparation, run while a batch is on the wire. One that fails (its connection
        dropped, say) ends the preparation, not the sends in flight: their outcomes are still recorded, then the
        error is raised (in *failed*). Its rows were claimed, never stamped: the scheduler gives them back, sent once.
        """
        try:
            return next(steps, False)
        except Exception as exc:
            self._rollback()  # nothing of the batch on the wire is in it: its outcomes are committed already
            failed.append(exc)
            return False

    def _claims(self, ordered: list[int], more: int) -> Iterator[list[Claimed]]:
        """Claim *ordered* in batches (of ``_claim_size`` when each is claimed), then up to *more* other due rows, a
        batch per step."""
        start = 0
        while start < len(ordered):
            size = self._claim_size
            yield self._claim_many(ordered[start : start + size])
            start += size
        while more > 0:
            msgs = self._claim_many(None, min(self._claim_size, more))
            if not msgs:
                self.session.commit()  # the claim that found nothing (its write lock)
                return
            more -= len(msgs)
            yield msgs

    def _ahead(self, batches: Iterator[list[Claimed]], out: list[Prepared | None]) -> Generator[bool, None, None]:
        """Claim the next batch and prepare it, a message per step; then put it (None when there is none) in *out*.

        The steps run while the batch before is on the wire (see ``Lanes.send``'s *idle*), so the connections
        have the next messages at hand instead of waiting for them to be claimed and rendered.
        """
        msgs = next(batches, None)  # claimed (on SQLite not committed yet: _prepare reads what it needs, commits)
        out.append(None if msgs is None else (yield from self._prepare(msgs)))

    def _send_prepared(self, prepared: Prepared, idle: Callable[[], bool]) -> int:
        """Send a prepared batch, channel by channel; *idle* (the next batch's preparation) runs while it waits.
        The rate it went out at sizes the claims after it (:data:`CLAIM_BATCH`)."""
        sent = prepared.captured
        started, handed = time.monotonic(), 0
        for name, items in prepared.ready.items():
            if not items:
                continue  # every one waits for its rate limit's slot
            self._sent_now, self._last_ok = 0, False
            channels = self._lanes(name)
            if len(items) == 1 and name not in self.pools:  # a lone message is sent on this thread
                unsent, wait = send_all(channels[:1], items, self._stamp_many, self._record)
            else:  # the lanes' threads (and connections) serve every later batch of this job too
                pool = self.pools.get(name) or self.pools.setdefault(name, Lanes(channels, self.app.app_context))
                unsent, wait = pool.send(items, self._stamp_many, self._record, channels[0].destination_limit, idle)
            self._saving(functools.partial(self._end_batch, name, unsent, wait), commits=True)
            sent += self._sent_now
            handed += len(items) - len(unsent)  # those the provider asked to wait for did not go out
        if handed:
            size = claim_size(handed / max(time.monotonic() - started, 1e-6), self.config)
            self._claim_size = self.app.extensions[_CLAIM_SIZE] = size
        return sent

    def _end_batch(self, name: str, unsent: list[Item], wait: float) -> None:
        """Commit the last round's outcomes, put back what the provider asked to wait for, note the channel's health."""
        self._end_round()  # the last round's outcomes, on the rounds' own connection: before the session writes
        for item in unsent:  # the provider asked to wait (Retry-After): pending again, no attempt counted
            self._put_back(item.msg, self.now + math.ceil(wait), f"the provider asked to wait {wait:g}s")
        if self._last_ok:  # as after each send: the channel's health shows its last outcome
            health.note_sent(self.session, name, to_dt(self.now))
        self.session.commit()


def claim_size(rate: float, config: Any) -> int:
    """How many rows to claim at once when they go out at *rate* a second: as many as go out in a tenth of
    ``REQUEUE_AFTER`` (two seconds at most), between :data:`CLAIM_BATCH` and :data:`CLAIM_MAX`. The claim after
    the next is made while the next is on the wire, so its rows wait about two batches' time to be stamped."""
    seconds = min(2.0, float(config.get("REQUEUE_AFTER", 30.0)) / 10)
    return max(CLAIM_BATCH, min(CLAIM_MAX, int(rate * seconds)))


def deliver(session: Session, app: Flask, message_ids: list[int], now: int | None = None, more: int = 0) -> int:
    """Send the pending rows of *message_ids*, then up to *more* other due rows; see :meth:`Delivery.deliver`."""
    with Delivery(session, app, now=now) as delivery:
        return delivery.deliver(message_ids, more=more)

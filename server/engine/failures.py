"""Failed work is never counted as done: an event or journey step that raised is retried with back-off,
and parked for an operator after ``MAX_ATTEMPTS`` tries (``nudge messages`` and ``/healthz`` show it).

The failed try itself is rolled back (its savepoint); only the failure is written, in the batch's
transaction, so the work is either done and recorded or not done and scheduled again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from ..models import Enrolment, EnrolmentState, Event
from ..sdk import redact
from .timeutil import iso, to_dt

log = logging.getLogger(__name__)

#: stored error texts are cut here; the log has the traceback
MAX_ERROR = 500


def describe(exc: BaseException) -> str:
    """A one-line account of *exc*, without the SQL parameters or personal data it may carry."""
    if isinstance(exc, StatementError) and exc.orig is not None:  # the driver's message, not the statement's values
        exc = exc.orig
    first = (str(exc).strip().splitlines() or [""])[0]
    return redact(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:MAX_ERROR]


def backoff(config: Mapping[str, Any], attempt: int) -> float:
    """Seconds before try *attempt* + 1: ``RETRY_BASE`` doubling, with jitter (the outbox's schedule)."""
    from .outbox import backoff as send_backoff

    return send_backoff(attempt, base=float(config.get("RETRY_BASE", 30.0)))


def event_failed(session: Session, config: Mapping[str, Any], event_id: int, exc: BaseException, now: int) -> None:
    """Put a claimed event back: unprocessed, to be retried after a back-off, or parked after the last try."""
    attempts = (session.scalar(select(Event.attempts).where(Event.id == event_id)) or 0) + 1
    error = describe(exc)
    parked = attempts >= int(config.get("MAX_ATTEMPTS", 8))
    retry = None if parked else now + max(1, round(backoff(config, attempts)))
    session.execute(
        update(Event)
        .where(Event.id == event_id)
        .values(
            processed_at=None,
            attempts=attempts,
            error=error,
            retry_at=None if retry is None else to_dt(retry),
            parked_at=to_dt(now) if parked else None,
        )
    )
    _log("event", event_id, attempts, error, retry, config, exc)


def enrolment_failed(
    session: Session, config: Mapping[str, Any], enrolment_id: int, exc: BaseException, now: int
) -> None:
    """Give a failed journey step its back-off (its ``due``), or park the journey after the last try."""
    attempts = (session.scalar(select(Enrolment.attempts).where(Enrolment.id == enrolment_id)) or 0) + 1
    error = describe(exc)
    parked = attempts >= int(config.get("MAX_ATTEMPTS", 8))
    retry = None if parked else now + max(1, round(backoff(config, attempts)))
    values: dict[str, Any] = {"attempts": attempts, "error": error}
    values.update({"state": EnrolmentState.PARKED.value} if parked else {"due": retry})
    session.execute(update(Enrolment).where(Enrolment.id == enrolment_id).values(**values))
    _log("journey (enrolment)", enrolment_id, attempts, error, retry, config, exc)


def _log(
    what: str, ident: int, attempts: int, error: str, retry: int | None, config: Mapping[str, Any], exc: BaseException
) -> None:
    if retry is None:
        log.error(
            "%s %s failed %d times and is parked: %s; see `nudge messages`, retry with `nudge messages unpark`",
            what,
            ident,
            attempts,
            error,
        )
    else:
        log.warning(
            "%s %s failed (try %d of %d): %s; retrying at %s",
            what,
            ident,
            attempts,
            int(config.get("MAX_ATTEMPTS", 8)),
            error,
            iso(retry),
        )
    log.debug("%s %s failed", what, ident, exc_info=exc)


__all__ = ["backoff", "describe", "enrolment_failed", "event_failed"]

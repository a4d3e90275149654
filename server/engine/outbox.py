"""Delivering outbox rows exactly once: claim, ask the send-time policy, render, stamp, send, record.

A row is claimed (``pending`` → ``sending``) and committed before anything else, so two workers
never both send it. Just before the channel is called the row is stamped (``sending_at``,
committed): a worker that dies before the stamp never handed the message over, and the scheduler
puts the row back to ``pending`` to be sent once; one that dies after it may have, and the row
becomes ``unknown`` for an operator (``NUDGE_AMBIGUOUS_SENDS=hold``) or is sent again (``resend``).
"""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import Callable, Generator, Iterator
from datetime import timedelta
from typing import Any, NamedTuple

from flask import Flask
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from ..consent import address_hash, suppress
from ..links import unsubscribe_url
from ..models import (
    Consent,
    Contact,
    Enrolment,
    Event,
    JourneyLog,
    Message,
    MessageStatus,
    MessageStatusChange,
    Suppression,
    utcnow,
)
from ..sdk import UNSUBSCRIBE_LINK, ChannelError, OutboundMessage, RateLimit, redact
from . import health, pacing, policy, tracking
from .keys import enrolment_of
from .lanes import Item, Lanes, send_all
from .outbox_sql import RoundStatement
from .render import contact_data, load_parts, render
from .staff import internal_address, internal_outbound, recipient
from .timeutil import iso, to_dt, to_ts

log = logging.getLogger(__name__)

#: outbox rows claimed (and asked about, and rendered) together: one statement and one commit for them all. Small,
#: so that a claimed row is stamped well within ``REQUEUE_AFTER`` (else the scheduler gives it back meanwhile)
CLAIM_BATCH = 50
#: due rows a send job may take besides its own (see ``Delivery.deliver``): about two seconds of sending
JOB_MORE = 1000
#: tries of a send when the channel has no retry schedule of its own (setting ``MAX_ATTEMPTS``)
MAX_ATTEMPTS = 8
STRANDED = "the worker stopped before handing it to the channel; it goes out again"
AMBIGUOUS_HELD = (
    "the worker stopped while handing it to the channel: the provider may have it "
    "(NUDGE_AMBIGUOUS_SENDS=hold); check, and `nudge messages resend` it if it never arrived"
)
AMBIGUOUS_RESENT = "the provider may have it; sent again (NUDGE_AMBIGUOUS_SENDS=resend)"


_TABLE = Message.__table__
#: built once, not per message: a send's stamp (fenced by its claim, see ``Delivery._stamp``) and its success
_STAMP = RoundStatement(
    update(_TABLE)
    .where(
        _TABLE.c.id == bindparam("row_id"),
        _TABLE.c.status == MessageStatus.SENDING.value,
        _TABLE.c.attempts == bindparam("claim"),
        _TABLE.c.sending_at.is_(None),
    )
    .values(sending_at=bindparam("stamp"))
)
_SENT = RoundStatement(
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(status=MessageStatus.SENT.value, sent_at=bindparam("at"), provider_id=bindparam("provider"), error=None)
)

#: a round's history and trace rows (every column given, see ``Delivery._sent``)
_CHANGES = RoundStatement(insert(MessageStatusChange.__table__), ("message_id", "status", "detail", "source", "at"))
_TRACES = RoundStatement(
    insert(JourneyLog.__table__), ("enrolment_id", "contact_id", "rule_id", "at", "action", "data")
)


class Prepared(NamedTuple):
    """A claimed batch after the send-time policy and rendering: the items to send by channel, and how many
    were captured instead (simulation)."""

    ready: dict[str, list[Item]]
    captured: int


def backoff(attempt: int, base: float = 30.0, cap: float = 6 * 3600.0) -> float:
    """Seconds to wait before retry *attempt* (1-based): exponential from *base* (``RETRY_BASE``), with jitter."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))


class BatchVerdicts:
    """The suppression list's and the consent ledger's answers for a claimed batch, read in two queries.

    What :func:`policy.blocker` would ask of the database message by message (the same answers: a consent is the
    latest ledger row of its contact and channel, by time then id).
    """

    def __init__(self, session: Session, secret: str, targets: list[tuple[str, str, int | None]]):
        """:param targets: (channel, address, contact id or None) of each message."""
        self.secret = secret
        self._hashes: dict[tuple[str, str], str] = {
            (channel, address): address_hash(secret, channel, address) for channel, address, _ in targets
        }
        self.reasons: dict[tuple[str, str], str] = {}
        if self._hashes:
            rows = session.execute(
                select(Suppression.channel, Suppression.address_hash, Suppression.reason).where(
                    Suppression.channel.in_({channel for channel, _ in self._hashes}),  # the index's first column
                    Suppression.address_hash.in_(set(self._hashes.values())),
                )
            )
            self.reasons = {(channel, digest): reason for channel, digest, reason in rows}
        self.consents: dict[tuple[int, str], str] = {}
        contact_ids = {contact_id for _, _, contact_id in targets if contact_id is not None}
        if contact_ids:
            ledger = session.execute(
                select(Consent.contact_id, Consent.channel, Consent.status)
                .where(Consent.contact_id.in_(contact_ids))
                .order_by(Consent.recorded_at, Consent.id)
            )
            for contact_id, channel, status in ledger:
                self.consents[(contact_id, channel)] = status  # the latest wins

    def suppression(self, channel: str, address: str) -> str | None:
        digest = self._hashes.get((channel, address)) or address_hash(self.secret, channel, address)
        return self.reasons.get((channel, digest))

    def consent(self, contact_id: int, channel: str) -> str | None:
        return self.consents.get((contact_id, channel))


class Delivery:
    """Delivers a batch of outbox rows, reusing one channel connection per channel."""

    def __init__(self, session: Session, app: Flask, now: int | None = None, capture: list | None = None):
        self.session = session
        self.app = app
        self.config = app.config
        self.pm = app.extensions["nudge.plugins"]
        self.fixed_now = now
        self.capture = capture  # simulation: record instead of sending
        self.channels: dict[str, list[tuple[Any, Any]]] = {}
        self.pools: dict[str, Lanes] = {}  # the lanes of each channel, kept across the batches of one job
        self._props: dict[int, dict[str, Any]] = {}
        self._parts: dict[tuple[str, str], dict[str, str]] = {}
        self._verdicts: BatchVerdicts | None = None
        self._sent_now = 0
        self._last_ok = False
        self._slots: dict[tuple[str, str], float] = {}  # the next free slot of each rate limit, as far as we know
        self.resend_ambiguous = self.config.get("AMBIGUOUS_SENDS") == "resend"

    @property
    def now(self) -> int:
        return self.fixed_now if self.fixed_now is not None else to_ts(utcnow())

    def __enter__(self) -> Delivery:
        return self

    def __exit__(self, *exc: Any) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
        for lanes in self.channels.values():
            for _channel, ctx in lanes:
                ctx.__exit__(None, None, None)
        self.channels.clear()

    def _channel(self, name: str) -> Any:
        if self.capture is not None:
            # simulation: the channel class says how it addresses contacts; nothing is configured or sent
            return self.pm.channels[name]
        return self._lanes(name)[0]

    def _lanes(self, name: str) -> list[Any]:
        """The channel's instances, one per lane (``Channel.concurrency``), each in its own batch (connection)."""
        if name not in self.channels:
            lanes = []
            try:
                first = self.pm.channel(name, self.config)
                others = [self.pm.channel(name, self.config) for _ in range(max(1, int(first.concurrency)) - 1)]
                for channel in (first, *others):
                    ctx = channel.batch()
                    ctx.__enter__()
                    lanes.append((channel, ctx))
            finally:
                if lanes:
                    self.channels[name] = lanes
        return [channel for channel, _ctx in self.channels[name]]

    # -- steps ---------------------------------------------------------------------------------
    def _claimable(self) -> Any:
        """Pending and due: a retry waits out its back-off even when an older (duplicate) job names it."""
        instant = to_dt(self.fixed_now) if self.fixed_now is not None else utcnow()
        return (Message.status == MessageStatus.PENDING.value) & (
            Message.next_attempt_at.is_(None) | (Message.next_attempt_at <= instant)
        )

    def _stamp(self, msg: Message) -> bool:
        """Commit that *msg* is being handed to its channel now; False if this claim was taken back meanwhile.

        The claim's attempt number fences it: a row the scheduler gave back (this worker looked dead) and
        another worker claimed again is not stamped, nor sent, here.
        """
        params = {"row_id": msg.id, "claim": msg.attempts, "stamp": to_dt(self.now)}
        return _STAMP.run(self.session.connection(), [params]) > 0

    def _finish(self, msg: Message, status: str, detail: str | None = None, **values: Any) -> None:
        # on the connection: no flush of what the batch added to the session, no ORM synchronisation
        table = Message.__table__
        self.session.connection().execute(update(table).where(table.c.id == msg.id).values(status=status, **values))
        self.session.add(MessageStatusChange(message_id=msg.id, status=status, detail=detail, at=to_dt(self.now)))

    def _effect(self, msg: Message, action: str, **data: Any) -> None:
        row = self._trace_row(msg, action, **data)
        if row is not None:
            self.session.add(JourneyLog(**row))

    def _trace_row(self, msg: Message, action: str, **data: Any) -> dict[str, Any] | None:
        """The journey trace line of *msg*'s *action*, or None for a message that is nobody's."""
        if msg.contact_id is None:
            return None
        info = msg.data or {}
        enrolment = info.get("enrolment")
        if enrolment is None:
            enrolment = enrolment_of(msg.key)
        return {
            "enrolment_id": enrolment,
            "contact_id": msg.contact_id,
            "rule_id": info.get("rule"),
            "at": self.now,
            "action": action,
            "data": {"channel": msg.channel, "template": msg.template, "message": msg.id, **data},
        }

    def _blocked(self, msg: Message, contact: Contact | None, channel: Any) -> str | None:
        """Why this message must not go out now, or None: the send-time policy, asked at the moment of sending."""
        info = msg.data or {}
        return policy.blocker(
            self.session,
            self.config,
            self.pm.channels,
            msg.channel,
            contact_id=contact.id if contact is not None else None,
            address=recipient(msg, contact, channel.address_field),
            now=self.now,
            transactional=bool(info.get("transactional")),
            marketing=bool(info.get("marketing", True)),
            priority=str(info.get("priority") or "normal"),
            lookups=None if self._verdicts is None else (self._verdicts.suppression, self._verdicts.consent),
        )

    def _defer_if_quiet(self, msg: Message, contact: Contact | None, channel: Any) -> bool:
        """The last guard of quiet hours: a message due inside the recipient's window goes back to ``pending``
        until it ends, without counting an attempt or calling the provider. True when deferred."""
        resume = policy.resumes_at(
            self.now, (msg.data or {}).get("quiet_hours"), channel, contact, self.config, internal_address(msg)
        )
        if resume is None:
            return False
        self._put_back(msg, resume, f"quiet hours until {iso(resume)}")
        return True

    def _put_back(self, msg: Message, resume: float, detail: str) -> None:
        """Pending again from *resume* on, without counting this claim as an attempt; the caller commits."""
        table = Message.__table__
        self.session.connection().execute(
            update(table)
            .where(table.c.id == msg.id)
            .values(
                status=MessageStatus.PENDING.value,
                attempts=table.c.attempts - 1,
                claimed_at=None,
                next_attempt_at=to_dt(resume),
            )
        )
        self.session.add(MessageStatusChange(message_id=msg.id, status="deferred", detail=detail, at=to_dt(self.now)))

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
        batches = self._claims(ordered, more)
        sent = 0
        current: list[Prepared | None] = []
        for _ in self._ahead(batches, current):
            pass
        while current[0] is not None:
            following: list[Prepared | None] = []
            steps = self._ahead(batches, following)
            sent += self._send_prepared(current[0], functools.partial(next, steps, False))
            for _ in steps:  # what the wire left no time for
                pass
            current = following
        return sent

    def _claims(self, ordered: list[int], more: int) -> Iterator[list[Message]]:
        """Claim *ordered* in batches of ``CLAIM_BATCH``, then up to *more* other due rows, a batch per step."""
        for start in range(0, len(ordered), CLAIM_BATCH):
            yield self._claim_many(ordered[start : start + CLAIM_BATCH])
        while more > 0:
            msgs = self._claim_many(None, min(CLAIM_BATCH, more))
            if not msgs:
                return
            more -= len(msgs)
            yield msgs

    def _ahead(self, batches: Iterator[list[Message]], out: list[Prepared | None]) -> Generator[bool, None, None]:
        """Claim the next batch and prepare it, a message per step; then put it (None when there is none) in *out*.

        The steps run while the batch before is on the wire (see ``Lanes.send``'s *idle*), so the connections
        have the next messages at hand instead of waiting for them to be claimed and rendered.
        """
        msgs = next(batches, None)
        if msgs is not None:
            yield True
        out.append(None if msgs is None else (yield from self._prepare(msgs)))

    def _claim_many(self, message_ids: list[int] | None, oldest: int = 0) -> list[Message]:
        """Claim the claimable rows of *message_ids* (None: the *oldest* claimable rows) in one statement,
        committed; return them in that order.

        On PostgreSQL the oldest rows another worker is claiming are skipped, not waited for: they are its own.
        """
        table = Message.__table__
        if message_ids is None:
            query = select(table.c.id).where(self._claimable()).order_by(table.c.next_attempt_at, table.c.id)
            query = query.limit(oldest)
            if self.session.get_bind().dialect.name == "postgresql":  # selected once, past the rows others lock
                cte = query.with_for_update(skip_locked=True).cte("chosen").prefix_with("MATERIALIZED")
            else:
                cte = query.cte("chosen")
            chosen = table.c.id == cte.c.id
        else:
            chosen = table.c.id.in_(message_ids)
        claimed = set(
            self.session.connection()
            .execute(
                update(table)
                .where(chosen, self._claimable())
                .values(
                    status=MessageStatus.SENDING.value,
                    claimed_at=to_dt(self.now),
                    sending_at=None,
                    attempts=table.c.attempts + 1,
                )
                .returning(table.c.id)
            )
            .scalars()
        )
        self.session.commit()
        if not claimed:
            return []  # another worker has them, or they are done already, or not due yet
        rows = self.session.scalars(
            select(Message).where(Message.id.in_(claimed)).execution_options(populate_existing=True)
        ).all()
        if message_ids is None:
            return sorted(rows, key=lambda msg: msg.id)
        by_id = {msg.id: msg for msg in rows}
        return [by_id[message_id] for message_id in message_ids if message_id in by_id]

    def _prepare(self, msgs: list[Message]) -> Generator[bool, None, Prepared]:
        """Ask the policy about each claimed row and render the rest, a step per message; commit, and return the
        rendered items by channel and how many were captured (simulation)."""
        ready: dict[str, list[Item]] = {}
        if not msgs:
            return Prepared(ready, 0)
        contact_ids = {msg.contact_id for msg in msgs if msg.contact_id}
        contacts = (
            {c.id: c for c in self.session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
            if contact_ids
            else {}
        )
        self._props = self._events_props(msgs)
        self._parts = {}  # templates loaded once per batch
        self._verdicts = self._read_verdicts(msgs, contacts)
        captured = 0
        for msg in msgs:
            yield True
            contact = contacts.get(msg.contact_id) if msg.contact_id else None
            try:
                channel = self._channel(msg.channel)
            except Exception as exc:  # no such channel installed
                self._channel_error(msg.channel, str(exc))
                self._finish(msg, MessageStatus.FAILED.value, str(exc), error=str(exc))
                continue
            reason = self._blocked(msg, contact, channel)
            if reason is not None:
                self._effect(msg, "suppressed", reason=reason)
                self._finish(msg, MessageStatus.SUPPRESSED.value, reason, error=reason)
                continue
            if self._defer_if_quiet(msg, contact, channel):
                continue  # inside the recipient's quiet hours: pending again until they end, no attempt counted
            if self.capture is not None:
                self.capture.append(msg.id)
                self._sent(msg, f"sim-{msg.id}")
                captured += 1
                continue
            address = recipient(msg, contact, channel.address_field) or ""
            try:
                outbound = self._outbound(msg, contact, channel, address)
            except ChannelError as exc:
                self._failure(msg, contact, channel, exc)
                continue
            except Exception as exc:  # a template's bug: fail this message, keep the worker alive
                log.exception("rendering %s failed", msg.key)
                self._finish(msg, MessageStatus.FAILED.value, str(exc), error=f"{type(exc).__name__}: {exc}")
                continue
            ready.setdefault(msg.channel, []).append(
                Item(msg, contact, outbound, destination=channel.destination(outbound))
            )
        self._pace(ready)
        self.session.commit()
        return Prepared(ready, captured)

    def _send_prepared(self, prepared: Prepared, idle: Callable[[], bool]) -> int:
        """Send a prepared batch, channel by channel; *idle* (the next batch's preparation) runs while it waits."""
        sent = prepared.captured
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
            for item in unsent:  # the provider asked to wait (Retry-After): pending again, no attempt counted
                self._put_back(item.msg, self.now + math.ceil(wait), f"the provider asked to wait {wait:g}s")
            if self._last_ok:  # as after each send: the channel's health shows its last outcome
                health.note_sent(self.session, name, to_dt(self.now))
            self.session.commit()
            sent += self._sent_now
        return sent

    def _pace(self, ready: dict[str, list[Item]]) -> None:
        """Keep to the providers' rate limits (``Channel.rate_limit``): a message over its limit leaves *ready* and
        goes back to ``pending`` until its slot, no attempt counted; other keys and channels are not held up."""
        for name, items in ready.items():
            channel = self._channel(name)
            groups: dict[RateLimit, list[Item]] = {}
            for item in items:
                limit = channel.rate_limit(item.outbound)
                if limit is not None:
                    groups.setdefault(limit, []).append(item)
            waiting: set[int] = set()
            for limit, group in groups.items():
                taken = pacing.pacer_for(self.app).take(name, limit, len(group), self.now)
                # a hint, not a reservation: the bucket decides again when the row comes back
                first = max(taken.next_slot, self._slots.get((name, limit.key), 0.0))
                detail = f"the provider's rate limit ({limit.per_second:g}/s): waits its turn"
                for k, item in enumerate(group[taken.allowed :]):
                    slot = first + k / limit.per_second
                    self._put_back(item.msg, slot, detail)
                    waiting.add(id(item))
                    self._slots[(name, limit.key)] = slot + 1 / limit.per_second
            if waiting:
                items[:] = [item for item in items if id(item) not in waiting]

    def _read_verdicts(self, msgs: list[Message], contacts: dict[int, Contact]) -> BatchVerdicts:
        """What the send-time policy reads for *msgs*, read for them all at once."""
        targets = []
        for msg in msgs:
            try:
                channel = self._channel(msg.channel)
            except Exception:  # no such channel installed: the message fails below
                continue
            contact = contacts.get(msg.contact_id) if msg.contact_id else None
            address = recipient(msg, contact, channel.address_field)
            if address:
                targets.append((msg.channel, address, contact.id if contact is not None else None))
        return BatchVerdicts(self.session, self.config["SECRET_KEY"], targets)

    def _stamp_many(self, items: list[Item]) -> list[Item]:
        """Commit that *items* are being handed to their channel now (and what was recorded since)."""
        connection = self.session.connection()
        if len(items) < 2 or not connection.dialect.supports_sane_multi_rowcount:
            go = [item for item in items if self._stamp(item.msg)]
        else:  # one statement for them all; only when one was not stamped, ask which
            stamp = to_dt(self.now)
            params = [{"row_id": item.msg.id, "claim": item.msg.attempts, "stamp": stamp} for item in items]
            go = items
            if _STAMP.run(connection, params) != len(items):
                stamped = set(
                    connection.execute(
                        select(_TABLE.c.id, _TABLE.c.attempts).where(
                            _TABLE.c.id.in_([item.msg.id for item in items]), _TABLE.c.sending_at == stamp
                        )
                    ).all()
                )
                go = [item for item in items if (item.msg.id, item.msg.attempts) in stamped]
        self.session.commit()
        return go  # one not stamped was taken back and claimed again elsewhere: that claim sends it

    def _record(self, items: list[Item]) -> None:
        """Write the outcome of finished sends; committed with the next stamps, or at the end of the batch."""
        changes: list[dict[str, Any]] = []
        traces: list[dict[str, Any]] = []
        sent: list[dict[str, Any]] = []
        for item in items:
            msg, exc = item.msg, item.error
            if isinstance(exc, ChannelError):
                self._failure(msg, item.contact, self._lanes(msg.channel)[0], exc)
            elif exc is not None:  # the channel's own bug: fail this message, keep the worker alive
                log.error("sending %s failed", msg.key, exc_info=exc)
                text = f"{type(exc).__name__}: {exc}"
                self._channel_error(msg.channel, text)
                self._finish(msg, MessageStatus.FAILED.value, str(exc), error=text)
            else:
                assert item.result is not None
                self._sent(msg, item.result.provider_id, changes, traces, sent)
                self._sent_now += 1
            self._last_ok = exc is None
        # the round's updates, status history and trace lines in one statement each, not a unit-of-work flush
        if sent:
            _SENT.run(self.session.connection(), sent)
        if changes:
            _CHANGES.run(self.session.connection(), changes)
        if traces:
            _TRACES.run(self.session.connection(), traces)

    def _sent(
        self,
        msg: Message,
        provider_id: str | None,
        changes: list | None = None,
        traces: list | None = None,
        rows: list | None = None,
    ) -> None:
        """Record that *msg* went out; its update, history and trace rows go to *rows*, *changes* and *traces*
        when given (for the caller to write together)."""
        at = to_dt(self.now)
        update_row = {"row_id": msg.id, "at": at, "provider": provider_id}
        if rows is None:
            _SENT.run(self.session.connection(), [update_row])
        else:
            rows.append(update_row)
        change = {"message_id": msg.id, "status": MessageStatus.SENT.value, "detail": None, "source": "worker"}
        change["at"] = at
        trace = self._trace_row(msg, "send")
        if changes is None or traces is None:
            self.session.add(MessageStatusChange(**change))
            if trace is not None:
                self.session.add(JourneyLog(**trace))
            return
        changes.append(change)
        if trace is not None:
            traces.append(trace)

    def _events_props(self, msgs: list[Message]) -> dict[int, dict[str, Any]]:
        """Props of the events that started the journeys of *msgs*, by enrolment (one query for the batch)."""
        enrolments = {e for e in map(self._enrolment, msgs) if e is not None}
        if not enrolments:
            return {}
        rows = self.session.execute(
            select(Enrolment.id, Event.props)
            .join(Event, Event.id == Enrolment.event_id)
            .where(Enrolment.id.in_(enrolments))
        )
        return {enrolment: dict(props or {}) for enrolment, props in rows}

    @staticmethod
    def _enrolment(msg: Message) -> int | None:
        enrolment = (msg.data or {}).get("enrolment")
        return enrolment_of(msg.key) if enrolment is None else enrolment

    def _event_props(self, msg: Message) -> dict[str, Any]:
        """Props of the event that started the message's journey (``event.*`` in templates)."""
        enrolment = self._enrolment(msg)
        if enrolment is None:
            return dict((msg.data or {}).get("event") or {})
        return dict(self._props.get(enrolment, {}))

    def _outbound(self, msg: Message, contact: Contact | None, channel: Any, address: str) -> OutboundMessage:
        """The rendered message. Channels without a contact address (endpoints) get data, not text."""
        if internal_address(msg) and channel.address_field:
            return internal_outbound(msg, contact)
        props = self._event_props(msg)
        marketing = bool((msg.data or {}).get("marketing", True))
        if channel.address_field is None:
            data = {**(msg.data or {}), "contact": contact_data(contact), "event": props}
            return OutboundMessage(
                key=msg.key, channel=msg.channel, template=msg.template, to=address, marketing=marketing, data=data
            )
        link = unsubscribe_url(contact.public_id, msg.channel, msg.key) if contact is not None else None
        source = self._parts.get((msg.channel, msg.template))
        if source is None:
            source = self._parts[(msg.channel, msg.template)] = load_parts(self.session, msg.channel, msg.template)
        parts = render(
            msg.template,
            channel=msg.channel,
            contact=contact,
            parts=source,
            data={**(msg.data or {}), "event": props, "unsubscribe_url": link},
        )
        if contact is not None and tracking.wants_tracking(channel, self.config, msg.data or {}):
            parts = tracking.add_tracking(
                parts, public_id=contact.public_id, message_key=msg.key, config=self.config, app=self.app
            )
        return OutboundMessage(
            key=msg.key,
            channel=msg.channel,
            template=msg.template,
            to=address,
            subject=parts.get("subject", ""),
            text=parts.get("txt", ""),
            html=parts.get("html") or None,
            parts=parts,
            marketing=marketing,
            # a channel whose recipients opt out otherwise (a reply) shows no link of its own
            unsubscribe_url=link if channel.unsubscribe == UNSUBSCRIBE_LINK else None,
            data=msg.data or {},
        )

    def _failure(self, msg: Message, contact: Contact | None, channel: Any, exc: ChannelError) -> None:
        log.warning("send of %s failed (attempt %d): %s", msg.key, msg.attempts, redact(exc.message))
        if exc.suppress and contact is not None and channel.address_field:
            address = getattr(contact, channel.address_field, None)
            if address:
                suppress(self.session, self.config["SECRET_KEY"], msg.channel, address, exc.suppress, exc.message)
                self._verdicts = None  # read ahead before this: later messages of the batch ask the database
        # a bounce too: one is a recipient's, but a server that refuses every recipient bounces them all
        self._channel_error(msg.channel, exc.message)
        schedule = getattr(channel, "retry_schedule", None)
        limit = len(schedule) if schedule else int(self.config.get("MAX_ATTEMPTS", MAX_ATTEMPTS))
        if exc.ambiguous and not getattr(channel, "idempotent", False) and not self.resend_ambiguous:
            self._finish(msg, MessageStatus.UNKNOWN.value, exc.message, error=exc.message)
        elif exc.permanent or msg.attempts >= limit:
            self._finish(msg, MessageStatus.FAILED.value, exc.message, error=exc.message)
        else:
            delay = exc.retry_after or (
                schedule[msg.attempts]
                if schedule and msg.attempts < len(schedule)
                else backoff(msg.attempts, base=float(self.config.get("RETRY_BASE", 30.0)))
            )
            detail = f"{exc.message}; {AMBIGUOUS_RESENT}" if exc.ambiguous and self.resend_ambiguous else exc.message
            self._finish(
                msg,
                MessageStatus.PENDING.value,
                detail,
                error=detail,
                claimed_at=None,
                sending_at=None,
                next_attempt_at=to_dt(self.now) + timedelta(seconds=delay),
            )

    def _channel_error(self, channel: str, text: str) -> None:
        if self.capture is None:
            health.note_error(self.session, channel, text, to_dt(self.now))


def deliver(session: Session, app: Flask, message_ids: list[int], now: int | None = None, more: int = 0) -> int:
    """Send the pending rows of *message_ids*, then up to *more* other due rows; see :meth:`Delivery.deliver`."""
    with Delivery(session, app, now=now) as delivery:
        return delivery.deliver(message_ids, more=more)


def resolve_stale_sends(
    session: Session, config: Any, stale: Any, instant: Any, idempotent: tuple[str, ...] = ()
) -> dict[str, int]:
    """Settle ``sending`` rows whose worker vanished (claimed, or handed over, before *stale*).

    Never handed to the channel (no ``sending_at``): back to ``pending``, sent once. Handed over: the
    provider may have it, so ``unknown`` (``AMBIGUOUS_SENDS=hold``) or ``pending`` again (``resend``, and
    always for the *idempotent* channels, whose providers de-duplicate by key). Each move is in the
    message's status history. The caller commits.
    :return: ``{"stranded": …, "unknown": …, "resent": …}`` row counts.
    """
    table = Message.__table__
    sending = table.c.status == MessageStatus.SENDING.value
    pending = {
        "status": MessageStatus.PENDING.value,
        "claimed_at": None,
        "sending_at": None,
        "next_attempt_at": instant,
    }
    resend = config.get("AMBIGUOUS_SENDS") == "resend"
    moves = [
        ("stranded", (table.c.sending_at.is_(None), table.c.claimed_at <= stale), pending, STRANDED),
        (
            "resent",
            (table.c.sending_at <= stale, table.c.channel.in_(idempotent)),
            pending,
            "the provider may have it; sent again: it de-duplicates by key (an idempotent channel)",
        ),
        (
            "resent" if resend else "unknown",
            (table.c.sending_at <= stale,),
            pending if resend else {"status": MessageStatus.UNKNOWN.value},
            AMBIGUOUS_RESENT if resend else AMBIGUOUS_HELD,
        ),
    ]
    counts = {"stranded": 0, "unknown": 0, "resent": 0}
    for name, where, values, detail in moves:
        ids = list(
            session.connection()
            .execute(update(table).where(sending, *where).values(error=detail, **values).returning(table.c.id))
            .scalars()
        )
        for message_id in ids:
            session.add(
                MessageStatusChange(
                    message_id=message_id, status=values["status"], detail=detail, source="scheduler", at=instant
                )
            )
        counts[name] += len(ids)
        if ids:
            log.warning("%d send(s) whose worker stopped: %s", len(ids), detail)
    return counts

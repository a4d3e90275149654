"""Delivering outbox rows exactly once: claim, ask the send-time policy, render, stamp, send, record.

A row is claimed (``pending`` → ``sending``) and committed before anything else, so two workers
never both send it. Just before the channel is called the row is stamped (``sending_at``,
committed): a worker that dies before the stamp never handed the message over, and the scheduler
puts the row back to ``pending`` to be sent once; one that dies after it may have, and the row
becomes ``unknown`` for an operator (``NUDGE_AMBIGUOUS_SENDS=hold``) or is sent again (``resend``).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..consent import suppress
from ..db import affected_rows
from ..links import unsubscribe_url
from ..models import Contact, Enrolment, Event, JourneyLog, Message, MessageStatus, MessageStatusChange, utcnow
from ..sdk import UNSUBSCRIBE_LINK, ChannelError, OutboundMessage, redact
from . import health, policy, tracking
from .keys import enrolment_of
from .render import contact_data, render
from .staff import internal_address, internal_outbound, recipient
from .timeutil import iso, to_dt, to_ts

log = logging.getLogger(__name__)

#: tries of a send when the channel has no retry schedule of its own (setting ``MAX_ATTEMPTS``)
MAX_ATTEMPTS = 8
STRANDED = "the worker stopped before handing it to the channel; it goes out again"
AMBIGUOUS_HELD = (
    "the worker stopped while handing it to the channel: the provider may have it "
    "(NUDGE_AMBIGUOUS_SENDS=hold); check, and `nudge messages resend` it if it never arrived"
)
AMBIGUOUS_RESENT = "the provider may have it; sent again (NUDGE_AMBIGUOUS_SENDS=resend)"


def backoff(attempt: int, base: float = 30.0, cap: float = 6 * 3600.0) -> float:
    """Seconds to wait before retry *attempt* (1-based): exponential from *base* (``RETRY_BASE``), with jitter."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))


class Delivery:
    """Delivers a batch of outbox rows, reusing one channel connection per channel."""

    def __init__(self, session: Session, app: Flask, now: int | None = None, capture: list | None = None):
        self.session = session
        self.app = app
        self.config = app.config
        self.pm = app.extensions["nudge.plugins"]
        self.fixed_now = now
        self.capture = capture  # simulation: record instead of sending
        self.channels: dict[str, Any] = {}
        self.resend_ambiguous = self.config.get("AMBIGUOUS_SENDS") == "resend"

    @property
    def now(self) -> int:
        return self.fixed_now if self.fixed_now is not None else to_ts(utcnow())

    def __enter__(self) -> Delivery:
        return self

    def __exit__(self, *exc: Any) -> None:
        for _channel, ctx in self.channels.values():
            ctx.__exit__(None, None, None)
        self.channels.clear()

    def _channel(self, name: str) -> Any:
        if self.capture is not None:
            # simulation: the channel class says how it addresses contacts; nothing is configured or sent
            return self.pm.channels[name]
        if name not in self.channels:
            channel = self.pm.channel(name, self.config)
            ctx = channel.batch()
            ctx.__enter__()
            self.channels[name] = (channel, ctx)
        return self.channels[name][0]

    # -- steps ---------------------------------------------------------------------------------
    def _claimable(self) -> Any:
        """Pending and due: a retry waits out its back-off even when an older (duplicate) job names it."""
        instant = to_dt(self.fixed_now) if self.fixed_now is not None else utcnow()
        return (Message.status == MessageStatus.PENDING.value) & (
            Message.next_attempt_at.is_(None) | (Message.next_attempt_at <= instant)
        )

    def _claim(self, message_id: int) -> bool:
        claimed = affected_rows(
            self.session.execute(
                update(Message)
                .where(Message.id == message_id, self._claimable())
                .values(
                    status=MessageStatus.SENDING.value,
                    claimed_at=to_dt(self.now),
                    sending_at=None,
                    attempts=Message.attempts + 1,
                )
            )
        )
        self.session.commit()
        return bool(claimed)

    def _stamp(self, msg: Message) -> bool:
        """Commit that *msg* is being handed to its channel now; False if this claim was taken back meanwhile.

        The claim's attempt number fences it: a row the scheduler gave back (this worker looked dead) and
        another worker claimed again is not stamped, nor sent, here.
        """
        stamped = affected_rows(
            self.session.execute(
                update(Message)
                .where(
                    Message.id == msg.id,
                    Message.status == MessageStatus.SENDING.value,
                    Message.attempts == msg.attempts,
                    Message.sending_at.is_(None),
                )
                .values(sending_at=to_dt(self.now))
            )
        )
        self.session.commit()
        return bool(stamped)

    def _finish(self, msg: Message, status: str, detail: str | None = None, **values: Any) -> None:
        self.session.execute(update(Message).where(Message.id == msg.id).values(status=status, **values))
        self.session.add(MessageStatusChange(message_id=msg.id, status=status, detail=detail, at=to_dt(self.now)))
        self.session.commit()

    def _effect(self, msg: Message, action: str, **data: Any) -> None:
        if msg.contact_id is None:
            return
        info = msg.data or {}
        enrolment = info.get("enrolment")
        if enrolment is None:
            enrolment = enrolment_of(msg.key)
        self.session.add(
            JourneyLog(
                enrolment_id=enrolment,
                contact_id=msg.contact_id,
                rule_id=info.get("rule"),
                at=self.now,
                action=action,
                data={"channel": msg.channel, "template": msg.template, "message": msg.id, **data},
            )
        )

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
        )

    def _defer_if_quiet(self, msg: Message, contact: Contact | None, channel: Any) -> bool:
        """The last guard of quiet hours: a message due inside the recipient's window goes back to ``pending``
        until it ends, without counting an attempt or calling the provider. True when deferred."""
        resume = policy.resumes_at(
            self.now, (msg.data or {}).get("quiet_hours"), channel, contact, self.config, internal_address(msg)
        )
        if resume is None:
            return False
        self.session.execute(
            update(Message)
            .where(Message.id == msg.id)
            .values(
                status=MessageStatus.PENDING.value,
                attempts=Message.attempts - 1,
                claimed_at=None,
                next_attempt_at=to_dt(resume),
            )
        )
        self.session.add(
            MessageStatusChange(
                message_id=msg.id, status="deferred", detail=f"quiet hours until {iso(resume)}", at=to_dt(self.now)
            )
        )
        self.session.commit()
        return True

    def deliver(self, message_ids: list[int]) -> int:
        """Send each pending message of *message_ids* at most once; return how many were sent."""
        sent = 0
        # one query skips what is done already: duplicate jobs (the scheduler re-enqueues slow ones) cost little
        todo = set(self.session.scalars(select(Message.id).where(Message.id.in_(message_ids), self._claimable())))
        self.session.commit()  # as each claim does: never hold the (SQLite) write lock across a send
        for message_id in message_ids:
            if message_id not in todo or not self._claim(message_id):
                continue  # another worker has it, or it is already done, or not due yet
            msg = self.session.get_one(Message, message_id)
            self.session.refresh(msg)
            contact = self.session.get(Contact, msg.contact_id) if msg.contact_id else None
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
            if self._send(msg, contact, channel):
                sent += 1
        return sent

    def _send(self, msg: Message, contact: Contact | None, channel: Any) -> bool:
        address = recipient(msg, contact, channel.address_field) or ""
        if self.capture is not None:
            self.capture.append(msg.id)
            provider_id = f"sim-{msg.id}"
        else:
            outbound = None
            try:
                outbound = self._outbound(msg, contact, channel, address or "")
                if not self._stamp(msg):
                    return False  # taken back and claimed again elsewhere: that claim sends it
                provider_id = channel.send(outbound).provider_id
            except ChannelError as exc:
                self._failure(msg, contact, channel, exc)
                return False
            except Exception as exc:  # a template or plugin bug: fail this message, keep the worker alive
                log.exception("sending %s failed", msg.key)
                if outbound is not None:  # the channel's own bug, not the template's
                    self._channel_error(msg.channel, f"{type(exc).__name__}: {exc}")
                self._finish(msg, MessageStatus.FAILED.value, str(exc), error=f"{type(exc).__name__}: {exc}")
                return False
            health.note_sent(self.session, msg.channel, to_dt(self.now))
        self._effect(msg, "send")
        self._finish(msg, MessageStatus.SENT.value, None, sent_at=to_dt(self.now), provider_id=provider_id, error=None)
        return True

    def _event_props(self, msg: Message) -> dict[str, Any]:
        """Props of the event that started the message's journey (``event.*`` in templates)."""
        enrolment = (msg.data or {}).get("enrolment")
        if enrolment is None:
            enrolment = enrolment_of(msg.key)
        if enrolment is None:
            return dict((msg.data or {}).get("event") or {})
        event_id = self.session.scalar(select(Enrolment.event_id).where(Enrolment.id == enrolment))
        event = self.session.get(Event, event_id) if event_id is not None else None
        return dict(event.props or {}) if event is not None else {}

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
        parts = render(
            msg.template,
            channel=msg.channel,
            contact=contact,
            session=self.session,
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


def deliver(session: Session, app: Flask, message_ids: list[int], now: int | None = None) -> int:
    with Delivery(session, app, now=now) as delivery:
        return delivery.deliver(message_ids)


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

"""Delivering outbox rows exactly once: claim, re-check consent and suppression, send, record.

A row is claimed (``pending`` → ``sending``) and committed before the provider is called,
so two workers never both send it; a worker that dies mid-send leaves it ``sending``, which
the scheduler later marks ``unknown`` for an operator — never blindly resent.
"""
from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..consent import current_consent, suppress, suppression_reason
from ..models import Contact, Enrolment, Event, JourneyLog, Message, MessageStatus, MessageStatusChange, utcnow
from ..sdk import ChannelError, OutboundMessage, redact
from .quiet import defer_if_quiet
from .render import contact_data, render_message
from .staff import TEAM_KEY_PREFIX, internal_address, internal_outbound, recipient
from .timeutil import to_dt, to_ts

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


def backoff(attempt: int, base: float = 30.0, cap: float = 6 * 3600.0) -> float:
    """Seconds to wait before retry *attempt* (1-based): exponential from *base* (``RETRY_BASE``), with jitter."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))


def parse_cap(text: str | None) -> tuple[int, int] | None:
    """``"3/7d"`` → (3, 604800): at most 3 marketing messages per 7 days."""
    if not text:
        return None
    count, _, window = str(text).partition("/")
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return int(count), int(window[:-1]) * units[window[-1]]


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
        self.cap = parse_cap(self.config.get("FREQUENCY_CAP"))
        #: channels that message the contact count toward the cap; a webhook call does not
        self.capped_channels = sorted(name for name, cls in self.pm.channels.items()
                                      if getattr(cls, "address_field", None))

    @property
    def now(self) -> int:
        return self.fixed_now if self.fixed_now is not None else to_ts(utcnow())

    def __enter__(self) -> "Delivery":
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
            Message.next_attempt_at.is_(None) | (Message.next_attempt_at <= instant))

    def _claim(self, message_id: int) -> bool:
        claimed = self.session.execute(
            update(Message)
            .where(Message.id == message_id, self._claimable())
            .values(status=MessageStatus.SENDING.value, claimed_at=to_dt(self.now), attempts=Message.attempts + 1)
        ).rowcount
        self.session.commit()
        return bool(claimed)

    def _finish(self, msg: Message, status: str, detail: str | None = None, **values: Any) -> None:
        self.session.execute(update(Message).where(Message.id == msg.id).values(status=status, **values))
        self.session.add(MessageStatusChange(message_id=msg.id, status=status, detail=detail, at=to_dt(self.now)))
        self.session.commit()

    def _effect(self, msg: Message, action: str, **data: Any) -> None:
        if msg.contact_id is None:
            return
        info = msg.data or {}
        enrolment = info.get("enrolment")
        if enrolment is None and msg.key.startswith("enr:"):
            enrolment = int(msg.key.split(":")[1])  # keys are enr:<enrolment>:<step>
        self.session.add(JourneyLog(enrolment_id=enrolment, contact_id=msg.contact_id,
                                    rule_id=info.get("rule"), at=self.now, action=action,
                                    data={"channel": msg.channel, "template": msg.template, "message": msg.id, **data}))

    def _blocked(self, msg: Message, contact: Contact | None, channel: Any) -> str | None:
        """Why this message must not go out now, or None: checked at the moment of sending."""
        field = getattr(channel, "address_field", None)
        if field is None:
            return None
        address = recipient(msg, contact, field)
        if not address:
            return "no_address"
        if (msg.data or {}).get("transactional"):
            # a message the contact asked for (e.g. double opt-in confirmation): consent and frequency
            # caps do not apply, but an address that bounced or complained is never mailed again
            reason = suppression_reason(self.session, self.config["SECRET_KEY"], msg.channel, address)
            return "bounced" if reason in ("bounced", "complained") else None
        if getattr(channel, "needs_consent", True):
            consent = current_consent(self.session, contact.id, msg.channel)
            if consent == "revoked":
                return "unsubscribed"  # an SMS opt-out reads as an email unsubscribe does
            if msg.channel == "sms" and consent != "granted":
                return "no_consent"
        reason = suppression_reason(self.session, self.config["SECRET_KEY"], msg.channel, address)
        if reason is not None:
            return "unsubscribed" if reason == "unsubscribed" else "bounced"
        if self.cap and (msg.data or {}).get("marketing", True):
            limit, window = self.cap
            recent = self.session.scalar(select(func.count(Message.id)).where(
                Message.contact_id == contact.id, Message.status == MessageStatus.SENT.value,
                Message.channel.in_(self.capped_channels), Message.sent_at >= to_dt(self.now - window),
                ~Message.key.startswith(TEAM_KEY_PREFIX)))  # mail to the staff about the contact is not theirs
            if recent >= limit:
                return "frequency_cap"
        return None

    def deliver(self, message_ids: list[int]) -> int:
        """Send each pending message of *message_ids* at most once; return how many were sent."""
        sent = 0
        # one query skips what is done already: duplicate jobs (the scheduler re-enqueues slow ones) cost little
        todo = set(self.session.scalars(select(Message.id).where(Message.id.in_(message_ids), self._claimable())))
        self.session.commit()  # as each claim does: never hold the (SQLite) write lock across a send
        for message_id in message_ids:
            if message_id not in todo or not self._claim(message_id):
                continue  # another worker has it, or it is already done, or not due yet
            msg = self.session.get(Message, message_id)
            self.session.refresh(msg)
            contact = self.session.get(Contact, msg.contact_id) if msg.contact_id else None
            try:
                channel = self._channel(msg.channel)
            except Exception as exc:  # no such channel installed
                self._finish(msg, MessageStatus.FAILED.value, str(exc), error=str(exc))
                continue
            reason = self._blocked(msg, contact, channel)
            if reason is not None:
                self._effect(msg, "suppressed", reason=reason)
                self._finish(msg, MessageStatus.SUPPRESSED.value, reason, error=reason)
                continue
            if defer_if_quiet(self.session, self.config, msg, contact, channel, self.now, internal_address(msg)):
                continue  # inside the recipient's quiet hours: pending again until they end, no attempt counted
            if self._send(msg, contact, channel):
                sent += 1
        return sent

    def _send(self, msg: Message, contact: Contact | None, channel: Any) -> bool:
        address = recipient(msg, contact, getattr(channel, "address_field", None)) or ""
        if self.capture is not None:
            self.capture.append(msg.id)
            provider_id = f"sim-{msg.id}"
        else:
            try:
                outbound = self._outbound(msg, contact, channel, address or "")
                provider_id = channel.send(outbound).provider_id
            except ChannelError as exc:
                self._failure(msg, contact, channel, exc)
                return False
            except Exception as exc:  # a template or plugin bug: fail this message, keep the worker alive
                log.exception("sending %s failed", msg.key)
                self._finish(msg, MessageStatus.FAILED.value, str(exc), error=f"{type(exc).__name__}: {exc}")
                return False
        self._effect(msg, "send")
        self._finish(msg, MessageStatus.SENT.value, None, sent_at=to_dt(self.now), provider_id=provider_id,
                     error=None)
        return True

    def _event_props(self, msg: Message) -> dict[str, Any]:
        """Props of the event that started the message's journey (``event.*`` in templates)."""
        enrolment = (msg.data or {}).get("enrolment")
        if enrolment is None and msg.key.startswith("enr:"):
            enrolment = int(msg.key.split(":")[1])
        if enrolment is None:
            return dict((msg.data or {}).get("event") or {})
        event_id = self.session.scalar(select(Enrolment.event_id).where(Enrolment.id == enrolment))
        event = self.session.get(Event, event_id) if event_id is not None else None
        return dict(event.props or {}) if event is not None else {}

    def _outbound(self, msg: Message, contact: Contact | None, channel: Any, address: str) -> OutboundMessage:
        """The rendered message. Channels without a contact address (webhooks) get data, not text."""
        if internal_address(msg) and getattr(channel, "address_field", None):
            return internal_outbound(msg, contact)
        props = self._event_props(msg)
        marketing = bool((msg.data or {}).get("marketing", True))
        if getattr(channel, "address_field", None) is None:
            data = {**(msg.data or {}), "contact": contact_data(contact), "event": props}
            return OutboundMessage(key=msg.key, channel=msg.channel, template=msg.template, to=address,
                                   marketing=marketing, data=data)
        unsubscribe = self._unsubscribe_url(msg, contact)
        subject, text, html = render_message(msg.template, contact=contact, channel=msg.channel, session=self.session,
                                             data={**(msg.data or {}), "event": props,
                                                   "unsubscribe_url": unsubscribe})
        return OutboundMessage(key=msg.key, channel=msg.channel, template=msg.template, to=address, subject=subject,
                               text=text, html=html, marketing=marketing, unsubscribe_url=unsubscribe,
                               data=msg.data or {})

    def _unsubscribe_url(self, msg: Message, contact: Contact | None) -> str | None:
        try:
            from ..links import unsubscribe_url
        except ImportError:
            return f"{self.config['BASE_URL']}/u/{msg.key}"
        return unsubscribe_url(contact.public_id, msg.channel, msg.key) if contact is not None else None

    def _failure(self, msg: Message, contact: Contact | None, channel: Any, exc: ChannelError) -> None:
        log.warning("send of %s failed (attempt %d): %s", msg.key, msg.attempts, redact(exc.message))
        if exc.suppress and contact is not None and getattr(channel, "address_field", None):
            address = getattr(contact, channel.address_field, None)
            if address:
                suppress(self.session, self.config["SECRET_KEY"], msg.channel, address, exc.suppress, exc.message)
        schedule = getattr(channel, "retry_schedule", None)
        if exc.ambiguous and not getattr(channel, "idempotent", False):
            self._finish(msg, MessageStatus.UNKNOWN.value, exc.message, error=exc.message)
        elif exc.permanent or msg.attempts >= (len(schedule) if schedule else MAX_ATTEMPTS):
            self._finish(msg, MessageStatus.FAILED.value, exc.message, error=exc.message)
        else:
            delay = exc.retry_after or (schedule[msg.attempts] if schedule and msg.attempts < len(schedule)
                                        else backoff(msg.attempts, base=float(self.config.get("RETRY_BASE", 30.0))))
            self._finish(msg, MessageStatus.PENDING.value, exc.message, error=exc.message, claimed_at=None,
                         next_attempt_at=to_dt(self.now) + timedelta(seconds=delay))


def deliver(session: Session, app: Flask, message_ids: list[int]) -> int:
    with Delivery(session, app) as delivery:
        return delivery.deliver(message_ids)

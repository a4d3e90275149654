"""Nudge's side of :mod:`server.sdk`: what plugins read and write, through the channel's own declarations.

A plugin knows addresses (a phone number that texted STOP) and provider ids, not contacts or rows:
the contacts are found through the channel's declarations (``address_field``, ``address_forms``,
``same_address``). Each write is one transaction of the app's session; the events it stores reach the
engine after the commit. A *receipt* (the provider's id of what it reported) is stored in the same
transaction, so a replayed callback finds it and changes nothing.

``create_app()`` installs this module as ``app.extensions["nudge.sdk"]``; the SDK calls it there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import consent
from .contacts.errors import InvalidInput
from .contacts.events import record_event
from .contacts.normalize import check_json
from .db import get_session
from .engine.wake import enqueue_events
from .models import (
    ConsentStatus,
    Contact,
    Message,
    MessageStatus,
    MessageStatusChange,
    ProviderReceipt,
    Suppression,
    SuppressionReason,
    WebhookEndpoint,
    utcnow,
)
from .models import InboundSource as SourceRow
from .problems import problem as _problem
from .sdk import Channel, ContactDataError, DeliveryStatus, Endpoint, InboundSource, Ingested, Recorded, SentMessage

log = logging.getLogger(__name__)

__all__ = [
    "channel",
    "disable_endpoint",
    "endpoint",
    "enqueue",
    "find_contacts",
    "find_message",
    "inbound_source",
    "ingest_event",
    "problem",
    "raise_event",
    "record_consent",
    "record_status",
    "suppress",
    "unsubscribe",
]


def _plugins() -> Any:
    return current_app.extensions["nudge.plugins"]


def channel(name: str) -> Channel:
    """See :func:`server.sdk.channel`."""
    return _plugins().channel(name, current_app.config)


def _contacts(session: Session, name: str, address: str) -> list[Contact]:
    """Contacts whose *name* channel address is *address*, however it was written down."""
    instance = channel(name)
    field = instance.address_field
    if field is None:
        return []
    column = getattr(Contact, field)
    forms = sorted(set(instance.address_forms(address)) | {address, address.lower()})
    return [
        contact
        for contact in session.scalars(select(Contact).where(column.in_(forms)).order_by(Contact.id))
        if instance.same_address(getattr(contact, field) or "", address)
    ]


def find_contacts(name: str, address: str) -> list[dict[str, Any]]:
    """See :func:`server.sdk.find_contacts`."""
    from .engine.render import contact_data

    return [{**contact_data(contact), "id": contact.id} for contact in _contacts(get_session(), name, address)]


def _first_time(session: Session, scope: str, receipt: str | None) -> bool:
    """Store *receipt* unless it is known; False when it is (a replay), also under concurrent callbacks."""
    if receipt is None:
        return True
    scope, receipt = scope[:64], receipt[:255]
    if (
        session.scalar(
            select(ProviderReceipt.id).where(ProviderReceipt.channel == scope, ProviderReceipt.receipt == receipt)
        )
        is not None
    ):
        return False
    try:
        with session.begin_nested():
            session.add(ProviderReceipt(channel=scope, receipt=receipt))
    except IntegrityError:  # the same callback, handled by another request right now
        return False
    return True


def _write(scope: str, receipt: str | None, body: Callable[[Session], tuple[int, list[int]]]) -> Recorded:
    """Run *body* (returning the contacts matched and the event ids) in one transaction, once per receipt."""
    session = get_session()
    try:
        if not _first_time(session, scope, receipt):
            session.rollback()
            return Recorded(duplicate=True)
        contacts, event_ids = body(session)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    enqueue_events(event_ids)
    return Recorded(contacts=contacts)


def record_consent(
    name: str,
    address: str,
    granted: bool,
    *,
    source: str,
    event: str | None = None,
    props: Mapping[str, Any] | None = None,
    receipt: str | None = None,
    wording: str | None = None,
) -> Recorded:
    """See :func:`server.sdk.record_consent`."""
    wanted = (ConsentStatus.GRANTED if granted else ConsentStatus.REVOKED).value
    secret = current_app.config["SECRET_KEY"]

    def body(session: Session) -> tuple[int, list[int]]:
        contacts = _contacts(session, name, address)
        events = []
        for contact in contacts:
            if consent.current_consent(session, contact.id, name) == wanted:
                continue  # already in that state: the ledger records changes, and the rules see one event
            consent.record_consent(session, contact.id, name, granted, source, wording=wording)
            if event:
                events.append(record_event(session, contact, event, props, source=name).id)
        if granted:
            _lift_opt_out(session, secret, name, address)
        else:
            consent.suppress(session, secret, name, address, SuppressionReason.UNSUBSCRIBED.value, source)
        return len(contacts), events

    return _write(name, receipt, body)


def _lift_opt_out(session: Session, secret: str, name: str, address: str) -> None:
    """The owner of the address asked to be messaged again: an opt-out suppression goes, a bounce stays."""
    digest = consent.address_hash(secret, name, address)
    row = session.scalar(
        select(Suppression).where(
            Suppression.channel == name,
            Suppression.address_hash == digest,
            Suppression.reason == SuppressionReason.UNSUBSCRIBED.value,
        )
    )
    if row is not None:
        session.delete(row)


def raise_event(
    name: str, address: str, event: str, props: Mapping[str, Any] | None = None, *, receipt: str | None = None
) -> Recorded:
    """See :func:`server.sdk.raise_event`."""

    def body(session: Session) -> tuple[int, list[int]]:
        contacts = _contacts(session, name, address)
        return len(contacts), [record_event(session, c, event, props, source=name).id for c in contacts]

    return _write(name, receipt, body)


def suppress(
    name: str, address: str, reason: str, detail: str | None = None, *, receipt: str | None = None
) -> Recorded:
    """See :func:`server.sdk.suppress`."""
    if reason not in {r.value for r in SuppressionReason}:
        raise ValueError(
            f"unknown suppression reason {reason!r}; use one of {', '.join(r.value for r in SuppressionReason)}"
        )

    def body(session: Session) -> tuple[int, list[int]]:
        consent.suppress(session, current_app.config["SECRET_KEY"], name, address, reason, detail)
        return len(_contacts(session, name, address)), []

    return _write(name, receipt, body)


def ingest_event(
    contact: Mapping[str, Any],
    name: str,
    props: Mapping[str, Any] | None,
    *,
    source: str,
    occurred_at: datetime | None = None,
    receipt: str | None = None,
) -> Ingested:
    """See :func:`server.sdk.ingest_event`."""
    from .engine.ingest import upsert_contact

    try:  # JSON every backend stores (a NUL in text was a server error on PostgreSQL), before anything is written
        props = check_json(dict(props or {}), "props")
    except InvalidInput as exc:
        raise ContactDataError("props", str(exc)) from None
    session = get_session()
    try:
        if not _first_time(session, source, receipt):
            session.rollback()
            return Ingested(contact_id=None, event_id=None, duplicate=True)
        row = upsert_contact(session, contact, region=current_app.config.get("PHONE_REGION"))
        event = record_event(session, row, name, props, occurred_at=occurred_at, source=source[:32])
        session.commit()
    except InvalidInput as exc:
        session.rollback()
        raise ContactDataError(exc.field, str(exc)) from None
    except BaseException:
        session.rollback()
        raise
    enqueue_events([event.id])
    return Ingested(contact_id=row.id, event_id=event.id)


def find_message(name: str, provider_id: str) -> SentMessage | None:
    """See :func:`server.sdk.find_message`."""
    session = get_session()
    message = session.scalar(select(Message).where(Message.channel == name, Message.provider_id == provider_id))
    return _sent(session, message) if message is not None else None


def _sent(session: Session, message: Message) -> SentMessage:
    reported = tuple(
        session.scalars(
            select(MessageStatusChange.status)
            .where(MessageStatusChange.message_id == message.id, MessageStatusChange.source == message.channel)
            .order_by(MessageStatusChange.id)
        )
    )
    address = None
    cls = _plugins().channels.get(message.channel)
    contact = session.get(Contact, message.contact_id) if message.contact_id else None
    if cls is not None and cls.address_field and contact is not None:
        address = getattr(contact, cls.address_field, None)
        with contextlib.suppress(ValueError):  # else as it is stored: the provider knows it by what was sent
            address = channel(message.channel).validate_address(address) if address else None
    return SentMessage(
        key=message.key, template=message.template, status=message.status, address=address, reported=reported
    )


def record_status(
    report: DeliveryStatus, *, outcome: bool = True, fails_message: bool = False, order: Mapping[str, int] | None = None
) -> Recorded:
    """See :func:`server.sdk.record_status`."""
    cls = _plugins().channels.get(report.channel)
    if cls is None or (outcome and report.event not in cls.events):
        raise ValueError(f"no channel declares the event {report.event!r}")
    session = get_session()
    message = _message_of(session, report, lock=order is not None)
    if order is not None and message is not None:
        last = session.scalar(
            select(MessageStatusChange.status)
            .where(MessageStatusChange.message_id == message.id, MessageStatusChange.source == report.channel)
            .order_by(MessageStatusChange.id.desc())
            .limit(1)
        )
        if last is not None and order.get(report.status, -1) <= order.get(last, -1):
            session.rollback()  # late or repeated: callbacks arrive out of order
            return Recorded(duplicate=True)
    contact = session.get(Contact, message.contact_id) if message is not None and message.contact_id else None
    if contact is None and report.address and cls.address_field:
        column = getattr(Contact, cls.address_field)
        contact = session.scalar(select(Contact).where(func.lower(column) == report.address.strip().lower()))
    detail = (report.detail or "")[:1024] or None
    if report.suppress and report.address:
        consent.suppress(
            session, current_app.config["SECRET_KEY"], report.channel, report.address, report.suppress, detail
        )
    if message is not None:
        if fails_message:
            message.status, message.error = MessageStatus.FAILED.value, detail
        session.add(
            MessageStatusChange(
                message_id=message.id, status=report.status, detail=detail, source=report.channel, at=utcnow()
            )
        )
    event = None
    if outcome and contact is not None:
        props = dict(report.props)
        if message is not None:
            props.setdefault("message", message.key)
            props.setdefault("template", message.template)
        if detail:
            props.setdefault("detail", detail)
        event = record_event(
            session, contact, report.event, props, occurred_at=report.occurred_at, source=report.channel
        )
    session.commit()
    enqueue_events([event.id] if event is not None else [])
    return Recorded(contacts=1 if event is not None else 0)


def _message_of(session: Session, report: DeliveryStatus, lock: bool) -> Message | None:
    """The message a report is about: by the provider's id, else by the outbox key (locked when asked)."""
    for where in (
        (Message.channel == report.channel, Message.provider_id == report.provider_id) if report.provider_id else None,
        (Message.key == report.message_key,) if report.message_key else None,
    ):
        if where is not None:
            query = select(Message).where(*where)
            message = session.scalar(query.with_for_update() if lock else query)
            if message is not None:
                return message
    return None


def endpoint(name: str) -> Endpoint | None:
    """See :func:`server.sdk.endpoint`."""
    row = get_session().scalar(select(WebhookEndpoint).where(WebhookEndpoint.name == name))
    if row is None:
        return None
    return Endpoint(
        name=row.name,
        url=row.url,
        secrets=tuple(row.secrets or ()),
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
    )


def disable_endpoint(name: str, reason: str) -> None:
    """See :func:`server.sdk.disable_endpoint`."""
    session = get_session()
    row = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.name == name))
    if row is not None:
        row.disabled_at, row.disabled_reason = utcnow(), reason[:255]
        session.commit()  # the endpoint said it is gone for good: that must stick whatever the caller does next


def inbound_source(name: str) -> InboundSource | None:
    """See :func:`server.sdk.inbound_source`."""
    row = get_session().scalar(select(SourceRow).where(SourceRow.name == name))
    if row is None:
        return None
    return InboundSource(id=row.id, name=row.name, secret=row.secret, mapping=dict(row.mapping or {}))


def enqueue(function: Any, *args: Any) -> None:
    """See :func:`server.sdk.enqueue`."""
    from .queue import get_queue

    get_queue().enqueue(function, *args)


def problem(status: int, title: str, detail: str, *, field: str | None = None) -> Any:
    """See :func:`server.sdk.problem`."""
    return _problem(status, title, detail, **({"field": field} if field is not None else {}))


def unsubscribe(token: str, *, source: str, ip: str | None = None, user_agent: str | None = None) -> str | None:
    """See :func:`server.sdk.unsubscribe`."""
    from .optout import BadLink, unsubscribe_with_token

    try:
        return unsubscribe_with_token(token, source, ip=ip, user_agent=user_agent)
    except BadLink as exc:
        raise ValueError(f"not a valid unsubscribe token: {exc}") from None

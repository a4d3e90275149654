"""What plugins write through :mod:`server.sdk`: consent, events and suppressions for an address.

A plugin knows addresses (a phone number that texted STOP), not contacts: the contacts are found
through the channel's own declarations (``address_forms``, ``same_address``). Each call is one
transaction of the app's session; the events it stores reach the engine after the commit. A
*receipt* (the provider's id of what it reported) is stored in the same transaction, so a replayed
callback finds it and changes nothing.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import consent
from .contacts.events import record_event
from .db import get_session
from .models import ConsentStatus, Contact, ProviderReceipt, Suppression, SuppressionReason
from .sdk import Recorded


def find_contacts(session: Session, channel: str, address: str) -> list[Contact]:
    """Contacts whose *channel* address is *address*, however it was written down."""
    instance = current_app.extensions["nudge.plugins"].channel(channel, current_app.config)
    field = instance.address_field
    if field is None:
        return []
    column = getattr(Contact, field)
    forms = sorted({form for form in instance.address_forms(address)} | {address, address.lower()})
    return [contact for contact in session.scalars(select(Contact).where(column.in_(forms)).order_by(Contact.id))
            if instance.same_address(getattr(contact, field) or "", address)]


def _first_time(session: Session, channel: str, receipt: str | None) -> bool:
    """Store *receipt* unless it is known; False when it is (a replay), also under concurrent callbacks."""
    if receipt is None:
        return True
    receipt = receipt[:255]
    if session.scalar(select(ProviderReceipt.id).where(ProviderReceipt.channel == channel,
                                                       ProviderReceipt.receipt == receipt)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(ProviderReceipt(channel=channel, receipt=receipt))
    except IntegrityError:  # the same callback, handled by another request right now
        return False
    return True


def _write(channel: str, receipt: str | None, body: Callable[[Session], tuple[int, list[int]]]) -> Recorded:
    """Run *body* (returning the contacts matched and the event ids) in one transaction, once per receipt."""
    from .engine.jobs import process_events
    from .queue import get_queue

    session = get_session()
    try:
        if not _first_time(session, channel, receipt):
            session.rollback()
            return Recorded(duplicate=True)
        contacts, event_ids = body(session)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if event_ids:
        get_queue().enqueue(process_events, event_ids)
    return Recorded(contacts=contacts)


def record_consent(channel: str, address: str, granted: bool, *, source: str, event: str | None = None,
                   props: Mapping[str, Any] | None = None, receipt: str | None = None) -> Recorded:
    """See :func:`server.sdk.record_consent`."""
    wanted = (ConsentStatus.GRANTED if granted else ConsentStatus.REVOKED).value
    secret = current_app.config["SECRET_KEY"]

    def body(session: Session) -> tuple[int, list[int]]:
        contacts = find_contacts(session, channel, address)
        events = []
        for contact in contacts:
            if consent.current_consent(session, contact.id, channel) == wanted:
                continue  # already in that state: the ledger records changes, and the rules see one event
            consent.record_consent(session, contact.id, channel, granted, source)
            if event:
                events.append(record_event(session, contact, event, props, source=channel).id)
        if granted:
            _lift_opt_out(session, secret, channel, address)
        else:
            consent.suppress(session, secret, channel, address, SuppressionReason.UNSUBSCRIBED.value, source)
        return len(contacts), events

    return _write(channel, receipt, body)


def _lift_opt_out(session: Session, secret: str, channel: str, address: str) -> None:
    """The owner of the address asked to be messaged again: an opt-out suppression goes, a bounce stays."""
    digest = consent.address_hash(secret, channel, address)
    row = session.scalar(select(Suppression).where(Suppression.channel == channel, Suppression.address_hash == digest,
                                                   Suppression.reason == SuppressionReason.UNSUBSCRIBED.value))
    if row is not None:
        session.delete(row)


def raise_event(channel: str, address: str, event: str, props: Mapping[str, Any] | None = None, *,
                receipt: str | None = None) -> Recorded:
    """See :func:`server.sdk.raise_event`."""
    def body(session: Session) -> tuple[int, list[int]]:
        contacts = find_contacts(session, channel, address)
        return len(contacts), [record_event(session, c, event, props, source=channel).id for c in contacts]

    return _write(channel, receipt, body)


def suppress(channel: str, address: str, reason: str, detail: str | None = None, *,
             receipt: str | None = None) -> Recorded:
    """See :func:`server.sdk.suppress`."""
    if reason not in {r.value for r in SuppressionReason}:
        raise ValueError(f"unknown suppression reason {reason!r}; use one of "
                         f"{', '.join(r.value for r in SuppressionReason)}")

    def body(session: Session) -> tuple[int, list[int]]:
        consent.suppress(session, current_app.config["SECRET_KEY"], channel, address, reason, detail)
        return len(find_contacts(session, channel, address)), []

    return _write(channel, receipt, body)

"""Reads and writes through Nudge's side of the plugin API (``server.plugin_writes``), inside the running app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ._channel import Channel
from ._messages import DeliveryStatus


class _Host(Protocol):
    """What Nudge's side of the plugin API provides (``server.plugin_writes``): the functions below call it."""

    def record_consent(
        self,
        name: str,
        address: str,
        granted: bool,
        *,
        source: str,
        event: str | None = None,
        props: Mapping[str, Any] | None = None,
        receipt: str | None = None,
        wording: str | None = None,
    ) -> Recorded: ...

    def raise_event(
        self, name: str, address: str, event: str, props: Mapping[str, Any] | None = None, *, receipt: str | None = None
    ) -> Recorded: ...

    def suppress(
        self, name: str, address: str, reason: str, detail: str | None = None, *, receipt: str | None = None
    ) -> Recorded: ...

    def ingest_event(
        self,
        contact: Mapping[str, Any],
        name: str,
        props: Mapping[str, Any] | None,
        *,
        source: str,
        occurred_at: datetime | None = None,
        receipt: str | None = None,
    ) -> Ingested: ...

    def record_status(
        self,
        report: DeliveryStatus,
        *,
        outcome: bool = True,
        fails_message: bool = False,
        order: Mapping[str, int] | None = None,
    ) -> Recorded: ...

    def find_contacts(self, name: str, address: str) -> list[dict[str, Any]]: ...

    def find_message(self, name: str, provider_id: str) -> SentMessage | None: ...

    def channel(self, name: str) -> Channel: ...

    def endpoint(self, name: str) -> Endpoint | None: ...

    def disable_endpoint(self, name: str, reason: str) -> None: ...

    def inbound_source(self, name: str) -> InboundSource | None: ...

    def enqueue(self, function: Any, *args: Any) -> None: ...

    def problem(self, status: int, title: str, detail: str, *, field: str | None = None) -> Any: ...

    def unsubscribe(
        self, token: str, *, source: str, ip: str | None = None, user_agent: str | None = None
    ) -> str | None: ...


def _host() -> _Host:
    """Nudge's side of the plugin API, inside the running app (a request, a job, an app context).

    The SDK itself imports nothing of Nudge's: ``create_app()`` puts the writer in ``app.extensions``.
    """
    from flask import current_app, has_app_context

    if not has_app_context():
        raise RuntimeError(
            "server.sdk reads and writes need Nudge's app context: call them from a request "
            "(a plugin's endpoint), a job or a channel's send()"
        )
    host: _Host = current_app.extensions["nudge.sdk"]
    return host


def unsubscribe(token: str, *, source: str, ip: str | None = None, user_agent: str | None = None) -> str | None:
    """Record the opt-out a signed unsubscribe token asks for, exactly as the one-click ``POST /u/<token>`` does.

    Revokes the contact's consent on the token's channel and raises the channel's opt-out event
    (``<channel>.unsubscribed`` unless it declares another), once: a repeated request records nothing new;
    then commits and hands the event to the engine. Call it e.g. from a plugin endpoint that receives
    ``mailto:`` unsubscribes.

    :param token: the last path segment of ``OutboundMessage.unsubscribe_url``.
    :param source: where the request came from, kept in the consent ledger (``mailto``).
    :param ip: the requester's IP address, when known.
    :param user_agent: the requester's user agent, when known.
    :return: the channel unsubscribed from, or None when the token's contact no longer exists.
    :raises ValueError: when the token is forged, tampered with, made for another purpose, or expired.
    """
    return _host().unsubscribe(token, source=source, ip=ip, user_agent=user_agent)


@dataclass(frozen=True)
class Recorded:
    """What a write of :mod:`server.sdk` did.

    :param contacts: how many contacts it concerned (each got its ledger row or event).
    :param duplicate: True when nothing was written because it was written before: the *receipt* was seen
        already, or a status report is not ahead of the one recorded last.
    """

    contacts: int = 0
    duplicate: bool = False


@dataclass(frozen=True)
class Ingested:
    """What :func:`ingest_event` stored: the contact (found or created) and the event; both None for a duplicate."""

    contact_id: int | None
    event_id: int | None
    duplicate: bool = False


@dataclass(frozen=True)
class SentMessage:
    """An outbox message a provider reports on, as :func:`find_message` finds it.

    :param key: the outbox key (``OutboundMessage.key``).
    :param template: the template (or, for an endpoint channel, the endpoint) it was sent with.
    :param status: Nudge's status of it (``sent``, ``failed`` …).
    :param address: where it went: the recipient's address on the channel (canonical, when it validates),
        or None for a channel addressing nobody or a contact erased since.
    :param reported: the statuses the channel reported for it so far, oldest first.
    """

    key: str
    template: str
    status: str
    address: str | None
    reported: tuple[str, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """A named destination of an endpoint channel (``templates/<channel>/<name>.toml``).

    :param disabled_reason: why it no longer takes calls, when :attr:`disabled_at` is set.
    """

    name: str
    url: str
    secrets: tuple[str, ...]
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


@dataclass(frozen=True)
class InboundSource:
    """A source of inbound payloads an operator configured: its name, signing secret and field mapping."""

    id: int
    name: str
    secret: str
    mapping: Mapping[str, Any]


class ContactDataError(ValueError):
    """Contact data a plugin hands to :func:`ingest_event` cannot be taken; ``field`` names the culprit."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def record_consent(
    channel: str,
    address: str,
    granted: bool,
    *,
    source: str,
    event: str | None = None,
    props: Mapping[str, Any] | None = None,
    receipt: str | None = None,
    wording: str | None = None,
) -> Recorded:
    """Record that the owner of *address* gave or withdrew consent on *channel*, as the provider reports it.

    Every contact with the address gets a consent ledger row (unless it already is in that state) and
    *event*. An opt-out also puts the address on the suppression list, so a contact created later with
    it (import, API) is not messaged either; an opt-in lifts that opt-out suppression (never a bounce's).
    One transaction; the events reach the engine after the commit.

    :param channel: the channel name (``sms``); *address* is in its canonical form (``validate_address``).
    :param source: where the change came from, for the ledger (``sms:STOP``).
    :param event: the event raised per contact (``sms.opted_out``), or None.
    :param receipt: the provider's id of what it told us (a message SID): a second call with the same
        receipt changes nothing.
    :param wording: what the person agreed to, in the words they saw (kept in the ledger).
    """
    return _host().record_consent(
        channel, address, granted, source=source, event=event, props=props, receipt=receipt, wording=wording
    )


def raise_event(
    channel: str, address: str, event: str, props: Mapping[str, Any] | None = None, *, receipt: str | None = None
) -> Recorded:
    """Raise *event* for every contact whose *channel* address is *address* (e.g. ``sms.replied``).

    :param receipt: the provider's id of the message: a second call with it changes nothing.
    """
    return _host().raise_event(channel, address, event, props=props, receipt=receipt)


def suppress(
    channel: str, address: str, reason: str, detail: str | None = None, *, receipt: str | None = None
) -> Recorded:
    """Put *address* on the suppression list of *channel* (``bounced``, ``complained``, ``unsubscribed`` …).

    :param detail: a short explanation without personal data (it outlives an erasure).
    """
    return _host().suppress(channel, address, reason, detail=detail, receipt=receipt)


def ingest_event(
    contact: Mapping[str, Any],
    name: str,
    props: Mapping[str, Any] | None = None,
    *,
    source: str,
    occurred_at: datetime | None = None,
    receipt: str | None = None,
) -> Ingested:
    """Raise event *name* for the contact *contact* identifies, creating the contact when nobody has it.

    What Nudge's events API does for a posted event (an inbound webhook, a form provider …): the contact
    is found by ``external_id`` or ``email`` (``phone`` and other fields are set on a new contact), the event
    stored, and the engine handed it after the commit.

    :param contact: ``{"email": …, "external_id": …, "phone": …}``; at least an email or an external id.
    :param source: where it came from, kept with the event (at most 32 characters, e.g. ``hook:shop``).
    :param receipt: the sender's id of the payload: a second call with it (from the same *source*) stores nothing
        and returns ``duplicate=True``.
    :raises ContactDataError: naming the field when the contact data cannot be taken, or ``props`` when the
        properties are not JSON every database stores (a NUL in text, an integer past 64 bits, deep nesting).
    """
    return _host().ingest_event(contact, name, props, source=source, occurred_at=occurred_at, receipt=receipt)


def record_status(
    report: DeliveryStatus, *, outcome: bool = True, fails_message: bool = False, order: Mapping[str, int] | None = None
) -> Recorded:
    """Record what a provider reported about a message (or an address): the message's status history, a
    suppression when ``report.suppress`` is set, and for an outcome the event ``<channel>.<status>``.

    The message is found by ``report.provider_id`` (or ``report.message_key``), the contact through it, else
    by ``report.address``. One transaction; the event reaches the engine after the commit.

    :param outcome: False for a step before the outcome (Twilio's ``sending``): history only, no event, and the
        status need not be a declared event.
    :param fails_message: the report means the message did not arrive: it is marked ``failed`` with
        ``report.detail`` as its error.
    :param order: the provider's statuses in the order they can happen (``{"queued": 1, "sent": 3, …}``):
        callbacks arrive out of order, so a report not ahead of the last one recorded for the message from this
        channel changes nothing (``duplicate=True``); checked under a lock on the message.
    :raises ValueError: when the channel is unknown or an outcome is not one of its declared events.
    """
    return _host().record_status(report, outcome=outcome, fails_message=fails_message, order=order)


def find_contacts(channel: str, address: str) -> list[dict[str, Any]]:
    """The contacts whose *channel* address is *address* (however it was written down), as plain data.

    :return: one dict per contact, oldest first: ``id`` and the fields templates see (``email``, ``phone`` …).
    """
    return _host().find_contacts(channel, address)


def find_message(channel: str, provider_id: str) -> SentMessage | None:
    """The message of *channel* the provider knows as *provider_id* (what ``send`` returned), or None."""
    return _host().find_message(channel, provider_id)


def channel(name: str) -> Channel:
    """The channel *name* as this instance has it configured (its settings in ``config``), e.g. to build a
    :class:`DeliveryStatus` with :meth:`Channel.status` or to read a setting of one's own."""
    return _host().channel(name)


def endpoint(name: str) -> Endpoint | None:
    """The endpoint called *name* (``templates/<channel>/<name>.toml``), read now: a disabled endpoint or a
    rotated secret applies to pending retries at once."""
    return _host().endpoint(name)


def disable_endpoint(name: str, reason: str) -> None:
    """Stop calling endpoint *name* (it answered 410 Gone …): committed at once, shown to operators with *reason*."""
    _host().disable_endpoint(name, reason)


def inbound_source(name: str) -> InboundSource | None:
    """The inbound source called *name* an operator configured, or None."""
    return _host().inbound_source(name)


def enqueue(function: Any, *args: Any) -> None:
    """Run ``function(*args)`` later in a worker, inside the app context (follow-up work of a callback).

    *function* must be importable by name (a module-level function of the plugin) and *args* plain data.
    """
    _host().enqueue(function, *args)


def problem(status: int, title: str, detail: str, *, field: str | None = None) -> Any:
    """An ``application/problem+json`` answer, as Nudge's API gives (for a plugin's endpoint)."""
    return _host().problem(status, title, detail, field=field)

"""Rendering hand-off of an outbox batch: what the templates read (contacts, the journeys' events, the stored
parts) read once for the batch, each message asked about (:mod:`.outbox_checks`) and rendered into the item a
lane sends."""

from __future__ import annotations

import functools
import logging
from collections.abc import Generator
from typing import Any, NamedTuple, cast

from sqlalchemy import select

from ..links import unsubscribe_url
from ..models import Contact, Enrolment, Event, MessageStatus
from ..sdk import UNSUBSCRIBE_LINK, ChannelError, OutboundMessage
from . import tracking
from .keys import enrolment_of
from .lanes import Item
from .outbox_checks import BatchContact, Checks
from .outbox_rounds import Claimed
from .render import _CONTACT_COLUMNS, ContactRow, Renderer, contact_data, get_renderer, load_parts, render
from .staff import internal_address, internal_outbound, recipient

log = logging.getLogger("server.engine.outbox")


class Prepared(NamedTuple):
    """A claimed batch after the send-time policy and rendering: the items to send by channel, and how many
    were captured instead (simulation)."""

    ready: dict[str, list[Item]]
    captured: int


class Handoff(Checks):
    """Prepares claimed rows for the lanes: policy first, then the rendered message."""

    _renderer: Renderer  # the app's, asked for once per batch

    def _prepare(self, msgs: list[Claimed]) -> Generator[bool, None, Prepared]:
        """Ask the policy about each claimed row and render the rest, a step per message; commit, and return the
        rendered items by channel and how many were captured (simulation).

        What the batch reads (contacts, the journeys' events, the suppressions and consents, the templates) is read
        before the first step (on SQLite in the claim's transaction: its write lock taken once for both), then
        committed: no transaction is left open while the batch before is on the wire.
        """
        ready: dict[str, list[Item]] = {}
        if not msgs:
            self.session.commit()  # the claim that found nothing
            return Prepared(ready, 0)
        contacts = self._contacts({msg.contact_id for msg in msgs if msg.contact_id})
        self._props = self._events_props(msgs)
        self._parts = self._templates(msgs)  # templates loaded once per batch
        targets = self._targets(msgs, contacts)
        self._verdicts = self._read_verdicts(targets)
        self._renderer = get_renderer(self.app)
        self.session.commit()  # on SQLite, the claim with them
        captured = 0
        for msg, contact, found, to in targets:
            yield True
            try:
                channel = self._channel(msg.channel) if found is None else found  # raises again, as it did
            except Exception as exc:  # no such channel installed
                self._channel_error(msg.channel, str(exc))
                self._finish(msg, MessageStatus.FAILED.value, str(exc), error=str(exc))
                continue
            if found is None:  # the channel came after all: its address, as the targets would have it
                to = recipient(msg, contact, channel.address_field)
            reason = self._blocked(msg, contact, channel, to)
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
            try:
                outbound = self._outbound(msg, contact, channel, to or "")
            except ChannelError as exc:
                self._failure(msg, cast(Any, contact), channel, exc)  # it reads the channel's address of it
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

    def _contacts(self, contact_ids: set[int]) -> dict[int, BatchContact]:
        """The contacts of a batch by id: rows of the columns the policy, the templates, the links and the
        channels' addresses read (:class:`.render.ContactRow`), or the ORM's objects when a channel addresses
        contacts by an attribute that is not a column."""
        if not contact_ids:
            return {}
        columns = _read_columns(frozenset(cls.address_field for cls in self.pm.channels.values()))
        if columns is None:
            return {c.id: c for c in self.session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
        names = tuple(column.key for column in columns)
        rows = self.session.execute(select(*columns).where(Contact.id.in_(contact_ids)))
        return {row[0]: ContactRow(dict(zip(names, row, strict=True))) for row in rows}

    def _templates(self, msgs: list[Claimed]) -> dict[tuple[str, str], dict[str, str]]:
        """The parts of the templates *msgs* use, by (channel, name); one missing is left out (its messages fail
        when rendered, saying so)."""
        parts = {}
        for key in {(msg.channel, msg.template) for msg in msgs if self.capture is None}:
            try:
                parts[key] = load_parts(self.session, *key)
            except Exception:  # no such template, or no such channel: each of its messages fails on its own
                continue
        return parts

    def _events_props(self, msgs: list[Claimed]) -> dict[int, dict[str, Any]]:
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
    def _enrolment(msg: Claimed) -> int | None:
        enrolment = (msg.data or {}).get("enrolment")
        return enrolment_of(msg.key) if enrolment is None else enrolment

    def _event_props(self, msg: Claimed) -> dict[str, Any]:
        """Props of the event that started the message's journey (``event.*`` in templates)."""
        enrolment = self._enrolment(msg)
        if enrolment is None:
            return dict((msg.data or {}).get("event") or {})
        return dict(self._props.get(enrolment, {}))

    def _outbound(self, msg: Claimed, contact: BatchContact | None, channel: Any, address: str) -> OutboundMessage:
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
        link = unsubscribe_url(contact.public_id, msg.channel, msg.key, app=self.app) if contact is not None else None
        source = self._parts.get((msg.channel, msg.template))
        if source is None:
            source = self._parts[(msg.channel, msg.template)] = load_parts(self.session, msg.channel, msg.template)
        parts = render(
            msg.template,
            channel=msg.channel,
            contact=contact,
            parts=source,
            data={**(msg.data or {}), "event": props, "unsubscribe_url": link},
            renderer=self._renderer,
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


@functools.lru_cache(maxsize=8)
def _read_columns(address_fields: frozenset[str | None]) -> tuple[Any, ...] | None:
    """The contact columns a batch reads: its id (first), what links and templates read, and each channel's address
    field; None when an address field is an attribute of :class:`Contact` that is not a column."""
    table = Contact.__table__.c
    wanted = ["id", "public_id", "fields", *_CONTACT_COLUMNS]
    for name in sorted(field for field in address_fields if field is not None):
        if name in table:
            wanted.append(name)
        elif hasattr(Contact, name):
            return None
    return tuple(getattr(Contact, name) for name in dict.fromkeys(wanted))

"""The small, stable API that plugins import (standard library only).

A channel is a class with a ``name``, an optional ``config_schema`` and a
``send(message) -> SendResult`` method. It raises :class:`ChannelError` with
``permanent=True`` for failures that will never succeed (invalid address,
unsubscribed at the provider) and ``permanent=False`` for ones worth retrying;
the engine, not the plugin, decides about retries.

Besides channels, plugins provide triggers (:class:`Trigger`: event sources),
actions (:class:`Action`: new steps for the rules language), functions for rule
conditions (:class:`ConditionFunction`) and report what
providers say about delivered messages as :class:`DeliveryStatus` objects,
which Nudge turns into events such as ``email.bounced``.

What a plugin learns from its provider (an opt-out by SMS, a reply) it writes through
:func:`record_consent`, :func:`raise_event` and :func:`suppress`, never through Nudge's
tables: they find the contacts by address, keep the consent ledger and the suppression
list, hand the events to the engine, and de-duplicate a provider's retried callback by
its ``receipt``.

The API is this package; its modules (``server.sdk._channel`` …) are private and may move: import from
``server.sdk`` only.
"""

from __future__ import annotations

from ._channel import (
    CONSENT_GRANTED,
    CONSENT_UNLESS_REVOKED,
    UNSUBSCRIBE_LINK,
    UNSUBSCRIBE_PROVIDER,
    Channel,
    declaration_problems,
)
from ._extensions import ADMIN_ROLE_ATTR, ADMIN_ROLES, Action, ConditionFunction, Trigger, admin_page
from ._host import (
    ContactDataError,
    Endpoint,
    InboundSource,
    Ingested,
    Recorded,
    SentMessage,
    channel,
    disable_endpoint,
    endpoint,
    enqueue,
    find_contacts,
    find_message,
    inbound_source,
    ingest_event,
    problem,
    raise_event,
    record_consent,
    record_status,
    suppress,
    unsubscribe,
)
from ._json import MAX_JSON_DEPTH, JsonInputError, lone_surrogate, parse_json
from ._messages import CHECK_STATUSES, ChannelError, Check, DeliveryStatus, OutboundMessage, RateLimit, SendResult
from ._settings import SETTING_TYPES, SettingError, validate_schema, validate_settings
from ._text import address_hash, check_header, redact

__all__ = [
    "ADMIN_ROLES",
    "ADMIN_ROLE_ATTR",
    "CHECK_STATUSES",
    "CONSENT_GRANTED",
    "CONSENT_UNLESS_REVOKED",
    "MAX_JSON_DEPTH",
    "SETTING_TYPES",
    "UNSUBSCRIBE_LINK",
    "UNSUBSCRIBE_PROVIDER",
    "Action",
    "Channel",
    "ChannelError",
    "Check",
    "ConditionFunction",
    "ContactDataError",
    "DeliveryStatus",
    "Endpoint",
    "InboundSource",
    "Ingested",
    "JsonInputError",
    "OutboundMessage",
    "RateLimit",
    "Recorded",
    "SendResult",
    "SentMessage",
    "SettingError",
    "Trigger",
    "address_hash",
    "admin_page",
    "channel",
    "check_header",
    "declaration_problems",
    "disable_endpoint",
    "endpoint",
    "enqueue",
    "find_contacts",
    "find_message",
    "inbound_source",
    "ingest_event",
    "lone_surrogate",
    "parse_json",
    "problem",
    "raise_event",
    "record_consent",
    "record_status",
    "redact",
    "suppress",
    "unsubscribe",
    "validate_schema",
    "validate_settings",
]

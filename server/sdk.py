"""The small, stable API that channel plugins import (standard library only).

A channel is a class with a ``name``, an optional ``config_schema`` and a
``send(message) -> SendResult`` method. It raises :class:`ChannelError` with
``permanent=True`` for failures that will never succeed (invalid address,
unsubscribed at the provider) and ``permanent=False`` for ones worth retrying;
the engine, not the plugin, decides about retries.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping

__all__ = ["Channel", "ChannelError", "OutboundMessage", "SendResult"]


class ChannelError(Exception):
    """A send failed.

    :param message: what went wrong, for operators (no secrets).
    :param permanent: True when retrying cannot help; the engine then fails the
        message at once and, where the plugin says so, updates the contact.
    :param ambiguous: True when the provider may have accepted the message
        (e.g. the connection dropped after the data was sent); the engine marks
        it ``unknown`` instead of resending.
    :param suppress: a reason (``bounced``, ``unsubscribed``, ``invalid_address``) to
        record against the address so no later send is attempted.
    """

    def __init__(self, message: str, *, permanent: bool = False, ambiguous: bool = False,
                 suppress: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.ambiguous = ambiguous
        self.suppress = suppress
        self.retry_after = retry_after


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message, ready for a channel.

    ``key`` is the outbox idempotency key: stable across retries, unique per
    (enrolment, step, occurrence). Channels pass it to providers that accept an
    idempotency id and derive stable ids (e.g. the email ``Message-ID``) from it.
    """

    key: str
    channel: str
    template: str
    to: str
    subject: str = ""
    text: str = ""
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    unsubscribe_url: str | None = None
    marketing: bool = True
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """What the provider said: its id for the message, when it gave one."""

    provider_id: str | None = None
    status: str = "sent"


class Channel:
    """Base class for channels. Subclasses set ``name`` and implement :meth:`send`.

    :param config: the validated settings of this channel (see ``config_schema``)
        plus the instance settings (``BASE_URL`` …).
    """

    name: ClassVar[str] = ""
    #: settings the channel reads: ``{key: {"type": "string"|"int"|"bool", "required": bool, "default": …, "secret": bool}}``
    config_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: True for channels that deliver marketing messages to a contact address (consent applies)
    needs_consent: ClassVar[bool] = True
    #: the contact attribute holding this channel's address ("email", "phone"); None = not addressed to a contact
    address_field: ClassVar[str | None] = None
    #: seconds to wait before each retry; None = the engine's exponential back-off with jitter
    retry_schedule: ClassVar[tuple[float, ...] | None] = None
    #: True when the provider de-duplicates by ``message.key`` (so an ambiguous outcome may be retried)
    idempotent: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.config = dict(config or {})

    def validate_address(self, address: str) -> str:
        """Return the address in canonical form, or raise ``ValueError`` saying why it is invalid."""
        if not address or not address.strip():
            raise ValueError("empty address")
        return address.strip()

    @contextlib.contextmanager
    def batch(self) -> Iterator["Channel"]:
        """Context in which several sends may share one connection; yields the channel."""
        yield self

    def send(self, message: OutboundMessage) -> SendResult:  # pragma: no cover - abstract
        raise NotImplementedError(f"channel {self.name!r} does not implement send()")

"""What channels take and give back: messages, send results, rate limits, checks, delivery statuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
    :param retry_after: seconds the provider asked us to wait, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        ambiguous: bool = False,
        suppress: str | None = None,
        retry_after: float | None = None,
    ):
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
    ``unsubscribe_url`` is filled by the engine for every message of a channel whose ``unsubscribe`` is
    ``link``; its last path segment is the signed token :func:`unsubscribe` accepts (e.g. from a ``mailto:``
    unsubscribe the channel advertises).
    """

    key: str
    channel: str
    template: str
    to: str
    subject: str = ""
    text: str = ""
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: every rendered part of the template by the name the channel declares (``subject``, ``txt``, ``html`` also
    #: fill the fields above)
    parts: Mapping[str, str] = field(default_factory=dict)
    unsubscribe_url: str | None = None
    marketing: bool = True
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """What the provider said: its id for the message, when it gave one."""

    provider_id: str | None = None
    status: str = "sent"


@dataclass(frozen=True)
class RateLimit:
    """How fast a provider takes a channel's messages for one *key* (a sender number): see :meth:`Channel.rate_limit`.

    On average *per_second* messages, at most *burst* of them at the same instant. The outbox keeps to it across
    every worker and process (a token bucket in Redis) and puts a message that must wait back to ``pending`` until
    its slot, without counting an attempt.
    """

    key: str
    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ValueError(f"a rate limit needs more than 0 messages per second, got {self.per_second!r}")
        if self.burst < 1:
            raise ValueError(f"a rate limit's burst is at least 1 message, got {self.burst!r}")


#: the states of a :class:`Check`, from good to blocking
CHECK_STATUSES = ("ok", "warn", "error")


@dataclass(frozen=True)
class Check:
    """One line of ``nudge doctor`` (and of the start-up log): what was checked, how it stands, what to do.

    :param name: what was checked, e.g. ``email: postal address``.
    :param status: ``ok``, ``warn`` (unsafe, but sending works) or ``error`` (sending is blocked or will fail).
    :param detail: what was found and, unless ``ok``, what to do, naming the setting (``set NUDGE_…``).
    """

    name: str
    status: str
    detail: str

    def __post_init__(self) -> None:
        if self.status not in CHECK_STATUSES:
            raise ValueError(
                f"check {self.name!r}: status must be one of {', '.join(CHECK_STATUSES)}, not {self.status!r}"
            )


@dataclass(frozen=True)
class DeliveryStatus:
    """What a provider reported about a message or an address, as Nudge will record it.

    :param channel: the channel name (``email``).
    :param status: the event suffix (``delivered``, ``bounced`` …); the event is ``<channel>.<status>``.
    :param address: the contact address concerned, when known (used to find the contact and to suppress).
    :param provider_id: the provider's id of the message (e.g. the email ``Message-ID``), when known.
    :param message_key: the outbox key of the message, when known.
    :param suppress: a suppression reason (``bounced``, ``complained`` …) to record against the address.
    :param detail: a short human-readable explanation (provider code, diagnostic).
    :param props: extra event properties.
    :param occurred_at: when the provider says it happened (timezone-aware); default now.
    """

    channel: str
    status: str
    address: str | None = None
    provider_id: str | None = None
    message_key: str | None = None
    suppress: str | None = None
    detail: str | None = None
    props: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None

    @property
    def event(self) -> str:
        """The Nudge event this status becomes, e.g. ``email.bounced``."""
        return f"{self.channel}.{self.status}"

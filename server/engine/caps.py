"""Frequency caps with priorities: how many marketing messages a contact may get, overall and per channel.

Two kinds of cap, both counting the contact's marketing messages *sent* in the cap's window (transactional
messages, messages of channels without ``counts_toward_cap``, and mail to the staff about the contact are
neither held nor counted):

- ``FREQUENCY_CAP`` (``3/7d``): all capped channels together;
- ``FREQUENCY_CAPS`` (``email=3/7d,sms=2/7d``): one channel each.

A send must fit under every cap that applies to it. How much of a cap a send may use depends on its rule's
``priority`` header, so lower priorities yield first: with ``N`` the cap's count and ``R`` =
``FREQUENCY_CAP_RESERVE`` (slots kept for high priority, default 0),

- ``priority high`` may use all ``N``;
- ``priority normal`` (the default) may use ``N − R``;
- ``priority low`` may use half of that, rounded up: ``⌈(N − R) / 2⌉``;

never less than 1. A send held by a cap is skipped (``suppressed``, reason ``frequency_cap``), unless its rule says
``on cap wait``: then the journey waits until the oldest counted message leaves the window, and tries again.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Message, MessageStatus
from .keys import TEAM, key_prefix
from .timeutil import to_dt, to_ts

__all__ = ["PRIORITIES", "Cap", "Held", "allowance", "caps_for", "held_by_cap", "parse_cap"]

#: the rule header's levels; a rule without one is ``normal``
PRIORITIES = ("high", "normal", "low")


def parse_cap(text: str | None) -> tuple[int, int] | None:
    """``"3/7d"`` → (3, 604800): at most 3 marketing messages per 7 days."""
    if not text:
        return None
    count, _, span = str(text).partition("/")
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return int(count), int(span[:-1]) * units[span[-1]]


@dataclass(frozen=True)
class Cap:
    """One cap: ``channel`` None for the overall one."""

    channel: str | None
    count: int
    seconds: int
    text: str

    def describe(self) -> str:
        return f"{self.channel or 'all channels'} {self.text}"


@dataclass(frozen=True)
class Held:
    """Why a send does not fit: the cap, what its priority may use of it, and when a slot frees up."""

    cap: Cap
    priority: str
    allowed: int
    frees_at: int

    def why(self) -> str:
        return f"frequency cap {self.cap.describe()}: {self.priority} priority may use {self.allowed}"


def caps_for(config: Mapping[str, Any], channel: str) -> tuple[Cap, ...]:
    """The caps a marketing send on *channel* must fit under."""
    return _caps(config.get("FREQUENCY_CAP"), config.get("FREQUENCY_CAPS"), channel)


@functools.lru_cache(maxsize=64)
def _caps(overall_text: str | None, per_channel: str | None, channel: str) -> tuple[Cap, ...]:
    """:func:`caps_for`'s answer, parsed once per setting values and channel (every marketing send asks)."""
    caps = []
    overall = parse_cap(overall_text)
    if overall:
        caps.append(Cap(None, *overall, str(overall_text)))
    for part in filter(None, str(per_channel or "").split(",")):
        name, _, text = part.partition("=")
        parsed = parse_cap(text)
        if name == channel and parsed:
            caps.append(Cap(name, *parsed, text))
    return tuple(caps)


def allowance(count: int, priority: str, reserve: int = 0) -> int:
    """How many of a cap's *count* messages a send of *priority* may find already sent and still go."""
    if priority == "high":
        return count
    normal = max(1, count - reserve)
    return normal if priority != "low" else max(1, math.ceil(normal / 2))


def held_by_cap(
    session: Session,
    config: Mapping[str, Any],
    channels: Mapping[str, Any],
    channel: str,
    contact_id: int,
    now: int,
    priority: str = "normal",
) -> Held | None:
    """The first cap a marketing send on *channel* to *contact_id* does not fit under now, or None."""
    cls = channels.get(channel)
    if cls is None or not cls.counts_toward_cap:
        return None
    reserve = int(config.get("FREQUENCY_CAP_RESERVE") or 0)
    for cap in caps_for(config, channel):
        counted = (
            [channel]
            if cap.channel
            else sorted(name for name, other in channels.items() if other.address_field and other.counts_toward_cap)
        )
        allowed = allowance(cap.count, priority, reserve)
        sent = [
            to_ts(at)
            for at in session.scalars(
                select(Message.sent_at)
                .where(
                    Message.contact_id == contact_id,
                    Message.status == MessageStatus.SENT.value,
                    Message.channel.in_(counted),
                    Message.sent_at >= to_dt(now - cap.seconds),
                    ~Message.key.startswith(key_prefix(TEAM)),  # mail to the staff about the contact is not theirs
                )
                .order_by(Message.sent_at)
            )
            if at is not None
        ]
        if len(sent) >= allowed:
            # one more fits once all but allowed - 1 of them have left the window
            return Held(cap, priority, allowed, sent[len(sent) - allowed] + cap.seconds + 1)
    return None

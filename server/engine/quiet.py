"""Quiet hours: when a message may reach its recipient, in every time zone the recipient may be in.

The window is the rule's own (``quiet hours 21:00-08:00``) or, without one, the channel class's
``quiet_hours`` declaration (SMS: 21:00–08:00). The zones are the contact's time zone; for a contact
without one, the zones the channel reads from the address (a phone number's area: one zone, or several
when the area spans them); else the instance default. A message goes out only at a moment allowed in
every one of those zones. Journeys wait for that moment before writing a send, and the outbox checks
again right before each send (broadcasts, retries, anything else), so no path can skip the window; both
ask through the send-time policy (:mod:`.policy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..models import Contact
from .timeutil import local_at, next_local_time, parse_hhmm, to_dt, zone

Window = tuple[time, time]


def window(rule_quiet: Mapping[str, Any] | None, channel_cls: Any) -> Window | None:
    """The quiet window for a send: the rule's ``{"start", "end"}``, else the channel's declaration."""
    if rule_quiet:
        return parse_hhmm(rule_quiet["start"]), parse_hhmm(rule_quiet["end"])
    declared = getattr(channel_cls, "quiet_hours", None)
    return (parse_hhmm(declared[0]), parse_hhmm(declared[1])) if declared else None


def recipient_zones(
    timezone_name: str | None, address: str | None, channel_cls: Any, settings: Mapping[str, Any]
) -> tuple[ZoneInfo, ...]:
    """Where the recipient may be: their own time zone, else the address's zones, else the instance default."""
    own = _known_zone(timezone_name)
    if own is not None:
        return (own,)
    names: tuple[str, ...] = ()
    if address and channel_cls is not None:
        names = tuple(channel_cls.address_time_zones(address, settings))
    zones = {tz for tz in map(_known_zone, names) if tz is not None}
    return tuple(sorted(zones, key=lambda tz: tz.key)) or (zone(str(settings.get("DEFAULT_TIMEZONE") or "UTC")),)


def _known_zone(name: str | None) -> ZoneInfo | None:
    """The zone called *name*, or None for no name or one that is not a known IANA zone."""
    tz = zone(name, "UTC") if name else None
    return tz if tz is not None and tz.key == name else None


def _inside(now: int, quiet: Window, tz: ZoneInfo) -> bool:
    t = to_dt(now).astimezone(tz).time().replace(tzinfo=None)
    start, end = quiet
    return start <= t < end if start <= end else (t >= start or t < end)


def allowed_from(now: int, quiet: Window, zones: tuple[ZoneInfo, ...]) -> int | None:
    """The first moment at or after *now* outside the window in every zone; None when *now* is one.

    A moment allowed in all zones is *now* or the end of the window in one of them, so those ends are
    the only candidates. When the zones share no allowed moment at all (a toll-free +1 number spans
    Guam to American Samoa), the window of the middle zone by UTC offset decides.
    """
    if not any(_inside(now, quiet, tz) for tz in zones):
        return None
    candidates = sorted({end for tz in zones for end in _window_ends(now, quiet[1], tz)})
    for candidate in candidates:
        if not any(_inside(candidate, quiet, tz) for tz in zones):
            return candidate
    middle = sorted(zones, key=lambda tz: (to_dt(now).astimezone(tz).utcoffset(), tz.key))[len(zones) // 2]
    return allowed_from(now, quiet, (middle,))


def _window_ends(now: int, end: time, tz: ZoneInfo) -> tuple[int, int]:
    first = next_local_time(now, end, tz)
    return first, local_at(to_dt(first).astimezone(tz).date() + timedelta(days=1), end, tz)


def send_resumes_at(
    now: int,
    rule_quiet: Mapping[str, Any] | None,
    channel_cls: Any,
    contact: Contact | None,
    settings: Mapping[str, Any],
    address: str | None = None,
) -> int | None:
    """When a send to *contact* on the channel may happen if not now (None: now is fine).

    :param address: the recipient's address when it is not the contact's own (an internal notification).
    """
    quiet = window(rule_quiet, channel_cls)
    if quiet is None:
        return None
    field = getattr(channel_cls, "address_field", None)
    own = address is None
    if own:
        address = getattr(contact, field, None) if (contact is not None and field) else None
    tz_name = contact.timezone if (own and contact is not None) else None
    return allowed_from(now, quiet, recipient_zones(tz_name, address, channel_cls, settings))

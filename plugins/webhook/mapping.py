"""Mapping an inbound JSON payload to a Nudge event, as an inbound source's ``mapping`` says.

``{"event": "type", "email": "data.customer.email", "props": "data"}`` reads the event name
from ``payload["type"]``, the contact's email from ``payload["data"]["customer"]["email"]`` and
the event properties from ``payload["data"]``. Other keys: ``event_name`` (a fixed name instead
of ``event``), ``event_prefix`` (put before the name read, e.g. ``github.``), ``external_id`` and
``phone`` (paths, like ``email``), ``occurred_at`` (a path to ISO-8601 text or Unix seconds).
Paths are dotted; a number steps into a list (``items.0.sku``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")  # whole text only: fullmatch
MAX_EVENT_NAME = 128  # the length of events.name
CONTACT_PATHS = ("email", "external_id", "phone")
_MISSING = object()


class MappingError(ValueError):
    """The payload does not fit the source's mapping; ``field`` names the mapping key concerned."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class MappedEvent:
    contact: dict[str, Any]
    name: str
    props: dict[str, Any]
    occurred_at: datetime | None


def lookup(payload: Any, path: str) -> Any:
    """The value at dotted *path* in *payload*, or ``_MISSING``."""
    value = payload
    for step in path.split("."):
        if isinstance(value, Mapping) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdecimal() and int(step) < len(value):
            value = value[int(step)]
        else:
            return _MISSING
    return value


def apply(mapping: Mapping[str, Any], payload: Any) -> MappedEvent:
    """Read the contact, event name, properties and time out of *payload*.

    :raises MappingError: naming what is missing or malformed.
    """
    if not isinstance(payload, dict):
        raise MappingError("payload", "the payload must be a JSON object")
    contact = {}
    for key in CONTACT_PATHS:
        if mapping.get(key):
            value = lookup(payload, mapping[key])
            if value is not _MISSING and value is not None and value != "":
                if not isinstance(value, (str, int)) or isinstance(value, bool):
                    raise MappingError(key, f"{mapping[key]} must be text, got {type(value).__name__}")
                contact[key] = str(value)
    if not (contact.get("email") or contact.get("external_id")):
        paths = " or ".join(mapping[k] for k in ("email", "external_id") if mapping.get(k)) or "(nothing mapped)"
        raise MappingError("contact", f"the payload has no contact email or external id at {paths}")
    return MappedEvent(contact, _name(mapping, payload), _props(mapping, payload), _time(mapping, payload))


def _name(mapping: Mapping[str, Any], payload: dict[str, Any]) -> str:
    if mapping.get("event_name"):
        name = str(mapping["event_name"])
    else:
        raw = lookup(payload, str(mapping.get("event") or "type"))
        if not isinstance(raw, str) or not raw:
            raise MappingError("event", f"the payload has no event name (text) at {mapping.get('event') or 'type'}")
        name = str(mapping.get("event_prefix") or "") + raw
    if len(name) > MAX_EVENT_NAME:
        raise MappingError("event", f"the event name is longer than {MAX_EVENT_NAME} characters")
    if not EVENT_NAME.fullmatch(name):
        raise MappingError(
            "event",
            f"{name!r} is not a dotted lowercase event name such as shop.order_paid; "
            "set event_prefix in the source's mapping for one-word names",
        )
    return name


def _props(mapping: Mapping[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    if not mapping.get("props"):
        return payload
    props = lookup(payload, mapping["props"])
    if props is _MISSING:
        return {}
    if not isinstance(props, dict):
        raise MappingError("props", f"{mapping['props']} must be a JSON object, got {type(props).__name__}")
    return props


def _time(mapping: Mapping[str, Any], payload: dict[str, Any]) -> datetime | None:
    if not mapping.get("occurred_at"):
        return None
    value = lookup(payload, mapping["occurred_at"])
    if value is _MISSING or value is None:
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise MappingError(
            "occurred_at", f"{mapping['occurred_at']} is neither ISO-8601 nor Unix seconds: {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise MappingError("occurred_at", f"{mapping['occurred_at']} needs a timezone, e.g. a trailing Z: {value!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC time Python has
        raise MappingError("occurred_at", f"{mapping['occurred_at']} is out of range: {value!r}") from None

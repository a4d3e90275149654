"""Segment ``track`` names to Nudge's dotted event names: the documented default and its per-name overrides
(``SEGMENT_EVENT_MAP``). Pure: the standard library only, so the configuration can check the overrides."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

#: a Nudge event name (as the events API requires it)
DOTTED = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_NAME = 128
#: the namespace of one-word names and of names that would fall into one of Nudge's own (``email.opened``)
PREFIX = "segment"
EXAMPLE = "Order Completed=order.paid;Signed Up=account.created (or a JSON object of the same)"
_WORDS = re.compile(r"[a-z0-9]+")


def default_name(name: str, reserved: Collection[str] = ()) -> str | None:
    """The default mapping: lowercase, the first word, a dot, the other words joined by underscores.

    ``Form Submitted`` → ``form.submitted``, ``Product Added To Cart`` → ``product.added_to_cart``; a one-word name,
    or one whose first word is a namespace of Nudge's own (*reserved*: ``email``, ``contact`` …), goes under
    ``segment.`` (``Signup`` → ``segment.signup``, ``Email Opened`` → ``segment.email_opened``). Anything but
    letters and digits separates words. None when the result is no valid name (a word starting with a digit).
    """
    words = _WORDS.findall(name.lower())
    if not words:
        return None
    if len(words) == 1 or words[0] in reserved:
        dotted = f"{PREFIX}.{'_'.join(words)}"
    else:
        dotted = f"{words[0]}.{'_'.join(words[1:])}"
    return dotted if DOTTED.match(dotted) and len(dotted) <= MAX_NAME else None


def event_name(name: str, overrides: Mapping[str, str], reserved: Collection[str] = ()) -> str | None:
    """The Nudge name of the ``track`` event *name*: its override when there is one, else :func:`default_name`."""
    return overrides.get(name) or default_name(name, reserved)


def parse_event_map(value: Any) -> dict[str, str]:
    """``SEGMENT_EVENT_MAP``: ``Name=dotted.name`` pairs separated by ``;``, a JSON object, or a TOML table.

    :raises ValueError: saying which entry is wrong.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not a valid JSON object ({exc.msg}); e.g. {EXAMPLE}") from None
    if isinstance(value, str):
        pairs: list[tuple[str, str]] = []
        for entry in filter(str.strip, value.split(";")):
            source, equals, target = entry.partition("=")
            if not equals:
                raise ValueError(f"entry {entry.strip()!r} has no '='; e.g. {EXAMPLE}")
            pairs.append((source.strip(), target.strip()))
    elif isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    else:
        raise ValueError(f"must be Name=dotted.name pairs; e.g. {EXAMPLE}")
    out: dict[str, str] = {}
    for source, target in pairs:
        if not source:
            raise ValueError("an entry has an empty Segment event name before '='")
        if not isinstance(target, str) or not DOTTED.match(target) or len(target) > MAX_NAME:
            raise ValueError(f"{source!r} maps to {target!r}, not a dotted lowercase name such as form.submitted")
        out[source] = target
    return out


__all__ = ["DOTTED", "EXAMPLE", "default_name", "event_name", "parse_event_map"]

"""Spans written the short way (``7d``, ``36h``, ``90m``, ``30s``, ``2w``), as the rules language writes durations.

One parser for every place Nudge reads one outside the language: the attribution window settings
(``NUDGE_ATTRIBUTION_CLICK_WINDOW`` …, strict, see :func:`window_seconds`) and the stats windows' ``since=7d``
(:func:`server.engine.funnel.parse_when`, which tries a date when the text is not a span).
"""

from __future__ import annotations

import re

#: seconds per unit; no unit is seconds where a plain number is taken (:func:`window_seconds`)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SPAN = re.compile(r"(\d{1,6})([smhdw]?)", re.ASCII)


def span_seconds(text: str, *, plain_seconds: bool = False) -> int | None:
    """Seconds in *text* written ``7d``, ``36h``, ``90m``, ``30s`` or ``2w`` (any case, spaces around), else None.

    :param plain_seconds: also take a number without a unit as seconds (``3600``, ``0``). A window setting does;
        a stats ``since`` does not, where digits alone are no span (``20261101`` is a day).
    :return: None when *text* is not a span: up to 6 digits, then one of the units (or none, with *plain_seconds*).
    """
    match = _SPAN.fullmatch(text.strip().lower())
    if match is None or not (match[2] or plain_seconds):
        return None
    return int(match[1]) * UNITS.get(match[2], 1)


def window_seconds(text: str) -> int:
    """Seconds in a window setting: a span (``7d``) or plain seconds (``0``: never); the strict form.

    :raises ValueError: for anything else.
    """
    seconds = span_seconds(text, plain_seconds=True)
    if seconds is None:
        raise ValueError(f"{text!r} is not a window")
    return seconds

"""Reading JSON request bodies: the one reader of the API and ``/t/visit`` (plugins use
:func:`server.sdk.parse_json`, which this wraps).

What is not JSON is a 400; JSON nested deeper than 40 levels, holding a lone UTF-16 surrogate
(``"\\ud800"``) in any string or key, or an integer of more digits than Python reads (4,300) is a 422
naming the field. The size is bounded before reading by the request's ``max_content_length`` (413).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from flask import request

from .sdk import JsonInputError, parse_json

__all__ = ["JsonInputError", "explained", "read_json"]


def read_json(max_bytes: int | None = None) -> Any:
    """The request body as checked JSON, read only up to *max_bytes* (a larger body is a 413).

    :raises JsonInputError: naming the field; ``malformed`` when it is not JSON at all.
    :raises werkzeug.exceptions.RequestEntityTooLarge: past the limit, before reading it.
    """
    if max_bytes is not None:
        request.max_content_length = max_bytes
    raw = request.get_data(cache=True)
    try:
        return parse_json(raw)
    except JsonInputError as exc:
        raise explained(exc, raw) from None


def explained(exc: JsonInputError, raw: bytes | str) -> JsonInputError:
    """*exc*, raised by ``parse_json(raw)``, or the 422 naming the field when *raw* is JSON holding an integer of
    more digits than Python reads (``json.loads`` refuses it as malformed, with advice for Python programmers)."""
    if exc.malformed and "integer string conversion" in exc.message:
        return _long_integer(raw) or exc
    return exc


class _Digits(int):
    """Where an integer too long to read stood: its number of digits."""


def _long_integer(raw: bytes | str) -> JsonInputError | None:
    """The 422 naming the first integer of *raw* longer than Python reads (``sys.get_int_max_str_digits()``,
    4,300 digits: ``json.loads`` refuses it with advice for Python programmers); None if not found."""
    limit = sys.get_int_max_str_digits() or sys.maxsize

    def parse_int(text: str) -> int:
        digits = len(text.lstrip("-"))
        return _Digits(digits) if digits > limit else 0

    def parse_constant(name: str) -> Any:
        raise ValueError(name)  # NaN, Infinity: malformed, as parse_json said

    try:
        value = json.loads(raw, parse_int=parse_int, parse_constant=parse_constant)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:  # depth-first in document order, without recursion
        item, path = stack.pop()
        if isinstance(item, _Digits):
            name = path or "the body"
            return JsonInputError(path, f"{name} is an integer of {int(item)} digits, outside the 64-bit range")
        if isinstance(item, dict):
            stack.extend(reversed([(sub, f"{path}.{key}" if path else key) for key, sub in item.items()]))
        elif isinstance(item, list):
            stack.extend(reversed([(sub, f"{path}[{i}]") for i, sub in enumerate(item)]))
    return None

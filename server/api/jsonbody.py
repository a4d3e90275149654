"""Reading JSON request bodies: the one reader every JSON endpoint uses (the API, ``/t/visit``).

A body is refused, naming the field, when it is not JSON (400), nests deeper than
:data:`MAX_DEPTH` levels or holds a lone UTF-16 surrogate (``"\\ud800"``: not text, and no
database stores it) in any string or key (422). ``NaN`` and ``Infinity`` are not JSON either.
The size is bounded before reading by the request's ``max_content_length`` (413).
"""
from __future__ import annotations

import json
from typing import Any

from flask import request

from ..contacts.errors import InvalidInput
from ..contacts.normalize import lone_surrogate

#: levels of arrays and objects in one body (event props may nest 32 levels inside the envelope)
MAX_DEPTH = 40


class MalformedJson(ValueError):
    """The body is not JSON at all (answered 400)."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_json(raw: bytes | str, field: str = "") -> Any:
    """*raw* parsed, every string valid Unicode and the nesting bounded.

    :param field: the name of *raw* in errors; fields inside it are named from there ("" = the body).

    :raises MalformedJson: when it is not JSON.
    :raises InvalidInput: naming the field that nests too deep or holds a lone surrogate.
    """
    name = field or "the body"
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:  # the C parser's own guard, far beyond MAX_DEPTH
        raise InvalidInput(field, f"{name} nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedJson(f"{name} is not valid JSON: {exc}") from None
    check_value(value, field)
    return value


def check_value(value: Any, field: str) -> None:
    """Walk parsed JSON without recursion: bounded depth, no lone surrogate in any string or key.

    :raises InvalidInput: naming the offending field (``contact.first_name``, ``tags[0]``).
    """
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        name = path or "the body"
        if isinstance(item, str):
            if lone_surrogate(item):
                raise InvalidInput(path, f"{name} holds a lone UTF-16 surrogate, which is not text; "
                                         "send valid UTF-8 (or \\u escapes in pairs)")
        elif isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise InvalidInput(path, f"{name} nests deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, sub in item.items():
                    child = f"{path}.{key}" if path else key
                    if lone_surrogate(key):
                        raise InvalidInput(path, f"a key in {name} holds a lone UTF-16 surrogate, which is not text")
                    stack.append((sub, child, depth + 1))
            else:
                stack.extend((sub, f"{path}[{i}]", depth + 1) for i, sub in enumerate(item))


def read_json(max_bytes: int | None = None) -> Any:
    """The request body as checked JSON, read only up to *max_bytes* (a larger body is a 413).

    :raises MalformedJson: when it is not JSON.
    :raises InvalidInput: see :func:`parse_json`.
    :raises werkzeug.exceptions.RequestEntityTooLarge: past the limit, before reading it.
    """
    if max_bytes is not None:
        request.max_content_length = max_bytes
    return parse_json(request.get_data(cache=True))

"""Reading JSON request bodies: the one reader of the API and ``/t/visit`` (plugins use
:func:`server.sdk.parse_json`, which this wraps).

What is not JSON is a 400; JSON nested deeper than 40 levels or holding a lone UTF-16 surrogate
(``"\\ud800"``) in any string or key is a 422 naming the field. The size is bounded before
reading by the request's ``max_content_length`` (413).
"""

from __future__ import annotations

from typing import Any

from flask import request

from .sdk import JsonInputError, parse_json

__all__ = ["JsonInputError", "read_json"]


def read_json(max_bytes: int | None = None) -> Any:
    """The request body as checked JSON, read only up to *max_bytes* (a larger body is a 413).

    :raises JsonInputError: naming the field; ``malformed`` when it is not JSON at all.
    :raises werkzeug.exceptions.RequestEntityTooLarge: past the limit, before reading it.
    """
    if max_bytes is not None:
        request.max_content_length = max_bytes
    return parse_json(request.get_data(cache=True))

"""What every admin request may send: text a database can store, checked once for the whole request.

A NUL character is refused by PostgreSQL in any text (stored or compared in a query), and a lone surrogate
cannot be encoded at all; no name, filter or setting Nudge keeps holds one. So every request to an admin page
(:func:`server.web.access.guard_request`) with one in a query or form value, or in a field's name, is answered
400 naming the field, before any view reads it: nothing is written, and no page checks it again. A JSON body
(the editor bundle's) and uploaded files are the views' own to check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from flask import abort, request

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SHOWN = 60  # characters of a field's name shown in the error


def unstorable(text: str) -> bool:
    """Whether *text* holds a NUL character or a lone surrogate (text no database stores)."""
    return _UNSTORABLE.search(text) is not None


def _which(text: str) -> str:
    return "a NUL character" if "\x00" in text else "an unpaired surrogate"


def _first(pairs: Iterable[tuple[str, str]], what: str, again: str) -> str | None:
    for key, value in pairs:
        if unstorable(key):
            return f"A {what}'s name holds {_which(key)}; remove it and {again}."
        if unstorable(value):
            cannot = "which Nudge cannot store or search for"
            return f'The {what} "{key[:_SHOWN]}" holds {_which(value)}, {cannot}; remove it and {again}.'
    return None


def refuse_unstorable() -> None:
    """Refuse this request when a query or form value (or a field's name) holds text no database stores.

    :raises werkzeug.exceptions.BadRequest: naming the first such field and what to do.
    """
    problem = _first(request.args.items(multi=True), "query parameter", "try again")
    if problem is None:  # only a form post has a form (werkzeug parses no other body)
        problem = _first(request.form.items(multi=True), "form field", "send the form again")
    if problem is not None:
        abort(400, description=problem)


__all__ = ["refuse_unstorable", "unstorable"]

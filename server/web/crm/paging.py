"""Keyset page links for the admin lists: the cursor of the next page as a signed, opaque ``after=`` value.

A cursor is bound to the list and filters it was made for (``scope``), so a link copied from one search
never pages through another; a damaged or foreign one is answered 400 with what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import abort, current_app
from itsdangerous import BadSignature, URLSafeSerializer

#: a page of any admin list
PAGE_SIZE = 50


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="nudge.admin.page")


def _plain(value: Any) -> Any:
    return {"dt": value.isoformat()} if isinstance(value, datetime) else value


def _typed(value: Any) -> Any:
    return datetime.fromisoformat(value["dt"]) if isinstance(value, dict) and "dt" in value else value


def next_link(scope: str, after: Sequence[Any] | None) -> str | None:
    """The ``after=`` value of the next page (None on the last page)."""
    if after is None:
        return None
    return _serializer().dumps({"s": scope, "a": [_plain(v) for v in after]})


def cursor(scope: str, value: str | None) -> tuple[Any, ...] | None:
    """The cursor an ``after=`` value carries (None for the first page).

    :raises werkzeug.exceptions.BadRequest: for a value Nudge did not make, or made for another list or search.
    """
    if not value:
        return None
    try:
        state = _serializer().loads(value)
    except BadSignature:
        state = None
    if not isinstance(state, dict) or state.get("s") != scope or not isinstance(state.get("a"), list):
        abort(
            400, description="This page link is damaged or belongs to another search; start again from the first page."
        )
    return tuple(_typed(v) for v in state["a"])


__all__ = ["PAGE_SIZE", "cursor", "next_link"]

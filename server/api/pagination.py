"""Cursor pagination: keyset over (sort column, id), the cursor an opaque signed token."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from .spec import BadQuery


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="nudge.api.cursor")


def _encode(value: Any) -> Any:
    return {"dt": value.isoformat()} if isinstance(value, datetime) else value


def _decode(value: Any) -> Any:
    return datetime.fromisoformat(value["dt"]) if isinstance(value, dict) else value


def sort_param(allowed: Sequence[str], default: str) -> dict[str, Any]:
    """The ``sort`` query parameter: one of *allowed*, ``-`` in front for descending (an allow-list:
    nothing the client sends reaches SQL as text)."""
    choices = [name for field in allowed for name in (field, f"-{field}")]
    return {
        "name": "sort",
        "in": "query",
        "schema": {"type": "string", "enum": choices, "default": default},
        "description": "sort order; prefix - for descending",
    }


def paginate(
    session: Session, query: Select[Any], model: Any, *, sort: str, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of *query* ordered by *sort* (an allow-listed column name, ``-`` for descending) then id.

    :return: the rows and the cursor of the next page (None on the last page).
    :raises BadQuery: for a cursor this API did not issue, or one issued for another sort order.
    """
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    column, ident = getattr(model, name), model.id
    if cursor:
        try:
            state = _serializer().loads(cursor)
        except BadSignature:
            raise BadQuery("cursor", "cursor is not one this API issued; start again without it") from None
        if not isinstance(state, dict) or state.get("s") != sort:
            raise BadQuery("cursor", "cursor belongs to another sort order; start again without it")
        value, last_id = _decode(state["v"]), state["id"]
        if name == "id":
            query = query.where(ident < last_id if descending else ident > last_id)
        elif descending:
            query = query.where(or_(column < value, and_(column == value, ident < last_id)))
        else:
            query = query.where(or_(column > value, and_(column == value, ident > last_id)))
    order = (column.desc(), ident.desc()) if descending else (column.asc(), ident.asc())
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    token = _serializer().dumps({"s": sort, "v": _encode(getattr(last, name)), "id": last.id})
    return rows, token


def filtered_page(
    model: Any, query: dict[str, Any], filters: Sequence[str], render: Any, stmt: Select[Any] | None = None
) -> dict[str, Any]:
    """The ``{"data", "next_cursor"}`` answer of a list view: equality *filters* taken from the
    typed *query* (allow-listed names only), then :func:`paginate` by ``query["sort"]``."""
    from ..db import get_session

    stmt = select(model) if stmt is None else stmt
    for name in filters:
        if query.get(name) is not None:
            stmt = stmt.where(getattr(model, name) == query[name])
    rows, cursor = paginate(
        get_session(), stmt, model, sort=query.get("sort", "id"), limit=query["limit"], cursor=query.get("cursor")
    )
    return {"data": [render(row) for row in rows], "next_cursor": cursor}

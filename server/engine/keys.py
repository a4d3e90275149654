"""Outbox keys: what makes a message unique, written and read here and nowhere else.

A key is ``<kind>:<part>:<part>…``: ``enr:<enrolment>:<step>`` for a journey's send,
``team:<enrolment>:<step>:<member>`` for a team notification, ``broadcast:<id>:<contact>``,
``form-confirm:<form>:<contact>:<nonce>``. The unique constraint on ``messages.key`` makes a
second write of the same message fail, so a step re-run after a crash sends nothing twice.
Channels pass the key to providers as an idempotency id.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import String, cast, literal
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

#: what counts as a SQL part of a key: a column expression, or a mapped attribute such as ``Enrolment.id``
SQL_PARTS = (ColumnElement, QueryableAttribute)

#: a journey's ``send`` step: ``enr:<enrolment>:<step>``
ENROLMENT = "enr"
#: a ``notify`` or ``task`` step's message to one team member: ``team:<enrolment>:<step>:<member>``
TEAM = "team"
#: one member of a broadcast: ``broadcast:<id>:<contact>``
BROADCAST = "broadcast"
#: a hosted form's double opt-in mail: ``form-confirm:<form>:<contact>:<nonce>``
FORM_CONFIRM = "form-confirm"
KINDS = (ENROLMENT, TEAM, BROADCAST, FORM_CONFIRM)


def message_key(kind: str, *parts: Any) -> Any:
    """The outbox key of a message: ``<kind>:<part>:…``.

    With a SQL expression among *parts* (``Enrolment.id``), the SQL expression that builds the key in a
    set-based ``INSERT … SELECT``, the same text row by row.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown outbox key kind {kind!r}; known: {', '.join(KINDS)}")
    if not any(isinstance(part, SQL_PARTS) for part in parts):
        return ":".join((kind, *(str(part) for part in parts)))
    expression: Any = literal(kind, String)
    for part in parts:
        piece = cast(part, String) if isinstance(part, SQL_PARTS) else literal(str(part), String)
        expression = expression.concat(literal(":", String)).concat(piece)
    return expression


def key_prefix(kind: str, *parts: Any) -> str:
    """What every key of *kind* (and the given leading parts) starts with, for ``LIKE`` and ``startswith``."""
    return message_key(kind, *parts, "")


def enrolment_of(key: str) -> int | None:
    """The enrolment a journey's send belongs to (``enr:<enrolment>:<step>``), else None."""
    kind, _, rest = key.partition(":")
    if kind != ENROLMENT:
        return None
    head = rest.partition(":")[0]
    return int(head) if head.isdigit() else None


def broadcast_of(key: str) -> str | None:
    """The id of the broadcast a message belongs to (``broadcast:<id>:<contact>``), else None."""
    kind, _, rest = key.partition(":")
    if kind != BROADCAST:
        return None
    ident, sep, contact = rest.rpartition(":")
    return ident if sep and contact.isdigit() else None


#: the key prefixes of the messages that are measured and credited: journeys' sends and broadcasts' messages (the
#: stats rollup counts their outcomes, attribution credits conversions to them)
MEASURED = (key_prefix(ENROLMENT), key_prefix(BROADCAST))
#: the rule and version ids under which the stats file broadcasts' figures (no rule has id 0)
BROADCAST_RULE = 0


def broadcast_step(ident: str) -> str:
    """The stats' step name of broadcast *ident* (under rule and version :data:`BROADCAST_RULE`):
    ``broadcast:<id>``, or a digest of the id when that would pass the column's 64 characters."""
    step = f"{BROADCAST}:{ident}"
    return step if len(step) <= 64 else f"{BROADCAST}:#{hashlib.sha256(ident.encode()).hexdigest()[:40]}"

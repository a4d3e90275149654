"""Segments: named conditions in the rules language, with live counts and members.

A segment's text is a condition as written after ``when … and`` in a rule
(``tag == "vip" and did order.paid within 30d``). It is checked by :func:`dsl.parse_condition`
against the contact fields and the plugins' condition functions, compiled to a condition tree,
and turned into SQL by :mod:`server.sqlwhere`; what SQL cannot express is evaluated in Python
with the engine's evaluator, with the same result. A condition function may only be called
when it has an SQL form for the database: a segment is counted there.

For the engine: :func:`is_member` has the signature ``Scope(segments=…)`` expects, and
:func:`members_clause` gives a ``WHERE`` clause for schedule triggers and broadcasts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import dsl

from .contacts.errors import InvalidInput
from .contacts.fields import definitions
from .functions import installed
from .models import Contact, Segment, utcnow
from .sqlwhere import Unsupported, where

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$")


@dataclass(frozen=True)
class Compiled:
    tree: Any
    warnings: list[str]


def vocabulary(session: Session) -> Any:
    """Built-in names, custom fields, stored segments' names and the plugins' condition functions."""
    names = frozenset(session.scalars(select(Segment.name)))
    vocab = dsl.Vocabulary.default().with_fields(definitions(session)).with_functions(installed().values())
    from dataclasses import replace

    return replace(vocab, segments=names)


def compile_condition(session: Session, text: str, *, field: str = "condition", sql: bool = True) -> Compiled:
    """Check and compile a segment condition.

    :param sql: the condition will be counted by the database (saving a segment, a preview, a broadcast),
        so a condition function without an SQL form for it is refused; False for evaluating a stored
        segment's membership, which may fall back to Python.
    :raises InvalidInput: naming *field*, with line and column (in *text* itself) of the first error and what to do.
    """
    if "\x00" in text or not text.strip():
        raise InvalidInput(field, f'{field} must be a condition such as tag == "vip"')
    result = dsl.parse_condition(
        text.replace("\r\n", "\n"), field, vocabulary(session), sql_dialect=_dialect(session) if sql else None
    )
    if not result.ok:
        first = next(d for d in result.diagnostics if d.is_error)
        hint = f" ({first.hint})" if first.hint else ""
        raise InvalidInput(field, f"{first.location()}: {first.message}{hint}")
    return Compiled(result.tree, [d.message for d in result.diagnostics])


def segment_tree(session: Session, name: str) -> Any:
    """The compiled tree of the stored segment *name* (for membership, SQL or not), or None when there is none."""
    text = session.scalar(select(Segment.condition).where(Segment.name == name))
    if text is None:
        return None
    return compile_condition(session, text, sql=False).tree


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def members_clause(session: Session, tree: Any, now: dt.datetime | None = None) -> Any:
    """The ``WHERE`` clause over contacts for *tree* (``in segment`` resolved from stored segments).

    :raises Unsupported: when the tree has no SQL form (use :func:`iter_members` then).
    """
    return where(
        tree,
        dialect=_dialect(session),
        now=now or utcnow(),
        fields=definitions(session),
        segment=lambda name: segment_tree(session, name),
        functions=installed(),
    )


#: builds the evaluation context of one contact at a moment, ``(session, contact, now_ts) -> scope``: the engine's
#: ``Scope`` (the same reading of every value), handed in by the caller, so segments never import the engine
ScopeFactory = Callable[[Session, Contact, int], Any]


def is_member(session: Session, contact: Contact, name: str, now_ts: int | float, *, scope: ScopeFactory) -> bool:
    """Whether *contact* is in segment *name* at *now_ts* (seconds): the engine's ``in segment`` hook."""
    tree = segment_tree(session, name)
    if tree is None:
        return False
    now = dt.datetime.fromtimestamp(now_ts, dt.UTC)
    try:
        clause = members_clause(session, tree, now)
    except Unsupported:
        return holds(session, contact, tree, now, scope=scope)
    return session.scalar(select(Contact.id).where(Contact.id == contact.id, clause)) is not None


def holds(session: Session, contact: Contact, tree: Any, now: dt.datetime, *, scope: ScopeFactory) -> bool:
    """Whether *contact* meets the condition *tree* at *now*, by the evaluator in its *scope* (no SQL needed)."""
    return dsl.holds(tree, scope(session, contact, int(now.timestamp())))


def iter_members(
    session: Session, tree: Any, now: dt.datetime | None = None, *, scope: ScopeFactory
) -> Iterator[Contact]:
    """Every member, in id order: by SQL when possible, else by evaluating each contact in its *scope*."""
    now = now or utcnow()
    try:
        clause = members_clause(session, tree, now)
    except Unsupported:
        for contact in session.scalars(select(Contact).order_by(Contact.id).execution_options(yield_per=500)):
            if holds(session, contact, tree, now, scope=scope):
                yield contact
        return
    yield from session.scalars(select(Contact).where(clause).order_by(Contact.id).execution_options(yield_per=500))


def count(session: Session, tree: Any, now: dt.datetime | None = None, *, scope: ScopeFactory) -> int:
    """How many contacts are in the segment now."""
    try:
        clause = members_clause(session, tree, now)
    except Unsupported:
        return sum(1 for _ in iter_members(session, tree, now, scope=scope))
    return session.scalar(select(func.count(Contact.id)).where(clause)) or 0


__all__ = [
    "Compiled",
    "compile_condition",
    "count",
    "holds",
    "is_member",
    "iter_members",
    "members_clause",
    "segment_tree",
]

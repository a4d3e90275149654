"""Finding contacts a page at a time: by email, name, phone, tag or segment, with keyset pages (never OFFSET).

Each search reads one index range from where the last page ended, so the last page of a million
contacts costs what the first does:

- *everyone*, a *tag* and a *segment* list the newest contacts first (by id);
- *email* and *phone* are prefix searches in address order (``ana@`` finds ``ana@example.com``;
  ``+4930`` every Berlin number);
- *name* is a prefix search of the full name ("ana sm") and of the last name alone ("smith"), without
  regard to case, in name order; it reads the contacts' ``name_key`` and ``last_name_key``, which the
  database computes (its ``lower()``: SQLite lowers ASCII letters only, so type accented capitals as
  they are written);
- *segment* is evaluated as ``/api/v1/segments/{name}/members`` evaluates it: in SQL when the
  condition has an SQL form, else contact by contact with the engine's evaluator, at most
  :data:`SCAN_LIMIT` contacts per page (the page then says how far it looked and goes on from there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, select, tuple_, union_all
from sqlalchemy.orm import Session, selectinload

from .contacts.errors import InvalidInput
from .contacts.normalize import normalize_phone
from .models import Contact, ContactTag, Segment, utcnow

#: the search kinds, as the admin UI offers them ("" lists everyone)
KINDS = ("email", "name", "phone", "tag", "segment")
#: contacts per page
PAGE_SIZE = 50
#: contacts a page of a segment without an SQL form evaluates, at most
SCAN_LIMIT = 5000
#: the highest code point: every string that starts with a prefix sorts below prefix + this
_TOP = "\U0010ffff"
_PHONE_PUNCTUATION = re.compile(r"[\s\-().\/]")
#: a page shows each contact's tags: one query for the page, not one per contact
_TAGS = selectinload(Contact.tags)


@dataclass(frozen=True)
class Page:
    """One page of a search: its contacts, where the next page starts (None: this is the last one).

    ``looked_to`` is set when a segment had to be evaluated contact by contact and this page stopped after
    :data:`SCAN_LIMIT` contacts: the id it looked down to.
    """

    contacts: list[Contact]
    after: tuple[Any, ...] | None
    looked_to: int | None = None
    notes: list[str] = field(default_factory=list)


def search(
    session: Session,
    kind: str,
    query: str,
    after: Sequence[Any] | None = None,
    *,
    limit: int = PAGE_SIZE,
    region: str | None = None,
    scope: Any = None,
) -> Page:
    """A page of the contacts *query* finds by *kind* (``""``: every contact), after the cursor *after*.

    :param after: the ``after`` of the previous page (None for the first).
    :param region: the country assumed for a phone number typed without ``+``.
    :param scope: the engine's evaluation context factory (``Scope.of``), for segments without an SQL form.
    :raises InvalidInput: (field ``q``) for an empty or malformed query, an unknown segment or kind, or a cursor
        of another kind of search.
    """
    query = (query or "").strip()
    if kind not in ("", *KINDS):
        raise InvalidInput("by", f"cannot search by {kind!r}; choose one of {', '.join(KINDS)}")
    if kind and not query:
        raise InvalidInput("q", f"type what to search for by {kind}")
    if len(query) > 320:
        raise InvalidInput("q", "the search is longer than 320 characters")
    if kind == "segment":
        return _segment_page(session, query, _cursor(after, int), limit, scope)
    if kind == "name":
        return _name_page(session, query, _cursor(after, str, int), limit)
    if kind in ("email", "phone"):
        column = Contact.email if kind == "email" else Contact.phone
        prefix = query.lower() if kind == "email" else phone_prefix(query, region)
        return _prefix_page(session, column, prefix, _cursor(after, str, int), limit)
    if kind == "tag":  # ordered by the tag row's contact id: the (tag, contact_id) index gives that order
        stmt = select(Contact).join(ContactTag, ContactTag.contact_id == Contact.id).where(ContactTag.tag == query)
        return _newest_first(session, stmt, _cursor(after, int), limit, ContactTag.contact_id)
    return _newest_first(session, select(Contact), _cursor(after, int), limit)


def phone_prefix(text: str, region: str | None = None) -> str:
    """What a phone search looks for: the whole number in E.164 when *text* is one, else ``+`` and its digits.

    :raises InvalidInput: when *text* holds something other than digits, spaces and ``+-()./``.
    """
    try:
        return normalize_phone(text, region, "q")
    except InvalidInput:
        pass
    digits = _PHONE_PUNCTUATION.sub("", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not re.fullmatch(r"\+?\d{1,15}", digits):
        raise InvalidInput(
            "q",
            f"{text!r} is not a phone number: type it with its country code, e.g. +49 30 "
            "123456, or its first digits, e.g. +4930",
        )
    return "+" + digits.lstrip("+")


def starts_with(session: Session, column: Any, prefix: str) -> ColumnElement[bool]:
    """*column* starts with *prefix*, as an index range where the ordering is by code point (SQLite, and
    PostgreSQL's columns in the "C" collation: contacts' email and phone)."""
    if code_point_ordered(session, column):
        return and_(column >= prefix, column < prefix + _TOP)
    # PostgreSQL in the database's collation: it may not order by code point, so a range could miss rows
    return func.starts_with(column, prefix)


def code_point_ordered(session: Session, column: Any) -> bool:
    """Whether the database orders *column*'s values by code point (so a prefix is one range of its index)."""
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        return True
    kind = getattr(column, "type", None)  # its type on this database (a variant's, server.models.contacts.byte_ordered)
    return kind is not None and getattr(kind.dialect_impl(dialect), "collation", None) == "C"


def _cursor(after: Sequence[Any] | None, *types: type) -> tuple[Any, ...] | None:
    """*after* checked against the shape this kind of search gives its cursors."""
    if after is None:
        return None
    if (
        not isinstance(after, (list, tuple))
        or len(after) != len(types)
        or not all(isinstance(v, t) and not isinstance(v, bool) for v, t in zip(after, types, strict=True))
    ):
        raise InvalidInput("after", "this page link belongs to another search; start the search again")
    return tuple(after)


def _newest_first(
    session: Session, stmt: Any, after: tuple[Any, ...] | None, limit: int, ident: Any = Contact.id
) -> Page:
    if after is not None:
        stmt = stmt.where(ident < after[0])
    rows = list(session.scalars(stmt.options(_TAGS).order_by(ident.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, (rows[-1].id,) if more else None)


def _from(session: Session, key: Any, prefix: str, after: tuple[Any, ...] | None) -> list[ColumnElement[bool]]:
    """Rows whose *key* starts with *prefix*, after the cursor in (key, id) order.

    On SQLite one range, from the cursor's key on (never from the prefix when there is a cursor: the index
    seeks to its lower bound, so a page deep in a long range costs what the first does).
    """
    conditions = [] if after is None else [tuple_(key, Contact.id) > tuple_(*after)]
    if code_point_ordered(session, key):
        return [key >= (prefix if after is None else after[0]), key < prefix + _TOP, *conditions]
    return [starts_with(session, key, prefix), *([] if after is None else [key >= after[0]]), *conditions]


def _prefix_page(session: Session, column: Any, prefix: str, after: tuple[Any, ...] | None, limit: int) -> Page:
    stmt = select(Contact).where(*_from(session, column, prefix, after))
    rows = list(session.scalars(stmt.options(_TAGS).order_by(column, Contact.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, (getattr(rows[-1], column.key), rows[-1].id) if more else None)


def _name_page(session: Session, text: str, after: tuple[Any, ...] | None, limit: int) -> Page:
    """Full names starting with *text*, then last names starting with it (each contact once), in name order."""
    prefix: str = session.execute(select(func.lower(" ".join(text.split())))).scalar_one()  # lowered as the keys are
    full = starts_with(session, Contact.name_key, prefix)
    parts = []
    for key, others in ((Contact.name_key, ()), (Contact.last_name_key, (not_(full),))):
        part = select(Contact.id.label("id"), key.label("key")).where(*_from(session, key, prefix, after), *others)
        parts.append(select(part.order_by(key, Contact.id).limit(limit + 1).subquery()))
    both = union_all(*parts).subquery()
    found = session.execute(select(both.c.id, both.c.key).order_by(both.c.key, both.c.id).limit(limit + 1)).all()
    more = len(found) > limit
    found = found[:limit]
    by_id = {
        c.id: c for c in session.scalars(select(Contact).options(_TAGS).where(Contact.id.in_([r.id for r in found])))
    }
    return Page([by_id[r.id] for r in found if r.id in by_id], (found[-1].key, found[-1].id) if more else None)


def _segment_page(session: Session, name: str, after: tuple[Any, ...] | None, limit: int, scope: Any) -> Page:
    from .segments import compile_condition, holds, members_clause
    from .sqlwhere import Unsupported

    condition = session.scalar(select(Segment.condition).where(Segment.name == name))
    if condition is None:
        known = ", ".join(sorted(session.scalars(select(Segment.name)))) or "none yet"
        raise InvalidInput("q", f"there is no segment named {name!r} (segments: {known})")
    compiled = compile_condition(session, condition)
    now = utcnow()
    try:
        clause = members_clause(session, compiled.tree, now)
    except Unsupported:
        pass
    else:
        page = _newest_first(session, select(Contact).where(clause), after, limit)
        return Page(page.contacts, page.after, notes=compiled.warnings)
    # no SQL form (``matches`` …): the engine's evaluator, contact by contact, newest first, a bounded stretch
    found: list[Contact] = []
    looked = 0
    last_id = after[0] if after is not None else None
    while looked < SCAN_LIMIT:
        stmt = select(Contact).order_by(Contact.id.desc()).limit(min(500, SCAN_LIMIT - looked))
        if last_id is not None:
            stmt = stmt.where(Contact.id < last_id)
        batch = list(session.scalars(stmt))
        if not batch:
            return Page(found, None, notes=compiled.warnings)
        for contact in batch:
            looked += 1
            last_id = contact.id
            if holds(session, contact, compiled.tree, now, scope=scope):
                found.append(contact)
                if len(found) > limit:
                    return Page(found[:limit], (found[limit - 1].id,), notes=compiled.warnings)
    more = session.scalar(select(Contact.id).where(Contact.id < last_id).limit(1)) is not None
    return Page(found, (last_id,) if more else None, looked_to=last_id if more else None, notes=compiled.warnings)


__all__ = ["KINDS", "PAGE_SIZE", "SCAN_LIMIT", "Page", "phone_prefix", "search", "starts_with"]

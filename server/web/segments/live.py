"""What the segment editor shows as you type: the checker's diagnostics, the live count and the first members.

The count is one ``SELECT count(*)`` over the condition compiled to SQL (:mod:`server.sqlwhere`). A condition the
database cannot express (``matches`` …) is not counted live: its sample comes from the first contacts only,
evaluated one by one, and the page says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from flask import jsonify, render_template, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import dsl

from ...db import get_session
from ...engine.scope import Scope
from ...models import Contact, Role, utcnow
from ...segments import holds, members_clause, vocabulary
from ...sqlwhere import Unsupported
from ..access import requires
from ..rules.common import diagnostic_json
from . import bp

#: members shown under the editor
SAMPLE = 10
#: contacts evaluated one by one for the sample of a condition the database cannot count
SCANNED = 1000
#: the longest condition accepted (as the API's)
MAX_CONDITION = 20000
FILENAME = "condition"


@dataclass
class Preview:
    """A condition checked, and when it has no error, counted and sampled."""

    text: str
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    tree: Any = None
    count: int | None = None
    sample: list[Contact] = field(default_factory=list)
    #: the database cannot count it (evaluated per contact): no count, the sample is from the first contacts
    scanned: bool = False

    @property
    def ok(self) -> bool:
        return self.tree is not None


def check(session: Session, text: str) -> Preview:
    """The condition *text* checked as a segment is when saved (the database must be able to call its functions)."""
    text = text.replace("\r\n", "\n")
    if not text.strip():
        return Preview(text, [_problem('Type a condition, such as tag == "vip".')])
    if len(text) > MAX_CONDITION or "\x00" in text:
        return Preview(text, [_problem(f"A condition is at most {MAX_CONDITION} characters of text.")])
    result = dsl.parse_condition(text, FILENAME, vocabulary(session), sql_dialect=session.get_bind().dialect.name)
    return Preview(text, [diagnostic_json(d) for d in result.diagnostics], result.tree if result.ok else None)


def _problem(message: str) -> dict[str, Any]:
    return {
        "severity": "error",
        "line": 1,
        "col": 1,
        "end_line": None,
        "end_col": None,
        "message": message,
        "hint": None,
        "fixes": [],
    }


def count_and_sample(session: Session, preview: Preview, now: dt.datetime | None = None) -> Preview:
    """Fill in *preview*'s count and first members (by id), when it checked without error."""
    if not preview.ok:
        return preview
    now = now or utcnow()
    try:
        clause = members_clause(session, preview.tree, now)
    except Unsupported:
        first = session.scalars(select(Contact).order_by(Contact.id).limit(SCANNED))
        members = (c for c in first if holds(session, c, preview.tree, now, scope=Scope.of))
        preview.sample, preview.scanned = list(islice(members, SAMPLE)), True
        return preview
    preview.count = session.scalar(select(func.count(Contact.id)).where(clause)) or 0
    preview.sample = list(session.scalars(select(Contact).where(clause).order_by(Contact.id).limit(SAMPLE)))
    return preview


def count_only(session: Session, text: str, now: dt.datetime) -> int | None:
    """The member count of a stored condition by one SQL count; None when it does not check or has no SQL form."""
    preview = check(session, text)
    if not preview.ok:
        return None
    try:
        clause = members_clause(session, preview.tree, now)
    except Unsupported:
        return None
    return session.scalar(select(func.count(Contact.id)).where(clause)) or 0


def errors_of(preview: Preview) -> list[dict[str, Any]]:
    return [d for d in preview.diagnostics if d["severity"] == "error"]


@bp.post("/validate")
@requires(Role.EDITOR)
def validate():
    """The editor bundle's live diagnostics (docs/admin-editor.md): ``{"source": …}`` in, diagnostics out."""
    body = request.get_json(silent=True)
    source = body.get("source") if isinstance(body, dict) else None
    if not isinstance(source, str):
        return jsonify({"diagnostics": [_problem('Send JSON: {"source": "<the condition>"}.')]}), 400
    return jsonify({"diagnostics": check(get_session(), source).diagnostics})


@bp.post("/preview")
@requires(Role.EDITOR)
def preview():
    """The live part under the editor (htmx, as you type): problems at line:col, or the count and first members."""
    session = get_session()
    shown = count_and_sample(session, check(session, request.form.get("condition", "")))
    return render_template("admin/segments/_preview.html", preview=shown, oob=True)


__all__ = ["Preview", "check", "count_and_sample", "count_only", "errors_of"]

"""The segments list (name, condition, live member count), a segment's page (edit, delete) and a new segment."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy import select

from ...contacts import audit
from ...db import get_session
from ...models import Role, Segment, utcnow
from ...segments import NAME
from ...usage import loop_problem, users_of
from ..access import actor, may, requires
from ..flash import notify
from ..rules.pages import editor_bundle
from . import bp
from .live import Preview, check, count_and_sample, count_only, errors_of

MAX_ID = 2**31 - 1
MAX_DESCRIPTION = 2000


@bp.get("/")
@requires(Role.VIEWER)
def index():
    session = get_session()
    now = utcnow()
    rows = list(session.scalars(select(Segment).order_by(Segment.name)))
    return render_template(
        "admin/segments/list.html",
        segments=[(row, count_only(session, row.condition, now)) for row in rows],
        can_edit=_can_edit(),
    )


def _can_edit() -> bool:
    return may(Role.EDITOR)


def _segment(segment_id: int) -> Segment:
    row = get_session().get(Segment, segment_id) if 0 < segment_id <= MAX_ID else None
    if row is None:
        abort(404, description=f"There is no segment {segment_id}; it may have been deleted.")
    return row


def _page(row: Segment | None, preview: Preview, *, name: str = "", description: str = "", **extra: Any) -> str:
    return render_template(
        "admin/segments/edit.html",
        segment=row,
        name=row.name if row is not None else name,
        description=description,
        preview=preview,
        can_edit=_can_edit(),
        editor_bundle=editor_bundle(),
        errors=extra.pop("errors", {}),
        **extra,
    )


@bp.get("/new")
@requires(Role.EDITOR)
def new():
    return _page(None, Preview(""))


@bp.get("/<int:segment_id>")
@requires(Role.VIEWER)
def show(segment_id: int):
    session = get_session()
    row = _segment(segment_id)
    preview = count_and_sample(session, check(session, row.condition))
    return _page(row, preview, description=row.description)


def _form() -> tuple[str, str, str]:
    return (
        request.form.get("name", "").strip(),
        request.form.get("condition", ""),
        request.form.get("description", "").strip(),
    )


def _refuse(row: Segment | None, preview: Preview, name: str, description: str, errors: dict[str, str]) -> Any:
    get_session().rollback()
    notify("The segment was not saved: " + " ".join(errors.values()), "error")
    return _page(row, preview, name=name, description=description, errors=errors), 422


def _checked(session: Any, name: str, text: str, description: str) -> tuple[Preview, dict[str, str]]:
    """The posted condition of segment *name* checked, counted and sampled, and what is wrong with the form."""
    preview = check(session, text)
    errors = {}
    first = next(iter(errors_of(preview)), None)
    loop = loop_problem(session, preview.tree, name) if preview.ok else None
    if first is not None:
        hint = f" ({first['hint']})" if first.get("hint") else ""
        errors["condition"] = f"line {first['line']}, column {first['col']}: {first['message']}{hint}"
    elif loop:
        errors["condition"] = loop
    else:
        count_and_sample(session, preview)
    if len(description) > MAX_DESCRIPTION:
        errors["description"] = f"A description is at most {MAX_DESCRIPTION} characters."
    return preview, errors


@bp.post("/new")
@requires(Role.EDITOR)
def create():
    session = get_session()
    name, text, description = _form()
    preview, errors = _checked(session, name, text, description)
    if not NAME.match(name):
        errors["name"] = "A name is 1 to 128 letters, digits, spaces, _ . or - and starts with a letter or digit."
    elif session.scalar(select(Segment.id).where(Segment.name == name)) is not None:
        errors["name"] = f"A segment named {name!r} exists already; choose another name."
    if errors:
        return _refuse(None, preview, name, description, errors)
    row = Segment(name=name, condition=preview.text, description=description)
    session.add(row)
    session.flush()
    audit(session, actor(), "segment.created", "segment", row.name)
    session.commit()
    notify(f"Segment {name!r} is saved: {_members(preview)}.")
    return redirect(url_for("segments.show", segment_id=row.id))


def _members(preview: Preview) -> str:
    return "its members are found one by one" if preview.count is None else f"{preview.count} contact(s) in it now"


@bp.post("/<int:segment_id>")
@requires(Role.EDITOR)
def save(segment_id: int):
    session = get_session()
    row = _segment(segment_id)
    _, text, description = _form()
    preview, errors = _checked(session, row.name, text, description)
    if errors:
        return _refuse(row, preview, row.name, description, errors)
    changed = [
        k
        for k, old, new in (("condition", row.condition, preview.text), ("description", row.description, description))
        if old != new
    ]
    if not changed:
        notify(f"Segment {row.name!r} was not changed.", "info")
        return redirect(url_for("segments.show", segment_id=row.id))
    row.condition, row.description = preview.text, description
    audit(session, actor(), "segment.updated", "segment", row.name, changed=changed)
    session.commit()
    notify(f"Segment {row.name!r} is saved: {_members(preview)}.")
    return redirect(url_for("segments.show", segment_id=row.id))


@bp.post("/<int:segment_id>/delete")
@requires(Role.EDITOR)
def delete(segment_id: int):
    session = get_session()
    row = _segment(segment_id)
    users = users_of(session, row.name)
    if users:
        notify(
            f"Segment {row.name!r} was not deleted: {', '.join(users)} use(s) it. "
            "Take it out of those first (a rule's active version and its draft both count).",
            "error",
        )
        preview = count_and_sample(session, check(session, row.condition))
        return _page(row, preview, description=row.description), 409
    name = row.name
    session.delete(row)
    audit(session, actor(), "segment.deleted", "segment", name)
    session.commit()
    notify(f"Segment {name!r} is deleted.")
    return redirect(url_for("segments.index"))


__all__: list[str] = []

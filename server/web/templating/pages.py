"""The templates list and each template's editor: create, change (validated in the renderer's sandbox), delete
(refused while a rule sends it or a double opt-in form mails its confirmation with it)."""

from __future__ import annotations

import os
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from ...contacts import audit
from ...db import get_session
from ...engine.render import TemplateError, TemplateProblem, save_template
from ...models import Role, Template
from ...usage import confirming_forms, lost_confirm_url, template_uses, uses_of
from ..access import actor, may, requires
from ..flash import notify
from . import bp
from .common import (
    NAME,
    SAMPLE_CONTACT,
    channel_class,
    channels,
    context_for,
    find_template,
    form_parts,
    last_changes,
    part_fields,
)
from .rendering import rendered


@bp.get("/")
@requires(Role.VIEWER)
def index():
    session = get_session()
    wanted = request.args.get("channel", "").strip()
    installed = channels()
    if wanted and wanted not in installed:
        abort(400, description=f"channel must be one of {', '.join(installed)} (or empty for every channel).")
    stmt = select(Template).order_by(Template.channel, Template.name)
    if wanted:
        stmt = stmt.where(Template.channel == wanted)
    rows = list(session.scalars(stmt))
    builtin = [
        (name, template)
        for name, cls in installed.items()
        if not wanted or name == wanted
        for template in sorted(getattr(cls, "builtin_templates", {}))
        if not any(r.channel == name and r.name == template for r in rows)
    ]
    return render_template(
        "admin/templates/list.html",
        rows=rows,
        builtin=builtin,
        uses=template_uses(session),
        changes=last_changes(session, [r.id for r in rows]),
        channels=list(installed),
        wanted=wanted,
        can_edit=_can_edit(),
    )


def _can_edit() -> bool:
    return may(Role.EDITOR)


def editor_page(
    channel: str,
    parts: dict[str, str],
    row: Template | None = None,
    name: str = "",
    problems: list[TemplateProblem] | None = None,
    status: int = 200,
    contact_email: str = "",
    to: str = "",
) -> Any:
    """The editor of *row* (None: a new template of *channel*) showing *parts*, with *problems* at their parts."""
    cls = channel_class(channel)
    session = get_session()
    by_part: dict[str, list[TemplateProblem]] = {}
    for problem in problems or []:
        by_part.setdefault(problem.part, []).append(problem)
    return render_template(
        "admin/templates/editor.html",
        row=row,
        channel=channel,
        name=row.name if row is not None else name,
        fields=part_fields(cls),
        parts=parts,
        problems=problems or [],
        by_part=by_part,
        lines={
            part: [{"line": p.line, "message": p.message} for p in found if p.line] for part, found in by_part.items()
        },
        uses=uses_of(session, channel, row.name) if row is not None else [],
        change=last_changes(session, [row.id]).get(row.id) if row is not None else None,
        preview=rendered(cls, parts, context_for(dict(SAMPLE_CONTACT))),
        contact=None,
        bundle=os.path.exists(os.path.join(current_app.static_folder or "", "dist", "template-editor.js")),
        address_field=cls.address_field,
        can_edit=_can_edit(),
        contact_email=contact_email,
        to=to,
    ), status


@bp.get("/new")
@requires(Role.EDITOR)
def new():
    channel = request.args.get("channel", "").strip()
    if not channel:  # first, which channel: its parts make the editor
        return render_template("admin/templates/choose.html", channels=channels())
    cls = channel_class(channel)
    copy = request.args.get("copy", "")
    parts = dict(getattr(cls, "builtin_templates", {}).get(copy) or {})
    return editor_page(channel, parts, name=copy)


@bp.get("/<int:template_id>")
@requires(Role.VIEWER)
def show(template_id: int):
    row = find_template(template_id)
    return editor_page(row.channel, dict(row.parts or {}), row)


def _refused(channel: str, parts: dict[str, str], row: Template | None, name: str, problems: list[TemplateProblem]):
    first = problems[0]
    where = f"{first.part}, line {first.line}" if first.line else first.part
    notify(f"Not saved: {len(problems)} problem(s); the first, in {where}: {first.message}", "error")
    get_session().rollback()
    return editor_page(channel, parts, row, name, problems, 422, request.form.get("contact_email", ""))


@bp.post("/new")
@requires(Role.EDITOR)
def create():
    channel = request.form.get("channel", "").strip()
    cls = channel_class(channel)
    name = request.form.get("name", "").strip()
    parts = form_parts(cls)
    session = get_session()
    if not NAME.fullmatch(name):
        problem = TemplateProblem("name", None, "a name is letters, digits, _ . and - (e.g. welcome_1), at most 255")
        return _refused(channel, parts, None, name, [problem])
    if session.scalar(select(Template.id).where(Template.channel == channel, Template.name == name)):
        taken = f"the {channel} channel has a template named {name!r}; choose another name"
        problem = TemplateProblem("name", None, taken)
        return _refused(channel, parts, None, name, [problem])
    return _save(channel, name, parts, None, "template.created", "Created")


@bp.post("/<int:template_id>")
@requires(Role.EDITOR)
def update(template_id: int):
    row = find_template(template_id)
    parts = form_parts(channel_class(row.channel))
    lost = lost_confirm_url(get_session(), row.channel, row.name, parts)
    if lost is not None:
        return _refused(row.channel, parts, row, row.name, [TemplateProblem("html", None, lost[0].upper() + lost[1:])])
    return _save(row.channel, row.name, parts, row, "template.updated", "Saved")


def _save(channel: str, name: str, parts: dict[str, str], row: Template | None, action: str, verb: str):
    session = get_session()
    try:
        saved = save_template(session, channel, name, parts)
    except TemplateError as exc:
        return _refused(channel, parts, row, name, exc.problems)
    audit(session, actor(), action, "template", saved.id, channel=channel)
    session.commit()
    notify(f"{verb} the {channel} template {name!r}.")
    return redirect(url_for("templates.show", template_id=saved.id))


@bp.post("/<int:template_id>/delete")
@requires(Role.EDITOR)
def delete(template_id: int):
    row = find_template(template_id)
    session = get_session()
    uses = uses_of(session, row.channel, row.name)
    if uses:
        names = ", ".join(repr(str(u)) for u in uses)
        notify(
            f"Not deleted: the rule(s) {names} send the {row.channel} template {row.name!r}. "
            "Change them to send another template first.",
            "error",
        )
        return editor_page(row.channel, dict(row.parts or {}), row, status=409)
    forms = confirming_forms(session, row)
    if forms:  # every sign-up's confirmation would fail to send
        names = ", ".join(repr(f) for f in forms)
        notify(
            f"Not deleted: the double opt-in form(s) {names} mail their confirmation with the {row.channel} template "
            f"{row.name!r}. Choose another confirmation template in Forms first.",
            "error",
        )
        return editor_page(row.channel, dict(row.parts or {}), row, status=409)
    name, channel = row.name, row.channel
    session.delete(row)
    audit(session, actor(), "template.deleted", "template", template_id, channel=channel)
    session.commit()
    notify(f"Deleted the {channel} template {name!r}.")
    return redirect(url_for("templates.index"))


__all__ = ["editor_page"]

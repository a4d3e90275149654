"""The forms list, a form's page (settings, embed code, submissions) and a new form."""

from __future__ import annotations

import re
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...contacts import audit
from ...contacts.fields import definitions
from ...db import get_session
from ...forms import STANDARD_FORM_FIELDS, confirmation_problem, snippet_html
from ...models import Contact, Form, FormSubmission, Role
from ..access import actor, may, requires
from ..crm.paging import PAGE_SIZE, cursor, next_link
from ..flash import notify
from . import bp

MAX_ID = 2**31 - 1
#: as the API's (server.api.forms): lowercase letters, digits and -, not "confirm" (the confirmation links' path)
SLUG = re.compile(r"^(?!confirm$)[a-z0-9][a-z0-9-]{0,63}$")
MAX_WORDING = 20000
MAX_TAGS = 20


def _can_edit() -> bool:
    return may(Role.EDITOR)


def _channels() -> list[str]:
    """The installed channels that address a contact (a form subscribes a person to one of them)."""
    channels = current_app.extensions["nudge.plugins"].channels
    return sorted(name for name, cls in channels.items() if getattr(cls, "address_field", None))


def _field_choices(session: Session) -> list[str]:
    return [*STANDARD_FORM_FIELDS, *sorted(definitions(session))]


@bp.get("/")
@requires(Role.VIEWER)
def index():
    session = get_session()
    counts = dict(
        session.execute(
            select(FormSubmission.form_id, func.count(FormSubmission.id)).group_by(FormSubmission.form_id)
        ).all()
    )
    forms = list(session.scalars(select(Form).order_by(Form.slug)))
    return render_template(
        "admin/forms/list.html", forms=[(f, counts.get(f.id, 0)) for f in forms], can_edit=_can_edit()
    )


def _form(form_id: int) -> Form:
    row = get_session().get(Form, form_id) if 0 < form_id <= MAX_ID else None
    if row is None:
        abort(404, description=f"There is no form {form_id}; it may have been deleted.")
    return row


def _values(row: Form | None) -> dict[str, Any]:
    if row is None:
        default = current_app.extensions["nudge.plugins"].channel_for_field("email") or ""
        return {
            "slug": "",
            "name": "",
            "channel": default,
            "wording": "",
            "double_opt_in": True,
            "fields": [],
            "tags": "",
            "redirect_url": "",
            "confirm_template": "confirm_subscription",
        }
    return {
        "slug": row.slug,
        "name": row.name,
        "channel": row.channel,
        "wording": row.wording,
        "double_opt_in": row.double_opt_in,
        "fields": list(row.fields),
        "tags": ", ".join(row.tags),
        "redirect_url": row.redirect_url or "",
        "confirm_template": row.confirm_template,
    }


def _page(row: Form | None, values: dict[str, Any], errors: dict[str, str] | None = None, status: int = 200) -> Any:
    session = get_session()
    submissions, after = _submissions(session, row) if row is not None else ([], None)
    return (
        render_template(
            "admin/forms/edit.html",
            form=row,
            values=values,
            errors=errors or {},
            channels=_channels(),
            field_choices=_field_choices(session),
            can_edit=_can_edit(),
            snippet=snippet_html(row) if row is not None else "",
            public_url=f"{current_app.config['BASE_URL']}/f/{row.slug}" if row is not None else "",
            submissions=submissions,
            next_after=after,
        ),
        status,
    )


def _submissions(session: Session, row: Form) -> tuple[list[tuple[FormSubmission, Contact]], str | None]:
    """A page of *row*'s submissions, newest first (keyset on the id), and the next page's ``after=``."""
    scope = f"form-submissions:{row.id}"
    after = cursor(scope, request.args.get("after"))
    query = (
        select(FormSubmission, Contact)
        .join(Contact, Contact.id == FormSubmission.contact_id)
        .where(FormSubmission.form_id == row.id)
    )
    if after is not None:
        query = query.where(FormSubmission.id < after[0])
    rows: list[tuple[FormSubmission, Contact]] = [
        (sub, contact)
        for sub, contact in session.execute(query.order_by(FormSubmission.id.desc()).limit(PAGE_SIZE + 1))
    ]
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return rows, next_link(scope, [rows[-1][0].id]) if more else None


@bp.get("/new")
@requires(Role.EDITOR)
def new():
    return _page(None, _values(None))


@bp.get("/<int:form_id>")
@requires(Role.VIEWER)
def show(form_id: int):
    row = _form(form_id)
    return _page(row, _values(row))


def _read(session: Session, row: Form | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The posted form settings, and what is wrong with them (field → what to do)."""
    f = request.form
    values: dict[str, Any] = {
        "slug": row.slug if row is not None else f.get("slug", "").strip(),
        "name": f.get("name", "").strip(),
        "channel": f.get("channel", ""),
        "wording": f.get("wording", "").replace("\r\n", "\n").strip(),
        "double_opt_in": f.get("double_opt_in") in ("on", "yes", "1", "true"),
        "fields": f.getlist("fields"),
        "tags": f.get("tags", ""),
        "redirect_url": f.get("redirect_url", "").strip(),
        "confirm_template": f.get("confirm_template", "").strip(),
    }
    errors: dict[str, str] = {}
    if row is None:
        if not SLUG.match(values["slug"]):
            errors["slug"] = (
                "A slug is 1 to 64 lowercase letters, digits and -, starting with a letter or digit "
                "(and not 'confirm'); it is the form's address, /f/<slug>."
            )
        elif session.scalar(select(Form.id).where(Form.slug == values["slug"])) is not None:
            errors["slug"] = f"A form {values['slug']!r} exists already; choose another slug."
    if len(values["name"]) > 255:
        errors["name"] = "A name is at most 255 characters."
    if values["channel"] not in _channels():
        errors["channel"] = f"Choose one of the installed channels: {', '.join(_channels()) or 'none'}."
    if len(values["wording"]) > MAX_WORDING:
        errors["wording"] = f"The consent wording is at most {MAX_WORDING} characters of text."
    known = _field_choices(session)
    unknown = [name for name in values["fields"] if name not in known]
    if unknown:
        errors["fields"] = f"{unknown[0]!r} is neither a contact attribute nor a custom field."
    tags = [t.strip() for t in values["tags"].split(",") if t.strip()]
    if len(tags) > MAX_TAGS or any(len(t) > 128 for t in tags):
        errors["tags"] = f"At most {MAX_TAGS} tags, separated by commas, each at most 128 characters."
    url = values["redirect_url"]
    if url and (not re.match(r"^https?://[^\s]+$", url) or len(url) > 2048):
        errors["redirect_url"] = "Leave it empty for Nudge's thank-you page, or give an http(s):// address."
    if not values["confirm_template"] or len(values["confirm_template"]) > 255:
        errors["confirm_template"] = "Name the template that mails the confirmation link (1 to 255 characters)."
    elif values["double_opt_in"]:
        missing = confirmation_problem(get_session(), values["channel"], values["confirm_template"])
        if missing:  # every sign-up's confirmation would fail to send
            errors["confirm_template"] = missing[0].upper() + missing[1:] + "."
    values["tag_list"] = tags
    return values, errors


def _apply(row: Form, values: dict[str, Any]) -> list[str]:
    """Set *values* on *row*; the names of the settings that changed."""
    new = {
        "name": values["name"],
        "channel": values["channel"],
        "wording": values["wording"],
        "double_opt_in": values["double_opt_in"],
        "fields": [name for name in _field_choices(get_session()) if name in values["fields"]],
        "tags": values["tag_list"],
        "redirect_url": values["redirect_url"] or None,
        "confirm_template": values["confirm_template"],
    }
    changed = [name for name, value in new.items() if getattr(row, name) != value]
    for name in changed:
        setattr(row, name, new[name])
    return changed


def _refuse(row: Form | None, values: dict[str, Any], errors: dict[str, str]) -> Any:
    get_session().rollback()
    notify("The form was not saved: " + " ".join(errors.values()), "error")
    return _page(row, values, errors, 422)


@bp.post("/new")
@requires(Role.EDITOR)
def create():
    session = get_session()
    values, errors = _read(session, None)
    if errors:
        return _refuse(None, values, errors)
    row = Form(slug=values["slug"], fields=[], tags=[])
    _apply(row, values)
    session.add(row)
    session.flush()
    audit(session, actor(), "form.created", "form", row.slug)
    session.commit()
    notify(f"Form {row.slug!r} is saved: people sign up at /f/{row.slug}.")
    return redirect(url_for("form_admin.show", form_id=row.id))


@bp.post("/<int:form_id>")
@requires(Role.EDITOR)
def save(form_id: int):
    session = get_session()
    row = _form(form_id)
    values, errors = _read(session, row)
    if errors:
        return _refuse(row, values, errors)
    changed = _apply(row, values)
    if not changed:
        notify(f"Form {row.slug!r} was not changed.", "info")
        return redirect(url_for("form_admin.show", form_id=row.id))
    audit(session, actor(), "form.updated", "form", row.slug, changed=changed)
    session.commit()
    kept = " Earlier sign-ups keep the wording they agreed to." if "wording" in changed else ""
    notify(f"Form {row.slug!r} is saved ({', '.join(changed)} changed).{kept}")
    return redirect(url_for("form_admin.show", form_id=row.id))


__all__: list[str] = []

"""Contacts: find them (email, name, phone, tag, segment; keyset pages), and a contact's page.

The page shows the profile and custom fields (editors edit them, validated as the API validates:
:func:`server.contacts.clean_contact`), tags, score, consent per channel (whether marketing may reach the
contact there, by the send-time policy's rule) with its ledger, one timeline
(:mod:`.timeline`), journeys with their trace, notes (editors add them) and tasks. Export and erase are the
API's (:func:`server.contacts.export_contact`, :func:`server.contacts.erase_contact`) and, as there, need
the most trusted role: the API wants an ``admin`` key for them, the UI an ``admin``.
"""

from __future__ import annotations

import json
from typing import Any

from flask import abort, current_app, make_response, redirect, render_template, request, url_for
from sqlalchemy import select

from ...consent import current_consents
from ...contact_search import KINDS, search
from ...contacts import Conflict, InvalidInput, address_channels, clean_contact, definitions, erase_contact
from ...contacts.editing import MAX_NOTE, add_note, export_for, update_contact
from ...contacts.lifecycle import held_rows
from ...db import get_session
from ...engine.policy import CONSENT_STATES, consent_refusal, consent_rule
from ...engine.scope import Scope
from ...engine.timeutil import to_dt
from ...engine.wake import enqueue_events
from ...models import Consent, Contact, Enrolment, EnrolmentState, FieldDefinition, Role, Rule, Segment, User
from ..access import actor, admin_blueprint, current_role, requires
from ..flash import notify
from ..nav import add
from . import paging, timeline

bp = admin_blueprint("contacts", __name__, url_prefix="/admin/contacts")
add(bp, "Contacts", "contacts.index", order=30)

SEARCH_KINDS = [
    ("email", "Email (starts with)"),
    ("name", "Name (first or last, starts with)"),
    ("phone", "Phone (number or first digits)"),
    ("tag", "Tag (exactly)"),
    ("segment", "Segment"),
]
#: the profile form: (name, label, input type, hint)
STANDARD = [
    ("email", "Email", "email", None),
    ("first_name", "First name", "text", None),
    ("last_name", "Last name", "text", None),
    ("phone", "Phone", "text", "With the country code, e.g. +49 30 123456"),
    ("external_id", "External id", "text", "Your system's id for the contact"),
    ("timezone", "Time zone", "text", "IANA name, e.g. Europe/Berlin"),
    ("locale", "Locale", "text", "e.g. en or de-AT"),
    ("stage", "Stage", "text", "e.g. lead, customer"),
    ("score", "Score", "text", "A whole number"),
    ("tags", "Tags", "text", "Separated by ;"),
]
STATE_NAMES = {
    EnrolmentState.ACTIVE: "active",
    EnrolmentState.DONE: "done",
    EnrolmentState.EXITED: "exited",
    EnrolmentState.HELD: "held",
    EnrolmentState.PARKED: "parked",
}
MAX_ID = 2**31 - 1


def _channels() -> dict[str, tuple[str, ...]]:
    """Contact attribute -> the channels addressed by it, from the installed plugins."""
    return address_channels(current_app.extensions.get("nudge.plugins"))


# -- finding contacts -----------------------------------------------------------------------------------------
@bp.get("/")
@requires(Role.VIEWER)
def index():
    db = get_session()
    by, text = request.args.get("by", "name"), request.args.get("q", "")
    kind = by if text.strip() else ""
    scope = f"{kind}:{text.strip()}"
    page, error = None, None
    try:
        page = search(
            db,
            kind,
            text,
            paging.cursor(scope, request.args.get("after")),
            limit=paging.PAGE_SIZE,
            region=current_app.config.get("PHONE_REGION"),
            scope=Scope.of,
        )
    except InvalidInput as exc:
        error = str(exc)
        notify(f"Cannot search: {error}", "error")
    segments = list(db.scalars(select(Segment.name).order_by(Segment.name)))
    return render_template(
        "admin/contacts.html",
        page=page,
        by=by,
        q=text,
        kinds=SEARCH_KINDS,
        error=error,
        segments=segments,
        searching=bool(kind),
        after=paging.next_link(scope, page.after) if page else None,
        first=bool(request.args.get("after")),
    ), 400 if error else 200


# -- one contact ------------------------------------------------------------------------------------------
def _contact(contact_id: int) -> Contact:
    contact = get_session().get(Contact, contact_id) if 0 < contact_id <= MAX_ID else None
    if contact is None:
        abort(404, description=f"There is no contact with id {contact_id}; it may have been erased or merged.")
    return contact


def _defs() -> list[FieldDefinition]:
    return list(get_session().scalars(select(FieldDefinition).order_by(FieldDefinition.name)))


def _as_text(kind: str, value: Any) -> str:
    """A stored value as the profile form shows it (and as ``clean_contact(from_text=True)`` reads it back)."""
    if value is None:
        return ""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "list" or isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def _form_values(contact: Contact, defs: list[FieldDefinition]) -> dict[str, str]:
    values = {name: _as_text("string", getattr(contact, name)) for name, *_ in STANDARD if name != "tags"}
    values["tags"] = "; ".join(sorted(t.tag for t in contact.tags))
    for d in defs:
        values[f"field.{d.name}"] = _as_text(d.type, (contact.fields or {}).get(d.name))
    return values


def _authors(db: Any) -> dict[str, str]:
    """``user:<id>`` → the user's address, for notes and tasks written in the UI."""
    return {f"user:{uid}": email for uid, email in db.execute(select(User.id, User.email))}


def _consent_states(current: dict[str, str]) -> list[tuple[str, str | None, str | None]]:
    """Each channel's latest ledger status and what it means for marketing sends here (``subscribed``, ``needs
    opt-in``, ``unsubscribed``; None where consent does not apply), from the send-time policy's own rule.

    The channels shown are those that reach the contact at an address of theirs (a webhook reaches nobody: no
    consent to ask), and any the ledger names.
    """
    channels = current_app.extensions["nudge.plugins"].channels
    addressed = {name for name, cls in channels.items() if getattr(cls, "address_field", None)}
    out = []
    for name in sorted(addressed | set(current)):
        rule = consent_rule(channels[name], name, current_app.config) if name in addressed else None
        state = None if rule is None else CONSENT_STATES[consent_refusal(rule, current.get(name))]
        out.append((name, current.get(name), state))
    return out


def _page(
    contact: Contact,
    status: int = 200,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    note: str = "",
) -> Any:
    db = get_session()
    defs = _defs()
    ledger = list(
        db.scalars(
            select(Consent)
            .where(Consent.contact_id == contact.id)
            .order_by(Consent.recorded_at.desc(), Consent.id.desc())
        )
    )
    current = current_consents(db, contact.id)
    consent = _consent_states(current)
    rules = dict(db.execute(select(Rule.id, Rule.name)).all())
    journeys = [
        (e, rules.get(e.rule_id, f"rule {e.rule_id}"), STATE_NAMES.get(EnrolmentState(e.state), "?"), to_dt(e.entered))
        for e in db.scalars(
            select(Enrolment).where(Enrolment.contact_id == contact.id).order_by(Enrolment.id.desc()).limit(100)
        )
    ]
    authors = _authors(db)
    role = current_role()
    return render_template(
        "admin/contact.html",
        contact=contact,
        defs=defs,
        form=form or _form_values(contact, defs),
        errors=errors or {},
        standard=STANDARD,
        consent=consent,
        ledger=ledger,
        journeys=journeys,
        timeline=timeline.build(db, contact, authors),
        note=note,
        max_note=MAX_NOTE,
        can_edit=role is not None and role.allows(Role.EDITOR),
        can_admin=role is not None and role.allows(Role.ADMIN),
    ), status


@bp.get("/<int:contact_id>")
@requires(Role.VIEWER)
def contact(contact_id: int):
    return _page(_contact(contact_id))


@bp.post("/<int:contact_id>")
@requires(Role.EDITOR)
def update(contact_id: int):
    """Save the profile: only what changed in the form is validated and written, as a PATCH of it."""
    db = get_session()
    contact = _contact(contact_id)
    defs = _defs()
    before = _form_values(contact, defs)
    form = {name: request.form.get(name, "") for name in before}
    changed = {name: value for name, value in form.items() if value.strip() != before[name].strip()}
    if not changed:
        notify("Nothing changed.", "info")
        return redirect(url_for("contacts.contact", contact_id=contact.id))
    data: dict[str, Any] = {k: v for k, v in changed.items() if not k.startswith("field.")}
    fields = {k.removeprefix("field."): v for k, v in changed.items() if k.startswith("field.")}
    if fields:
        data["fields"] = fields
    try:
        cleaned = clean_contact(
            db, data, region=current_app.config.get("PHONE_REGION"), known_fields=definitions(db), from_text=True
        )
        events = update_contact(db, contact, cleaned, actor=actor(), source="admin")
    except (InvalidInput, Conflict) as exc:
        db.rollback()
        name = exc.field.replace("fields.", "field.", 1) if exc.field else "email"
        errors = {name if name in form else "email": str(exc)}
        if not isinstance(exc, Conflict):
            errors = _every_error(db, data, form) or errors
        notify("Not saved: " + " ".join(f"{e}." if not e.endswith(".") else e for e in errors.values()), "error")
        return _page(_contact(contact_id), 409 if isinstance(exc, Conflict) else 422, form=form, errors=errors)
    db.commit()
    enqueue_events([event.id for event in events])
    labels = {name: label for name, label, *_ in STANDARD} | {f"field.{d.name}": d.label or d.name for d in defs}
    notify("Saved: " + ", ".join(labels[name] for name in before if name in changed) + ".")
    return redirect(url_for("contacts.contact", contact_id=contact.id))


def _every_error(db: Any, data: dict[str, Any], form: dict[str, str]) -> dict[str, str]:
    """What is wrong with each changed field of the profile form (each checked on its own), by form field name:
    the page shows them all at once rather than one per save."""
    parts = [(name, {name: value}) for name, value in data.items() if name != "fields"]
    parts += [(f"field.{name}", {"fields": {name: value}}) for name, value in data.get("fields", {}).items()]
    errors = {}
    for name, part in parts:
        try:
            clean_contact(
                db, part, region=current_app.config.get("PHONE_REGION"), known_fields=definitions(db), from_text=True
            )
        except InvalidInput as exc:
            errors[name if name in form else "email"] = str(exc)
    return errors


@bp.post("/<int:contact_id>/notes")
@requires(Role.EDITOR)
def note(contact_id: int):
    db = get_session()
    contact = _contact(contact_id)
    body = request.form.get("body", "")
    try:
        add_note(db, contact, body, author=actor(), actor=actor())
    except InvalidInput as exc:
        db.rollback()
        notify(f"The note was not added: {exc}.", "error")
        return _page(_contact(contact_id), 422, note=body)
    db.commit()
    notify("Note added.")
    return redirect(url_for("contacts.contact", contact_id=contact.id) + "#timeline")


@bp.post("/<int:contact_id>/export")
@requires(Role.ADMIN)
def export(contact_id: int):
    """Everything held on the contact as a JSON download: ``GET /api/v1/contacts/{id}/export``'s answer."""
    db = get_session()
    data = export_for(
        db, _contact(contact_id), secret=current_app.config["SECRET_KEY"], channels=_channels(), actor=actor()
    )
    db.commit()
    response = make_response(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))
    response.mimetype = "application/json"
    response.headers["Content-Disposition"] = f'attachment; filename="contact-{contact_id}.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


# -- erasure ---------------------------------------------------------------------------------------------------
def _erase_page(contact: Contact, status: int = 200, error: str | None = None) -> Any:
    held = held_rows(get_session(), contact.id)
    hashed = [(field, names) for field, names in _channels().items() if getattr(contact, field, None)]
    return render_template("admin/contact_erase.html", contact=contact, held=held, hashed=hashed, error=error), status


@bp.get("/<int:contact_id>/erase")
@requires(Role.ADMIN)
def erase_confirm(contact_id: int):
    return _erase_page(_contact(contact_id))


@bp.post("/<int:contact_id>/erase")
@requires(Role.ADMIN)
def erase(contact_id: int):
    db = get_session()
    contact = _contact(contact_id)
    if request.form.get("confirm") != "yes":
        notify("Nothing was erased: tick the box to confirm that you understand the consequences.", "error")
        return _erase_page(contact, 422, error="Tick this box to erase the contact.")
    removed = erase_contact(db, contact, secret=current_app.config["SECRET_KEY"], actor=actor(), channels=_channels())
    db.commit()
    rows = sum(count for table, count in removed.items() if table != "messages")
    notify(
        f"Contact {contact_id} was erased: {rows} row(s) about them deleted, {removed.get('messages', 0)} "
        "message(s) kept without recipient or content; their addresses remain only as salted hashes on the "
        "suppression list."
    )
    return redirect(url_for("contacts.index"))


__all__ = ["KINDS", "bp"]

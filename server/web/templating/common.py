"""What the templates pages share: the channels that have templates, a template's parts from the editor's form,
the contact a preview is rendered for and who changed a template last (from the audit log)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import abort, current_app, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...db import get_session
from ...engine.render import HTML_PARTS, ONE_LINE_PARTS, contact_data
from ...models import AuditEntry, Contact, Template, User

#: the names the API accepts too (``server.api.templates``)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
#: the most characters one part may have (as the API)
MAX_PART = 200_000
#: whom a preview is rendered for when no contact is chosen
SAMPLE_CONTACT: dict[str, Any] = {
    "email": "ana@example.com",
    "phone": "+15555550100",
    "first_name": "Ana",
    "last_name": "Example",
    "external_id": "sample-1",
    "stage": "lead",
    "score": 10,
    "timezone": "Europe/Berlin",
    "locale": "en",
}
#: where a preview's or a test's unsubscribe link points: nowhere (a test must never unsubscribe anyone)
SAMPLE_UNSUBSCRIBE = "https://unsubscribe.example.invalid/test"
#: what ``{{ confirm_url }}`` shows in a preview (a double opt-in confirmation's link)
SAMPLE_CONFIRM = "https://confirm.example.invalid/test"


@dataclass(frozen=True)
class PartField:
    """One part of a channel's templates as the editor shows it."""

    name: str
    required: bool
    html: bool
    one_line: bool


def channels() -> dict[str, Any]:
    """The installed channels whose sends render a template (not those calling named endpoints), by name."""
    found = current_app.extensions["nudge.plugins"].channels
    return {name: cls for name, cls in sorted(found.items()) if not getattr(cls, "endpoints", False)}


def channel_class(name: str) -> Any:
    installed = channels()
    cls = installed.get(name)
    if cls is None:
        choices = ", ".join(installed) or "none"
        abort(404, description=f"No installed channel {name!r} has templates; choose one of {choices}.")
    return cls


def part_fields(cls: Any) -> list[PartField]:
    """The parts the channel declares, in its order, marked as it requires and renders them."""
    required = {p for r in cls.required_parts for p in ((r,) if isinstance(r, str) else r)}
    return [PartField(p, p in required, p in HTML_PARTS, p in ONE_LINE_PARTS) for p in cls.template_parts]


def form_parts(cls: Any) -> dict[str, str]:
    """The parts typed in the editor (fields ``part-<name>``), Windows line ends made plain; empty ones left out."""
    parts = {}
    for part in cls.template_parts:
        value = request.form.get(f"part-{part}", "")
        if len(value) > MAX_PART:
            abort(413, description=f"The {part} part is {len(value):,} characters long; at most {MAX_PART:,}.")
        value = value.replace("\r\n", "\n")
        if value:
            parts[part] = value
    return parts


def find_template(template_id: int) -> Template:
    row = get_session().get(Template, template_id) if 0 < template_id < 2**31 else None
    if row is None:
        abort(404, description=f"There is no template {template_id}; it may have been deleted.")
    return row


def preview_contact(session: Session, email: str) -> tuple[dict[str, Any], Contact | None, str | None]:
    """The data a preview is rendered with: the contact with *email* (any case), else the sample contact.

    :return: the data, the contact (None: the sample) and a note when *email* matched nobody.
    """
    email = email.strip()
    if not email:
        return dict(SAMPLE_CONTACT), None, None
    contact = session.scalar(select(Contact).where(func.lower(Contact.email) == email.lower()).limit(1))
    if contact is None:
        return dict(SAMPLE_CONTACT), None, "No contact has that email; the preview shows the sample contact."
    return contact_data(contact), contact, None


def context_for(contact: dict[str, Any]) -> dict[str, Any]:
    """What a preview or a test renders with: the contact, no event, no links, an inert unsubscribe link."""
    links = {"unsubscribe_url": SAMPLE_UNSUBSCRIBE, "confirm_url": SAMPLE_CONFIRM}
    return {"contact": contact, "event": {}, "links": {}, **links}


@dataclass(frozen=True)
class Change:
    """The last recorded change of a template: when, and who (an email, an API key, the command line)."""

    at: Any
    who: str


def last_changes(session: Session, ids: list[int]) -> dict[int, Change]:
    """The newest audit row of each template in *ids*, its actor made readable."""
    if not ids:
        return {}
    newest_ids = (
        select(func.max(AuditEntry.id))
        .where(AuditEntry.target_type == "template", AuditEntry.target_id.in_([str(i) for i in ids]))
        .group_by(AuditEntry.target_id)
    )  # one row a template, read from the (target_type, target_id) index: not every change ever made
    rows = session.scalars(select(AuditEntry).where(AuditEntry.id.in_(newest_ids)).order_by(AuditEntry.id))
    newest = {int(row.target_id): row for row in rows if row.target_id and row.target_id.isdigit()}
    user_ids = {int(r.actor[5:]) for r in newest.values() if r.actor.startswith("user:") and r.actor[5:].isdigit()}
    emails = dict(session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all()) if user_ids else {}

    def who(actor: str) -> str:
        if actor.startswith("user:") and actor[5:].isdigit():
            return emails.get(int(actor[5:]), actor)
        if actor.startswith("apikey:"):
            return f"API key {actor[7:]}"
        return actor

    return {ident: Change(row.at, who(row.actor)) for ident, row in newest.items()}


__all__ = [
    "MAX_PART",
    "NAME",
    "SAMPLE_CONTACT",
    "Change",
    "PartField",
    "channel_class",
    "channels",
    "context_for",
    "find_template",
    "form_parts",
    "last_changes",
    "part_fields",
    "preview_contact",
]

"""Hosted sign-up forms, what their page (:mod:`server.web.forms`) and the API (:mod:`server.api.forms`) share:
the fields a form may ask for, the embeddable snippet, and what a sign-up may change of a contact who exists.

A public form proves nothing about who posts it: anyone may type anyone's address. So a sign-up never overwrites
what is known about an existing contact on its word alone. Without double opt-in it fills in only what the contact
has no value for; with double opt-in its changes (and the form's tags) are held on the submission and made when
the confirmation link is used, which proves the address is the signer's (:func:`held_changes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app, render_template
from jinja2 import Environment, TemplateSyntaxError, meta
from sqlalchemy.orm import Session

from .models import Contact, Form

#: the hidden field bots fill in and people do not see
HONEYPOT = "website"
#: contact fields a form may ask for besides the email address (custom fields too)
STANDARD_FORM_FIELDS = ("first_name", "last_name", "phone", "timezone", "locale")
#: reads template text for the names it uses (parsing only: nothing is rendered)
_PARSER = Environment()


def snippet_html(form: Form) -> str:
    """The embeddable HTML of *form*: a plain ``<form>`` posting to this server (no script), every
    value escaped. Needs an app context."""
    labels = {name: name.replace("_", " ").capitalize() for name in form.fields}
    return render_template(
        "public/form_embed.html",
        form=form,
        labels=labels,
        honeypot=HONEYPOT,
        action=f"{current_app.config['BASE_URL']}/f/{form.slug}",
    ).strip()


def confirmation_problem(session: Session | None, channel: str, name: str) -> str | None:
    """What to say when template *name* of *channel* cannot mail a double opt-in confirmation: there is none (stored
    or built in), or no part of it shows ``{{ confirm_url }}`` (nobody could confirm); None when it can."""
    from .engine.render import TemplateError, load_parts, missing_template

    try:
        parts = load_parts(session, channel, name)
    except TemplateError:  # neither stored nor built in
        return missing_template(session, channel, name)
    if not any(shows_confirm_url(source) for source in parts.values() if isinstance(source, str)):
        return (
            f"the {channel} template {name!r} never shows {{{{ confirm_url }}}}, the link that confirms, so nobody "
            "could confirm: add it to the template, or name one that has it"
        )
    return None


def shows_confirm_url(source: str) -> bool:
    """Whether the template text *source* reads ``confirm_url``."""
    try:
        return "confirm_url" in meta.find_undeclared_variables(_PARSER.parse(source))
    except TemplateSyntaxError:
        return False


def blanks_of(contact: Contact, cleaned: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a sign-up's cleaned values (*cleaned*) that fills in what *contact* has no value for yet:
    attributes it has (and custom fields it has) stay as they are."""
    stored = contact.fields or {}
    out = {k: v for k, v in cleaned.items() if k != "fields" and getattr(contact, k, None) in (None, "")}
    fields = {k: v for k, v in (cleaned.get("fields") or {}).items() if stored.get(k) in (None, "")}
    if fields:
        out["fields"] = fields
    return out


def held_changes(data: Mapping[str, Any], tags: list[str], *, existing: bool) -> dict[str, Any] | None:
    """What a double opt-in sign-up holds until it is confirmed: the values it posted (*data*, as posted, less the
    email) when the contact existed before it, and the form's *tags* always (a tag can put someone in a segment a
    broadcast goes to); None when nothing."""
    held: dict[str, Any] = {}
    contact = {k: v for k, v in data.items() if k != "email"}
    if existing and contact:
        held["contact"] = contact
    if tags:
        held["tags"] = list(tags)
    return held or None


__all__ = [
    "HONEYPOT",
    "STANDARD_FORM_FIELDS",
    "blanks_of",
    "confirmation_problem",
    "held_changes",
    "shows_confirm_url",
    "snippet_html",
]

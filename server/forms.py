"""Hosted sign-up forms, what their page (:mod:`server.web.forms`) and the API (:mod:`server.api.forms`) share:
the fields a form may ask for and the embeddable snippet."""

from __future__ import annotations

from flask import current_app, render_template

from .models import Form

#: the hidden field bots fill in and people do not see
HONEYPOT = "website"
#: contact fields a form may ask for besides the email address (custom fields too)
STANDARD_FORM_FIELDS = ("first_name", "last_name", "phone", "timezone", "locale")


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


__all__ = ["HONEYPOT", "STANDARD_FORM_FIELDS", "snippet_html"]

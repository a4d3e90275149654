"""Rendering message templates in Jinja2's immutable sandbox."""
from __future__ import annotations

from typing import Any, Mapping

from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..models import Contact

_env = ImmutableSandboxedEnvironment(autoescape=False)
_html_env = ImmutableSandboxedEnvironment(autoescape=True)

#: built-in templates until templates are stored per instance (issue #5)
BUILTIN: dict[str, dict[str, str]] = {
    "welcome": {
        "subject": "Welcome{% if contact.first_name %}, {{ contact.first_name }}{% endif %}!",
        "text": "Hello {{ contact.first_name or 'there' }},\n\nthanks for signing up.\n",
        "html": "<p>Hello {{ contact.first_name or 'there' }},</p><p>thanks for signing up.</p>",
    },
}


def contact_data(contact: Contact | None) -> dict[str, Any]:
    """Plain data only: templates never see model objects."""
    if contact is None:
        return {}
    data = dict(contact.fields or {})
    for name in ("email", "phone", "first_name", "last_name", "external_id", "stage", "score", "timezone", "locale"):
        data[name] = getattr(contact, name)
    return data


def render_message(template: str, *, contact: Contact | None, data: Mapping[str, Any]) -> tuple[str, str, str | None]:
    parts = BUILTIN.get(template, {"subject": template, "text": ""})
    ctx = {"contact": contact_data(contact), **{k: v for k, v in data.items() if k != "contact"}}
    subject = _env.from_string(parts["subject"]).render(ctx)
    text = _env.from_string(parts.get("text", "")).render(ctx)
    html = _html_env.from_string(parts["html"]).render(ctx) if parts.get("html") else None
    return subject, text, html

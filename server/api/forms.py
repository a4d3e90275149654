"""/api/v1/forms: hosted sign-up forms and their embeddable snippet."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from sqlalchemy import select

from ..contacts import InvalidInput, iso
from ..contacts.fields import definitions
from ..db import get_session
from ..forms import STANDARD_FORM_FIELDS, confirmation_problem, snippet_html
from ..models import Form
from . import bp
from .common import remove, save, text
from .spec import ID, TIMESTAMP, NotFound, Refused, endpoint, schema

SLUG = text(
    64,
    min_length=1,
    pattern=r"^(?!confirm$)[a-z0-9][a-z0-9-]*$",
    pattern_hint="be lowercase letters, digits and - (not 'confirm')",
)
FORM_FIELDS = {
    "name": text(255),
    "channel": text(64, min_length=1, pattern=r"^[a-z][a-z0-9_]*$", pattern_hint="be a channel name"),
    "wording": text(20000, description="the consent text next to the checkbox; stored with each consent"),
    "double_opt_in": {"type": "boolean"},
    "fields": {
        "type": "array",
        "maxItems": 20,
        "items": text(64, min_length=1),
        "description": "contact attributes besides email: first_name, last_name, phone, or custom fields",
    },
    "tags": {"type": "array", "maxItems": 20, "items": text(128, min_length=1)},
    "redirect_url": text(
        2048,
        nullable=True,
        pattern=r"^https?://[^\s]+$",  # as the admin page's: a line break would break the public form's redirect
        pattern_hint="be an http(s) URL without spaces or line breaks",
    ),
    "confirm_template": text(255, min_length=1),
}
FORM_INPUT = schema(
    "FormInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["slug"],
        "properties": {"slug": SLUG, **FORM_FIELDS},
    },
)
FORM_UPDATE = schema("FormUpdate", {"type": "object", "additionalProperties": False, "properties": FORM_FIELDS})
FORM = schema(
    "Form",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "slug": {"type": "string"},
            **{
                k: {"type": v.get("type", "string"), **({"nullable": True} if v.get("nullable") else {})}
                for k, v in FORM_FIELDS.items()
            },
            "url": {"type": "string"},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
)


def form_dict(form: Form) -> dict[str, Any]:
    from flask import current_app

    return {
        "id": form.id,
        "slug": form.slug,
        "name": form.name,
        "channel": form.channel,
        "wording": form.wording,
        "double_opt_in": form.double_opt_in,
        "fields": list(form.fields),
        "tags": list(form.tags),
        "redirect_url": form.redirect_url,
        "confirm_template": form.confirm_template,
        "url": f"{current_app.config['BASE_URL']}/f/{form.slug}",
        "created_at": iso(form.created_at),
        "updated_at": iso(form.updated_at),
    }


def _get(slug: str) -> Form:
    form = get_session().scalar(select(Form).where(Form.slug == slug))
    if form is None:
        raise NotFound(f"there is no form {slug!r}")
    return form


_DEFAULT_CONFIRM = getattr(Form.__table__.c.confirm_template.default, "arg", "")


def _apply(form: Form, body: dict[str, Any]) -> None:
    if "fields" in body:
        known = set(STANDARD_FORM_FIELDS) | set(definitions(get_session()))
        for i, name in enumerate(body["fields"]):
            if name not in known:
                raise InvalidInput(
                    f"fields[{i}]",
                    f"{name!r} is neither a contact attribute ({', '.join(STANDARD_FORM_FIELDS)}) nor a custom field",
                )
    for name in FORM_FIELDS:
        if name in body:
            setattr(form, name, body[name])
    confirm = form.confirm_template or _DEFAULT_CONFIRM  # a new row has the column's default only once stored
    if form.double_opt_in and (problem := confirmation_problem(get_session(), form.channel, confirm)):
        raise InvalidInput("confirm_template", problem)  # every sign-up's confirmation would fail to send


@endpoint(
    bp,
    "GET",
    "/forms",
    summary="List forms",
    tag="forms",
    responses={200: ("every form", {"type": "array", "items": FORM})},
)
def list_forms():
    return jsonify([form_dict(f) for f in get_session().scalars(select(Form).order_by(Form.slug))])


@endpoint(
    bp, "POST", "/forms", summary="Create a form", tag="forms", body=FORM_INPUT, responses={201: ("created", FORM)}
)
def post_form(body: dict[str, Any]):
    session = get_session()
    if session.scalar(select(Form.id).where(Form.slug == body["slug"])) is not None:
        raise Refused(409, "Conflict", f"a form {body['slug']!r} exists", field="slug")
    # a hosted form asks for an email address: by default it subscribes to the channel addressing that field
    default = current_app.extensions["nudge.plugins"].channel_for_field("email") or ""
    form = Form(slug=body["slug"], name="", channel=default, wording="", double_opt_in=True, fields=[], tags=[])
    _apply(form, body)
    save(form, "form.created", "form", form.slug)
    return jsonify(form_dict(form)), 201


@endpoint(bp, "GET", "/forms/{slug}", summary="Get a form", tag="forms", responses={200: ("the form", FORM)})
def get_form(slug: str):
    return jsonify(form_dict(_get(slug)))


@endpoint(
    bp,
    "PATCH",
    "/forms/{slug}",
    summary="Update a form",
    tag="forms",
    body=FORM_UPDATE,
    responses={200: ("the form", FORM)},
)
def patch_form(slug: str, body: dict[str, Any]):
    form = _get(slug)
    _apply(form, body)
    save(form, "form.updated", "form", form.slug, changed=sorted(body))
    return jsonify(form_dict(form))


@endpoint(bp, "DELETE", "/forms/{slug}", summary="Delete a form", tag="forms", responses={204: ("deleted", None)})
def delete_form(slug: str):
    return remove(_get(slug), "form.deleted", "form", slug)


@endpoint(
    bp,
    "GET",
    "/forms/{slug}/snippet",
    summary="The form's embeddable HTML",
    tag="forms",
    responses={
        200: (
            "paste this into any page",
            schema("FormSnippet", {"type": "object", "properties": {"html": {"type": "string"}}}),
        )
    },
)
def form_snippet(slug: str):
    return jsonify({"html": snippet_html(_get(slug))})

"""/api/v1/templates: message templates per channel (subject, html, txt … parts of Jinja source)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import jsonify
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import select

from ..contacts import InvalidInput, iso
from ..db import get_session
from ..engine import render
from ..models import Template
from ..usage import confirming_forms, lost_confirm_url, uses_of
from . import bp
from .common import remove, save, text
from .pagination import filtered_page, sort_param
from .spec import CURSOR, ID, LIMIT, TIMESTAMP, Refused, endpoint, get_or_404, page_of, query_param, schema

NAME = text(
    255,
    min_length=1,
    pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    pattern_hint="be letters, digits, _ . and - (e.g. welcome_1)",
)
PARTS = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 10,
    "additionalProperties": text(200_000),
    "description": "part name (subject, html, txt …) → Jinja source",
}
TEMPLATE_INPUT = schema(
    "TemplateInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["channel", "name", "parts"],
        "properties": {"channel": text(64, min_length=1), "name": NAME, "parts": PARTS},
    },
)
TEMPLATE_UPDATE = schema(
    "TemplateUpdate",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["parts"],
        "properties": {"name": NAME, "parts": PARTS},
    },
)
TEMPLATE = schema(
    "Template",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "channel": {"type": "string"},
            "name": {"type": "string"},
            "parts": {"type": "object"},
            "updated_at": TIMESTAMP,
        },
    },
)
_fallback_env = ImmutableSandboxedEnvironment()


def template_dict(row: Template) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": row.channel,
        "name": row.name,
        "parts": row.parts,
        "updated_at": iso(row.updated_at),
    }


def check_template(channel: str, parts: Mapping[str, str]) -> None:
    """Validate with the engine's renderer when it offers ``validate_template``, else by a Jinja parse.

    :raises Refused: 422 naming the first problem's part and line, with all problems listed.
    """
    validate = getattr(render, "validate_template", None)
    try:
        if validate is not None:
            problems = [(p.part, p.line, p.message) for p in validate(channel, parts)]
        else:
            problems = []
            for part, source in parts.items():
                try:
                    _fallback_env.parse(source)
                except TemplateSyntaxError as exc:
                    problems.append((part, exc.lineno, exc.message or str(exc)))
    except RecursionError:  # Jinja reads nesting ("{{ {{ {{ …", "((((…") by recursion
        part = _too_deep(parts)
        raise InvalidInput(
            f"parts.{part}", f"parts.{part} nests too deeply to be read as a template; flatten its brackets"
        ) from None
    if problems:
        part, line, message = problems[0]
        # the renderer names the channel itself as part "channel": the field is the body's channel, not a part
        field = "channel" if part == "channel" and part not in parts else f"parts.{part}"
        where = field + (f" line {line}" if line else "")
        raise Refused(
            422,
            "Invalid template",
            f"{where}: {message}",
            field=field,
            problems=[{"part": p, "line": ln, "message": m} for p, ln, m in problems],
        )


def _too_deep(parts: Mapping[str, str]) -> str:
    """The first part whose parse overflows the stack (the first part when none does on its own)."""
    for part, source in parts.items():
        try:
            _fallback_env.parse(source)
        except RecursionError:
            return part
        except TemplateSyntaxError:
            continue
    return next(iter(parts))


@endpoint(
    bp,
    "GET",
    "/templates",
    summary="List templates",
    tag="templates",
    query=[query_param("channel", text(64)), sort_param(["id", "updated_at"], "id"), LIMIT, CURSOR],
    responses={200: ("a page", page_of("Template"))},
)
def list_templates(query: dict[str, Any]):
    return jsonify(filtered_page(Template, query, ("channel",), template_dict))


@endpoint(
    bp,
    "POST",
    "/templates",
    summary="Create a template",
    tag="templates",
    body=TEMPLATE_INPUT,
    responses={201: ("created", TEMPLATE)},
)
def post_template(body: dict[str, Any]):
    session = get_session()
    check_template(body["channel"], body["parts"])
    if session.scalar(select(Template.id).where(Template.channel == body["channel"], Template.name == body["name"])):
        raise Refused(
            409,
            "Conflict",
            f"a {body['channel']} template named {body['name']!r} exists; PUT /templates/{{id}} changes it",
            field="name",
        )
    row = Template(channel=body["channel"], name=body["name"], parts=body["parts"])
    save(row, "template.created", "template", lambda: row.id)
    return jsonify(template_dict(row)), 201


@endpoint(
    bp,
    "GET",
    "/templates/{template_id}",
    summary="Get a template",
    tag="templates",
    responses={200: ("the template", TEMPLATE)},
)
def get_template(template_id: int):
    return jsonify(template_dict(get_or_404(Template, template_id, "template")))


@endpoint(
    bp,
    "PUT",
    "/templates/{template_id}",
    summary="Replace a template's parts (and name)",
    tag="templates",
    body=TEMPLATE_UPDATE,
    responses={200: ("the template", TEMPLATE)},
)
def put_template(template_id: int, body: dict[str, Any]):
    session = get_session()
    row = get_or_404(Template, template_id, "template")
    check_template(row.channel, body["parts"])
    lost = lost_confirm_url(session, row.channel, row.name, body["parts"])
    if lost is not None:
        raise InvalidInput("parts", lost)
    if "name" in body and body["name"] != row.name:
        if session.scalar(select(Template.id).where(Template.channel == row.channel, Template.name == body["name"])):
            raise InvalidInput("name", f"a {row.channel} template named {body['name']!r} exists")
        _refuse_if_used(session, row, "renamed")
        row.name = body["name"]
    row.parts = body["parts"]
    save(row, "template.updated", "template", row.id)
    return jsonify(template_dict(row))


@endpoint(
    bp,
    "DELETE",
    "/templates/{template_id}",
    summary="Delete a template",
    tag="templates",
    responses={204: ("deleted", None)},
)
def delete_template(template_id: int):
    row = get_or_404(Template, template_id, "template")
    _refuse_if_used(get_session(), row, "deleted")
    return remove(row, "template.deleted", "template", template_id)


def _refuse_if_used(session: Any, row: Template, verb: str) -> None:
    """Refuse to delete or rename *row* (*verb*) while what names it would then find no template: a rule sending
    it, a double opt-in form mailing its confirmation with it (unless a built-in of its name takes over).

    :raises Refused: 409, naming them.
    """
    uses = uses_of(session, row.channel, row.name)
    if uses:  # every send of it would fail
        raise Refused(
            409,
            "Conflict",
            f"the rule(s) {', '.join(repr(str(u)) for u in uses)} send the {row.channel} template {row.name!r}, "
            f"so it cannot be {verb}; change them to send another template first",
            rules=[str(u) for u in uses],
        )
    forms = confirming_forms(session, row)
    if forms:  # every sign-up's confirmation would fail to send
        raise Refused(
            409,
            "Conflict",
            f"the double opt-in form(s) {', '.join(repr(f) for f in forms)} mail their confirmation with the "
            f"{row.channel} template {row.name!r}, so it cannot be {verb}; change their confirmation template first "
            "(PATCH /forms/{slug})",
            forms=forms,
        )

"""/api/v1/fields: custom contact field definitions (typed)."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from sqlalchemy import select

from ..contacts import audit, define_field, iso
from ..contacts.fields import FIELD_NAME
from ..db import get_session
from ..models import Contact, FieldDefinition, FieldType
from . import bp
from .common import actor, text
from .spec import ID, TIMESTAMP, NotFound, endpoint, schema

TYPES = [t.value for t in FieldType]
FIELD_INPUT = schema(
    "FieldInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "type"],
        "properties": {
            "name": text(
                64, min_length=1, pattern=FIELD_NAME.pattern, pattern_hint="be lowercase letters, digits and _"
            ),
            "type": {"type": "string", "enum": TYPES},
            "label": text(255),
        },
    },
)
FIELD = schema(
    "FieldDefinition",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "name": {"type": "string"},
            "type": {"type": "string", "enum": TYPES},
            "label": {"type": "string"},
            "created_at": TIMESTAMP,
        },
    },
)


def _dict(row: FieldDefinition) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "type": row.type, "label": row.label, "created_at": iso(row.created_at)}


@endpoint(
    bp,
    "GET",
    "/fields",
    summary="List custom fields",
    tag="contacts",
    responses={200: ("every definition", {"type": "array", "items": FIELD})},
)
def list_fields():
    return jsonify([_dict(r) for r in get_session().scalars(select(FieldDefinition).order_by(FieldDefinition.name))])


@endpoint(
    bp,
    "POST",
    "/fields",
    summary="Define a custom field",
    tag="contacts",
    body=FIELD_INPUT,
    responses={201: ("created", FIELD)},
)
def post_field(body: dict[str, Any]):
    session = get_session()
    row = define_field(session, body["name"], body["type"], body.get("label", ""))
    audit(session, actor(), "field.created", "field", row.name, type=row.type)
    session.commit()
    return jsonify(_dict(row)), 201


@endpoint(
    bp,
    "DELETE",
    "/fields/{name}",
    summary="Delete a custom field and its values",
    tag="contacts",
    responses={204: ("deleted", None)},
)
def delete_field(name: str):
    session = get_session()
    row = session.scalar(select(FieldDefinition).where(FieldDefinition.name == name))
    if row is None:
        raise NotFound(f"there is no custom field named {name!r}")
    for contact in session.scalars(select(Contact).execution_options(yield_per=500)):
        if name in (contact.fields or {}):
            contact.fields = {k: v for k, v in contact.fields.items() if k != name}
    session.delete(row)
    audit(session, actor(), "field.deleted", "field", name)
    session.commit()
    return "", 204

"""/api/v1/segments: named conditions in the rules language, with live counts and members."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from sqlalchemy import select

from ..contacts import InvalidInput, contact_dict, iso
from ..db import get_session
from ..engine.scope import Scope
from ..models import Contact, Segment
from ..segments import NAME, compile_condition, count, iter_members, members_clause
from ..sqlwhere import Unsupported
from ..usage import loop_problem, users_of
from . import bp
from .common import remove, save, text
from .pagination import paginate
from .spec import CURSOR, ID, LIMIT, TIMESTAMP, NotFound, Refused, endpoint, page_of, schema

CONDITION = text(
    20000, min_length=1, description='a condition as in rules, e.g. tag == "vip" and did order.paid within 30d'
)
SEGMENT_INPUT = schema(
    "SegmentInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "condition"],
        "properties": {
            "name": text(
                128, min_length=1, pattern=NAME.pattern, pattern_hint="be letters, digits, spaces, _ . - (at most 128)"
            ),
            "condition": CONDITION,
            "description": text(2000),
        },
    },
)
SEGMENT_UPDATE = schema(
    "SegmentUpdate",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {"condition": CONDITION, "description": text(2000)},
    },
)
PREVIEW_INPUT = schema(
    "SegmentPreview",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["condition"],
        "properties": {"condition": CONDITION},
    },
)
SEGMENT = schema(
    "Segment",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "name": {"type": "string"},
            "condition": {"type": "string"},
            "description": {"type": "string"},
            "count": {"type": "integer", "nullable": True},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
        },
    },
)
COUNT = schema(
    "SegmentCount",
    {
        "type": "object",
        "properties": {"count": {"type": "integer"}, "warnings": {"type": "array", "items": {"type": "string"}}},
    },
)


def _get(name: str) -> Segment:
    row = get_session().scalar(select(Segment).where(Segment.name == name))
    if row is None:
        raise NotFound(f"there is no segment named {name!r}")
    return row


def _check_condition(session: Any, name: str, condition: str) -> None:
    """Refuse a condition that does not compile, or that would put segment *name* in itself (422)."""
    loop = loop_problem(session, compile_condition(session, condition).tree, name)
    if loop:
        raise InvalidInput("condition", loop)


def _dict(row: Segment, *, with_count: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "condition": row.condition,
        "description": row.description,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
    if with_count:
        compiled = compile_condition(get_session(), row.condition)
        out["count"] = count(get_session(), compiled.tree, scope=Scope.of)
        out["warnings"] = compiled.warnings
    return out


@endpoint(
    bp,
    "GET",
    "/segments",
    summary="List segments",
    tag="segments",
    responses={200: ("every segment (without counts)", {"type": "array", "items": SEGMENT})},
)
def list_segments():
    rows = get_session().scalars(select(Segment).order_by(Segment.name))
    return jsonify([_dict(r, with_count=False) for r in rows])


@endpoint(
    bp,
    "POST",
    "/segments",
    summary="Create a segment",
    tag="segments",
    body=SEGMENT_INPUT,
    responses={201: ("created, with its live count", SEGMENT)},
)
def post_segment(body: dict[str, Any]):
    session = get_session()
    if session.scalar(select(Segment.id).where(Segment.name == body["name"])) is not None:
        raise Refused(409, "Conflict", f"a segment named {body['name']!r} exists", field="name")
    _check_condition(session, body["name"], body["condition"])
    row = Segment(name=body["name"], condition=body["condition"], description=body.get("description", ""))
    save(row, "segment.created", "segment", row.name)
    return jsonify(_dict(row)), 201


@endpoint(
    bp,
    "POST",
    "/segments/preview",
    summary="Count the contacts a condition selects, without saving it",
    tag="segments",
    body=PREVIEW_INPUT,
    responses={200: ("the live count", COUNT)},
)
def preview_segment(body: dict[str, Any]):
    compiled = compile_condition(get_session(), body["condition"])
    return jsonify({"count": count(get_session(), compiled.tree, scope=Scope.of), "warnings": compiled.warnings})


@endpoint(
    bp,
    "GET",
    "/segments/{name}",
    summary="A segment with its live count",
    tag="segments",
    responses={200: ("the segment", SEGMENT)},
)
def get_segment(name: str):
    return jsonify(_dict(_get(name)))


@endpoint(
    bp,
    "PATCH",
    "/segments/{name}",
    summary="Change a segment's condition or description",
    tag="segments",
    body=SEGMENT_UPDATE,
    responses={200: ("the segment", SEGMENT)},
)
def patch_segment(name: str, body: dict[str, Any]):
    session = get_session()
    row = _get(name)
    if "condition" in body:
        _check_condition(session, name, body["condition"])
        row.condition = body["condition"]
    if "description" in body:
        row.description = body["description"]
    save(row, "segment.updated", "segment", row.name, changed=sorted(body))
    return jsonify(_dict(row))


@endpoint(
    bp, "DELETE", "/segments/{name}", summary="Delete a segment", tag="segments", responses={204: ("deleted", None)}
)
def delete_segment(name: str):
    row = _get(name)
    users = users_of(get_session(), name)
    if users:
        raise Refused(
            409,
            "Segment in use",
            f"segment {name!r} is used by {', '.join(users)}; take it out of those first "
            "(a rule's active version and its draft both count)",
        )
    return remove(row, "segment.deleted", "segment", name)


@endpoint(
    bp,
    "GET",
    "/segments/{name}/members",
    summary="The contacts in a segment now",
    tag="segments",
    query=[LIMIT, CURSOR],
    responses={200: ("a page, by id", page_of("Contact"))},
)
def segment_members(name: str, query: dict[str, Any]):
    session = get_session()
    tree = compile_condition(session, _get(name).condition).tree
    try:
        stmt = select(Contact).where(members_clause(session, tree))
    except Unsupported:  # evaluated in Python: page over the member ids
        ids = [c.id for c in iter_members(session, tree, scope=Scope.of)]
        stmt = select(Contact).where(Contact.id.in_(ids))
    rows, cursor = paginate(session, stmt, Contact, sort="id", limit=query["limit"], cursor=query.get("cursor"))
    return jsonify({"data": [contact_dict(c) for c in rows], "next_cursor": cursor})

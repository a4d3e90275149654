"""/api/v1/audit: the log of admin actions."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from ..contacts import iso
from ..models import AuditEntry
from . import bp
from .common import text
from .pagination import filtered_page
from .spec import CURSOR, ID, LIMIT, TIMESTAMP, endpoint, page_of, query_param, schema

schema(
    "AuditEntry",
    {
        "type": "object",
        "properties": {
            "id": ID,
            "at": TIMESTAMP,
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "target_type": {"type": "string"},
            "target_id": {"type": "string", "nullable": True},
            "detail": {"type": "object"},
        },
    },
)


@endpoint(
    bp,
    "GET",
    "/audit",
    summary="The audit log, newest first",
    tag="audit",
    query=[
        query_param("target_type", text(32)),
        query_param("target_id", text(64)),
        query_param("action", text(64)),
        LIMIT,
        CURSOR,
    ],
    responses={200: ("a page", page_of("AuditEntry"))},
)
def list_audit(query: dict[str, Any]):
    return jsonify(
        filtered_page(
            AuditEntry,
            {**query, "sort": "-id"},
            ("target_type", "target_id", "action"),
            lambda e: {
                "id": e.id,
                "at": iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "target_type": e.target_type,
                "target_id": e.target_id,
                "detail": e.detail,
            },
        )
    )

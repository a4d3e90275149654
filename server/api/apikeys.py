"""/api/v1/apikeys: list, create and revoke API keys (admin scope); keys and hashes are never shown."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from ..apikeys import find_key, key_dict, list_keys, new_key, parse_expiry, revoke
from ..contacts import InvalidInput
from ..db import get_session
from . import bp
from .common import actor, text
from .spec import TIMESTAMP, NotFound, endpoint, schema

NULLABLE_TIME = {**TIMESTAMP, "nullable": True}
API_KEY = schema(
    "ApiKey",
    {
        "type": "object",
        "properties": {
            "prefix": {"type": "string", "description": "the public part of the key, used to revoke it"},
            "name": {"type": "string"},
            "scope": {"type": "string", "enum": ["ingest", "admin"]},
            "created_at": TIMESTAMP,
            "last_used_at": NULLABLE_TIME,
            "expires_at": NULLABLE_TIME,
            "revoked_at": NULLABLE_TIME,
            "state": {"type": "string", "enum": ["active", "expired", "revoked"]},
        },
    },
)
NEW_KEY = schema(
    "NewApiKey",
    {
        "type": "object",
        "properties": {
            "key": {"type": "string", "description": "the key itself: shown this once, never again"},
            "api_key": API_KEY,
        },
    },
)
KEY_INPUT = schema(
    "ApiKeyInput",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["scope"],
        "properties": {
            "scope": {"type": "string", "enum": ["ingest", "admin"]},
            "name": text(255),
            "expires": text(64, description="90d, 12h, 4w, 2027-01-31 or 2027-01-31T12:00:00Z"),
        },
    },
)


@endpoint(
    bp,
    "GET",
    "/apikeys",
    summary="List API keys",
    tag="apikeys",
    responses={200: ("every key, oldest first", {"type": "array", "items": API_KEY})},
)
def list_apikeys():
    return jsonify([key_dict(row) for row in list_keys(get_session())])


@endpoint(
    bp,
    "POST",
    "/apikeys",
    summary="Create an API key",
    tag="apikeys",
    body=KEY_INPUT,
    responses={201: ("created; the key is in the answer only", NEW_KEY)},
)
def post_apikey(body: dict[str, Any]):
    expires_at = None
    if body.get("expires"):
        try:
            expires_at = parse_expiry(body["expires"])
        except ValueError as exc:
            raise InvalidInput("expires", str(exc)) from None
        except OverflowError:  # e.g. 9999-12-31T23:00:00-14:00: past the last day a date-time holds, in UTC
            raise InvalidInput(
                "expires", f"expiry {body['expires']!r} is past the year 9999; give an earlier date or a span like 90d"
            ) from None
    key, row = new_key(get_session(), body["scope"], body.get("name") or "", expires_at, actor())
    return jsonify({"key": key, "api_key": key_dict(row)}), 201


@endpoint(
    bp,
    "DELETE",
    "/apikeys/{prefix}",
    summary="Revoke an API key (at once)",
    tag="apikeys",
    responses={200: ("revoked (or revoked already)", API_KEY)},
)
def revoke_apikey(prefix: str):
    session = get_session()
    row = find_key(session, prefix)
    if row is None:
        raise NotFound(f"there is no API key with prefix {prefix!r}; GET /apikeys lists them")
    revoke(session, row, actor())
    return jsonify(key_dict(row))

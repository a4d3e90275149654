"""RFC 9457 problem details: every API (and plugin endpoint) error says what is wrong and which field."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response

"""GET /healthz: can this process reach its database and Redis?"""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from ..db import get_db
from ..queue import get_queue

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    checks: dict[str, dict[str, object]] = {}
    try:
        with get_db().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as exc:  # report any driver failure, never raise from a health check
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        get_queue().redis.ping()
        checks["redis"] = {"ok": True}
    except Exception as exc:
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
    ok = all(c["ok"] for c in checks.values())
    return jsonify({"status": "ok" if ok else "unavailable", "checks": checks}), 200 if ok else 503

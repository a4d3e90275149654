"""GET /healthz: can this process reach its database and Redis, and is delivery getting through?

``status`` is ``ok`` (200), ``degraded`` (200: the node can serve, but sends fail, work stalls or
is parked; a load balancer keeps it) or ``unavailable`` (503). ``?strict=1`` answers 503 for
``degraded`` too, for monitors that should page. ``?details=1`` with an admin API key adds the
figures and reasons; without one it is refused. No personal data either way.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import text

from ..db import get_db, get_session
from ..queue import get_queue

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    details = _flag("details")
    if details:
        refused = _admin_only()
        if refused is not None:
            return refused
    checks: dict[str, dict[str, Any]] = {}
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
    if checks["database"]["ok"]:
        checks["delivery"] = _delivery(details)
    status = "ok" if all(c["ok"] for c in checks.values()) else "degraded"
    if not (checks["database"]["ok"] and checks["redis"]["ok"]):
        status = "unavailable"
    code = 503 if status == "unavailable" or (status == "degraded" and _flag("strict")) else 200
    return jsonify({"status": status, "checks": checks}), code


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() in ("1", "true", "yes")


def _admin_only() -> Any:
    """Details need an admin API key: the answer says how the instance is doing inside."""
    from ..auth import verify_api_key
    from ..models import Scope
    from ..problems import problem

    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return problem(
            401,
            "Missing API key",
            "?details=1 needs 'Authorization: Bearer <admin key>'; create one with: nudge apikey create --scope admin",
        )
    session = get_session()
    try:
        key = verify_api_key(session, token.strip())
        scope = None if key is None else key.scope
    except Exception:  # the database is down: no way to check the key, and nothing to detail
        return problem(503, "Unavailable", "the database cannot be reached to check the key")
    finally:
        session.rollback()  # SQLite: the session's BEGIN IMMEDIATE must not block the checks below
    if scope is None:
        return problem(401, "Invalid API key", "the key is unknown or revoked")
    if scope != Scope.ADMIN.value:
        return problem(403, "Insufficient scope", f"?details=1 needs a key with scope admin, not {scope}")
    return None


def _delivery(details: bool) -> dict[str, Any]:
    from ..engine import health
    from ..models import utcnow

    session = get_session()
    try:
        now = utcnow()
        channels = health.channel_report(session, now)
        delivery = health.delivery_report(session, now)
        engine = health.engine_report(session, now)
    except Exception as exc:  # e.g. a schema not migrated yet: say so, do not fail the whole check
        session.rollback()
        return {"ok": False, "error": type(exc).__name__}
    finally:
        session.rollback()  # read only; end the transaction (SQLite: BEGIN IMMEDIATE holds the write lock)
    problems = health.problems(channels, delivery, engine)
    out: dict[str, Any] = {"ok": not problems}
    if details:
        out.update({"problems": problems, "channels": channels, "sends": delivery, "engine": engine})
    return out

"""``POST /hooks/email/bounce``: bounces and complaints from the mail server or provider.

Authenticated with the shared secret ``NUDGE_EMAIL_WEBHOOK_SECRET``, sent as
``Authorization: Bearer <secret>`` (or ``?token=<secret>`` for senders that can only
set a URL). A hard bounce or a complaint suppresses the address; every report
becomes an event (``email.bounced``, ``email.complained``, ``email.delivered``).
"""
from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request

from server.api.problems import problem

from . import reports

MAX_BODY = 2 * 1024 * 1024


def make_blueprint() -> Blueprint:
    bp = Blueprint("email_hooks", __name__, url_prefix="/hooks/email")
    bp.add_url_rule("/bounce", "bounce", bounce, methods=["POST"])
    return bp


def _authorised(secret: str) -> bool:
    header = request.headers.get("Authorization", "")
    sent = header[7:].strip() if header.lower().startswith("bearer ") else request.args.get("token", "")
    return hmac.compare_digest(sent.encode(), secret.encode())


def bounce():
    pm = current_app.extensions["nudge.plugins"]
    secret = (pm.settings.get("email") or {}).get("EMAIL_WEBHOOK_SECRET") or \
        current_app.config.get("EMAIL_WEBHOOK_SECRET")
    if not secret:
        return problem(404, "Not enabled", "set NUDGE_EMAIL_WEBHOOK_SECRET to receive bounces and complaints here")
    if not _authorised(str(secret)):
        return problem(401, "Unauthorised", "send the NUDGE_EMAIL_WEBHOOK_SECRET as 'Authorization: Bearer <secret>'")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return problem(413, "Body too large", f"a report may be at most {MAX_BODY} bytes")
    try:
        found = reports.parse(request.get_data(), request.content_type or "")
    except reports.ReportError as exc:
        return problem(422, "Unreadable report", str(exc), field="body")
    channel = pm.channel("email", current_app.config)
    events = 0
    for report in found:
        status = channel.status(report.status, address=report.address, provider_id=report.message_id,
                                suppress=report.suppress, detail=report.detail, props=report.props)
        if pm.record_status(status) is not None:
            events += 1
    return jsonify({"reports": len(found), "events": events})

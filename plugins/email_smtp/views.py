"""The email plugin's endpoints for the mail server or provider, authenticated with ``NUDGE_EMAIL_WEBHOOK_SECRET``.

The secret is sent as ``Authorization: Bearer <secret>`` (or ``?token=<secret>`` for senders that can
only set a URL).

``POST /hooks/email/bounce``: bounces and complaints. A hard bounce or a complaint suppresses the
address; every report becomes an event (``email.bounced``, ``email.complained``, ``email.delivered``).

``POST /hooks/email/unsubscribe``: mail sent to ``NUDGE_UNSUBSCRIBE_MAILTO`` (the ``mailto:`` of
``List-Unsubscribe``), posted whole (``message/rfc822``) by an MTA pipe, or as a form or JSON with a
``subject`` field by an inbound-mail provider. The subject carries the message's signed unsubscribe
token; the opt-out is recorded exactly as the one-click ``POST /u/<token>`` records it.
"""

from __future__ import annotations

import hmac
from email import message_from_bytes, policy
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from server.sdk import JsonInputError, channel, parse_json, problem, record_status
from server.sdk import unsubscribe as record_unsubscribe

from . import reports

MAX_BODY = 2 * 1024 * 1024


def make_blueprint() -> Blueprint:
    bp = Blueprint("email_hooks", __name__, url_prefix="/hooks/email")
    bp.add_url_rule("/bounce", "bounce", bounce, methods=["POST"])
    bp.add_url_rule("/unsubscribe", "unsubscribe", unsubscribe, methods=["POST"])
    return bp


CHANNEL = "email"


def _setting(key: str) -> Any:
    """A setting of the email channel as validated at start-up, else as the app has it now."""
    return channel(CHANNEL).config.get(key) or current_app.config.get(key)


def _refused(purpose: str) -> Response | None:
    """The answer when the caller may not post here (or the endpoint is off), else None."""
    secret = _setting("EMAIL_WEBHOOK_SECRET")
    if not secret:
        return problem(404, "Not enabled", f"set NUDGE_EMAIL_WEBHOOK_SECRET to receive {purpose} here")
    header = request.headers.get("Authorization", "")
    sent = header[7:].strip() if header.lower().startswith("bearer ") else request.args.get("token", "")
    if not hmac.compare_digest(sent.encode(), str(secret).encode()):
        return problem(401, "Unauthorised", "send the NUDGE_EMAIL_WEBHOOK_SECRET as 'Authorization: Bearer <secret>'")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _too_large()
    # A chunked body has no Content-Length: the stream is read up to one byte past the limit, no further (the
    # app's own limit, 1 MB, cut it short silently), and cached for the views' get_data() and form.
    request.max_content_length = MAX_BODY + 1
    if len(request.get_data(cache=True)) > MAX_BODY:
        return _too_large()
    return None


def _too_large() -> Response:
    return problem(413, "Body too large", f"a request may be at most {MAX_BODY} bytes")


def bounce():
    refused = _refused("bounces and complaints")
    if refused is not None:
        return refused
    try:
        found = reports.parse(request.get_data(), request.content_type or "")
    except reports.ReportError as exc:
        return problem(422, "Unreadable report", str(exc), field="body")
    email = channel(CHANNEL)
    events = 0
    for report in found:
        status = email.status(
            report.status,
            address=report.address,
            provider_id=report.message_id,
            suppress=report.suppress,
            detail=report.detail,
            props=report.props,
        )
        events += record_status(status).contacts
    return jsonify({"reports": len(found), "events": events})


def _subject() -> str:
    """The Subject of the posted mail: a whole message, a form field or a JSON field named ``subject``."""
    kind = (request.mimetype or "").lower()
    if kind == "application/json":
        try:
            data = parse_json(request.get_data())
        except JsonInputError:  # not JSON, or nested too deep (get_json let that be a server error)
            data = None
        fields = {str(k).lower(): v for k, v in data.items()} if isinstance(data, dict) else {}
        return str(fields.get("subject") or "")
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form.get("subject") or request.form.get("Subject") or ""
    return str(message_from_bytes(request.get_data(), policy=policy.default).get("Subject") or "")


def unsubscribe():
    if not _setting("UNSUBSCRIBE_MAILTO"):
        return problem(
            404, "Not enabled", "set NUDGE_UNSUBSCRIBE_MAILTO (and pipe its mail here) to process mailto: unsubscribes"
        )
    refused = _refused("mailto: unsubscribes")
    if refused is not None:
        return refused
    words = _subject().replace("\r", " ").replace("\n", " ").split()
    for word in words:  # mail clients may prefix "Re:" or add words of their own
        try:
            channel = record_unsubscribe(word, source="mailto")
        except ValueError:
            continue
        return jsonify({"unsubscribed": channel is not None, "channel": channel})
    return problem(
        422,
        "No unsubscribe token",
        "the Subject holds no valid unsubscribe token; mail to "
        "NUDGE_UNSUBSCRIBE_MAILTO must keep the subject of the List-Unsubscribe "
        "mailto: link",
        field="subject",
    )

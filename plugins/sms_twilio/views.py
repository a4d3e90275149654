"""Twilio's callbacks: delivery reports and incoming messages, both signed with the account's auth token."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from server.db import get_session
from server.engine.ingest import record_event
from server.models import ConsentStatus

from .channel import INBOUND_PATH, STATUS_PATH
from .phone import normalise
from .store import apply_status, find_contacts, hand_over, record_consent

bp = Blueprint("sms_twilio", __name__)

#: Twilio's own opt-out and opt-in keywords: a whole message, any case, surrounding spaces ignored
OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
OPT_IN = {"START", "UNSTOP", "YES"}
HELP = {"HELP", "INFO"}
DEFAULT_HELP = "Reply STOP to unsubscribe, START to subscribe again. Msg & data rates may apply."


def _verify_signature() -> None:
    """Abort with 403 unless ``X-Twilio-Signature`` matches the URL Twilio called and the posted form."""
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        abort(403)
    query = request.query_string.decode()
    public = current_app.config["BASE_URL"].rstrip("/") + request.path + (f"?{query}" if query else "")
    validator = RequestValidator(token)
    # the public URL is what Twilio was given; request.url covers a BASE_URL that differs from the Host used
    if not any(validator.validate(url, request.form, signature) for url in (public, request.url)):
        abort(403)


@bp.post(STATUS_PATH)
def status():
    _verify_signature()
    sid = request.form.get("MessageSid") or request.form.get("SmsSid")
    state = request.form.get("MessageStatus") or request.form.get("SmsStatus")
    if not sid or not state:
        return Response("MessageSid and MessageStatus are required\n", 400, mimetype="text/plain")
    apply_status(sid, state, request.form.get("ErrorCode") or None)
    return Response(status=204)


@bp.post(INBOUND_PATH)
def inbound():
    _verify_signature()
    body = request.form.get("Body", "")
    keyword = body.strip().upper()
    reply = MessagingResponse()
    try:
        phone = normalise(request.form.get("From", ""))
    except ValueError:  # a short code or alphanumeric sender: no contact to attach it to
        return _twiml(reply)
    session = get_session()
    contacts = find_contacts(session, phone)
    props = {"phone": phone, "body": body, "message_sid": request.form.get("MessageSid")}
    if keyword in OPT_OUT:
        ids = record_consent(session, contacts, ConsentStatus.REVOKED, f"sms:{keyword}", "sms.opted_out", props)
    elif keyword in OPT_IN:
        ids = record_consent(session, contacts, ConsentStatus.GRANTED, f"sms:{keyword}", "sms.opted_in", props)
    elif keyword in HELP:
        reply.message(current_app.config.get("SMS_HELP_TEXT") or DEFAULT_HELP)
        ids = []
    else:
        ids = [record_event(session, contact, "sms.replied", props, source="twilio").id for contact in contacts]
    session.commit()
    hand_over(ids)
    if not contacts:
        current_app.logger.info("inbound SMS %s matches no contact; nothing recorded",
                                request.form.get("MessageSid"))  # ids in logs, never the number
    return _twiml(reply)


def _twiml(reply: MessagingResponse) -> Response:
    return Response(str(reply), 200, mimetype="application/xml")

"""Twilio's callbacks: delivery reports and incoming messages, both signed with the account's auth token."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from server.sdk import raise_event, record_consent

from .keywords import read_keyword
from .phone import normalise
from .store import apply_status
from .twilio import CHANNEL, INBOUND_PATH, STATUS_PATH

bp = Blueprint("sms_twilio", __name__)

#: the longest incoming text taken: Twilio sends at most 1,600 characters (ten segments), with margin
MAX_INBOUND_BODY = 4096
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


def _nul_in(*fields: str) -> Response | None:
    """A 400 when one of the posted *fields* holds a NUL character: Twilio never sends one, and no database
    stores one in text (it was a server error)."""
    for key in fields:
        if any("\0" in value for value in request.form.getlist(key)):
            return Response(f"the field {key} contains a NUL character\n", 400, mimetype="text/plain")
    return None


@bp.post(STATUS_PATH)
def status():
    _verify_signature()
    if (refused := _nul_in("MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "ErrorCode")) is not None:
        return refused
    sid = request.form.get("MessageSid") or request.form.get("SmsSid")
    state = request.form.get("MessageStatus") or request.form.get("SmsStatus")
    if not sid or not state:
        return Response("MessageSid and MessageStatus are required\n", 400, mimetype="text/plain")
    apply_status(sid, state, request.form.get("ErrorCode") or None)
    return Response(status=204)


@bp.post(INBOUND_PATH)
def inbound():
    """An incoming SMS: an opt-out, an opt-in, a help request, or a reply (``sms.replied``) for the rules.

    Twilio retries a callback it got no answer to, so each is handled once per ``MessageSid``.
    """
    _verify_signature()
    if (refused := _nul_in("MessageSid", "SmsSid")) is not None:
        return refused
    if len(request.form.get("Body", "")) > MAX_INBOUND_BODY:
        return Response(
            f"the field Body is longer than {MAX_INBOUND_BODY} characters; Twilio sends at most 1600\n",
            400,
            mimetype="text/plain",
        )
    body = request.form.get("Body", "").replace("\0", "")  # what a person texted is kept: a STOP counts
    receipt = request.form.get("MessageSid") or request.form.get("SmsSid") or None
    reply = MessagingResponse()
    try:
        phone = normalise(request.form.get("From", ""))
    except ValueError:  # a short code or alphanumeric sender: no contact to attach it to
        return _twiml(reply)
    keyword = read_keyword(body)
    props = {"phone": phone, "body": body, "message_sid": receipt}
    if keyword is not None and keyword.kind == "help":
        reply.message(current_app.config.get("SMS_HELP_TEXT") or DEFAULT_HELP)
        return _twiml(reply)
    if keyword is not None:
        opt_in = keyword.kind == "opt_in"
        recorded = record_consent(
            CHANNEL,
            phone,
            opt_in,
            source=f"sms:{keyword.word}",
            props=props,
            event="sms.opted_in" if opt_in else "sms.opted_out",
            receipt=receipt,
        )
    else:
        recorded = raise_event(CHANNEL, phone, "sms.replied", props, receipt=receipt)
    if recorded.duplicate:
        current_app.logger.info("SMS %s was handled before (a replayed callback); nothing changed", receipt)
    elif not recorded.contacts:
        kept = "; its opt-out is kept as a suppression" if keyword and keyword.kind == "opt_out" else ""
        current_app.logger.info("SMS %s matches no contact%s", receipt, kept)
    return _twiml(reply)


def _twiml(reply: MessagingResponse) -> Response:
    return Response(str(reply), 200, mimetype="application/xml")

"""A local HTTP server speaking Twilio's Messages API, and sending signed callbacks like Twilio does."""

from __future__ import annotations

import base64
import http.client
import json
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import parse_qsl, urlencode, urlsplit

from twilio.request_validator import RequestValidator

from . import LocalServer, QuietHandler

MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})/Messages\.json$")
ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})\.json$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass
class Reply:
    """What to answer to the next create request instead of creating a message."""

    status: int = 400
    code: int | None = None
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # read the request, then close the connection without a word


class _TwilioHandler(QuietHandler):
    server_owner: TwilioServer

    def do_GET(self):
        """Fetch an account (what the channel's connection test asks): the own one with the right credentials."""
        owner = self.server_owner
        match = ACCOUNT_PATH.match(self.path)
        if not match:
            return self._error(404, 20404, f"The requested resource {self.path} was not found")
        if self.headers.get("Authorization") != owner.basic_auth or match["sid"] != owner.account_sid:
            return self._error(401, 20003, "Authenticate")
        resource = {"sid": owner.account_sid, "friendly_name": "Nudge test account", "status": "active", "type": "Full"}
        self.answer(200, json.dumps(resource).encode())

    def do_POST(self):
        owner = self.server_owner
        body = self.read_body().decode()
        match = MESSAGES_PATH.match(self.path)
        if not match:
            return self._error(404, 20404, f"The requested resource {self.path} was not found")
        if self.headers.get("Authorization") != owner.basic_auth or match["sid"] != owner.account_sid:
            return self._error(401, 20003, "Authenticate")
        params = dict(parse_qsl(body, keep_blank_values=True))
        with owner.lock:
            scripted = owner.replies.popleft() if owner.replies else None
            owner.requests.append(params)
        if scripted is not None:
            if scripted.drop:
                self.close_connection = True
                return
            return self._error(scripted.status, scripted.code, scripted.message, scripted.headers)
        return self._create(params)

    def _create(self, params: dict[str, str]) -> None:
        owner = self.server_owner
        to = params.get("To", "")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            return self._error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if to in owner.opted_out:
            return self._error(400, 21610, "Attempt to send to unsubscribed recipient")
        if not params.get("Body"):
            return self._error(400, 21602, "Message body is required.")
        if not (params.get("From") or params.get("MessagingServiceSid")):
            return self._error(400, 21603, "The 'From' phone number is required.")
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        resource = {
            "account_sid": owner.account_sid,
            "api_version": "2010-04-01",
            "body": params["Body"],
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": params.get("From"),
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(1 + len(params["Body"]) // 160),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "to": to,
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{owner.account_sid}/Messages/{sid}/Media.json"},
            "uri": f"/2010-04-01/Accounts/{owner.account_sid}/Messages/{sid}.json",
        }
        with owner.lock:
            owner.messages[sid] = params
        self.answer(201, json.dumps(resource).encode())

    def _error(self, status: int, code: int | None, message: str, headers: dict[str, str] | None = None) -> None:
        body = {
            "code": code,
            "message": message,
            "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None,
        }
        self.answer(status, json.dumps(body).encode(), headers=headers)


class TwilioServer(LocalServer):
    """Twilio on 127.0.0.1: ``POST /2010-04-01/Accounts/{sid}/Messages.json`` with Basic auth.

    ``messages`` maps each created SID to the form Twilio received; ``replies`` scripts the
    answers to the next create requests (errors, dropped connections); ``opted_out`` numbers
    get error 21610 like at Twilio. :meth:`post_signed` calls the app back with
    ``X-Twilio-Signature`` computed by twilio's own :class:`RequestValidator`.
    """

    handler = _TwilioHandler

    def __init__(self, account_sid: str = "AC" + "0123456789abcdef" * 2, auth_token: str = "twilio-test-token") -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.basic_auth = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.messages: dict[str, dict[str, str]] = {}
        self.requests: list[dict[str, str]] = []
        self.replies: deque[Reply] = deque()
        self.opted_out: set[str] = set()

    def reply_next(self, status: int = 400, code: int | None = None, message: str = "error", **kwargs) -> None:
        self.replies.append(Reply(status, code, message, **kwargs))

    # -- calling the app back ---------------------------------------------------
    def post_signed(
        self, url: str, params: dict[str, str], token: str | None = None, signature: str | None = None
    ) -> tuple[int, str]:
        """POST *params* form-encoded to *url*, signed as Twilio signs (or with the given *signature*)."""
        if signature is None:
            signature = RequestValidator(token or self.auth_token).compute_signature(url, params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
        if signature:
            headers["X-Twilio-Signature"] = signature
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("POST", parts.path + (f"?{parts.query}" if parts.query else ""), urlencode(params), headers)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def status_params(self, sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
        """The form Twilio posts to a message's StatusCallback."""
        sent = self.messages[sid]
        params = {
            "SmsSid": sid,
            "SmsStatus": status,
            "MessageStatus": status,
            "To": sent["To"],
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": sent.get("From", ""),
            "ApiVersion": "2010-04-01",
        }
        if error_code:
            params["ErrorCode"] = error_code
        return params

    def send_status(self, sid: str, status: str, error_code: str | None = None) -> tuple[int, str]:
        """Report *status* for message *sid* to the StatusCallback it was created with."""
        return self.post_signed(self.messages[sid]["StatusCallback"], self.status_params(sid, status, error_code))

    def inbound_params(self, from_: str, body: str, to: str = "+15017122661") -> dict[str, str]:
        """The form Twilio posts to a number's messaging webhook when someone texts it."""
        sid = "SM" + secrets.token_hex(16)
        return {
            "ToCountry": "US",
            "ToState": "CA",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": "",
            "To": to,
            "ToZip": "",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "ApiVersion": "2010-04-01",
        }

    def send_inbound(self, url: str, from_: str, body: str) -> tuple[int, str]:
        """Deliver an incoming SMS to the app's inbound webhook *url*."""
        return self.post_signed(url, self.inbound_params(from_, body))

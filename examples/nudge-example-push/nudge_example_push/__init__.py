"""A push-notification channel for Nudge, shipped as its own package (see docs/plugins.md)."""

import hmac
import http.client
import json
from contextlib import contextmanager
from urllib.parse import urlsplit

from flask import Blueprint, request

from server.hookspecs import hookimpl
from server.sdk import (
    CONSENT_GRANTED,
    UNSUBSCRIBE_PROVIDER,
    Channel,
    ChannelError,
    SendResult,
    channel,
    parse_json,
    problem,
    record_consent,
    record_status,
)

from .signals import register_condition_functions, register_triggers  # noqa: F401 - hooks of this plugin too

__version__ = "0.1.0"


class PushChannel(Channel):
    name = "push"
    address_field = "external_id"  # the gateway knows the devices of each app user
    events = ("push.delivered", "push.opened", "push.opted_out")
    activity_events = ("push.opened",)  # the user acting: it moves last_seen
    template_parts = ("title", "txt")  # templates/push/<name>.title and <name>.txt
    required_parts = ("txt",)
    consent = CONSENT_GRANTED  # only to users who allowed notifications
    unsubscribe = UNSUBSCRIBE_PROVIDER  # users turn notifications off in the app; the gateway tells us
    opt_out_event = "push.opted_out"
    quiet_hours = ("22:00", "07:00")  # nobody wants a buzz at night (a rule's own `quiet hours` win)
    idempotent = True  # the gateway de-duplicates by Idempotency-Key, so a retry is always safe
    config_schema = {
        "PUSH_GATEWAY_URL": {"type": "string", "required": True, "default": "http://127.0.0.1:8089"},
        "PUSH_API_KEY": {"type": "string", "secret": True},
    }
    _conn = None

    @contextmanager
    def batch(self):
        url = urlsplit(self.config["PUSH_GATEWAY_URL"])
        self._conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
        try:
            yield self
        finally:
            self._conn.close()
            self._conn = None

    def send(self, message):
        if self._conn is None:
            with self.batch():
                return self.send(message)
        body = json.dumps({"to": message.to, "title": message.parts.get("title", ""), "body": message.text})
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.key,
            "Authorization": f"Bearer {self.config.get('PUSH_API_KEY') or ''}",
        }
        for attempt in (1, 2):  # a kept-alive connection may have gone stale: one fresh try
            try:
                self._conn.request("POST", "/v1/push", body, headers)
                response = self._conn.getresponse()
                reply = response.read()
                break
            except OSError as exc:
                self._conn.close()  # http.client reconnects on the next request
                if attempt == 2:
                    raise ChannelError(f"push gateway unreachable: {exc}", ambiguous=True) from None
        if response.status == 429 or response.status >= 500:
            raise ChannelError(f"push gateway busy: HTTP {response.status}")
        if response.status >= 400:
            raise ChannelError(
                f"push refused: HTTP {response.status} {reply[:200]!r}",
                permanent=True,
                suppress="invalid_address" if response.status == 410 else None,
            )
        return SendResult(provider_id=json.loads(reply)["id"])


bp = Blueprint("push_gateway", __name__, url_prefix="/hooks/push")


@bp.post("/report")
def report():
    """The gateway reports a delivery or an open of a message, or that a user turned notifications off."""
    key = channel("push").config.get("PUSH_API_KEY") or ""
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not key or not hmac.compare_digest(sent.encode(), key.encode()):
        return problem(401, "Unauthorised", "send the NUDGE_PUSH_API_KEY as 'Authorization: Bearer <key>'")
    data = parse_json(request.get_data())
    if data.get("type") == "opted_out":  # by user, not by message: every contact with that external id
        record_consent(
            "push", data["user"], False, source="push:settings", event="push.opted_out", receipt=data.get("id")
        )
    else:
        record_status(channel("push").status(data["type"], provider_id=data["message"]))
    return "", 204


@hookimpl
def register_channels(config):
    return [PushChannel]


@hookimpl
def register_blueprints(app):
    # the gateway authenticates with the API key; it cannot send a browser's CSRF token
    app.config["CSRF_EXEMPT_BLUEPRINTS"] = (*app.config.get("CSRF_EXEMPT_BLUEPRINTS", ()), bp.name)
    return [bp]

"""A push-notification channel for Nudge, shipped as its own package (see docs/plugins.md)."""
import http.client
import json
from contextlib import contextmanager
from urllib.parse import urlsplit

from server.hookspecs import hookimpl
from server.sdk import Channel, ChannelError, SendResult

from .signals import register_condition_functions, register_triggers  # noqa: F401 - hooks of this plugin too

__version__ = "0.1.0"


class PushChannel(Channel):
    name = "push"
    address_field = "external_id"  # the gateway knows the devices of each app user
    events = ("push.delivered", "push.opened")
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
        body = json.dumps({"to": message.to, "title": message.subject, "body": message.text})
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.key,
                   "Authorization": f"Bearer {self.config.get('PUSH_API_KEY') or ''}"}
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
            raise ChannelError(f"push refused: HTTP {response.status} {reply[:200]!r}", permanent=True,
                               suppress="invalid_address" if response.status == 410 else None)
        return SendResult(provider_id=json.loads(reply)["id"])


@hookimpl
def register_channels(config):
    return [PushChannel]

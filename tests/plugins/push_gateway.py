"""A local push gateway speaking the example push plugin's API: ``POST /v1/push``, de-duplicated by
``Idempotency-Key``. It keeps every request it accepted, as it arrived."""

from __future__ import annotations

import json
from contextlib import contextmanager

from ..servers import free_port
from . import LocalServer, QuietHandler


class _GatewayHandler(QuietHandler):
    def do_POST(self):
        gateway = self.server_owner
        body = self.read_body()
        key = self.headers.get("Idempotency-Key", "")
        with gateway.lock:
            status = gateway.fail_with
            if status is None:
                gateway.seen.append(key)
                gateway.requests.append(
                    {"key": key, "authorization": self.headers.get("Authorization"), **json.loads(body or b"{}")}
                )
                gateway.ids.setdefault(key, f"push_{len(gateway.ids) + 1}")
        if status is not None:
            return self.answer(status, b'{"error": "refused"}')
        self.answer(200, json.dumps({"id": gateway.ids[key]}).encode())


class PushGateway(LocalServer):
    handler = _GatewayHandler

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.requests: list[dict] = []
        self.ids: dict[str, str] = {}
        self.fail_with: int | None = None


class PushPeer:
    """The conformance kit's peer: the gateway, and settings pointing at it."""

    address = "user-42"

    def __init__(self, gateway: PushGateway):
        self.gateway = gateway
        self.settings = {"PUSH_GATEWAY_URL": gateway.url, "PUSH_API_KEY": "k"}
        self.unreachable_settings = {"PUSH_GATEWAY_URL": f"http://127.0.0.1:{free_port()}"}

    def seen_ids(self) -> list[str]:
        return list(self.gateway.seen)

    @contextmanager
    def failing(self, permanent: bool):
        self.gateway.fail_with = 400 if permanent else 503
        try:
            yield
        finally:
            self.gateway.fail_with = None

"""A webhook receiver on 127.0.0.1 that verifies every request with the ``standardwebhooks`` library."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from . import LocalServer, QuietHandler


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: the receiver's secrets that verified this request (Webhook(secret).verify passed)
    verified_by: list[str] = field(default_factory=list)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # wait (until the receiver stops) before answering


class _Handler(QuietHandler):
    server_owner: WebhookReceiver

    def do_POST(self):
        owner = self.server_owner
        body = self.read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = []
        for secret in owner.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified.append(secret)
        with owner.lock:
            owner.received.append(Received(self.path, headers, body, verified))
            owner.hits[self.path] += 1
            answer = owner.answers.popleft() if owner.answers else Answer()
        if answer.hang:
            owner.released.wait(30)
        self.answer(answer.status, answer.body, "text/plain", answer.headers)


class WebhookReceiver(LocalServer):
    """Records each request (and which of ``secrets`` verify it); answers from the ``answers`` queue, else 200."""

    handler = _Handler

    def __init__(self, *secrets: str, tls=None) -> None:
        super().__init__(tls)
        self.secrets = list(secrets)
        self.received: list[Received] = []
        self.hits: Counter[str] = Counter()
        self.answers: deque[Answer] = deque()
        self.released = threading.Event()

    def answer_next(self, status: int = 200, body: bytes = b"", hang: bool = False, **headers: str) -> None:
        self.answers.append(Answer(status, body, {k.replace("_", "-"): v for k, v in headers.items()}, hang))

    def stop(self) -> None:
        self.released.set()
        super().stop()

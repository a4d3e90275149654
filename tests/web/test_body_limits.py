"""Every route has a body limit, enforced before the body is read: a real `nudge web` process answers
413 to an oversized sign-in post, whether announced by Content-Length or sent in chunks, and does
not grow by the body's size."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest

from ..helpers import api_key
from ..servers import nudge_web, reap
from .test_forms import make_form

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
BODY = 100 * MIB


@pytest.fixture
def web_server(app, config, tmp_path):
    """``nudge web`` (waitress) in its own process on the test's database (migrated by ``app``)."""
    try:
        proc, port = nudge_web(config, tmp_path / "web.log", "--threads", "2")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield port, psutil.Process(proc.pid)
    finally:
        reap(proc, timeout=15)


class PeakRss:
    """Samples a process's resident memory in the background; ``growth`` is the peak over the start."""

    def __init__(self, process: psutil.Process):
        self.process, self.start, self.peak = process, process.memory_info().rss, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)  # a last look after the answer
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


def _status(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        part = sock.recv(4096)
        if not part:
            break
        data += part
    return data.split(b"\r\n", 1)[0].decode()


HEAD = "POST /admin/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"


def test_an_announced_oversized_sign_in_post_is_refused_before_it_is_sent(web_server):
    port, server = web_server
    with PeakRss(server) as rss, socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"{HEAD}Content-Length: {BODY}\r\n\r\n".encode())
        try:
            status = _status(sock)  # not one byte of the body sent
        except TimeoutError:
            pytest.fail("the server waits for a 100 MiB body instead of refusing it")
    assert status.startswith("HTTP/1.1 413"), status
    assert rss.growth < 50 * MIB


def test_a_chunked_oversized_sign_in_post_is_cut_off_and_never_held_in_memory(web_server):
    port, server = web_server
    piece = b"a=" + b"x" * (MIB - 2)
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    sent, status = 0, ""
    with PeakRss(server) as rss, socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"{HEAD}Transfer-Encoding: chunked\r\n\r\n".encode())
        try:
            while sent < BODY and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += len(piece)
            if sent >= BODY:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: it has answered
        status = _status(sock)
    assert status.startswith("HTTP/1.1 413"), f"{status!r} after {sent // MIB} MiB"
    assert sent < BODY, "the whole body was read"
    assert rss.growth < 50 * MIB, f"the server grew by {rss.growth // MIB} MiB"


def test_every_route_has_a_body_limit_and_the_batch_api_keeps_its_larger_one(app, client):
    make_form(app)
    big_form = {"email": "a@example.com", "password": "x" * (2 * MIB)}
    assert client.post("/admin/login", data=big_form).status_code == 413
    assert client.post("/f/newsletter", data=big_form).status_code == 413
    many_fields = {f"f{i}": "1" for i in range(500)}
    assert client.post("/admin/login", data=many_fields, content_type="multipart/form-data").status_code == 413
    long_field = {"email": "a@example.com", "password": "x" * (100 * 1024)}
    assert client.post("/admin/login", data=long_field, content_type="multipart/form-data").status_code == 413
    assert client.post("/t/visit", data="x" * 9000, content_type="text/plain").status_code == 413
    key = api_key(app, "ingest")
    events = [
        {"contact": {"email": f"c{i}@example.com"}, "event": "shop.viewed", "props": {"pad": "p" * 3000}}
        for i in range(1000)
    ]
    body = json.dumps({"events": events})
    assert 2 * MIB < len(body) < 8 * MIB
    headers = {"Authorization": f"Bearer {key}"}
    response = client.post("/api/v1/events/batch", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 202, response.get_json()
    too_big = client.post(
        "/api/v1/events", data=json.dumps({"pad": "x" * MIB}), content_type="application/json", headers=headers
    )
    assert too_big.status_code == 413 and too_big.mimetype == "application/problem+json"

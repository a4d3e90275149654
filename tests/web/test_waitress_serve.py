"""`nudge web`'s waitress channel (server/web/waitress_serve.py): while a worker serves a request and sends its own
output, the loop does not count the channel as writable (it used to poll it round and round, under the GIL the
worker needs to finish); whatever the worker could not send goes out after the request, byte for byte, and the
next request on the connection is answered after it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from server.web.waitress_serve import QuietChannel, create

BIG = bytes(range(256)) * (8 * 1024 * 1024 // 256)  # more than the sockets hold, less than waitress's high watermark


@pytest.fixture(params=[{}, {"outbuf_high_watermark": 256 * 1024}], ids=["below the watermark", "above it"])
def served(request) -> Iterator[tuple[int, dict[str, Any], threading.Event]]:
    """A WSGI app under :func:`create` in a thread: ``/big`` writes BIG, notes its channel's state and waits for
    the test's go before it ends; ``/small`` answers ``ok``. Above the watermark the worker's write waits for the
    loop to send (the channel counts as writable then), until what is left is under it."""
    seen: dict[str, Any] = {"noted": threading.Event(), "options": request.param}
    go = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/small":
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]
        write = start_response("200 OK", [("Content-Length", str(len(BIG) + 1))])
        write(BIG)
        channel = environ["waitress.client_disconnected"].__self__
        seen.update(kind=type(channel), pending=channel.total_outbufs_len, writable=channel.writable())
        seen["noted"].set()
        go.wait(30)
        return [b"!"]

    server = create(app, host="127.0.0.1", port=0, threads=2, ident="test", **request.param)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():  # short rounds, as tests/ui's live server: the loop ends before the close
            server.asyncore.loop(timeout=0.05, map=server._map, count=1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield int(server.effective_port), seen, go
    go.set()
    stop.set()
    thread.join(timeout=10)
    server.close()


def _read_answer(stream: Any) -> tuple[bytes, bytes]:
    head = b"".join(iter(stream.readline, b"\r\n"))
    length = next(int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:")
    return head, stream.read(length)


def test_a_channel_being_served_is_not_polled_and_its_output_all_arrives(served):
    port, seen, go = served
    if seen["options"]:  # the worker's write returns once the loop has sent all but the watermark's worth
        go.set()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the client reads nothing yet: output waits
        sock.connect(("127.0.0.1", port))
        sock.settimeout(30)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n")
        if seen["options"]:
            stream = sock.makefile("rb")
            head, body = _read_answer(stream)  # the loop sends while the worker waits: nothing stalls
            assert body == BIG + b"!"
            assert seen["noted"].is_set()
            head, body = _read_answer(stream)
            assert head.startswith(b"HTTP/1.1 200 OK") and body == b"ok"
            stream.close()
            return
        assert seen["noted"].wait(30), "the app was not called"
        assert seen["kind"] is QuietChannel
        assert seen["pending"] > 0, "the worker sent everything: the test needs output left in the channel"
        assert seen["writable"] is False  # waitress's own channel: True, its loop polling it until the request ends
        go.set()
        stream = sock.makefile("rb")
        head, body = _read_answer(stream)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert body == BIG + b"!"
        head, body = _read_answer(stream)
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b"ok"
        stream.close()

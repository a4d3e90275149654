"""The peers' HTTP server (tests/plugins LocalServer): a client that hangs up before its answer is no error, so the
test run stays quiet; a handler that fails for any other reason is still printed with its traceback."""

from __future__ import annotations

import socket
import struct
import threading

from . import LocalServer, QuietHandler


class _Handler(QuietHandler):
    server_owner: _Peer

    def do_GET(self):
        owner = self.server_owner
        if self.path == "/boom":
            raise RuntimeError("the handler itself failed")
        owner.asked.set()
        owner.gone.wait(10)  # the client has hung up (a reset): every write now fails
        for _ in range(64):
            self.answer(200, b"x" * 65536)


class _Peer(LocalServer):
    handler = _Handler

    def __init__(self) -> None:
        super().__init__()
        self.asked, self.gone = threading.Event(), threading.Event()


def _request(peer: _Peer, path: str) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", peer.port), timeout=10)
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: peer\r\n\r\n".encode())
    return client


def test_a_client_hanging_up_before_its_answer_prints_nothing(capfd):
    peer = _Peer().start()
    try:
        client = _request(peer, "/slow")
        assert peer.asked.wait(10)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        client.close()
        peer.gone.set()
        peer.wait_closed(1)
    finally:
        peer.stop()
    assert capfd.readouterr().err == ""


def test_any_other_error_in_a_handler_is_still_printed(capfd):
    peer = _Peer().start()
    try:
        client = _request(peer, "/boom")
        peer.wait_closed(1)
        client.close()
    finally:
        peer.stop()
    err = capfd.readouterr().err
    assert "Exception occurred during processing of request" in err
    assert "RuntimeError: the handler itself failed" in err

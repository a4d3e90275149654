"""Tests of the built-in plugins against real peers, and the small HTTP servers that play those peers."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (a free port) that counts the connections it accepts."""

    handler: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        owner = self

        class _Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address):
                with owner.lock:
                    owner.connections += 1
                super().process_request(request, client_address)

        class _Handler(self.handler):
            server_owner = owner

        self.lock = threading.Lock()
        self.connections = 0
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=type(self).__name__, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)


class QuietHandler(BaseHTTPRequestHandler):
    """Speaks HTTP/1.1 (keep-alive), logs nothing, and closes idle connections after a few seconds."""

    protocol_version = "HTTP/1.1"
    timeout = 5

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status: int, body: bytes = b"", content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

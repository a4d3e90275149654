"""Tests of the built-in plugins against real peers, and the small HTTP servers that play those peers."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: how often a test's threaded server (socketserver's serve_forever) looks whether shutdown() was asked: every 50 ms,
#: not the default 0.5 s that each test's teardown would wait
POLL = 0.05


def self_signed_cert(folder: Path, *names: str) -> tuple[Path, Path]:
    """A fresh self-signed certificate (its own CA) for *names* (host names or IP addresses): (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nudge test peer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([_san(x509, n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "peer-cert.pem", folder / "peer-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _san(x509, name: str):
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


#: what a write to a client that hung up raises (a timeout test's client gave up): not an error of the server
HUNG_UP = (ConnectionResetError, BrokenPipeError)


class LocalServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (a free port) that counts the connections it accepts and closes.

    A client hanging up before its answer is written passes quietly; any other error in a handler is printed with
    its traceback, as :mod:`socketserver` does.

    :param tls: a server-side SSL context to speak HTTPS instead of HTTP.
    """

    handler: type[BaseHTTPRequestHandler]

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        owner = self

        class _Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address):
                with owner.lock:
                    owner.connections += 1
                super().process_request(request, client_address)

            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], HUNG_UP):
                    super().handle_error(request, client_address)

            def shutdown_request(self, request):
                super().shutdown_request(request)
                with owner.closing:
                    owner.closed += 1
                    owner.closing.notify_all()

        class _Handler(self.handler):
            server_owner = owner

        self.lock = threading.Lock()
        self.connections = 0
        self.closing = threading.Condition()
        self.closed = 0  # connections done with, errors handled
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": POLL}, name=type(self).__name__, daemon=True
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self):
        self._thread.start()
        return self

    def wait_closed(self, count: int, timeout: float = 10) -> None:
        """Wait until *count* connections in all are done with (their handler's error, if any, handled)."""
        with self.closing:
            if not self.closing.wait_for(lambda: self.closed >= count, timeout):
                raise AssertionError(f"{self.closed} of {count} connections closed in {timeout} s")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)


class QuietHandler(BaseHTTPRequestHandler):
    """Speaks HTTP/1.1 (keep-alive), logs nothing, and closes idle connections after a few seconds."""

    protocol_version = "HTTP/1.1"
    timeout = 5

    def log_message(self, format, *args):
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

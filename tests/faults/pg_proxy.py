"""A TCP proxy in front of PostgreSQL that cuts connections the way a failover does: both ends closed, no goodbye.

The client then sees what libpq says when the server goes away ("server closed the connection unexpectedly", no
SQLSTATE), at a moment the test chooses: at a packet the client sends that holds a marker, either before the server
sees it or after (the server acts on it, the client never hears the answer: a commit whose answer was lost).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from contextlib import suppress


class _Link:
    """One client's connection through the proxy."""

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client, self.upstream = client, upstream
        self.armed = False  # the *after* text was seen on it
        self.muted = threading.Event()  # the server's answers are held back: the cut is coming
        self.cut = threading.Event()

    def close(self) -> None:
        for end in (self.client, self.upstream):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


class CuttingProxy:
    """Forwards 127.0.0.1:*port* (PostgreSQL); the first *cuts* connections are cut at the first client packet that
    holds *marker* (b"" for the first packet), once *after* was seen on that connection (None: at once).

    :param forward: hand the marked packet to the server before the cut (its answer never reaches the client).
    :param meanwhile: run after the marked packet (and before the cut), e.g. what another process does meanwhile.
    """

    def __init__(
        self,
        port: int,
        marker: bytes,
        cuts: int,
        after: bytes | None = None,
        forward: bool = False,
        meanwhile: Callable[[], None] | None = None,
    ):
        self.upstream, self.marker, self.cuts, self.after = port, marker, cuts, after
        self.forward, self.meanwhile = forward, meanwhile
        self.done = 0  # connections cut so far
        self._lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        """*url* (of the proxied server) with the proxy's port."""
        return url.replace(f":{self.upstream}/", f":{self.port}/")

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            link = _Link(client, socket.create_connection(("127.0.0.1", self.upstream)))
            threading.Thread(target=self._requests, args=(link,), daemon=True).start()
            threading.Thread(target=self._answers, args=(link,), daemon=True).start()

    def _marked(self, link: _Link, data: bytes) -> bool:
        if self.after is not None and not link.armed:
            link.armed = self.after in data
            return False
        with self._lock:
            if self.marker in data and self.done < self.cuts:
                self.done += 1
                return True
        return False

    def _requests(self, link: _Link) -> None:
        try:
            while data := link.client.recv(65536):
                if self._marked(link, data):
                    link.muted.set()
                    if self.forward:
                        link.upstream.sendall(data)
                    if self.meanwhile is not None:
                        self.meanwhile()
                    break
                link.upstream.sendall(data)
        except OSError:
            pass
        link.cut.set()
        link.close()

    def _answers(self, link: _Link) -> None:
        try:
            while data := link.upstream.recv(65536):
                if link.muted.is_set():  # the answer to the marked packet: never delivered
                    link.cut.wait(30)
                    break
                link.client.sendall(data)
        except OSError:
            pass
        link.close()

    def close(self) -> None:
        self.server.close()

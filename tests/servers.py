"""Real servers for the tests: PostgreSQL, Redis, SMTP. Nothing here is a mock."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import psycopg
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- PostgreSQL ------------------------------------------------------------------
def pg_bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return os.path.dirname(os.path.realpath(pg_ctl))
    raise RuntimeError("PostgreSQL server binaries not found: run `make test`, which installs the postgresql package")


class PostgresServer:
    """A throwaway cluster in a temp dir, on a free localhost port, with trust auth."""

    def __init__(self) -> None:
        self.bindir = pg_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="nudge-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = "nudge"
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            os.chown(self.dir, pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PostgresServer:
        self._run(
            f"{self.bindir}/initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        """Create an empty database; return its URL."""
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# -- SMTP --------------------------------------------------------------------------
class _Collector:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # each message exactly as it arrived
        self.envelopes: list[tuple[str, list[str]]] = []
        self.reject_with: str | None = None
        self.cond = threading.Condition()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_with:
            return self.reject_with
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.cond:
            self.messages.append(msg)
            self.raw.append(envelope.original_content)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.cond.notify_all()
        return "250 Message accepted"


class SmtpServer:
    """aiosmtpd on a free port; ``messages`` are parsed with the ``email`` package."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = _Collector()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    @property
    def raw(self) -> list[bytes]:
        """Each message as the bytes that arrived after DATA."""
        return self.handler.raw

    def wait_for(self, count: int, timeout: float = 30.0) -> list[EmailMessage]:
        """Block until *count* messages arrived (a real server receiving from real processes)."""
        deadline = time.monotonic() + timeout
        with self.handler.cond:
            while len(self.handler.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} messages, got {len(self.handler.messages)}")
                self.handler.cond.wait(left)
            return list(self.handler.messages)

    def start(self) -> SmtpServer:
        """Listen on ``port``; after :meth:`stop`, a new server on the same port (an outage that ends)."""
        if self.controller is None:
            self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
            self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# -- nudge web -------------------------------------------------------------------
def nudge_web(config: dict, log: Path, *args: str, **extra: str) -> tuple[subprocess.Popen, int]:
    """``nudge web`` (waitress) in its own process with *config* (and *extra*) as NUDGE_* variables, on the test's
    database (migrated by the ``app`` fixture); return it and its port once ``/healthz`` answers.

    :raises RuntimeError: it did not start within 60 s (the end of its *log* says why).
    """
    import sys
    import urllib.request

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update({f"NUDGE_{k}": str(v) for k, v in {**config, **extra}.items()})
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "web", "--port", str(port), "--no-migrate", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"nudge web did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)

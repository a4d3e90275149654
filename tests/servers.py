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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import psycopg
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app, port: int) -> Iterator[str]:
    """*app* under waitress (as ``nudge web`` runs it) in a thread, on *port*; yields its base URL.

    On the way out the requests still being served (a fetch a page made as its test ended) finish first, while the
    loop still sends their output: a request left running would hold a connection of the app's pool past the app's
    ``dispose()``, and that connection, collected with its old pool, would be closed by nobody (psycopg's
    ``ResourceWarning`` in a later test).
    """
    from waitress import wasyncore

    from server.web.waitress_serve import create

    server = create(app, host="127.0.0.1", port=port, threads=4, ident="nudge-test")
    stop = threading.Event()

    def serve() -> None:
        # waitress's own run() loops until its sockets are closed under it, which races with close() from
        # this thread (a select on a closed descriptor); polling in short rounds lets the loop end first
        while not stop.is_set():
            server.asyncore.loop(timeout=0.05, map=server._map, count=1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=10)
        stop.set()
        thread.join(timeout=10)
        wasyncore.close_all(server._map)  # the listening socket, its trigger and every client's channel
    if server.task_dispatcher.threads:
        raise RuntimeError("the live server's requests did not end within 10 s")


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

    def new_database(self, name: str, template: str = "template1") -> str:
        """Create a database, empty or a copy of *template*; return its URL."""
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            self._create(conn, name, template)
        return self.url(name)

    def _create(self, conn: psycopg.Connection, name: str, template: str) -> None:
        # copying the template's files is faster than writing each of its pages to the log (PostgreSQL 15's default),
        # and this cluster needs no log of them (fsync off, thrown away after the session)
        strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')

    def drop_database(self, name: str) -> bool:
        """Drop database *name* unless someone is still connected to it; return whether it was dropped."""
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            except psycopg.errors.ObjectInUse:
                return False
        return True

    def replace_database(self, name: str, template: str) -> bool:
        """Make database *name* a copy of *template* if it is empty and nobody is connected to it; return whether it
        was replaced (a database holding anything, or in use, is left alone)."""
        with psycopg.connect(self.url(name).replace("+psycopg", ""), autocommit=True) as conn:
            used = conn.execute("SELECT EXISTS (SELECT FROM pg_class WHERE relnamespace = 'public'::regnamespace)")
            if used.fetchone()[0]:
                return False
        if not self.drop_database(name):
            return False
        self.new_database(name, template)
        return True

    def stop(self) -> None:
        try:
            self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class MigratedTemplates:
    """One database per backend migrated to the heads once a session; an app's new, empty database starts as a copy
    of it (what starting the app would make of it, without running every migration again for every test)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._sqlite: Path | None = None
        self._pg: str | None = None
        # the next test's copy is made, and the last test's database dropped, while a test runs
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-spare")
        self._spare: Future[str] | None = None

    def close(self) -> None:
        self._background.shutdown(wait=True, cancel_futures=True)

    def fill(self, url: str, postgres: Callable[[], PostgresServer]) -> None:
        """Copy the migrated template into the database at *url* (of the *postgres* server, or a SQLite file) if that
        database is new and empty; else nothing."""
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            path = Path(url.removeprefix("sqlite:///"))
            if not path.exists():
                shutil.copyfile(self._sqlite_template(), path)
        elif url.startswith("postgresql"):
            server = postgres()
            if url.startswith(server.url("")):
                server.replace_database(url.rsplit("/", 1)[1], self._pg_template(server))

    def new_pg_database(self, server: PostgresServer, name: str) -> str:
        """A new database on *server*, a copy of the migrated template; return its URL. The copy made in the
        background while the previous test ran is taken when there is one (its name is *name* of that test plus
        ``_next``); else *name* is created now. The next copy is started either way."""
        template = self._pg_template(server)
        url = None
        if self._spare is not None:
            try:
                url = self._spare.result()
            except Exception:  # a spare that failed is made again below, where its error shows
                url = None
        if url is None or not url.startswith(server.url("")):
            url = server.new_database(name, template)
        self._spare = self._background.submit(server.new_database, f"{name}_next", template)
        return url

    def drop_later(self, server: PostgresServer, name: str) -> None:
        """Drop database *name* in the background (left alone if something still uses it)."""
        self._background.submit(server.drop_database, name)

    def _sqlite_template(self) -> Path:
        if self._sqlite is None:
            path = self.folder / "template.db"
            _migrate(f"sqlite:///{path}")
            if Path(f"{path}-wal").exists():  # the last connection's close folds the log into the file
                raise RuntimeError(f"{path}-wal left behind: the template would not be the whole database")
            self._sqlite = path
        return self._sqlite

    def _pg_template(self, server: PostgresServer) -> str:
        if self._pg is None:
            _migrate(server.new_database("nudge_template"))
            self._pg = "nudge_template"
        return self._pg


def _migrate(url: str) -> None:
    from server.db import make_engine
    from server.migrate import upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


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
    import urllib.error
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
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                answer.read()
            return proc, port
        except OSError as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # an error answer holds its connection until closed
            if proc.poll() is not None or time.monotonic() > deadline:
                reap(proc, timeout=0)
                raise RuntimeError(f"nudge web did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)


def reap(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop *proc* if it still runs (SIGTERM, then SIGKILL after *timeout* seconds), wait for it and close its pipes.

    Call it in a ``finally``: a child left running, or a pipe left open, is a ResourceWarning at some later garbage
    collection, an error in whichever test runs then (``filterwarnings = error``).
    """
    try:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

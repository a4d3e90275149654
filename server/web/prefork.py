"""``nudge web`` in several processes sharing its port (``NUDGE_WEB_PROCESSES``).

One Python process serves with one GIL: the checks, the JSON and the WSGI path of every request ran on one core
while the other idled. Here the parent binds one copy of the listening socket(s) per process (``SO_REUSEPORT``: the
kernel spreads new connections over the copies), builds nothing more, and forks the processes; each serves its copy
with its own waitress loop and threads (:mod:`.waitress_serve`), its own database connections, its own ingest writer
and WAL checkpointer (:mod:`server.engine.ingest`).

What must be shared between them is in the database or Redis: sessions (the signed cookie and their
``admin_sessions`` rows), the CSRF token (in the cookie), sign-in throttling and the forms' rate limits (Redis; when
Redis is away each process counts sign-in attempts itself, each attempt as *processes* attempts: the limits stay
about those of one process), idempotency keys (a unique row, written with the events), the engine's wake-up (a Redis
flag), the settings saved in the admin UI and the rule index (each re-read when their version in the database moves
on). On SQLite the processes' writes take turns through a lock file (:func:`server.engine.ingest.engine_turn`).

The parent watches: a process that exits is started again (logged); one that keeps exiting (:data:`MAX_RESTARTS`
within :data:`RESTART_WINDOW` seconds) stops them all and ``nudge web`` exits with code 1, so nothing is left
half-alive. SIGTERM or SIGINT stops them all: each finishes the requests it is serving (up to 5 s, as one process
does), what is still running after :data:`GRACE` seconds is killed. A child dies with its parent (even one killed
with ``-9``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from waitress.adjustments import Adjustments

from ..supervisor import die_with_parent
from . import waitress_serve

log = logging.getLogger("server.web")

#: restarts of crashed processes allowed within :data:`RESTART_WINDOW` seconds before ``nudge web`` gives up
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
#: seconds the processes get to finish after SIGTERM before they are killed
GRACE = 15.0
_POLL = 0.1
#: seconds to wait, when a process stopped on its own, for the signal that stopped it to reach the parent as well
_SIGNALLED = 0.5


def bind(host: str, port: int, copies: int = 1, backlog: int = 1024) -> list[list[socket.socket]]:
    """*copies* sets of listening sockets for *host*:*port*, each as waitress would bind it (one socket for each
    address *host* resolves to). Several copies share the port through ``SO_REUSEPORT``: the kernel spreads new
    connections over them evenly (one listening socket shared by all processes gave a burst of connections to
    whichever process woke first).

    :raises OSError: an address cannot be bound (the port is taken, say).
    """
    copies_made: list[list[socket.socket]] = []
    try:
        if copies > 1:  # a port held by anyone (another nudge web's copies too) is refused, as one process is
            _close(bind(host, port, 1))
        for _copy in range(copies):
            sockets: list[socket.socket] = []
            copies_made.append(sockets)
            for family, kind, proto, address in cast(
                "list[tuple[int, int, int, Any]]", Adjustments(host=host, port=port).listen
            ):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if copies > 1:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(backlog)
    except OSError:
        _close(copies_made)
        raise
    return copies_made


def _close(copies: list[list[socket.socket]]) -> None:
    for sockets in copies:
        for sock in sockets:
            sock.close()


def serve(app: Any, *, processes: int, host: str, port: int, release: Callable[[], object], **options: Any) -> int:
    """Serve *app* on *host*:*port* until SIGTERM or SIGINT; in one process, or *processes* forked ones.

    :param release: closes the parent's connections (database, Redis) before it forks: the children open their own.
    :param options: waitress's (threads, ident, body limit, proxy headers).
    :return: the exit code (0 on a signal, 1 when the processes kept crashing).
    :raises OSError: the address cannot be bound.
    """
    copies = bind(host, port, processes)
    try:
        if processes <= 1:
            waitress_serve.serve(app, sockets=copies[0], **options)
            return 0
        release()
        log.info("Serving on http://%s:%s with %d processes", host, port, processes)
        return Prefork(lambda index: _child(app, copies[index], options), processes).run()
    finally:
        _close(copies)


def _child(app: Any, sockets: list[socket.socket], options: dict[str, Any]) -> None:
    """A forked process: serve its copy of the listening sockets until SIGTERM or SIGINT (or the parent's death)."""
    server = waitress_serve.create(app, sockets=sockets, **options)
    server.run()  # waitress ends on KeyboardInterrupt, after its threads finish their requests (up to 5 s)
    database = app.extensions.get("nudge.db")
    if database is not None:
        database.dispose()  # the ingest writer and its checkpointer close with the engine


class Prefork:
    """Forks *processes* children, ``child(index)`` each (index 0 to processes - 1), and keeps them running (a
    replacement gets the index of the one it replaces); stops them all on a signal or when they keep crashing (see
    the module's docstring)."""

    def __init__(self, child: Callable[[int], None], processes: int, echo: Callable[[str], None] | None = None):
        self.child = child
        self.processes = processes
        self.echo = echo or (lambda message: log.warning("%s", message))
        #: running children: pid → index
        self.pids: dict[int, int] = {}
        self.crashes: deque[float] = deque()
        self._stopping = False

    def run(self) -> int:
        """Fork the processes and watch them; the exit code once all have stopped."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        code = 0
        try:
            for index in range(self.processes):
                self._fork(index)
            while not self._stopping:
                if not self._reap_and_restart():
                    code = 1
                    break
                time.sleep(_POLL)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self._stopping = True

    def _fork(self, index: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid:
            self.pids[pid] = index
            return
        code = 1
        try:  # the child: never returns into the parent's code
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, _interrupt)
            _die_with(parent)
            self.child(index)
            code = 0
        except KeyboardInterrupt:  # stopped before it served
            code = 0
        except BaseException:
            log.exception("nudge web: process %d failed", os.getpid())
        finally:
            logging.shutdown()
            os._exit(code)

    def _reap_and_restart(self) -> bool:
        """Collect exited children and start others; False when they crash too often (the caller stops)."""
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if not pid:
                break
            index = self.pids.pop(pid, None)
            if index is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                time.sleep(_SIGNALLED)  # stopped by a signal sent to all the processes (Ctrl-C): it reaches us too
            if index is None or self._stopping:
                continue
            now = time.monotonic()
            self.crashes.append(now)
            while self.crashes and self.crashes[0] < now - RESTART_WINDOW:
                self.crashes.popleft()
            if len(self.crashes) > MAX_RESTARTS:
                self.echo(
                    f"nudge web: web processes exited {len(self.crashes)} times within {RESTART_WINDOW:.0f} s "
                    f"(the last {_describe(status)}); stopping all of them: see the log above for why"
                )
                return False
            self.echo(f"nudge web: web process {pid} {_describe(status)}; starting another")
            self._fork(index)
        return True

    def stop(self) -> None:
        """SIGTERM every child, wait up to :data:`GRACE` seconds, then SIGKILL what is left; reap them all."""
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while self.pids:
            for pid in list(self.pids):
                with contextlib.suppress(ChildProcessError):
                    done, _status = os.waitpid(pid, os.WNOHANG)
                    if not done:
                        continue
                del self.pids[pid]
            if self.pids and time.monotonic() > deadline:
                self.echo(f"nudge web: {len(self.pids)} web process(es) did not stop in {GRACE:.0f} s; killing them")
                for pid in self.pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(_POLL / 10 if self.pids else 0)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _die_with(parent: int) -> None:
    """Ask Linux to SIGTERM this process when its parent dies (even with ``-9``); exit now if it already has."""
    die_with_parent()
    if os.getppid() != parent:
        raise SystemExit(0)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


__all__ = ["GRACE", "MAX_RESTARTS", "RESTART_WINDOW", "Prefork", "bind", "serve"]

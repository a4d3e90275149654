"""``nudge web`` in two processes sharing its port (server/web/prefork.py, NUDGE_WEB_PROCESSES): both serve, an
event posted with one Idempotency-Key through both of them at once is stored exactly once, a killed process is
replaced, and SIGTERM stops every one of them; processes that keep dying stop the server loudly."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.models import Event
from server.web import prefork

from ..helpers import api_key
from ..servers import free_port, nudge_web, reap


def _children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _server_side(port: int, client_port: int) -> str:
    """The inode of the server's end of the connection from *client_port* to *port* (from /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port and int(fields[2].rpartition(":")[2], 16) == client_port:
                return fields[9]
    raise AssertionError(f"no server socket for the connection from port {client_port}")


def _holder(pids: set[int], inode: str) -> int:
    """The process among *pids* holding socket *inode*."""
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no web process holds socket {inode}")


def _post_together(
    port: int, key: str, connections: int
) -> tuple[list[tuple[int, dict, bool]], list[int], list[http.client.HTTPConnection]]:
    """Post one event with one Idempotency-Key on *connections* new connections at once; the answers (status, body,
    replayed), the local port of each connection and the connections (open: the caller closes them)."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(connections)]
    for conn in conns:
        conn.connect()
    body = json.dumps({"contact": {"email": "once@example.com"}, "event": "prefork.once"})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Idempotency-Key": "k-1"}
    answers: list[tuple[int, dict, bool]] = []
    start = threading.Barrier(connections)

    def post(conn: http.client.HTTPConnection) -> None:
        start.wait(30)
        for _attempt in range(10):  # a 409 (PostgreSQL: the contact was stored meanwhile) says "retry the request"
            conn.request("POST", "/api/v1/events", body=body, headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 409:
                break
        answers.append((response.status, answer, response.getheader("Idempotent-Replayed") == "true"))

    threads = [threading.Thread(target=post, args=(conn,)) for conn in conns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ports = [conn.sock.getsockname()[1] for conn in conns]
    return answers, ports, conns


def _wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_two_processes_serve_ingest_exactly_once_replace_a_killed_one_and_stop_together(app, config, tmp_path):
    key = api_key(app, "ingest")
    log = tmp_path / "web.log"
    try:
        proc, port = nudge_web(config, log, "--threads", "4", WEB_PROCESSES="2")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        assert _wait_for(lambda: len(_children(proc.pid)) == 2), log.read_text()
        children = _children(proc.pid)

        # one event, one key, 24 connections at once: the connections land on both processes, one event is stored
        answers, ports, conns = _post_together(port, key, 24)
        try:
            served_by = {_holder(children, _server_side(port, client_port)) for client_port in ports}
        finally:
            for conn in conns:
                conn.close()
        assert served_by == children, "both web processes serve the port"
        assert len(answers) == 24 and {status for status, _body, _replayed in answers} == {202}
        assert len({json.dumps(body, sort_keys=True) for _status, body, _replayed in answers}) == 1
        assert sum(not replayed for _status, _body, replayed in answers) == 1  # the others were replayed
        with app.app_context():
            stored = get_session().scalar(select(func.count()).where(Event.name == "prefork.once"))
        assert stored == 1

        # a process killed with -9 is replaced, and the server keeps serving
        killed = min(children)
        os.kill(killed, signal.SIGKILL)
        assert _wait_for(lambda: killed not in _children(proc.pid) and len(_children(proc.pid)) == 2), log.read_text()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
        assert f"web process {killed} was killed by signal 9; starting another" in log.read_text()

        # SIGTERM stops them all, and the server exits 0
        children = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "a web process outlived the server"
    finally:
        reap(proc)


def test_processes_that_keep_dying_stop_the_server_with_code_1():
    messages: list[str] = []
    forked = prefork.Prefork(lambda _index: os._exit(3), processes=2, echo=messages.append)
    assert forked.run() == 1
    assert not forked.pids
    assert messages[-1].startswith(f"nudge web: web processes exited {prefork.MAX_RESTARTS + 1} times within 60 s")
    assert messages[0].endswith("exited with code 3; starting another")


def test_a_port_already_served_is_refused_even_by_copies_sharing_it():
    """Two ``nudge web`` started on one port: the second fails (EADDRINUSE) instead of sharing the port."""
    import errno

    port = free_port()
    first = prefork.bind("127.0.0.1", port, 2)
    try:
        assert [sockets[0].getsockname()[1] for sockets in first] == [port, port]  # the copies share the port
        for copies in (2, 1):
            with pytest.raises(OSError, match="in use") as refused:
                prefork.bind("127.0.0.1", port, copies)
            assert refused.value.errno == errno.EADDRINUSE
    finally:
        for sockets in first:
            for sock in sockets:
                sock.close()

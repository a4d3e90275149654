"""Ingest over real HTTP: ``POST /api/v1/events`` and ``/events/batch`` against a bare Flask JSON echo (issue #12, 1).

Both apps are served by waitress as `nudge web` serves them (server/web/waitress_serve.py), with the same thread
settings, each in its own process, both up at once; each load is put on the echo, then on Nudge, and the whole
sequence again (``ROUNDS``), so that other work on a shared machine falls on both sides alike. A load process keeps
*connections* keep-alive connections busy posting the same body and counts the answers (202 from Nudge, 200 from
the echo) and their latencies. Nudge stores every event in SQLite and hands it to
a real (embedded) Redis before it answers. Targets: single events >= 0.5x the echo's requests per second with p99
under 50 ms at 32 connections; batches of 100 at >= 50,000 events/s.
Run: .venv/bin/python -m bench.bench_ingest [--full]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.table import Row, ratio_at_least, render, under  # noqa: E402
from server.config import DEFAULTS  # noqa: E402

CONNECTIONS = 32
THREADS = 8  # `nudge web`'s default
PROCESSES = int(DEFAULTS["WEB_PROCESSES"])  # `nudge web`'s default too
BATCH = 100
EVENT = {"contact": {"email": "bench@example.com"}, "event": "form.submitted", "props": {"form": "newsletter"}}


def batch_body(size: int = BATCH) -> dict[str, Any]:
    return {"events": [{**EVENT, "contact": {"email": f"bench{i}@example.com"}} for i in range(size)]}


# --- the servers (each runs in its own process) ---


def echo_app() -> Any:
    """The baseline: Flask parses the JSON body and answers it back."""
    from flask import Flask, jsonify, request

    app = Flask("echo")

    @app.post("/api/v1/events")
    @app.post("/api/v1/events/batch")
    def echo() -> Any:
        return jsonify(request.get_json())

    return app


def nudge_app(home: str, redis_url: str) -> Any:
    from server.app import create_app

    return create_app(settings(home, redis_url))


def settings(home: str, redis_url: str) -> dict[str, Any]:
    return {
        "HOME": home,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-secret-key-0123456789",
        "LOAD_ENTRY_POINTS": False,
        "LOG_LEVEL": "WARNING",
        "SMTP_URL": "smtp://127.0.0.1:9",
    }


def serve(kind: str, port: int, threads: int, processes: int, home: str, redis_url: str) -> None:
    import logging

    from server.web.prefork import serve as serve_app

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is 24" is the load, not news
    app = echo_app() if kind == "echo" else nudge_app(home, redis_url)

    def release() -> None:
        if kind == "nudge":
            app.extensions["nudge.db"].dispose()
            app.extensions["nudge.queue"].disconnect()

    # as `nudge web` serves
    serve_app(app, processes=processes, host="127.0.0.1", port=port, release=release, threads=threads, ident=kind)


# --- the load (its own process) ---


async def _connection(
    port: int, request: Callable[[], bytes], until: float, latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            data = request()
            start = time.perf_counter()
            writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def _requests(request: bytes, keyed: bool) -> Callable[[], bytes]:
    """The request to send next: *request* each time, or with an ``Idempotency-Key`` header, a new key each time."""
    if not keyed:
        return lambda: request
    head, _, body = request.partition(b"\r\n\r\n")
    keys = itertools.count()
    run = uuid.uuid4().hex
    return lambda: b"%s\r\nIdempotency-Key: %s-%d\r\n\r\n%s" % (head, run.encode(), next(keys), body)


async def _load(
    port: int, request: Callable[[], bytes], connections: int, seconds: float, warmup: float
) -> dict[str, Any]:
    scratch: list[float] = []
    await asyncio.gather(
        *(_connection(port, request, time.perf_counter() + warmup, scratch, {}) for _ in range(connections))
    )
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, request, start + seconds, latencies, statuses) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "answered": len(scratch) + len(latencies),
        "count": len(latencies),
        "elapsed": elapsed,
        "rate": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "statuses": statuses,
    }


def http_request(path: str, body: bytes, key: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def load(
    port: int, path: str, body: bytes, key: str, connections: int, seconds: float, keyed: bool = False
) -> dict[str, Any]:
    """Run the load in its own process (the client must not share the server's interpreter) and return its figures;
    *keyed*: each request with an Idempotency-Key of its own."""
    with tempfile.NamedTemporaryFile("wb", suffix=".http", delete=False) as f:
        f.write(http_request(path, body, key))
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.bench_ingest", "--load", f.name, str(port), str(connections), str(seconds)]
            + (["keyed"] if keyed else []),
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout)


# --- the run ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server stopped with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not listen on port {port} within {timeout:g} s")


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process *pid* and its children (the forked web processes) have used so far."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def load_cpu(pid: int, *args: Any) -> dict[str, Any]:
    """:func:`load`, with the server's CPU time a request (answers while warming up included)."""
    before = cpu_seconds(pid)
    result = load(*args)
    result["cpu_per_request"] = (cpu_seconds(pid) - before) / max(result["answered"], 1)
    return result


#: the loads, each put on both servers in turn: (path, body, a new Idempotency-Key each request)
LOADS = {
    "single": ("/api/v1/events", json.dumps(EVENT).encode(), False),
    "batch": ("/api/v1/events/batch", json.dumps(batch_body()).encode(), False),
    # the echo ignores the header: its figure is the same request's, with one more header
    "keyed": ("/api/v1/events", json.dumps(EVENT).encode(), True),
}
#: rounds of every load on both servers: the echo's and Nudge's figures of a load are measured one right after the
#: other, several times over, so that a spell of other work on the machine falls on both sides alike
ROUNDS = 2


def start_server(kind: str, home: str, redis_url: str, processes: int) -> tuple[subprocess.Popen, int]:
    """Serve *kind* in its own process, as `nudge web` serves; its process and port once it listens."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_ingest", "--serve", kind, str(port), str(THREADS), str(processes)]
        + [home, redis_url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        _wait_listening(port, proc)
    except BaseException:
        proc.terminate()
        raise
    return proc, port


def measure_servers(
    home: str, redis_url: str, key: str, seconds: float, processes: int, rounds: int = ROUNDS
) -> dict[str, dict[str, dict[str, Any]]]:
    """Serve the echo and Nudge (each in its own process, both up at once) and put every load of :data:`LOADS` on
    them by turns, *rounds* times after a warm-up of each; per server and load the figures of all rounds together
    (requests a second over the rounds' time, the highest p50 and p99 of a round, the server's CPU time a
    request)."""
    servers = {}
    try:
        for kind in ("echo", "nudge"):
            servers[kind] = start_server(kind, home, redis_url, processes)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {kind: {load: [] for load in LOADS} for kind in servers}
        for path, body, keyed in LOADS.values():  # a warm-up, not counted: a new process's first requests cost more
            for _proc, port in servers.values():
                load(port, path, body, key, CONNECTIONS, 1.0, keyed)
        for _round in range(rounds):
            for name, (path, body, keyed) in LOADS.items():
                for kind, (proc, port) in servers.items():
                    runs[kind][name].append(load_cpu(proc.pid, port, path, body, key, CONNECTIONS, seconds, keyed))
    finally:
        for proc, _port in servers.values():
            proc.terminate()
        for proc, _port in servers.values():
            proc.wait(timeout=30)
    return {kind: {name: _together(results) for name, results in loads.items()} for kind, loads in runs.items()}


def _together(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several runs of one load on one server, as one."""
    statuses: dict[str, int] = {}
    for result in results:
        for status, n in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    answered = sum(result["answered"] for result in results)
    return {
        "rate": sum(result["count"] for result in results) / sum(result["elapsed"] for result in results),
        "p50": max(result["p50"] for result in results),
        "p99": max(result["p99"] for result in results),
        "statuses": statuses,
        "cpu_per_request": sum(result["cpu_per_request"] * result["answered"] for result in results) / answered,
    }


def _checked(result: dict[str, Any], ok: int, what: str) -> dict[str, Any]:
    wrong = {status: n for status, n in result["statuses"].items() if int(status) != ok}
    if wrong:
        raise RuntimeError(f"{what} answered {wrong} besides {ok}")
    return result


def measure(seconds: float, processes: int = PROCESSES) -> list[Row]:
    from bench.common import bench_app
    from server.auth import create_api_key
    from server.db import get_session

    with bench_app() as app:
        with app.app_context():
            key = create_api_key(get_session(), "ingest")
        home, redis_url = app.config["HOME"], app.config["REDIS_URL"]
        both = measure_servers(home, redis_url, key, seconds, processes)
        echo, nudge = both["echo"], both["nudge"]
    e1, n1 = _checked(echo["single"], 200, "the echo"), _checked(nudge["single"], 202, "POST /api/v1/events")
    eb, nb = _checked(echo["batch"], 200, "the echo"), _checked(nudge["batch"], 202, "POST /api/v1/events/batch")
    ek, nk = _checked(echo["keyed"], 200, "the echo"), _checked(nudge["keyed"], 202, "POST /api/v1/events, keyed")
    conns = f"{CONNECTIONS} connections, {processes} process(es) of {THREADS} threads"
    return [
        ratio_at_least(f"POST /api/v1/events, {conns}", n1["rate"], "req/s", e1["rate"], "Flask JSON echo", 0.5),
        ratio_at_least(
            f"POST /api/v1/events, server CPU time ({n1['cpu_per_request'] * 1e6:.0f} µs a request)",
            1 / n1["cpu_per_request"],
            "req/CPU-s",
            1 / e1["cpu_per_request"],
            f"Flask JSON echo ({e1['cpu_per_request'] * 1e6:.0f} µs)",
            0.5,
        ),
        ratio_at_least(
            f"POST /api/v1/events with an Idempotency-Key, a new one each (p50 {nk['p50']:.1f} ms, p99 "
            f"{nk['p99']:.0f} ms, {nk['cpu_per_request'] * 1e6:.0f} µs of CPU a request), {conns}",
            nk["rate"],
            "req/s",
            ek["rate"],
            "Flask JSON echo",
            0.5,
        ),
        ratio_at_least(
            "POST /api/v1/events with an Idempotency-Key, server CPU time",
            1 / nk["cpu_per_request"],
            "req/CPU-s",
            1 / ek["cpu_per_request"],
            f"Flask JSON echo ({ek['cpu_per_request'] * 1e6:.0f} µs)",
            0.5,
        ),
        under(
            f"POST /api/v1/events p99 (p50 {n1['p50']:.1f} ms), {conns}",
            n1["p99"],
            "ms",
            e1["p99"],
            "Flask JSON echo p99",
            50,
        ),
        Row(
            f"POST /api/v1/events/batch of {BATCH} (p99 {nb['p99']:.0f} ms), {conns}",
            nb["rate"] * BATCH,
            "events/s",
            eb["rate"] * BATCH,
            "Flask JSON echo of the same body",
            ">= 50,000 events/s",
            nb["rate"] * BATCH >= 50_000,
        ),
        Row(
            f"POST /api/v1/events/batch of {BATCH}, server CPU time",
            BATCH / nb["cpu_per_request"],
            "events/CPU-s",
            BATCH / eb["cpu_per_request"],
            "Flask JSON echo of the same body",
            ">= 50,000 events/s",
            BATCH / nb["cpu_per_request"] >= 50_000,
        ),
    ]


def rows(full: bool) -> list[Row]:
    return measure(10.0 if full else 3.0)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        kind, port, threads, processes, home, redis_url = sys.argv[2:8]
        serve(kind, int(port), int(threads), int(processes), home, redis_url)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        path, port, connections, seconds = sys.argv[2:6]
        request = _requests(Path(path).read_bytes(), keyed=sys.argv[6:7] == ["keyed"])
        result = asyncio.run(_load(int(port), request, int(connections), float(seconds), warmup=0.5))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10 s per load instead of 3 s")
    parser.add_argument("--processes", type=int, default=PROCESSES, help=f"web processes (default {PROCESSES})")
    args = parser.parse_args()
    print(render(measure(10.0 if args.full else 3.0, args.processes)))


if __name__ == "__main__":
    main()

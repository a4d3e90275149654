"""End to end through ``nudge up``: events posted at a steady rate become emails at an SMTP server (issue #12, 5).

``nudge up`` runs as a user runs it (embedded defaults: SQLite and an embedded Redis in a temp instance folder),
with its email channel pointed at a local SMTP sink (bench.smtp_sink, its own process) that notes when it accepted each
mail's DATA, for whom, with which subject. The rule and its two templates are loaded through the API
(``PUT /api/v1/rules``, ``POST /api/v1/templates``, with an admin key made by ``nudge apikey create``), then a
load process posts ``form.submitted`` for distinct contacts at a steady rate (open loop: each POST leaves at its
time whatever the answers before it) with an ingest key. Measured: p99 of "POST sent → the sink accepted that
contact's welcome", and that every contact got the welcome and, 10 s later on the real clock, the follow-up,
each exactly once. Targets: p99 < 1 s; 24,000 mails exactly once (full: 200/s for 60 s).
Run: .venv/bin/python -m bench.bench_e2e [--full]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import _wait_listening, free_port  # noqa: E402
from bench.table import Row, render, under  # noqa: E402

RATE = 200  # events per second
WAIT = 10  # the rule's wait, seconds
CONNECTIONS = 64  # the load's keep-alive connections (waitress serves 100 at most; idle ones count)
RULE = "when form.submitted then send email welcome; wait 10s; send email followup\n"
TEMPLATES = {
    "welcome": {"subject": "Welcome", "txt": "Hello {{ contact.email }}, thanks for signing up.\n"},
    "followup": {"subject": "Following up", "txt": "Hello again {{ contact.email }}.\n"},
}


def email(i: int) -> str:
    return f"e2e{i}@example.com"


# --- the load (its own process) ---


async def _post(pool: asyncio.Queue, request: bytes) -> tuple[float, int, float]:
    """Send *request* on the next free keep-alive connection; when it left, its status and latency."""
    reader, writer = await pool.get()
    sent, start = time.time(), time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    pool.put_nowait((reader, writer))
    return sent, int(head[9:12]), time.perf_counter() - start


async def _load(port: int, key: str, rate: float, seconds: float) -> dict[str, Any]:
    """Post one ``form.submitted`` per contact, the i-th due at start + i/rate (open loop: whatever the answers
    before it, on the next free one of CONNECTIONS connections); when each left, how late, its status, latency."""
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    total = int(rate * seconds)
    tasks = []
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        body = json.dumps(
            {"contact": {"email": email(i)}, "event": "form.submitted", "props": {"form": "newsletter"}}
        ).encode()
        request = (
            f"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        tasks.append(asyncio.ensure_future(_post(pool, request)))
    results = await asyncio.gather(*tasks)
    wall = time.time() - (time.perf_counter() - start)  # the wall-clock time of *start*
    while not pool.empty():
        pool.get_nowait()[1].close()
    return {
        "sent": [sent for sent, _, _ in results],
        "late": [max(0.0, sent - (wall + i / rate)) for i, (sent, _, _) in enumerate(results)],
        "statuses": [status for _, status, _ in results],
        "latencies": [latency for _, _, latency in results],
    }


# --- the run ---


def _api(base: str, method: str, path: str, key: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{base}/api/v1{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _nudge(env: dict[str, str], *args: str) -> str:
    """Run a ``nudge`` command as a user would; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"nudge {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _received(path: str) -> list[tuple[float, str, str]]:
    out = []
    for line in Path(path).read_text().splitlines():
        at, rcpt, subject = line.split(" ", 2)
        out.append((float(at), rcpt, subject))
    return out


def _stamps(database: str) -> dict[str, dict[str, float]]:
    """Per contact, when the database says its welcome went through each stage (epoch seconds): the event
    received, claimed by the engine; the outbox row written (the engine batch's time), claimed by the sender,
    handed to the connection, recorded sent. The stamps are to the microsecond on the live clock. Read once the run
    is over, to say where the time went."""

    def epoch(text: str | None) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() if text else math.nan

    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT c.email, e.received_at, e.processed_at, m.created_at, m.claimed_at, m.sending_at, "
            "m.sent_at "
            "FROM messages m JOIN contacts c ON c.id = m.contact_id JOIN events e ON e.contact_id = c.id "
            "WHERE m.template = 'welcome'"
        ).fetchall()
    names = ("received", "processed", "written", "claimed", "handed", "sent")
    return {row[0]: {name: epoch(value) for name, value in zip(names, row[1:], strict=True)} for row in rows}


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def _env(home: str, sink_port: int) -> dict[str, str]:
    """``nudge up``'s environment: the embedded defaults (whatever the caller's shell says), with what a user sets
    to send marketing email at all (``nudge doctor`` asks for them) and the sink as the SMTP server."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("NUDGE_")}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "NUDGE_HOME": os.path.join(home, "nudge-data"),
        "NUDGE_SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
        "NUDGE_MAIL_FROM": "Bench <news@example.com>",
        "NUDGE_POSTAL_ADDRESS": "1 Bench Street, Testville",
    }


def _await_mails(path: str, expected: int, quiet: float = 120, cap: float = 1800) -> list[tuple[float, str, str]]:
    """The mails received once *expected* are in (then 3 s more, for doubles), or once none came for *quiet* s
    (sends may fall behind a stream of events: few may come for a while after the last POST)."""
    last, count, start = time.monotonic(), 0, time.monotonic()
    while count < expected and time.monotonic() - last < quiet and time.monotonic() - start < cap:
        time.sleep(0.5)
        now = len(_received(path))
        if now != count:
            last, count = time.monotonic(), now
    time.sleep(3)
    return _received(path)


def run(rate: float, seconds: float) -> dict[str, Any]:
    """Bring ``nudge up``, load the rule, post the events, wait for the mails; every figure."""
    home = tempfile.mkdtemp(prefix="nudge-bench-e2e-")
    sink_port, web_port = free_port(), free_port()
    mails = os.path.join(home, "received.txt")
    env = _env(home, sink_port)
    base = f"http://127.0.0.1:{web_port}"
    sink = subprocess.Popen(
        [sys.executable, "-m", "bench.smtp_sink", str(sink_port), mails],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        with open(os.path.join(home, "up.log"), "w") as log:
            up = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "up", "--port", str(web_port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_listening(web_port, up, timeout=180)  # nudge up migrates before it starts the web server
                admin = _nudge(env, "apikey", "create", "--scope", "admin", "--name", "bench").strip()
                ingest = _nudge(env, "apikey", "create", "--scope", "ingest", "--name", "bench").strip()
                for name, parts in TEMPLATES.items():
                    _api(base, "POST", "/templates", admin, {"channel": "email", "name": name, "parts": parts})
                _api(base, "PUT", "/rules", admin, {"text": RULE, "filename": "e2e.nudge"})
                load = json.loads(
                    subprocess.run(
                        [sys.executable, "-m", "bench.bench_e2e", "--load", str(web_port), ingest]
                        + [str(rate), str(seconds)],
                        cwd=ROOT,
                        env=env,
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
                received = _await_mails(mails, 2 * len(load["sent"]))
                stamps = _stamps(os.path.join(env["NUDGE_HOME"], "nudge.db"))
                cpu = _cpu(up.pid)
            finally:
                up.send_signal(signal.SIGINT)
                try:
                    up.wait(60)
                except subprocess.TimeoutExpired:
                    up.kill()
                    up.wait()
    except Exception:
        print(f"nudge up's output is in {home}/up.log", file=sys.stderr)
        raise
    finally:
        sink.terminate()
        sink.wait(10)
    shutil.rmtree(home, ignore_errors=True)
    return {**_figures(load, received, rate), "stages": _stages(load, received, stamps), "cpu_s": cpu}


def _cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) each of ``nudge up``'s processes used so far, by its role: where the work went."""
    import psutil

    roles = {"web": "web", "engine": "worker (engine)", "send": "sender", "scheduler": "scheduler", "redis": "redis"}
    out: dict[str, float] = {}
    for child in psutil.Process(pid).children(recursive=True):
        try:
            words, times = child.cmdline(), child.cpu_times()
        except psutil.Error:
            continue
        text = " ".join(os.path.basename(word) for word in words)  # no folder names: they may contain "web"
        role = next((name for key, name in roles.items() if key in text), text[-40:])
        out[role] = round(out.get(role, 0.0) + times.user + times.system, 1)
    return out


def _stages(
    load: dict[str, Any], received: list[tuple[float, str, str]], stamps: dict[str, dict[str, float]]
) -> dict[str, list[float]]:
    """Where a welcome's time went, stage by stage: [p50, p99] in ms of each step from the POST to the sink."""
    accepted = {rcpt: at for at, rcpt, subject in sorted(received, reverse=True) if subject == "Welcome"}
    steps: dict[str, list[float]] = {}
    for i, sent in enumerate(load["sent"]):
        stamp = stamps.get(email(i))
        if stamp is None or email(i) not in accepted:
            continue
        points = [("post", sent), *stamp.items(), ("sink", accepted[email(i)])]
        for (a, t0), (b, t1) in itertools.pairwise(points):
            steps.setdefault(f"{a}->{b}", []).append((t1 - t0) * 1000)
    return {step: [round(_percentile(v, 0.5), 1), round(_percentile(v, 0.99), 1)] for step, v in steps.items()}


def _figures(load: dict[str, Any], received: list[tuple[float, str, str]], rate: float) -> dict[str, Any]:
    total = len(load["sent"])
    wrong = Counter(s for s in load["statuses"] if s != 202)
    if wrong:
        raise RuntimeError(f"POST /api/v1/events answered {dict(wrong)} besides 202")
    subjects = {"Welcome": "welcome", "Following up": "followup"}
    counts: Counter[tuple[str, str]] = Counter()
    welcome_at: dict[str, float] = {}
    followup_after: list[float] = []
    for at, rcpt, subject in sorted(received):
        template = subjects.get(subject, subject)
        counts[rcpt, template] += 1
        if template == "welcome":
            welcome_at.setdefault(rcpt, at)
    for at, rcpt, subject in received:
        if subjects.get(subject) == "followup" and rcpt in welcome_at:
            followup_after.append(at - welcome_at[rcpt])
    latencies = [welcome_at[email(i)] - sent for i, sent in enumerate(load["sent"]) if email(i) in welcome_at]
    wanted = {(email(i), t) for i in range(total) for t in ("welcome", "followup")}
    lost = sum(1 for k in wanted if counts[k] == 0)
    doubled = sum(n - 1 for k, n in counts.items() if k in wanted and n > 1)
    stray = sum(n for k, n in counts.items() if k not in wanted)
    return {
        "events": total,
        "posting_rate": (total - 1) / max(1e-9, max(load["sent"]) - min(load["sent"])),
        "post_p50": _percentile(load["latencies"], 0.50) * 1000,
        "post_p99": _percentile(load["latencies"], 0.99) * 1000,
        "late_p99": _percentile(load["late"], 0.99) * 1000,
        "p50": _percentile(latencies, 0.50) * 1000,
        "p99": _percentile(latencies, 0.99) * 1000,
        "max": max(latencies, default=float("nan")) * 1000,
        "followup_gap_p50": _percentile(followup_after, 0.5),
        "expected": 2 * total,
        "exactly_once": sum(1 for k in wanted if counts[k] == 1),
        "lost": lost,
        "doubled": doubled,
        "stray": stray,
        "rate": rate,
    }


def rows(full: bool) -> list[Row]:
    return measure(60.0 if full else 10.0)


def measure(seconds: float) -> list[Row]:
    """The rows of one run posting for *seconds*."""
    f = run(RATE, seconds)
    print(json.dumps(f), flush=True)
    stages = f["stages"]
    slowest = max(stages, key=lambda step: stages[step][0]) if stages else "-"
    where = f"; slowest step {slowest.replace('->', ' -> ')} p50 {stages[slowest][0] / 1000:.1f} s" if stages else ""
    cpu = ", ".join(f"{role} {seconds:.0f}" for role, seconds in sorted(f["cpu_s"].items(), key=lambda kv: -kv[1]))
    where += f"; CPU s: {cpu}" if cpu else ""
    size = f"{f['events']:,} events posted at {f['posting_rate']:.0f}/s, nudge up (SQLite, embedded Redis)"
    exact = f["exactly_once"] == f["expected"] and not f["lost"] and not f["doubled"] and not f["stray"]
    return [
        under(
            f"end to end: welcome p99 event -> SMTP accept (p50 {f['p50']:.0f} ms, max {f['max']:.0f} ms"
            f"{where}), {size}",
            f["p99"],
            "ms",
            f["post_p99"],
            "POST /api/v1/events -> 202 p99",
            1000,
        ),
        Row(
            f"end to end: mails exactly once (not arrived {f['lost']}, doubled {f['doubled']}, other {f['stray']}; "
            f"follow-up {f['followup_gap_p50']:.1f} s after the welcome, p50), {size}",
            f["exactly_once"],
            "mails",
            f["expected"],
            "mails due: 2 per event posted",
            f"{f['expected']:,} exactly once",
            exact,
        ),
    ]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        port, key, rate, seconds = sys.argv[2:6]
        print(json.dumps(asyncio.run(_load(int(port), key, float(rate), float(seconds)))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="200 events/s for 60 s instead of 10 s")
    parser.add_argument("--seconds", type=float, help="post for this long instead")
    args = parser.parse_args()
    print(render(measure(args.seconds) if args.seconds else rows(args.full)))


if __name__ == "__main__":
    main()

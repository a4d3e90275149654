"""`nudge up` as a newcomer runs it: real processes, embedded Redis, a real SMTP server."""

import json
import os
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest

from .cli.helpers import Up
from .servers import free_port

pytestmark = pytest.mark.slow


def _descendants(pid):
    return psutil.Process(pid).children(recursive=True)


def _env(tmp_path, smtp_server):
    """``nudge up``'s environment: no ``NUDGE_*`` of the caller's, an instance in *tmp_path*, mail to *smtp_server*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update(
        {
            "NUDGE_HOME": str(tmp_path / "home"),
            "NUDGE_SMTP_URL": smtp_server.url,
            "NUDGE_SCHEDULER_INTERVAL": "0.2",
            "NUDGE_POSTAL_ADDRESS": "Acme Ltd, 1 Main Street, Springfield",
        }
    )
    return env


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_serves_the_smoke_flow_and_stops_cleanly(tmp_path, smtp_server, sig):
    port = free_port()
    env = _env(tmp_path, smtp_server)
    up = Up("--port", str(port), env=env)
    proc = up.proc
    try:
        assert up.wait_up(90), up.text
        text = up.text
        assert f"http://127.0.0.1:{port}/admin/" in text
        assert "First admin login: admin@localhost / " in text
        # the start-up checks speak of the address links will carry, the one up listens on
        assert f"NUDGE_BASE_URL is http://127.0.0.1:{port}:" in text
        children = _descendants(proc.pid)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "web" in names and "worker" in names and "scheduler" in names and "redis-server" in names

        examples = os.path.join(os.path.dirname(__file__), "..", "examples", "welcome")
        applied = subprocess.run(
            [sys.executable, "-m", "server.cli", "apply", examples], env=env, capture_output=True, text=True
        )
        assert applied.returncode == 0, applied.stderr
        assert "+ rule 'Welcome' (new, v1)" in applied.stdout
        key = (
            subprocess.run(
                [sys.executable, "-m", "server.cli", "apikey", "create", "--scope", "ingest"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/events",
            method="POST",
            data=json.dumps(
                {"contact": {"email": "new@example.com"}, "event": "form.submitted", "props": {"form": "trial"}}
            ).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 202
        [msg] = smtp_server.wait_for(1, timeout=60)
        assert msg["To"] == "new@example.com"

        proc.send_signal(sig)
        assert proc.wait(60) == 0, up.text
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"left behind: {[c.cmdline() for c in alive]}"
    finally:
        up.close()


def _run(env, *args):
    done = subprocess.run([sys.executable, "-m", "server.cli", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _call(port, key, path, body):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}",
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status


def test_up_sends_from_a_worker_of_its_own_while_event_work_waits(tmp_path, smtp_server):
    """Sends have their own worker: with the engine's worker held (as if busy with a stream of events) and events
    still arriving, a broadcast goes out; the events' welcomes follow once the engine's worker runs again, once."""
    port = free_port()
    env = _env(tmp_path, smtp_server)
    up = Up("--port", str(port), env=env)
    engine = None
    try:
        assert up.wait_up(90), up.text
        workers = {" ".join(c.cmdline()): c for c in _descendants(up.proc.pid) if "worker" in c.cmdline()}
        [engine] = [c for cmd, c in workers.items() if "--queues engine" in cmd]
        [_sender] = [c for cmd, c in workers.items() if "--queues send" in cmd]
        assert len(workers) == 2, list(workers)

        examples = os.path.join(os.path.dirname(__file__), "..", "examples", "welcome")
        _run(env, "apply", examples)
        admin = _run(env, "apikey", "create", "--scope", "admin")
        ingest = _run(env, "apikey", "create", "--scope", "ingest")
        assert _call(port, admin, "/contacts", {"email": "vip@example.com", "tags": ["vip"]}) == 201
        assert _call(port, admin, "/segments", {"name": "vips", "condition": 'tag == "vip"'}) == 201

        engine.suspend()  # SIGSTOP: event jobs pile up behind it
        for i in range(3):
            event = {"contact": {"email": f"new{i}@example.com"}, "event": "form.submitted", "props": {"form": "x"}}
            assert _call(port, ingest, "/events", event) == 202
        _run(env, "broadcast", "email", "welcome", "--segment", "vips")
        [msg] = smtp_server.wait_for(1, timeout=60)
        assert msg["To"] == "vip@example.com"

        engine.resume()
        mails = smtp_server.wait_for(4, timeout=60)
        assert sorted(m["To"] for m in mails) == [
            "new0@example.com",
            "new1@example.com",
            "new2@example.com",
            "vip@example.com",
        ]
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(60) == 0, up.text
    finally:
        if engine is not None and engine.is_running():
            engine.resume()
        up.close()

"""`nudge up` as a newcomer runs it: real processes, embedded Redis, a real SMTP server."""
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request

import psutil
import pytest

from .servers import free_port

pytestmark = pytest.mark.slow


def _descendants(pid):
    return psutil.Process(pid).children(recursive=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_serves_the_smoke_flow_and_stops_cleanly(tmp_path, smtp_server, sig):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update({"NUDGE_HOME": str(tmp_path / "home"), "NUDGE_SMTP_URL": smtp_server.url,
                "NUDGE_SCHEDULER_INTERVAL": "0.2", "NUDGE_POSTAL_ADDRESS": "Acme Ltd, 1 Main Street, Springfield"})
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "up", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    up_seen = threading.Event()

    def reader():
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                up_seen.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        assert up_seen.wait(90), "".join(lines)
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/admin/" in text
        assert "First admin login: admin@localhost / " in text
        children = _descendants(proc.pid)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "web" in names and "worker" in names and "scheduler" in names and "redis-server" in names

        examples = os.path.join(os.path.dirname(__file__), "..", "examples", "welcome")
        applied = subprocess.run([sys.executable, "-m", "server.cli", "apply", examples], env=env,
                                 capture_output=True, text=True)
        assert applied.returncode == 0, applied.stderr
        assert "+ rule 'Welcome' (new, v1)" in applied.stdout
        key = subprocess.run([sys.executable, "-m", "server.cli", "apikey", "create", "--scope", "ingest"],
                             env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/events", method="POST",
            data=json.dumps({"contact": {"email": "new@example.com"}, "event": "form.submitted",
                             "props": {"form": "trial"}}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 202
        [msg] = smtp_server.wait_for(1, timeout=60)
        assert msg["To"] == "new@example.com"

        proc.send_signal(sig)
        assert proc.wait(60) == 0, "".join(lines)
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"left behind: {[c.cmdline() for c in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            for child in _descendants(proc.pid):
                child.kill()
            proc.wait()
        thread.join(10)
        proc.stdout.close()

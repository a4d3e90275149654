"""``nudge up`` on a busy port, ``make run PORT=…``, and ``nudge admin password`` choosing a password (issue #9, 21)."""

from __future__ import annotations

import http.cookiejar
import re
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from ..servers import free_port
from .helpers import ROOT, Up, nudge


def sign_in(base: str, email: str, password: str) -> int:
    """Sign in through the real admin login page; the status of the page it ends on."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"{base}/admin/login", timeout=10) as page:
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode()).group(1)
    form = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": token}).encode()
    try:
        with opener.open(f"{base}/admin/login", data=form, timeout=10) as landed:
            assert landed.url == f"{base}/admin/", landed.url
            return landed.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def busy_port():
    """A port held by a real listening socket."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.slow
def test_a_busy_port_stops_up_in_one_line_before_any_password_and_keeps_the_first_admin(tmp_path, busy_port):
    env = {"NUDGE_HOME": str(tmp_path / "home")}
    failed = nudge("up", "--port", str(busy_port), cwd=tmp_path, env=env, timeout=60)
    assert failed.returncode == 1
    assert failed.stdout == "" and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines() == [
        f"Error: port {busy_port} on 127.0.0.1 is already in use: stop what uses it, or choose another port "
        f"(nudge up --port {busy_port + 1}, or make run PORT={busy_port + 1})"
    ]

    # the next start on a free port shows the first admin's one-time password, and it signs in
    port = free_port()
    up = Up("--port", str(port), env=env, cwd=tmp_path)
    try:
        assert up.wait_up(120), up.text
        email, password = re.search(r"First admin login: (\S+) / (\S+)", up.text).groups()
        base = f"http://127.0.0.1:{port}"
        assert sign_in(base, email, password) == 200
        assert sign_in(base, email, password + "x") == 401
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(60) == 0, up.text
    finally:
        up.close()


def test_web_on_a_busy_port_says_so_in_one_line(app, config, busy_port, tmp_path):
    env = {f"NUDGE_{k}": str(v) for k, v in config.items()}
    result = nudge("web", "--port", str(busy_port), "--no-migrate", cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: port {busy_port} on 127.0.0.1 is already in use: stop what uses it, or choose another port "
        f"(nudge up --port {busy_port + 1}, or make run PORT={busy_port + 1})"
    )


def test_make_run_passes_port_to_nudge_up(tmp_path):
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), "run", "PORT=8123", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{tmp_path / 'venv'}/bin/nudge up --port 8123"


# -- nudge admin password ------------------------------------------------------------------------------------
def _settings(config) -> dict[str, str]:
    return {f"NUDGE_{k}": str(v) for k, v in config.items()}


def test_password_from_stdin_signs_in_through_the_admin_login(app, client, config, tmp_path):
    chosen = "correct horse battery staple"
    # deprecation warnings as errors: reading stdin must not go through an API Click deprecates
    result = nudge(
        "admin",
        "password",
        "Owner@Example.com",
        "--password-stdin",
        cwd=tmp_path,
        env={**_settings(config), "PYTHONWARNINGS": "error::DeprecationWarning"},
        input=chosen + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert chosen not in result.stdout + result.stderr  # never echoed
    assert result.stderr.strip() == "Password set for owner@example.com."
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    wrong = client.post(
        "/admin/login", data={"email": "owner@example.com", "password": chosen[:-1], "csrf_token": token}
    )
    assert wrong.status_code == 401
    response = client.post("/admin/login", data={"email": "owner@example.com", "password": chosen, "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/")
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize(
    "password, reason",
    [
        ("", "it is empty"),
        ("short", "it has 5 characters; use at least 12"),
        ("aaaaaaaaaaaaaaaaaaaa", "it uses fewer than 5 different characters"),
        ("password1234", "it is too easy to guess"),
        ("owner-owner-owner", "it is too easy to guess"),
        ("tab\tinside-a-long-one", "it holds control characters"),
    ],
)
def test_weak_or_empty_passwords_are_refused_and_change_nothing(app, config, tmp_path, password, reason):
    from sqlalchemy import func, select

    from server.db import get_session
    from server.models import User

    result = nudge(
        "admin",
        "password",
        "owner@example.com",
        "--password-stdin",
        cwd=tmp_path,
        env=_settings(config),
        input=password + "\n",
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: password refused: {reason}")
    assert line.endswith("(leave out --prompt/--password-stdin for a random one)")
    with app.app_context():
        assert get_session().scalar(select(func.count(User.id))) == 0


def test_prompt_asks_twice_and_the_random_default_stays(runner, app, client):
    chosen = "a long and private phrase"
    mismatch = runner.invoke(["admin", "password", "owner@example.com", "--prompt"], input=f"{chosen}\n{chosen}!\n")
    assert mismatch.exit_code != 0 and "do not match" in mismatch.output
    asked = runner.invoke(["admin", "password", "owner@example.com", "--prompt"], input=f"{chosen}\n{chosen}\n")
    assert asked.exit_code == 0, asked.output
    assert chosen not in asked.output
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    signed = client.post("/admin/login", data={"email": "owner@example.com", "password": chosen, "csrf_token": token})
    assert signed.status_code == 302

    random = runner.invoke(["admin", "password", "owner@example.com"])
    assert random.exit_code == 0
    assert len(random.output.strip().splitlines()[-1]) >= 16
    both = runner.invoke(["admin", "password", "owner@example.com", "--prompt", "--password-stdin"])
    assert both.exit_code == 2 and "either --prompt or --password-stdin" in both.output

import os
import subprocess
import sys

import pytest

from server import __version__

from .helpers import post_event


def nudge(*args, env=None, timeout=60):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def test_version():
    result = nudge("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"nudge {__version__}"


@pytest.mark.parametrize(
    "url,needle",
    [
        ("postgresql://nudge:secret@127.0.0.1:1/nudge", "cannot connect to the database"),
        ("mysql://root@localhost/nudge", "unsupported database 'mysql'"),
        ("nonsense", "is not a database URL"),
    ],
)
def test_bad_database_url_is_one_readable_line(tmp_path, url, needle):
    result = nudge("worker", env={"NUDGE_HOME": str(tmp_path), "NUDGE_DATABASE_URL": url})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0] and "NUDGE_DATABASE_URL" in lines[0]
    assert "secret" not in result.stderr  # passwords never printed


def test_apikey_create_prints_the_key_last(runner, app, client):
    result = runner.invoke(["apikey", "create", "--scope", "ingest", "--name", "website"])
    assert result.exit_code == 0
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("nk_ingest_")
    assert post_event(client, key).status_code == 202


def test_apikey_scope_is_checked(runner):
    result = runner.invoke(["apikey", "create", "--scope", "root"])
    assert result.exit_code == 2 and "'ingest', 'admin'" in result.output


def test_admin_password_resets_and_signs_in(runner, app, client):
    import re

    result = runner.invoke(["admin", "password", "owner@example.com"])
    password = result.output.strip().splitlines()[-1]
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(
        "/admin/login", data={"email": "owner@example.com", "password": password, "csrf_token": token}
    )
    assert response.status_code == 302


def test_scheduler_once_requeues_from_the_database(runner, app, client, smtp_server):
    from server.queue import get_queue

    from .helpers import api_key, load_rules, run_worker

    load_rules(app)
    post_event(client, api_key(app))
    get_queue(app).redis.flushall()
    result = runner.invoke(["scheduler", "--once"], env={"NUDGE_REQUEUE_AFTER": "0.001"})
    assert result.exit_code == 0
    run_worker(app)
    assert len(smtp_server.wait_for(1)) == 1

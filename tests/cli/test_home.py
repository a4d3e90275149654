"""Every command finds the instance as the server does, and only ``up``/``db upgrade`` create one (issue #9, 20)."""

from __future__ import annotations

import sqlite3

import pytest

from .helpers import EXAMPLE, nudge

REFUSING = [
    ("apply", str(EXAMPLE)),
    ("apikey", "create", "--scope", "ingest"),
    ("rules", "list"),
    ("worker", "--burst"),
    ("scheduler", "--once"),
    ("web", "--port", "1"),
]


@pytest.mark.parametrize("args", REFUSING, ids=[" ".join(a[:2]) for a in REFUSING])
def test_a_command_run_outside_any_project_refuses_in_one_line_and_creates_nothing(tmp_path, args):
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    result = nudge(*args, cwd=elsewhere)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    line = lines[0]
    assert "no Nudge instance found" in line
    for folder in (elsewhere, elsewhere.parent, tmp_path):  # names where it looked ...
        assert str(folder / "nudge-data") in line
    assert "NUDGE_HOME" in line and "nudge up" in line  # ... and what to do
    assert list(tmp_path.rglob("*")) == [elsewhere.parent, elsewhere], "nothing was created"


def test_commands_in_a_sub_folder_find_the_project_instance(tmp_path):
    project = tmp_path / "project"
    (project / "rules" / "deep").mkdir(parents=True)
    created = nudge("db", "upgrade", cwd=project)
    assert created.returncode == 0, created.stderr
    assert (project / "nudge-data" / "nudge.db").is_file()

    applied = nudge("apply", str(EXAMPLE), cwd=project / "rules" / "deep")
    assert applied.returncode == 0, applied.stderr
    assert "+ rule 'Welcome' (new, v1)" in applied.stdout
    assert not (project / "rules" / "deep" / "nudge-data").exists()
    with sqlite3.connect(project / "nudge-data" / "nudge.db") as db:
        assert db.execute("SELECT name FROM rules").fetchall() == [("Welcome",)]
    listed = nudge("rules", "list", cwd=project)
    assert listed.stdout.startswith("Welcome\tactive\tv1"), listed.stdout + listed.stderr


def test_nudge_home_pointing_at_an_empty_folder_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = nudge("apikey", "create", "--scope", "ingest", cwd=tmp_path, env={"NUDGE_HOME": str(empty)})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: NUDGE_HOME: {empty} holds no Nudge instance (no nudge.db) (set NUDGE_HOME to the folder "
        "`nudge up` created, or create it with `nudge up` or `nudge db upgrade`)"
    )
    assert list(empty.iterdir()) == []


def test_a_sqlite_url_to_a_missing_file_is_refused(tmp_path):
    missing = tmp_path / "nowhere.db"
    result = nudge(
        "worker",
        "--burst",
        cwd=tmp_path,
        env={"NUDGE_DATABASE_URL": f"sqlite:///{missing}", "NUDGE_SECRET_KEY": "x" * 32},
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"Error: NUDGE_DATABASE_URL: no database at {missing}")
    assert not missing.exists()


def test_a_worker_on_postgresql_needs_no_local_instance(tmp_path, postgres_server, redis_server):
    url = postgres_server.new_database(f"home_{tmp_path.name[-12:].lower().replace('-', '_')}")
    result = nudge(
        "worker",
        "--burst",
        cwd=tmp_path,
        env={
            "NUDGE_DATABASE_URL": url,
            "NUDGE_REDIS_URL": redis_server.url,
            "NUDGE_SECRET_KEY": "x" * 32,
            "NUDGE_QUEUE_NAME": f"home-{tmp_path.name}",
        },
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == [], "no embedded instance folder next to a PostgreSQL worker"

"""``nudge backup`` of a running instance in the middle of a journey, ``nudge restore`` into another one, and the
journeys go on there: every message arrives once, none is lost or doubled (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from server.db import make_engine
from server.models import Message

from ..helpers import api_key, post_event
from ..test_backup import cli
from .conftest import Processes
from .journey import install_series, received, wait_until

pytestmark = pytest.mark.slow

RULE = """rule "Series"
when signup.completed then
  send email a
  wait 1d
  send email b
end
"""
SETTINGS = {"SCHEDULER_INTERVAL": 0.2, "LOG_LEVEL": "WARNING"}
FIRST = [f"first{i}@example.com" for i in range(3)]  # got "a" before the backup; wait a day for "b"
SECOND = [f"second{i}@example.com" for i in range(3)]  # "a" is in the outbox, unsent, when the backup is taken


def outbox_rows(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(select(Message.template, Message.status)).all()]
    finally:
        engine.dispose()


def test_a_backup_taken_mid_journey_restores_elsewhere_and_the_journeys_go_on(
    app, client, config, smtp_server, clock, processes, tmp_path, backend, request
):
    install_series(app, RULE)
    procs = processes(**SETTINGS)
    procs.start("worker", "--queues", "engine")
    sender = procs.start("worker", "--queues", "send")
    procs.start("scheduler")
    key = api_key(app)
    for email in FIRST:
        assert post_event(client, key, email=email, event="signup.completed").status_code == 202
    wait_until(lambda: len(received(smtp_server)) == len(FIRST), 60, procs.tail)

    sender.terminate()  # the outbox fills up and is not emptied: its rows are in the backup, unsent
    sender.wait(30)
    for email in SECOND:
        assert post_event(client, key, email=email, event="signup.completed").status_code == 202
    wait_until(lambda: len(outbox_rows(config["DATABASE_URL"])) == len(FIRST) + len(SECOND), 60, procs.tail)

    archive = tmp_path / "backups" / "mid-journey.tar.gz"
    made = cli(procs.env, "backup", str(archive))  # while the worker and the scheduler run
    assert made.returncode == 0, made.stderr
    assert "database: 100%" in made.stderr or "pg_dump" in made.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == "manifest.json"
    procs.stop()
    pending = outbox_rows(config["DATABASE_URL"])
    assert sorted(status for template, status in pending if template == "a") == ["pending"] * 3 + ["sent"] * 3

    # another instance: its own home, database and queue, no secret key of its own: the backup brings it
    home = tmp_path / "restored"
    if backend == "sqlite":
        url = f"sqlite:///{home / 'nudge.db'}"
    else:
        url = request.getfixturevalue("postgres_server").new_database(f"restored_{os.getpid()}_{tmp_path.name[-8:]}")
    elsewhere = {k: v for k, v in config.items() if k != "SECRET_KEY"}
    elsewhere.update(HOME=str(home), DATABASE_URL=url, QUEUE_NAME=f"{config['QUEUE_NAME']}-restored")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update({f"NUDGE_{k}": str(v) for k, v in elsewhere.items()})
    restored = cli(env, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert (home / "secret_key").read_text().strip() == config["SECRET_KEY"]
    assert stat.S_IMODE((home / "secret_key").stat().st_mode) == 0o600
    assert sorted(outbox_rows(url)) == sorted(pending)

    again = cli(env, "restore", str(archive))
    assert again.returncode == 1 and "is not empty: restore only goes into an empty instance" in again.stderr

    there = Processes(elsewhere, tmp_path / "logs-restored", **SETTINGS)
    try:
        there.start("worker", "--queues", "engine")
        there.start("worker", "--queues", "send")
        there.start("scheduler")
        clock.advance(timedelta(days=1, minutes=1))
        expected = {(email, step) for email in FIRST + SECOND for step in ("a", "b")}
        wait_until(lambda: len(received(smtp_server)) >= len(expected), 90, there.tail)
        assert dict(received(smtp_server)) == dict.fromkeys(expected, 1)
        wait_until(lambda: all(s == "sent" for _t, s in outbox_rows(url)), 30, there.tail)
    finally:
        there.stop()
    assert len(outbox_rows(url)) == len(expected)


def _rewritten(archive: Path, out: Path, name: str, change) -> Path:
    """A copy of *archive* with the member *name* passed through *change*."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            data = change(data) if member.name == name else data
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out


def test_a_damaged_backup_or_one_from_a_newer_schema_is_refused_and_nothing_is_written(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    source = {**base, "NUDGE_HOME": str(tmp_path / "source")}
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "nudge.toml").write_text('default_timezone = "Europe/Paris"\n')
    assert cli(source, "db", "upgrade").returncode == 0
    archive = tmp_path / "good.tar.gz"
    assert cli(source, "backup", str(archive)).returncode == 0
    twice = cli(source, "backup", str(archive))
    assert twice.returncode == 1 and "exists already: choose another file name" in twice.stderr

    damaged = _rewritten(archive, tmp_path / "damaged.tar.gz", "secret_key", lambda data: data + b"x")
    newer = _rewritten(
        archive,
        tmp_path / "newer.tar.gz",
        "manifest.json",
        lambda data: json.dumps({**json.loads(data), "schema_revision": ["9999"]}).encode(),
    )
    target = {**base, "NUDGE_HOME": str(tmp_path / "target")}
    out = cli(target, "restore", str(damaged))
    assert out.returncode == 1 and "secret_key does not match its checksum: the backup is damaged" in out.stderr
    out = cli(target, "restore", str(newer))
    assert out.returncode == 1 and "schema revision 9999 is newer than this Nudge" in out.stderr
    out = cli(target, "restore", str(tmp_path / "nothing.tar.gz"))
    assert out.returncode == 1 and "no such file" in out.stderr
    with sqlite3.connect(tmp_path / "target" / "nudge.db") as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,), "nothing half-written"

    out = cli(target, "restore", str(archive))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "target" / "secret_key").read_text() == (tmp_path / "source" / "secret_key").read_text()
    assert (tmp_path / "target" / "nudge.toml").read_text() == 'default_timezone = "Europe/Paris"\n'

"""The automatic backup before migrations (kept ``BACKUP_KEEP`` deep, switched off by ``BACKUP_BEFORE_UPGRADE``),
and ``nudge backup`` on PostgreSQL refusing a missing or too old ``pg_dump`` with a clear error."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from server.db import make_engine
from server.migrate import current_revisions, head_revisions, upgrade

FIRST = "0001"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def instance_env(tmp_path: Path, url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUDGE_")}
    env.update(NUDGE_HOME=str(tmp_path / "home"), NUDGE_DATABASE_URL=url, NUDGE_SECRET_KEY="s" * 24)
    env.update({f"NUDGE_{key}": value for key, value in settings.items()})
    return env


def at_first_schema(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine, FIRST)
    finally:
        engine.dispose()


def auto_backups(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "home" / "backups").glob("pre-upgrade-*.tar.gz"))


@pytest.mark.slow
def test_db_upgrade_backs_up_first_and_keeps_the_newest_backups(database_url, tmp_path):
    env = instance_env(tmp_path, database_url, BACKUP_KEEP="2")
    made = []
    for _ in range(3):
        wipe(database_url)  # a new instance at the first schema, each time: one to upgrade again
        at_first_schema(database_url)
        done = cli(env, "db", "upgrade")
        assert done.returncode == 0, done.stderr
        assert "backed up to " in done.stderr
        made.append(done.stderr.split("backed up to ")[1].split()[0])
    kept = auto_backups(tmp_path)
    assert [str(p) for p in kept] == made[1:], "the oldest automatic backup is deleted beyond BACKUP_KEEP"
    assert stat.S_IMODE(kept[0].stat().st_mode) == 0o600
    with tarfile.open(kept[-1]) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["schema_revision"] == [FIRST]
    assert manifest["database"] == ("sqlite" if database_url.startswith("sqlite") else "postgresql")
    assert set(manifest["files"]) >= {"secret_key"} and all(len(f["sha256"]) == 64 for f in manifest["files"].values())

    again = cli(env, "db", "upgrade")  # nothing pending: no backup
    assert again.returncode == 0 and "backed up" not in again.stderr
    assert len(auto_backups(tmp_path)) == 2


def wipe(url: str) -> None:
    """Leave the database empty (no tables, no schema revision)."""
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        return
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


def test_no_backup_for_a_new_database_or_when_switched_off(database_url, tmp_path):
    fresh = cli(instance_env(tmp_path, database_url), "db", "upgrade")
    assert fresh.returncode == 0 and "backed up" not in fresh.stderr and not auto_backups(tmp_path)

    wipe(database_url)
    url = database_url
    at_first_schema(url)
    off = cli(instance_env(tmp_path, url, BACKUP_BEFORE_UPGRADE="false"), "db", "upgrade")
    assert off.returncode == 0 and "backed up" not in off.stderr, off.stderr
    assert not auto_backups(tmp_path)


@pytest.fixture
def pg_url(postgres_server):
    return postgres_server.new_database(f"backup_{uuid.uuid4().hex[:12]}")


def _path_with(tmp_path: Path, script: str | None) -> str:
    """A PATH holding only a ``pg_dump`` printing *script*'s version (None: no pg_dump at all)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    if script is not None:  # an old client cannot be installed here: this one only says its version
        fake = bindir / "pg_dump"
        fake.write_text(f"#!/bin/sh\necho 'pg_dump (PostgreSQL) {script}'\n")
        fake.chmod(0o755)
    return str(bindir)


@pytest.mark.postgresql
def test_a_missing_or_older_pg_dump_is_refused_and_nothing_is_migrated(pg_url, tmp_path):
    at_first_schema(pg_url)
    env = instance_env(tmp_path, pg_url)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    env["PATH"] = _path_with(tmp_path, None)
    missing = cli(env, "backup")
    assert missing.returncode == 1
    assert "pg_dump was not found on PATH: install the PostgreSQL client tools" in missing.stderr

    upgrading = cli(env, "db", "upgrade")
    assert upgrading.returncode == 1
    assert "the backup before migrating failed, so nothing was migrated" in upgrading.stderr
    assert "NUDGE_BACKUP_BEFORE_UPGRADE=false" in upgrading.stderr
    engine = make_engine(pg_url)
    try:
        assert current_revisions(engine) == {FIRST}
    finally:
        engine.dispose()

    old = tmp_path / "old"
    old.mkdir()
    env["PATH"] = _path_with(old, "9.6.24")
    older = cli(env, "backup", str(tmp_path / "b.tar.gz"))
    assert older.returncode == 1
    assert (
        "is version 9 but the PostgreSQL server is version" in older.stderr
        and "pg_dump must be at least" in older.stderr
    )
    assert not (tmp_path / "b.tar.gz").exists()
    assert not list(tmp_path.glob("**/.nudge-backup-*")), "no half-written backup is left"

    env["PATH"] = os.environ["PATH"]
    fine = cli(env, "db", "upgrade")
    assert fine.returncode == 0, fine.stderr
    engine = make_engine(pg_url)
    try:
        assert current_revisions(engine) == head_revisions()
    finally:
        engine.dispose()


def test_a_sqlite_backup_is_one_snapshot_while_writers_go_on(tmp_path, monkeypatch):
    import sqlite3
    import threading

    from server import backup

    monkeypatch.setattr(backup, "PAGES_PER_STEP", 8)  # many steps, for writes to land between them
    live = tmp_path / "live.db"
    conn = sqlite3.connect(live, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, blob BLOB)")
    conn.executemany("INSERT INTO t (blob) VALUES (randomblob(4000))", [()] * 500)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()

    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        own = sqlite3.connect(live, isolation_level=None, timeout=0)  # a writer that would fail if made to wait
        while not stop.is_set():
            own.execute("INSERT INTO t (blob) VALUES (randomblob(100))")
            written.append(1)
        own.close()

    steps: list[str] = []
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 5:  # the writer is under way
            stop.wait(0.01)
        backup._copy_sqlite(f"sqlite:///{live}", tmp_path / "copy.db", steps.append)
        during = len(written)
        stop.wait(0.2)
    finally:
        stop.set()
        thread.join()
    assert len(written) > during, "the writer went on while the copy was made"
    copy = sqlite3.connect(tmp_path / "copy.db")
    count, top = copy.execute("SELECT count(*), max(id) FROM t").fetchone()
    copy.close()
    assert count == top and 500 < count < 500 + len(written), "the copy is one snapshot: the rows up to a moment"
    percents = [int(line.split(": ")[1].split("%")[0]) for line in steps]
    assert percents == sorted(percents), f"the copy restarted from the first page: {percents} ({pages} pages)"

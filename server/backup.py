"""Online backups of an instance, and restores into an empty one (``nudge backup``, ``nudge restore``).

A backup is one ``tar.gz`` (mode 0600): ``manifest.json`` first (Nudge version, schema revision, database kind,
time, a SHA-256 per file), then the database — a copy made with SQLite's backup API in steps, all inside one
read transaction (one snapshot; in WAL mode writers go on meanwhile), or a ``pg_dump`` custom-format archive, also
one snapshot — the secret key in use and the instance's ``nudge.toml`` when it has one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, make_url

from . import __version__

FORMAT = 1
MANIFEST = "manifest.json"
SECRET = "secret_key"
CONFIG = "nudge.toml"
DATABASE = {"sqlite": "nudge.db", "postgresql": "database.pgdump"}
#: pages copied per step of SQLite's backup API (4 MiB at the default page size); writers wait at most one step
PAGES_PER_STEP = 1024
#: the automatic backups taken before migrations, in ``$NUDGE_HOME/backups/`` (the only ones ``BACKUP_KEEP`` prunes)
AUTO_PREFIX = "pre-upgrade-"

Progress = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore could not be made; the message says why and what to do. Nothing was left half-written."""


def _quiet(_message: str) -> None:
    return None


def database_kind(url: str) -> str:
    """``sqlite`` or ``postgresql``, from a database URL."""
    return make_url(url).get_backend_name()


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL; raises :class:`BackupError` for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored; use a file database")
    return Path(database)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _revisions_of(engine: Engine) -> list[str]:
    from .migrate import current_revisions

    return sorted(current_revisions(engine))


# -- PostgreSQL tools --------------------------------------------------------------------------------------------
def _pg_env(url: str) -> dict[str, str]:
    """libpq's variables for *url*: the password travels in the environment, never on a command line."""
    parsed: URL = make_url(url)
    env = dict(os.environ)
    for var, value in (
        ("PGHOST", parsed.host),
        ("PGPORT", parsed.port),
        ("PGUSER", parsed.username),
        ("PGPASSWORD", parsed.password),
        ("PGDATABASE", parsed.database),
        ("PGSSLMODE", parsed.query.get("sslmode")),
    ):
        if value:
            env[var] = str(value)
    return env


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} was not found on PATH: install the PostgreSQL client tools of the server's version "
            "(Debian/Ubuntu: apt install postgresql-client)"
        )
    return found


def _tool_major(tool: str) -> int:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"(\d+)(?:\.\d+)?", out)
    if found is None:
        raise BackupError(f"cannot tell the version of {tool} (it printed {out.strip()!r})")
    return int(found.group(1))


def _server_major(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def _check_pg_tool(name: str, engine: Engine) -> str:
    """The path of *name* (pg_dump or pg_restore), refused when its major version is older than the server's."""
    tool = _pg_tool(name)
    mine, server = _tool_major(tool), _server_major(engine)
    if mine < server:
        raise BackupError(
            f"{tool} is version {mine} but the PostgreSQL server is version {server}: {name} must be at least the "
            f"server's version; install postgresql-client-{server} and put its {name} first on PATH"
        )
    return tool


def _run_pg(args: list[str], url: str, what: str) -> None:
    done = subprocess.run(args, env=_pg_env(url), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"{what} failed: {detail}")


# -- taking a backup ----------------------------------------------------------------------------------------------
def _copy_sqlite(url: str, dest: Path, progress: Progress) -> None:
    """Copy the live database with SQLite's backup API, a step of pages at a time, from one snapshot."""
    source_path = sqlite_path(url)
    if not source_path.is_file():
        raise BackupError(f"no database at {source_path}")
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30, isolation_level=None)
    target = sqlite3.connect(dest)
    shown = {"percent": -1}

    def step(_status: int, remaining: int, total: int) -> None:
        percent = 100 * (total - remaining) // max(total, 1)
        if percent // 10 != shown["percent"] // 10:
            shown["percent"] = percent
            progress(f"  database: {percent}% of {total} pages")

    try:
        # one read transaction over every step: the copy is of one snapshot (WAL lets writers go on meanwhile);
        # without it, each write by Nudge between two steps would restart the copy from the first page
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchall()
        source.backup(target, pages=PAGES_PER_STEP, progress=step)
        source.execute("COMMIT")
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        problems = target.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        raise BackupError(f"copying the SQLite database {source_path} failed: {exc}") from None
    finally:
        target.close()
        source.close()
    if problems != [("ok",)]:
        raise BackupError(f"the copy of {source_path} failed its integrity check: {problems[:3]}")


def _sqlite_revisions(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return sorted(row[0] for row in conn.execute("SELECT version_num FROM alembic_version"))
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def _dump_postgres(engine: Engine, url: str, dest: Path, progress: Progress) -> None:
    tool = _check_pg_tool("pg_dump", engine)
    progress("  database: pg_dump (custom format, one consistent snapshot)")
    _run_pg([tool, "--format=custom", "--no-owner", "--no-privileges", f"--file={dest}"], url, "pg_dump")


def _config_file(settings: Mapping[str, Any]) -> Path | None:
    named = settings.get("CONFIG")
    path = Path(named) if named else Path(settings["HOME"]) / CONFIG
    return path if path.is_file() else None


def default_path(settings: Mapping[str, Any], prefix: str = "nudge-") -> Path:
    """``$NUDGE_HOME/backups/<prefix><UTC time>.tar.gz``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return Path(settings["HOME"]) / "backups" / f"{prefix}{stamp}.tar.gz"


def create_backup(
    settings: Mapping[str, Any], engine: Engine, path: Path | None = None, progress: Progress = _quiet
) -> Path:
    """Write a backup of the running instance to *path* (a file, or a folder to put one in); return its path.

    :raises BackupError: when the database cannot be copied or the file cannot be written; no file is left.
    """
    url = engine.url.render_as_string(hide_password=False)
    kind = database_kind(url)
    if kind not in DATABASE:
        raise BackupError(f"cannot back up a {kind} database (only SQLite and PostgreSQL)")
    target = default_path(settings) if path is None else path
    if target.is_dir():
        target = target / default_path(settings).name
    if target.exists():
        raise BackupError(f"{target} exists already: choose another file name (a backup never overwrites one)")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix=".nudge-backup-", dir=target.parent) as work:
        folder = Path(work)
        files: dict[str, Path] = {}
        db_file = folder / DATABASE[kind]
        if kind == "sqlite":
            _copy_sqlite(url, db_file, progress)
            revisions = _sqlite_revisions(db_file)
        else:
            revisions = _revisions_of(engine)
            _dump_postgres(engine, url, db_file, progress)
        files[DATABASE[kind]] = db_file
        secret = folder / SECRET
        secret.write_text(str(settings["SECRET_KEY"]) + "\n")
        files[SECRET] = secret
        config = _config_file(settings)
        if config is not None:
            files[CONFIG] = config
        manifest = {
            "format": FORMAT,
            "nudge_version": __version__,
            "schema_revision": revisions,
            "database": kind,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {name: {"sha256": _sha256(p), "size": p.stat().st_size} for name, p in files.items()},
        }
        progress(f"  writing {target}")
        partial = folder / "backup.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            blob = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(blob), 0o600, int(datetime.now(UTC).timestamp())
            tar.addfile(info, io.BytesIO(blob))
            for name, file in files.items():
                tar.add(file, arcname=name, recursive=False, filter=_private)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, target)  # whole or not at all
    return target


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
    return info


# -- the automatic backup before migrations ---------------------------------------------------------------------------
def backup_before_upgrade(settings: Mapping[str, Any], engine: Engine, progress: Progress = _quiet) -> Path | None:
    """Back up a database holding data before migrations change it (``BACKUP_BEFORE_UPGRADE``), keeping the newest
    ``BACKUP_KEEP`` automatic backups; return the new file, or None when switched off.

    :raises BackupError: when the backup fails: the upgrade must not go ahead without one.
    """
    if not settings.get("BACKUP_BEFORE_UPGRADE", True):
        return None
    folder = Path(settings["HOME"]) / "backups"
    try:
        made = create_backup(settings, engine, default_path(settings, AUTO_PREFIX), progress)
    except BackupError as exc:
        raise BackupError(
            f"the backup before migrating failed, so nothing was migrated: {exc} "
            "(fix that, or set NUDGE_BACKUP_BEFORE_UPGRADE=false to migrate without one)"
        ) from None
    keep = int(settings.get("BACKUP_KEEP") or 5)
    for old in sorted(folder.glob(f"{AUTO_PREFIX}*.tar.gz"))[:-keep]:
        old.unlink(missing_ok=True)
    return made


# -- restoring ----------------------------------------------------------------------------------------------------
def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the backup at *path*; raises :class:`BackupError` when it is not a Nudge backup."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            manifest = json.loads(member.read())
    except FileNotFoundError:
        raise BackupError(f"no such file {path}") from None
    except (tarfile.TarError, KeyError, OSError, ValueError) as exc:
        raise BackupError(f"{path} is not a Nudge backup (no readable {MANIFEST}: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: unknown backup format {manifest.get('format')!r} (this Nudge reads {FORMAT})")
    return manifest


@contextmanager
def _unpacked(path: Path, manifest: dict[str, Any], into: Path) -> Iterator[dict[str, Path]]:
    """Extract exactly the files the manifest lists, each checked against its SHA-256."""
    out: dict[str, Path] = {}
    with tarfile.open(path, "r:gz") as tar:
        for name, meta in manifest["files"].items():
            if "/" in name or name.startswith("."):
                raise BackupError(f"{path}: refusing a file named {name!r} in the manifest")
            member = tar.extractfile(name)
            if member is None:
                raise BackupError(f"{path}: {name} is listed in the manifest but missing from the archive")
            dest = into / name
            with dest.open("wb") as fh:
                shutil.copyfileobj(member, fh)
            if _sha256(dest) != meta["sha256"]:
                raise BackupError(f"{path}: {name} does not match its checksum: the backup is damaged")
            out[name] = dest
    yield out


def _check_revisions(manifest: dict[str, Any], url: str) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from .migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config(url))
    for revision in manifest["schema_revision"]:
        try:
            script.get_revision(revision)
        except CommandError:
            raise BackupError(
                f"the backup's schema revision {revision} is newer than this Nudge {__version__} knows "
                f"(made by Nudge {manifest.get('nudge_version')}): upgrade Nudge first, then restore"
            ) from None


def instance_is_empty(engine: Engine) -> bool:
    """Whether the database holds no tables at all (a restore goes only into such a one)."""
    from sqlalchemy import inspect

    with engine.connect() as conn:
        return not inspect(conn).get_table_names()


def _restore_sqlite(db_file: Path, url: str, progress: Progress) -> None:
    target = sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".restoring")
    shutil.copyfile(db_file, partial)
    conn = sqlite3.connect(partial)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    if not ok:
        partial.unlink()
        raise BackupError("the database in the backup fails SQLite's integrity check: the backup is damaged")
    for side in ("-wal", "-shm", "-journal"):  # of the empty database being replaced
        target.with_name(target.name + side).unlink(missing_ok=True)
    os.replace(partial, target)
    progress(f"  database: {target}")


def _restore_postgres(db_file: Path, engine: Engine, url: str, progress: Progress) -> None:
    tool = _check_pg_tool("pg_restore", engine)
    progress("  database: pg_restore in one transaction")
    _run_pg(
        [
            tool,
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            f"--dbname={make_url(url).database}",
            str(db_file),
        ],
        url,
        "pg_restore",
    )


def _write_private(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".restoring")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(partial, path)


def restore_backup(
    settings: Mapping[str, Any], engine: Engine, path: Path, progress: Progress = _quiet
) -> dict[str, Any]:
    """Restore the backup at *path* into this instance, which must be empty, then migrate it up; return its manifest.

    :raises BackupError: for a damaged or foreign backup, a schema newer than this code, a different database kind,
        or an instance holding data; nothing is written then.
    """
    manifest = read_manifest(path)
    url = engine.url.render_as_string(hide_password=False)
    kind = database_kind(url)
    if manifest["database"] != kind:
        raise BackupError(
            f"{path} holds a {manifest['database']} database but this instance uses {kind}: "
            "restore into an instance of the same kind (NUDGE_DATABASE_URL)"
        )
    _check_revisions(manifest, url)
    if not instance_is_empty(engine):
        raise BackupError(
            f"the database at {engine.url.render_as_string(hide_password=True)} is not empty: restore only goes "
            "into an empty instance (a new NUDGE_HOME, or a new empty PostgreSQL database)"
        )
    home = Path(settings["HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=".nudge-restore-", dir=home) as work,
        _unpacked(path, manifest, Path(work)) as files,
    ):
        name = DATABASE[kind]
        if name not in files:
            raise BackupError(f"{path} holds no {name}")
        engine.dispose()
        if kind == "sqlite":
            _restore_sqlite(files[name], url, progress)
        else:
            _restore_postgres(files[name], engine, url, progress)
        if SECRET in files:
            _write_private(home / SECRET, files[SECRET].read_bytes())
        if CONFIG in files:
            where = home / CONFIG
            if where.exists():
                where = home / f"{CONFIG}.from-backup"
            _write_private(where, files[CONFIG].read_bytes())
            progress(f"  configuration: {where}")
    engine.dispose()
    from .migrate import upgrade

    if upgrade(engine):
        progress("  migrated to this version's schema")
    return manifest

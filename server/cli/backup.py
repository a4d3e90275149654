"""``nudge backup`` and ``nudge restore``: an online backup of the instance, and a restore into an empty one."""

from __future__ import annotations

from pathlib import Path

import click


def register(group: click.Group) -> None:
    """Add ``backup`` and ``restore`` to the ``nudge`` command group."""
    group.add_command(backup_command, "backup")
    group.add_command(restore_command, "restore")


def _echo(line: str) -> None:
    click.echo(line, err=True)


@click.command("backup")
@click.argument("path", required=False, type=click.Path(path_type=Path))
def backup_command(path: Path | None) -> None:
    """Back up the running instance (database, secret key, nudge.toml) to PATH, a .tar.gz of mode 0600.

    PATH defaults to $NUDGE_HOME/backups/nudge-<UTC time>.tar.gz; a folder gets a file of that name. Nudge may
    keep running: SQLite is copied with its backup API a step at a time, PostgreSQL with pg_dump.
    """
    from ..backup import BackupError, create_backup
    from ..db import get_db
    from . import build_app

    app = build_app(MIGRATE_ON_START=False)
    _echo("Backing up…")
    try:
        made = create_backup(app.config, get_db(app).engine, path, _echo)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Backup written to {made}")


@click.command("restore")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def restore_command(path: Path) -> None:
    """Restore the backup at PATH into this instance, which must be empty (a new NUDGE_HOME, or an empty
    PostgreSQL database), then apply migrations; checksums and the schema revision are checked first."""
    from ..backup import BackupError, restore_backup
    from ..config import ConfigError, load_config
    from ..db import DatabaseUnavailable, check_connection, make_engine

    try:
        settings = load_config({"MIGRATE_ON_START": False}, create=True)
        engine = make_engine(settings["DATABASE_URL"])
        check_connection(engine)
    except (ConfigError, DatabaseUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    _echo(f"Restoring {path}…")
    try:
        manifest = restore_backup(settings, engine, path, _echo)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(
        f"Restored the backup of {manifest['created_at']} (Nudge {manifest['nudge_version']}, schema "
        f"{'+'.join(manifest['schema_revision']) or 'none'}) into {settings['HOME']}"
    )

"""Settings saved in the admin UI, layered under the config file and the environment, seen by every process.

The effective configuration is, lowest first: the defaults < the database (``settings`` table, saved at
/admin/settings/ and /admin/channels/) < the config file (``nudge.toml``) < ``NUDGE_*`` variables < the options
the app was built with. Operators keep control: a value set in the file or the environment wins, and the admin
UI shows it read-only, naming where it comes from.

A change is seen without a restart: each job, and a web process at most once every ``SETTINGS_RECHECK`` seconds
(one second by default, so that the hot ingest path does not pay a query per request), first reads the settings'
version (one primary-key SELECT); when another process moved it on, the stored settings are read again,
validated by the same :func:`server.config.load_config` as at start-up, and put into ``app.config`` (and the
channels' settings).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy import select, update

from .config import SETTINGS, ConfigError, load_config, sources
from .db import READ_ONLY, get_session
from .models import SettingsVersion, StoredSetting, utcnow
from .queue import BEFORE_JOB

_KEY = "nudge.settings"
SCOPE = "settings"
#: settings that cannot come from the database: they say where the database is, or how processes start
NEVER_STORED = frozenset(
    {
        "HOME",
        "CONFIG",
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "QUEUE_NAME",
        "PLUGINS",
        "LOAD_ENTRY_POINTS",
        "MIGRATE_ON_START",
        "TESTING",
        "TEST_CLOCK_FILE",
        "LOG_LEVEL",
        "SETTINGS_RECHECK",
        "WEB_PROCESSES",
    }
)


_VERSION = select(SettingsVersion.__table__.c.version).where(SettingsVersion.__table__.c.scope == SCOPE)


@dataclass
class _State:
    """What an app needs to rebuild its configuration: how it was built, and the version it last read."""

    overrides: dict[str, Any]
    create: bool
    version: int | None = None
    stored: dict[str, Any] = field(default_factory=dict)
    checked: float = float("-inf")  # when (UNIX seconds, the app's clock) this process last read the version


def init_app(app: Flask, overrides: Mapping[str, Any] | None, create: bool) -> None:
    """Remember how *app* was configured, read the stored settings, and re-read them before every request and job."""
    from sqlalchemy import inspect

    if not inspect(app.extensions["nudge.db"].engine).has_table(SettingsVersion.__tablename__):
        # a database not migrated yet (NUDGE_MIGRATE_ON_START off, a throwaway simulation's before its schema is
        # made): the start-up settings are all there is until the process starts again on a migrated database
        return
    app.extensions[_KEY] = _State(dict(overrides or {}), create)
    refresh(app)

    @app.before_request
    def _refresh() -> None:
        refresh(app, at_most_every=app.config["SETTINGS_RECHECK"])

    app.extensions.setdefault(BEFORE_JOB, []).append(refresh)


def stored_values(session: Any) -> dict[str, Any]:
    """The settings saved in the database, by key."""
    return {row.key: row.value for row in session.scalars(select(StoredSetting))}


def refresh(app: Flask, *, at_most_every: float = 0.0) -> bool:
    """Bring ``app.config`` up to date with the stored settings if they changed since this process last read them.

    Reads on a connection of its own, in a read-only transaction ended at once: the request's or job's session
    is left alone (on SQLite its transactions take the write lock). Costs one primary-key SELECT when nothing
    changed, and nothing when this process read the version less than *at_most_every* seconds ago.

    :return: True when the configuration was rebuilt.
    """
    state: _State | None = app.extensions.get(_KEY)
    if state is None:
        return False
    now = app.extensions["nudge.clock"]().timestamp()
    if 0 <= now - state.checked < at_most_every:
        return False
    state.checked = now
    with app.extensions["nudge.db"].engine.connect() as conn:
        conn = conn.execution_options(**{READ_ONLY: True})
        version = conn.execute(_VERSION).scalar() or 0
        if version == state.version:
            return False
        table = StoredSetting.__table__
        stored = {row.key: row.value for row in conn.execute(select(table.c.key, table.c.value))}
    config, channels = effective(app, stored)
    for key in set(state.stored) - set(config):  # a plugin's setting no longer stored and unset elsewhere
        app.config.pop(key, None)
    app.config.update(config)
    app.extensions["nudge.plugins"].settings.update(channels)
    state.version, state.stored = version, stored
    return True


def effective(app: Flask, stored: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The configuration *stored* would give, validated as at start-up, and every channel's settings under it.

    :raises ConfigError: naming the first invalid setting.
    """
    state: _State = app.extensions[_KEY]
    config = load_config(state.overrides, create=state.create, stored=stored)
    config["TESTING"] = app.config.get("TESTING", config["TESTING"])  # tests turn it on after building the app
    pm = app.extensions["nudge.plugins"]
    channels = pm.channel_settings(config)
    check_plugin_settings(config, pm.channels)
    return config, channels


def check_plugin_settings(config: Mapping[str, Any], channels: Mapping[str, Any]) -> None:
    """The settings that name channels name installed ones (checked once the plugins are loaded).

    :raises server.config.ConfigError: naming the setting.
    """
    _check_teams(config["TEAMS"], channels)
    _check_tracking(config, channels)
    _check_consent(config, channels)


def _check_teams(teams: Any, channels: Mapping[str, Any]) -> None:
    """Every team member names an installed channel (checked once the plugins are loaded)."""
    from .teams import check_channels

    problem = check_channels(teams, channels)
    if problem:
        raise ConfigError("TEAMS", problem)


def _check_tracking(config: Mapping[str, Any], channels: Mapping[str, Any]) -> None:
    """``UNTRACKED_CHANNELS`` names installed channels (checked once the plugins are loaded)."""
    from .engine.tracking import tracking_problem

    problem = tracking_problem(config, channels)
    if problem:
        raise ConfigError("UNTRACKED_CHANNELS", problem)


def _check_consent(config: Mapping[str, Any], channels: Mapping[str, Any]) -> None:
    """``CONSENT_REQUIRED`` names installed channels that address contacts with a consent rule."""
    from .engine.policy import consent_required_problem

    problem = consent_required_problem(config, channels)
    if problem:
        raise ConfigError("CONSENT_REQUIRED", problem, "unset it to follow each channel's own rule")


def overridden(app: Flask) -> dict[str, str]:
    """Settings set above the database, and where: ``{key: "the environment"}``; these cannot be changed here."""
    return sources(app.extensions[_KEY].overrides)


def check(app: Flask, changes: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with applying *changes* (``{key: value}``, None to unset), per setting; empty when all is well.

    All of them are checked together (a setting may need another); each error names its setting, which is then left
    out and the rest checked again, so that every wrong field gets its own error.
    """
    base = dict(app.extensions[_KEY].stored)
    errors: dict[str, str] = {}
    left = dict(changes)
    while left:
        problem = _problem(app, _apply(base, left))
        if problem is None:
            break
        key = problem[0] if problem[0] in left else next(iter(left))
        errors[key] = problem[1]
        del left[key]
    return errors


def _apply(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _problem(app: Flask, stored: Mapping[str, Any]) -> tuple[str, str] | None:
    try:
        effective(app, stored)
    except ConfigError as exc:
        text = exc.problem + (f" ({exc.hint})" if exc.hint else "")
        return exc.key, text
    return None


def save(app: Flask, changes: Mapping[str, Any], actor: str) -> dict[str, str]:
    """Validate and store *changes* (None unsets), move the version on and apply them here; audited.

    :return: the errors per setting; nothing is stored unless there are none.
    """
    bad = [key for key in changes if key in NEVER_STORED or key in overridden(app)]
    if bad:
        return {key: f"NUDGE_{key} cannot be changed here" for key in bad}
    errors = check(app, changes)
    if errors or not changes:
        return errors
    from .contacts import audit

    session = get_session()
    for key, value in changes.items():
        row = session.get(StoredSetting, key)
        if value is None:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(StoredSetting(key=key, value=value, updated_by=actor, updated_at=utcnow()))
        else:
            row.value, row.updated_by, row.updated_at = value, actor, utcnow()
    bump(session)
    audit(session, actor, "settings.changed", "settings", None, keys=sorted(changes))
    session.commit()
    refresh(app)
    return {}


def bump(session: Any) -> None:
    """Move the settings' version on in the caller's transaction: every process re-reads at its next request or job."""
    moved = session.execute(
        update(SettingsVersion).where(SettingsVersion.scope == SCOPE).values(version=SettingsVersion.version + 1)
    )
    if not moved.rowcount:
        session.add(SettingsVersion(scope=SCOPE, version=1))
    session.flush()


def stored_rows(session: Any, keys: Iterable[str]) -> dict[str, StoredSetting]:
    """The stored rows of *keys* (who saved each, when)."""
    keys = list(keys)
    return {row.key: row for row in session.scalars(select(StoredSetting).where(StoredSetting.key.in_(keys)))}


def spec(app: Flask, key: str) -> dict[str, Any]:
    """The declaration of setting *key*: the core's, else the channel's that declares it."""
    if key in SETTINGS:
        return SETTINGS[key]
    for cls in app.extensions["nudge.plugins"].channels.values():
        if key in cls.config_schema:
            return dict(cls.config_schema[key])
    raise KeyError(key)


__all__ = [
    "NEVER_STORED",
    "bump",
    "check",
    "check_plugin_settings",
    "effective",
    "init_app",
    "overridden",
    "refresh",
    "save",
    "spec",
    "stored_rows",
    "stored_values",
]

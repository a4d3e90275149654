"""Configuration: defaults < instance config file < ``NUDGE_*`` environment variables.

Every value is validated once, at start-up; a bad one raises :class:`ConfigError`
naming the variable, what is wrong with it and what to do.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "NUDGE_"

#: Every core setting: its type (as in a plugin's ``config_schema``: string, int, float, bool, file), default
#: and what it does. Keys are the names used in ``app.config``; the environment variable is ``NUDGE_<KEY>``.
#: docs/configuration.md is generated from these and the built-in plugins' schemas (``make docs``).
SETTINGS: dict[str, dict[str, Any]] = {
    "HOME": {
        "type": "string",
        "default": "./nudge-data",
        "help": "where the embedded database, Redis and the secret key live; unset: the nearest nudge-data "
        "folder in the current directory or above, else ./nudge-data (only nudge up and nudge db "
        "upgrade create one)",
    },
    "CONFIG": {
        "type": "file",
        "help": "a TOML file of settings (keys without NUDGE_, any case); default "
        "$NUDGE_HOME/nudge.toml when it exists",
    },
    "DATABASE_URL": {
        "type": "string",
        "secret": True,
        "help": "default sqlite:///$NUDGE_HOME/nudge.db; postgresql://user:pass@host/db for production",
    },
    "REDIS_URL": {
        "type": "string",
        "help": "redis://host:6379/0 to share one Redis between machines; default an embedded Redis in NUDGE_HOME",
    },
    "SECRET_KEY": {
        "type": "string",
        "secret": True,
        "help": "signs sessions and links (at least 16 characters); default generated into "
        "$NUDGE_HOME/secret_key. Set the same on every machine",
    },
    "BASE_URL": {
        "type": "string",
        "default": "http://127.0.0.1:8000",
        "help": "the public address used in links and unsubscribe URLs; https:// in production",
    },
    "TRUSTED_PROXY": {
        "type": "string",
        "help": "the address of the reverse proxy in front of nudge web (127.0.0.1 when Caddy or nginx runs on the "
        "same machine): clients' addresses and https are then read from its X-Forwarded-For and X-Forwarded-Proto; "
        "unset, those headers are ignored",
    },
    "DEFAULT_TIMEZONE": {
        "type": "string",
        "default": "UTC",
        "help": "IANA time zone for contacts without one (quiet hours, at 09:00, schedules)",
    },
    "PHONE_REGION": {
        "type": "string",
        "help": "country (e.g. DE) assumed for phone numbers given without +<country code> "
        "in the API, forms and imports",
    },
    "QUEUE_NAME": {"type": "string", "default": "nudge", "help": "the name of the RQ queue in Redis"},
    "SCHEDULER_INTERVAL": {"type": "float", "default": 1.0, "help": "seconds between scheduler ticks"},
    "REQUEUE_AFTER": {
        "type": "float",
        "default": 30.0,
        "help": "seconds before unprocessed events and unclaimed sends are re-enqueued, and a "
        "sending row becomes unknown",
    },
    "RETAIN_EVENTS_DAYS": {
        "type": "int",
        "default": 400,
        "help": "days processed events are kept (tracking hits included); the stats keep their counts "
        "(docs/retention.md)",
    },
    "RETAIN_TRACKING_DAYS": {
        "type": "int",
        "default": 400,
        "help": "days opens and clicks (<channel>.opened, .clicked events) are kept; less than "
        "RETAIN_EVENTS_DAYS to drop them earlier",
    },
    "RETAIN_JOURNEY_LOG_DAYS": {
        "type": "int",
        "default": 400,
        "help": "days the journey trace (nudge explain) is kept; a journey in flight keeps all of its own",
    },
    "RETAIN_ENROLMENTS_DAYS": {
        "type": "int",
        "default": 400,
        "help": "days finished journeys are kept; each contact's latest journey in a rule is always kept",
    },
    "RETAIN_MESSAGES_DAYS": {
        "type": "int",
        "default": 400,
        "help": "days sent, failed and suppressed outbox rows and their status history are kept",
    },
    "RETAIN_RECEIPTS_DAYS": {
        "type": "int",
        "default": 90,
        "help": "days provider reports already handled are remembered (a replay older than that is handled again)",
    },
    "CLEANUP_INTERVAL": {
        "type": "float",
        "default": 3600.0,
        "help": "seconds between the scheduler's retention cleanups (nudge cleanup runs one by hand)",
    },
    "ENGINE_LEASE": {
        "type": "float",
        "default": 120.0,
        "help": "seconds a leased batch of due enrolments belongs to one job before it is handed on",
    },
    "ENGINE_SET_WISE_EVENTS": {
        "type": "bool",
        "default": True,
        "help": "process a batch of events set-wise where their rules allow (same effects as one by one, "
        "many times faster); off: every event through the interpreter",
    },
    "ENGINE_EVENT_BATCH": {
        "type": "int",
        "default": 2000,
        "help": "events one process-events job handles: its own, then other pending ones (oldest first) up to "
        "this many, so that a worker takes events in large batches however they were enqueued (1: its own only)",
    },
    "RETRY_BASE": {
        "type": "float",
        "default": 30.0,
        "help": "seconds before the first retry of a failed send (doubles, with jitter)",
    },
    "FREQUENCY_CAP": {
        "type": "string",
        "help": "e.g. 3/7d: at most 3 marketing messages per contact in any 7 days; unset: no cap",
    },
    "MAX_ATTEMPTS": {
        "type": "int",
        "default": 8,
        "help": "tries (1-100) before a failing send fails, and before a failing event or journey step "
        "is parked for an operator (nudge messages)",
    },
    "AMBIGUOUS_SENDS": {
        "type": "string",
        "default": "hold",
        "help": "a send that may have reached the provider (its worker died mid-send, the connection "
        "dropped): hold it as unknown for an operator (never twice), or resend it (never lost, "
        "rarely twice); see docs/engine.md",
    },
    "TEMPLATE_TIME_LIMIT": {"type": "float", "default": 0.5, "help": "seconds a template part may take to render"},
    "TEMPLATE_MAX_OUTPUT": {
        "type": "int",
        "default": 1_000_000,
        "help": "characters a rendered template part (and each string or list in it) may have",
    },
    "FORM_RATE_LIMIT": {"type": "int", "default": 20, "help": "submissions per IP address per hour to a hosted form"},
    "VISIT_RATE_LIMIT": {"type": "int", "default": 600, "help": "site-tracking visits per IP address per hour"},
    "TRACK_DOMAINS": {
        "type": "string",
        "help": "comma-separated sites running the tracking snippet; clicks to them carry a visitor id",
    },
    "MACHINE_SECONDS": {
        "type": "float",
        "default": 10.0,
        "help": "an open or click this many seconds after sending counts as a machine's (machine: true)",
    },
    "MACHINE_CLICK_BURST": {
        "type": "int",
        "default": 3,
        "help": "a click on the last of this many different links of one message within "
        "NUDGE_MACHINE_CLICK_BURST_SECONDS is a link scanner's, and so are the others (at least 2)",
    },
    "MACHINE_CLICK_BURST_SECONDS": {
        "type": "float",
        "default": 3.0,
        "help": "the window of NUDGE_MACHINE_CLICK_BURST, in seconds",
    },
    "TRACK_OPENS": {
        "type": "bool",
        "default": True,
        "help": "an open pixel in the HTML part of every tracked message (see docs/tracking.md)",
    },
    "TRACK_CLICKS": {
        "type": "bool",
        "default": True,
        "help": "links in the HTML part of every tracked message go through a signed click redirect",
    },
    "TRACK_TEXT_LINKS": {
        "type": "bool",
        "default": False,
        "help": "the URLs in plain-text parts go through the click redirect too",
    },
    "TRACK_TRANSACTIONAL": {
        "type": "bool",
        "default": False,
        "help": "track transactional messages (double opt-in confirmations) as well as marketing ones",
    },
    "UNTRACKED_CHANNELS": {
        "type": "string",
        "help": "comma-separated channels whose messages are never tracked, e.g. email",
    },
    "LOG_LEVEL": {"type": "string", "default": "INFO", "help": "DEBUG, INFO, WARNING, ERROR or CRITICAL"},
    "MIGRATE_ON_START": {
        "type": "bool",
        "default": True,
        "help": "every process applies pending migrations when it starts",
    },
    "PLUGINS": {
        "type": "string",
        "help": "comma-separated modules of the built-in plugins to load; default plugins.email_smtp, "
        "plugins.sms_twilio, plugins.webhook",
    },
    "LOAD_ENTRY_POINTS": {
        "type": "bool",
        "default": True,
        "help": "load third-party plugins from the nudge.plugins entry points",
    },
    "TEAMS": {
        "type": "string",
        "help": "who rules' notify/task steps reach: sales=ana@x.example,bob@x.example;ops=webhook:ops-hook, "
        "or JSON, or a [teams] table in nudge.toml (see docs/engine.md)",
    },
    "TESTING": {
        "type": "bool",
        "default": False,
        "help": "for Nudge's own tests only: allows NUDGE_TEST_CLOCK_FILE. Never set it in production",
    },
    "TEST_CLOCK_FILE": {
        "type": "string",
        "help": "for Nudge's own tests only (refused unless NUDGE_TESTING is on): a file holding the "
        "seconds the engine's clock runs ahead of the real time (see docs/engine.md)",
    },
}

#: every core setting with its default (None: unset, or computed at start-up), derived from :data:`SETTINGS`
DEFAULTS: dict[str, Any] = {key: spec.get("default") for key, spec in SETTINGS.items()}

_FLOATS = {key for key, spec in SETTINGS.items() if spec["type"] == "float"}
_INTS = {key for key, spec in SETTINGS.items() if spec["type"] == "int"}
_BOOLS = {key for key, spec in SETTINGS.items() if spec["type"] == "bool"}

#: the instance folder ``nudge up`` creates, and every command looks for, when ``NUDGE_HOME`` is not set
HOME_FOLDER = "nudge-data"
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_AMBIGUOUS_SENDS = ("hold", "resend")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and the fix."""

    def __init__(self, key: str, problem: str, hint: str = ""):
        self.key = key
        self.variable = ENV_PREFIX + key
        self.problem = problem
        self.hint = hint
        text = f"{self.variable}: {problem}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class NoInstance(ConfigError):
    """No instance where one was looked for, and this command may not create one."""


def mask_url(url: str) -> str:
    """Return *url* with any password replaced by ``***`` so it can be logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _coerce(key: str, value: Any) -> Any:
    if key in _FLOATS or key in _INTS:
        try:
            number = float(value) if key in _FLOATS else int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                key, f"must be {'a number' if key in _FLOATS else 'a whole number'}, got {value!r}"
            ) from None
        if number <= 0:
            raise ConfigError(key, f"must be greater than 0, got {value!r}")
        return number
    if key in _BOOLS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key, f"must be true or false, got {value!r}")
    return value


def _validate_database_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "DATABASE_URL",
            f"{mask_url(url)!r} is not a database URL",
            "use sqlite:////path/to/nudge.db or postgresql://user:pass@host:5432/nudge",
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            "DATABASE_URL", f"unsupported database {backend!r}", "Nudge runs on sqlite:// or postgresql://"
        )
    if backend == "postgresql" and parsed.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver we ship in the [postgres] extra.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _validate_redis_url(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            "REDIS_URL",
            f"scheme must be redis://, rediss:// or unix://, got {scheme or 'none'!r}",
            "example: redis://localhost:6379/0, or leave it unset for the embedded Redis",
        )
    return url


def _validate_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            "BASE_URL", f"must be an absolute http(s) URL, got {url!r}", "example: https://nudge.example.com"
        )
    return url.rstrip("/")


_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([smhdw])\s*$")


def _validate_frequency_cap(text: str) -> str:
    match = _CAP.match(text)
    if match is None or int(match[1]) < 1 or int(match[2]) < 1:
        raise ConfigError(
            "FREQUENCY_CAP",
            f"must be a count and a window such as 3/7d, got {text!r}",
            "3/7d = at most 3 marketing messages per contact in any 7 days; units s, m, h, d, w; "
            "leave it unset for no cap",
        )
    return f"{int(match[1])}/{int(match[2])}{match[3]}"


def _validate_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            "DEFAULT_TIMEZONE", f"unknown time zone {name!r}", "use an IANA name like Europe/Berlin"
        ) from None
    return name


def _validate_teams(value: Any) -> dict[str, Any]:
    from .teams import EXAMPLE, parse_teams

    try:
        return parse_teams(value)
    except ValueError as exc:
        raise ConfigError("TEAMS", str(exc), EXAMPLE if EXAMPLE not in str(exc) else "") from None


def _secret_key(home: Path) -> str:
    """Read the instance's secret key, creating it (mode 0600) on first use."""
    path = home / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


@dataclass(frozen=True)
class Home:
    """Where an instance lives, and how it was found."""

    path: Path
    #: the folders searched for ``nudge-data`` (empty when ``NUDGE_HOME`` named the place)
    looked_at: tuple[Path, ...] = ()

    @property
    def explicit(self) -> bool:
        return not self.looked_at


def find_home(explicit: str | None = None, cwd: Path | None = None) -> Home:
    """The instance folder: one answer for every command and every process of ``nudge up``.

    ``NUDGE_HOME`` when it is set; else the nearest ``nudge-data`` folder in the current directory or
    one of its parents (so commands run from a sub-folder of the project find it); else
    ``./nudge-data`` in the current directory, where ``nudge up`` creates a new instance.
    """
    if explicit:
        return Home(Path(explicit).expanduser().resolve())
    here = (cwd or Path.cwd()).resolve()
    looked = tuple(folder / HOME_FOLDER for folder in (here, *here.parents))
    found = next((path for path in looked if path.is_dir()), None)
    return Home(found or looked[0], looked)


def _require_instance(home: Home, url: str, explicit_url: bool) -> None:
    """Refuse to start on an embedded SQLite database that does not exist yet: only ``nudge up`` and
    ``nudge db upgrade`` create one (a command run from the wrong folder must not make an empty instance)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return  # PostgreSQL, or an in-memory database: nothing is created on disk
    database = Path(parsed.database)
    if database.exists():
        return
    todo = "create it with `nudge up` or `nudge db upgrade`"
    if explicit_url:
        raise NoInstance("DATABASE_URL", f"no database at {database}", todo)
    if home.explicit:
        raise NoInstance(
            "HOME",
            f"{home.path} holds no Nudge instance (no {database.name})",
            f"set NUDGE_HOME to the folder `nudge up` created, or {todo}",
        )
    if home.path.is_dir():
        raise NoInstance(
            "HOME",
            f"{home.path} holds no Nudge instance (no {database.name})",
            f"run this from the project folder, set NUDGE_HOME, or {todo}",
        )
    looked = ", ".join(str(path) for path in home.looked_at)
    raise NoInstance(
        "HOME",
        f"no Nudge instance found (looked for {looked})",
        "run this from the project folder, set NUDGE_HOME, or start one with `nudge up`",
    )


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("CONFIG", f"{path} is not valid TOML: {exc}") from None
    out = {}
    for key, value in data.items():
        name = key.upper().removeprefix(ENV_PREFIX)
        out[name] = value
    return out


def load_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None, create: bool = True
) -> dict[str, Any]:
    """Build the validated settings dict.

    :param overrides: values passed to ``create_app(config=...)``; they win over everything.
    :param environ: the environment to read ``NUDGE_*`` from (default ``os.environ``).
    :param create: whether a new embedded SQLite instance may be created; when False, a missing one
        raises :class:`ConfigError` naming the places looked at (PostgreSQL is never created here).
    :return: settings keyed by name without the ``NUDGE_`` prefix, plus Flask's ``SECRET_KEY``.
    :raises ConfigError: for the first invalid setting.
    """
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    env = {k[len(ENV_PREFIX) :]: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}

    found = find_home(overrides.get("HOME") or env.get("HOME"))
    home = found.path
    config_file = overrides.get("CONFIG") or env.get("CONFIG")
    file_values: dict[str, Any] = {}
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError("CONFIG", f"no such file {str(path)!r}")
        file_values = _read_file(path)
    elif (home / "nudge.toml").is_file():
        file_values = _read_file(home / "nudge.toml")

    settings: dict[str, Any] = dict(DEFAULTS)
    for layer in (file_values, env, overrides):
        for key, value in layer.items():
            if key == "CONFIG":
                continue
            settings[key] = _coerce(key, value)
    settings["HOME"] = str(home)

    explicit_url = bool(settings["DATABASE_URL"])
    if not explicit_url:
        settings["DATABASE_URL"] = f"sqlite:///{home / 'nudge.db'}"
    settings["DATABASE_URL"] = _validate_database_url(str(settings["DATABASE_URL"]))
    if not create:
        _require_instance(found, settings["DATABASE_URL"], explicit_url)
    if create or not settings["SECRET_KEY"]:  # a new instance, or a secret key to keep in it
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("HOME", f"cannot create {str(home)!r}: {exc.strerror}") from None
    if settings["REDIS_URL"]:
        settings["REDIS_URL"] = _validate_redis_url(str(settings["REDIS_URL"]))
    settings["BASE_URL"] = _validate_base_url(str(settings["BASE_URL"]))
    settings["DEFAULT_TIMEZONE"] = _validate_timezone(str(settings["DEFAULT_TIMEZONE"]))
    if settings["FREQUENCY_CAP"]:
        settings["FREQUENCY_CAP"] = _validate_frequency_cap(str(settings["FREQUENCY_CAP"]))
    if settings["MAX_ATTEMPTS"] > 100:
        raise ConfigError("MAX_ATTEMPTS", f"must be at most 100, got {settings['MAX_ATTEMPTS']!r}")
    if settings["MACHINE_CLICK_BURST"] < 2:
        raise ConfigError("MACHINE_CLICK_BURST", f"must be at least 2 links, got {settings['MACHINE_CLICK_BURST']}")
    settings["AMBIGUOUS_SENDS"] = str(settings["AMBIGUOUS_SENDS"]).strip().lower()
    if settings["AMBIGUOUS_SENDS"] not in _AMBIGUOUS_SENDS:
        raise ConfigError(
            "AMBIGUOUS_SENDS",
            f"must be hold or resend, got {settings['AMBIGUOUS_SENDS']!r}",
            "hold: never send twice, an operator decides; resend: never lose one, a rare duplicate",
        )
    settings["TEAMS"] = _validate_teams(settings["TEAMS"])
    if settings["TEST_CLOCK_FILE"] and not settings["TESTING"]:
        raise ConfigError(
            "TEST_CLOCK_FILE",
            "is for Nudge's own tests only and needs NUDGE_TESTING=true",
            "unset it: a running Nudge always uses the real clock",
        )
    level = str(settings["LOG_LEVEL"]).upper()
    if level not in _LOG_LEVELS:
        raise ConfigError("LOG_LEVEL", f"must be one of {', '.join(sorted(_LOG_LEVELS))}, got {level!r}")
    settings["LOG_LEVEL"] = level
    if not settings["SECRET_KEY"]:
        settings["SECRET_KEY"] = _secret_key(home)
    elif len(str(settings["SECRET_KEY"])) < 16:
        raise ConfigError(
            "SECRET_KEY",
            "is too short (at least 16 characters)",
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'",
        )
    return settings

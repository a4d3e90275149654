"""Configuration: defaults < settings saved in the admin UI < instance config file < ``NUDGE_*`` variables.

Every value is validated once, at start-up; a bad one raises :class:`ConfigError`
naming the variable, what is wrong with it and what to do.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config_checks import (
    ENV_PREFIX,
    ConfigError,
    NoInstance,
    mask_url,
    validate_base_url,
    validate_channel_caps,
    validate_channel_names,
    validate_database_url,
    validate_event_map,
    validate_frequency_cap,
    validate_redis_url,
    validate_split_auto,
    validate_teams,
    validate_timezone,
    validate_window,
)
from .durations import window_seconds
from .instance_home import HOME_FOLDER, Home, find_home, require_instance, secret_key

__all__ = [
    "DEFAULTS",
    "ENV_PREFIX",
    "HOME_FOLDER",
    "SETTINGS",
    "ConfigError",
    "Home",
    "NoInstance",
    "find_home",
    "load_config",
    "mask_url",
    "sources",
    "window_seconds",
]

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
        "default": 5000,
        "help": "events one process-events job handles: its own, then other pending ones (oldest first) up to "
        "this many, so that a worker takes events in large batches however they were enqueued (1: its own only); "
        "larger batches cost less CPU an event but hold the database's write lock (SQLite) longer",
    },
    "WEB_PROCESSES": {
        "type": "int",
        "default": 2,
        "help": "processes nudge web serves with (1-64), sharing its port: each uses one core for the checks and "
        "JSON of requests; 2 suits a 2-core machine (docs/deploy.md)",
    },
    "SETTINGS_RECHECK": {
        "type": "float",
        "default": 1.0,
        "help": "seconds a web process goes without checking for settings saved in the admin UI by another "
        "process; workers check before every job",
    },
    "RETRY_BASE": {
        "type": "float",
        "default": 30.0,
        "help": "seconds before the first retry of a failed send (doubles, with jitter)",
    },
    "CONSENT_REQUIRED": {
        "type": "string",
        "help": "comma-separated channels whose marketing messages need an opt-in (granted on the consent ledger), "
        "whatever the channel declares, e.g. email for GDPR: a contact who never opted in, or whose double opt-in "
        "is pending, gets none; unset: each channel's own rule (docs/engine.md, Consent)",
    },
    "FREQUENCY_CAP": {
        "type": "string",
        "help": "e.g. 3/7d: at most 3 marketing messages per contact in any 7 days; unset: no cap",
    },
    "FREQUENCY_CAPS": {
        "type": "string",
        "help": "per-channel caps, e.g. email=3/7d,sms=2/7d (each also within FREQUENCY_CAP); "
        "see docs/optimisation.md for priorities",
    },
    "FREQUENCY_CAP_RESERVE": {
        "type": "int",
        "default": 0,
        "help": "slots of each frequency cap only priority-high rules may use (normal rules use the rest, "
        "low ones half of that; unset: none; docs/optimisation.md)",
    },
    "BEST_TIME_PRIOR": {
        "type": "float",
        "default": 5.0,
        "help": "k of send-time optimisation: how many opens and clicks the instance's pattern weighs "
        "against a contact's own (above 0, at most 1000; docs/optimisation.md)",
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
    "TEMPLATE_TIME_LIMIT": {
        "type": "float",
        "default": 0.5,
        "help": "seconds of CPU time a template part may take to render",
    },
    "TEMPLATE_MAX_OUTPUT": {
        "type": "int",
        "default": 1_000_000,
        "help": "characters a rendered template part (and each string or list in it) may have",
    },
    "IMPORT_MAX_BYTES": {
        "type": "int",
        "default": 512 * 1024 * 1024,
        "help": "bytes a CSV file uploaded in the admin UI's Imports may have (at least 1024; the default holds "
        "1,000,000 rows of a few hundred characters); kept in $NUDGE_HOME/imports until discarded",
    },
    "IMPORT_PROCESSES": {
        "type": "int",
        "default": 0,
        "help": "processes a CSV import uses: 2 checks the next chunk of rows in a second process while the "
        "first writes, 1 checks and writes in one; 0 (the default) is 2 where two cores are free, else 1",
    },
    "FORM_RATE_LIMIT": {"type": "int", "default": 20, "help": "submissions per IP address per hour to a hosted form"},
    "VISIT_RATE_LIMIT": {"type": "int", "default": 600, "help": "site-tracking visits per IP address per hour"},
    "SEGMENT_EVENT_MAP": {
        "type": "string",
        "help": "Segment track names to Nudge event names, overriding the default mapping (docs/api.md): "
        "Order Completed=order.paid;Signed Up=account.created, or JSON",
    },
    "INGEST_MAX_QUEUE": {
        "type": "int",
        "default": 20000,
        "help": "events waiting for the engine above which the Segment-compatible /v1/ ingest answers 429 with "
        "Retry-After (0: never)",
    },
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
    "REVENUE_PROPERTY": {
        "type": "string",
        "default": "revenue",
        "help": "the event property holding a conversion's value (e.g. 49.90): such an event is attributed to "
        "the message that touched the contact last (see docs/stats.md, Revenue)",
    },
    "ATTRIBUTION_CLICK_WINDOW": {
        "type": "string",
        "default": "7d",
        "help": "a conversion is attributed to the message a person clicked last within this time before it "
        "(e.g. 7d, 36h, 90m; 0: never by click)",
    },
    "ATTRIBUTION_DELIVERY_WINDOW": {
        "type": "string",
        "default": "1d",
        "help": "else to the message delivered last within this time before it (e.g. 1d, 12h; 0: never by delivery)",
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
    "SPLIT_AUTO_FLOOR": {
        "type": "float",
        "default": 0.1,
        "help": "auto-winner splits: the share each arm keeps while the test explores (above 0, below 0.5)",
    },
    "SPLIT_AUTO_MIN_DECIDED": {
        "type": "int",
        "default": 200,
        "help": "auto-winner splits: decided outcomes every arm needs before traffic shifts or a winner is declared",
    },
    "SPLIT_AUTO_PROB": {
        "type": "float",
        "default": 0.95,
        "help": "auto-winner splits: the probability of being best an arm needs to be declared the winner",
    },
    "SPLIT_AUTO_LOSS": {
        "type": "float",
        "default": 0.01,
        "help": "auto-winner splits: the winner's expected loss must be below this fraction of its rate",
    },
    "LOG_LEVEL": {"type": "string", "default": "INFO", "help": "DEBUG, INFO, WARNING, ERROR or CRITICAL"},
    "MIGRATE_ON_START": {
        "type": "bool",
        "default": True,
        "help": "every process applies pending migrations when it starts",
    },
    "BACKUP_BEFORE_UPGRADE": {
        "type": "bool",
        "default": True,
        "help": "take a backup into $NUDGE_HOME/backups/ before applying migrations to a database holding data "
        "(the upgrade stops if the backup fails; see docs/backup.md)",
    },
    "BACKUP_KEEP": {
        "type": "int",
        "default": 5,
        "help": "how many of the automatic pre-upgrade backups to keep (the oldest are deleted)",
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

_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_AMBIGUOUS_SENDS = ("hold", "resend")


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


def _layers(
    overrides: Mapping[str, Any] | None, environ: Mapping[str, str] | None
) -> tuple[Home, dict[str, dict[str, Any]]]:
    """The instance folder, and the layers above the database's, lowest first, each named for a person."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    env = {k[len(ENV_PREFIX) :]: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}
    found = find_home(overrides.get("HOME") or env.get("HOME"))
    config_file = overrides.get("CONFIG") or env.get("CONFIG")
    path = Path(config_file) if config_file else found.path / "nudge.toml"
    if config_file and not path.is_file():
        raise ConfigError("CONFIG", f"no such file {str(path)!r}")
    file_values = _read_file(path) if path.is_file() else {}
    return found, {f"the config file {path}": file_values, "the environment": env, "the start-up options": overrides}


def sources(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each setting set above the database comes from: ``{key: "the environment"}`` (the top layer wins)."""
    out = {}
    for where, layer in _layers(overrides, environ)[1].items():
        out.update(dict.fromkeys((key for key in layer if key != "CONFIG"), where))
    return out


def load_config(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    create: bool = True,
    stored: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the validated settings dict: defaults < *stored* < the config file < the environment < *overrides*.

    :param overrides: values passed to ``create_app(config=...)``; they win over everything.
    :param environ: the environment to read ``NUDGE_*`` from (default ``os.environ``).
    :param create: whether a new embedded SQLite instance may be created; when False, a missing one
        raises :class:`ConfigError` naming the places looked at (PostgreSQL is never created here).
    :param stored: the settings saved in the admin UI (``server.instance_settings``), below the file and environment.
    :return: settings keyed by name without the ``NUDGE_`` prefix, plus Flask's ``SECRET_KEY``.
    :raises ConfigError: for the first invalid setting.
    """
    found, layers = _layers(overrides, environ)
    home = found.path
    settings: dict[str, Any] = dict(DEFAULTS)
    for layer in (stored or {}, *layers.values()):
        for key, value in layer.items():
            if key == "CONFIG":
                continue
            settings[key] = _coerce(key, value)
    settings["HOME"] = str(home)

    explicit_url = bool(settings["DATABASE_URL"])
    if not explicit_url:
        settings["DATABASE_URL"] = f"sqlite:///{home / 'nudge.db'}"
    settings["DATABASE_URL"] = validate_database_url(str(settings["DATABASE_URL"]))
    if not create:
        require_instance(found, settings["DATABASE_URL"], explicit_url)
    if create or not settings["SECRET_KEY"]:  # a new instance, or a secret key to keep in it
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("HOME", f"cannot create {str(home)!r}: {exc.strerror}") from None
    if settings["REDIS_URL"]:
        settings["REDIS_URL"] = validate_redis_url(str(settings["REDIS_URL"]))
    settings["BASE_URL"] = validate_base_url(str(settings["BASE_URL"]))
    settings["DEFAULT_TIMEZONE"] = validate_timezone(str(settings["DEFAULT_TIMEZONE"]))
    if settings["FREQUENCY_CAP"]:
        settings["FREQUENCY_CAP"] = validate_frequency_cap(str(settings["FREQUENCY_CAP"]))
    for key in ("ATTRIBUTION_CLICK_WINDOW", "ATTRIBUTION_DELIVERY_WINDOW"):
        settings[key] = validate_window(key, str(settings[key]))
    if not str(settings["REVENUE_PROPERTY"]).strip():
        raise ConfigError("REVENUE_PROPERTY", "must name an event property, e.g. revenue")
    if settings["FREQUENCY_CAPS"]:
        settings["FREQUENCY_CAPS"] = validate_channel_caps(str(settings["FREQUENCY_CAPS"]))
    # which channels it may name is known once the plugins are loaded (server.instance_settings)
    settings["CONSENT_REQUIRED"] = validate_channel_names("CONSENT_REQUIRED", settings["CONSENT_REQUIRED"])
    if settings["BEST_TIME_PRIOR"] > 1000:
        raise ConfigError("BEST_TIME_PRIOR", f"must be at most 1000, got {settings['BEST_TIME_PRIOR']!r}")
    if settings["WEB_PROCESSES"] > 64:
        raise ConfigError("WEB_PROCESSES", f"must be at most 64, got {settings['WEB_PROCESSES']!r}")
    if settings["MAX_ATTEMPTS"] > 100:
        raise ConfigError("MAX_ATTEMPTS", f"must be at most 100, got {settings['MAX_ATTEMPTS']!r}")
    if settings["IMPORT_MAX_BYTES"] < 1024:
        raise ConfigError("IMPORT_MAX_BYTES", f"must be at least 1024 bytes, got {settings['IMPORT_MAX_BYTES']}")
    if settings["IMPORT_PROCESSES"] not in (0, 1, 2):
        raise ConfigError("IMPORT_PROCESSES", f"must be 0 (automatic), 1 or 2, got {settings['IMPORT_PROCESSES']!r}")
    if settings["MACHINE_CLICK_BURST"] < 2:
        raise ConfigError("MACHINE_CLICK_BURST", f"must be at least 2 links, got {settings['MACHINE_CLICK_BURST']}")
    settings["AMBIGUOUS_SENDS"] = str(settings["AMBIGUOUS_SENDS"]).strip().lower()
    if settings["AMBIGUOUS_SENDS"] not in _AMBIGUOUS_SENDS:
        raise ConfigError(
            "AMBIGUOUS_SENDS",
            f"must be hold or resend, got {settings['AMBIGUOUS_SENDS']!r}",
            "hold: never send twice, an operator decides; resend: never lose one, a rare duplicate",
        )
    settings["TEAMS"] = validate_teams(settings["TEAMS"])
    validate_split_auto(settings)
    settings["SEGMENT_EVENT_MAP"] = validate_event_map(settings["SEGMENT_EVENT_MAP"])
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
        settings["SECRET_KEY"] = secret_key(home)
    elif len(str(settings["SECRET_KEY"])) < 16:
        raise ConfigError(
            "SECRET_KEY",
            "is too short (at least 16 characters)",
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'",
        )
    return settings

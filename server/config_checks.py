"""The checks of single settings' values at start-up, and :class:`ConfigError`, which names the variable."""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import urlsplit

from .durations import window_seconds

ENV_PREFIX = "NUDGE_"


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


def validate_database_url(url: str) -> str:
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


def validate_redis_url(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            "REDIS_URL",
            f"scheme must be redis://, rediss:// or unix://, got {scheme or 'none'!r}",
            "example: redis://localhost:6379/0, or leave it unset for the embedded Redis",
        )
    return url


def validate_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            "BASE_URL", f"must be an absolute http(s) URL, got {url!r}", "example: https://nudge.example.com"
        )
    return url.rstrip("/")


_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([smhdw])\s*$")


def validate_frequency_cap(text: str) -> str:
    match = _CAP.match(text)
    if match is None or int(match[1]) < 1 or int(match[2]) < 1:
        raise ConfigError(
            "FREQUENCY_CAP",
            f"must be a count and a window such as 3/7d, got {text!r}",
            "3/7d = at most 3 marketing messages per contact in any 7 days; units s, m, h, d, w; "
            "leave it unset for no cap",
        )
    return f"{int(match[1])}/{int(match[2])}{match[3]}"


def validate_channel_caps(text: str) -> str:
    """``email=3/7d, sms=2/7d`` → ``email=3/7d,sms=2/7d``; each cap as FREQUENCY_CAP writes it."""
    caps = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        channel, equals, cap = part.partition("=")
        if not equals or not re.fullmatch(r"[a-z][a-z0-9_]*", channel.strip()):
            raise ConfigError(
                "FREQUENCY_CAPS", f"expected CHANNEL=COUNT/WINDOW, got {part!r}", "e.g. email=3/7d,sms=2/7d"
            )
        try:
            caps.append(f"{channel.strip()}={validate_frequency_cap(cap.strip())}")
        except ConfigError as exc:
            raise ConfigError("FREQUENCY_CAPS", f"{channel.strip()}: {exc.problem}", exc.hint) from None
    return ",".join(caps)


_CHANNEL_NAME = re.compile(r"[a-z][a-z0-9_]*")


@functools.lru_cache(maxsize=64)
def names_of(value: str | None) -> frozenset[str]:
    """The names of a comma-separated setting (``"email, sms"`` → ``{"email", "sms"}``; blanks dropped; None or ""
    → none), read once per value: the send path asks for every message."""
    return frozenset(name for name in (part.strip() for part in str(value or "").split(",")) if name)


def validate_channel_names(key: str, value: Any) -> str | None:
    """``email, sms`` → ``email,sms`` (each name once); None when empty. Whether each is installed is checked once
    the plugins are loaded."""
    if value is None:
        return None
    names: list[str] = []
    for part in filter(None, (p.strip() for p in str(value).split(","))):
        if not _CHANNEL_NAME.fullmatch(part):
            raise ConfigError(key, f"expected comma-separated channel names, got {part!r}", "e.g. email, or email,sms")
        if part not in names:
            names.append(part)
    return ",".join(names) or None


def validate_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            "DEFAULT_TIMEZONE", f"unknown time zone {name!r}", "use an IANA name like Europe/Berlin"
        ) from None
    return name


def validate_teams(value: Any) -> dict[str, Any]:
    from .teams import EXAMPLE, parse_teams

    try:
        return parse_teams(value)
    except ValueError as exc:
        raise ConfigError("TEAMS", str(exc), EXAMPLE if EXAMPLE not in str(exc) else "") from None


def validate_event_map(value: Any) -> dict[str, str]:
    from .segment_names import parse_event_map

    try:
        return parse_event_map(value)
    except ValueError as exc:
        raise ConfigError("SEGMENT_EVENT_MAP", str(exc)) from None


def validate_window(key: str, text: str) -> str:
    try:
        window_seconds(text)
    except ValueError:
        raise ConfigError(key, f"must be a window like 7d, 36h, 90m or 0, got {text[:40]!r}") from None
    return text.strip().lower()


def validate_split_auto(settings: dict[str, Any]) -> None:
    """The auto-winner split thresholds (server.stats.autowinner.AutoSettings) within their ranges."""
    checks = (  # each is above 0 already, as every number setting
        ("SPLIT_AUTO_FLOOR", settings["SPLIT_AUTO_FLOOR"] < 0.5, "a share below 0.5, e.g. 0.1"),
        ("SPLIT_AUTO_PROB", 0.5 <= settings["SPLIT_AUTO_PROB"] < 1.0, "a probability from 0.5 to below 1, e.g. 0.95"),
        ("SPLIT_AUTO_LOSS", settings["SPLIT_AUTO_LOSS"] < 1.0, "a fraction below 1, e.g. 0.01"),
    )
    for key, valid, wanted in checks:
        if not valid:
            raise ConfigError(key, f"must be {wanted}, got {settings[key]!r}")

"""``NUDGE_SMTP_URL``: where the email channel delivers, read into :class:`SmtpSettings`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from server.sdk import SettingError

#: where mail goes when ``NUDGE_SMTP_URL`` is not set: the machine's own mail server
DEFAULT_SMTP_URL = "smtp://localhost:25"


@dataclass(frozen=True)
class SmtpSettings:
    """The parts of ``NUDGE_SMTP_URL``: ``smtp://user:pass@host:port?tls=starttls``."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: str  # "none", "starttls" or "ssl"
    timeout: float = 30.0

    def __repr__(self) -> str:  # never print the password
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpSettings(smtp://{user}{self.host}:{self.port}?tls={self.tls})"


def parse_smtp_url(url: str) -> SmtpSettings:
    """Parse an SMTP URL; ``smtps://`` implies ``tls=ssl``.

    :raises SettingError: naming ``NUDGE_SMTP_URL`` when the URL is malformed.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise SettingError(
            "SMTP_URL",
            f"scheme must be smtp:// or smtps://, got {parts.scheme or 'none'!r} "
            "(example: smtp://user:pass@mail.example.com:587?tls=starttls)",
        )
    if not parts.hostname:
        raise SettingError("SMTP_URL", "no host given (example: smtp://mail.example.com:587?tls=starttls)")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"tls", "timeout"}
    if unknown:
        raise SettingError("SMTP_URL", f"unknown option {sorted(unknown)[0]!r} (known options: tls, timeout)")
    tls = query.get("tls", "ssl" if parts.scheme == "smtps" else "none").lower()
    if tls not in ("none", "starttls", "ssl"):
        raise SettingError("SMTP_URL", f"tls must be none, starttls or ssl, got {tls!r}")
    try:
        port = parts.port or (465 if tls == "ssl" else 25)
        timeout = float(query.get("timeout", 30))
    except ValueError as exc:
        raise SettingError("SMTP_URL", f"bad port or timeout: {exc}") from None
    return SmtpSettings(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        timeout=timeout,
    )

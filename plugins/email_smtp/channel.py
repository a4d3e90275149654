"""The SMTP channel: its declarations (events, template parts, consent, settings), its checks, and its sends.

Each instance keeps one SMTP session across a batch of sends (:mod:`.transport`); the message is built by
:mod:`.compose` (the List headers, the footer, DKIM). The names tests and plugins import from here
(:class:`EmailChannel`, :func:`message_id` and the other helpers) stay here.
"""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Iterator, Mapping
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from server.sdk import (
    CONSENT_UNLESS_REVOKED,
    UNSUBSCRIBE_LINK,
    Channel,
    ChannelError,
    Check,
    OutboundMessage,
    SendResult,
    SettingError,
)

from . import headers as raw
from .compose import Composer, mail_domain, message_id, message_token
from .settings import DEFAULT_SMTP_URL, parse_smtp_url
from .transport import SmtpTransport, quit_quietly

#: the helpers of .compose that code outside this package imports from here (tests: message_id)
__all__ = ["BUILTIN_TEMPLATES", "EmailChannel", "mail_domain", "message_id", "message_token"]

#: seconds ``nudge doctor`` waits for the SMTP server
CHECK_TIMEOUT = 10.0
#: SMTP connections per worker, and how many of them may carry mail to one recipient domain at once
DEFAULT_CONNECTIONS = 4  # a worker killed mid-send leaves at most this many messages unknown (one per connection)
DEFAULT_DOMAIN_CONNECTIONS = 4
MAX_CONNECTIONS = 64
_LOCAL_DOMAINS = (".localhost", ".local", ".localdomain", ".invalid", ".test", ".example")


#: built-in templates: used when the instance has none of that name
BUILTIN_TEMPLATES = {
    "welcome": {
        "subject": "Welcome{% if contact.first_name %}, {{ contact.first_name }}{% endif %}!",
        "txt": "Hello {{ contact.first_name or 'there' }},\n\nthanks for signing up.\n",
        "html": "<p>Hello {{ contact.first_name or 'there' }},</p><p>thanks for signing up.</p>",
    },
    # double opt-in: sent by hosted forms; consent is recorded only when the link is followed
    "confirm_subscription": {
        "subject": "Please confirm your subscription",
        "txt": "Hello {{ contact.first_name or 'there' }},\n\nplease confirm that you want to hear from us:\n"
        "{{ confirm_url }}\n\nIf you did not sign up, ignore this message: you will get nothing more.\n",
        "html": "<p>Hello {{ contact.first_name or 'there' }},</p><p>please confirm that you want to hear from "
        'us:</p><p><a href="{{ confirm_url }}">Confirm my subscription</a></p><p>If you did not sign '
        "up, ignore this message: you will get nothing more.</p>",
    },
}


class EmailChannel(Channel):
    name = "email"
    address_field = "email"
    events = (
        "email.delivered",
        "email.opened",
        "email.clicked",
        "email.bounced",
        "email.complained",
        "email.unsubscribed",
    )
    #: an open or a click is the recipient acting (it moves last_seen); a delivery or a bounce is not
    activity_events = ("email.opened", "email.clicked")
    #: an SMTP server accepts a message and confirms no delivery (only reports an operator set up do)
    delivery_receipts = False
    template_parts = ("subject", "html", "txt")
    required_parts = ("subject", ("txt", "html"))
    builtin_templates = BUILTIN_TEMPLATES
    # consent: sends unless the contact opted out; unsubscribe: the one-click link in List-Unsubscribe and the footer
    consent = CONSENT_UNLESS_REVOKED
    unsubscribe = UNSUBSCRIBE_LINK
    # opens and clicks: the engine adds the pixel and the click links to the html part (docs/tracking.md)
    tracking = True
    config_schema = {
        "SMTP_URL": {
            "type": "string",
            "required": True,
            "secret": True,
            "default": DEFAULT_SMTP_URL,
            "help": "smtp://user:pass@host:587?tls=starttls (tls=none|starttls|ssl, timeout=seconds); "
            "smtps://… for TLS from the start",
        },
        "MAIL_FROM": {
            "type": "string",
            "required": True,
            "default": "Nudge <nudge@localhost>",
            "help": "the From of every email, e.g. Acme <news@acme.example>",
        },
        "SMTP_CONNECTIONS": {
            "type": "int",
            "default": DEFAULT_CONNECTIONS,
            "help": "SMTP connections each worker sends over at once (1 to 64); a worker dying while sending "
            "leaves at most one message per connection whose fate only the server knows",
        },
        "SMTP_DOMAIN_CONNECTIONS": {
            "type": "int",
            "default": DEFAULT_DOMAIN_CONNECTIONS,
            "help": "of those, how many may carry mail to one recipient domain at once (0 for no limit of its "
            "own; a value of SMTP_CONNECTIONS or more is none either)",
        },
        "SMTP_CA_FILE": {
            "type": "file",
            "help": "PEM file of the CA(s) that signed the SMTP server's certificate, when it is not "
            "publicly trusted; certificates are always verified",
        },
        "UNSUBSCRIBE_MAILTO": {
            "type": "string",
            "help": "an address whose mail is piped to POST /hooks/email/unsubscribe (needs "
            "EMAIL_WEBHOOK_SECRET); only then does List-Unsubscribe offer a mailto: "
            "besides the one-click URL",
        },
        "POSTAL_ADDRESS": {
            "type": "string",
            "help": "the sender's postal address, shown in every marketing email; marketing email "
            "is refused without it (CAN-SPAM and similar laws)",
        },
        "LIST_ID": {
            "type": "string",
            "help": "the List-Id of marketing email (RFC 2919), e.g. Acme News <news.acme.example>; default "
            "from MAIL_FROM: its name and <local-part.domain>",
        },
        "FEEDBACK_ID": {
            "type": "string",
            "help": "a sender id for Gmail's Feedback Loop; when set, every email carries Feedback-ID: "
            "<rule, broadcast or form-slug>:<template>:<marketing|transactional>:<this id>",
        },
        "DKIM_SELECTOR": {"type": "string", "help": "DKIM selector, e.g. nudge (TXT record nudge._domainkey.<domain>)"},
        "DKIM_DOMAIN": {"type": "string", "help": "the d= domain; default the domain of MAIL_FROM"},
        "DKIM_PRIVATE_KEY_FILE": {"type": "file", "secret": True, "help": "PEM private key for DKIM signing"},
        "EMAIL_WEBHOOK_SECRET": {
            "type": "string",
            "secret": True,
            "help": "shared secret of POST /hooks/email/bounce (bounces and complaints) and "
            "POST /hooks/email/unsubscribe (mailto unsubscribes)",
        },
    }

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__(config)
        self._batches = 0
        self.sender = parseaddr(self.config.get("MAIL_FROM") or "")[1]
        self.domain = mail_domain(self.config.get("MAIL_FROM") or "")
        self.smtp = parse_smtp_url(str(self.config.get("SMTP_URL") or DEFAULT_SMTP_URL))
        self.concurrency = int(self.config.get("SMTP_CONNECTIONS", DEFAULT_CONNECTIONS))
        per_domain = int(self.config.get("SMTP_DOMAIN_CONNECTIONS", DEFAULT_DOMAIN_CONNECTIONS))
        self.destination_limit = 0 if per_domain >= self.concurrency else per_domain
        self.composer = Composer(self.config, self.sender, self.domain)
        self.transport = SmtpTransport(self.smtp, self.config, self.sender)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        parse_smtp_url(str(settings.get("SMTP_URL") or DEFAULT_SMTP_URL))
        connections = settings.get("SMTP_CONNECTIONS", DEFAULT_CONNECTIONS)
        if not 1 <= connections <= MAX_CONNECTIONS:
            raise SettingError("SMTP_CONNECTIONS", f"must be between 1 and {MAX_CONNECTIONS}, got {connections}")
        per_domain = settings.get("SMTP_DOMAIN_CONNECTIONS", DEFAULT_DOMAIN_CONNECTIONS)
        if not 0 <= per_domain <= MAX_CONNECTIONS:
            raise SettingError(
                "SMTP_DOMAIN_CONNECTIONS",
                f"must be between 0 (no limit of its own) and {MAX_CONNECTIONS}, got {per_domain}",
            )
        if not mail_domain(settings.get("MAIL_FROM") or ""):
            raise SettingError(
                "MAIL_FROM",
                f"{settings.get('MAIL_FROM')!r} has no address with a domain (example: Acme <news@acme.example>)",
            )
        mailto = settings.get("UNSUBSCRIBE_MAILTO")
        if mailto and "@" not in mailto:
            raise SettingError("UNSUBSCRIBE_MAILTO", f"{mailto!r} is not an email address")
        if mailto and not settings.get("EMAIL_WEBHOOK_SECRET"):
            raise SettingError(
                "UNSUBSCRIBE_MAILTO",
                "mail to this address must reach POST /hooks/email/unsubscribe, "
                "which needs NUDGE_EMAIL_WEBHOOK_SECRET; set it (see docs/email.md)"
                " or unset NUDGE_UNSUBSCRIBE_MAILTO",
            )
        if settings.get("LIST_ID"):
            raw.parse_list_id(settings["LIST_ID"])
        if settings.get("FEEDBACK_ID"):
            raw.check_feedback_sender(settings["FEEDBACK_ID"])
        selector, key_file = settings.get("DKIM_SELECTOR"), settings.get("DKIM_PRIVATE_KEY_FILE")
        if bool(selector) != bool(key_file):
            missing = "DKIM_PRIVATE_KEY_FILE" if selector else "DKIM_SELECTOR"
            raise SettingError(missing, "DKIM signing needs both NUDGE_DKIM_SELECTOR and NUDGE_DKIM_PRIVATE_KEY_FILE")
        if key_file:
            import dkim.crypto

            try:
                with open(key_file, "rb") as fh:
                    dkim.crypto.parse_pem_private_key(fh.read())
            except Exception as exc:  # whatever is wrong with the file, say so at start-up, not at the first send
                raise SettingError(
                    "DKIM_PRIVATE_KEY_FILE", f"{key_file} is not a PEM RSA private key ({exc})"
                ) from None

    def diagnose(self, *, in_use: bool) -> list[Check]:
        """The sender's domain, the postal address, DKIM, the mailto unsubscribe and whether the SMTP server answers."""
        blocking = "error" if in_use else "warn"
        checks = []
        if self.domain == "localhost" or "." not in self.domain or self.domain.endswith(_LOCAL_DOMAINS):
            checks.append(
                Check(
                    "email: sender",
                    "warn",
                    f"mail comes from an address at {self.domain!r}, which "
                    "receiving servers reject or file as spam; set NUDGE_MAIL_FROM to an address at your "
                    "own domain, e.g. Acme <news@acme.example>",
                )
            )
        else:
            checks.append(Check("email: sender", "ok", f"mail comes from {self.sender}"))
        if (self.config.get("POSTAL_ADDRESS") or "").strip():
            checks.append(Check("email: postal address", "ok", "shown in every marketing email"))
        else:
            checks.append(
                Check(
                    "email: postal address",
                    blocking,
                    "not set, so marketing email is refused; set NUDGE_POSTAL_ADDRESS to the sender's postal address",
                )
            )
        selector = self.config.get("DKIM_SELECTOR")
        if selector and self.config.get("DKIM_PRIVATE_KEY_FILE"):
            domain = self.config.get("DKIM_DOMAIN") or self.domain
            checks.append(Check("email: DKIM", "ok", f"signed as d={domain}, s={selector}"))
        else:
            checks.append(
                Check(
                    "email: DKIM",
                    "warn",
                    "mail is not signed, and Gmail and Yahoo refuse or junk bulk "
                    "mail without DKIM; set NUDGE_DKIM_SELECTOR and NUDGE_DKIM_PRIVATE_KEY_FILE and "
                    "publish the public key (see docs/email.md)",
                )
            )
        mailto = self.config.get("UNSUBSCRIBE_MAILTO")
        checks.append(
            Check(
                "email: unsubscribe",
                "ok",
                f"one-click URL, and mailto:{mailto} (processed at POST /hooks/email/unsubscribe)"
                if mailto
                else "one-click URL only (set NUDGE_UNSUBSCRIBE_MAILTO to offer a mailto too)",
            )
        )
        try:
            quit_quietly(self._connect(timeout=CHECK_TIMEOUT))
        except ChannelError as exc:
            hint = "" if "NUDGE_" in exc.message else "; check NUDGE_SMTP_URL"
            checks.append(Check("email: SMTP server", blocking, exc.message + hint))
        else:
            s = self.smtp
            checks.append(Check("email: SMTP server", "ok", f"{s.host}:{s.port} answers (tls={s.tls})"))
        return checks

    def test_connection(self) -> Check:
        """Connect to the SMTP server (EHLO, STARTTLS and login as configured), then NOOP: its answer is the report."""
        s = self.smtp
        try:
            conn = self._connect(timeout=CHECK_TIMEOUT)
        except ChannelError as exc:
            return Check("email: connection", "error", exc.message)
        try:
            code, text = conn.noop()
        except (OSError, smtplib.SMTPException) as exc:
            return Check("email: connection", "error", f"{s.host}:{s.port} dropped the connection at NOOP ({exc})")
        finally:
            quit_quietly(conn)
        answer = f"{code} {text.decode('utf-8', 'replace')}".strip()
        status = "ok" if code == 250 else "error"
        return Check("email: connection", status, f"{s.host}:{s.port} (tls={s.tls}) answered NOOP with {answer}")

    def destination(self, message: OutboundMessage) -> str:
        """The recipient's domain: ``SMTP_DOMAIN_CONNECTIONS`` counts connections by it."""
        return message.to.rpartition("@")[2].lower()

    def validate_address(self, address: str) -> str:
        from email_validator import EmailNotValidError, validate_email

        try:
            return validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(str(exc)) from None

    # -- connection ---------------------------------------------------------
    def _connect(self, timeout: float | None = None) -> smtplib.SMTP:
        return self.transport.connect(timeout)

    @contextlib.contextmanager
    def batch(self) -> Iterator[EmailChannel]:
        """One SMTP session for every send inside; closed (QUIT) on exit."""
        self._batches += 1
        try:
            yield self
        finally:
            self._batches -= 1
            if self._batches == 0:
                self.transport.close()

    # -- building and sending -------------------------------------------------
    def build(self, message: OutboundMessage) -> EmailMessage:
        """The MIME message (see :meth:`.compose.Composer.build`)."""
        return self.composer.build(message)

    def message_bytes(self, message: OutboundMessage) -> bytes:
        """The bytes of :meth:`build`'s message (see :meth:`.compose.Composer.message_bytes`)."""
        return self.composer.message_bytes(message)

    def send(self, message: OutboundMessage) -> SendResult:
        if self._batches == 0:
            with self.batch():
                return self.send(message)
        self.transport.deliver(message.to, self.composer.sign(self.composer.message_bytes(message)))
        return SendResult(provider_id=self.composer.message_id(message.key))

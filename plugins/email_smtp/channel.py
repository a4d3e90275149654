"""The SMTP channel: one connection reused across a batch of sends.

Every marketing message carries ``List-Unsubscribe`` (the HTTPS one-click URL, plus a
mailto when ``UNSUBSCRIBE_MAILTO`` is set and processed), ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click`` (RFC 2369, RFC 8058) and ``List-Id`` (RFC 2919), as raw
ASCII (see :mod:`.headers`), a visible unsubscribe link and the sender's postal address;
without a postal address it is refused. With DKIM configured, the signature covers the
List headers. ``FEEDBACK_ID`` adds Gmail's ``Feedback-ID`` to every message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import html as html_lib
import re
import smtplib
import ssl
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
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
    check_header,
)

from . import headers as raw
from . import mime
from .settings import DEFAULT_SMTP_URL, parse_smtp_url

#: headers the DKIM signature covers when present; the List headers are signed twice so none can be added
DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"reply-to",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
    b"feedback-id",
)
_OVERSIGNED = (b"from", b"list-unsubscribe", b"list-unsubscribe-post", b"list-id")
_POLICY = mime.POLICY
#: seconds ``nudge doctor`` waits for the SMTP server
CHECK_TIMEOUT = 10.0
#: SMTP connections per worker, and how many of them may carry mail to one recipient domain at once
DEFAULT_CONNECTIONS = 4  # a worker killed mid-send leaves at most this many messages unknown (one per connection)
DEFAULT_DOMAIN_CONNECTIONS = 4
MAX_CONNECTIONS = 64
_LOCAL_DOMAINS = (".localhost", ".local", ".localdomain", ".invalid", ".test", ".example")
#: (name, value) pairs, in order
Headers = list[tuple[str, str]]
_ENHANCED = re.compile(rb"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_LEADING_DOT = re.compile(rb"(?m)^\.")  # a line starting with a dot gets another (RFC 5321 4.5.2)


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
        self._conn: smtplib.SMTP | None = None
        self._batches = 0
        self._list: Headers | None = None  # see _list_headers
        self._from: str | None = None  # the sender as MAIL FROM gives it
        self._from_header: str | None = None  # see _checked_from
        self._date: tuple[datetime | None, str] = (None, "")  # the Date header of this second
        self._known: dict[str, bool] = {}  # header values the email package writes unchanged (see .mime)
        self.sender = parseaddr(self.config.get("MAIL_FROM") or "")[1]
        self.domain = mail_domain(self.config.get("MAIL_FROM") or "")
        self.smtp = parse_smtp_url(str(self.config.get("SMTP_URL") or DEFAULT_SMTP_URL))
        self.concurrency = int(self.config.get("SMTP_CONNECTIONS", DEFAULT_CONNECTIONS))
        per_domain = int(self.config.get("SMTP_DOMAIN_CONNECTIONS", DEFAULT_DOMAIN_CONNECTIONS))
        self.destination_limit = 0 if per_domain >= self.concurrency else per_domain

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
            _quit(self._connect(timeout=CHECK_TIMEOUT))
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
            _quit(conn)
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
    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.get("SMTP_CA_FILE") or None)

    def _connect(self, timeout: float | None = None) -> smtplib.SMTP:
        s = self.smtp
        if timeout is not None:
            s = dataclasses.replace(s, timeout=min(s.timeout, timeout))
        conn: smtplib.SMTP | None = None
        try:
            if s.tls == "ssl":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._tls_context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            conn.ehlo()
            if s.tls == "starttls":
                conn.starttls(context=self._tls_context())
                conn.ehlo()
            if s.username:
                conn.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _quit(conn)
            raise ChannelError(
                f"SMTP login refused by {s.host}:{s.port} ({exc.smtp_code}); check the user and "
                "password in NUDGE_SMTP_URL"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            _quit(conn)
            raise ChannelError(
                f"the certificate of SMTP server {s.host}:{s.port} is not trusted ({exc.verify_message});"
                " set NUDGE_SMTP_CA_FILE to the CA that signed it"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _quit(conn)
            raise ChannelError(f"cannot connect to SMTP server {s.host}:{s.port}: {exc}") from None
        return conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        _quit(conn)

    @contextlib.contextmanager
    def batch(self) -> Iterator[EmailChannel]:
        """One SMTP session for every send inside; closed (QUIT) on exit."""
        self._batches += 1
        try:
            yield self
        finally:
            self._batches -= 1
            if self._batches == 0:
                self._close()

    # -- building -------------------------------------------------------------
    def build(self, message: OutboundMessage) -> EmailMessage:
        """The MIME message: multipart text + HTML, stable Message-ID, the List headers on marketing mail.

        :raises ChannelError: permanent, for header injection, or a marketing message without an unsubscribe
            URL or without a postal address to show.
        """
        return self._assemble(*self._compose(message))

    def message_bytes(self, message: OutboundMessage) -> bytes:
        """The bytes of :meth:`build`'s message, written directly when :mod:`.mime` can (the same bytes, faster)."""
        headers, raw_headers, text, html = self._compose(message)
        data = None
        if all(mime.writes_unchanged(name, value, self._known) for name, value in headers):
            data = mime.message_bytes(headers, raw_headers, text, html)
        return data if data is not None else self._assemble(headers, raw_headers, text, html).as_bytes()

    def _compose(self, message: OutboundMessage) -> tuple[Headers, Headers, str, str | None]:
        """Headers (parsed, then raw), text and HTML of *message*; see :meth:`build`."""
        text, html = message.text or "", message.html
        extra = list(message.headers.items())
        for name, value in (("To", message.to), ("Subject", message.subject), *extra):
            check_header(name, value)
        now = datetime.now(UTC).replace(microsecond=0)
        if self._date[0] != now:
            self._date = (now, format_datetime(now))
        headers: list[tuple[str, str]] = [
            ("From", self._checked_from()),
            ("To", message.to),
            ("Subject", message.subject),
            ("Date", self._date[1]),
            ("Message-ID", message_id(message.key, self.domain)),
            *extra,
        ]
        raw_headers: list[tuple[str, str]] = []
        if message.marketing:
            url = message.unsubscribe_url
            if not url:
                raise ChannelError(
                    f"marketing email {message.key} has no unsubscribe URL; refusing to send it "
                    "(RFC 8058 and the law require one)",
                    permanent=True,
                )
            postal = (self.config.get("POSTAL_ADDRESS") or "").strip()
            if not postal:
                raise ChannelError(
                    f"marketing email {message.key} not sent: no postal address to show; set "
                    "NUDGE_POSTAL_ADDRESS to the sender's postal address (CAN-SPAM and similar laws "
                    "require it in marketing email), then resend it",
                    permanent=True,
                )
            unsubscribe = raw.list_unsubscribe(url, self.config.get("UNSUBSCRIBE_MAILTO"))
            raw_headers += [("List-Unsubscribe", raw.raw_value("List-Unsubscribe", unsubscribe)), *self._list_headers()]
            text, html = text_footer(text, url, postal), html and html_footer(html, url, postal)
        if self.config.get("FEEDBACK_ID"):
            feedback = raw.feedback_id(message.data, message.template, message.marketing, self.config["FEEDBACK_ID"])
            raw_headers.append(("Feedback-ID", raw.raw_value("Feedback-ID", [feedback])))
        return headers, raw_headers, text, html

    def _checked_from(self) -> str:
        """The From header, and the domain of every Message-ID, checked once (the same on every message)."""
        if self._from_header is None:
            sender = self.config.get("MAIL_FROM") or self.sender
            check_header("From", sender)
            check_header("Message-ID", message_id("", self.domain))
            self._from_header = sender
        return self._from_header

    def _list_headers(self) -> Headers:
        """``List-Unsubscribe-Post`` and ``List-Id``, the same on every marketing message: made once."""
        if self._list is None:
            list_id = self.config.get("LIST_ID") or raw.default_list_id(self.config.get("MAIL_FROM") or self.sender)
            self._list = [
                ("List-Unsubscribe-Post", raw.raw_value("List-Unsubscribe-Post", ["List-Unsubscribe=One-Click"])),
                ("List-Id", raw.raw_value("List-Id", raw.list_id_parts(list_id), separator=" ")),
            ]
        return self._list

    @staticmethod
    def _assemble(
        headers: list[tuple[str, str]], raw_headers: list[tuple[str, str]], text: str, html: str | None
    ) -> EmailMessage:
        msg = EmailMessage(policy=_POLICY)
        for name, value in headers:
            msg[name] = value
        for name, value in raw_headers:
            msg.set_raw(name, value)
        msg.set_content(text, cte="quoted-printable")
        if html:
            msg.add_alternative(html, subtype="html", cte="quoted-printable")
        return msg

    def _sign(self, data: bytes) -> bytes:
        selector, key_file = self.config.get("DKIM_SELECTOR"), self.config.get("DKIM_PRIVATE_KEY_FILE")
        if not (selector and key_file):
            return data
        import dkim

        with open(key_file, "rb") as fh:
            key = fh.read()
        present = {
            line.split(b":", 1)[0].strip().lower()
            for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if line[:1] not in (b" ", b"\t")
        }
        include = [h for h in DKIM_HEADERS if h in present] + [h for h in _OVERSIGNED if h in present]
        domain = self.config.get("DKIM_DOMAIN") or self.domain
        try:
            signature = dkim.sign(
                data,
                selector.encode(),
                domain.encode(),
                key,
                include_headers=include,
                canonicalize=(b"relaxed", b"relaxed"),
            )
        except dkim.DKIMException as exc:
            raise ChannelError(f"DKIM signing failed: {exc}") from None
        return signature + data

    # -- sending ------------------------------------------------------------
    def send(self, message: OutboundMessage) -> SendResult:
        if self._batches == 0:
            with self.batch():
                return self.send(message)
        data = self._sign(self.message_bytes(message))
        options = ["SMTPUTF8"] if not (message.to.isascii() and self.sender.isascii()) else []
        reused = self._conn is not None
        if self._conn is None:
            self._conn = self._connect()
        try:
            pipelined = self._envelope(self._conn, message.to, options)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._close()
            if not reused:
                raise ChannelError(
                    f"the SMTP server closed the connection before the message was sent ({exc})"
                ) from None
            self._conn = self._connect()  # the pooled connection had gone stale: one fresh try
            try:
                pipelined = self._envelope(self._conn, message.to, options)
            except (smtplib.SMTPServerDisconnected, OSError) as again:
                self._close()
                raise ChannelError(
                    f"the SMTP server closed the connection before the message was sent ({again})"
                ) from None
        try:
            code, reply = self._content(self._conn, data) if pipelined else self._conn.data(data)
        except smtplib.SMTPDataError as exc:
            self._reset()
            raise _classify("DATA", exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._close()
            raise ChannelError(
                f"the SMTP connection dropped while sending the data ({exc}); the server may have the message",
                ambiguous=True,
            ) from None
        if code != 250:
            self._reset()
            raise _classify("DATA", code, reply)
        return SendResult(provider_id=message_id(message.key, self.domain))

    def _envelope(self, conn: smtplib.SMTP, to: str, options: list[str]) -> bool:
        """MAIL FROM and RCPT TO, and with PIPELINING (RFC 2920) DATA too, all in one write; True if DATA was
        accepted already (its content goes next, see :meth:`_content`).

        :raises ChannelError: for a refusal, as :func:`_classify` says (the session is reset first).
        """
        if options and not conn.has_extn("smtputf8"):
            raise ChannelError(
                f"the SMTP server cannot take the non-ASCII address {to!r} (no SMTPUTF8)",
                permanent=True,
                suppress="invalid_address",
            )
        if not conn.has_extn("pipelining"):
            code, reply = conn.mail(self.sender, options)
            if code != 250:
                self._reset()
                raise _classify("MAIL FROM", code, reply)
            code, reply = conn.rcpt(to)
            if code not in (250, 251):
                self._reset()
                raise _classify("RCPT TO", code, reply)
            return False
        if options:
            conn.command_encoding = "utf-8"  # as smtplib's mail() does for SMTPUTF8
        extra = "".join(f" {option}" for option in options)
        if self._from is None:
            self._from = smtplib.quoteaddr(self.sender)
        recipient = f"<{to}>" if mime.plain_address(to) else smtplib.quoteaddr(to)  # what quoteaddr makes of it
        conn.send(f"mail FROM:{self._from}{extra}\r\nrcpt TO:{recipient}\r\ndata\r\n")
        replies = [conn.getreply(), conn.getreply(), conn.getreply()]
        (mail, mail_reply), (rcpt, rcpt_reply), (data, data_reply) = replies
        if mail == 250 and rcpt in (250, 251) and data == 354:
            return True
        if data == 354:  # a server that took DATA with nobody to deliver to: end it empty (RFC 2920)
            conn.send(b".\r\n")
            conn.getreply()
        self._reset()
        if mail != 250:
            raise _classify("MAIL FROM", mail, mail_reply)
        if rcpt not in (250, 251):
            raise _classify("RCPT TO", rcpt, rcpt_reply)
        raise _classify("DATA", data, data_reply)

    @staticmethod
    def _content(conn: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
        """After a pipelined DATA's 354: the message, dot-stuffed and ended as ``smtplib`` ends it; the reply."""
        body = _LEADING_DOT.sub(b"..", data)
        conn.send(body + (b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"))
        return conn.getreply()

    def _reset(self) -> None:
        """Leave the pooled session ready for the next message, or drop it."""
        if self._conn is None:
            return
        try:
            self._conn.rset()
        except (OSError, smtplib.SMTPException):
            self._close()


def _quit(conn: smtplib.SMTP | None) -> None:
    if conn is None:
        return
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


def mail_domain(mail_from: str) -> str:
    """The domain of the address in a From value (``Acme <news@acme.example>`` → ``acme.example``)."""
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2].lower() if "@" in address else ""


def message_token(key: str) -> str:
    """An opaque, stable token for an outbox key: the same on every retry, and reveals nothing of it."""
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def message_id(key: str, domain: str) -> str:
    """A Message-ID that is the same on every retry of one outbox row, and reveals nothing of it."""
    return f"<{message_token(key)}@{domain or 'nudge.invalid'}>"


def text_footer(text: str, url: str, postal: str) -> str:
    lines = [text.rstrip("\n"), "", "-- ", f"Unsubscribe: {url}"]
    if postal:
        lines.append(postal)
    return "\n".join(lines) + "\n"


def html_footer(html: str, url: str, postal: str) -> str:
    address = "<br>".join(html_lib.escape(line.strip()) for line in postal.splitlines() if line.strip())
    footer = (
        f'<div style="margin-top:2em;font-size:12px;color:#666">'
        f'<p><a href="{html_lib.escape(url, quote=True)}">Unsubscribe</a></p>'
        + (f"<p>{address}</p>" if address else "")
        + "</div>"
    )
    at = html.lower().rfind("</body>")
    return html[:at] + footer + html[at:] if at >= 0 else html + footer


def _classify(stage: str, code: int, reply: bytes | str) -> ChannelError:
    """5xx to a recipient is a hard bounce (permanent, suppress); 4xx, and our own sender refused, is retried."""
    raw = reply if isinstance(reply, bytes) else str(reply).encode()
    text = f"SMTP {code} at {stage}: {raw.decode('utf-8', 'replace')}"
    if code == 421 or not 500 <= code < 600:
        return ChannelError(text)
    if stage == "MAIL FROM":  # our sender address is refused: fix the configuration, then the messages go out
        return ChannelError(text + " (check NUDGE_MAIL_FROM)")
    enhanced = _ENHANCED.search(raw)
    addressing = enhanced is not None and (enhanced.group(2) == b"1" or enhanced.group(0) == b"5.2.1")
    if stage == "RCPT TO" or addressing:
        return ChannelError(text, permanent=True, suppress="bounced")
    return ChannelError(text, permanent=True)

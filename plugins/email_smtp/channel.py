"""The SMTP channel: one connection reused across a batch of sends."""
from __future__ import annotations

import contextlib
import hashlib
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Iterator

from server.sdk import Channel, ChannelError, OutboundMessage, SendResult


class EmailChannel(Channel):
    name = "email"
    address_field = "email"
    config_schema = {
        "SMTP_URL": {"type": "string", "required": True, "secret": True,
                     "help": "smtp://user:pass@host:port?tls=starttls"},
        "MAIL_FROM": {"type": "string", "required": True, "default": "Nudge <nudge@localhost>"},
    }

    def __init__(self, config=None):
        super().__init__(config)
        self._conn: smtplib.SMTP | None = None

    def validate_address(self, address: str) -> str:
        from email_validator import EmailNotValidError, validate_email

        try:
            return validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(str(exc)) from None

    # -- connection ---------------------------------------------------------
    def _connect(self) -> smtplib.SMTP:
        s = self.config["SMTP"]
        try:
            if s.tls == "ssl":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                      context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                if s.tls == "starttls":
                    conn.starttls(context=ssl.create_default_context())
            if s.username:
                conn.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(f"SMTP login refused by {s.host}:{s.port}: {exc.smtp_code}", permanent=False) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"cannot connect to SMTP server {s.host}:{s.port}: {exc}") from None
        return conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                conn.quit()

    @contextlib.contextmanager
    def batch(self) -> Iterator["EmailChannel"]:
        try:
            yield self
        finally:
            self._close()

    # -- sending ------------------------------------------------------------
    def build(self, message: OutboundMessage) -> EmailMessage:
        domain = self.config.get("MAIL_DOMAIN") or "nudge.invalid"
        msg = EmailMessage()
        msg["From"] = self.config.get("MAIL_FROM", "Nudge <nudge@localhost>")
        msg["To"] = message.to
        msg["Subject"] = message.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = message_id(message.key, domain)
        for name, value in message.headers.items():
            msg[name] = value
        msg.set_content(message.text or "")
        if message.html:
            msg.add_alternative(message.html, subtype="html")
        return msg

    def send(self, message: OutboundMessage) -> SendResult:
        msg = self.build(message)
        reused = self._conn is not None
        if self._conn is None:
            self._conn = self._connect()
        try:
            self._conn.send_message(msg)
        except smtplib.SMTPServerDisconnected:
            self._conn = None
            if reused:  # the pooled connection went stale: one fresh try
                return self.send(message)
            raise ChannelError("SMTP server closed the connection", ambiguous=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise _classify(code, reply) from None
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            raise _classify(exc.smtp_code, exc.smtp_error) from None
        except (socket.timeout, OSError) as exc:
            self._close()
            raise ChannelError(f"SMTP connection failed while sending: {exc}", ambiguous=True) from None
        return SendResult(provider_id=msg["Message-ID"])


def message_id(key: str, domain: str) -> str:
    """A Message-ID that is the same on every retry of one outbox row, and reveals nothing of it."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def _classify(code: int, reply: bytes | str) -> ChannelError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    if 500 <= code < 600:
        return ChannelError(f"SMTP {code}: {text}", permanent=True, suppress="bounced")
    return ChannelError(f"SMTP {code}: {text}")

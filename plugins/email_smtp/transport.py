"""The SMTP session of one email channel instance: connecting (TLS, login), the envelope pipelined (RFC 2920),
the content, and what each refusal means (a bounce, a retry, or a message whose fate only the server knows)."""

from __future__ import annotations

import dataclasses
import re
import smtplib
import ssl
from collections.abc import Mapping
from typing import Any

from server.sdk import ChannelError

from . import mime
from .settings import SmtpSettings

__all__ = ["SmtpTransport", "classify", "quit_quietly"]

_ENHANCED = re.compile(rb"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_LEADING_DOT = re.compile(rb"(?m)^\.")  # a line starting with a dot gets another (RFC 5321 4.5.2)


class SmtpTransport:
    """One SMTP connection, opened at the first message and reused for the next until :meth:`close`."""

    def __init__(self, smtp: SmtpSettings, config: Mapping[str, Any], sender: str):
        self.smtp = smtp
        self.config = config
        self.sender = sender  # the envelope's MAIL FROM
        self.conn: smtplib.SMTP | None = None
        self._from: str | None = None  # the sender as MAIL FROM gives it

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.get("SMTP_CA_FILE") or None)

    def connect(self, timeout: float | None = None) -> smtplib.SMTP:
        """A new session: connected, EHLO, STARTTLS and login as configured.

        :raises ChannelError: saying what failed (login, the certificate, the connection) and which setting to check.
        """
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
            quit_quietly(conn)
            raise ChannelError(
                f"SMTP login refused by {s.host}:{s.port} ({exc.smtp_code}); check the user and "
                "password in NUDGE_SMTP_URL"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            quit_quietly(conn)
            raise ChannelError(
                f"the certificate of SMTP server {s.host}:{s.port} is not trusted ({exc.verify_message});"
                " set NUDGE_SMTP_CA_FILE to the CA that signed it"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            quit_quietly(conn)
            raise ChannelError(f"cannot connect to SMTP server {s.host}:{s.port}: {exc}") from None
        return conn

    def close(self) -> None:
        """QUIT the session, if there is one."""
        conn, self.conn = self.conn, None
        quit_quietly(conn)

    def deliver(self, to: str, data: bytes) -> None:
        """Send *data* to *to* over the session (a new one if none is open; one fresh try if it had gone stale).

        :raises ChannelError: a refusal as :func:`classify` says; ``ambiguous`` when the connection dropped after
            the content went out (the server may have the message).
        """
        options = ["SMTPUTF8"] if not (to.isascii() and self.sender.isascii()) else []
        reused = self.conn is not None
        if self.conn is None:
            self.conn = self.connect()
        try:
            pipelined = self._envelope(self.conn, to, options)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            if not reused:
                raise ChannelError(
                    f"the SMTP server closed the connection before the message was sent ({exc})"
                ) from None
            self.conn = self.connect()  # the pooled connection had gone stale: one fresh try
            try:
                pipelined = self._envelope(self.conn, to, options)
            except (smtplib.SMTPServerDisconnected, OSError) as again:
                self.close()
                raise ChannelError(
                    f"the SMTP server closed the connection before the message was sent ({again})"
                ) from None
        try:
            code, reply = self._content(self.conn, data) if pipelined else self.conn.data(data)
        except smtplib.SMTPDataError as exc:
            self._reset()
            raise classify("DATA", exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise ChannelError(
                f"the SMTP connection dropped while sending the data ({exc}); the server may have the message",
                ambiguous=True,
            ) from None
        if code != 250:
            self._reset()
            raise classify("DATA", code, reply)

    def _envelope(self, conn: smtplib.SMTP, to: str, options: list[str]) -> bool:
        """MAIL FROM and RCPT TO, and with PIPELINING (RFC 2920) DATA too, all in one write; True if DATA was
        accepted already (its content goes next, see :meth:`_content`).

        :raises ChannelError: for a refusal, as :func:`classify` says (the session is reset first).
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
                raise classify("MAIL FROM", code, reply)
            code, reply = conn.rcpt(to)
            if code not in (250, 251):
                self._reset()
                raise classify("RCPT TO", code, reply)
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
            raise classify("MAIL FROM", mail, mail_reply)
        if rcpt not in (250, 251):
            raise classify("RCPT TO", rcpt, rcpt_reply)
        raise classify("DATA", data, data_reply)

    @staticmethod
    def _content(conn: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
        """After a pipelined DATA's 354: the message, dot-stuffed and ended as ``smtplib`` ends it; the reply."""
        body = _LEADING_DOT.sub(b"..", data) if data[:1] == b"." or b"\n." in data else data
        conn.send(body + (b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"))
        return conn.getreply()

    def _reset(self) -> None:
        """Leave the pooled session ready for the next message, or drop it."""
        if self.conn is None:
            return
        try:
            self.conn.rset()
        except (OSError, smtplib.SMTPException):
            self.close()


def quit_quietly(conn: smtplib.SMTP | None) -> None:
    """QUIT *conn*, or just close it when the server does not answer."""
    if conn is None:
        return
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


def classify(stage: str, code: int, reply: bytes | str) -> ChannelError:
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

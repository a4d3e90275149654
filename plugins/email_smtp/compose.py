"""Building an email: the MIME message of an :class:`~server.sdk.OutboundMessage`, its bytes, its DKIM signature.

Every marketing message carries ``List-Unsubscribe`` (the HTTPS one-click URL, plus a mailto when
``UNSUBSCRIBE_MAILTO`` is set and processed), ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 2369,
RFC 8058) and ``List-Id`` (RFC 2919), as raw ASCII (see :mod:`.headers`), a visible unsubscribe link and the
sender's postal address; without a postal address it is refused. With DKIM configured, the signature covers the
List headers. ``FEEDBACK_ID`` adds Gmail's ``Feedback-ID`` to every message.
"""

from __future__ import annotations

import functools
import hashlib
import html as html_lib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from server.sdk import ChannelError, OutboundMessage, check_header

from . import headers as raw
from . import mime

__all__ = [
    "DKIM_HEADERS",
    "Composer",
    "Headers",
    "html_footer",
    "mail_domain",
    "message_id",
    "message_token",
    "text_footer",
]

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
#: (name, value) pairs, in order
Headers = list[tuple[str, str]]


class Composer:
    """Builds the messages of one email channel instance; what is the same on every message is made once."""

    def __init__(self, config: Mapping[str, Any], sender: str, domain: str):
        self.config = config
        self.sender = sender  # the address of MAIL_FROM
        self.domain = domain  # its domain: that of every Message-ID
        self._list: Headers | None = None  # see _list_headers
        self._from_header: str | None = None  # see _checked_from
        self._date: tuple[int, str] = (-1, "")  # the Date header of this second (a Unix time)
        self._last_id: tuple[str | None, str] = (None, "")  # the last Message-ID made, and its key
        self._known: dict[str, bool] = {}  # header values the email package writes unchanged (see .mime)
        self._constant: tuple[str, bool] = ("", False)  # a Date; whether it, From, Message-ID write unchanged

    def build(self, message: OutboundMessage) -> EmailMessage:
        """The MIME message: multipart text + HTML, stable Message-ID, the List headers on marketing mail.

        :raises ChannelError: permanent, for header injection, or a marketing message without an unsubscribe
            URL or without a postal address to show.
        """
        return self.assemble(*self.compose(message))

    def message_bytes(self, message: OutboundMessage) -> bytes:
        """The bytes of :meth:`build`'s message, written directly when :mod:`.mime` can (the same bytes, faster)."""
        headers, raw_headers, text, html = self.compose(message)
        data = None
        if self._unchanged(headers):
            data = mime.message_bytes(headers, raw_headers, text, html)
        return data if data is not None else self.assemble(headers, raw_headers, text, html).as_bytes()

    def _unchanged(self, headers: Headers) -> bool:
        """Whether the ``email`` package writes every one of *headers* as given (:func:`.mime.writes_unchanged`).

        From and the Message-ID's form are the same on every message and the Date on every message of a second:
        their answers are kept (a Message-ID is ``<40 hex digits@domain>``, so one answer holds for all)."""
        known = self._known
        date = headers[3][1]
        if self._constant[0] != date:
            constant = (headers[0], ("Message-ID", message_id("", self.domain)), headers[3])
            self._constant = (date, all(mime.writes_unchanged(name, value, known) for name, value in constant))
        return self._constant[1] and all(
            mime.writes_unchanged(name, value, known) for name, value in (headers[1], headers[2], *headers[5:])
        )

    def compose(self, message: OutboundMessage) -> tuple[Headers, Headers, str, str | None]:
        """Headers (parsed, then raw), text and HTML of *message*; see :meth:`build`."""
        text, html = message.text or "", message.html
        extra = list(message.headers.items())
        for name, value in (("To", message.to), ("Subject", message.subject), *extra):
            check_header(name, value)
        now = int(time.time())  # the second, asked ~10x cheaper than of datetime.now(UTC).replace(microsecond=0)
        if self._date[0] != now:
            self._date = (now, format_datetime(datetime.fromtimestamp(now, UTC)))
        headers: list[tuple[str, str]] = [
            ("From", self._checked_from()),
            ("To", message.to),
            ("Subject", message.subject),
            ("Date", self._date[1]),
            ("Message-ID", self.message_id(message.key)),
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

    def message_id(self, key: str) -> str:
        """:func:`message_id` of *key* in this channel's domain; the last one kept, as the send asks for it again
        (its provider id) just after composing it."""
        last = self._last_id
        if last[0] != key:
            last = self._last_id = (key, message_id(key, self.domain))
        return last[1]

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
    def assemble(
        headers: list[tuple[str, str]], raw_headers: list[tuple[str, str]], text: str, html: str | None
    ) -> EmailMessage:
        """The ``email`` package's message of :meth:`compose`'s parts (what :meth:`message_bytes` writes faster)."""
        msg = EmailMessage(policy=_POLICY)
        for name, value in headers:
            msg[name] = value
        for name, value in raw_headers:
            msg.set_raw(name, value)
        msg.set_content(text, cte="quoted-printable")
        if html:
            msg.add_alternative(html, subtype="html", cte="quoted-printable")
        return msg

    def sign(self, data: bytes) -> bytes:
        """*data* with a DKIM signature on top when DKIM is configured; *data* itself otherwise."""
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
    """*text* with the unsubscribe link and the postal address below a signature line."""
    lines = [text.rstrip("\n"), "", "-- ", f"Unsubscribe: {url}"]
    if postal:
        lines.append(postal)
    return "\n".join(lines) + "\n"


def html_footer(html: str, url: str, postal: str) -> str:
    """*html* with the unsubscribe link and the postal address before ``</body>`` (or at the end)."""
    footer = (
        f'<div style="margin-top:2em;font-size:12px;color:#666">'
        f'<p><a href="{html_lib.escape(url, quote=True)}">Unsubscribe</a></p>' + _postal_html(postal) + "</div>"
    )
    at = html.lower().rfind("</body>")
    return html[:at] + footer + html[at:] if at >= 0 else html + footer


@functools.lru_cache(maxsize=16)
def _postal_html(postal: str) -> str:
    """The footer's paragraph of the postal address (nothing without one): the same on every message, made once."""
    address = "<br>".join(html_lib.escape(line.strip()) for line in postal.splitlines() if line.strip())
    return f"<p>{address}</p>" if address else ""

"""Machine-read headers, written as raw ASCII: List-Unsubscribe, List-Unsubscribe-Post, List-Id, Feedback-ID.

Python's ``email`` package folds a long unstructured header into RFC 2047 encoded-words
(``=?utf-8?q?=3Chttps=3A//…``), which mailbox providers do not decode in these headers: the
one-click unsubscribe URI would vanish. So these are emitted verbatim, folded only between
their parts (at the comma of List-Unsubscribe, at a space of List-Id), never inside a URI or
an id; a part too long for one line stays whole (RFC 5322 allows lines of up to 998 characters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import Any
from urllib.parse import quote

from server.sdk import ChannelError, SettingError, check_header

#: RFC 5322's recommended line length; folding aims below it
LINE = 78
_LIST_ID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+$")
_LIST_ID_VALUE = re.compile(r"^\s*(?:(?P<phrase>[^<>]*?)\s*)?<(?P<id>[^<>]*)>\s*$")
_FEEDBACK_PART = re.compile(r"[^A-Za-z0-9._-]+")


def fold(name: str, parts: Sequence[str], separator: str) -> str:
    """*parts* joined by *separator* + space, with a line break (CRLF, space) only between parts.

    :return: the value as :meth:`EmailMessage.set_raw` takes it.
    """
    value, line = "", len(name) + 2
    for index, part in enumerate(parts):
        if index == 0:
            value, line = part, line + len(part)
            continue
        joiner = separator.rstrip() + " "
        if line + len(joiner) + len(part) > LINE:
            value += separator.strip() + "\r\n " + part
            line = 1 + len(part)
        else:
            value += joiner + part
            line += len(joiner) + len(part)
    return value


def set_raw(msg: EmailMessage, name: str, parts: Sequence[str], separator: str = ",") -> None:
    """Add header *name* as raw ASCII, folded between *parts* only (see :func:`raw_value`)."""
    msg.set_raw(name, raw_value(name, parts, separator))


def raw_value(name: str, parts: Sequence[str], separator: str = ",") -> str:
    """The value of header *name* as raw ASCII, folded between *parts* only.

    :raises ChannelError: permanent, when a part holds a line break or a non-ASCII character.
    """
    for part in parts:
        check_header(name, part)
        if not part.isascii():
            raise ChannelError(
                f"header {name} must be ASCII, got {part[:80]!r} (percent-encode URLs; use an ASCII list id)",
                permanent=True,
            )
    return fold(name, parts, separator)


def list_unsubscribe(url: str, mailto: str | None) -> list[str]:
    """The URIs of ``List-Unsubscribe`` (RFC 2369, RFC 8058): the one-click URL, then a mailto when it is processed.

    The mailto's subject is the signed token of the URL, which ``POST /hooks/email/unsubscribe`` reads.
    """
    parts = [f"<{url}>"]
    if mailto:
        token = url.rstrip("/").rsplit("/", 1)[-1]
        parts.append(f"<mailto:{mailto}?subject={quote(token, safe='')}>")
    return parts


def default_list_id(mail_from: str) -> str:
    """``Acme News <news@acme.example>`` → ``Acme News <news.acme.example>`` (RFC 2919: label.domain-you-own)."""
    name, address = parseaddr(mail_from)
    local, _, domain = address.rpartition("@")
    label = re.sub(r"[^A-Za-z0-9-]+", "-", local).strip("-").lower() or "list"
    return f"{name} <{label}.{domain.lower()}>" if name else f"<{label}.{domain.lower()}>"


def parse_list_id(value: str) -> tuple[str, str]:
    """``Description <label.example.com>`` or ``label.example.com`` → (description, id).

    :raises SettingError: naming LIST_ID when the id is not a dotted ASCII name.
    """
    match = _LIST_ID_VALUE.match(value)
    phrase, ident = (match["phrase"] or "", match["id"].strip()) if match else ("", value.strip())
    if not _LIST_ID.match(ident):
        raise SettingError(
            "LIST_ID",
            f"{value!r} is not a list id; use e.g. 'Acme News <news.acme.example>' "
            "(RFC 2919: a dotted name under a domain you own, ASCII)",
        )
    return phrase.strip(), ident


def list_id_parts(value: str) -> list[str]:
    """The words of a ``List-Id`` value; a non-ASCII description becomes RFC 2047 encoded-words (a phrase may)."""
    phrase, ident = parse_list_id(value)
    if not phrase:
        return [f"<{ident}>"]
    rendered = formataddr((phrase, ident), charset="utf-8")  # quotes or encodes the phrase as RFC 5322 wants
    return " ".join(rendered.split()).split(" ")


def feedback_id(data: Mapping[str, Any], template: str, marketing: bool, sender: str) -> str:
    """``Feedback-ID: <campaign>:<template>:<marketing|transactional>:<sender id>`` (Gmail's Feedback Loop).

    Every part is stable (the rule's name, ``broadcast`` or ``form-<slug>``; never a contact or a message),
    so complaint rates add up per campaign and template.
    """
    campaign = data.get("rule_name") or (
        "broadcast" if data.get("broadcast") else f"form-{data['form']}" if data.get("form") else "message"
    )
    parts = (str(campaign), template, "marketing" if marketing else "transactional", sender)
    return ":".join(_FEEDBACK_PART.sub("-", part).strip("-")[:64] or "none" for part in parts)


def check_feedback_sender(value: str) -> None:
    """:raises SettingError: naming FEEDBACK_ID unless it is a short ASCII identifier."""
    if _FEEDBACK_PART.search(value) or len(value) > 64:
        raise SettingError(
            "FEEDBACK_ID", f"{value!r} must be letters, digits, '.', '_' or '-' (at most 64), e.g. acme-news"
        )

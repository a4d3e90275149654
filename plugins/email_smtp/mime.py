"""Writing a message's bytes directly, the same bytes the ``email`` package writes, at a fraction of its cost.

:class:`email.message.EmailMessage` parses every header it is given and re-renders it; that costs more than
everything else a send does. For the common message (plain ASCII header values short enough for one line, a text
part and maybe an HTML part, both quoted-printable) :func:`message_bytes` writes the same bytes itself; for
anything else it answers None and the channel builds the message with the ``email`` package as before.
(``tests/plugins/test_email_mime.py`` checks both give the same bytes.)
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Sequence
from email import policy, quoprimime
from email.message import EmailMessage

#: the email channel's policy: SMTP line ends; headers set with ``set_raw`` written as they are (never refolded
#: into encoded-words)
POLICY = policy.SMTP.clone(refold_source="none")
#: headers written as they are given (already folded ASCII, see :mod:`.headers`)
Raw = tuple[str, str]
#: a value the ``email`` package writes unchanged: printable ASCII, single spaces, no encoded-word marker
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_MESSAGE_ID = re.compile(r"<[0-9a-f]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>")
_DATE = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (?:[A-Z][a-z]{2}) \d{4} \d\d:\d\d:\d\d \+0000")
#: text whose only character quoted-printable quotes is "=": printable ASCII, space, tab and the line ends
_QP_ASCII = re.compile(r"[\t\n\r -~]*")
#: how the ``email`` package makes a boundary (``email.generator._make_boundary``)
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))
LINE = 78
MAX_LINE = 78  # the SMTP policy's max_line_length, which quoted-printable wraps at
#: in text with neither "=" nor "\r": a line too long, or one ending in a space or a tab (quoted-printable wraps or
#: quotes it)
_TO_WRAP = re.compile(rf"[^\n]{{{MAX_LINE + 1}}}|[ \t](?:\n|\Z)")


def writes_unchanged(name: str, value: str, known: dict[str, bool]) -> bool:
    """Whether the ``email`` package writes header *name* with *value* exactly as given, on one line.

    :param known: answers for values whose form the patterns here do not settle (a From with a display name),
        filled by asking the ``email`` package once per value.
    """
    if len(name) + 2 + len(value) > LINE or "=?" in value or not _PLAIN.fullmatch(value):
        return False
    lower = name.lower()
    if lower == "to":
        return plain_address(value)
    if lower == "subject":
        return True
    if lower == "message-id":
        return bool(_MESSAGE_ID.fullmatch(value))
    if lower == "date":
        return bool(_DATE.fullmatch(value))
    key = f"{lower}:{value}"
    if key not in known:
        probe = EmailMessage(policy=POLICY)
        probe[name] = value
        if len(known) >= 1024:  # a bounded memo: values of extra headers may vary per message
            known.clear()
        known[key] = probe.as_bytes() == f"{name}: {value}\r\n\r\n".encode()
    return known[key]


def plain_address(value: str) -> bool:
    """Whether *value* is a bare ASCII address (``local@domain``, dot-atoms only), written as it is everywhere."""
    return bool(_ADDRESS.fullmatch(value))


def quoted_printable(body: str) -> str:
    """``quoprimime.body_encode(body, MAX_LINE)``, the same text, cheaper: *body* itself when no character needs
    quoting, no line is too long and none ends in a space or tab (most text); for other ASCII text its ``=`` quoted
    by one ``replace`` instead of a translation of every character, then wrapped as ``body_encode`` wraps it."""
    if not _QP_ASCII.fullmatch(body):
        return quoprimime.body_encode(body, MAX_LINE)
    if "=" in body or "\r" in body:
        return _wrap(body.replace("=", "=3D"))
    if _TO_WRAP.search(body) is None:
        return body
    return _wrap(body)


def _wrap(body: str) -> str:
    """The line wrapping of ``quoprimime.body_encode(body, MAX_LINE)`` (Python 3.11's, step for step) on text
    whose characters are quoted already; soft breaks ``=`` at MAX_LINE, never inside an ``=XX``."""
    if not body:
        return body
    out: list[str] = []
    append = out.append
    limit = MAX_LINE - 1
    for line in body.splitlines():
        if len(line) <= MAX_LINE and not (line and line[-1] in " \t"):
            append(line)  # most lines: nothing to wrap or quote (what the steps below give them too)
            continue
        start = 0
        last = len(line) - 1 - MAX_LINE
        while start <= last:
            stop = start + limit
            if line[stop - 2] == "=":
                append(line[start : stop - 1])
                start = stop - 2
            elif line[stop - 1] == "=":
                append(line[start:stop])
                start = stop - 1
            else:
                append(line[start:stop] + "=")
                start = stop
        if line and line[-1] in " \t":
            room = start - last
            quoted = "=20" if line[-1] == " " else "=09"
            if room >= 3:
                tail = quoted
            elif room == 2:
                tail = line[-1] + "=\n"
            else:
                tail = "=\n" + quoted
            append(line[start:-1] + tail)
        else:
            append(line[start:])
    if body[-1] in "\r\n":
        append("")
    return "\n".join(out)


def _part(subtype: str, text: str) -> tuple[list[str], str]:
    if text.isascii() and "\r" not in text:  # its UTF-8 is itself, its lines end in "\n" alone: the same body
        body = quoted_printable(text if text.endswith("\n") else text + "\n")
    else:
        lines = text.encode("utf-8").splitlines()
        body = quoted_printable((b"\n".join(lines) + b"\n").decode("latin-1"))
    headers = [f'Content-Type: text/{subtype}; charset="utf-8"', "Content-Transfer-Encoding: quoted-printable"]
    return headers, body.replace("\n", "\r\n")


def message_bytes(headers: Sequence[tuple[str, str]], raw: Sequence[Raw], text: str, html: str | None) -> bytes | None:
    """The message's bytes as ``EmailMessage`` + ``set_content``/``add_alternative`` would write them, or None.

    :param headers: parsed headers in order (From, To, Subject, Date, Message-ID, any others); None is answered
        unless each is written unchanged (:func:`writes_unchanged` decided by the caller).
    :param raw: headers set with ``set_raw``, in order, after those.
    """
    top = [f"{name}: {value}" for name, value in (*headers, *raw)]
    text_headers, text_body = _part("plain", text)
    if not html:
        lines = [*top, *text_headers, "MIME-Version: 1.0", "", text_body]
        return "\r\n".join(lines).encode("ascii")
    html_headers, html_body = _part("html", html)
    boundary = "=" * 15 + str(random.randrange(sys.maxsize)).zfill(_BOUNDARY_WIDTH) + "=="
    if boundary in text_body or boundary in html_body:
        return None  # the email package would pick another boundary; let it
    lines = [
        *top,
        "MIME-Version: 1.0",
        "Content-Type: multipart/alternative;",
        f' boundary="{boundary}"',
        "",
        f"--{boundary}",
        *text_headers,
        "",
        text_body,
        f"--{boundary}",
        *html_headers,
        "MIME-Version: 1.0",
        "",
        html_body,
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")

"""The email channel writes a message's bytes itself when it can (:mod:`plugins.email_smtp.mime`): byte for byte what
the ``email`` package writes, for every kind of content; anything it cannot write the same way goes the slow way."""

from __future__ import annotations

import re

import pytest

from plugins.email_smtp import mime
from plugins.email_smtp.channel import EmailChannel
from server.sdk import OutboundMessage

BOUNDARY = re.compile(rb'boundary="([^"]+)"')
TEXTS = [
    "Hello there,\n\nthanks for signing up.\n",
    "",
    "no newline at the end",
    "h\u00e9llo w\u00f6rld \u2603 \U0001f600\n",
    "trailing spaces   \nand tabs\t\n. a dot line\n.\nFrom the start\n",
    "a" * 200 + "\n" + "b " * 100,
    "=3D equals = signs =\r\nwindows\r\nline ends\rmac\n",
    "\n\n\n",
    "vertical\x0btab, form\x0cfeed, \x1cgroup: no line ends to the email package\n",
    "line\u2028separator\x85next line\n",
]
HTMLS = [None, "<p>Hello {{ }}</p>", "<html><body><p>h\u00e9llo</p></body></html>", "x" * 300]


def _channel(**settings) -> EmailChannel:
    return EmailChannel(
        {"MAIL_FROM": "Acme <news@acme.example>", "POSTAL_ADDRESS": "1 Main St\nSpringfield", **settings}
    )


def _both(channel: EmailChannel, message: OutboundMessage) -> tuple[bytes | None, bytes]:
    headers, raw, text, html = channel.composer.compose(message)
    slow = channel.composer.assemble(headers, raw, text, html).as_bytes()
    if not all(mime.writes_unchanged(name, value, {}) for name, value in headers):
        return None, slow
    fast = mime.message_bytes(headers, raw, text, html)
    if fast is not None and html:
        fast = fast.replace(BOUNDARY.search(fast)[1], BOUNDARY.search(slow)[1])
    return fast, slow


@pytest.mark.parametrize("marketing", [True, False])
@pytest.mark.parametrize("html", HTMLS)
@pytest.mark.parametrize("text", TEXTS)
def test_the_fast_writer_writes_the_bytes_the_email_package_writes(text, html, marketing):
    message = OutboundMessage(
        key="enr:12:3",
        channel="email",
        template="welcome",
        to="someone@example.com",
        subject="Welcome, friend!",
        text=text,
        html=html,
        unsubscribe_url="https://nudge.example/u/abc.def",
        marketing=marketing,
        data={"rule": "Welcome"},
    )
    fast, slow = _both(_channel(FEEDBACK_ID="acme", UNSUBSCRIBE_MAILTO="u@acme.example"), message)
    assert fast is not None, "a plain ASCII message must take the fast path"
    assert fast == slow


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Gr\u00fc\u00dfe aus K\u00f6ln"),  # encoded-words
        ("subject", "=?utf-8?q?looks_encoded?="),
        ("subject", "a long subject " * 8),  # folded
        ("subject", "two  spaces"),
        ("to", "J\u00f6rg@example.com"),
        ("to", "Someone <someone@example.com>"),
    ],
)
def test_what_the_fast_writer_cannot_write_the_same_goes_the_slow_way(field, value):
    message = OutboundMessage(
        key="enr:1:1",
        channel="email",
        template="t",
        to=value if field == "to" else "someone@example.com",
        subject=value if field == "subject" else "Hi",
        text="hello\n",
        marketing=False,
    )
    fast, slow = _both(_channel(), message)
    assert fast is None
    assert slow  # the email package writes it, as before


@pytest.mark.parametrize("sender", ["Acme <news@acme.example>", "Acme Inc. <news@acme.example>", "news@acme.example"])
def test_a_sender_is_written_fast_only_when_the_email_package_would_write_it_unchanged(sender):
    channel = _channel(MAIL_FROM=sender)
    message = OutboundMessage(
        key="enr:1:1", channel="email", template="t", to="a@example.com", subject="Hi", text="x", marketing=False
    )
    fast, slow = _both(channel, message)
    assert (fast is not None) == (f"From: {sender}\r\n".encode() in slow)
    if fast is not None:
        assert fast == slow


def test_quoted_printable_is_what_the_email_package_encodes():
    import random
    from email import quoprimime

    rng = random.Random(12)
    alphabet = " \t=abc.~<>\x7f\xe9\n\r\x0b\x85xyz"
    samples = [*TEXTS, "x" * mime.MAX_LINE + "\n", "x" * (mime.MAX_LINE + 1) + "\n", "ends in a space \n"]
    # an "=" (quoted: "=3D") or a trailing blank at every place around the soft break, in ASCII-only text
    samples += [f"{'a' * k}{tail}\n" for k in range(70, 160) for tail in ("=", "==", "=b=", " ", "\t", "= ", "a=\t")]
    for _ in range(20_000):
        sample = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 200)))
        if rng.random() < 0.5:  # mostly characters written as they are
            sample = re.sub("[=\x7f\xe9\r\x0b\x85]", "", sample)
        samples.append(sample)
    for sample in samples:
        assert mime.quoted_printable(sample) == quoprimime.body_encode(sample, mime.MAX_LINE), repr(sample)


@pytest.mark.parametrize(
    "value", ["plain", "", "a\rb", "a\nb", "a\r\nb", "nul\0", "\u2028 and \x85 are no breaks", "tab\tok"]
)
@pytest.mark.parametrize("name", ["To", "Subject", "List-Unsubscribe"])
def test_a_header_value_is_refused_exactly_as_the_character_rule_refuses_it(name, value):
    """``check_header`` (one regex search) refuses what the rule it was written as, character by character, refused,
    with the same words."""
    from server.sdk import ChannelError, check_header

    def by_characters(name: str, value: str) -> tuple[str, bool] | None:
        if any(ch in name for ch in "\r\n\0: ") or not name:
            return f"invalid header name {name!r}", True
        if any(ch in str(value) for ch in "\r\n\0"):
            return f"header {name} contains a line break; refusing to send (header injection)", True
        return None

    def outcome(check) -> tuple[str, bool] | None:
        try:
            check(name, value)
        except ChannelError as exc:
            return exc.message, exc.permanent
        return None

    assert outcome(check_header) == by_characters(name, value)
    assert (outcome(check_header) is None) == (not any(ch in value for ch in "\r\n\0"))

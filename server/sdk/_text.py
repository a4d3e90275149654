"""Safe text for providers and logs: header values, address hashes, redaction."""

from __future__ import annotations

import hashlib
import re

from ._messages import ChannelError

#: what a header name may not hold, and what a header value may not (one C search each: a send checks several)
_BAD_NAME = re.compile("[\r\n\0: ]")
_BAD_VALUE = re.compile("[\r\n\0]")


def check_header(name: str, value: str) -> str:
    """Refuse a header name or value that could inject another header.

    :return: *value*, unchanged.
    :raises ChannelError: permanent, naming the header, when it holds CR, LF or NUL.
    """
    if not name or _BAD_NAME.search(name) is not None:
        raise ChannelError(f"invalid header name {name!r}", permanent=True)
    if _BAD_VALUE.search(str(value)) is not None:
        raise ChannelError(f"header {name} contains a line break; refusing to send (header injection)", permanent=True)
    return value


def address_hash(address: str, salt: str) -> str:
    """The suppression-list form of an address: salted SHA-256 of the trimmed, lower-cased address.

    :param address: an email address, phone number … as the channel uses it.
    :param salt: the instance's ``SECRET_KEY``.
    """
    normalised = address.strip().lower()
    return hashlib.sha256(f"{salt}\0{normalised}".encode()).hexdigest()


_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
#: phone numbers as Nudge stores and providers quote them: E.164, perhaps with spaces, dots or dashes
_PHONE = re.compile(r"\+\d(?:[ .()-]?\d){6,}")


def redact(text: str) -> str:
    """*text* with email addresses and phone numbers masked, for logs and stored diagnostics.

    ``550 5.1.1 <ann@example.com>: no such user`` → ``550 5.1.1 <[email]>: no such user``. Logs name
    messages and contacts by id; provider replies and exception texts go through this first.
    """
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))

"""Standard Webhooks signatures: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` with a ``whsec_`` secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from typing import Protocol

PREFIX = "whsec_"
#: how far a webhook-timestamp may be from now, either way (the spec's recommendation)
TOLERANCE = 5 * 60
#: the longest webhook-id taken: it is stored (with the source's id) as the receipt of the payload
MAX_ID = 200
#: the most digits a webhook-timestamp may have (seconds since 1970 have 10 until the year 2286)
MAX_STAMP_DIGITS = 12


class Headers(Protocol):
    """What :func:`verify` reads of request headers: a dict, or Flask's case-insensitive ``request.headers``."""

    def get(self, key: str, /) -> str | None: ...


class InvalidSignature(Exception):
    """The request is not signed with the expected secret, or too old or new; the message says which."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64 part of ``whsec_…``, or the text itself for a plain secret.

    :raises ValueError: when a ``whsec_`` secret is not valid base64.
    """
    if not secret.startswith(PREFIX):
        return secret.encode()
    encoded = secret[len(PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    if not key:
        raise ValueError("the secret is empty")
    return key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,…`` signature of *body*."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Iterable[str]) -> dict[str, str]:
    """The three Standard Webhooks headers; every secret signs, so receivers on either side of a rotation accept."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets),
    }


def verify(secret: str, headers: Headers, body: bytes, now: float) -> str:
    """Check a signed request.

    :param headers: the request headers (any mapping with case-insensitive ``get``, e.g. Flask's).
    :return: the ``webhook-id``, for de-duplication.
    :raises InvalidSignature: saying what is wrong.
    """
    msg_id, stamp, signatures = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and signatures):
        raise InvalidSignature("the webhook-id, webhook-timestamp and webhook-signature headers are required")
    if len(msg_id) > MAX_ID or not msg_id.isprintable():
        raise InvalidSignature(f"webhook-id must be at most {MAX_ID} printable characters")
    # ASCII digits only: int() also takes " 1", "+1", "1_0" and any script's digits, each a text other than the
    # one the sender signed (and thousands of digits cost a quadratic conversion)
    if not (len(stamp) <= MAX_STAMP_DIGITS and stamp.isascii() and stamp.isdigit()):
        raise InvalidSignature(
            f"webhook-timestamp must be whole seconds since 1970: at most {MAX_STAMP_DIGITS} digits 0-9, "
            "without sign or spaces"
        )
    timestamp = int(stamp)
    if abs(now - timestamp) > TOLERANCE:
        raise InvalidSignature("webhook-timestamp is more than 5 minutes away from now; check the sender's clock")
    expected = base64.b64decode(signature(secret, msg_id, timestamp, body).split(",", 1)[1])
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(given, expected):
            return msg_id
    raise InvalidSignature("no signature matches this source's secret")

"""Signed links in messages and pages: open pixel, click redirect, unsubscribe, preferences,
form confirmation, and the site-tracking visitor id.

Every link carries an itsdangerous token signed with the instance's ``SECRET_KEY`` and a salt per
purpose, so a token made for one purpose is refused by every other, nothing in a URL is a bare
(sequential, guessable) id, and a click redirect goes only where the signed token says.

A token names its contact by the contact's random ``public_id`` (``"p"``), never by the row id: a link
made for an erased person finds nobody, whoever the database creates next. Tokens signed before public
ids existed carry the row id (``"c"``); :func:`contact_of` honours one only for a contact created
before the token was signed — a contact created later holds a reused id and is someone else.
"""

from __future__ import annotations

import binascii
import functools
import hmac
import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Contact

DAY = 86400
#: purpose -> how long its links work, in seconds
MAX_AGE = {
    "open": 400 * DAY,
    "click": 400 * DAY,
    "unsubscribe": 5 * 365 * DAY,  # an old newsletter's link must still work
    "preferences": 5 * 365 * DAY,
    "confirm": 7 * DAY,  # double opt-in: confirm within a week or submit again
    "visitor": 400 * DAY,
}


class BadLink(Exception):
    """The token is forged, tampered with, made for another purpose, or expired (``expired`` says which)."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class Link:
    """A verified token: its payload and when it was signed."""

    data: dict[str, Any]
    signed_at: datetime


def _serializer(purpose: str, app: Flask | None = None) -> URLSafeTimedSerializer:
    if purpose not in MAX_AGE:
        raise ValueError(f"unknown link purpose {purpose!r}")
    return _made(purpose, (app or current_app).config["SECRET_KEY"])


@functools.lru_cache(maxsize=64)
def _made(purpose: str, secret: str | bytes) -> URLSafeTimedSerializer:
    """One serializer per purpose and key, built once (not per link: a send signs two or three)."""
    return URLSafeTimedSerializer(secret, salt=f"nudge.link.{purpose}")


#: payloads shorter than this are not tried with zlib: so short a JSON object seldom gets shorter, and the attempt
#: costs more than the rest of the signing (a payload of any length verifies either way)
COMPRESS_FROM = 128


class _FastSigner:
    """What ``URLSafeTimedSerializer.dumps`` makes, byte for byte, with the key derived and the HMAC keyed once.

    A send signs two or three tokens per message; itsdangerous derives the key, builds a signer and an HMAC, and
    tries zlib on every one of them. :meth:`dumps` gives the same token (the same serializer verifies it), except
    that a payload under :data:`COMPRESS_FROM` bytes is never compressed.
    """

    def __init__(self, serializer: URLSafeTimedSerializer):
        signer = serializer.make_signer()
        assert isinstance(signer, TimestampSigner)  # what a timed serializer makes
        self._timestamp = signer.get_timestamp
        self._sep = signer.sep.encode() if isinstance(signer.sep, str) else signer.sep
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._stamp: tuple[int, bytes] = (-1, b"")  # the last timestamp and its text

    def dumps(self, obj: Any) -> str:
        payload = _json(obj).encode()
        dot = b""
        if len(payload) >= COMPRESS_FROM:
            compressed = zlib.compress(payload)
            if len(compressed) < len(payload) - 1:  # as itsdangerous decides
                payload, dot = compressed, b"."
        now = self._timestamp()
        stamp = self._stamp
        if stamp[0] != now:  # a send signs several tokens a second: the second's text made once
            stamp = self._stamp = (now, _b64(now.to_bytes(8, "big").lstrip(b"\x00")))
        value = dot + _b64(payload) + self._sep + stamp[1]
        mac = self._mac.copy()
        mac.update(value)
        return (value + self._sep + _b64(mac.digest())).decode()


def _json_text() -> Any:
    """``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))`` without building an encoder for each call (which
    that call does, for any argument not the default: ~60% of a token's signing): the C encoder made once, with the
    same settings; no check for circular references (a token's payload is a small dict of our own)."""

    def plain(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator
        return plain
    try:
        escape = json.encoder.encode_basestring  # ensure_ascii=False
        encode = make(None, json.JSONEncoder().default, escape, None, ":", ",", False, False, True)
    except TypeError:  # another Python's private signature
        return plain
    return lambda obj: "".join(encode(obj, 0))


_json = _json_text()


#: what ``base64.urlsafe_b64encode`` translates the standard alphabet's bytes by
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    """``base64.urlsafe_b64encode(data).rstrip(b"=")``, without its two calls in Python around the C one."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


@functools.lru_cache(maxsize=64)
def _fast(purpose: str, secret: str | bytes) -> _FastSigner:
    return _FastSigner(_made(purpose, secret))


def sign(purpose: str, data: dict[str, Any], *, app: Flask | None = None) -> str:
    """A token for *purpose* carrying *data*, signed with ``SECRET_KEY`` (:func:`verify` reads it)."""
    if purpose not in MAX_AGE:
        raise ValueError(f"unknown link purpose {purpose!r}")
    return _fast(purpose, (app or current_app).config["SECRET_KEY"]).dumps(data)


def verify(purpose: str, token: str, *, app: Flask | None = None) -> Link:
    """The payload of a token made by :func:`sign` for *purpose*.

    :raises BadLink: for anything else; callers answer 404.
    """
    try:
        data, signed_at = _serializer(purpose, app).loads(token, max_age=MAX_AGE[purpose], return_timestamp=True)
    except SignatureExpired:
        raise BadLink("the link has expired", expired=True) from None
    except (BadSignature, ValueError, UnicodeDecodeError):
        raise BadLink("the link is not valid") from None
    if not isinstance(data, dict) or not _storable(data):
        raise BadLink("the link is not valid")
    return Link(data=data, signed_at=signed_at.astimezone(UTC))


def _storable(data: dict[str, Any]) -> bool:
    """Whether a payload holds only JSON every backend stores (:func:`~server.contacts.normalize.check_json`: no NUL
    or lone surrogate in text, 64-bit integers, finite numbers): :func:`sign` never makes another, and one that is
    not is refused like a forged one (the pages look it up and store it)."""
    from .contacts import InvalidInput
    from .contacts.normalize import check_json

    try:
        check_json(data, "link")
    except InvalidInput:
        return False
    return True


def _url(path: str, app: Flask | None) -> str:
    return (app or current_app).config["BASE_URL"] + path


def contact_of(session: Session, link: Link) -> Contact | None:
    """The contact a verified link was made for, or None (erased since, or the token names nobody).

    A legacy token (row id, no public id) counts only for a contact created no later than the token was
    signed (to the second, as tokens record it): a contact created afterwards got a reused id.
    """
    public_id = link.data.get("p")
    if isinstance(public_id, str):
        return session.scalar(select(Contact).where(Contact.public_id == public_id))
    contact_id = link.data.get("c")
    if not isinstance(contact_id, int) or isinstance(contact_id, bool):
        return None
    contact = session.get(Contact, contact_id)
    if contact is None or link.signed_at < contact.created_at.replace(microsecond=0):
        return None
    return contact


def open_url(public_id: str, message_key: str, *, app: Flask | None = None) -> str:
    """The open-tracking pixel for one message to the contact with *public_id*."""
    return _url(f"/o/{sign('open', {'p': public_id, 'm': message_key}, app=app)}.gif", app)


def click_url(public_id: str, message_key: str, url: str, *, app: Flask | None = None) -> str:
    """A tracked link to *url* (http or https only) for one message."""
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"only http(s) links are tracked, not {url[:40]!r}")
    return _url(f"/c/{sign('click', {'p': public_id, 'm': message_key, 'u': url}, app=app)}", app)


def unsubscribe_url(public_id: str, channel: str, message_key: str | None = None, *, app: Flask | None = None) -> str:
    """The RFC 8058 ``List-Unsubscribe`` URL: ``GET`` asks to confirm, ``POST`` unsubscribes at once."""
    data: dict[str, Any] = {"p": public_id, "ch": channel}
    if message_key:
        data["m"] = message_key
    return _url(f"/u/{sign('unsubscribe', data, app=app)}", app)


def preferences_url(public_id: str, *, app: Flask | None = None) -> str:
    """The contact's preference page: consent per channel."""
    return _url(f"/p/{sign('preferences', {'p': public_id}, app=app)}", app)


def confirm_url(public_id: str, form_id: int, address: str | None, *, app: Flask | None = None) -> str:
    """The double opt-in confirmation link of a form submission (valid for 7 days).

    :param address: the suppression-list hash of the address the confirmation goes to: confirming
        proves that address is the person's, so only its suppression may be lifted.
    """
    return _url(f"/f/confirm/{sign('confirm', {'p': public_id, 'f': form_id, 'a': address}, app=app)}", app)


def visitor_token(public_id: str, *, app: Flask | None = None) -> str:
    """The first-party identifier the click redirect hands to the site-tracking snippet."""
    return sign("visitor", {"p": public_id}, app=app)


__all__ = [
    "BadLink",
    "Link",
    "click_url",
    "confirm_url",
    "contact_of",
    "open_url",
    "preferences_url",
    "sign",
    "unsubscribe_url",
    "verify",
    "visitor_token",
]

"""Signed links in messages and pages: open pixel, click redirect, unsubscribe, preferences,
form confirmation, and the site-tracking visitor id.

Every link carries an itsdangerous token signed with the instance's ``SECRET_KEY`` and a salt per
purpose, so a token made for one purpose is refused by every other, nothing in a URL is a bare
(sequential, guessable) id, and a click redirect goes only where the signed token says.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import Flask, current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

DAY = 86400
#: purpose -> how long its links work, in seconds
MAX_AGE = {
    "open": 400 * DAY,
    "click": 400 * DAY,
    "unsubscribe": 5 * 365 * DAY,   # an old newsletter's link must still work
    "preferences": 5 * 365 * DAY,
    "confirm": 7 * DAY,             # double opt-in: confirm within a week or submit again
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
    return URLSafeTimedSerializer((app or current_app).config["SECRET_KEY"], salt=f"nudge.link.{purpose}")


def sign(purpose: str, data: dict[str, Any], *, app: Flask | None = None) -> str:
    return _serializer(purpose, app).dumps(data)


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
    if not isinstance(data, dict):
        raise BadLink("the link is not valid")
    return Link(data=data, signed_at=signed_at.astimezone(timezone.utc))


def _url(path: str, app: Flask | None) -> str:
    return (app or current_app).config["BASE_URL"] + path


def open_url(contact_id: int, message_key: str, *, app: Flask | None = None) -> str:
    """The open-tracking pixel for one message."""
    return _url(f"/o/{sign('open', {'c': contact_id, 'm': message_key}, app=app)}.gif", app)


def click_url(contact_id: int, message_key: str, url: str, *, app: Flask | None = None) -> str:
    """A tracked link to *url* (http or https only) for one message."""
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"only http(s) links are tracked, not {url[:40]!r}")
    return _url(f"/c/{sign('click', {'c': contact_id, 'm': message_key, 'u': url}, app=app)}", app)


def unsubscribe_url(contact_id: int, channel: str, message_key: str | None = None, *, app: Flask | None = None) -> str:
    """The RFC 8058 ``List-Unsubscribe`` URL: ``GET`` asks to confirm, ``POST`` unsubscribes at once."""
    data: dict[str, Any] = {"c": contact_id, "ch": channel}
    if message_key:
        data["m"] = message_key
    return _url(f"/u/{sign('unsubscribe', data, app=app)}", app)


def preferences_url(contact_id: int, *, app: Flask | None = None) -> str:
    """The contact's preference page: consent per channel."""
    return _url(f"/p/{sign('preferences', {'c': contact_id}, app=app)}", app)


def confirm_url(contact_id: int, form_id: int, *, app: Flask | None = None) -> str:
    """The double opt-in confirmation link of a form submission (valid for 7 days)."""
    return _url(f"/f/confirm/{sign('confirm', {'c': contact_id, 'f': form_id}, app=app)}", app)


def visitor_token(contact_id: int, *, app: Flask | None = None) -> str:
    """The first-party identifier the click redirect hands to the site-tracking snippet."""
    return sign("visitor", {"c": contact_id}, app=app)


__all__ = ["BadLink", "Link", "click_url", "confirm_url", "open_url", "preferences_url", "sign",
           "unsubscribe_url", "verify", "visitor_token"]

"""Unsubscribing with a signed link token: one code path for the one-click ``POST /u/<token>`` and for
plugins that receive unsubscribe requests another way (``server.sdk.unsubscribe``, e.g. ``mailto:``).
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from .contacts import opt_out
from .db import get_session
from .engine.wake import enqueue_events
from .links import BadLink, contact_of, verify
from .models import Contact


def link_contact(purpose: str, token: str) -> tuple[dict[str, Any], Contact | None]:
    """The payload of a signed link and the contact it names (None when that contact no longer exists, or a
    legacy row-id token names a contact created after it: see :func:`server.links.contact_of`).

    :raises BadLink: for a forged, tampered, foreign or expired token.
    """
    link = verify(purpose, token)
    return link.data, contact_of(get_session(), link)


def token_channel(data: dict[str, Any]) -> str:
    """The channel an unsubscribe link is for (links made before it was written down: the email field's channel)."""
    if isinstance(data.get("ch"), str):
        return data["ch"]
    return current_app.extensions["nudge.plugins"].channel_for_field("email") or ""


def unsubscribe_with_token(
    token: str, source: str, *, ip: str | None = None, user_agent: str | None = None
) -> str | None:
    """Revoke consent on the token's channel and raise ``<channel>.unsubscribed`` (nothing when already revoked, or
    when the channel is no longer installed: nothing can go out on it, and a revoke would name a channel no one
    has).

    Commits, then hands the event to the engine.

    :return: the channel, or None when the token's contact no longer exists.
    :raises BadLink: when the token is not a valid unsubscribe token.
    """
    data, contact = link_contact("unsubscribe", token)
    if contact is None:
        return None
    channel = token_channel(data)
    plugins = current_app.extensions["nudge.plugins"]
    if channel not in plugins.channels:
        return channel
    session = get_session()
    props = {"message": data["m"]} if isinstance(data.get("m"), str) else {}
    event = opt_out(
        session,
        contact,
        channel,
        source,
        event=plugins.opt_out_event(channel),
        ip=ip,
        user_agent=user_agent,
        props=props,
    )
    session.commit()
    enqueue_events([event.id] if event is not None else [])
    return channel


__all__ = ["BadLink", "link_contact", "token_channel", "unsubscribe_with_token"]

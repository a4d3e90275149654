"""Unsubscribing: RFC 8058 one-click, a confirmation page, and the preference page per channel.

``POST /u/<token>`` unsubscribes at once and answers 200 (no cookie, no CSRF token, no redirect:
mail providers post it from their servers). ``GET /u/<token>`` only asks for confirmation, because
scanners prefetch links. The opt-out is a revoked consent in the ledger plus the channel's opt-out event;
the engine asks the send-time policy (:mod:`server.engine.policy`) before every send, so queued messages
stop too.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request, url_for

from ..consent import current_consents, record_consent
from ..contacts import opt_out
from ..db import get_session
from ..engine.wake import enqueue_events
from ..links import preferences_url
from ..models import Contact
from ..optout import BadLink, link_contact, token_channel, unsubscribe_with_token
from .forms import bad_link, client_ip, exempt_from_csrf, page

bp = Blueprint("unsubscribe", __name__)
exempt_from_csrf(bp)
prefs = Blueprint("preferences", __name__)  # an ordinary page form: CSRF-protected


def mask(address: str | None) -> str:
    """``a***@example.com``: enough for people to recognise their address, not enough to leak it."""
    if not address:
        return "your address"
    name, _, domain = address.partition("@")
    return f"{name[:1]}***@{domain}" if domain else f"{address[:3]}***"


def _load(purpose: str, token: str) -> tuple[dict[str, Any], Contact | None]:
    """The token's data and its contact: None when erased since (or a legacy token for a reused id)."""
    try:
        return link_contact(purpose, token)
    except BadLink as exc:
        bad_link(exc)


def _address(contact: Contact | None, channel: str) -> str | None:
    """The contact's address on *channel* (the field the channel declares), or None."""
    cls = current_app.extensions["nudge.plugins"].channels.get(channel)
    field = getattr(cls, "address_field", None)
    return getattr(contact, field, None) if contact is not None and field else None


@bp.get("/u/<token>")
def ask(token: str):
    data, contact = _load("unsubscribe", token)
    channel = token_channel(data)
    return page(
        "unsubscribe.html",
        channel=channel,
        address=mask(_address(contact, channel)),
        action=url_for("unsubscribe.one_click", token=token),
        preferences=preferences_url(contact.public_id) if contact else None,
    )


@bp.post("/u/<token>")
def one_click(token: str):
    data, _contact = _load("unsubscribe", token)
    source = "one-click" if request.form.get("List-Unsubscribe") == "One-Click" else "unsubscribe-page"
    unsubscribe_with_token(token, source, ip=client_ip(), user_agent=request.user_agent.string)
    return page(
        "message.html",
        title="You are unsubscribed",
        text=f"You will get no more {token_channel(data)} messages from us.",
    )


def _channels(contact: Contact) -> list[str]:
    """The channels this contact can be reached on (it has the address they use)."""
    pm = current_app.extensions["nudge.plugins"]
    return [
        name
        for name, cls in sorted(pm.channels.items())
        if cls.address_field and cls.consent is not None and getattr(contact, cls.address_field, None)
    ]


@prefs.get("/p/<token>")
def show(token: str):
    _data, contact = _load("preferences", token)
    if contact is None:
        bad_link()
    current = current_consents(get_session(), contact.id)
    channels = [(name, current.get(name) != "revoked") for name in _channels(contact)]
    return page("preferences.html", channels=channels, address=mask(contact.email), saved=False)


@prefs.post("/p/<token>")
def save(token: str):
    _data, contact = _load("preferences", token)
    if contact is None:
        bad_link()
    session = get_session()
    current = current_consents(session, contact.id)
    wanted = set(request.form.getlist("channel"))
    event_ids = []
    for name in _channels(contact):
        subscribed = current.get(name) != "revoked"
        if subscribed and name not in wanted:
            event = opt_out(
                session,
                contact,
                name,
                "preferences",
                ip=client_ip(),
                user_agent=request.user_agent.string,
                event=current_app.extensions["nudge.plugins"].opt_out_event(name),
            )
            if event is not None:
                event_ids.append(event.id)
        elif not subscribed and name in wanted:
            record_consent(
                session,
                contact.id,
                name,
                True,
                "preferences",
                ip=client_ip(),
                user_agent=request.user_agent.string,
                wording="preference page",
            )
    session.commit()
    enqueue_events(event_ids)
    current = current_consents(session, contact.id)
    channels = [(name, current.get(name) != "revoked") for name in _channels(contact)]
    return page("preferences.html", channels=channels, address=mask(contact.email), saved=True)

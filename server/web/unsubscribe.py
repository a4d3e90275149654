"""Unsubscribing: RFC 8058 one-click, a confirmation page, and the preference page per channel.

``POST /u/<token>`` unsubscribes at once and answers 200 (no cookie, no CSRF token, no redirect:
mail providers post it from their servers). ``GET /u/<token>`` only asks for confirmation, because
scanners prefetch links. The opt-out is a revoked consent in the ledger plus the channel's opt-out event;
the engine asks the send-time policy (:mod:`server.engine.policy`) before every send, so queued messages
stop too. A token naming a channel no longer installed records nothing: no message can go out on it.

The preference page shows a channel as subscribed when the policy's consent rule lets a marketing send through
(:func:`server.engine.policy.consent_rule`): on a channel that needs an opt-in (it declares so, or
``CONSENT_REQUIRED`` names it) only after one, and ticking it records one.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request, url_for

from ..consent import current_consents, record_consent
from ..contacts import opt_out
from ..db import get_session
from ..engine.policy import consent_refusal, consent_rule
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


def _channels(contact: Contact) -> dict[str, str]:
    """The channels this contact can be reached on (it has the address they use) and consent applies to, each
    with the consent rule it follows here."""
    pm = current_app.extensions["nudge.plugins"]
    out = {}
    for name, cls in sorted(pm.channels.items()):
        rule = consent_rule(cls, name, current_app.config)
        if cls.address_field and rule is not None and getattr(contact, cls.address_field, None):
            out[name] = rule
    return out


def _choices(contact: Contact, current: dict[str, str]) -> list[tuple[str, bool]]:
    """Each of the contact's channels, and whether they are subscribed: the policy lets a marketing send through."""
    return [(name, consent_refusal(rule, current.get(name)) is None) for name, rule in _channels(contact).items()]


@prefs.get("/p/<token>")
def show(token: str):
    _data, contact = _load("preferences", token)
    if contact is None:
        bad_link()
    current = current_consents(get_session(), contact.id)
    return page("preferences.html", channels=_choices(contact, current), address=mask(contact.email), saved=False)


@prefs.post("/p/<token>")
def save(token: str):
    _data, contact = _load("preferences", token)
    if contact is None:
        bad_link()
    session = get_session()
    current = current_consents(session, contact.id)
    wanted = set(request.form.getlist("channel"))
    event_ids = []
    for name, subscribed in _choices(contact, current):
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
    return page("preferences.html", channels=_choices(contact, current), address=mask(contact.email), saved=True)

"""Email and site tracking: the open pixel, click redirects and the first-party page-visit snippet.

Every URL carries a signed token (:mod:`server.links`); a forged or tampered one is a 404 and a
click only ever redirects to the URL inside its signed token. Opens and clicks that are likely not
a person (mail-privacy proxies, link scanners, HEAD requests, hits seconds after sending, a burst of
clicks on every link of a message; see :mod:`.machine`) are still recorded, flagged ``machine: true``
with a ``machine_reason``; rules do not react to them unless they ask (docs/tracking.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, abort, current_app, make_response, redirect, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config_checks import names_of
from ..contacts import record_event
from ..contacts.normalize import check_json
from ..db import get_session
from ..jsonbody import read_json
from ..links import BadLink, contact_of, verify, visitor_token
from ..models import Contact, Event, Message, utcnow
from .forms import bad_link, client_ip, enqueue_events, exempt_from_csrf, rate_limited
from .machine import Verdict, classify

bp = Blueprint("tracking", __name__)
exempt_from_csrf(bp)

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
VISITOR_COOKIE = "nudge_vid"
VISITOR_PARAM = "_nv"
SNIPPET = Path(__file__).resolve().parent.parent / "static" / "nudge.js"
#: a hit this soon after sending is an automated scan, not a person
MACHINE_SECONDS = 10
#: bytes a page-visit report may have
VISIT_MAX_BODY = 8192


def machine_reason(sent_at: datetime | None, *, purpose: str = "open", now: datetime | None = None) -> Verdict:
    """Whether the current request looks automated (see :mod:`.machine`), and the proxy it came through."""
    return classify(
        purpose=purpose,
        method=request.method,
        agent=request.user_agent.string or "",
        address=client_ip(),
        sent_at=sent_at,
        now=now or utcnow(),
        seconds=float(current_app.config.get("MACHINE_SECONDS", MACHINE_SECONDS)),
    )


def click_burst(session: Session, contact: Contact, name: str, key: str, url: str, now: datetime) -> list[Event]:
    """The other clicks of a burst this click of message *key* completes, or [] when it completes none.

    A burst is ``MACHINE_CLICK_BURST`` different links of one message clicked within
    ``MACHINE_CLICK_BURST_SECONDS``: a scanner following every link, not a person.
    """
    size = max(2, int(current_app.config.get("MACHINE_CLICK_BURST", 3)))
    window = timedelta(seconds=float(current_app.config.get("MACHINE_CLICK_BURST_SECONDS", 3.0)))
    recent = session.scalars(
        select(Event).where(Event.contact_id == contact.id, Event.name == name, Event.occurred_at >= now - window)
    )
    same = [e for e in recent if (e.props or {}).get("message") == key]
    urls = {(e.props or {}).get("url") for e in same} | {url}
    return same if len(urls) >= size else []


def _message_event(purpose: str, token: str, what: str, extra: dict[str, Any]) -> tuple[Contact | None, int | None]:
    """Verify *token*, record ``<channel>.<what>`` (``email.opened``) for its contact, the channel being the
    message's; return (contact, event id) — 404 on a bad token."""
    try:
        link = verify(purpose, token)
    except BadLink:
        abort(404)
    session = get_session()
    contact = contact_of(session, link)
    if contact is None:  # erased since: the link still works, nothing is recorded
        return None, None
    key = link.data.get("m")
    message = session.scalar(select(Message).where(Message.key == key)) if isinstance(key, str) else None
    now = utcnow()
    sent_at = message.sent_at if message is not None and message.sent_at else link.signed_at
    verdict = machine_reason(sent_at, purpose=purpose, now=now)
    reason = verdict.reason
    # a message no longer stored: the channel addressing the email field, whose messages carry these links
    channel = (
        message.channel if message is not None else current_app.extensions["nudge.plugins"].channel_for_field("email")
    )
    name = f"{channel}.{what}"
    if purpose == "click" and isinstance(key, str):
        burst = click_burst(session, contact, name, key, str(extra.get("url")), now)
        for earlier in burst:  # the burst's first clicks looked like a person's until this one came
            if not (earlier.props or {}).get("machine"):
                earlier.props = {**(earlier.props or {}), "machine": True, "machine_reason": "click-burst"}
        if burst and reason is None:
            reason = "click-burst"
    props: dict[str, Any] = {"message": key, "machine": reason is not None, **extra}
    if message is not None:
        props.update(channel=message.channel, template=message.template)
    if reason:
        props["machine_reason"] = reason
    if verdict.proxy:
        props["proxy"] = verdict.proxy
    event = record_event(session, contact, name, props, occurred_at=now, source="tracking")
    session.commit()
    return contact, event.id


@bp.route("/o/<token>.gif", methods=["GET", "HEAD"])
def open_pixel(token: str):
    _contact, event_id = _message_event("open", token, "opened", {})
    enqueue_events([event_id] if event_id else [])
    response = make_response(PIXEL)
    response.mimetype = "image/gif"
    response.headers["Cache-Control"] = "no-store, private"
    return response


@bp.route("/c/<token>", methods=["GET", "HEAD"])
def click(token: str):
    try:
        target = redirect_target(verify("click", token).data.get("u"))
    except BadLink as exc:
        bad_link(exc)
    if target is None:
        bad_link()
    contact, event_id = _message_event("click", token, "clicked", {"url": target})
    enqueue_events([event_id] if event_id else [])
    if event_id is None or contact is None:
        return redirect(target, 302)
    visitor = visitor_token(contact.public_id)
    response = redirect(_with_visitor(target, visitor), 302)
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.set_cookie(
        VISITOR_COOKIE,
        visitor,
        max_age=400 * 86400,
        httponly=True,
        samesite="Lax",
        secure=current_app.config["BASE_URL"].startswith("https://"),
    )
    return response


#: what browsers remove from a URL before following it (a link a template broke over lines)
_TAB_NEWLINE = str.maketrans("", "", "\t\r\n")


def redirect_target(url: Any) -> str | None:
    """The click token's URL as a ``Location``: http(s), a host IDNA can write, no control character, a port that
    is a number; tabs and line breaks removed as a browser removes them. None for anything else (the click is a
    404, recording nothing)."""
    if not isinstance(url, str):
        return None
    url = url.translate(_TAB_NEWLINE)
    if not url.lower().startswith(("http://", "https://")) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is no number or out of range
        if not parts.hostname:
            return None
        parts.hostname.encode("idna")  # what the Location header will carry (a label empty or too long fails)
    except ValueError:  # e.g. an unclosed IPv6 bracket; UnicodeError is one too
        return None
    return url


def _with_visitor(target: str, visitor: str) -> str:
    """Add the visitor id for the site's tracking snippet, only on sites listed in ``TRACK_DOMAINS``."""
    domains = names_of(str(current_app.config.get("TRACK_DOMAINS") or "").lower())
    parts = urlsplit(target)
    host = (parts.hostname or "").lower()
    if not any(host == d or host.endswith("." + d) for d in domains):
        return target
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != VISITOR_PARAM]
    query.append((VISITOR_PARAM, visitor))
    return urlunsplit(parts._replace(query=urlencode(query)))


@bp.get("/t/nudge.js")
def snippet():
    response = make_response(SNIPPET.read_text())
    response.mimetype = "text/javascript"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.post("/t/visit")
def visit():
    """``page.visited`` from the snippet: body ``{"url", "referrer", "v"}`` sent as text/plain (no preflight)."""
    if rate_limited("visit", limit=int(current_app.config.get("VISIT_RATE_LIMIT", 600)), window=3600):
        return Response(status=429)
    if (request.content_length or 0) > VISIT_MAX_BODY:
        return Response(status=413)
    try:
        body = read_json(VISIT_MAX_BODY)
    except ValueError:  # not JSON, too deep, a lone surrogate (InvalidInput is a ValueError too)
        return Response(status=400)
    if not isinstance(body, dict):
        return Response(status=400)
    url, referrer = body.get("url"), body.get("referrer") or None
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")) or len(url) > 2048:
        return Response(status=400)
    if referrer is not None and (not isinstance(referrer, str) or len(referrer) > 2048):
        return Response(status=400)
    token = body.get("v") if isinstance(body.get("v"), str) else request.cookies.get(VISITOR_COOKIE)
    if not token:
        return Response(status=204)  # an anonymous visitor: nothing to record
    try:
        link = verify("visitor", token)
        check_json({"url": url, "referrer": referrer}, "visit")
    except (BadLink, ValueError):
        return Response(status=204)
    session = get_session()
    contact = contact_of(session, link)
    if contact is None:
        return Response(status=204)
    event = record_event(session, contact, "page.visited", {"url": url, "referrer": referrer}, source="site")
    session.commit()  # the engine moves last_seen when it processes the visit
    enqueue_events([event.id])
    return Response(status=204)

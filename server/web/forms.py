"""Hosted sign-up forms: ``GET/POST /f/<slug>``, the embeddable snippet and double opt-in.

A submission creates the contact, or adds to one who exists only what it has no value for (double opt-in: its
changes and the form's tags wait for the confirmation, :mod:`server.forms`). With double opt-in, consent is
recorded and ``form.submitted`` raised only when the signed confirmation link is used; without it, at once.
Confirming also lifts an ``erased`` or ``unsubscribed`` suppression of the address the link was mailed
to: the person asked again and proved the address is theirs (imports and API calls never lift one).
The form's wording is stored with the consent: the wording the person saw when they submitted, kept on their
:class:`~server.models.FormSubmission` (pending until confirmed), so a later change of the form's wording
never rewrites what they agreed to. Bots meet a honeypot field and a per-IP rate
limit kept in Redis (transport only: losing it just resets the counters).
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, NoReturn

import redis
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from ..consent import address_hash, current_consent, lift_suppression, record_consent
from ..contacts import InvalidInput, clean_contact, record_event
from ..contacts.fields import definitions
from ..contacts.normalize import check_json
from ..contacts.service import apply_changes, create_contact, find_contact, nest_fields, set_tags
from ..db import get_session
from ..engine.keys import FORM_CONFIRM, message_key
from ..engine.wake import enqueue_events
from ..forms import HONEYPOT, STANDARD_FORM_FIELDS, blanks_of, held_changes, snippet_html
from ..links import BadLink, Link, confirm_url, contact_of, verify
from ..models import Contact, Form, FormSubmission, Message, utcnow
from ..queue import get_queue

log = logging.getLogger(__name__)
bp = Blueprint("forms", __name__)

FORM_RATE_LIMIT = 20  # submissions per IP per hour


def exempt_from_csrf(blueprint: Blueprint) -> None:
    """Public endpoints posted to from other sites or mail clients authenticate by signed token, not session."""

    def _exempt(state: Any) -> None:
        config = state.app.config
        config["CSRF_EXEMPT_BLUEPRINTS"] = tuple(config.get("CSRF_EXEMPT_BLUEPRINTS", ())) + (blueprint.name,)

    blueprint.record_once(_exempt)


exempt_from_csrf(bp)


def client_ip() -> str:
    return request.remote_addr or "unknown"


def rate_limited(scope: str, *, limit: int, window: int) -> bool:
    """Count this request against a fixed window per client IP; True once past *limit*.

    Redis errors let the request through (and are logged): the limit is a shield, not a gate.
    """
    bucket = int(time.time() // window)
    key = f"nudge:{current_app.config['QUEUE_NAME']}:ratelimit:{scope}:{client_ip()}:{bucket}"
    try:
        conn = get_queue().redis
        pipe = conn.pipeline()
        pipe.incr(key)
        pipe.expire(key, window)
        count = pipe.execute()[0]
    except redis.RedisError as exc:
        log.warning("rate limit %s not checked: %s", scope, type(exc).__name__)
        return False
    return int(count) > limit


def _form(slug: str) -> Form:
    form = get_session().scalar(select(Form).where(Form.slug == slug))
    if form is None:
        abort(404)
    return form


def page(template: str, status: int = 200, **context: Any):
    """A public page: never indexed, and it sends no Referer (its URL may hold a signed token)."""
    response = current_app.make_response((render_template(f"public/{template}", **context), status))
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def bad_link(error: BadLink | None = None) -> NoReturn:
    """Answer a signed link that is forged, cut short, expired, for another page or for nobody: 404, with a page
    that says so (the person came from a message, not from typing a URL)."""
    if error is not None and error.expired:
        title, text = "This link has expired", "Please use the link in a newer message from us."
    else:
        title = "This link does not work"
        text = (
            "It may have been cut short or changed on its way. Open it again from the message, "
            "or copy the whole link into your browser."
        )
    abort(page("message.html", 404, title=title, text=text))


@bp.get("/f/<slug>")
def show(slug: str):
    form = _form(slug)
    return page("form.html", form=form, snippet=snippet_html(form))


@bp.post("/f/<slug>")
def submit(slug: str):
    form = _form(slug)
    if rate_limited(
        f"form:{form.slug}", limit=int(current_app.config.get("FORM_RATE_LIMIT", FORM_RATE_LIMIT)), window=3600
    ):
        return page(
            "message.html",
            429,
            title="Too many attempts",
            text="Too many sign-ups from your network in the last hour. Please try again later.",
        )
    if request.form.get(HONEYPOT):
        log.info("form %s: honeypot filled, submission dropped", form.slug)
        return _done(form)  # looks the same to a bot
    session = get_session()
    try:
        data, extra = _read_submission(form)
        cleaned = clean_contact(
            session,
            data,
            region=current_app.config.get("PHONE_REGION"),
            known_fields=definitions(session),
            from_text=True,
        )
        contact = find_contact(session, email=cleaned["email"])
        existing = contact is not None
        if contact is None:
            contact = create_contact(session, cleaned)
        elif not form.double_opt_in:  # nobody proved the address is theirs: fill in only what is missing
            apply_changes(session, contact, blanks_of(contact, cleaned))
    except InvalidInput as exc:
        session.rollback()
        return page("form.html", 422, form=form, snippet=snippet_html(form), error=str(exc), field=exc.field)
    held = None
    if form.double_opt_in:  # made when the link mailed to the address is used (see server.forms)
        held = held_changes(data, list(form.tags or ()), existing=existing)
    elif form.tags:
        set_tags(session, contact, list(form.tags))
    event_ids: list[int] = []
    submission = FormSubmission(
        form_id=form.id, contact_id=contact.id, wording=form.wording, extra=extra or None, held=held
    )
    session.add(submission)
    if form.double_opt_in:
        link = confirm_url(contact.public_id, form.id, _address_digest(form, contact))
        message = Message(
            key=message_key(FORM_CONFIRM, form.id, contact.id, secrets.token_hex(8)),
            contact_id=contact.id,
            channel=form.channel,
            template=form.confirm_template,
            data={"confirm_url": link, "form": form.slug, "transactional": True, "marketing": False},
        )
        session.add(message)
        session.commit()
        from ..engine.jobs import deliver_messages

        get_queue().enqueue_send(deliver_messages, [message.id])
    else:
        submission.confirmed_at = utcnow()
        event_ids.append(_grant(session, form, contact, extra, wording=form.wording).id)
        session.commit()
    enqueue_events(event_ids)
    return _done(form)


def _done(form: Form):
    """After a sign-up (or a bot's): Post/Redirect/Get, so reloading the thank-you page never posts again."""
    return redirect(form.redirect_url or url_for("forms.thanks", slug=form.slug), 303)


@bp.get("/f/<slug>/thanks")
def thanks(slug: str):
    """The thank-you page: the same for everyone (it names nobody), worded by the form's double opt-in setting."""
    form = _form(slug)
    return page("form_done.html", form=form, double_opt_in=form.double_opt_in)


def _read_submission(form: Form) -> tuple[dict[str, Any], dict[str, Any]]:
    """The contact attributes a submission sets, and its tracking extras (``utm_*``).

    :raises InvalidInput: for a missing email or consent tick, or a field the form does not have.
    """
    allowed = {"email", "consent", HONEYPOT, "csrf_token", *form.fields}
    unknown = sorted(k for k in request.form if k not in allowed and not k.startswith("utm_"))
    if unknown:
        raise InvalidInput(unknown[0], f"this form has no field {unknown[0]!r}")
    if not request.form.get("email", "").strip():
        raise InvalidInput("email", "Please enter your email address.")
    if form.wording and request.form.get("consent") not in ("yes", "on", "true", "1"):
        raise InvalidInput("consent", "Please tick the box to agree, so we may write to you.")
    values = {name: request.form.get(name, "").strip() for name in form.fields}
    data = nest_fields(
        {"email": request.form["email"], **{k: v for k, v in values.items() if v}},
        set(form.fields) - set(STANDARD_FORM_FIELDS),
    )
    extra = {k: v[:255] for k, v in request.form.items() if k.startswith("utm_") and len(k) <= 64}
    return data, check_json(extra, "utm")


def _grant(session: Any, form: Form, contact: Contact, extra: dict[str, Any], *, wording: str, confirmed: bool = False):
    record_consent(
        session,
        contact.id,
        form.channel,
        True,
        f"form:{form.slug}" + (":confirmed" if confirmed else ""),
        ip=client_ip(),
        user_agent=request.user_agent.string,
        wording=wording,
    )
    return record_event(
        session,
        contact,
        "form.submitted",
        {"form": form.slug, "double_opt_in": form.double_opt_in, "confirmed": confirmed, **extra},
        source="form",
    )


def _address_digest(form: Form, contact: Contact) -> str | None:
    """The suppression-list hash of the contact's address on the form's channel (None without one)."""
    channel = current_app.extensions["nudge.plugins"].channels.get(form.channel)
    field = getattr(channel, "address_field", None)
    address = getattr(contact, field, None) if field else None
    return address_hash(current_app.config["SECRET_KEY"], form.channel, address) if address else None


def _confirmation(token: str) -> tuple[Form, Contact, Link]:
    try:
        link = verify("confirm", token)
    except BadLink as exc:
        if exc.expired:
            abort(410)
        bad_link()
    session = get_session()
    form_id = link.data.get("f")
    form = session.get(Form, form_id) if type(form_id) is int else None  # not a bool: True is no form's id
    contact = contact_of(session, link)
    if form is None or contact is None:
        bad_link()
    return form, contact, link


def _make_held(session: Any, form: Form, contact: Contact, held: dict[str, Any]) -> None:
    """Make the changes a confirmed sign-up held (:func:`~server.forms.held_changes`): its values checked again
    against today's fields (a change that no longer fits is dropped, and logged without the values)."""
    if held.get("contact"):
        try:
            cleaned = clean_contact(
                session,
                held["contact"],
                region=current_app.config.get("PHONE_REGION"),
                known_fields=definitions(session),
                from_text=True,
            )
            apply_changes(session, contact, cleaned)
        except InvalidInput as exc:
            log.warning("form %s: a confirmed sign-up's %s no longer fits; not changed", form.slug, exc.field)
    if held.get("tags"):
        set_tags(session, contact, [t for t in held["tags"] if isinstance(t, str)])


@bp.get("/f/confirm/<token>")
def confirm_page(token: str):
    """Asks for the click only: mail scanners prefetch links, and a GET must not subscribe anyone."""
    form, _contact, _link = _confirmation(token)
    return page("confirm.html", form=form, action=url_for("forms.confirm", token=token))


@bp.post("/f/confirm/<token>")
def confirm(token: str):
    form, contact, link = _confirmation(token)
    session = get_session()
    event_ids = []
    digest = _address_digest(form, contact)
    # still the address the link was mailed to: its erasure (or opt-out) suppression ends with this consent, and
    # the sign-ups' held changes are the signer's own
    proven = digest is not None and link.data.get("a") == digest
    lifted = proven and digest is not None and lift_suppression(session, form.channel, digest)
    pending = list(
        session.scalars(
            select(FormSubmission)
            .where(
                FormSubmission.form_id == form.id,
                FormSubmission.contact_id == contact.id,
                FormSubmission.confirmed_at.is_(None),
            )
            .order_by(FormSubmission.id.desc())
        )
    )
    for submission in reversed(pending):  # signed up twice: one confirmation answers both (the latest wins)
        submission.confirmed_at = utcnow()
        if proven and submission.held:
            _make_held(session, form, contact, submission.held)
        submission.held = None
    # the wording the person saw when they last signed up (a link mailed before submissions were kept: today's)
    wording = pending[0].wording if pending else form.wording
    extra = (pending[0].extra if pending else None) or {}  # the utm_* of the sign-up confirmed
    if lifted or current_consent(session, contact.id, form.channel) != "granted":
        event_ids.append(_grant(session, form, contact, extra, wording=wording, confirmed=True).id)
    session.commit()
    enqueue_events(event_ids)
    if form.redirect_url:
        return redirect(form.redirect_url, 303)
    return page("message.html", title="Subscription confirmed", text="Thank you: your subscription is confirmed.")


@bp.app_errorhandler(410)
def _gone(exc: Any):
    if not request.path.startswith("/f/confirm/"):
        return exc
    return page(
        "message.html",
        410,
        title="This link has expired",
        text="Confirmation links work for 7 days. Please sign up again to get a new one.",
    )

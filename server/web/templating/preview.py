"""The editor's live preview (each part rendered in the sandbox for a chosen or the sample contact, with what the
channel says about the result, e.g. an SMS's segments) and its test send through the real channel."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, render_template, request

from ...contact_search import search
from ...contacts import InvalidInput, audit
from ...db import get_session
from ...engine.render import validate_template
from ...models import Role
from ...sdk import ChannelError, OutboundMessage
from ..access import actor, current_user, requires
from ..flash import is_htmx, notify
from ..forms import rate_limited
from . import bp
from .common import channel_class, context_for, find_template, form_parts, preview_contact
from .pages import editor_page
from .rendering import Preview, rendered

#: test sends one person may make per hour (each reaches a real inbox or phone)
TEST_SENDS_PER_HOUR = 10
#: the header every test message carries (channels that have headers show it); the subject says so too
TEST_HEADER = "X-Nudge-Test"


def _for_form(cls: Any) -> tuple[dict[str, str], Preview, Any]:
    """The form's parts rendered for the contact its ``contact_email`` names (else the sample contact)."""
    parts = form_parts(cls)
    data, contact, note = preview_contact(get_session(), request.form.get("contact_email", ""))
    preview = rendered(cls, parts, context_for(data))
    preview.note = note
    return parts, preview, contact


@bp.post("/preview")
@requires(Role.EDITOR)
def preview():
    """The preview of the editor's text (htmx, on input): the ``_preview.html`` fragment."""
    cls = channel_class(request.form.get("channel", "").strip())
    _, shown, contact = _for_form(cls)
    return render_template("admin/templates/_preview.html", preview=shown, contact=contact)


@bp.post("/contacts")
@requires(Role.EDITOR)
def contacts():
    """Contacts whose email starts with what the preview's contact field holds, as its ``<option>`` list (htmx)."""
    query = request.form.get("contact_email", "").strip()
    found = []
    if len(query) >= 2:
        try:
            found = search(get_session(), "email", query, limit=10).contacts
        except InvalidInput:
            found = []
    return render_template("admin/templates/_contact_options.html", contacts=found)


@bp.post("/<int:template_id>/test")
@requires(Role.EDITOR)
def test_send(template_id: int):
    """Send the editor's text, rendered for the chosen or the sample contact, to the address typed: once, now,
    through the channel (no outbox, no consent check: it goes to the person testing), marked as a test."""
    row = find_template(template_id)
    cls = channel_class(row.channel)
    to = request.form.get("to", "").strip()[:320]
    parts = form_parts(cls) or dict(row.parts or {})  # a plain post of the test field alone: the saved text
    data, _, _ = preview_contact(get_session(), request.form.get("contact_email", ""))
    shown = rendered(cls, parts, context_for(data))

    def answer(message: str, category: str, status: int) -> Any:
        notify(message, category)
        if is_htmx():
            return "", 204 if status == 200 else status
        email = request.form.get("contact_email", "")
        return editor_page(row.channel, parts, row, status=status, contact_email=email, to=to)

    problems = validate_template(row.channel, parts) or shown.problems
    if problems:
        return answer(f"Not sent: the template has a problem: {problems[0]}", "error", 422)
    channel = current_app.extensions["nudge.plugins"].channel(row.channel, current_app.config)
    try:
        address = channel.validate_address(to)
    except ValueError as exc:
        return answer(f"Not sent: {to!r} is no address of the {row.channel} channel: {exc}.", "error", 422)
    user = current_user()
    if rate_limited(f"template-test:{user.id if user else 0}", limit=TEST_SENDS_PER_HOUR, window=3600):
        return answer(f"Not sent: at most {TEST_SENDS_PER_HOUR} test sends an hour; try again later.", "error", 429)
    message = _test_message(row.channel, row.name, address, shown.parts)
    session = get_session()
    try:
        with channel.batch():
            channel.send(message)
    except ChannelError as exc:
        audit(session, actor(), "template.test_failed", "template", row.id, channel=row.channel)
        session.commit()
        return answer(f"The test was not sent: {exc.message}", "error", 502)
    audit(session, actor(), "template.test_sent", "template", row.id, channel=row.channel)
    session.commit()
    return answer(f"Sent a test of {row.name!r} to {address}.", "success", 200)


def _test_message(channel: str, name: str, to: str, parts: dict[str, str]) -> OutboundMessage:
    """An outbound message marked as a test: ``[Test]`` before its subject and the :data:`TEST_HEADER` header."""
    subject = parts.get("subject", "")
    marked = {**parts, "subject": f"[Test] {subject}".strip()} if "subject" in parts else parts
    return OutboundMessage(
        key=f"test:{uuid.uuid4().hex}",
        channel=channel,
        template=name,
        to=to,
        subject=marked.get("subject", ""),
        text=marked.get("txt", ""),
        html=marked.get("html") or None,
        headers={TEST_HEADER: "yes"},
        parts=marked,
        marketing=False,  # a test goes to the person writing the template: no list, no unsubscribe
        data={},
    )


__all__ = ["TEST_HEADER", "TEST_SENDS_PER_HOUR"]

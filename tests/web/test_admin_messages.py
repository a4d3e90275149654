"""The Messages area through the test client: failed, unknown and retrying sends with errors, tries and history,
filtered by channel, rule and time; resend (one or the chosen ones: the engine's ``resend``, as the CLI and API)
delivered to a real SMTP server; failing events and journeys with unpark — roles, CSRF, bad input, escaping."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.db import get_session
from server.engine.render import save_template
from server.models import Contact, Enrolment, EnrolmentState, Event, Message, MessageStatusChange, Rule, utcnow

from ..engine.test_resend import FlakySmtp
from ..helpers import api_key, load_rules, post_event, run_worker, signed_in
from .crm_helpers import BREAKOUT, SCRIPT, audited, escaped, page_flash, post

THANKS = f'rule "Thanks {SCRIPT}"\nwhen order.paid then\n  send email thanks\nend\n'


def _failed_send(app, client, smtp_server, email="bea@example.com") -> int:
    """A real send the real SMTP server refused for good (554 at DATA: the content, not the address, so the address
    is not suppressed): failed, with its error and history."""
    with app.app_context():
        save_template(get_session(), "email", "thanks", {"subject": "Thanks", "txt": "Thanks, {{ contact.email }}"})
        get_session().commit()
    if not _rule_loaded(app):
        load_rules(app, THANKS)
    smtp_server.stop()
    smtp_server.handler = FlakySmtp()
    smtp_server.start()
    smtp_server.handler.refuse = "554 5.6.0 message content refused"
    post_event(client, api_key(app), email=email, event="order.paid")
    run_worker(app)
    smtp_server.handler.refuse = None
    with app.app_context():
        message = get_session().scalar(select(Message).order_by(Message.id.desc()))
        assert message.status == "failed", (message.status, message.error)
        return message.id


def _rule_loaded(app) -> bool:
    with app.app_context():
        return get_session().scalar(select(func.count(Rule.id))) > 0


def _rows(app, *specs) -> list[int]:
    """Outbox rows (status, attempts, channel, template, age, rule id) for one contact."""
    with app.app_context():
        session = get_session()
        contact = Contact(email="cy@example.com", fields={})
        session.add(contact)
        session.flush()
        ids = []
        for i, (status, attempts, channel, template, age, rule) in enumerate(specs):
            msg = Message(
                key=f"k{i}",
                contact_id=contact.id,
                channel=channel,
                template=template,
                status=status,
                attempts=attempts,
                error=f"error {i} {SCRIPT}" if status != "sent" else None,
                data={"rule": rule} if rule else {},
                created_at=utcnow() - age,
            )
            session.add(msg)
            session.flush()
            ids.append(msg.id)
        session.commit()
        return ids


def _listed(html) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="message-(\d+)">', html)]


def test_the_list_shows_what_needs_a_look_and_filters_by_status_channel_rule_and_time(app):
    day = timedelta(days=1)
    failed, unknown, retrying, sent, waiting, sms_failed, old = _rows(
        app,
        ("failed", 3, "email", BREAKOUT, timedelta(0), 7),
        ("unknown", 1, "email", "b", timedelta(0), 7),
        ("pending", 2, "email", "c", timedelta(0), 8),
        ("sent", 1, "email", "d", timedelta(0), 7),
        ("pending", 0, "email", "e", timedelta(0), 7),
        ("failed", 1, "sms", "f", day, None),
        ("failed", 1, "email", "g", 10 * day, 7),
    )
    viewer = signed_in(app, "viewer")
    html = viewer.get("/admin/messages/").get_data(as_text=True)
    assert _listed(html) == [old, sms_failed, retrying, unknown, failed]
    escaped(html, BREAKOUT, f"error 0 {SCRIPT}")
    assert 'aria-label="Resend message' not in html and "Resend the chosen" not in html  # a viewer reads
    query = lambda **q: _listed(viewer.get("/admin/messages/", query_string=q).get_data(as_text=True))  # noqa: E731
    assert query(status="failed") == [old, sms_failed, failed]
    assert query(status="unknown") == [unknown] and query(status="retrying") == [retrying]
    assert query(status="all") == [old, sms_failed, waiting, sent, retrying, unknown, failed]
    assert query(channel="sms") == [sms_failed]
    assert query(rule="7") == [old, unknown, failed]
    today = utcnow().date()
    assert query(since=str(today - timedelta(days=2))) == [sms_failed, retrying, unknown, failed]
    assert query(until=str(today - timedelta(days=2))) == [old]
    assert query(status="parked") == []  # only failing events and journeys


@pytest.mark.parametrize(
    "query, words",
    [
        ({"status": "bounced"}, "status &#39;bounced&#39; is not one of"),
        ({"rule": "Thanks"}, "is not a rule id"),
        ({"rule": "\u00b2"}, "is not a rule id"),  # a digit to str.isdigit, not to int()
        ({"rule": "99999999999999999999"}, "is not a rule id"),
        ({"since": "yesterday"}, "is not a date; use YYYY-MM-DD"),
        ({"after": "forged"}, "This page link is damaged"),
    ],
)
def test_a_bad_filter_is_a_400_that_says_why(app, query, words):
    response = signed_in(app, "viewer").get("/admin/messages/", query_string=query)
    assert response.status_code == 400 and words in response.get_data(as_text=True)


def test_pages_follow_their_links(app):
    ids = _rows(app, *[("failed", 1, "email", "t", timedelta(minutes=i), None) for i in range(55)])
    viewer = signed_in(app, "viewer")
    first = viewer.get("/admin/messages/?status=failed").get_data(as_text=True)
    after = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = viewer.get(after).get_data(as_text=True)
    assert _listed(first) + _listed(second) == sorted(ids, reverse=True)  # newest first, each once


def test_resending_a_failed_message_delivers_it_to_the_smtp_server(app, client, smtp_server):
    message_id = _failed_send(app, client, smtp_server)
    editor = signed_in(app, "editor")
    html = editor.get("/admin/messages/").get_data(as_text=True)
    assert "5.6.0 message content refused" in html and f'aria-label="Resend message {message_id}"' in html
    escaped(html, f"Thanks {SCRIPT}")  # the rule's name
    response = post(editor, "/admin/messages/resend", one=str(message_id), status="", channel="email")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/messages/?channel=email")
    assert f"1 message(s) queued to be sent again: #{message_id}." in page_flash(
        editor.get(response.headers["Location"]).get_data(as_text=True)
    )
    run_worker(app)
    delivered = smtp_server.wait_for(1)
    assert [m["To"] for m in delivered] == ["bea@example.com"] and delivered[0]["Subject"] == "Thanks"
    with app.app_context():
        session = get_session()
        assert session.get(Message, message_id).status == "sent"
        history = [
            (h.status, h.source, h.detail)
            for h in session.scalars(
                select(MessageStatusChange)
                .where(MessageStatusChange.message_id == message_id)
                .order_by(MessageStatusChange.id)
            )
        ]
    assert history[-2][:2] == ("pending", "operator") and history[-2][2].startswith("resend requested by user:")
    assert history[-1][0] == "sent"
    entry = audited(app, "messages.resent")[0]
    assert entry.actor.startswith("user:") and entry.detail == {"count": 1, "ids": [message_id]}


def test_resending_the_chosen_messages_is_all_or_nothing(app):
    failed, unknown, sent = _rows(
        app,
        ("failed", 3, "email", "a", timedelta(0), None),
        ("unknown", 1, "email", "b", timedelta(0), None),
        ("sent", 1, "email", "c", timedelta(0), None),
    )
    editor, viewer = signed_in(app, "editor"), signed_in(app, "viewer")
    assert post(viewer, "/admin/messages/resend", selected=[str(failed)]).status_code == 403
    assert post(editor, "/admin/messages/resend", csrf=False, selected=[str(failed)]).status_code == 400
    refused = post(editor, "/admin/messages/resend", selected=[str(failed), str(sent)])
    assert refused.status_code == 409
    assert f"Nothing was resent: message {sent} is sent: only failed or unknown messages can be resent" in page_flash(
        refused.get_data(as_text=True)
    )
    assert post(editor, "/admin/messages/resend", selected=["999999"]).status_code == 404
    assert post(editor, "/admin/messages/resend", selected=["one"]).status_code == 400
    assert post(editor, "/admin/messages/resend").status_code == 422
    with app.app_context():
        assert get_session().get(Message, failed).status == "failed"  # nothing changed
    done = post(editor, "/admin/messages/resend", selected=[str(failed), str(unknown)])
    assert done.status_code == 302
    with app.app_context():
        session = get_session()
        assert [(m.status, m.attempts) for m in session.scalars(select(Message).order_by(Message.id))] == [
            ("pending", 0),
            ("pending", 0),
            ("sent", 1),
        ]


def test_failing_events_and_journeys_are_listed_and_unparked(app):
    with app.app_context():
        session = get_session()
        contact = Contact(email="dee@example.com", fields={})
        session.add(contact)
        session.flush()
        event = Event(
            contact_id=contact.id,
            name=f"odd.{SCRIPT}",
            props={},
            attempts=5,
            error=f"boom {SCRIPT}",
            parked_at=utcnow(),
        )
        journey = Enrolment(
            contact_id=contact.id,
            rule_id=1,
            version_id=1,
            pc=2,
            state=EnrolmentState.PARKED,
            entered=0,
            attempts=5,
            error="render failed",
        )
        session.add_all([event, journey])
        session.commit()
        event_id, journey_id = event.id, journey.id
    editor = signed_in(app, "editor")
    html = editor.get("/admin/messages/?status=parked").get_data(as_text=True)
    escaped(html, f"boom {SCRIPT}", f"odd.{SCRIPT}")
    assert f'aria-label="Unpark event {event_id}"' in html and f'aria-label="Unpark journey {journey_id}"' in html
    assert post(signed_in(app, "viewer"), "/admin/messages/unpark", event=str(event_id)).status_code == 403
    assert post(editor, "/admin/messages/unpark").status_code == 422
    response = post(editor, "/admin/messages/unpark", event=str(event_id), status="parked")
    assert response.status_code == 302 and response.headers["Location"].endswith("?status=parked")
    with app.app_context():
        session = get_session()
        assert session.get(Event, event_id).parked_at is None and session.get(Event, event_id).attempts == 0
        assert session.get(Enrolment, journey_id).state == EnrolmentState.PARKED  # only the one asked for
    post(editor, "/admin/messages/unpark", all="yes")
    with app.app_context():
        assert get_session().get(Enrolment, journey_id).state == EnrolmentState.ACTIVE
    assert [e.detail for e in audited(app, "work.unparked")] == [
        {"events": 1, "journeys": 0},
        {"events": 0, "journeys": 1},
    ]

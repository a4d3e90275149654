"""Merge, GDPR export and erasure, through the services, the API and the CLI."""

import json
import time

import pytest
from sqlalchemy import func, select

from server.consent import record_consent, suppression_reason
from server.contacts import merge_contacts, record_event, register_merge_handler
from server.db import get_session
from server.engine.outbox import deliver
from server.engine.policy import blocker
from server.models import (
    AuditEntry,
    Consent,
    Contact,
    ContactTag,
    Event,
    Message,
    MessageStatusChange,
    Note,
    Suppression,
    Task,
)

from ..helpers import api_key


def _make(session, email, **attrs):
    contact = Contact(email=email, fields=attrs.pop("fields", {}), **attrs)
    session.add(contact)
    session.flush()
    return contact


def _person(app):
    """A contact with something in every table that holds contact data."""
    with app.app_context():
        session = get_session()
        contact = _make(session, "erin@example.com", phone="+4930123456", first_name="Erin", fields={"plan": "pro"})
        contact.tags.append(ContactTag(tag="vip"))
        record_event(session, contact, "page.visited", {"url": "https://example.com/?email=erin@example.com"})
        record_consent(session, contact.id, "email", True, "form:newsletter", ip="203.0.113.9", wording="v1")
        msg = Message(
            key="m1",
            contact_id=contact.id,
            channel="email",
            template="welcome",
            status="failed",
            error="550 erin@example.com unknown",
            data={"event": {"email": "erin@example.com"}},
        )
        session.add(msg)
        session.flush()
        session.add(MessageStatusChange(message_id=msg.id, status="bounced", detail="550 erin@example.com"))
        session.add(Note(contact_id=contact.id, body="Erin called"))
        session.add(Task(contact_id=contact.id, text="Call Erin"))
        session.commit()
        return contact.id


def test_export_holds_everything_including_consent(app, runner, tmp_path):
    cid = _person(app)
    out = tmp_path / "erin.json"
    result = runner.invoke(["contacts", "export", "Erin@Example.com", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["contact"]["email"] == "erin@example.com" and data["contact"]["tags"] == ["vip"]
    assert data["consents"][0]["wording"] == "v1" and data["consents"][0]["ip"] == "203.0.113.9"
    assert [e["name"] for e in data["events"]] == ["page.visited"]
    assert data["messages"][0]["status_history"][0]["status"] == "bounced"
    assert data["notes"][0]["body"] == "Erin called" and data["tasks"][0]["text"] == "Call Erin"
    with app.app_context():
        assert (
            get_session().scalar(select(AuditEntry.action).where(AuditEntry.target_id == str(cid)))
            == "contact.exported"
        )
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    via_api = app.test_client().get(f"/api/v1/contacts/{cid}/export", headers=headers).json
    assert via_api["consents"] == data["consents"] and via_api["events"] == data["events"]


def test_erase_leaves_only_a_salted_hash(app, runner):
    cid = _person(app)
    result = runner.invoke(["contacts", "erase", "erin@example.com", "--yes"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        session = get_session()
        assert session.get(Contact, cid) is None
        for model in (Event, Consent, Note, Task, ContactTag):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model
        msg = session.scalar(select(Message))
        assert msg.contact_id is None and msg.data == {} and msg.error is None  # kept for statistics only
        assert session.scalar(select(MessageStatusChange.detail)) is None
        everything = " ".join(
            str(row)
            for model in (Message, MessageStatusChange, Suppression, AuditEntry)
            for row in session.execute(select(model.__table__))
        )
        assert "erin" not in everything.lower() and "4930123456" not in everything
        secret = app.config["SECRET_KEY"]
        assert suppression_reason(session, secret, "email", "ERIN@example.com") == "erased"
        assert suppression_reason(session, secret, "sms", "+4930123456") == "erased"
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "contact.erased"))
        assert entry.actor == "cli" and entry.target_id == str(cid) and entry.detail["events"] == 1


def test_reimport_after_erasure_is_created_but_suppressed(app, client, smtp_server):
    """One send-time policy: the outbox and every other asker say ``erased`` for an erased address."""
    _person(app)
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    cid = client.get("/api/v1/contacts?email=erin@example.com", headers=headers).json["data"][0]["id"]
    assert client.delete(f"/api/v1/contacts/{cid}", headers=headers).json["erased"] == cid
    again = client.post("/api/v1/contacts", json={"email": "erin@example.com"}, headers=headers)
    assert again.status_code == 201
    with app.app_context():
        session = get_session()
        assert (
            blocker(
                session,
                app.config,
                app.extensions["nudge.plugins"].channels,
                "email",
                contact_id=again.json["id"],
                address="erin@example.com",
                now=int(time.time()),
            )
            == "erased"
        )
        message = Message(
            key="after-erasure",
            contact_id=again.json["id"],
            channel="email",
            template="welcome",
            status="pending",
            data={"marketing": True},
        )
        session.add(message)
        session.commit()
        assert deliver(session, app, [message.id]) == 0
        session.refresh(message)
        assert (message.status, message.error) == ("suppressed", "erased")
    assert smtp_server.messages == []


def test_merge_moves_everything_and_combines_attributes(app):
    with app.app_context():
        session = get_session()
        a = _make(session, "a@example.com", first_name="Ann", score=10, fields={"plan": "pro"})
        b = _make(session, None, external_id="crm-7", phone="+4930123456", score=5, fields={"plan": "free", "seats": 3})
        a.tags.append(ContactTag(tag="vip"))
        b.tags.extend([ContactTag(tag="vip"), ContactTag(tag="beta")])
        record_event(session, b, "order.paid", {})
        record_consent(session, b.id, "sms", True, "keyword")
        session.add(Message(key="mb", contact_id=b.id, channel="sms", template="t", data={}))
        session.commit()
        b_id = b.id
        merged = merge_contacts(session, a, b, actor="test")
        session.commit()
        assert session.get(Contact, b_id) is None
        assert merged.external_id == "crm-7" and merged.phone == "+4930123456" and merged.first_name == "Ann"
        assert merged.fields == {"plan": "pro", "seats": 3} and merged.score == 15
        assert sorted(t.tag for t in merged.tags) == ["beta", "vip"]
        assert session.scalar(select(Event.contact_id)) == merged.id
        assert session.scalar(select(Consent.contact_id)) == merged.id
        assert session.scalar(select(Message.contact_id)) == merged.id


def test_merge_handler_hook_runs_for_its_table(app):
    calls = []
    register_merge_handler("notes", lambda session, into, other: calls.append((into, other)))
    try:
        with app.app_context():
            session = get_session()
            a, b = _make(session, "h1@example.com"), _make(session, "h2@example.com")
            session.add(Note(contact_id=b.id, body="kept by the handler's decision"))
            session.commit()
            ids = (a.id, b.id)
            merge_contacts(session, a, b, actor="test")
            assert calls == [ids]
    finally:
        from server.contacts import lifecycle

        lifecycle._MERGE_HANDLERS.pop("notes", None)


def test_merge_via_api_and_cli(app, client, runner):
    headers = {"Authorization": f"Bearer {api_key(app, 'admin')}"}
    a = client.post("/api/v1/contacts", json={"email": "m1@example.com"}, headers=headers).json["id"]
    b = client.post("/api/v1/contacts", json={"email": "m2@example.com", "tags": ["x"]}, headers=headers).json["id"]
    c = client.post("/api/v1/contacts", json={"email": "m3@example.com"}, headers=headers).json["id"]
    merged = client.post(f"/api/v1/contacts/{a}/merge", json={"from_id": b}, headers=headers)
    assert merged.status_code == 200 and merged.json["tags"] == ["x"]
    assert client.get(f"/api/v1/contacts/{b}", headers=headers).status_code == 404
    assert client.post(f"/api/v1/contacts/{a}/merge", json={"from_id": a}, headers=headers).status_code == 422
    result = runner.invoke(["contacts", "merge", str(a), "m3@example.com"])
    assert result.exit_code == 0 and f"merged contact {c} into {a}" in result.output


def test_erase_needs_confirmation(app, runner):
    _person(app)
    result = runner.invoke(["contacts", "erase", "erin@example.com"], input="n\n")
    assert result.exit_code != 0
    with app.app_context():
        assert get_session().scalar(select(func.count(Contact.id))) == 1


@pytest.mark.parametrize(
    ("ident", "message"),
    [
        ("\u00b2", "EMAIL '\u00b2' is not a valid address"),  # a digit to str.isdigit, not to int(): a traceback
        ("99999999999999999999999", "no contact '99999999999999999999999' (give an id or an email address)"),
    ],
)
def test_export_of_an_id_no_contact_can_have_says_so(app, runner, ident, message):
    result = runner.invoke(["contacts", "export", ident])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output

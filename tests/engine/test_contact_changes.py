"""Contacts created or changed through the API reach the rules: events, tags, and re-planned date triggers."""

from sqlalchemy import select

from server.db import get_session
from server.models import TriggerTimer

from ..helpers import api_key, load_rules, run_worker


def _admin(app):
    return {"Authorization": f"Bearer {api_key(app, 'admin')}"}


def test_api_contact_changes_trigger_rules_and_plan_date_triggers(app, client, smtp_server):
    headers = _admin(app)
    assert (
        client.post("/api/v1/fields", json={"name": "renewal_date", "type": "date"}, headers=headers).status_code == 201
    )
    rules = (
        'rule "VIP welcome"\nwhen tag.added and event.tag == "vip" then\n  send email welcome\nend\n'
        'rule "Renewal"\nwhen 7d before contact.renewal_date at 10:00 then\n  send email welcome\nend\n'
    )
    saved = client.put("/api/v1/rules", json={"text": rules}, headers=headers)
    assert saved.status_code == 200, saved.json
    created = client.post("/api/v1/contacts", json={"email": "v@example.com", "tags": ["vip"]}, headers=headers)
    assert created.status_code == 201, created.json
    run_worker(app)
    [msg] = smtp_server.wait_for(1)
    assert msg["To"] == "v@example.com"

    contact_id = created.json["id"]
    patched = client.patch(
        f"/api/v1/contacts/{contact_id}", json={"fields": {"renewal_date": "2099-06-15"}}, headers=headers
    )
    assert patched.status_code == 200, patched.json
    run_worker(app)
    with app.app_context():
        timer = get_session().scalar(select(TriggerTimer).where(TriggerTimer.contact_id == contact_id))
    assert timer is not None  # 2099-06-08 10:00 UTC, planned from the API change
    assert timer.due == 4084596000


def test_upsert_announces_only_new_tags(app, client, smtp_server):
    load_rules(
        app, 'rule "VIP welcome"\n  always\nwhen tag.added and event.tag == "vip" then\n  send email welcome\nend\n'
    )
    key = {"Authorization": f"Bearer {api_key(app)}"}
    client.post("/api/v1/contacts/upsert", json={"email": "u@example.com", "tags": ["vip"]}, headers=key)
    client.post("/api/v1/contacts/upsert", json={"email": "u@example.com", "tags": ["vip"]}, headers=key)
    run_worker(app)
    assert len(smtp_server.wait_for(1)) == 1
    run_worker(app)
    assert len(smtp_server.messages) == 1


def test_imported_contacts_reach_the_engine(app, client, smtp_server):
    from server.contacts.importer import import_text
    from server.engine.jobs import requeue_due

    headers = _admin(app)
    client.post("/api/v1/fields", json={"name": "renewal_date", "type": "date"}, headers=headers)
    rules = (
        'rule "Hello"\nwhen contact.created then\n  send email welcome\nend\n'
        'rule "Renewal"\nwhen 7d before contact.renewal_date at 10:00 then\n  send email welcome\nend\n'
    )
    assert client.put("/api/v1/rules", json={"text": rules}, headers=headers).status_code == 200
    with app.app_context():
        session = get_session()
        report = import_text(
            session,
            "email,renewal_date\ni1@example.com,2099-06-15\ni2@example.com,2000-01-01\n",
            secret=app.config["SECRET_KEY"],
        )
        assert report.created == 2
    app.config["REQUEUE_AFTER"] = 0.001  # the scheduler hands stored, unprocessed events to the engine
    with app.app_context():
        assert requeue_due()["events"] == 2
    run_worker(app)
    assert sorted(m["To"] for m in smtp_server.wait_for(2)) == ["i1@example.com", "i2@example.com"]
    with app.app_context():
        assert len(list(get_session().scalars(select(TriggerTimer)))) == 1


def test_a_rule_setting_date_fields_to_now_stores_them_as_the_api_does_and_segments_agree(app, client):
    """``set contact.F = now`` stores the day in a date field (``birthday`` too) and the instant to the second in
    a date-time field, the forms the API stores: a segment over them finds the contact by SQL and by the
    evaluator alike (a date-time stored in a date field made the two disagree)."""
    import datetime as dt
    import re

    from server.engine.scope import Scope
    from server.models import Contact
    from server.segments import compile_condition, holds, members_clause

    headers = _admin(app)
    for name, kind in (("renewal", "date"), ("seen_at", "datetime")):
        assert client.post("/api/v1/fields", json={"name": name, "type": kind}, headers=headers).status_code == 201
    rules = (
        'rule "Stamp"\nwhen member.joined then\n'
        "  set contact.renewal = now\n  set contact.seen_at = now\n  set contact.birthday = now\nend\n"
    )
    assert client.put("/api/v1/rules", json={"text": rules}, headers=headers).status_code == 200
    key = {"Authorization": f"Bearer {api_key(app)}"}
    posted = client.post(
        "/api/v1/events", json={"contact": {"email": "d@example.com"}, "event": "member.joined"}, headers=key
    )
    assert posted.status_code == 202, posted.json
    run_worker(app)
    with app.app_context():
        session = get_session()
        contact = session.scalar(select(Contact).where(Contact.email == "d@example.com"))
        fields = contact.fields
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", fields["renewal"]), fields
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", fields["birthday"]), fields
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields["seen_at"]), fields
        now = dt.datetime.now(dt.UTC)
        for condition in ("contact.renewal == today", "contact.seen_at >= now - 1h", "contact.seen_at <= now"):
            tree = compile_condition(session, condition).tree
            by_sql = session.scalar(
                select(Contact.id).where(Contact.id == contact.id, members_clause(session, tree, now))
            )
            assert by_sql == contact.id, condition
            assert holds(session, contact, tree, now, scope=Scope.of), condition

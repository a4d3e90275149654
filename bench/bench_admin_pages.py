"""Every page of the admin UI's Contacts, Messages and Tasks areas with 100,000 contacts on the embedded defaults:
each under 300 ms.

    .venv/bin/python bench/bench_admin_pages.py [CONTACTS]

Writes the contacts (bench/crm_data.py), then a busy contact (events, messages with their status history, a
journey with its trace and rules that did not enrol it, consent, notes, tasks), thousands of failed, unknown
and retrying sends, parked events, and tasks for teams. Times each page through the app, signed in as an admin
(median of 9 runs), next to a trivial page timed in the same run (the sign-in page: the layout, no data), with
their ratio. Target: every page under 300 ms.
"""
from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_app  # noqa: E402
from bench.crm_data import admin_client, fill_contacts, get_ok, median_ms, report_pages  # noqa: E402

TARGET_MS = 300
RULES = '''rule "Welcome"
when form.submitted then
  send email welcome
  wait 3d
  tag "nurtured"
end

rule "Customers"
when form.submitted and contact.stage == "customer" then
  tag "customer"
end

rule "Once"
  once per contact
when form.submitted then
  task "Call {{ contact.email }}" for "sales" due 1d
end
'''


def busy(app, count: int) -> None:
    """The history the pages read: one busy contact (id 1), and work needing a look across many contacts."""
    import dsl
    from sqlalchemy import insert

    from server.consent import record_consent
    from server.db import get_session
    from server.engine.rules import apply_plans, compile_rules
    from server.models import (Enrolment, Event, JourneyLog, Message, MessageStatusChange, Note, Task, utcnow)

    now = utcnow()
    with app.app_context():
        session = get_session()
        plans, errors, _ = compile_rules([("bench.nudge", RULES)], dsl.Vocabulary.default())
        assert not errors, errors
        apply_plans(session, plans)
        session.flush()
        for i in range(60):
            session.add(Event(contact_id=1, name="form.submitted" if i % 3 == 0 else "page.viewed",
                              props={"url": f"/pricing/{i}"}, occurred_at=now - timedelta(hours=i),
                              processed_at=now - timedelta(hours=i)))
        session.add(Enrolment(contact_id=1, rule_id=1, version_id=1, pc=2, state=0, due=int(now.timestamp()) + 3600,
                              entered=int(now.timestamp()) - 7200))
        session.execute(insert(JourneyLog.__table__), [
            {"enrolment_id": 1, "contact_id": 1, "rule_id": 1, "at": int(now.timestamp()) - 7200 + i,
             "action": "wait" if i % 2 else "send", "data": {"channel": "email", "template": "welcome",
                                                             "until": int(now.timestamp())}} for i in range(40)])
        for i in range(30):
            msg = Message(key=f"busy:{i}", contact_id=1, channel="email", template="welcome",
                          status="failed" if i % 5 == 0 else "sent", attempts=1 + i % 3, data={"rule": 1},
                          error="SMTP 554 at DATA: refused" if i % 5 == 0 else None, created_at=now - timedelta(hours=i))
            session.add(msg)
            session.flush()
            session.add_all(MessageStatusChange(message_id=msg.id, status=s, detail="worker said so", source="worker",
                                                at=now - timedelta(hours=i)) for s in ("pending", "sent"))
        for channel in ("email", "sms"):
            record_consent(session, 1, channel, True, "form:newsletter", wording="Yes, send me news")
        session.add_all(Note(contact_id=1, body=f"Called, note {i}", author="user:1") for i in range(10))
        session.add_all(Task(contact_id=1, text=f"Follow up {i}", team="sales") for i in range(5))
        statuses = ["failed"] * 5 + ["unknown"] * 2 + ["pending"] * 3
        session.execute(insert(Message.__table__), [
            {"key": f"work:{i}", "contact_id": 2 + i * 37 % (count - 2), "channel": "email" if i % 4 else "sms",
             "template": "welcome", "status": statuses[i % 10], "attempts": 1 + i % 4, "data": {"rule": 1 + i % 3},
             "error": "SMTP 451 at RCPT TO: try again later", "next_attempt_at": now, "created_at": now - timedelta(
                 minutes=i)} for i in range(5000)])
        session.execute(insert(Event.__table__), [
            {"contact_id": 2 + i, "name": "order.paid", "props": {}, "source": "api", "occurred_at": now,
             "received_at": now, "attempts": 5, "error": "boom", "parked_at": now} for i in range(200)])
        session.execute(insert(Task.__table__), [
            {"contact_id": 2 + i, "text": f"Call back {i}", "team": ("sales", "ops", "support")[i % 3],
             "status": "open" if i % 4 else "done", "source": "rule:Once", "created_at": now,
             "due_at": now + timedelta(hours=i % 50) if i % 5 else None} for i in range(3000)])
        session.execute(insert(Message.__table__), [
            {"key": f"team:{i}:s1:0", "contact_id": 2 + i, "channel": "email", "template": "internal.notify",
             "status": "sent", "attempts": 1, "data": {"rule": 3, "rule_name": "Once", "internal": {
                 "kind": "notify", "team": "sales", "to": "ana@team.example", "text": f"Hot lead {i}"}},
             "created_at": now} for i in range(2000)])
        session.commit()


def main(count: int = 100_000) -> None:
    with bench_app(TEAMS="sales=ana@team.example;ops=olga@team.example;support=sue@team.example") as app:
        seconds = fill_contacts(app, count)
        busy(app, count)
        print(f"{count:,} contacts and their history written in {seconds:.1f} s (embedded SQLite, embedded Redis)")
        client = admin_client(app)
        trivial = median_ms(get_ok(app.test_client(), "/admin/login"), runs=25)
        pages = [
            ("Contacts: everyone", "/admin/contacts/"),
            ("Contacts: by email", "/admin/contacts/?by=email&q=user00001"),
            ("Contacts: by name", "/admin/contacts/?by=name&q=ana"),
            ("Contacts: by phone", "/admin/contacts/?by=phone&q=%2B4930100"),
            ("Contacts: by tag", "/admin/contacts/?by=tag&q=vip"),
            ("Contact page (busy contact)", "/admin/contacts/1"),
            ("Contact page (quiet contact)", f"/admin/contacts/{count // 2}"),
            ("Erase confirmation", "/admin/contacts/1/erase"),
            ("Messages: needs a look", "/admin/messages/"),
            ("Messages: every message", "/admin/messages/?status=all"),
            ("Messages: failed sms of one rule", "/admin/messages/?status=failed&channel=sms&rule=2"),
            ("Messages: parked events and journeys", "/admin/messages/?status=parked"),
            ("Tasks: open", "/admin/tasks/"),
            ("Tasks: sales team", "/admin/tasks/?team=sales"),
            ("Tasks: done", "/admin/tasks/?show=done"),
        ]
        print(f"trivial page (GET /admin/login): {trivial:.2f} ms (median of 25)")
        report_pages(client, pages, trivial, TARGET_MS, count)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)

"""Every page of the admin UI with 100,000 contacts on the embedded defaults: each under 300 ms.

    .venv/bin/python bench/bench_admin_pages.py [CONTACTS]

Writes the contacts (bench/crm_data.py); the Rules area's data (bench/rules_data.py: about 50 rules with
versions, drafts and paused ones, three enrolments per contact, seven days of journey log, test cases, users
and API keys); then a busy contact (events, messages with their status history, a
journey with its trace and rules that did not enrol it, consent, notes, tasks), thousands of failed, unknown
and retrying sends, parked events, and tasks for teams. Times each page through the app, signed in as an admin
(median of 9 runs), next to a trivial page timed in the same run (the sign-in page: the layout, no data), with
their ratio. Target: every page under 300 ms.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from bench import outreach_data as outreach
from bench.common import bench_app, size_argument
from bench.crm_data import admin_client, fill_contacts, get_ok, median_ms, time_pages
from bench.results_data import fill as fill_results
from bench.results_data import pages as results_pages
from bench.rules_data import fill_rules
from bench.segments_audit_data import AUDIT_ROWS
from bench.segments_audit_data import fill as fill_segments_and_audit
from bench.segments_audit_data import pages as segments_and_audit_pages
from bench.table import Row, render
from tests.helpers import load_rules

TARGET_MS = 300
RULES = """rule "Welcome"
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
"""


def busy(app, count: int) -> None:
    """The history the pages read: one busy contact (id 1), and work needing a look across many contacts."""
    from sqlalchemy import insert

    from server.consent import record_consent
    from server.db import get_session
    from server.models import Enrolment, Event, JourneyLog, Message, MessageStatusChange, Note, Task, Template, utcnow

    now = utcnow()
    load_rules(app, RULES, "bench.nudge")
    with app.app_context():
        session = get_session()
        parts = {"subject": "Hi {{ contact.first_name }}", "html": "<p>Hi {{ contact.first_name }}</p>", "txt": "Hi"}
        session.add(Template(channel="email", name="welcome", parts=parts))  # the templates pages' (id 1)
        for i in range(60):
            session.add(
                Event(
                    contact_id=1,
                    name="form.submitted" if i % 3 == 0 else "page.viewed",
                    props={"url": f"/pricing/{i}"},
                    occurred_at=now - timedelta(hours=i),
                    processed_at=now - timedelta(hours=i),
                )
            )
        session.add(
            Enrolment(
                contact_id=1,
                rule_id=1,
                version_id=1,
                pc=2,
                state=0,
                due=int(now.timestamp()) + 3600,
                entered=int(now.timestamp()) - 7200,
            )
        )
        session.execute(
            insert(JourneyLog.__table__),
            [
                {
                    "enrolment_id": 1,
                    "contact_id": 1,
                    "rule_id": 1,
                    "at": int(now.timestamp()) - 7200 + i,
                    "action": "wait" if i % 2 else "send",
                    "data": {"channel": "email", "template": "welcome", "until": int(now.timestamp())},
                }
                for i in range(40)
            ],
        )
        for i in range(30):
            msg = Message(
                key=f"busy:{i}",
                contact_id=1,
                channel="email",
                template="welcome",
                status="failed" if i % 5 == 0 else "sent",
                attempts=1 + i % 3,
                data={"rule": 1},
                error="SMTP 554 at DATA: refused" if i % 5 == 0 else None,
                created_at=now - timedelta(hours=i),
            )
            session.add(msg)
            session.flush()
            session.add_all(
                MessageStatusChange(
                    message_id=msg.id, status=s, detail="worker said so", source="worker", at=now - timedelta(hours=i)
                )
                for s in ("pending", "sent")
            )
        for channel in ("email", "sms"):
            record_consent(session, 1, channel, True, "form:newsletter", wording="Yes, send me news")
        session.add_all(Note(contact_id=1, body=f"Called, note {i}", author="user:1") for i in range(10))
        session.add_all(Task(contact_id=1, text=f"Follow up {i}", team="sales") for i in range(5))
        statuses = ["failed"] * 5 + ["unknown"] * 2 + ["pending"] * 3
        session.execute(
            insert(Message.__table__),
            [
                {
                    "key": f"work:{i}",
                    "contact_id": 2 + i * 37 % (count - 2),
                    "channel": "email" if i % 4 else "sms",
                    "template": "welcome",
                    "status": statuses[i % 10],
                    "attempts": 1 + i % 4,
                    "data": {"rule": 1 + i % 3},
                    "error": "SMTP 451 at RCPT TO: try again later",
                    "next_attempt_at": now,
                    "created_at": now - timedelta(minutes=i),
                }
                for i in range(5000)
            ],
        )
        session.execute(
            insert(Event.__table__),
            [
                {
                    "contact_id": 2 + i % (count - 2),
                    "name": "order.paid",
                    "props": {},
                    "source": "api",
                    "occurred_at": now,
                    "received_at": now,
                    "attempts": 5,
                    "error": "boom",
                    "parked_at": now,
                }
                for i in range(200)
            ],
        )
        session.execute(
            insert(Task.__table__),
            [
                {
                    "contact_id": 2 + i % (count - 2),
                    "text": f"Call back {i}",
                    "team": ("sales", "ops", "support")[i % 3],
                    "status": "open" if i % 4 else "done",
                    "source": "rule:Once",
                    "created_at": now,
                    "due_at": now + timedelta(hours=i % 50) if i % 5 else None,
                }
                for i in range(3000)
            ],
        )
        session.execute(
            insert(Message.__table__),
            [
                {
                    "key": f"team:{i}:s1:0",
                    "contact_id": 2 + i % (count - 2),
                    "channel": "email",
                    "template": "internal.notify",
                    "status": "sent",
                    "attempts": 1,
                    "data": {
                        "rule": 3,
                        "rule_name": "Once",
                        "internal": {
                            "kind": "notify",
                            "team": "sales",
                            "to": "ana@team.example",
                            "text": f"Hot lead {i}",
                        },
                    },
                    "created_at": now,
                }
                for i in range(2000)
            ],
        )
        session.commit()


def rules_pages(app, client, ids: list[int]) -> list[tuple[str, Any]]:
    """The Rules area's pages for the busiest rule, and the try-it panel's run (a form post, as the page sends it)."""
    import re

    from server.db import get_session
    from server.models import Rule, RuleVersion

    rule_id = ids[0]  # rule 00: three versions (a draft newer than the active one), test cases, enrolments
    with app.app_context():
        rule = get_session().get(Rule, rule_id)
        numbers = sorted(get_session().scalars(select(RuleVersion.number).where(RuleVersion.rule_id == rule_id)))
        source = get_session().scalar(select(RuleVersion.source).where(RuleVersion.id == rule.active_version_id))
    page = get_ok(client, f"/admin/rules/{rule_id}")().get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {
        "csrf_token": token,
        "source": source,
        "fields": "email=ana@example.com\nfirst_name=Ana\nscore=40",
        "tags": "vip",
        "timezone": "Europe/Berlin",
        "consent_email": "granted",
        "timeline": '{"at": "2030-01-01T09:00:00Z", "event": "form.submitted", "props": {"form": "form-0"}}\n'
        '{"at": "2030-01-03T09:00:00Z", "event": "order.paid"}\n',
    }

    def try_it() -> Any:
        response = client.post(f"/admin/rules/{rule_id}/try", data=form, headers={"HX-Request": "true"})
        assert response.status_code == 200 and "send" in response.get_data(as_text=True), response.status_code
        return response

    return [
        ("Rules: the list (every rule)", "/admin/rules/"),
        ("Rules: the list, active ones", "/admin/rules/?status=active"),
        ("Rules: the list, text search", "/admin/rules/?q=reminder_7"),
        ("Rules: new rule", "/admin/rules/new"),
        ("Rules: the editor (busiest rule)", f"/admin/rules/{rule_id}"),
        ("Rules: the editor's vocabulary (JSON)", "/admin/rules/vocabulary"),
        ("Rules: version diff", f"/admin/rules/{rule_id}/diff?old={numbers[0]}&new={numbers[-1]}"),
        ("Rules: activation plan", f"/admin/rules/{rule_id}/activate?version={numbers[-1]}"),
        ("Rules: try it (run and render the panel)", try_it),
    ]


def fill(app, count: int, audit_rows: int = AUDIT_ROWS) -> list[int]:
    """Every admin page's data for *count* contacts (at least 3); returns the ids of the rules written."""
    from server.models import utcnow

    fill_contacts(app, count)
    busy(app, count)
    ids = fill_rules(app, count, int(utcnow().timestamp()))
    fill_segments_and_audit(app, audit_rows)
    outreach.fill(app, count)
    fill_results(app, ids, int(utcnow().timestamp()))
    return ids


def admin_pages(app, client, ids: list[int], count: int) -> list[tuple[str, Any]]:
    """Every admin page, by name: its address (GET), or a callable making the request a page's htmx part makes."""
    return [
        ("Dashboard", "/admin/"),
        *rules_pages(app, client, ids),
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
        ("Templates: the list", "/admin/templates/"),
        ("Templates: the editor, with its preview", "/admin/templates/1"),
        ("Imports: the list", "/admin/imports/"),
        ("Tasks: open", "/admin/tasks/"),
        ("Tasks: sales team", "/admin/tasks/?team=sales"),
        ("Tasks: done", "/admin/tasks/?show=done"),
        ("Users", "/admin/users/"),
        ("Users: one user", "/admin/users/2"),
        ("Users: new user form", "/admin/users/new"),
        ("API keys", "/admin/apikeys/"),
        ("Account", "/admin/account"),
        ("Settings", "/admin/settings/"),
        ("Channels and plugins", "/admin/channels/"),
        *segments_and_audit_pages(app, client),
        *outreach.pages(app),
        *results_pages(ids[0]),
    ]


def measure(count: int) -> list[Row]:
    """Build the data for *count* contacts and time every admin page next to the sign-in page."""
    with bench_app(TEAMS="sales=ana@team.example;ops=olga@team.example;support=sue@team.example") as app:
        started = time.perf_counter()
        ids = fill(app, count)
        seconds = time.perf_counter() - started
        print(f"{count:,} contacts and their history written in {seconds:.1f} s (embedded SQLite, embedded Redis)")
        client = admin_client(app)
        trivial = median_ms(get_ok(app.test_client(), "/admin/login"), runs=25)
        pages = admin_pages(app, client, ids, count)
        print(f"trivial page (GET /admin/login): {trivial:.2f} ms (median of 25)")
        return time_pages(pages, client, trivial, "GET /admin/login", TARGET_MS, f"admin page, {count:,} contacts")


def rows(full: bool) -> list[Row]:
    return measure(100_000 if full else 20_000)


def main() -> None:
    print(render(measure(size_argument(__doc__, 100_000))))


if __name__ == "__main__":
    main()

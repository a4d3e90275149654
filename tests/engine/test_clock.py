"""The engine's clock drives every time the engine writes: ``nudge simulate`` sees ``last_seen`` and
``updated_at`` move in simulated time, and ``wait until`` a date resumes at a local time of day."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from server.db import get_session
from server.models import Contact

from ..helpers import api_key, load_rules, run_worker
from .test_cli_engine import effects, simulate

AT_RISK = """\
rule "Mark at risk"
when every day at 06:00 and contact.last_seen < now - 30d and tag != "at-risk" then
  tag "at-risk"
end
"""


def test_a_contact_quiet_for_31_days_is_found_at_risk_in_simulated_time(tmp_path):
    timeline = [
        {"at": "2031-03-01T10:00:00Z", "contact": "ana", "set": {"email": "ana@example.com"}},
        {"at": "2031-03-01T10:00:00Z", "contact": "bo", "set": {"email": "bo@example.com"}},
        {"at": "2031-03-02T10:00:00Z", "contact": "ana", "event": "class.attended"},
        # bo keeps coming back every 20 days: never 30 days quiet
        *(
            {"at": f"2031-{month:02d}-{day:02d}T10:00:00Z", "contact": "bo", "event": "class.attended"}
            for month, day in ((3, 2), (3, 22), (4, 11), (5, 1), (5, 21))
        ),
    ]
    out = effects(simulate(tmp_path, AT_RISK, timeline, "--until", "2031-05-31T00:00:00Z"))
    tagged = [(e["contact"], e["at"]) for e in out if e["action"] == "tag"]
    # ana was last seen 2031-03-02 10:00; the first 06:00 more than 30 days later is 2 April
    assert tagged == [("ana", "2031-04-02T06:00:00Z")]


def test_a_contact_never_seen_is_not_at_risk(tmp_path):
    """``last_seen`` stays unset until the contact does something: contact changes are not activity."""
    timeline = [
        {"at": "2031-03-01T10:00:00Z", "contact": "cy", "set": {"email": "cy@example.com"}},
        {"at": "2031-03-05T10:00:00Z", "contact": "cy", "set": {"first_name": "Cy"}},
    ]
    out = effects(simulate(tmp_path, AT_RISK, timeline, "--until", "2031-05-01T00:00:00Z"))
    assert [e for e in out if e["action"] == "tag"] == []


def test_engine_changes_to_a_contact_are_dated_by_the_simulated_clock(tmp_path):
    rules = """\
when member.joined then
  set contact.stage = "member"
  if contact.updated_at >= now - 1h then
    tag "changed-just-now"
  end
  score +5
  wait 2d
  if contact.updated_at < now - 1d then
    tag "unchanged-since"
  end
end
"""
    timeline = [
        {"at": "2031-01-01T10:00:00Z", "contact": "ana", "set": {"email": "ana@example.com"}},
        {"at": "2031-01-11T10:00:00Z", "contact": "ana", "event": "member.joined"},
    ]
    out = effects(simulate(tmp_path, rules, timeline))
    assert [(e["at"], e["tag"]) for e in out if e["action"] == "tag"] == [
        ("2031-01-11T10:00:00Z", "changed-just-now"),
        ("2031-01-13T10:00:00Z", "unchanged-since"),
    ]


def test_wait_until_a_date_resumes_at_the_local_time_it_names(tmp_path):
    rules = """\
rule "Renewal"
when contract.signed then
  wait until contact.renewal_date - 30d at 10:00
  send email renewal_coming
  wait until contact.renewal_date
  send email renewal_today
end
"""
    timeline = [
        {
            "at": "2026-06-01T12:00:00Z",
            "contact": "ny",
            "set": {"email": "ny@example.com", "timezone": "America/New_York", "renewal_date": "2026-11-15"},
        },
        {
            "at": "2026-06-01T12:00:00Z",
            "contact": "be",
            "set": {"email": "be@example.com", "timezone": "Europe/Berlin", "renewal_date": "2026-11-15"},
        },
        {"at": "2026-06-01T12:00:00Z", "contact": "ny", "event": "contract.signed"},
        {"at": "2026-06-01T12:00:00Z", "contact": "be", "event": "contract.signed"},
    ]
    out = effects(simulate(tmp_path, rules, timeline, "--trace", "--until", "2026-12-01T00:00:00Z"))
    sends = [(e["contact"], e["at"], e["template"]) for e in out if e["action"] == "send"]
    assert sends == [
        # 16 October 10:00 in each zone (summer time: UTC-4 and UTC+2) ...
        ("be", "2026-10-16T08:00:00Z", "renewal_coming"),
        ("ny", "2026-10-16T14:00:00Z", "renewal_coming"),
        # ... then 15 November at 09:00, the default, after the clocks went back (UTC-5 and UTC+1)
        ("be", "2026-11-15T08:00:00Z", "renewal_today"),
        ("ny", "2026-11-15T14:00:00Z", "renewal_today"),
    ]
    waits = [e["why"] for e in out if e["action"] == "wait" and e["contact"] == "ny"]
    assert waits == ["wait until contact.renewal_date - 30d at 10:00", "wait until contact.renewal_date"]


# -- the live engine: the same rules, through the API and a real worker --------------------------------------
def _post(client, key, event, email="ana@example.com", **extra):
    response = client.post(
        "/api/v1/events",
        headers={"Authorization": f"Bearer {key}"},
        json={"contact": {"email": email}, "event": event, **extra},
    )
    assert response.status_code == 202, response.get_json()


def _last_seen(app, email="ana@example.com"):
    with app.app_context():
        return get_session().scalar(select(Contact.last_seen).where(Contact.email == email))


def test_last_seen_is_the_moment_of_the_contacts_own_latest_event(app, client):
    load_rules(app, 'when class.attended then\n  tag "came"\nend\n')
    key = api_key(app)
    _post(client, key, "class.attended", occurred_at="2026-03-02T10:00:00Z")
    assert _last_seen(app) is None, "stamped by the engine when it processes the event"
    run_worker(app)
    assert _last_seen(app) == datetime(2026, 3, 2, 10, tzinfo=UTC)

    _post(client, key, "class.attended", occurred_at="2026-02-01T10:00:00Z")  # a late report of an older visit
    run_worker(app)
    assert _last_seen(app) == datetime(2026, 3, 2, 10, tzinfo=UTC), "last_seen never moves back"

    response = client.post(
        "/api/v1/contacts/upsert",
        headers={"Authorization": f"Bearer {key}"},
        json={"email": "ana@example.com", "first_name": "Ana"},
    )
    assert response.status_code in (200, 201), response.get_json()
    _post(client, key, "email.opened", props={"machine": True})
    run_worker(app)
    assert _last_seen(app) == datetime(2026, 3, 2, 10, tzinfo=UTC), (
        "a change through the API and a machine's open are not the contact acting"
    )
